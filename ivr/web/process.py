"""The console and HTTP API in a process of their own, started and watched by
the engine (``ivr.runtime.console.ConsoleProcess``), run by ``python -m
ivr.web.process``.

Why a process: the console's users can be many and some hostile — a sign-in
flood, twenty wallboards, a month report over a million callbacks, uploads.
In the engine's event loop each of them delayed AGI commands (p99 2.1x with
the heavy parts already in child processes, docs/benchmarks.md). In its own
process, at a lower CPU priority, the console shares nothing with the calls
but Redis. It reads the engine's status from Redis (``ivr.runtime.status``), dies
with the engine (``PR_SET_PDEATHSIG``) and is restarted by it on the same
port if it dies alone.

The child tells the parent how it started with one JSON line on stdout:
``{"http_port": N}`` or ``{"error": "..."}`` (e.g. the port is taken).

The same program is the console on a host of its own (``ivr console``, which
runs ``python -m ivr.web.process --standalone``): no engine beside it, the
status of every engine of the Redis (``ivr.runtime.status.FleetStatus``),
their clock as they publish it, at the normal CPU priority (nothing to yield
to), and a start-up error as one line on stderr, exit 2.

Either way it first checks its audit key against the one the logs are written
with (``ivr.runtime.audit_key``), and refuses to start on a mismatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from typing import NoReturn

from ivr.child_process import die_with_parent

STANDALONE = "--standalone"


def _run_on_what_calls_leave(parent_pid: int) -> None:
    """In the console's process, first thing: die with the engine, and take the
    CPU only when the calls do not want it (SCHED_IDLE; nice 19 where that is
    refused). At nice 10 the console still cost AGI commands 1.8x at p99 on 2
    cores: a niced process keeps its core until the scheduler's next tick,
    while an idle-class one yields the moment a call's process wakes up
    (docs/benchmarks.md). Done here rather than in a ``preexec_fn`` so that the
    engine starts the console without forking its own memory."""
    die_with_parent()
    if os.getppid() != parent_pid:       # the engine died before the line above: go too
        sys.exit(0)
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(19)


# -- the console's own process ----------------------------------------------------

def _say(standalone: bool, said: dict[str, object]) -> None:
    """How the start went: one JSON line for the engine (its child), or one
    line for whoever runs ``ivr console`` (stderr for an error, Chinese first)."""
    if not standalone:
        print(json.dumps(said, ensure_ascii=False), flush=True)
    elif "error" in said:
        print(f"ivr: {said['error']}", file=sys.stderr, flush=True)
    else:
        print(f"控制台已启动 console serving on http://{said['host']}:{said['http_port']} "
              f"(审计密钥指纹 audit key {said['audit_key']})", flush=True)


async def _serve(engine_token: str | None) -> int:
    """The console: for the engine ``engine_token`` (its child), or with no
    engine beside it (``None``: ``ivr console``, every engine of the Redis)."""
    from aiohttp import web

    from ivr import logs
    from ivr.clock import from_environment, from_setting
    from ivr.errors import AuditKeyMismatch, ConfigError
    from ivr.redisdb.server import connect
    from ivr.runtime.audit_key import check_audit_key
    from ivr.runtime.status import FleetStatus, PublishedStatus
    from ivr.settings import load_settings
    from ivr.web.app import make_app

    standalone = engine_token is None
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    log = logs.get("ivr.console").bind(engine=engine_token or "all")
    if not settings.redis_url:
        _say(standalone, {"error": "控制台需要 IVR_REDIS_URL（与引擎相同的 Redis）— the console needs IVR_REDIS_URL "
                                   "(the Redis the engines use)"})
        return 2
    redis = connect(settings.redis_url)
    try:
        key = await check_audit_key(redis, by=f"console:{socket.gethostname()}:{os.getpid()}", log=log)
    except (AuditKeyMismatch, ConfigError) as exc:
        _say(standalone, {"error": str(exc)})
        await redis.aclose()
        return 2
    status: PublishedStatus | FleetStatus
    if engine_token is not None:
        clock = from_environment()
        status = PublishedStatus(redis, engine_token, clock, audit_key=key.short)
    else:
        # the engines' clock, as the engine hands it to its child (IVR_CLOCK): a drill's simulated one
        fleet = FleetStatus(redis, from_environment(), audit_key=key.short)
        with contextlib.suppress(Exception):
            await fleet.read()
        clock = from_environment() if os.environ.get("IVR_CLOCK") else from_setting(fleet.clock_spec())
        status = FleetStatus(redis, clock, audit_key=key.short)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(make_app(redis=redis, settings=settings, status=status, clock=clock), access_log=None,
                           handle_signals=False)
    await runner.setup()
    listen = settings.http_listen
    try:
        await web.TCPSite(runner, listen.host, listen.port, reuse_address=True).start()
    except OSError as exc:
        _say(standalone, {"error": f"IVR_HTTP_LISTEN={listen}: 无法在此地址监听 (cannot listen there: "
                                   f"{exc.strerror})", "errno": exc.errno, "strerror": exc.strerror})
        await runner.cleanup()
        await redis.aclose()
        return 2
    status.http_port = runner.addresses[0][1]
    with contextlib.suppress(Exception):
        await status.read()
    _say(standalone, {"http_port": status.http_port, "host": listen.host, "audit_key": key.short})
    log.info("console_serving", port=status.http_port, standalone=standalone)
    reader = asyncio.create_task(status.run())
    try:
        await stop.wait()
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await runner.cleanup()
        await redis.aclose()
    return 0


def _run(engine_token: str | None) -> NoReturn:
    try:
        import uvloop
    except ImportError:
        sys.exit(asyncio.run(_serve(engine_token)))
    sys.exit(uvloop.run(_serve(engine_token)))


def main() -> None:
    """``python -m ivr.web.process TOKEN PARENT_PID`` (the engine's child) or
    ``python -m ivr.web.process --standalone`` (``ivr console``)."""
    if sys.argv[1:] == [STANDALONE]:
        _run(None)
    token, parent_pid = sys.argv[1], int(sys.argv[2])
    _run_on_what_calls_leave(parent_pid)
    _run(token)


if __name__ == "__main__":
    main()
