"""`ivr bench agi --console-load --console-host netns`: the console on a host
of its own, here a network namespace with its own CPUs, reaching the
hotline's Redis only over a veth link (issue 20: the console on its own host)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from ivr.rehearsal.bench.console_host import HOST_IP, NETNS, ConsoleHost, NetworkRedis
from ivr.rehearsal.bench.servers import free_port

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("taskset") or len(os.sched_getaffinity(0)) < 2,
    reason="a network namespace and CPU sets need root, ip, taskset and 2 CPUs")


def _namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


@needs_root
def test_the_console_host_has_its_own_cpus_and_reaches_redis_only_over_the_link():
    host = ConsoleHost()
    host.start()
    redis_srv = None
    try:
        redis_srv = NetworkRedis(host, free_port())
        probe = ("import json, os, redis, sys\n"
                 "out = {'cpus': sorted(os.sched_getaffinity(0))}\n"
                 "r = redis.Redis.from_url(sys.argv[1], socket_timeout=2)\n"
                 "out['ping'] = r.ping()\n"
                 "try:\n"
                 "    redis.Redis(host='127.0.0.1', port=int(sys.argv[2]), socket_timeout=2).ping()\n"
                 "    out['loopback'] = 'answered'\n"
                 "except redis.RedisError as exc:\n"
                 "    out['loopback'] = type(exc).__name__\n"
                 "print(json.dumps(out))\n")
        res = subprocess.run([*host.on_console_host(), sys.executable, "-c", probe, redis_srv.url,
                              str(redis_srv.port)], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        seen = json.loads(res.stdout)
        # its own CPUs, Redis over the link, and this host's loopback is not the console host's
        assert seen["cpus"] == [int(c) for c in host.console_cpus.split(",")]
        assert set(seen["cpus"]).isdisjoint(int(c) for c in host.engine_cpus.split(","))
        assert seen["ping"] is True and seen["loopback"] == "ConnectionError"
        assert HOST_IP in redis_srv.url and NETNS in _namespaces()
    finally:
        if redis_srv is not None:
            redis_srv.stop()
        host.stop()
    assert NETNS not in _namespaces()


@needs_root
@pytest.mark.slow
def test_the_console_load_bench_runs_with_the_console_on_its_own_host(tmp_path):
    """The whole bench, small: `ivr console` on the other host serves the
    flood, the wallboards, the upload and the month report; the calls all
    succeed; the namespace is gone afterwards."""
    res = subprocess.run([sys.executable, "-m", "ivr", "bench", "agi", "--console-load", "--console-host", "netns",
                          "--calls", "200", "--rate", "50", "--backlog", "500", "--rounds", "1", "--flood", "2",
                          "--wallboards", "2"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "IVR_DATA_DIR": str(tmp_path)})
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "the console on a host of its own" in out and "console host: CPU" in out
    rows = [line.split() for line in out.splitlines() if "alone" in line or "under console load" in line]
    assert len(rows) >= 2 and all(r[-3] == "0" for r in rows[:2]), out      # no failed call in either round
    assert "errors none" in out and "month reports 0 " not in out and "wallboard events 0," not in out, out
    assert NETNS not in _namespaces()
