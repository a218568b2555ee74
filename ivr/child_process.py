"""Child processes that must not outlive the process that started them."""

from __future__ import annotations

import signal
import subprocess
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
