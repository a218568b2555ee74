"""A second host on this machine for `ivr bench agi --console-load
--console-host netns`: a network namespace joined to this one by a veth pair,
with a CPU of its own (``taskset``). The console (`ivr console`) and its
users run there; the engine, its Redis and the simulated PBX's calls run here
on the other CPU, and reach the console's host only over the veth link, as
a console host reaches a hotline's Redis over the network.

What it cannot show: the two "hosts" share one memory bus, one kernel and
the CPU caches of one package, and Redis answers both over TCP on one
machine; a second machine would take away the rest of the interference."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time

from ivr.child_process import die_with_parent, stop_process
from ivr.errors import HostUnavailable

NETNS = "ivr-bench-console"
HOST_IF, CONSOLE_IF = "ivrb0", "ivrb1"
HOST_IP, CONSOLE_IP = "10.77.0.1", "10.77.0.2"


def _ip(*args: str, ns: bool = False) -> None:
    cmd = ["ip", "netns", "exec", NETNS, "ip", *args] if ns else ["ip", *args]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise HostUnavailable(f"{' '.join(cmd)}: {res.stderr.strip()}")


class ConsoleHost:
    """The namespace, its link and the CPU sets: ``engine_cpu`` for this
    host's processes, ``console_cpu`` for the console host's."""

    def __init__(self) -> None:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise HostUnavailable("需要至少 2 个 CPU — needs at least 2 CPUs (one for each host)")
        if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("taskset"):
            raise HostUnavailable("需要 root 权限以及 ip 和 taskset 命令 — needs root, `ip` and `taskset` "
                                  "(a network namespace stands in for the console's host)")
        half = len(cpus) // 2
        self.engine_cpus = ",".join(str(c) for c in cpus[:half])
        self.console_cpus = ",".join(str(c) for c in cpus[half:])
        self.started = False

    def start(self) -> None:
        if NETNS in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split():
            raise HostUnavailable(f"网络命名空间 {NETNS} 已存在：另一个压测在运行，或上次被强行终止（ip netns del "
                                  f"{NETNS}） — network namespace {NETNS} exists: another bench runs, or one was "
                                  f"killed (ip netns del {NETNS})")
        try:
            _ip("netns", "add", NETNS)
            self.started = True
            _ip("link", "add", HOST_IF, "type", "veth", "peer", "name", CONSOLE_IF)
            _ip("link", "set", CONSOLE_IF, "netns", NETNS)
            _ip("addr", "add", f"{HOST_IP}/30", "dev", HOST_IF)
            _ip("link", "set", HOST_IF, "up")
            _ip("addr", "add", f"{CONSOLE_IP}/30", "dev", CONSOLE_IF, ns=True)
            _ip("link", "set", CONSOLE_IF, "up", ns=True)
            _ip("link", "set", "lo", "up", ns=True)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if not self.started:
            return
        subprocess.run(["ip", "netns", "del", NETNS], capture_output=True)      # takes the veth pair with it
        subprocess.run(["ip", "link", "del", HOST_IF], capture_output=True)
        self.started = False

    def on_console_host(self) -> list[str]:
        """The command prefix of a process on the console's host."""
        return ["ip", "netns", "exec", NETNS, "taskset", "-c", self.console_cpus]

    def on_engine_host(self) -> list[str]:
        return ["taskset", "-c", self.engine_cpus]


class NetworkRedis:
    """A redis-server on this host's end of the link (TCP, a password), as the
    console host reaches a hotline's Redis; on the engine's CPUs."""

    def __init__(self, host: ConsoleHost, port: int) -> None:
        from ivr.redisdb.server import redis_server_binary

        self.password = secrets.token_urlsafe(16)
        self.port = port
        self.proc = subprocess.Popen(
            [*host.on_engine_host(), redis_server_binary(), "--bind", HOST_IP, "--port", str(port), "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--requirepass", self.password, "--logfile", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
        self.url = f"redis://:{self.password}@{HOST_IP}:{port}/0"
        self._wait()

    def _wait(self, timeout_s: float = 10.0) -> None:
        import redis

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if redis.Redis(host=HOST_IP, port=self.port, password=self.password, socket_timeout=1).ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        self.stop()
        raise HostUnavailable(f"redis-server on {HOST_IP}:{self.port} did not answer within {timeout_s:g} s")

    def stop(self) -> None:
        stop_process(self.proc)
