"""The leader role on a real Redis: one holder at a time, a dead holder
replaced within the lease, a holder that cannot renew stops its parts before
another can start them, failing parts restarted with backoff and reported."""

import asyncio
import time

from ivr import logs
from ivr.runtime.leader import LeaderRole, Part

LOG = logs.get("test")


class Recorder:
    """Parts that note when they run, per role."""

    def __init__(self) -> None:
        self.running: dict[str, int] = {}
        self.overlap = False

    def factory(self, who: str, fail_first: int = 0):
        failures = {"n": fail_first}

        async def make(token):
            async def work():
                if failures["n"] > 0:
                    failures["n"] -= 1
                    raise ConnectionError("redis restarting")    # e.g. ensure_group on a new leader
                self.running[who] = self.running.get(who, 0) + 1
                if sum(1 for v in self.running.values() if v) > 1:
                    self.overlap = True
                try:
                    await asyncio.Event().wait()
                finally:
                    self.running[who] -= 1

            async def cleanup():
                pass
            return [Part("capture", work)], cleanup
        return make


async def until(pred, timeout_s=15.0):
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_one_holder_and_a_dead_holder_is_replaced_within_the_lease(redis):
    rec = Recorder()
    a = LeaderRole(redis, rec.factory("a"), LOG, key="test:leader", ttl_s=2.0)
    b = LeaderRole(redis, rec.factory("b"), LOG, key="test:leader", ttl_s=2.0)
    ta = asyncio.create_task(a.run())
    await until(lambda: a.is_leader and rec.running.get("a") == 1)
    tb = asyncio.create_task(b.run())
    await asyncio.sleep(1.5)
    assert not b.is_leader and not rec.running.get("b")
    # A dies without a goodbye: its lock is not released, it just stops renewing
    a.lock.release = _never
    ta.cancel()
    await asyncio.gather(ta, return_exceptions=True)
    t0 = time.monotonic()
    await until(lambda: b.is_leader and rec.running.get("b") == 1)
    assert time.monotonic() - t0 < 2.0 + 1.5          # within the lease and one round
    assert not rec.overlap
    tb.cancel()
    await asyncio.gather(tb, return_exceptions=True)


async def _never():
    return None


async def test_a_holder_that_cannot_renew_stops_its_parts_before_the_lease_ends(redis, monkeypatch):
    rec = Recorder()
    a = LeaderRole(redis, rec.factory("a"), LOG, key="test:leader2", ttl_s=4.0)
    ta = asyncio.create_task(a.run())
    await until(lambda: a.is_leader and rec.running.get("a") == 1)

    async def unreachable():
        raise ConnectionError("Redis is failing over")
    monkeypatch.setattr(a.lock, "renew", unreachable)
    t0 = time.monotonic()
    await until(lambda: not a.is_leader and rec.running.get("a") == 0)
    stopped_after = time.monotonic() - t0
    assert stopped_after < 4.0                         # before another process could take the lock
    ttl_ms = await redis.pttl("test:leader2")
    assert ttl_ms > 0                                  # the lock had not even expired yet
    ta.cancel()
    await asyncio.gather(ta, return_exceptions=True)


async def test_a_failing_part_is_restarted_and_its_health_reported(redis, monkeypatch):
    monkeypatch.setattr("ivr.runtime.leader.RESTART_BACKOFF_S", (0.05, 0.1))
    rec = Recorder()
    a = LeaderRole(redis, rec.factory("a", fail_first=2), LOG, key="test:leader3", ttl_s=3.0)
    ta = asyncio.create_task(a.run())
    await until(lambda: rec.running.get("a") == 1)
    health = a.health()
    assert health["leader"] and health["parts"]["capture"]["state"] == "running"
    assert health["parts"]["capture"]["restarts"] == 2
    assert "redis restarting" in health["parts"]["capture"]["last_error"]
    from ivr.cli.engine import leader_line
    from ivr.services.status import leader_health
    # published each round for `ivr status` (a round is a second; a loaded CI machine took longer than 1.2 s)
    deadline = time.monotonic() + 10
    while "capture 运行 running, 2 次重启 restarts" not in (line := leader_line(await leader_health(redis))):
        assert time.monotonic() < deadline, line
        await asyncio.sleep(0.1)
    ta.cancel()
    await asyncio.gather(ta, return_exceptions=True)
    assert a.health()["parts"]["capture"]["state"] == "stopped"
