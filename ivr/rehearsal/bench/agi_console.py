"""`ivr bench agi --console-load`: do the console's users slow the calls?

One engine as `ivr serve` runs it (calls in the engine's process, the console
in its child process, ``ivr/web/process.py``) on a Redis seeded with console accounts and a callback backlog (the generator
of `ivr bench callbacks`). The same AGI load runs twice in the same run:
alone, then while a console load process floods the sign-in with wrong
passwords, holds wallboard streams open, uploads a recording again and again
and asks for the month's callback report over the backlog again and again.
Reports AGI command latency p50/p99 for both and their ratio (target: p99
under 5 ms and at most 1.5x the unloaded run)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

import redis.asyncio as aioredis

from ivr.child_process import die_with_parent, stop_process
from ivr.prompts.audio import low_priority
from ivr.rehearsal.bench.servers import Server, cpu_s, free_port, rss_mb, run_cpu_load, settle

HOME_DIRS = ("flows", "prompts", "queue", "callback", "asterisk", "config")


async def _seed(url: str, backlog: int, numbers: int, audit_key: Path, summaries_n: int = 0) -> dict:
    """Console accounts and a callback backlog, its audit entries signed with
    ``audit_key`` (the engine's and the console's: each checks at start that
    the logs were written with its key). With ``summaries_n``: a month of call
    summaries as well, the callbacks older than a day closed, and the month's
    hours summed as the leader has by then (``ivr.callback.rollup``)."""
    import datetime as dt
    import random
    from zoneinfo import ZoneInfo

    from ivr import logs
    from ivr.accounts.store import Accounts
    from ivr.audit import signing
    from ivr.callback.capture import MissedCallCapture
    from ivr.callback.policy import Policy
    from ivr.callback.store import CallbackStore
    from ivr.redisdb.server import connect
    from ivr.rehearsal.bench.callbacks import BATCH, NoAck, summaries

    signing.configure(audit_key, audit_key.with_name("audit-checkpoints.jsonl"))
    redis = connect(url)
    try:
        users = {}
        for role in ("operations", "seat_manager", "auditor"):
            users[role] = (f"bench-{role.replace('_', '-')}", secrets.token_urlsafe(16))
            await Accounts(redis).add(users[role][0], role, users[role][1])
        store = CallbackStore(redis)
        cap = MissedCallCapture(redis, store, Policy(calling_hours=(dt.time(0), dt.time(23, 59, 59))),
                                ZoneInfo("Asia/Shanghai"), logs.get("bench"))
        cap.redis = cast(aioredis.Redis, NoAck(redis))    # a proxy: everything but XACK goes to redis
        # spread over the last three weeks: the month report counts them all
        span_s = 21 * 86400
        entries = summaries(backlog, numbers, time.time() - span_s, random.Random(12345))
        step = span_s / max(backlog, 1)
        for i, (_, s) in enumerate(entries):
            started = time.time() - span_s + i * step
            s["started"], s["ended"] = f"{started:.3f}", f"{started + 60:.3f}"
        for i in range(0, backlog, BATCH):      # captured as they happened: the audit entries' times
            batch = entries[i:i + BATCH]
            await cap.handle(batch, now=min(time.time(), float(batch[-1][1]["ended"]) + 5))
        if summaries_n:
            from ivr.callback.rollup import seal
            from ivr.rehearsal.bench.callbacks import backdate_audit, close_most, seed_summaries

            now = time.time()
            await close_most(redis, store, now - 86400)
            await backdate_audit(redis)
            await seed_summaries(redis, summaries_n, now - 30 * 86400, 30 * 86400 - 3600, random.Random(1))
            await seal(redis, ZoneInfo("Asia/Shanghai"), now, days=32)
        counts = await store.counts()
        return {"users": users, "open": counts["open"]}
    finally:
        await redis.aclose()


def _pct(lat: list[float], q: float) -> float:
    return lat[min(int(len(lat) * q), len(lat) - 1)] * 1e3 if lat else 0.0


def _agi_round(port: int, args, watch: dict[str, int], prefix: list[str] | None = None) -> dict:
    """Calls arriving at a steady rate (callers do not wait for each other),
    from two load processes (``prefix``: on the engine host's CPUs). ``watch``:
    processes whose CPU seconds over the round are reported (the engine, Redis)."""
    cpu0 = {name: cpu_s(pid) for name, pid in watch.items()}
    per, clients = max(args.calls // 2, 1), 2
    procs = [subprocess.Popen([*(prefix or []), sys.executable, "-m", "ivr.rehearsal.bench.agi_load", "paced", str(port), str(per), "0",
                               str(args.rate / clients)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
             for _ in range(clients)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    lat = sorted(x for o in outs for x in o["latencies"])
    res = {"calls": per * clients, "failures": sum(o["failures"] for o in outs),
           "wall_s": max(o["wall_s"] for o in outs)}
    cpu = {f"{name}_cpu": (cpu_s(pid) - cpu0[name]) / res["wall_s"] for name, pid in watch.items()}
    return {"p50_ms": _pct(lat, 0.5), "p99_ms": _pct(lat, 0.99), "calls_per_s": res["calls"] / res["wall_s"],
            "failures": res["failures"], "commands": len(lat), **cpu}


def main(args) -> int:
    from ivr.redisdb.server import EmbeddedRedis

    loop = "uvloop"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        loop = "asyncio"
    where = ("the console on a host of its own (a network namespace, its own CPU)"
             if args.console_host == "netns" else "the console in the engine's child process")
    print(f"ivr bench agi --console-load: {args.calls} calls per run arriving at {args.rate:g} calls/s; console: {args.flood} sign-in flooders, {args.wallboards} wallboards, "
          f"1 uploader, 1 month report over {args.backlog:,} missed calls; {where}; {os.cpu_count()} cores, {loop}")
    if args.console_host == "netns":
        import signal
        signal.signal(signal.SIGTERM, signal.default_int_handler)   # stopped: the namespace is taken down too
        return _on_two_hosts(args, loop)
    with tempfile.TemporaryDirectory(prefix="ivr-bench-console-") as tmp:
        home = _copy_home(tmp)
        server = EmbeddedRedis(Path(tmp) / "redis", persist=False)
        url = server.start()
        try:
            t = time.perf_counter()
            seeded = asyncio.run(_seed(url, args.backlog, max(args.backlog * 3 // 10, 1), Path(tmp) / "audit.key",
                                       args.summaries))
            print(f"  seeded {args.backlog:,} missed calls ({seeded['open']:,} open callbacks) and "
                  f"{args.summaries:,} call summaries in {time.perf_counter() - t:.1f} s")
            assert server.proc is not None        # started
            return _measure(args, loop, url, home, seeded, server.proc.pid, tmp=Path(tmp))
        finally:
            server.stop()


def _copy_home(tmp: str) -> Path:
    from ivr.settings import load_settings

    home = Path(tmp) / "home"
    src = load_settings().home
    for d in HOME_DIRS:
        if (src / d).is_dir():
            shutil.copytree(src / d, home / d)
    return home


def _on_two_hosts(args, loop: str) -> int:
    """The console on a host of its own (``console_host.py``): Redis on TCP
    here, the engine without a console here, ``ivr console`` and its users
    there, each side on its own CPUs."""
    from ivr.errors import HostUnavailable
    from ivr.rehearsal.bench.console_host import ConsoleHost, NetworkRedis

    try:
        host = ConsoleHost()
        host.start()
    except HostUnavailable as exc:
        print(f"ivr bench: {exc}", file=sys.stderr)
        return 2
    redis_srv = None
    try:
        with tempfile.TemporaryDirectory(prefix="ivr-bench-console-") as tmp:
            home = _copy_home(tmp)
            redis_srv = NetworkRedis(host, free_port())
            print(f"  engine host: CPU {host.engine_cpus} (engine, Redis on TCP, the calls' load); console host: "
                  f"CPU {host.console_cpus} (`ivr console`, its users), over a veth link")
            t = time.perf_counter()
            seeded = asyncio.run(_seed(redis_srv.url, args.backlog, max(args.backlog * 3 // 10, 1),
                                       Path(tmp) / "audit.key", args.summaries))
            print(f"  seeded {args.backlog:,} missed calls ({seeded['open']:,} open callbacks) and "
                  f"{args.summaries:,} call summaries in {time.perf_counter() - t:.1f} s")
            return _measure(args, loop, redis_srv.url, home, seeded, redis_srv.proc.pid, host=host, tmp=Path(tmp))
    finally:
        if redis_srv is not None:
            redis_srv.stop()
        host.stop()


def _start_console(host, url: str, home: Path, tmp: Path, http_port: int) -> subprocess.Popen:
    """`ivr console` on the console's host, answering on its end of the link."""
    from ivr.rehearsal.bench.console_host import CONSOLE_IP

    env = {**os.environ, "IVR_REDIS_URL": url, "IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp / "console"),
           "IVR_HTTP_LISTEN": f"0.0.0.0:{http_port}", "IVR_AUDIT_KEY_FILE": str(tmp / "audit.key"),
           "IVR_LOG_FORMAT": "json"}
    proc = subprocess.Popen([*host.on_console_host(), sys.executable, "-m", "ivr", "console"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=die_with_parent)
    import http.client
    import urllib.request

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"ivr console ended at start (exit {proc.returncode})")
            try:
                with urllib.request.urlopen(f"http://{CONSOLE_IP}:{http_port}/healthz", timeout=2):
                    return proc
            except (OSError, http.client.HTTPException):
                time.sleep(0.3)
        raise RuntimeError("ivr console did not answer within 60 s")
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def _clear_sign_in_limits(url: str) -> None:
    """Between rounds: the last round's flood blocked 127.0.0.1, where the next
    round's wallboards sign in from."""
    from ivr.redisdb.server import connect_sync

    r = connect_sync(url)
    try:
        from ivr.redisdb import keys
        for key in r.scan_iter(match=keys.LOGIN_LIMIT_PREFIX + "*", count=1000):
            r.delete(key)
    finally:
        r.close()


def _loaded_round(srv: Server, http_port: int, args, users: dict, url: str,
                  watch: dict[str, int], host=None) -> tuple[dict, dict, float]:
    _clear_sign_in_limits(url)
    # the attackers' and staff's machines are not the engine's: on a 2-core bench box the
    # generator runs on CPU time the engine leaves (on the console's host: the time the console leaves)
    console = subprocess.Popen([*(host.on_console_host() if host else []), *low_priority(), sys.executable, "-m", "ivr.rehearsal.bench.console_load", str(http_port),
                                str(args.wallboards), str(args.flood)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "IVR_BENCH_USERS": json.dumps(users)})
    assert console.stdout is not None and console.stdin is not None     # both PIPE
    generator_cpu = cpu_s(console.pid)
    try:
        line = console.stdout.readline()
        if not line.strip().startswith('{"started"'):
            raise RuntimeError(f"the console load did not start: {line!r}")
        time.sleep(2.0)                              # the flood and the first report are under way
        loaded = _agi_round(srv.port, args, watch, host.on_engine_host() if host else None)
        rss = rss_mb(srv.proc.pid)
        console.stdin.write("\n")
        console.stdin.flush()
        generator_cpu = cpu_s(console.pid) - generator_cpu     # a stand-in for other machines: is it small?
        did = json.loads(console.communicate(timeout=120)[0].strip().splitlines()[-1])
        did["generator_cpu_s"] = generator_cpu
    finally:
        if console.poll() is None:
            console.kill()
            console.wait()
    return loaded, did, rss


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def _measure(args, loop: str, url: str, home: Path, seeded: dict, redis_pid: int, host=None,
             tmp: Path | None = None) -> int:
    http_port = free_port()
    env = {"IVR_REDIS_URL": url, "IVR_HOME": str(home), "IVR_BENCH_HTTP_LISTEN": f"127.0.0.1:{http_port}"}
    console = None
    if tmp is not None:
        env["IVR_AUDIT_KEY_FILE"] = str(tmp / "audit.key")
    if host is not None:
        env["IVR_CONSOLE"] = "no"
    srv = Server("engine", loop, env=env, prefix=host.on_engine_host() if host else None)
    watch = {"engine": srv.proc.pid, "redis": redis_pid}
    alone, loaded, did, rss, settled = [], [], [], [], []
    try:
        if host is not None:
            assert tmp is not None
            console = _start_console(host, url, home, tmp, http_port)
        # where the console's work runs: the engine's children, or the console host's process and its
        # children; and Redis, which serves the month report
        quiet = console.pid if console is not None else srv.proc.pid
        also = [redis_pid] + ([console.pid] if console is not None else [])
        calls_on = host.on_engine_host() if host else None
        run_cpu_load(srv.port, min(300, args.calls), args.concurrency, 1)       # warm up
        rss0 = rss_mb(srv.proc.pid)
        for _ in range(args.rounds):                 # interleaved: the box's other load hits both alike
            settled.append(settle(quiet, also=also))  # the last round's report or upload has ended
            alone.append(_agi_round(srv.port, args, watch, calls_on))
            lo, d, r = _loaded_round(srv, http_port, args, seeded["users"], url, watch, host)
            loaded.append(lo)
            did.append(d)
            rss.append(r)
    finally:
        srv.stop()
        if console is not None:
            stop_process(console, 30)
    print(f"  {'AGI commands, per round':<28} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>9} {'failures':>9} "
          f"{'engine CPU':>11} {'Redis CPU':>10}")
    for i, (a, lo) in enumerate(zip(alone, loaded, strict=True)):
        for label, row in ((f"{i + 1}. alone", a), (f"{i + 1}. under console load", lo)):
            print(f"  {label:<28} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['calls_per_s']:>9.0f} "
                  f"{row['failures']:>9} {row['engine_cpu']:>10.1%} {row['redis_cpu']:>10.1%}")
    a99, l99 = _median(alone, "p99_ms"), _median(loaded, "p99_ms")
    a50, l50 = _median(alone, "p50_ms"), _median(loaded, "p50_ms")
    ratio = l99 / (a99 or 1e-9)
    ok = l99 < 5.0 and ratio <= 1.5
    print(f"  medians: alone p50 {a50:.2f} / p99 {a99:.2f} ms; under console load p50 {l50:.2f} / p99 {l99:.2f} ms")
    print(f"  p99 under console load / alone: {ratio:.2f}x; p50 {l50 / (a50 or 1e-9):.2f}x "
          f"(target p99 < 5 ms and <= 1.5x: {'met' if ok else 'NOT met'})")
    last = did[-1]
    print(f"  console per loaded round (last): sign-in answers {last['flood']}, wallboard events "
          f"{last['wallboard_events']}, uploads {last['uploads']} (slowest {last['upload_s_max']:.1f} s), month "
          f"reports {last['reports']} (slowest {last['report_s_max']:.1f} s, {last['report_callbacks']} callbacks), "
          f"errors {last['errors'] or 'none'}; the load generator's own CPU {last['generator_cpu_s']:.1f} s")
    print(f"  before each unloaded round, the console's work went on for {', '.join(f'{x:.0f}' for x in settled)} s")
    print(f"  engine RSS {rss0:.0f} MB before, at most {max(rss):.0f} MB under console load")
    return 0
