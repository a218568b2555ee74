"""Missed calls and callbacks on a real Redis: capture from the call summaries,
merging, closing on a later call, atomic claims under competing processes,
recovery of a dead claimer, and the scheduler dialling over the simulated AMI."""

import asyncio
import datetime as dt
import json
import multiprocessing as mp
import time
from zoneinfo import ZoneInfo

import pytest

from ivr import logs
from ivr.callback.capture import MissedCallCapture
from ivr.callback.policy import Policy
from ivr.callback.scheduler import CallbackScheduler
from ivr.callback.store import CallbackStore
from ivr.redisdb import keys
from ivr.redisdb.server import connect
from tests.test_ami_controller import ami, until  # noqa: F401 (ami: the simulated PBX and a controller)

TZ = ZoneInfo("Asia/Shanghai")
LOG = logs.get("test")
ALL_DAY = Policy(calling_hours=(dt.time(0), dt.time(23, 59, 59)))


async def add_call(redis, number, started, **kw):
    s = {"uniqueid": f"{started}.1", "number": number, "flow": "main", "started": f"{started:.3f}",
         "ended": f"{started + 60:.3f}", "wanted_person": "1", "queue_status": "ABANDONED", "hold_s": "40",
         "emergency": "0", "callback_accepted": "0", "sent_to_message": "0", "message": "",
         "last_step": "general_queue", **kw}
    await redis.xadd(keys.CALLS, {"j": json.dumps(s)})


@pytest.fixture
async def capture(redis):
    store = CallbackStore(redis)
    cap = MissedCallCapture(redis, store, ALL_DAY, TZ, LOG, estimated_wait=lambda: 120.0)
    await cap.ensure_group()
    return cap


async def test_repeated_attempts_merge_into_one_open_callback(redis, capture):
    t = time.time() - 3600
    await add_call(redis, "13800138000", t)
    await add_call(redis, "13800138000", t + 300, message="msg-2")
    await add_call(redis, "13800138000", t + 600, queue_status="TIMEOUT", emergency="1")
    await add_call(redis, "13900139000", t + 10, hold_s="2")                  # a misdial
    assert await capture.run_once() == 4
    rec = await capture.store.open_record("13800138000")
    assert rec["calls"] == "3" and float(rec["first_at"]) == pytest.approx(t)   # earliest kept for the deadline
    assert rec["message"] == "msg-2" and rec["kind"] == "emergency"             # latest message; upgraded
    assert float(rec["deadline"]) == pytest.approx(t + 7200)
    assert await capture.store.open_record("13900139000") is None              # recorded, not called back
    counts = await capture.store.counts()
    assert counts["open"] == 1 and counts["closed"] == 1
    kinds = [e["kind"] for _, e in await capture.store.audit.entries()]
    assert kinds == ["recorded", "merged", "merged", "recorded_misdial"]
    assert all("13800138000" not in json.dumps(e) for _, e in await capture.store.audit.entries())  # masked


async def test_reached_on_a_later_call_closes_it(redis, capture):
    t = time.time() - 600
    await add_call(redis, "13700137000", t)
    await add_call(redis, "13700137000", t + 100, queue_status="ANSWERED")
    await capture.run_once()
    assert await capture.store.open_record("13700137000") is None
    closed = await capture.store.closed_record("1")
    assert closed["closed_reason"] == "reached_later"


async def test_replayed_summaries_are_not_counted_twice(redis, capture):
    t = time.time() - 600
    await add_call(redis, "13600136000", t)
    await capture.run_once()
    # a crash before the acknowledgement: the same entries come again
    entries = [(eid, json.loads(f["j"])) for eid, f in await redis.xrange(keys.CALLS)]
    await capture.handle(entries)
    rec = await capture.store.open_record("13600136000")
    assert rec["calls"] == "1"
    assert [e["kind"] for _, e in await capture.store.audit.entries()] == ["recorded", "replayed"]


async def test_order_emergency_first_then_deadline(redis, capture):
    t = time.time() - 3000
    await add_call(redis, "13500000001", t)                                   # ordinary, oldest
    await add_call(redis, "13500000002", t + 100, queue_status="WITHDRAW")     # courtesy: shorter deadline
    await add_call(redis, "13500000003", t + 200, emergency="1")
    capture.estimated_wait = lambda: 0.0
    await capture.run_once()
    _, got = await capture.store.claim(now=time.time(), lease_s=60, owner="t", count=3)
    assert got == ["13500000003", "13500000002", "13500000001"]


async def test_courtesy_callback_waits_for_its_place_in_line(redis, capture):
    now = time.time()
    await add_call(redis, "13500000004", now, queue_status="WITHDRAW")
    await capture.run_once()                                    # estimated wait: 120 s
    assert (await capture.store.claim(now=now + 60, lease_s=60, owner="t", count=5))[1] == []
    assert (await capture.store.claim(now=now + 121, lease_s=60, owner="t", count=5))[1] == ["13500000004"]


async def test_claim_of_a_dead_process_is_recovered(redis, capture):
    await add_call(redis, "13400000001", time.time() - 100)
    await capture.run_once()
    now = time.time()
    _, got = await capture.store.claim(now=now, lease_s=180, owner="dead", count=1)
    assert got == ["13400000001"]
    assert (await capture.store.claim(now=now + 100, lease_s=180, owner="alive", count=1)) == (0, [])
    recovered, got = await capture.store.claim(now=now + 181, lease_s=180, owner="alive", count=1)
    assert recovered == 1 and got == ["13400000001"]
    # the dead process's late report is refused: it no longer owns the callback
    assert await capture.store.finish("13400000001", "dead", outcome="reached", seat="s", now=now + 200,
                                      next_at=None, close_reason="reached") == "not_owner"


def _claimer(url: str, owner: str, rounds: int, out) -> None:
    async def go():
        store = CallbackStore(connect(url))
        got = []
        for _ in range(rounds):
            _, numbers = await store.claim(now=time.time(), lease_s=600, owner=owner, count=7)
            got += numbers
            for n in numbers:          # each claimed callback is "dialled" and fails: rescheduled in an hour
                await store.finish(n, owner, outcome="no_answer", seat="s", now=time.time(),
                                   next_at=time.time() + 3600)
        await store.redis.aclose()
        return got
    out.put((owner, asyncio.run(go())))


async def test_competing_processes_dial_each_callback_once(redis, redis_url, capture):
    t = time.time() - 1000
    for i in range(300):
        await add_call(redis, f"1370000{i:04d}", t + i)
    await capture.run_once()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(redis_url, f"p{i}", 15, out)) for i in range(4)]
    for p in procs:
        p.start()
    results = [await asyncio.to_thread(out.get, True, 60) for _ in procs]
    for p in procs:
        p.join(10)
    claimed = [n for _, got in results for n in got]
    assert len(claimed) == 300 and len(set(claimed)) == 300
    assert sum(1 for _, got in results if got) >= 2           # the work really was shared
    counts = await capture.store.counts()
    assert counts["pending"] == 300 and counts["ready"] == 0 and counts["assigned"] == 0


# -- the scheduler over the simulated AMI ------------------------------------------

@pytest.fixture
async def scheduler(ami, redis, capture):
    pbx, server, controller = ami
    sched = CallbackScheduler(store=capture.store, controller=controller, policy=ALL_DAY, tz=TZ,
                              queues={"general": "general-q"}, log=LOG, owner="sched-1")
    return pbx, server, controller, sched


async def _one_missed_call(redis, capture, number="13300133000"):
    await add_call(redis, number, time.time() - 300)
    await capture.run_once()


async def test_callback_reached_seat_first_then_citizen(scheduler, redis, capture):
    pbx, server, controller, sched = scheduler
    await _one_missed_call(redis, capture)
    assert await sched.tick() == 1
    orig = pbx.originated[-1]
    assert orig["Channel"] in ("Local/101@ivr-seats/n", "Local/102@ivr-seats/n")   # a seat first, never 109
    assert orig["Exten"] == "13300133000" and orig["Context"] == "ivr-callback"
    assert orig["CallerID"] == '"12345回拨" <12345>' and "IVR_CB_ID=1" in orig["Variable"]
    pbx.originate_result(orig, True)
    pbx.user_event("IvrCallback", orig["Channel"], Id="1", DialStatus="ANSWER")
    server.flush()
    att = next(iter(sched.active.values()))
    assert await asyncio.wait_for(att.done, 5) == "reached"
    closed = await capture.store.closed_record("1")
    assert closed["closed_reason"] == "reached" and closed["last_seat"] == orig["Channel"]
    kinds = [e["kind"] for _, e in await capture.store.audit.entries()]
    assert kinds == ["recorded", "assigned", "attempt", "closed"]
    assert (await capture.store.audit.verify()).ok


async def test_no_answer_is_rescheduled_and_seat_no_answer_is_not_an_attempt(scheduler, redis, capture):
    pbx, server, controller, sched = scheduler
    await _one_missed_call(redis, capture)
    await sched.tick()
    orig = pbx.originated[-1]
    pbx.originate_result(orig, False, reason=3)            # the seat did not pick up
    server.flush()
    await asyncio.wait_for(next(iter(sched.active.values())).done, 5)
    rec = await capture.store.open_record("13300133000")
    assert rec["attempts"] == "0" and rec["last_outcome"] == "seat_no_answer"
    await sched.tick()
    orig = pbx.originated[-1]
    pbx.originate_result(orig, True)
    pbx.user_event("IvrCallback", orig["Channel"], Id="1", DialStatus="NOANSWER")
    server.flush()
    await asyncio.wait_for(next(iter(sched.active.values())).done, 5)
    rec = await capture.store.open_record("13300133000")
    assert rec["attempts"] == "1" and rec["state"] == "open"
    score = await redis.zscore(keys.CALLBACK_PENDING, "13300133000")
    assert score == pytest.approx(time.time() + 600, abs=5)       # +10 min


async def test_no_callback_while_citizens_wait_live_or_only_reserved_seats_are_free(scheduler, redis, capture):
    pbx, server, controller, sched = scheduler
    await _one_missed_call(redis, capture)
    for i in range(6):                                     # 6 waiting > max_waiting 5
        pbx.join("general-q", f"1380000{i:04d}")
    server.flush()
    await until(lambda: len(controller.model.waiting) == 6)
    assert await sched.tick() == 0 and pbx.originated == []
    for q in pbx.queues.values():
        for e in list(q.entries):
            pbx.abandon(e.uniqueid)
    for s in ("101", "102"):
        pbx.action({"Action": "QueuePause", "Interface": f"Local/{s}@ivr-seats/n", "Paused": "true"})
    server.flush()
    await until(lambda: not controller.model.waiting and controller.model.seats["Local/102@ivr-seats/n"].paused)
    assert await sched.tick() == 0 and pbx.originated == []     # 109 is idle but reserved
    assert (await capture.store.counts())["ready"] == 1          # nothing lost, nothing claimed



async def test_scheduler_killed_mid_assignment_loses_nothing_and_dials_nobody_twice_at_once(ami, redis, redis_url,
                                                                                         capture):
    import os
    import signal
    import subprocess
    import sys

    from tests.scheduler_proc import scheduler as make_scheduler

    pbx, server, controller = ami
    t = time.time() - 600
    for i, n in enumerate(("13200000001", "13200000002", "13200000003")):
        await add_call(redis, n, t + i)
    await capture.run_once()
    proc = subprocess.Popen([sys.executable, "-m", "tests.scheduler_proc", redis_url, str(server.port), "A"],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "IVR_LOG_LEVEL": "error"})
    try:
        assert (await asyncio.to_thread(proc.stdout.readline)).strip() == "ready"
        await until(lambda: len(pbx.originated) == 2, 10)      # two idle seats: two callbacks under way
        first, second = pbx.originated
        pbx.originate_result(first, True)
        pbx.user_event("IvrCallback", first["Channel"], Id=first["Variable"].split(",")[0].split("=")[1],
                       DialStatus="ANSWER")
        server.flush()

        async def first_closed():
            while await capture.store.open_record(first["Exten"]) is not None:
                await asyncio.sleep(0.05)
        await asyncio.wait_for(first_closed(), 10)
    finally:
        proc.send_signal(signal.SIGKILL)                        # mid-assignment: `second` is ringing
        proc.wait(10)
        proc.stdout.close()
    assert (await capture.store.open_record(second["Exten"]))["state"] == "assigned"
    b = make_scheduler(redis, controller, "B")
    await b.tick()                                              # A's lease still runs: not dialled again yet
    dialled = [o["Exten"] for o in pbx.originated]
    assert dialled.count(second["Exten"]) == 1 and len(pbx.originated) == 3   # only the third one
    await asyncio.sleep(2.1)
    await b.tick()                                              # the lease ran out: recovered and dialled
    dialled = [o["Exten"] for o in pbx.originated]
    assert dialled.count(first["Exten"]) == 1                   # reached before the crash: never again
    assert dialled.count(second["Exten"]) == 2                  # once by A, once by B after A died
    rec = await capture.store.open_record(second["Exten"])
    assert rec["recovered"] == "1" and rec["owner"] == "B"
    counts = await capture.store.counts()
    assert counts["open"] == 2 and counts["closed"] == 1        # nothing lost


async def test_key_pressed_while_waiting_takes_the_caller_out_of_line_for_a_callback(ami):
    from ivr.callback.in_queue import InQueueOffer

    pbx, server, controller = ami
    InQueueOffer(controller, digit="1", emergency_queues=frozenset({"emergency-q"}), log=LOG)
    for s in ("101", "102", "109"):
        pbx.action({"Action": "QueuePause", "Interface": f"Local/{s}@ivr-seats/n", "Paused": "true"})
    ordinary = pbx.join("general-q", "13800000010")
    urgent = pbx.join("emergency-q", "13800000011", priority=10)
    server.flush()
    await until(lambda: len(controller.model.waiting) == 2)
    pbx.dtmf(ordinary.uniqueid, "2")            # not the callback key
    pbx.dtmf(urgent.uniqueid, "1")              # emergencies stay in line
    pbx.dtmf(ordinary.uniqueid, "1")
    server.flush()
    await until(lambda: ordinary.uniqueid not in controller.model.waiting)
    assert pbx.withdrawn == {ordinary.uniqueid: "callback-offered"}
    q = controller.model.snapshot(time.time())["queues"]["general-q"]
    assert (q["withdrawn"], q["abandoned"]) == (1, 0)
    assert urgent.uniqueid in controller.model.waiting


async def test_staff_commands_list_cancel_report_csv(redis, redis_url, capture, project_home, tmp_path):
    import os
    import subprocess
    import sys

    now = time.time()
    await add_call(redis, "13100000001", now - 120)
    await add_call(redis, "13100000002", now - 60, emergency="1")
    await capture.run_once()
    env = {**os.environ, "IVR_HOME": str(project_home), "IVR_REDIS_URL": redis_url, "IVR_DATA_DIR": str(tmp_path)}

    def ivr(*args):
        return subprocess.run([sys.executable, "-m", "ivr", *args], env=env, capture_output=True, text=True, timeout=60)
    out = (await asyncio.to_thread(ivr, "callbacks", "list")).stdout
    rows = [line for line in out.splitlines() if "131******0" in line]
    assert len(rows) == 2 and "紧急" in rows[0]                 # emergency first
    assert "13100000001" not in out and "open 2" in out
    res = await asyncio.to_thread(ivr, "callbacks", "cancel", "1", "--reason", "市民来电已解决")
    assert res.returncode == 0, res.stderr
    again = await asyncio.to_thread(ivr, "callbacks", "cancel", "1", "--reason", "x")
    assert again.returncode == 1 and "no open callback '1'" in again.stderr
    day = dt.datetime.now(TZ).date().isoformat()
    csv_path = tmp_path / "report.csv"
    rep = await asyncio.to_thread(ivr, "callbacks", "report", "--from", day, "--to", day, "--csv", str(csv_path))
    assert rep.returncode == 0, rep.stderr
    assert "回拨单 callbacks 2" in rep.stdout and "取消 cancelled 1" in rep.stdout
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("\ufeff编号,号码（已脱敏）,类别") and len(lines) == 3   # for Excel
    assert "13100000001" not in csv_path.read_text() and "131******01" in lines[1]
    # no dates: today in Beijing; --month: the whole month — the same two callbacks
    plain = await asyncio.to_thread(ivr, "callbacks", "report")
    assert f"{day} .. {day} (Asia/Shanghai)" in plain.stdout and "回拨单 callbacks 2" in plain.stdout
    month = await asyncio.to_thread(ivr, "callbacks", "report", "--month", day[:7])
    assert f"{day[:7]}-01 .. " in month.stdout and "回拨单 callbacks 2" in month.stdout
    assert (await capture.store.audit.verify()).ok


def leased_scheduler(capture, controller, owner, policy=None, lease_s=180):
    """A scheduler that may use every idle seat, with the lease under test."""
    policy = policy or Policy(calling_hours=ALL_DAY.calling_hours, claim_lease_s=lease_s, keep_idle=0)
    return CallbackScheduler(store=capture.store, controller=controller, tz=TZ, queues={"general": "general-q"},
                             policy=policy, log=LOG, owner=owner)


async def test_a_long_conversation_dials_the_citizen_once(ami, redis, capture):
    """A 300 s callback conversation with claim_lease_s 180: the lease of the
    attempt under way is renewed, so nobody dials the citizen again."""
    pbx, server, controller = ami
    await _one_missed_call(redis, capture)
    t0 = time.time()
    sched = leased_scheduler(capture, controller, "sched-1", lease_s=180)
    assert await sched.tick(t0) == 1
    orig = pbx.originated[-1]
    pbx.originate_result(orig, True)                       # the seat answers, the citizen is dialled
    server.flush()
    await asyncio.sleep(0.2)
    for t in range(30, 300, 30):                           # the conversation goes on; the scheduler keeps ticking
        await sched.tick(t0 + t)
    assert len(pbx.originated) == 1                        # not dialled again while the first call goes on
    pbx.user_event("IvrCallback", orig["Channel"], Id="1", DialStatus="ANSWER")
    server.flush()
    await asyncio.wait_for(next(iter(sched.active.values())).done, 5)
    await sched.tick(t0 + 361)
    assert [o["Exten"] for o in pbx.originated] == ["13300133000"]          # dialled once
    closed = await capture.store.closed_record("1")
    assert closed["closed_reason"] == "reached" and closed["attempts"] == "1"
    assert (await capture.store.counts())["open"] == 0


async def test_an_outcome_that_cannot_be_written_keeps_the_attempt_and_its_lease(ami, redis, capture, monkeypatch):
    pbx, server, controller = ami
    await _one_missed_call(redis, capture)
    t0 = time.time()
    sched = leased_scheduler(capture, controller, "sched-1", lease_s=10)
    await sched.tick(t0)
    orig = pbx.originated[-1]
    real_finish, failures = capture.store.finish, []

    async def failing_finish(*a, **kw):
        if len(failures) < 2:
            failures.append(1)
            raise ConnectionError("redis failing over")
        return await real_finish(*a, **kw)
    monkeypatch.setattr(capture.store, "finish", failing_finish)
    monkeypatch.setattr("ivr.callback.scheduler.FINISH_RETRY_S", (0.05,), raising=False)
    pbx.originate_result(orig, True)
    pbx.user_event("IvrCallback", orig["Channel"], Id="1", DialStatus="ANSWER")
    server.flush()
    await until(lambda: len(failures) >= 1)
    await sched.tick(t0 + 20)                              # the lease would have lapsed: it is renewed instead
    assert len(pbx.originated) == 1
    await asyncio.wait_for(next(iter(sched.active.values())).done, 5)
    assert len(pbx.originated) == 1 and len(failures) == 2
    assert (await capture.store.closed_record("1"))["closed_reason"] == "reached"


async def test_a_batch_left_unacknowledged_by_a_dead_leader_is_taken_over(redis, capture):
    """The leader's capture is killed after reading summaries and before
    acknowledging them: its consumer dies with it. The next leader claims them."""
    await add_call(redis, "13300133099", time.time() - 300)
    dead = MissedCallCapture(redis, CallbackStore(redis), ALL_DAY, TZ, LOG, consumer="dead-leader")
    delivered = await redis.xreadgroup("callbacks", "dead-leader", {keys.CALLS: ">"}, count=10)
    assert delivered and dead.consumer == "dead-leader"             # read, never handled nor acknowledged
    new = MissedCallCapture(redis, CallbackStore(redis), ALL_DAY, TZ, LOG, consumer="new-leader")
    assert await new.run_once() == 0                                # its own reads do not see them
    assert await new.claim_orphans(min_idle_ms=0) == 1
    assert (await new.store.open_record("13300133099"))["reason"] == "abandoned"
    assert (await redis.xpending(keys.CALLS, "callbacks"))["pending"] == 0


async def test_a_new_leader_adopts_a_callback_whose_call_is_still_up(ami, redis, capture):
    """The leader dies while its callback's seat and citizen are talking. The
    next leader recovers the claim when the lease runs out, asks Asterisk, finds
    the call still up and waits for its outcome instead of dialling again."""
    pbx, server, controller = ami
    await _one_missed_call(redis, capture)
    t0 = time.time()
    a = leased_scheduler(capture, controller, "leader-a", lease_s=180)
    assert await a.tick(t0) == 1
    orig = pbx.originated[-1]
    pbx.originate_result(orig, True)                          # the seat answers; the citizen is dialled
    server.flush()
    # the answer is noted and the call's channel written to the record
    await until(lambda: next(iter(a.active.values())).answered_at is not None and not a._writes)
    await a.close()
    controller.listeners.remove(a._on_event)                  # leader A dies (its lease is no longer renewed)
    b = leased_scheduler(capture, controller, "leader-b", lease_s=180)
    await b.tick(t0 + 200)                                    # A's lease ran out: recovered, claimed by B
    assert len(pbx.originated) == 1                           # not dialled while the call is up
    att = b.by_cid["1"]
    pbx.user_event("IvrCallback", orig["Channel"], Id="1", DialStatus="ANSWER")
    server.flush()
    assert await asyncio.wait_for(att.done, 5) == "reached"
    closed = await capture.store.closed_record("1")
    assert closed["closed_reason"] == "reached" and "call_channel" not in closed
    kinds = [e["kind"] for _, e in await capture.store.audit.entries()]
    assert kinds == ["recorded", "assigned", "adopted", "attempt", "closed"]


@pytest.mark.parametrize("closes", ["before_its_open_record_is_read", "after_its_open_record_is_read"])
async def test_a_callback_closed_while_the_report_reads_is_counted_once(redis, capture, monkeypatch, closes):
    """The Beijing day's report lacked 5 reached callbacks: they closed after
    the report had read the closed index and before it read their open
    records. Whenever a callback closes during the read, it is counted once."""
    from ivr.callback import store

    t = time.time() - 3600
    for i in range(3):
        await add_call(redis, f"1380013{i:04d}", t + i)
    assert await capture.run_once() == 3
    real = redis.pipeline
    done: list[bool] = []

    class Pipe:
        def __init__(self, *a, **kw):
            self.p = real(*a, **kw)

        def __getattr__(self, name):
            return getattr(self.p, name)

        async def execute(self):
            first = not done
            if first and closes == "before_its_open_record_is_read":
                done.append(True)
                await capture.store.close("13800130001", now=time.time(), reason="reached")
            got = await self.p.execute()
            if first and not done:
                done.append(True)
                await capture.store.close("13800130001", now=time.time(), reason="reached")
            return got
    monkeypatch.setattr(redis, "pipeline", Pipe)
    recs = await store.CallbackQueries(redis).all_records(closed_since=0, fields=("number", "state"))
    assert done and sorted(r["number"] for r in recs) == [f"1380013{i:04d}" for i in range(3)], recs
    assert next(r for r in recs if r["number"] == "13800130001")["state"] == "closed"


async def test_the_report_reads_page_through_long_lines_and_streams(redis, capture, monkeypatch):
    """The report's reads come in pages (no single command holds Redis while
    calls wait): every record and every summary is still read exactly once."""
    from ivr.callback import store, streams

    monkeypatch.setattr(store, "READ_PAGE", 3)
    monkeypatch.setattr(streams, "CALLS_BATCH", 4)
    t = time.time() - 3600
    for i in range(10):
        await add_call(redis, f"1380013{i:04d}", t + i)
    await add_call(redis, "13900139000", t + 20, hold_s="2")                   # a misdial: a closed record
    assert await capture.run_once() == 11
    recs = await store.CallbackQueries(redis).all_records(closed_since=0)
    assert sorted(r["number"] for r in recs) == sorted([f"1380013{i:04d}" for i in range(10)] + ["13900139000"])
    # only some fields (the drill's day report: a million whole records doubled its memory): the same records
    slim = await store.CallbackQueries(redis).all_records(closed_since=0, fields=("number", "state", "nothing"))
    assert sorted((r["number"], r["state"]) for r in slim) == sorted((r["number"], r["state"]) for r in recs)
    assert all(set(r) == {"number", "state", "id"} for r in slim)          # the id: a record is counted once
    calls = await streams.read_calls(redis, t - 1, t + 30)
    assert len(calls) == 11 and len({c["uniqueid"] for c in calls}) == 11
