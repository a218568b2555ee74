"""The console's pictures (docs/console.md, "The demo on the wall"), retaken:
the demo's drill in this process, the console in Debian's Chromium signed in
as a seat manager, the wall (1280x800) and the seats page saved at chosen
simulated times (the seats page whole, the wall as on its screen), each with the board it showed and ``/api/status`` read just
after, next to the drill report, and each figure set beside the report's.

    PYTHONPATH=. nice -n 10 .venv/bin/python -m tests.wall_shots --out docs/console

About 7 minutes at speed 10. The pictures go to ``--out``; the boards, the
report (``drill-demo.json``, ``.svg``) and ``shots.txt`` (each shot's figures
beside the report's) to ``--data`` (``var/wall-shots``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
WALL = {"width": 1280, "height": 800}
# the page's wallboard events, the last one kept (window.__board) and held while a picture is taken
# (window.__hold): the picture and the board saved beside it are the same event
KEEP_BOARD = """
(() => { const ES = window.EventSource;
  window.__hold = false; window.__board = null;
  window.EventSource = function (u, o) { const es = new ES(u, o); const add = es.addEventListener.bind(es);
    es.addEventListener = (t, fn, opt) => add(t, ev => {
      if (t === "board") { if (window.__hold) return; window.__board = ev.data; } fn(ev); }, opt);
    return es; };
})();"""
# name, simulated seconds, pages: the surge, the calm, the end (the demo runs 4,200 s): docs/console.md's four
MOMENTS = (("early", 720.0, ("wall",)), ("late", 2400.0, ("wall",)), ("end", 4080.0, ("wall", "seats")))
PAGES = ("wall", "seats")


@dataclass
class Shot:
    name: str
    page: str          # "wall" | "seats"
    t: float           # simulated seconds of the board shown
    board: dict
    status_after: dict
    text: str


def moments(spec: list[str] | None) -> list[tuple[str, float, tuple[str, ...]]]:
    """``name:seconds[:pages]`` (simulated seconds since the drill's start;
    pages ``wall``, ``seats`` or ``wall+seats``, the default), in time order."""
    if not spec:
        return list(MOMENTS)
    out = []
    for item in spec:
        name, at, *pages = item.split(":")
        chosen = tuple(pages[0].split("+")) if pages else PAGES
        if not name or set(chosen) - set(PAGES):
            raise SystemExit(f"--at {item}: expected NAME:SECONDS[:wall|seats|wall+seats]")
        out.append((name, float(at), chosen))
    return sorted(out, key=lambda m: m[1])


def seat_line_adds_up(board: dict) -> list[str]:
    """What does not add up on the board's seat line and tiles (empty: all do)."""
    w = board.get("wall") or {}
    s = w.get("seats")
    problems = []
    if s:
        parts = s["busy"] + s["wrapup"] + s["idle"] + s["paused"] + s["reserved"]
        if parts != s["on_shift"]:
            problems.append(f"on shift {s['on_shift']} != {parts} (talking + wrap-up + idle + paused + reserved)")
        if s["base"] + s["added_by_plan"] != s["on_shift"]:
            problems.append(f"on shift {s['on_shift']} != own {s['base']} + added {s['added_by_plan']}")
        if w.get("idle_seats") is not None and w["idle_seats"] != s["idle"]:
            problems.append(f"idle tile {w['idle_seats']} != seat line's idle {s['idle']}")
    return problems


def nearest(series: dict, t: float) -> dict:
    """The report's series at the sample nearest t, and its neighbours."""
    ts = series["t"]
    i = min(range(len(ts)), key=lambda k: abs(ts[k] - t))
    around = range(max(i - 1, 0), min(i + 2, len(ts)))
    return {"t": ts[i], **{k: series[k][i] for k in series if k != "t"},
            "around": {k: [(ts[j], series[k][j]) for j in around] for k in series if k != "t"}}


def compare(shot: dict, report: dict, start: float) -> str:
    """One shot's figures beside the report's, as docs/console.md quotes them."""
    b, w = shot["board"], shot["board"].get("wall") or {}
    s = w.get("seats") or {}
    t = b["at"] - start
    n = nearest(report["series"], t)
    nat = b.get("national") or {}
    q = (b.get("live") or {}).get("queues", {})
    lines = [
        f"== {shot['page']}-{shot['name']}: simulated {t:.0f} s ({time.strftime('%H:%M:%S', time.gmtime(9 * 3600 + t))}); "
        f"/api/status after at {shot['status_after']['at'] - start:.0f} s",
        f"   board: level {b.get('level')} ({b.get('level_name')}, {b.get('level_by_label')}; {b.get('level_reason')}); "
        f"since {b.get('level_since_local')}, until {b.get('level_expires_local')}",
        f"   tiles: waiting {w.get('waiting')} emergency {w.get('emergency_waiting')} longest {w.get('longest_wait_s')} s; "
        f"service level {w.get('service_level_pct')} % abandon {w.get('abandon_rate')} (answered {w.get('answered')}, "
        f"abandoned {w.get('abandoned')} in {w.get('window_s')} s); idle {w.get('idle_seats')}; lines "
        f"{w.get('lines_in_use')}/{w.get('lines_total')}; backlog {w.get('callback_backlog')}, oldest "
        f"{w.get('callback_oldest_age_s')} s",
        f"   seats: {s.get('on_shift')} = own {s.get('base')} + plan {s.get('added_by_plan')} = talking {s.get('busy')} + "
        f"wrap-up {s.get('wrapup')} + idle {s.get('idle')} + paused {s.get('paused')} + reserved {s.get('reserved')}"
        f" (offline {s.get('offline')})",
        "   queues: " + "; ".join(f"{k} waiting {x['waiting']} answered {x['answered']} abandoned {x['abandoned']}"
                                  for k, x in q.items()),
        f"   national (24 h): within 15 s {nat.get('answered_within_15s_rate')}, 24 h answer rate "
        f"{nat.get('answer_rate_24h')}, ASA {nat.get('average_speed_of_answer_s')} s, abandoned within 15 s "
        f"{nat.get('abandoned_within_15s')}, satisfaction {nat.get('satisfaction_rate')} {nat.get('survey')}",
        f"   report at {n['t']:.0f} s: waiting {n['waiting']} busy {n['busy']} backlog {n['backlog']} level {n['level']} "
        f"lines {n['lines']} blocked {n['blocked']}; around: backlog {n['around']['backlog']}, "
        f"waiting {n['around']['waiting']}, lines {n['around']['lines']}, level {n['around']['level']}",
        "   seat line and tiles: " + ("; ".join(seat_line_adds_up(b)) or "add up"),
        "   seat line as shown: " + next((x for x in shot["text"].splitlines() if x.startswith("在岗坐席")), "-"),
    ]
    return "\n".join(lines)


async def _shoot(base: str, password: str, clock, start: float, plan: list[tuple[str, float, tuple[str, ...]]],
                 out: Path, data: Path) -> list[dict]:
    from playwright.async_api import async_playwright

    shots: list[dict] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        # bypass_csp: Playwright evaluates strings, which the console's policy forbids (as tests/test_console_browser.py)
        ctx = await browser.new_context(viewport=WALL, bypass_csp=True, locale="zh-CN", timezone_id="Asia/Shanghai")
        await ctx.add_init_script(KEEP_BOARD)
        wall = await ctx.new_page()
        await wall.goto(f"{base}/console/")
        await wall.fill("#user", "manager")
        await wall.fill("#password", password)
        await wall.click("#signin")
        await wall.wait_for_url(lambda url: "/console/login" not in url)
        await wall.goto(f"{base}/console/seats?wall=1")
        seats = await ctx.new_page()
        await seats.goto(f"{base}/console/seats")
        for page in (wall, seats):
            await page.wait_for_function("window.__board !== null", timeout=120_000)
        for name, at, chosen in plan:
            while clock.now() < at:
                await asyncio.sleep(0.2)
            for kind, page in ((k, pg) for k, pg in (("wall", wall), ("seats", seats)) if k in chosen):
                await page.evaluate("window.__hold = true")
                board = json.loads(await page.evaluate("window.__board"))
                await page.wait_for_timeout(100)          # the last event's render painted
                text = await page.inner_text("body")
                # the wall as on its screen; the seats page whole (the level's history is below the fold)
                await page.screenshot(path=str(out / f"{kind}-{name}.png"), full_page=kind == "seats")
                status = await (await page.request.get(f"{base}/api/status")).json()
                await page.evaluate("window.__hold = false")
                shot = {"name": name, "page": kind, "t": board["at"] - start, "board": board,
                        "status_after": status, "text": text}
                (data / f"{kind}-{name}.json").write_text(json.dumps(shot, ensure_ascii=False, indent=1),
                                                          encoding="utf-8")
                shots.append(shot)
                print(f"{kind}-{name}: simulated {board['at'] - start:.0f} s", file=sys.stderr, flush=True)
        await browser.close()
    return shots


async def _run(args, settings) -> tuple[dict, list[dict], float]:
    from ivr.cli.common import who
    from ivr.rehearsal.sim.drill import Drill, default_start
    from ivr.rehearsal.sim.profiles import load_profile
    from ivr.services import users

    profile = load_profile(settings.home, args.profile)
    start = default_start(settings.timezone)
    password = secrets.token_urlsafe(9)
    ready: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_ready(engine) -> None:
        await users.add(engine.redis, "manager", "seat_manager", password, by=who())
        ready.set_result(f"http://127.0.0.1:{engine.http_port}")

    drill = Drill(profile, home=settings.home, speed=args.speed, seed=args.seed, lines=args.lines, duration_s=args.duration,
                  start_epoch=start, http_listen="127.0.0.1:0", on_ready=on_ready,
                  progress=lambda line: None, log_dir=args.data / "drill-engines")
    run = asyncio.create_task(drill.run())
    done, _ = await asyncio.wait({run, ready}, return_when=asyncio.FIRST_COMPLETED)
    if run in done:
        run.result()
        raise SystemExit("the drill ended before its console was up")
    shoot = asyncio.create_task(_shoot(ready.result(), password, drill.clock, start, moments(args.at), args.out,
                                       args.data))
    report = await run
    return report, await shoot, start


def main(argv: list[str] | None = None) -> int:
    from ivr import logs
    from ivr.rehearsal.commands import identities_line, plan_top_level, report_json
    from ivr.rehearsal.sim.chart import drill_svg
    from ivr.rehearsal.sim.drill import print_report
    from ivr.settings import load_settings

    settings = load_settings(dict(os.environ))
    ap = argparse.ArgumentParser(prog="python -m tests.wall_shots", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("docs/console"), help="where the pictures go")
    ap.add_argument("--data", type=Path, default=settings.data_dir / "wall-shots",
                    help="the boards, the drill report and shots.txt")
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--speed", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--duration", type=float, default=None, help="simulated seconds (the profile's)")
    ap.add_argument("--lines", type=int, default=200, help="trunk lines (the demo profile states none)")
    ap.add_argument("--at", action="append", metavar="NAME:SECONDS[:PAGES]",
                    help="a moment, simulated seconds since the start, and the pages (wall, seats, wall+seats: the "
                         "default) (by default: early:720:wall late:2400:wall end:4080:wall+seats)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.data.mkdir(parents=True, exist_ok=True)
    logs.configure(os.environ.get("IVR_LOG_LEVEL", "error"), "console")
    report, shots, start = asyncio.run(_run(args, settings))
    (args.data / "drill-demo.json").write_text(report_json(report), encoding="utf-8")
    (args.data / "drill-demo.svg").write_text(drill_svg(report, plan_top_level(settings.queue_dir)), encoding="utf-8")
    print_report(report)
    print(identities_line(report.get("identity_violations")))
    text = "\n\n".join(compare(s, report, start) for s in shots)
    (args.data / "shots.txt").write_text(text + "\n", encoding="utf-8")
    print("\n" + text)
    bad = [f"{s['page']}-{s['name']}: {p}" for s in shots for p in seat_line_adds_up(s["board"])]
    for line in bad:
        print("NOT CONSISTENT " + line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
