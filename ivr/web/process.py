"""The console and HTTP API in a process of their own, started and watched by
the engine (``ConsoleProcess``), run by ``python -m ivr.web.process``.

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
from dataclasses import replace
from typing import TYPE_CHECKING

from ivr.child_process import die_with_parent
from ivr.errors import ConfigError
from ivr.settings import HostPort, Settings, as_environment

if TYPE_CHECKING:
    from ivr.logs import Log

START_TIMEOUT_S = 30.0
RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)


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


class ConsoleProcess:
    """The engine's side: start the console, learn its port, restart it if it
    dies, stop it with the engine."""

    def __init__(self, settings: Settings, *, redis_url: str, engine_token: str, clock_spec: str,
                 audit_key_file: str, audit_checkpoint_file: str, log: Log) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.engine_token = engine_token
        self.clock_spec = clock_spec
        self.audit_files = (audit_key_file, audit_checkpoint_file)
        self.log = log
        self.port: int | None = None
        self.restarts = 0
        self.proc: asyncio.subprocess.Process | None = None

    def _env(self, listen: HostPort) -> dict[str, str]:
        return {**os.environ, **as_environment(replace(self.settings, http_listen=listen)),
                "IVR_REDIS_URL": self.redis_url, "IVR_CLOCK": self.clock_spec,
                "IVR_AUDIT_KEY_FILE": self.audit_files[0], "IVR_AUDIT_CHECKPOINT_FILE": self.audit_files[1]}

    async def start(self) -> int:
        """Start the console; its port. ``ConfigError`` when it cannot listen."""
        listen = self.settings.http_listen if self.port is None else replace(self.settings.http_listen, port=self.port)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ivr.web.process", self.engine_token, str(os.getpid()), env=self._env(listen),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), START_TIMEOUT_S)
        except TimeoutError:
            line = b""
        try:
            said = json.loads(line) if line else {}
        except ValueError:
            said = {}
        if "http_port" not in said:
            await self.stop()
            error = ConfigError(said.get("error") or f"IVR_HTTP_LISTEN={listen}: 控制台进程未能启动 "
                                                     f"(the console process did not start)")
            if said.get("errno"):        # the bind error itself, for the CLI's message about a busy port
                raise error from OSError(said["errno"], f"{said.get('strerror')} ('{listen.host}', {listen.port})")
            raise error
        self.port = int(said["http_port"])
        self.log.info("http_listening", host=listen.host, port=self.port, pid=self.proc.pid)
        return self.port

    async def watch(self) -> None:
        """Restart the console whenever it exits by itself (owned by the engine)."""
        backoff = 0
        while True:
            assert self.proc is not None
            code = await self.proc.wait()
            self.restarts += 1
            self.log.error("console_exited", code=code, restarts=self.restarts)
            await asyncio.sleep(RESTART_BACKOFF_S[min(backoff, len(RESTART_BACKOFF_S) - 1)])
            try:
                await self.start()
                backoff = 0
            except ConfigError as exc:       # its port taken meanwhile: keep trying, calls go on
                self.log.error("console_restart_failed", error=str(exc))
                backoff += 1

    async def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


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
    status = PublishedStatus(redis, engine_token, from_environment())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(make_app(redis=redis, settings=settings, status=status), access_log=None,
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
