"""A call's arrival lookups (``ivr.calls.arrival``) against a real Redis: the
caller's open callback and where it stands, and the previous call's age,
answered for every call that arrives together in one round trip, each call its
own answer; read fresh from Redis each time (opened a moment ago: found;
closed: not); Redis unavailable: the calls go on without them."""

import asyncio
import time

from ivr import logs
from ivr.callback.store import CallbackStore
from ivr.calls.arrival import BATCH_MAX, LAST_CALL_TTL_S, UNKNOWN, Arrival, ArrivalLookups
from ivr.redisdb import keys
from ivr.redisdb.server import connect
from ivr.rehearsal.bench.servers import free_port

LOG = logs.get("test")


async def _open(store, number, now, *, kind="ordinary", due_in_s=0.0):
    """An open callback of ``number``, due in ``due_in_s`` (0: due now)."""
    await store.record(store.record_args(
        number=number, now=now, started=now - 60, kind=kind, reason="abandoned", flow="main", step="general_queue",
        wait_s=60.0, message="", not_before=now + due_in_s,
        deadlines={"emergency": now + 1800, "courtesy": now + 3600, "ordinary": now + 86400}, misdial=False))


async def _ahead_one_by_one(redis, number):
    """The callbacks ahead of ``number``'s, read with plain commands one at a
    time (the way the engine read them before; the answer to compare with)."""
    if not await redis.exists(keys.callback_open(number)):
        return None
    rank = await redis.zrank(keys.CALLBACK_READY, number)
    if rank is not None:
        return rank
    pending = await redis.zrank(keys.CALLBACK_PENDING, number)
    return await redis.zcard(keys.CALLBACK_READY) + (pending or 0)


async def test_calls_arriving_together_share_round_trips_and_each_gets_its_own_answer(redis):
    store, now = CallbackStore(redis), time.time()
    registered = {f"1390000{i:04d}": (i % 3 == 0) for i in range(BATCH_MAX + 44)}
    for i, number in enumerate(n for n, r in registered.items() if r):
        # some due now (moved to the ready line below), emergencies among them; the rest later
        await _open(store, number, now, kind="emergency" if i % 7 == 0 else "ordinary",
                    due_in_s=0.0 if i % 2 == 0 else 600.0 + i)
    await store.claim(now=now + 1, lease_s=60, owner="test", count=0)
    assert await redis.zcard(keys.CALLBACK_READY) and await redis.zcard(keys.CALLBACK_PENDING)
    expected = [await _ahead_one_by_one(redis, n) for n in registered]

    arrivals = ArrivalLookups(redis, LOG)
    got = await asyncio.gather(*(arrivals.lookup(n, now, history=False, registration=True) for n in registered))

    assert [a.registered_ahead for a in got] == expected
    assert sorted(x for x in expected if x is not None) == list(range(sum(registered.values())))
    assert all(a.last_call_age_s is None for a in got)
    assert arrivals.round_trips == 2                # BATCH_MAX calls, then the other 44


async def test_registered_a_moment_ago_is_found_and_closed_is_not(redis):
    store, now = CallbackStore(redis), time.time()
    arrivals = ArrivalLookups(redis, LOG)
    number = "13912340000"
    assert await arrivals.lookup(number, now, history=False, registration=True) == UNKNOWN
    await _open(store, "13912340001", now - 10)      # another citizen, ahead in the ready line (earlier deadline)
    await _open(store, number, now)
    await store.claim(now=now + 1, lease_s=60, owner="test", count=0)
    assert (await arrivals.lookup(number, now, history=False, registration=True)).registered_ahead == 1
    ok, _ = await store.close(number, now=now + 2, reason="cancelled: test")
    assert ok
    assert await arrivals.lookup(number, now, history=False, registration=True) == UNKNOWN
    # the other citizen's stays, and the line closed up
    assert (await arrivals.lookup("13912340001", now, history=False, registration=True)).registered_ahead == 0


async def test_the_previous_call_is_recorded_and_its_age_returned(redis):
    arrivals = ArrivalLookups(redis, LOG)
    number = "13912340000"
    first = await arrivals.lookup(number, 1_800_000_000.0, history=True, registration=True)
    assert first == UNKNOWN
    second = await arrivals.lookup(number, 1_800_000_090.5, history=True, registration=False)
    assert second == Arrival(last_call_age_s=90.5)
    assert await redis.get(keys.last_call(number)) == "1800000090.500"
    assert 0 < await redis.ttl(keys.last_call(number)) <= LAST_CALL_TTL_S
    # registration only: the history is neither read nor written
    await arrivals.lookup(number, 1_800_000_200.0, history=False, registration=True)
    assert await redis.get(keys.last_call(number)) == "1800000090.500"


async def test_nothing_asked_costs_no_round_trip(redis):
    arrivals = ArrivalLookups(redis, LOG)
    assert await arrivals.lookup("13912340000", 1.0, history=False, registration=False) == UNKNOWN
    assert await arrivals.lookup("", 1.0, history=True, registration=True) == UNKNOWN
    assert arrivals.round_trips == 0


async def test_a_call_that_stops_waiting_takes_no_one_elses_answer(redis):
    store, now = CallbackStore(redis), time.time()
    await _open(store, "13912340002", now)
    arrivals = ArrivalLookups(redis, LOG)
    gone = asyncio.create_task(arrivals.lookup("13912340001", now, history=False, registration=True))
    stays = asyncio.create_task(arrivals.lookup("13912340002", now, history=False, registration=True))
    await asyncio.sleep(0)                           # both wait for the same round trip
    gone.cancel()
    assert (await stays).registered_ahead == 0
    assert gone.cancelled() and arrivals.round_trips == 1


async def test_redis_unavailable_the_calls_go_on_without_their_lookups():
    down = connect(f"redis://127.0.0.1:{free_port()}/0")
    try:
        arrivals = ArrivalLookups(down, LOG)
        got = await asyncio.gather(*(arrivals.lookup(f"1390000000{i}", 1.0, history=True, registration=True)
                                     for i in range(3)))
        assert got == [UNKNOWN] * 3 and arrivals.round_trips == 0
        # and the next call tries again
        assert await arrivals.lookup("13900000009", 2.0, history=False, registration=True) == UNKNOWN
    finally:
        await down.aclose()


async def test_close_answers_whoever_still_waits(redis):
    arrivals = ArrivalLookups(redis, LOG)
    waiting = asyncio.create_task(arrivals.lookup("13912340000", 1.0, history=False, registration=True))
    await asyncio.sleep(0)                           # waiting; its round trip not sent yet
    await arrivals.close()
    assert await waiting == UNKNOWN
