"""Missed calls survive the engine: the leader writes the summary of a caller
who left a queue when no live engine will (fact 11), exactly once."""

import json

import pytest

from ivr import logs
from ivr.callback.capture import MissedCallCapture
from ivr.callback.reconcile import QueueReconciler
from ivr.callback.store import CallbackStore
from ivr.calls.service import CallSummaries, read_summary
from ivr.clock import WallClock
from ivr.redisdb import keys

LOG = logs.get("test")


def ev(name, uid, **kw):
    return {"Event": name, "Uniqueid": uid, "CallerIDNum": "13900139000", "Queue": "general-q", **kw}


def reconciler(redis):
    return QueueReconciler(redis, clock=WallClock(), emergency_queues=frozenset({"emergency-q"}), log=LOG,
                           grace_s=0.0)


async def summaries(redis):
    return [read_summary(f) for _, f in await redis.xrange(keys.CALLS)]


async def test_caller_of_a_dead_engine_who_abandons_is_summarised_once(redis):
    dead = CallSummaries(redis, LOG, owner="engine-dead")       # its engine ran the flow, then died
    dead.started("100.1", 100.0)
    await dead.flush()
    await redis.delete(keys.engine_alive("engine-dead"))        # its heartbeat expired
    r1, r2 = reconciler(redis), reconciler(redis)               # e.g. an old and a new leader
    for r in (r1, r2):
        r.on_event(ev("QueueCallerJoin", "100.1"))
        r.on_event(ev("QueueCallerAbandon", "100.1", HoldTime="95"))
        r.on_event(ev("QueueCallerLeave", "100.1"))
    assert await r1.run_once() == 1 and await r2.run_once() == 0
    (s,) = await summaries(redis)
    assert s["uniqueid"] == "100.1" and s["queue_status"] == "ABANDONED" and s["hold_s"] == "95.0"
    assert s["wanted_person"] == "1" and s["number"] == "13900139000" and s["outcome"] == "engine_lost"
    assert await redis.hget(keys.CALLS_LIVE, "100.1") is None


async def test_caller_of_a_live_engine_is_left_to_it(redis):
    live = CallSummaries(redis, LOG, owner="engine-live")
    live.started("200.1", 200.0)
    await live.flush()                                          # registers the call and its heartbeat
    r = reconciler(redis)
    r.on_event(ev("QueueCallerJoin", "200.1"))
    r.on_event(ev("QueueCallerLeave", "200.1"))                 # a queue timeout: the flow goes on
    assert await r.run_once() == 0 and "200.1" in r.pending     # looked at again later
    live.add({"uniqueid": "200.1", "number": "13900139000", "queue_status": "TIMEOUT", "wanted_person": "1"})
    await live.flush()
    r.pending["200.1"].due = 0
    assert await r.run_once() == 0 and not r.pending
    assert len(await summaries(redis)) == 1                     # only the engine's own


async def test_answered_caller_and_emergency_in_the_dialplan_queue(redis):
    r = reconciler(redis)
    r.on_event(ev("QueueCallerJoin", "300.1"))
    r.on_event(ev("QueueCallerLeave", "300.1"))                 # before AgentConnect, as Asterisk 22 sends it
    r.on_event(ev("AgentConnect", "300.1"))
    r.on_event(ev("QueueCallerJoin", "300.2", Queue="emergency-q"))  # no engine at all: the dialplan queued it
    r.on_event(ev("QueueCallerAbandon", "300.2", Queue="emergency-q", HoldTime="30"))
    r.on_event(ev("QueueCallerLeave", "300.2", Queue="emergency-q"))
    assert await r.run_once() == 1
    (s,) = await summaries(redis)
    assert s["uniqueid"] == "300.2" and s["emergency"] == "1" and s["outcome"] == "dialplan_queue"


async def test_capture_records_the_reconciled_call(redis, capture):
    r = reconciler(redis)
    r.on_event(ev("QueueCallerJoin", "400.1"))
    r.on_event(ev("QueueCallerAbandon", "400.1", HoldTime="120"))
    r.on_event(ev("QueueCallerLeave", "400.1"))
    await r.run_once()
    await capture.run_once()
    rec = await capture.store.open_record("13900139000")
    assert rec["reason"] == "abandoned" and rec["kind"] == "ordinary"


async def test_engine_summaries_mark_and_register_calls(redis):
    s = CallSummaries(redis, LOG, owner="e1")
    s.started("500.1", 1.0)
    s.started("500.2", 2.0)
    s.add({"uniqueid": "500.2", "number": "1"})
    await s.flush()
    assert await redis.hgetall(keys.CALLS_LIVE) == {"500.1": "e1|1.000|"}
    assert await redis.get(keys.call_summarised("500.2")) == "engine"
    assert await redis.exists(keys.engine_alive("e1"))
    assert json.loads((await redis.xrange(keys.CALLS))[0][1]["j"])["uniqueid"] == "500.2"


async def test_summaries_of_a_later_batch_leave_calls_live_in_order_and_marked_for_a_day(redis):
    s = CallSummaries(redis, LOG, owner="e1")
    s.started("500.1", 1.0, "13900139000")
    s.started("500.3", 3.0)
    await s.flush()
    assert set(await redis.hkeys(keys.CALLS_LIVE)) == {"500.1", "500.3"}
    for uid in ("500.1", "", "500.2"):          # one without a uniqueid: written, nothing to mark
        s.add({"uniqueid": uid, "number": "13900139000"})
    await s.flush()
    assert await redis.hkeys(keys.CALLS_LIVE) == ["500.3"]
    assert [json.loads(f["j"])["uniqueid"] for _, f in await redis.xrange(keys.CALLS)] == ["500.1", "", "500.2"]
    for uid in ("500.1", "500.2"):
        assert await redis.get(keys.call_summarised(uid)) == "engine"
        assert 0 < await redis.ttl(keys.call_summarised(uid)) <= keys.CALL_SUMMARISED_TTL_S
    assert await redis.get(keys.call_summarised("")) is None


@pytest.fixture
async def capture(redis):
    from tests.test_callbacks import ALL_DAY, TZ

    cap = MissedCallCapture(redis, CallbackStore(redis), ALL_DAY, TZ, LOG)
    await cap.ensure_group()
    return cap


async def test_sweep_summarises_calls_of_dead_engines_that_left_no_trace(redis):
    dead = CallSummaries(redis, LOG, owner="engine-dead")
    for uid, number in (("600.1", "13900000061"), ("600.2", "13900000062"), ("600.3", "13900000063")):
        dead.started(uid, 600.0, number)
    await dead.flush()
    await redis.delete(keys.engine_alive("engine-dead"))
    r = QueueReconciler(redis, clock=WallClock(), emergency_queues=frozenset(), log=LOG, grace_s=0.0,
                        waiting=lambda: {"600.2"})                  # 600.2 still waits in a queue
    r.on_event(ev("AgentConnect", "600.3"))                         # 600.3 was answered
    assert await r.sweep() == 0                                     # judged on the second look only
    assert await r.sweep() == 1
    (s,) = await summaries(redis)
    assert s["uniqueid"] == "600.1" and s["number"] == "13900000061" and s["wanted_person"] == "1"
    assert await redis.hkeys(keys.CALLS_LIVE) == ["600.2"]
    r.waiting = lambda: None                                        # AMI not in sync: no judgement
    assert await r.sweep() == 0
