"""Automated follow-up calls (智能回访, issue 19): the sample (its share refused
above 100 % or not above 0, Chinese first; the same choice for the same salt;
one call per citizen), the batch and its audit entries, the CLI and the API
(role-checked), the caller over the simulated AMI on real sockets (calling
hours, the calm gate, the lines, attempts and spacing from the callback
policy, never both a callback and a follow-up to one citizen), and end to end:
the simulated Asterisk runs the shipped [ivr-followup] against an engine
process, and what the citizen said is kept with the follow-up (kind followup)."""

import asyncio
import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import time

import pytest

from ivr import logs
from ivr.callback.capture import MissedCallCapture
from ivr.callback.followup import (
    Candidate,
    FollowupStore,
    audit_id,
    candidates_of_callbacks,
    candidates_of_calls,
    parse_share,
    sample,
)
from ivr.callback.followup_caller import FollowupCaller
from ivr.callback.policy import Policy
from ivr.callback.store import CallbackStore
from ivr.callback.trail import read_trail
from ivr.errors import InvalidInput
from ivr.redisdb import keys
from ivr.rehearsal.sim.agi_peer import Caller, SimChannel
from ivr.rehearsal.sim.dialplan import read_context, run_dialplan
from ivr.services import followups as followup_service
from tests.engine_proc import ROOT, EngineProcess
from tests.test_ami_controller import ami, until  # noqa: F401 (ami: the simulated PBX and a controller)

TZ = dt.timezone(dt.timedelta(hours=8))
LOG = logs.get("test")
ALL_DAY = Policy(calling_hours=(dt.time(0), dt.time(23, 59, 59)))
DIALPLAN = ROOT / "asterisk" / "extensions.conf"
SEAT = "Local/101@ivr-seats/n"
DAY = "2026-12-05"
NOON = dt.datetime(2026, 12, 5, 12, 0, tzinfo=TZ).timestamp()


# -- the share and the sample (pure) ---------------------------------------------------

@pytest.mark.parametrize("text, share", [("10%", 0.10), ("100%", 1.0), ("2.5%", 0.025), ("10", 0.10),
                                         (" 50 % ", 0.5)])
def test_a_share_is_read_as_a_percentage(text, share):
    assert parse_share(text) == pytest.approx(share)


@pytest.mark.parametrize("text, zh", [("150%", "不能超过 100%"), ("100.5%", "不能超过 100%"),
                                      ("-5%", "须大于 0%"), ("0%", "须大于 0%"), ("ten", "应写成百分数"),
                                      ("", "应写成百分数")])
def test_a_share_above_100_or_not_above_0_is_refused_chinese_first(text, zh):
    with pytest.raises(InvalidInput) as exc:
        parse_share(text)
    message = str(exc.value)
    assert message.startswith("抽样比例") and zh in message and " — a sample share" in message


def _cands(n):
    return [Candidate(str(i), f"1390000{i:04d}", SEAT, "ordinary", 1000.0 + i) for i in range(n)]


def test_the_sample_takes_the_share_rounded_up_one_call_per_citizen_repeatably():
    pool = _cands(95) + [Candidate("dup", "13900000003", SEAT, "ordinary", 5000.0)]   # that citizen twice
    first = sample(pool, 0.10, salt="a")
    assert len(first) == 10 and len({c.number for c in first}) == 10                # ceil(95 × 10 %)
    assert sample(list(reversed(pool)), 0.10, salt="a") == first                       # not the input's order
    assert sample(pool, 0.10, salt="b") != first
    assert len(sample(pool, 1.0, salt="a")) == 95 and "dup" not in {c.source for c in sample(pool, 1.0, "a")}
    assert len(sample(_cands(3), 0.01, salt="a")) == 1 and sample([], 0.5, salt="a") == []


def test_candidates_are_reached_callbacks_of_the_day_or_answered_calls_in():
    recs = [{"id": "1", "number": "13900000001", "closed_reason": "reached", "closed_at": "150", "kind": "ordinary",
             "last_seat": SEAT},
            {"id": "2", "number": "13900000002", "closed_reason": "unreached", "closed_at": "150", "kind": "ordinary"},
            {"id": "3", "number": "13900000003", "closed_reason": "reached", "closed_at": "250", "kind": "ordinary"},
            {"id": "4", "number": "13900000004", "closed_reason": "reached", "closed_at": "160", "kind": "emergency"}]
    assert [c.source for c in candidates_of_callbacks(recs, 100, 200)] == ["1", "4"]
    assert [c.source for c in candidates_of_callbacks(recs, 100, 200, "emergency")] == ["4"]
    calls = [{"uniqueid": "a", "number": "13800000001", "queue_status": "ANSWERED", "queue": "general",
              "member": SEAT, "started": "1"},
             {"uniqueid": "b", "number": "13800000002", "queue_status": "ABANDONED", "queue": "general"},
             {"uniqueid": "c", "number": "13800000003", "queue_status": "ANSWERED", "queue": "general",
              "kind": "followup"}]         # the hotline's own calls are never followed up
    assert [c.source for c in candidates_of_calls(calls)] == ["a"]


# -- choosing a batch: the service, the CLI, the API ------------------------------------

async def _reached_callback(redis, number, closed_at, kind="ordinary"):
    store = CallbackStore(redis)
    args = store.record_args(number=number, now=closed_at - 100, started=closed_at - 200, kind=kind,
                             reason="abandoned", flow="main", step="general_queue", wait_s=30.0, message="",
                             not_before=closed_at - 100, deadlines={"emergency": 7200, "courtesy": 14400,
                                                                    "ordinary": 86400}, misdial=False)
    _, cid, _ = await store.record(args)
    await store.claim(now=closed_at - 50, lease_s=60, owner="t", count=10)
    assert await store.finish(number, "t", outcome="reached", seat=SEAT, now=closed_at, next_at=None,
                              close_reason="reached") == "closed"
    return cid


async def test_a_batch_is_chosen_queued_and_audited(redis):
    for i in range(20):
        await _reached_callback(redis, f"1390000{i:04d}", NOON + i)
    await _reached_callback(redis, "13900009999", NOON + 86400)          # the next day: not in the sample
    r = await followup_service.choose(redis, TZ, share="10%", of="reached-callbacks", day=DAY, by="cli:boss",
                                      now=NOON + 90000)
    assert (r["candidates"], r["chosen"], r["day"]) == (20, 2, DAY)
    head, items = await FollowupStore(redis).batch(r["batch"])
    assert head["by"] == "cli:boss" and head["of"] == "reached-callbacks" and head["count"] == "2"
    assert all(i["kind"] == "followup" and i["state"] == "open" and i["source_seat"] == SEAT for i in items)
    assert await redis.zcard(keys.FOLLOWUP_PENDING) == 2
    for i in items:
        trail = [e for _, e in await read_trail(redis, {"id": audit_id(i["id"]), "first_at": NOON + 90000})]
        assert [e["kind"] for e in trail] == ["followup_chosen"] and trail[0]["by"] == "cli:boss"
        assert i["number"] not in json.dumps(trail)                      # masked
    with pytest.raises(InvalidInput, match="^样本为空"):
        await followup_service.choose(redis, TZ, share="10%", of="reached-callbacks", day="2026-12-01", by="x")


async def test_without_a_day_the_sample_is_of_the_day_of_the_clock_given_not_the_wall_clock(redis):
    """A drill (or a console on a drill's clock) chooses by its own clock's day:
    the reached callbacks of that day, whatever day the wall clock says."""
    noon = dt.datetime(2025, 3, 1, 12, 0, tzinfo=TZ).timestamp()
    for i in range(4):
        await _reached_callback(redis, f"1391000{i:04d}", noon + i)
    r = await followup_service.choose(redis, TZ, share="50%", of="reached-callbacks", day=None, by="drill:x",
                                      now=noon + 3600)
    assert (r["day"], r["candidates"], r["chosen"]) == ("2025-03-01", 4, 2)


def test_the_command_line_refuses_a_share_above_100_in_chinese_first(redis_url, tmp_path):
    env = {**os.environ, "IVR_HOME": str(ROOT), "IVR_DATA_DIR": str(tmp_path), "IVR_REDIS_URL": redis_url}
    res = subprocess.run([sys.executable, "-m", "ivr", "followup", "sample", "--share", "150%", "--of",
                          "reached-callbacks", "--day", DAY], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode != 0
    out = (res.stdout + res.stderr).strip().splitlines()
    assert len(out) == 1 and "抽样比例不能超过 100%：'150%' — a sample share cannot be above 100%" in out[0], out


@pytest.fixture
async def web(redis, project_home, tmp_path):
    from aiohttp.test_utils import TestClient, TestServer

    from ivr.accounts.store import Accounts
    from ivr.settings import load_settings
    from ivr.web.app import make_app

    settings = load_settings({"IVR_HOME": str(project_home), "IVR_DATA_DIR": str(tmp_path)})
    for user, role in (("ops", "operations"), ("boss", "seat_manager"), ("audit", "auditor")):
        await Accounts(redis).add(user, role, "correct horse battery")
    clients = []

    async def client(user):
        c = TestClient(TestServer(make_app(redis=redis, settings=settings)))
        await c.start_server()
        clients.append(c)
        r = await c.post("/api/login", json={"user": user, "password": "correct horse battery"})
        return c, (await r.json())["csrf"]
    yield client
    for c in clients:
        await c.close()


async def test_the_api_is_for_seat_managers_and_auditors_and_refuses_bad_shares(web, redis):
    await _reached_callback(redis, "13900000001", NOON)
    ops, csrf = await web("ops")
    body = {"share": "100%", "of": "reached-callbacks", "day": DAY}
    assert (await ops.post("/api/followups", json=body, headers={"X-CSRF-Token": csrf})).status == 403
    boss, csrf = await web("boss")
    for share in ("150%", "-1%"):
        r = await boss.post("/api/followups", json={**body, "share": share}, headers={"X-CSRF-Token": csrf})
        assert r.status == 400 and (await r.json())["error"].startswith("抽样比例须为 0% 以上、不超过 100%"), \
            await r.text()
    r = await boss.post("/api/followups", json={**body, "share": "0%"}, headers={"X-CSRF-Token": csrf})
    assert r.status == 422 and "抽样比例须大于 0%" in (await r.json())["error"]
    assert await redis.zcard(keys.FOLLOWUP_BATCHES) == 0                 # nothing stored
    r = await boss.post("/api/followups", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status == 200 and (await r.json())["chosen"] == 1
    auditor, _ = await web("audit")
    got = await (await auditor.get("/api/followups/1")).json()
    assert got["figures"]["chosen"] == 1 and got["items"][0]["number"] != "13900000001"
    assert got["items"][0]["kind"] == "followup"
    assert (await auditor.get("/api/followups/9")).status == 404


# -- the caller over the simulated AMI (real sockets) -------------------------------------

@pytest.fixture
async def caller(ami, redis):  # noqa: F811
    pbx, server, controller = ami
    store = FollowupStore(redis)
    fc = FollowupCaller(store=store, controller=controller, policy=ALL_DAY, tz=TZ, queues={"general": "general-q"},
                        log=LOG, owner="fu-1")
    return pbx, server, controller, fc, store


async def _batch(store, numbers, now):
    chosen = [Candidate(f"s{n}", n, SEAT, "ordinary", now) for n in numbers]
    bid, ids = await store.create(chosen, now=now, by="t", share=1.0, of="reached-callbacks", day=DAY, kind="")
    return ids


async def test_a_follow_up_is_dialled_without_a_seat_and_closed_reached(caller, redis):
    pbx, server, controller, fc, store = caller
    (fid,) = await _batch(store, ["13300133000"], time.time())
    assert await fc.tick() == 1
    orig = pbx.originated[-1]
    assert orig["Channel"] == "Local/13300133000@ivr-followup-out/n" and orig["Context"] == "ivr-followup"
    assert f"IVR_FU_ID={fid}" in orig["Variable"] and "ivr-seats" not in orig["Channel"]
    pbx.originate_result(orig, True)                               # the citizen answered: the flow runs
    pbx.user_event("IvrFollowup", orig["Channel"], Id=fid, DialStatus="ANSWER")
    server.flush()
    await until(lambda: not fc.active)
    item = await store.item(fid)
    assert (item["state"], item["closed_reason"], item["attempts"]) == ("closed", "reached", "1")
    trail = [e["kind"] for _, e in await read_trail(redis, {"id": audit_id(fid), "first_at": time.time() - 60})]
    assert trail == ["followup_assigned", "followup_attempt", "followup_closed"]
    assert (await store.audit.verify()).ok


async def test_no_answer_is_tried_again_after_the_policy_spacing_then_closed_unreached(caller):
    pbx, server, controller, fc, store = caller
    fc.policy = dataclasses.replace(ALL_DAY, spacing_s=(600.0,))
    (fid,) = await _batch(store, ["13300133001"], time.time())
    await fc.tick()
    before = time.time()
    # a trunk leg that rang out, as Asterisk 22 reports it: OriginateResponse Failure with Reason 0 and the
    # dialplan's UserEvent with NOANSWER, in either order (fixtures ami/session-followup.json has the event
    # first; a run before it, the Failure first: the outcome was then taken as "failed")
    orig = pbx.originated[-1]
    pbx.originate_result(orig, False, reason=0)
    server.flush()
    await until(lambda: next(iter(fc.active.values())).refused is not None)
    pbx.user_event("IvrFollowup", "Local/13300133001@ivr-followup-out-00000001;2", Id=fid, DialStatus="NOANSWER")
    server.flush()
    await until(lambda: not fc.active)
    item = await store.item(fid)
    assert (item["state"], item["last_outcome"]) == ("open", "no_answer")
    assert float(item["next_at"]) >= before + 600
    assert await fc.tick() == 0                                    # not due yet
    due = float(item["next_at"]) + 1
    assert await fc.tick(now=due) == 1
    pbx.originate_result(pbx.originated[-1], False, reason=5)     # busy, and no dial status ever comes
    server.flush()
    await until(lambda: next(iter(fc.active.values())).refused is not None)
    await fc.tick(now=due + 1)                                    # the dial status is still awaited
    assert fc.active
    await fc.tick(now=due + 7)                                    # then the Originate's reason is taken
    await until(lambda: not fc.active)
    item = await store.item(fid)
    assert (item["state"], item["closed_reason"], item["attempts"], item["last_outcome"]) == \
        ("closed", "unreached", "2", "busy")


async def test_only_while_the_queues_are_calm_in_calling_hours_and_never_with_a_callback_owed(caller, redis):
    pbx, server, controller, fc, store = caller
    now = time.time()
    ids = await _batch(store, ["13300133002", "13300133003"], now)
    for i in range(6):                                             # more than max_waiting (5) wait live
        pbx.join("general-q", f"1370000000{i}")
    server.flush()
    await until(lambda: controller.model.snapshot(time.time())["queues"]["general-q"]["waiting"] == 6)
    assert await fc.tick() == 0 and "general" in fc.last_gate and pbx.originated == []
    night = dataclasses.replace(ALL_DAY, calling_hours=(dt.time(8), dt.time(8, 0, 1)))
    fc.policy = night
    assert await fc.tick() == 0 and fc.last_gate == "outside calling hours"
    # a callback is owed to the first citizen: the follow-up waits, the other goes
    fc.policy = ALL_DAY
    cbs = CallbackStore(redis)
    await cbs.record(cbs.record_args(number="13300133002", now=now, started=now - 60, kind="ordinary",
                                     reason="abandoned", flow="main", step="q", wait_s=1.0, message="",
                                     not_before=now + 3600, deadlines={"emergency": 1, "courtesy": 1,
                                                                       "ordinary": 1}, misdial=False))
    recovered, claimed = await store.claim(now=now, lease_s=60, owner="x", count=5)
    assert claimed == [ids[1]]
    assert float(await redis.zscore(keys.FOLLOWUP_PENDING, ids[0])) > now


# -- end to end: [ivr-followup] on the simulated Asterisk, an engine process, the capture --

def test_the_shipped_follow_up_contexts_never_queue_and_report_the_dial_status():
    _, out = read_context(DIALPLAN, "ivr-followup-out", "_X.")
    dial = next(p for p in out if p.app == "dial")
    assert "b(ivr-trunk-line^s^1)" in dial.data and "${IVR_TRUNK}/${EXTEN}" in dial.data
    assert not any(p.app == "answer" for p in out)                  # answered only when the citizen answers
    _, h = read_context(DIALPLAN, "ivr-followup-out", "h")
    assert h[0].app == "userevent" and h[0].data.startswith("IvrFollowup,Id: ${IVR_FU_ID}")
    _, fu = read_context(DIALPLAN, "ivr-followup", "s")
    assert "agi" in [p.app for p in fu] and "queue" not in [p.app for p in fu]


async def test_the_citizen_answers_the_follow_up_and_it_is_kept_with_kind_followup(redis, redis_url, tmp_path):
    store = FollowupStore(redis)
    (fid,) = await _batch(store, ["13300133009"], time.time())
    engine = await EngineProcess(redis_url, tmp_path / "e").start()
    joined: list[str] = []

    async def queue_join(sim, queue, prio):
        joined.append(queue)
    try:
        sim = SimChannel(Caller(number="12345", name="12345回访", digits=["1", "3", "1"], message_samples=16000),
                         flow="followup")
        sim.answered = True
        sim.vars.update({"IVR_FU_ID": fid, "IVR_FU_NUMBER": "13300133009", "IVR_FU_SEAT": SEAT,
                         "IVR_FU_KIND": "ordinary"})
        run = await run_dialplan(DIALPLAN, sim, queue_join=queue_join, context="ivr-followup", exten="s",
                                 engines=engine.url)
    finally:
        engine.stop()
    assert run.agi == ["HANGUP"] and joined == [] and sim.queue_calls == []     # the flow's goodbye hangs up
    assert any(c.startswith("RECORD FILE") for c in sim.commands)
    capture = MissedCallCapture(redis, CallbackStore(redis), ALL_DAY, TZ, LOG)
    await capture.ensure_group()
    deadline = time.monotonic() + 10
    while not await capture.run_once():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    (row,) = [json.loads(f["j"]) for _, f in await redis.xrange(keys.CALLS)]
    assert (row["kind"], row["followup_id"], row["number"]) == ("followup", fid, "13300133009")
    item = await store.item(fid)
    assert (item["heard"], item["survey"], item["survey_seat"], item["kind"]) == ("yes", "dissatisfied", SEAT,
                                                                                   "followup")
    assert item["comment"].startswith("msg-")                      # the voice comment's recording
    assert await CallbackStore(redis).open_record("13300133009") is None    # never a missed call
    trail = [e for _, e in await read_trail(redis, {"id": audit_id(fid), "first_at": time.time() - 60})]
    assert trail[-1]["kind"] == "followup_answered" and trail[-1]["rating"] == "dissatisfied"


def test_the_lines_allow_follow_ups_only_above_their_callback_reserve():
    from ivr.callback.followup_caller import free_line_budget
    lines = {"known": True, "free": 5, "callback_below_free": 3}
    assert free_line_budget({"lines": lines}) == 2
    assert free_line_budget({"lines": {**lines, "free": 2}}) == 0
    assert free_line_budget({"lines": {**lines, "known": False}}) is None and free_line_budget(None) is None


async def test_the_drill_places_a_batch_through_the_shipped_followup_contexts(project_home):
    """The simulated PBX of the drill answers the engine's follow-up Originates
    as Asterisk 22 does (Success, or NOANSWER then Failure with Reason 0) and
    runs [ivr-followup] against the engine: every citizen of the batch is
    called once, and each one reached has their answers kept."""
    from ivr.rehearsal.sim.drill import Drill
    from ivr.rehearsal.sim.profiles import load_profile

    class WithBatch(Drill):
        async def _drive(self):
            store = FollowupStore(self.redis)
            now = self.clock.engine.now()
            chosen = [Candidate(f"s{i}", f"1370000{i:04d}", SEAT, "ordinary", now) for i in range(6)]
            _, self.fids = await store.create(chosen, now=now, by="t", share=1.0, of="reached-callbacks", day="",
                                              kind="")
            report = await super()._drive()
            self.items = [await store.item(f) for f in self.fids]
            return report

    drill = WithBatch(load_profile(project_home, "smoke"), home=project_home, duration_s=400)
    await drill.run()
    assert all(i["attempts"] == "1" for i in drill.items), drill.items
    reached = [i for i in drill.items if i.get("closed_reason") == "reached"]
    assert reached and sum(drill.followups_answered.values()) == len(reached), drill.items
    assert all(i["heard"] in ("yes", "no") and i["survey"] in ("satisfied", "basically_satisfied", "dissatisfied",
                                                              "no_answer") for i in reached), reached
    assert sum(i["heard"] == "yes" for i in reached) == drill.followups_heard["1"]
    assert all(i["last_outcome"] == "no_answer" and i["state"] == "open"
               for i in drill.items if i not in reached), drill.items
