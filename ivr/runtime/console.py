"""The engine's side of the console's process (``ivr.web.process``): start it,
learn its port, restart it if it dies, stop it with the engine. The console is
started by module name, so the engine never imports the web adapter.

``run_standalone`` is ``ivr console``: the same program on a host with no
engine (``ivr serve --no-console`` or IVR_CONSOLE=no on the engines' hosts),
reading the same Redis."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, NoReturn

from ivr import logs
from ivr.errors import ConfigError
from ivr.settings import HostPort, Settings, as_environment

if TYPE_CHECKING:
    from ivr.logs import Log

CONSOLE_MODULE = "ivr.web.process"
START_TIMEOUT_S = 30.0
RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)


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
        # the console writes to the engine's stderr: it logs at the engine process's level, in its format
        # (a drill or the demo shows only errors, in words, never a JSON line among its own lines)
        how = logs.configured()
        settings = replace(self.settings, http_listen=listen, log_level=how.get("level", self.settings.log_level),
                           log_format=how.get("format", self.settings.log_format))
        return {**os.environ, **as_environment(settings), "IVR_REDIS_URL": self.redis_url, "IVR_CLOCK": self.clock_spec,
                "IVR_AUDIT_KEY_FILE": self.audit_files[0], "IVR_AUDIT_CHECKPOINT_FILE": self.audit_files[1]}

    async def start(self) -> int:
        """Start the console; its port. ``ConfigError`` when it cannot listen."""
        listen = self.settings.http_listen if self.port is None else replace(self.settings.http_listen, port=self.port)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", CONSOLE_MODULE, self.engine_token, str(os.getpid()), env=self._env(listen),
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


def run_standalone(settings: Settings) -> NoReturn:
    """``ivr console``: become the console's process, serving every engine
    that shares ``settings.redis_url`` (exec: the service manager's signals
    reach the console itself). It runs on these settings (``as_environment``),
    including the audit key file, which it checks first."""
    if not settings.redis_url:
        raise ConfigError("ivr console 需要 IVR_REDIS_URL（引擎所用的 Redis，内置 Redis 只在引擎本机）— ivr console needs "
                          "IVR_REDIS_URL: the Redis the engines use (an embedded Redis lives only beside its engine)")
    env = {**os.environ, **as_environment(settings)}
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", CONSOLE_MODULE, "--standalone"], env)
