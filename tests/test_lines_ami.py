"""Trunk lines over AMI, against the simulated Asterisk over a real socket and
a real Redis: the leader's AMI link reads the lines in use and the dialplan's
limit, publishes them with the live model, and says why when it cannot; an
attempt the dialplan refused becomes exactly one missed call, whether AMI
showed it as it happened or it was left in the PBX's own record while no
engine held the link; a citizen refused twice has one callback."""

import asyncio
import datetime as dt
import json
import time
from zoneinfo import ZoneInfo

import pytest

from ivr import logs
from ivr.admission.lines import PbxLines
from ivr.ami.controller import AmiController
from ivr.ami.lines import LineWatch
from ivr.ami.model import LiveModel
from ivr.callback.blocked import BlockedAttempts
from ivr.callback.capture import MissedCallCapture
from ivr.callback.policy import Policy
from ivr.callback.store import CallbackStore
from ivr.clock import WallClock
from ivr.redisdb import keys
from ivr.rehearsal.sim.ami_server import SimAmiServer
from tests.lines_pbx import lines_pbx
from tests.test_ami_controller import until

LOG = logs.get("test")
TZ = ZoneInfo("Asia/Shanghai")
ALL_DAY = Policy(calling_hours=(dt.time(0), dt.time(23, 59, 59)))
PBX = PbxLines("main", 30, 2, 6)


class Stack:
    def __init__(self, redis, pbx, server, controller):
        self.redis, self.pbx, self.server, self.controller = redis, pbx, server, controller
        self.watch = LineWatch(controller, now=time.time, log=LOG, config=lambda: PBX, every_s=0.05)
        self.blocked = BlockedAttempts(redis, controller, clock=WallClock(), log=LOG, sweep_s=3600)
        controller.listeners.append(self.blocked.on_event)
        self.capture = MissedCallCapture(redis, CallbackStore(redis), ALL_DAY, TZ, LOG)

    async def published_lines(self) -> dict:
        raw = await self.redis.get(keys.LIVE)
        return json.loads(raw)["lines"] if raw else {}

    async def record(self) -> int:
        """One round of the blocked-attempts part and of the capture."""
        wrote = await self.blocked.run_once()
        await self.capture.ensure_group()
        await self.capture.run_once(now=time.time())
        return wrote


async def _stack(redis, pbx):
    server = SimAmiServer(pbx)
    await server.start()
    controller = AmiController(host="127.0.0.1", port=server.port, username="ivr", secret="ivrsecret",
                               model=LiveModel(emergency_queues=["emergency-q"]), redis=redis, log=LOG,
                               publish_s=0.05, ping_s=0.5)
    return Stack(redis, pbx, server, controller)


@pytest.fixture
async def lines(redis):
    s = await _stack(redis, lines_pbx(limit="28"))
    await s.controller.start()
    await asyncio.wait_for(s.controller.ready.wait(), 5)
    deadline = time.monotonic() + 5
    while s.controller.peer_trunk is None:      # read once per login, after the resync (its own Getvar)
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    yield s
    await s.controller.stop()
    await s.server.stop()


async def test_lines_in_use_are_read_split_and_published(lines):
    s = lines
    s.pbx.in_use = 7
    for seat in ("101", "102", "109"):
        s.pbx.action({"Action": "QueuePause", "Interface": f"Local/{seat}@ivr-seats/n", "Paused": "true"})
    s.pbx.join("general-q", "13800000001")
    s.pbx.join("general-q", "13800000002")
    s.server.flush()
    await until(lambda: len(s.controller.model.waiting) == 2)
    reading = await s.watch.read_once()
    assert reading is not None and (reading.in_use, reading.limit, reading.error) == (7, 28, "")
    s.controller.model.callbacks_on_line = 1
    await asyncio.sleep(0.2)                                   # the model is published every 0.05 s
    got = await s.published_lines()
    assert got["known"] and got["reason"] == ""
    assert (got["pbx"], got["in_use"], got["total"], got["limit"], got["free"]) == ("main", 7, 30, 28, 21)
    assert (got["in_flows"], got["waiting"], got["talking"], got["callbacks"]) == (4, 2, 0, 1)
    asked = [a for a in s.server.actions if a.get("Action") == "Getvar" and a["Variable"] != "IVR_PEER_SECRET"]
    assert {a["Variable"] for a in asked} == {"GROUP_COUNT(trunk@ivr)", "IVR_LINES"}
    assert all("Channel" not in a for a in asked)              # a function on manager.c's dummy channel


async def test_a_count_that_cannot_be_read_says_why_and_recovers(lines):
    s = lines
    s.server.fail_actions["getvar"] = 1                        # the IVR_LINES read
    reading = await s.watch.read_once()
    assert reading is not None and "Getvar IVR_LINES: Simulated failure" in reading.error
    await asyncio.sleep(0.2)
    got = await s.published_lines()
    assert not got["known"] and "cannot be read: Getvar IVR_LINES: Simulated failure" in got["reason"]
    assert got["in_use"] is None and got["free"] is None
    reading = await s.watch.read_once()
    assert reading is not None and reading.error == "" and (reading.in_use, reading.limit) == (0, 28)
    s.server.fail_actions["getvar"] = 1                        # the count (the limit is not due again)
    reading = await s.watch.read_once()
    assert reading is not None and "Getvar GROUP_COUNT(trunk@ivr): Simulated failure" in reading.error
    assert reading.limit == 28
    s.pbx.in_use = 3
    reading = await s.watch.read_once()
    assert reading is not None and reading.error == "" and reading.in_use == 3
    await s.server.stop()                                      # the PBX restarts: the link is down
    await until(lambda: not s.controller.ready.is_set())
    reading = await s.watch.read_once()
    assert reading is not None and "the AMI link is down" in reading.error
    await s.server.start()
    await asyncio.wait_for(s.controller.ready.wait(), 10)
    s.pbx.globals["IVR_LINES"] = "25"                          # re-read after every login
    reading = await s.watch.read_once()
    assert reading is not None and (reading.in_use, reading.limit) == (3, 25)


async def test_a_dialplan_without_lines_is_not_read_as_zero_in_use(redis):
    s = await _stack(redis, lines_pbx(limit=None))            # IVR_LINES not in [globals]: an older dialplan
    await s.controller.start()
    try:
        await asyncio.wait_for(s.controller.ready.wait(), 5)
        await s.watch.read_once()
        f = s.controller.model.lines(time.time())
        assert not f["known"] and "has no IVR_LINES in [globals]" in f["reason"] and f["in_use"] is None
    finally:
        await s.controller.stop()
        await s.server.stop()


async def test_a_refused_attempt_is_exactly_one_missed_call_and_twice_is_merged(lines, redis):
    s = lines
    first = s.pbx.refuse("13900000003", at=time.time() - 60)
    s.server.flush()
    await until(lambda: first in s.blocked.pending)
    assert await s.record() == 1
    assert s.pbx.astdb == {}                                   # recorded: the PBX's record is deleted
    store = CallbackStore(redis)
    rec = await store.open_record("13900000003")
    assert rec is not None and (rec["reason"], rec["kind"], rec["calls"]) == ("lines_full", "ordinary", "1")
    assert await s.record() == 0                               # nothing more: exactly once
    s.pbx.refuse("13900000003")                                # redials, refused again
    s.server.flush()
    await until(lambda: bool(s.blocked.pending))
    assert await s.record() == 1
    rec = await store.open_record("13900000003")
    assert rec is not None and rec["calls"] == "2"             # merged into the one callback
    assert await redis.get(keys.lines_blocked("main")) == "2"
    assert await redis.xlen(keys.CALLS) == 2


async def test_an_attempt_refused_while_no_engine_held_the_link_is_recorded_once(redis):
    pbx = lines_pbx(limit="28")
    s = await _stack(redis, pbx)
    # the dialplan refused two callers while nobody was logged in: no event, only the PBX's record
    lost = pbx.refuse("13700000001", at=time.time() - 600, event=False)
    pbx.refuse("13700000002", at=time.time() - 300, event=False)
    await s.controller.start()
    try:
        await asyncio.wait_for(s.controller.ready.wait(), 5)
        assert await s.record() == 2                           # read at login (DBGetTree)
        assert pbx.astdb == {}
        store = CallbackStore(redis)
        for n in ("13700000001", "13700000002"):
            rec = await store.open_record(n)
            assert rec is not None and rec["reason"] == "lines_full" and rec["calls"] == "1"
        # the same attempt seen again both ways (an event late, the record put back): still once
        pbx.astdb[f"/ivr_blocked/{lost}"] = f"{int(time.time() - 600)}|13700000001"
        s.blocked.on_event({"Event": "UserEvent", "UserEvent": "IvrBlocked", "Uniqueid": lost,
                            "Number": "13700000001", "At": str(int(time.time() - 600))})
        await s.blocked.sweep()
        assert await s.record() == 0
        assert pbx.astdb == {} and await redis.xlen(keys.CALLS) == 2
        rec = await store.open_record("13700000001")
        assert rec is not None and rec["calls"] == "1"
    finally:
        await s.controller.stop()
        await s.server.stop()


async def test_a_record_that_cannot_be_deleted_yet_is_deleted_later(lines, redis):
    s = lines
    s.pbx.refuse("13600000001")
    s.server.flush()
    await until(lambda: bool(s.blocked.pending))
    s.server.fail_actions["dbdel"] = 1
    assert await s.record() == 1
    assert len(s.pbx.astdb) == 1 and s.blocked.undeleted       # kept: the next round deletes it
    assert await s.record() == 0
    assert s.pbx.astdb == {} and not s.blocked.undeleted
