"""An engine as its own process (`ivr serve`), for tests that kill it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EngineProcess:
    def __init__(self, redis_url: str, data_dir: Path, *, leader: bool = False, serve_args: tuple[str, ...] = (),
                 **env: str) -> None:
        self.agi_port = free_port()
        self.serve_args = serve_args
        self.env = {**os.environ, "IVR_HOME": str(ROOT), "IVR_DATA_DIR": str(data_dir), "IVR_REDIS_URL": redis_url,
                    "IVR_AGI_LISTEN": f"127.0.0.1:{self.agi_port}", "IVR_HTTP_LISTEN": "127.0.0.1:0",
                    "IVR_LEADER": "yes" if leader else "no", "IVR_LOG_LEVEL": "warning", "IVR_LOG_FORMAT": "json",
                    **env}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"agi://127.0.0.1:{self.agi_port}"

    async def start(self, timeout_s: float = 20.0) -> EngineProcess:
        self.proc = subprocess.Popen([sys.executable, "-m", "ivr.cli", "serve", *self.serve_args], env=self.env, cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        async with asyncio.timeout(timeout_s):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"engine exited: {self.proc.stderr.read().decode()[-2000:]}")
                try:
                    _, w = await asyncio.open_connection("127.0.0.1", self.agi_port)
                    w.close()
                    return self
                except OSError:
                    await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye, sockets closed by the kernel."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
