"""What the AGI benches share: the servers under test in processes of their
own (``ivr.rehearsal.bench.agi_server``), the load processes (``ivr.rehearsal.bench.agi_load``),
and reading a process's CPU time and memory from /proc."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

from ivr.child_process import stop_process

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def descendants(pid: int) -> list[int]:
    """The processes under ``pid``, from /proc's children lists."""
    found: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as fh:
                    kids = [int(x) for x in fh.read().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def settle(pid: int, quiet_s: float = 1.0, busy_share: float = 0.02, timeout_s: float = 60.0,
           also: list[int] | None = None) -> float:
    """Wait until the processes under ``pid`` (the console and its workers) have
    started no worker and used under ``busy_share`` of a core for ``quiet_s``: a
    report or an upload the last loaded round left running must not land in the
    next unloaded round. Returns the seconds waited."""
    t0 = time.monotonic()

    def used(pids: list[int]) -> float:
        total = 0.0
        for child in pids:
            try:
                total += cpu_s(child)
            except OSError:
                pass        # it ended in between
        return total

    while time.monotonic() - t0 < timeout_s:
        before = descendants(pid) + (also or [])
        spent = used(before)
        time.sleep(quiet_s)
        after = descendants(pid) + (also or [])
        if set(after) == set(before) and used(after) - spent <= busy_share * quiet_s:
            break
    return time.monotonic() - t0


class Server:
    def __init__(self, kind: str, loop: str, commands: list[str] | None = None, env: dict | None = None,
                 prefix: list[str] | None = None) -> None:
        self.port = free_port()
        args = [*(prefix or []), sys.executable, "-m", "ivr.rehearsal.bench.agi_server", kind, str(self.port), loop]
        if kind == "bare":
            args.append(json.dumps(commands))
        env = {**os.environ, "IVR_LOG_LEVEL": "info", **(env or {})}
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._err, text=True, env=env)
        assert self.proc.stdout is not None     # stdout=PIPE
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            self.proc.wait()
            self._err.seek(0)
            said = self._err.read().decode(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"{kind} server did not start: {' / '.join(said) or 'nothing on stderr'}")

    def stop(self) -> None:
        self._err.close()
        stop_process(self.proc, 30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def load(port: int, mode: str, calls: int, extra: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ivr.rehearsal.bench.agi_load", mode, str(port), str(calls), str(extra)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def run_cpu_load(port: int, calls: int, concurrency: int, clients: int) -> dict:
    per = max(calls // clients, 1)
    procs = [load(port, "cpu", per, max(concurrency // clients, 1)) for _ in range(clients)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    lat = sorted(x for o in outs for x in o["latencies"])
    return {"calls": per * clients, "failures": sum(o["failures"] for o in outs),
            "wall_s": max(o["wall_s"] for o in outs), "latencies": lat}
