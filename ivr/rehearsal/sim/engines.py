"""Engine processes for a drill: each `ivr serve` in a process of its own,
sharing one Redis (embedded or Sentinel-managed), one AMI server (the
simulated Asterisk), one audit key and the drill's clock (``IVR_CLOCK``).

A drill with processes can kill one the way an operating system does
(SIGKILL: no drain, no goodbye) and start it again, and the file descriptors of
the calls are spread over the engines' processes instead of the drill's.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ivr.child_process import die_with_parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class EngineProcess:
    name: str
    env: dict[str, str]
    log_path: Path
    agi_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    started_at: float = 0.0

    @property
    def url(self) -> str:
        return f"agi://127.0.0.1:{self.agi_port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def spawn(self) -> None:
        env = {**self.env, "IVR_AGI_LISTEN": f"127.0.0.1:{self.agi_port}"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "ivr.cli", "serve"], env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, start_new_session=True,
                                         preexec_fn=die_with_parent)
        self.started_at = time.monotonic()

    async def wait_answering(self, timeout_s: float = 30.0) -> float:
        """Until the FastAGI port accepts; returns the wall seconds it took."""
        t0 = time.monotonic()
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"engine {self.name} exited: see {self.log_path}") from None
            try:
                _, w = await asyncio.open_connection("127.0.0.1", self.agi_port)
                w.close()
                return time.monotonic() - t0
            except OSError:
                if time.monotonic() - t0 > timeout_s:
                    raise RuntimeError(f"engine {self.name} did not answer within {timeout_s}s: see {self.log_path}") from None
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()


class EngineSet:
    """``n`` engine processes behind one simulated PBX."""

    def __init__(self, n: int, *, home: Path, folder: Path, redis_url: str, ami_url: str, clock: str,
                 http_listen: str = "127.0.0.1:0", extra_env: dict[str, str] | None = None,
                 ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        base = {**os.environ, "IVR_HOME": str(home), "IVR_REDIS_URL": redis_url, "IVR_AMI_URL": ami_url,
                "IVR_CLOCK": clock, "IVR_LEADER": "yes",
                "IVR_LOG_FORMAT": "json", "IVR_LOG_LEVEL": os.environ.get("IVR_DRILL_ENGINE_LOG_LEVEL", "warning"),
                "IVR_DRAIN_S": "2", "IVR_AUDIT_CHECKPOINT_S": "30", **(extra_env or {})}
        self.engines = []
        for i in range(n):
            (folder / f"engine-{i + 1}.log").unlink(missing_ok=True)      # this drill's logs only
            env = {**base, "IVR_DATA_DIR": str(folder / f"engine-{i + 1}"),
                   "IVR_HTTP_LISTEN": http_listen if i == 0 else "127.0.0.1:0"}
            self.engines.append(EngineProcess(f"engine-{i + 1}", env, folder / f"engine-{i + 1}.log"))

    @property
    def urls(self) -> list[str]:
        return [e.url for e in self.engines]

    async def start(self) -> None:
        for e in self.engines:
            e.spawn()
        await asyncio.gather(*(e.wait_answering(60) for e in self.engines))

    def by_pid(self, pid: int) -> EngineProcess | None:
        return next((e for e in self.engines if e.pid == pid), None)

    def stop(self) -> None:
        for e in self.engines:
            if e.proc is not None and e.proc.poll() is None:
                e.proc.terminate()
        for e in self.engines:
            e.stop()
