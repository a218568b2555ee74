"""Rehearsals and benchmarks: ``ivr drill`` and ``ivr demo`` (the engine against
the simulated Asterisk), ``ivr bench``."""

from __future__ import annotations

import functools
import json
import os
import shlex
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ivr.cli.common import run as run_loop
from ivr.cli.common import who
from ivr.errors import ConfigError
from ivr.settings import Settings

if TYPE_CHECKING:
    from ivr.runtime.engine import Engine

COMPARED = (("attempts", "拨打 attempts"), ("blocked_attempts", "忙音 busy"), ("offered", "来电 offered"), ("answered", "接通 answered"), ("not_answered", "未接通 not answered"),
            ("abandoned_in_queue", "排队放弃 abandoned"), ("satisfied_by_announcement", "听播报后挂机 satisfied"),
            ("answered_within_20s", "20秒内接通 within 20 s"), ("answered_within_60s", "60秒内接通 within 60 s"),
            ("emergency_wait_p50_s", "紧急等待 p50 s"), ("emergency_wait_p95_s", "紧急等待 p95 s"),
            ("ordinary_wait_p95_s", "普通等待 p95 s"), ("redials", "重拨 redials"),
            ("repeat_dialers_merged", "重复来电合并 merged"), ("callbacks_made", "回拨 callbacks made"),
            ("callbacks_reached", "回拨接通 reached"), ("callback_backlog_end", "待回拨 backlog at end"),
            ("line_seconds_per_citizen", "每人占线秒 line-s/citizen"),
            ("answered_within_15s_rate", "15秒接通率 within 15 s"),
            ("callbacks_registered_early", "早期登记回拨 registered early"),
            ("broad_answer_rate_within_deadline", "广义接通率 broad answer rate"))


def _progress(line: str) -> None:
    if sys.stderr.isatty():
        print("\r" + line[:160].ljust(160), end="", file=sys.stderr, flush=True)
    else:
        print(line, file=sys.stderr, flush=True)


def plan_top_level(queue_dir: Path) -> int | None:
    """The contingency plan's highest level (the picture's legend explains
    each level up to it); None when the plan does not load."""
    from ivr.contingency.plan import load_plan

    plan, _ = load_plan(queue_dir, queues=None, announcement_sets=None, seat_groups=None)
    return len(plan.levels) - 1 if plan is not None else None


def _write(report: dict, path: Path, levels: int | None = None) -> list[Path]:
    from ivr.rehearsal.sim.chart import drill_svg

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_json(report), encoding="utf-8")
    svg = path.with_suffix(".svg")
    svg.write_text(drill_svg(report, levels), encoding="utf-8")
    return [path, svg]


def report_json(report: dict) -> str:
    """The report as JSON, its per-call records one compact line each (a
    Beijing hour has tens of thousands)."""
    rest = {k: v for k, v in report.items() if k != "queued_calls"}
    text = json.dumps(rest, ensure_ascii=False, indent=1)
    if "queued_calls" not in report:
        return text
    rows = ",\n".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in report["queued_calls"])
    return text[:-2] + ',\n "queued_calls": [\n' + rows + "\n ]\n}"


def run(settings: Settings, profile_name: str, *, speed: float | None, contingency: str, report: Path | None,
        compare: str | None, duration: float | None, seed: int, console: bool = False, engines: int = 0,
        chaos: bool = False, lines: int | None = None, pbxs: int = 1) -> int:
    from ivr import logs
    from ivr.rehearsal.sim.drill import print_report, run_drill
    from ivr.rehearsal.sim.profiles import load_profile

    if not 1 <= pbxs <= 16:
        raise ConfigError(f"--pbxs {pbxs}：PBX 数应为 1 到 16 — expected 1 to 16 simulated PBXs")
    if lines is not None and lines < 0:
        raise ConfigError(f"--lines {lines}：线路数不能为负 — lines cannot be negative (0: unlimited)")
    if contingency != "auto" and not contingency.isdigit():
        raise ConfigError(f"--contingency {contingency!r}：应为 auto 或级别数字 — expected auto or a level number")
    logs.configure(os.environ.get("IVR_LOG_LEVEL", "error"), "console")
    profile = load_profile(settings.home, profile_name)
    http_listen = "127.0.0.1:0"                      # the drill's own defaults
    on_ready: Callable[[Engine], Awaitable[None]] | None = None
    if console:
        http_listen = str(settings.http_listen) if settings.http_listen.port else "127.0.0.1:0"
        on_ready = _open_console
    drill = functools.partial(
        run_drill, profile, home=settings.home, speed=speed, duration_s=duration, seed=seed, progress=_progress,
        processes=engines, chaos=chaos, progress_every_s=1.0 if sys.stderr.isatty() else 15.0, lines=lines,
        log_dir=settings.data_dir / "drill-engines", http_listen=http_listen, on_ready=on_ready, pbxs=pbxs)
    trunk = profile.lines if lines is None else (lines or None)
    print(f"演练 drill '{profile.name}': {profile.description}; about {profile.expected_calls:,.0f} first calls "
          f"in {(duration or profile.duration_s) / 60:.0f} simulated minutes at speed {speed or profile.speed:g}"
          + "".join(f", {sp:g} from {at / 3600:.3g} h" for at, sp in profile.later_speeds(
              speed or profile.speed, duration or profile.duration_s)) + "; "
          f"{f'{trunk:,} lines' if trunk else 'unlimited lines'}", file=sys.stderr)
    import signal
    signal.signal(signal.SIGTERM, signal.default_int_handler)   # SIGTERM stops a drill like Ctrl-C: cleaned up
    main = run_loop(drill(contingency=contingency))          # uvloop when installed, as the engine
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print_report(main)
    print(identities_line(main.get("identity_violations")))
    reports = {"with_plan": main}
    if report is not None and compare:          # kept before the comparison runs, which may take as long again
        _write_reports({"with_plan": main}, report, settings)
    if compare:
        if compare == "plan":
            print("\n对照 the same arrivals without the contingency plan (level 0 throughout) ...", file=sys.stderr)
            base, name, heads = run_loop(drill(contingency="0")), "without_plan", ("with plan", "without (level 0)")
        else:
            if engines:
                raise ConfigError("--compare admission 只在单进程演练中可用 — runs with the engine in the drill's "
                                  "process only (no --engines)")
            print("\n对照 the same arrivals with the behaviour before admission (no early offer, no wait told, "
                  "no line rules) ...", file=sys.stderr)
            base = run_loop(drill(contingency=contingency, admission=False))
            name, heads = "before_admission", ("with admission", "before admission")
        if sys.stderr.isatty():
            print(file=sys.stderr)
        reports[name] = base
        print(f"\n{'':<28}{heads[0]:>22}{heads[1]:>20}")
        for key, label in COMPARED:
            a, b = main.get(key), base.get(key)
            print(f"  {label:<26}{'-' if a is None else a:>22}{'-' if b is None else b:>20}")
    ok = all(r["consistent"] and r["attempts_add_up"] and r["every_missed_caller_recorded"] and r["lost_callers"] == 0
             and r["callbacks_doubled"] == 0 and (r["audit_chains_verify"] or not r["chaos"])
             and all(f["recovered_after_s"] is not None for f in r["faults"])
             and not (r.get("identity_violations") or {}).get("count") and not r.get("report_parts_failed")
             for r in reports.values())
    if report is not None:
        _write_reports({k: v for k, v in reports.items() if not (compare and k == "with_plan")}, report, settings)
    return 0 if ok else 1


def _write_reports(reports: dict, report: Path, settings: Settings) -> None:
    for name, r in reports.items():
        path = report if name == "with_plan" else report.with_name(
            f"{report.stem}-{name.replace('_', '-')}{report.suffix}")
        written = _write(r, path, plan_top_level(settings.queue_dir))
        print(f"report: {', '.join(str(p) for p in written)}")


def ivr_command() -> str:
    """The ``ivr`` command as a shell finds it from anywhere: the one beside
    this Python (``.venv/bin/ivr``, which is not on PATH after ``./run demo``),
    by its full path."""
    beside = Path(sys.executable).with_name("ivr")
    return shlex.quote(str(beside.absolute())) if beside.exists() else f"{shlex.quote(sys.executable)} -m ivr"


def status_hint(redis_url: str) -> str:
    """The command the demo prints for another terminal: it works as copied."""
    return f"IVR_REDIS_URL={shlex.quote(redis_url)} {ivr_command()} status"


def identities_line(checked: dict | None) -> str:
    """What the console showed, checked against its identities (docs/console.md)."""
    if not checked or not checked.get("checked"):
        why = "; ".join((checked or {}).get("errors", [])) or "no console"
        return f"  控制台数字核对 console identities: 未核对 not checked ({why})"
    n = checked["samples"]
    head = (f"  控制台数字核对 console identities: {checked['count']} 处不成立 violations in "
            f"{n['status']} reads of /api/status and {n['events']} wallboard events")
    first = checked["first"][:1]
    return head + (f"; first at {first[0]['clock']}: {first[0]['identity']} {first[0]['figures']}" if first else "")


async def _open_console(engine: Engine) -> None:
    """Demo accounts in the drill's own Redis, printed with the console's address."""
    import secrets

    from ivr.services import users

    password = secrets.token_urlsafe(9)
    for user, role in (("ops", "operations"), ("manager", "seat_manager"), ("auditor", "auditor")):
        await users.add(engine.redis, user, role, password, by=who())
    host = engine.settings.http_listen.host
    print(f"\n控制台 console: http://{host}:{engine.http_port}/console/  — users ops, manager, auditor; "
          f"password {password} (this drill only)", file=sys.stderr)
    print(f"另一个终端 in another terminal: {status_hint(engine.settings.redis_url or '')}", file=sys.stderr)
    print(WHERE_TO_LOOK + "\n", file=sys.stderr, flush=True)


WHERE_TO_LOOK = """
在控制台里看 where to look in the console (while it runs; the address is above):
  值班长 manager   /console/seats?wall=1  the wallboard: waiting, emergency waiting, the level the plan raised by
                   itself (and who, why, until when), seats the plan added, the callback backlog shrinking in the calm
                   /console/seats         the level's history: raised automatically at the surge, stood down when calm
  运营 ops         /console/ops           the flows and the policy announcements callers heard while waiting
  审计员 auditor   /console/audit         today's callbacks: who was called back, when, by which seat, with what
                   outcome; the answer rates; the audit chains verified
  report: the drill report above; var/drill-demo.svg draws the surge, the level and the backlog over time"""


def cmd_drill(args, settings: Settings) -> int:
    return run(settings, args.profile, speed=args.speed, contingency=args.contingency,
               report=Path(args.report) if args.report else None, compare=args.compare,
               duration=args.duration, seed=args.seed, engines=args.engines, chaos=args.chaos, lines=args.lines,
               pbxs=args.pbxs)


def cmd_demo(args, settings: Settings) -> int:
    if args.walkthrough:
        from ivr.rehearsal import demo
        return demo.main(args, settings)
    report = settings.data_dir / "drill-demo.json"
    rc = run(settings, "demo", speed=args.speed, contingency="auto", report=report, compare=None,
             duration=None, seed=12345, console=True)
    closing(report)
    return rc


def closing(report_path: Path) -> None:
    """The demo's last lines: the promise, in figures, and where each part was shown."""
    try:
        r = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    levels = r["series"]["level"]
    top = max(levels, default=0)
    print(f"""
演示小结 what the demo showed:
  高峰 the surge: {r['offered']} calls for {r['seats']} seats; the level rose by itself to {top} and stood
      {'down to ' + str(levels[-1]) if levels and levels[-1] < top else 'at ' + str(top)} by the end (wallboard and level history)
  播报 {r['satisfied_by_announcement']} callers hung up satisfied after the policy announcement (ops: announcements)
  排队中回拨 {r['callback_accepted']} callers pressed 1 while waiting: out of the line, their place kept, called back
  紧急 {r['emergency_calls']} emergency calls overtook the line: wait p95 {r['emergency_wait_p95_s']} s vs ordinary
      {r['ordinary_wait_p95_s']} s
  回拨 {r['missed_call_records']} missed calls recorded (+{r['repeat_dialers_merged']} repeat calls merged);
      {r['callbacks_made']} callbacks made in the calm, {r['callbacks_reached']} reached; {r['callback_backlog_end']} still
      open at the end (auditor: callbacks, trails)
{_satisfaction_lines(r)}  审计 audit chains verify: {'OK' if r.get('audit_chains_verify') else '未读 not read' if r.get('audit_chains_verify') is None else 'FAILED'} (auditor: verification)
  report {report_path} and {report_path.with_suffix('.svg')} (open the picture in a browser)""")


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _satisfaction_lines(r: dict) -> str:
    """The demo's survey result and its follow-up batch (智能回访), as the closing prints them."""
    from ivr.callback.followup import SOURCES

    out = ""
    sv, cs = r.get("survey"), r.get("callback_survey")
    if sv:
        after = (f"; after callbacks {_rate(cs['satisfaction_rate'])} of {cs['offered']}"
                 if cs and cs["offered"] else "")
        out += (f"  满意度 survey after each conversation: 满意率 {_rate(sv['satisfaction_rate'])} of {sv['offered']} "
                f"(满意 {sv['satisfied']}, 基本满意 {sv['basically_satisfied']}, 不满意 {sv['dissatisfied']}, "
                f"未评价 no answer {sv['no_answer']}){after} (auditor: national figures)\n")
    f = r.get("followups")
    if f and f.get("batch") is not None:
        out += (f"  智能回访 follow-up batch {f['batch']}: at {f['at_s'] / 60:.0f} min {f['by']} chose "
                f"{f['share'] * 100:g}% of {f['candidates']} {' '.join(SOURCES.get(f['of'], (f['of'],)))} -> "
                f"{f['chosen']} citizens, "
                f"{f['reached']} reached, {f['unreached']} unreached, {f['open']} open; heard 是 {f['heard_yes']} / "
                f"否 {f['heard_no']}; 回访满意率 {_rate(f['survey']['satisfaction_rate'])} (auditor: 智能回访)\n")
    elif f:
        out += f"  智能回访 follow-up batch: none chosen ({f.get('refused') or '-'})\n"
    return out


def cmd_bench(args, settings: Settings) -> int:
    if args.console_load:
        from ivr.rehearsal.bench import agi_console
        return agi_console.main(args)
    from ivr.rehearsal.bench import agi as bench_agi
    return bench_agi.main(args)


def cmd_bench_callbacks(args, settings: Settings) -> int:
    from ivr.rehearsal.bench import callbacks as bench_callbacks

    if args.redis_cpu:
        return bench_callbacks.cpu_main(args.calls or 200_000, args.numbers or 60_000, args.redis_cpu)
    if args.report:
        return bench_callbacks.report_main(args.report, args.report // 3 if args.calls is None else args.calls)
    args.calls, args.numbers = args.calls or 1_000_000, args.numbers or 300_000
    return bench_callbacks.main(args)


def cmd_bench_model(args, settings: Settings) -> int:
    from ivr.rehearsal.bench import model as bench_model
    return bench_model.main(args)


def add_commands(sub) -> None:
    d = sub.add_parser("drill", help="rehearse a load profile: the engine against the simulated Asterisk")
    d.add_argument("--profile", default="smoke", help="a file in queue/drills/ (beijing-peak-hour, ordos-day, "
                                                      "demo, smoke)")
    d.add_argument("--speed", type=float, default=None, help="simulated seconds per wall second (profile default)")
    d.add_argument("--contingency", default="auto", help="auto (the plan's thresholds decide) or a fixed LEVEL")
    d.add_argument("--report", metavar="FILE", help="write the report as JSON (and FILE.svg)")
    d.add_argument("--compare", nargs="?", const="admission", choices=("admission", "plan"), default=None,
                   help="run the same arrivals again: with the behaviour before admission (admission, the "
                        "default) or without the contingency plan (plan)")
    d.add_argument("--duration", type=float, default=None, help="simulated seconds (profile default)")
    d.add_argument("--seed", type=int, default=12345)
    d.add_argument("--lines", type=int, default=None, help="trunk lines of the simulated PBX (the profile's lines: "
                                                           "by default; 0: unlimited)")
    d.add_argument("--engines", type=int, default=0, help="engine processes of their own (0: one engine in the "
                                                          "drill's process)")
    d.add_argument("--pbxs", type=int, default=1, help="simulated PBXs (each with its own AMI server, queues, seats "
                                                       "and lines: the profile's split over them; calls spread as a "
                                                       "dispatcher would, to the PBX with the most free lines)")
    d.add_argument("--chaos", action="store_true", help="two or more engine processes on a Sentinel-managed Redis; "
                                                        "kill the leader, kill an engine with calls in its flows, "
                                                        "fail Redis over, drop the AMI link (docs/chaos.md)")
    d.set_defaults(fn=cmd_drill)
    m = sub.add_parser("demo", help="a short drill on embedded defaults (a few minutes), report and picture")
    m.add_argument("--speed", type=float, default=None)
    m.add_argument("--walkthrough", action="store_true", help="instead: ten calls of each kind, one by one")
    m.add_argument("--calls", type=int, default=10, help="with --walkthrough")
    m.set_defaults(fn=cmd_demo)
    b = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="sub", required=True)
    ba = b.add_parser("agi", help="FastAGI: CPU per call vs a bare asyncio responder; calls held at once")
    ba.add_argument("--calls", type=int, default=3000, help="calls for the CPU comparison")
    ba.add_argument("--concurrency", type=int, default=200)
    ba.add_argument("--hold", type=int, default=15000, help="calls to hold inside Queue at once (0: skip)")
    ba.add_argument("--clients", type=int, default=4, help="load-generator processes")
    ba.add_argument("--rounds", type=int, default=3, help="repeat the CPU comparison; medians are quoted")
    ba.add_argument("--console-load", action="store_true",
                    help="instead: AGI latency alone and while the console is flooded and busy (see --flood ...)")
    ba.add_argument("--rate", type=float, default=100.0, help="--console-load: calls arriving per second")
    ba.add_argument("--flood", type=int, default=8, help="--console-load: clients posting wrong passwords")
    ba.add_argument("--wallboards", type=int, default=20, help="--console-load: open wallboard streams")
    ba.add_argument("--backlog", type=int, default=100_000,
                    help="--console-load: missed calls behind the month report (1000000 as in bench callbacks)")
    ba.add_argument("--summaries", type=int, default=0,
                    help="--console-load: call summaries of the month behind the report as well (3000000: issue 19's "
                         "month; its callbacks older than a day closed, its hours summed as the leader has)")
    ba.add_argument("--console-host", choices=("same", "netns"), default="same",
                    help="--console-load: the console in the engine's child process (same), or `ivr console` on a "
                         "host of its own: a network namespace with its own CPUs (netns; needs root, ip, taskset)")
    ba.set_defaults(fn=cmd_bench)
    bc = b.add_parser("callbacks", help="missed-call ingest rate, claim latency, Redis memory per open callback")
    bc.add_argument("--calls", type=int, default=None, help="missed calls (default 1,000,000; 200,000 with --redis-cpu)")
    bc.add_argument("--numbers", type=int, default=None, help="distinct callers (default 300,000; 60,000 with --redis-cpu)")
    bc.add_argument("--seats", type=int, default=1800)
    bc.add_argument("--claims", type=int, default=20_000)
    bc.add_argument("--trails", type=int, default=200, help="random callbacks whose audit trail is read")
    bc.add_argument("--trail-scans", type=int, default=3,
                    help="trail reads by scanning the whole audit log (the way before the index)")
    bc.add_argument("--report", type=int, default=0, metavar="SUMMARIES",
                    help="instead: the month's report (with the national figures) over SUMMARIES call summaries "
                         "and --calls missed calls (default: a third of SUMMARIES)")
    bc.add_argument("--redis-cpu", type=int, default=0, metavar="ROUNDS",
                    help="instead: Redis CPU per missed call with and without the trail index, alternating, "
                         "ROUNDS of each")
    bc.set_defaults(fn=cmd_bench_callbacks)
    bm = b.add_parser("model", help="the leader's live model: CPU per AMI event and per reading, a long line")
    bm.add_argument("--callers", type=int, default=6000, help="the standing line, over two queues")
    bm.add_argument("--seats", type=int, default=1820)
    bm.add_argument("--calls", type=int, default=6000, help="citizens arriving while it is measured")
    bm.add_argument("--rate", type=float, default=20.0, help="citizens arriving per simulated second")
    bm.add_argument("--warmup-s", type=float, default=900.0, help="simulated seconds replayed first, unmeasured "
                                                                    "(the 15-minute window of outcomes)")
    bm.add_argument("--publish-s", type=float, default=0.25, help="simulated seconds between two publishes")
    bm.add_argument("--rounds", type=int, default=3, help="medians are quoted")
    bm.add_argument("--seed", type=int, default=1)
    bm.add_argument("--baseline", metavar="FILE", help="another copy of ivr/ami/model.py, measured in the same run "
                                                       "(git show REV:ivr/ami/model.py > FILE)")
    bm.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    bm.set_defaults(fn=cmd_bench_model)
