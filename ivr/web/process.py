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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from typing import TYPE_CHECKING

from ivr.child_process import die_with_parent

if TYPE_CHECKING:
    pass



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

async def _serve(engine_token: str) -> int:
    from aiohttp import web

    from ivr import logs
    from ivr.clock import from_environment
    from ivr.redisdb.server import connect
    from ivr.runtime.status import PublishedStatus
    from ivr.settings import load_settings
    from ivr.web.app import make_app

    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    log = logs.get("ivr.console").bind(engine=engine_token)
    if not settings.redis_url:
        print(json.dumps({"error": "the console needs IVR_REDIS_URL (the engine passes it)"}), flush=True)
        return 2
    redis = connect(settings.redis_url)
    clock = from_environment()
    status = PublishedStatus(redis, engine_token, clock)
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
        print(json.dumps({"error": f"IVR_HTTP_LISTEN={listen}: 无法在此地址监听 (cannot listen there: "
                                   f"{exc.strerror})", "errno": exc.errno, "strerror": exc.strerror},
                         ensure_ascii=False), flush=True)
        await runner.cleanup()
        await redis.aclose()
        return 2
    status.http_port = runner.addresses[0][1]
    with contextlib.suppress(Exception):
        await status.read()
    print(json.dumps({"http_port": status.http_port}), flush=True)
    log.info("console_serving", port=status.http_port)
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


def main() -> None:
    token, parent_pid = sys.argv[1], int(sys.argv[2])
    _run_on_what_calls_leave(parent_pid)
    try:
        import uvloop
    except ImportError:
        sys.exit(asyncio.run(_serve(token)))
    sys.exit(uvloop.run(_serve(token)))


if __name__ == "__main__":
    main()
