"""What the AGI benches share: the servers under test in processes of their
own (``ivr.bench.agi_server``), the load processes (``ivr.bench.agi_load``),
and reading a process's CPU time and memory from /proc."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

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


class Server:
    def __init__(self, kind: str, loop: str, commands: list[str] | None = None, env: dict | None = None) -> None:
        self.port = free_port()
        args = [sys.executable, "-m", "ivr.bench.agi_server", kind, str(self.port), loop]
        if kind == "bare":
            args.append(json.dumps(commands))
        env = {**os.environ, "IVR_LOG_LEVEL": "info", **(env or {})}
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        assert self.proc.stdout is not None     # stdout=PIPE
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"{kind} server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def load(port: int, mode: str, calls: int, extra: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ivr.bench.agi_load", mode, str(port), str(calls), str(extra)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def run_cpu_load(port: int, calls: int, concurrency: int, clients: int) -> dict:
    per = max(calls // clients, 1)
    procs = [load(port, "cpu", per, max(concurrency // clients, 1)) for _ in range(clients)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    lat = sorted(x for o in outs for x in o["latencies"])
    return {"calls": per * clients, "failures": sum(o["failures"] for o in outs),
            "wall_s": max(o["wall_s"] for o in outs), "latencies": lat}
