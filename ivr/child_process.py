"""Child processes that must not outlive the process that started them."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from typing import Any


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when its parent dies, even by SIGKILL
    (Linux ``PR_SET_PDEATHSIG``), so a killed engine or drill leaves nothing
    running (and no console holding the engine's HTTP port)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)       # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop_process(proc: subprocess.Popen[Any], wait_s: float = 10.0) -> None:
    """Terminate ``proc`` and reap it; killed if it does not end within ``wait_s``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def run_module(module: str, stdin: bytes, timeout_s: float, prefix: list[str]) -> tuple[int, bytes, bytes]:
    """``python -m module`` with ``stdin`` (a request: secrets never go on
    argv), after ``prefix`` (a command such as ``chrt --idle 0``: as a command,
    not a preexec_fn, the child is spawned with vfork, cheap for a large
    engine). Returns (exit code, stdout, stderr); killed on timeout or when the
    caller is cancelled."""
    proc = await asyncio.create_subprocess_exec(
        *prefix, sys.executable, "-m", module,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout_s)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    return proc.returncode if proc.returncode is not None else -1, out, err
