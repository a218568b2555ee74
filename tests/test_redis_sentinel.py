"""Redis as a Sentinel-managed set of real redis-server processes (master,
replica, three sentinels): the engine's client follows the master through a
failover, and what must not be lost is acknowledged only once the replica has
it (WAIT), so a failover loses none of it."""

import asyncio
import signal
import time

import pytest

from ivr import logs
from ivr.callback.capture import MissedCallCapture
from ivr.callback.store import CallbackStore
from ivr.errors import NotReplicated
from ivr.redisdb.durable import Replication
from ivr.redisdb.server import connect, parse_sentinel_url
from ivr.rehearsal.sim.sentinel_set import SentinelSet
from tests.test_callbacks import ALL_DAY, TZ, add_call

LOG = logs.get("test")


def test_sentinel_urls():
    t = parse_sentinel_url("redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/mymaster/2")
    assert t.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26380)) and t.service == "mymaster" and t.db == 2
    assert parse_sentinel_url("redis+sentinel://:pw@h:1/s").password == "pw"
    for bad in ("redis+sentinel://h/s", "redis+sentinel://h:1/", "redis+sentinel://h:1/s/x"):
        with pytest.raises(ValueError):
            parse_sentinel_url(bad)


@pytest.fixture(scope="module")
def sentinel_set(tmp_path_factory):
    s = SentinelSet(tmp_path_factory.mktemp("sentinel")).start()
    yield s
    s.stop()


@pytest.mark.slow
async def test_missed_calls_acknowledged_by_the_replica_survive_a_failover(sentinel_set):
    redis = connect(sentinel_set.url)
    try:
        await redis.flushdb()
        cap = MissedCallCapture(redis, CallbackStore(redis), ALL_DAY, TZ, LOG)
        await cap.ensure_group()
        t = time.time() - 600
        for i in range(50):
            await add_call(redis, f"1370000{i:04d}", t + i)
        await cap.run_once()                                   # acknowledged after WAIT 1
        assert (await cap.store.counts())["open"] == 50
        killed, took = await asyncio.to_thread(sentinel_set.kill_master)
        deadline = time.monotonic() + 30
        while True:                                            # the client finds the new master by itself
            try:
                counts = await cap.store.counts()
                break
            except Exception:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
        assert counts["open"] == 50                            # none lost
        assert (await cap.store.audit.verify()).ok
        assert sentinel_set.master_name() != killed and took < 30
    finally:
        await redis.aclose()


@pytest.mark.slow
async def test_a_write_the_replica_did_not_take_is_not_acknowledged(sentinel_set):
    assert await asyncio.to_thread(sentinel_set.wait_ready)      # after the failover above: a replica again
    redis = connect(sentinel_set.url)
    replica = sentinel_set.procs[next(n for n in ("a", "b") if n != sentinel_set.master_name())]
    try:
        rep = Replication(redis)
        deadline = time.monotonic() + 30
        while await rep.replicas() < 1:                        # the master sees its replica (again)
            assert time.monotonic() < deadline, "the master never saw its replica"
            rep._checked = -60.0
            await asyncio.sleep(0.2)
        while True:         # the replica is there and, once its resync after the failover is done, acknowledges
            await redis.set("probe", "1")
            try:
                await rep.wait()
                break
            except NotReplicated:                               # still loading the master's copy (a busy box)
                assert time.monotonic() < deadline, "the replica never acknowledged a write"
                rep._checked = -60.0
        replica.send_signal(signal.SIGSTOP)
        await redis.set("probe", "2")
        with pytest.raises(NotReplicated):
            await rep.wait()
    finally:
        replica.send_signal(signal.SIGCONT)
        await redis.aclose()
