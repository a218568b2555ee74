"""The PBX's queue_log reconciled against the engine's record, on a real Redis:
no callback for a citizen the PBX saw answered, a missed call for one it saw
abandon though no engine did; each chunk of the file counted once; closing a
callback is one step against the scheduler's claim."""

import asyncio
import time

from ivr import logs
from ivr.callback.capture import MissedCallCapture
from ivr.callback.pbx_record import PbxRecord, Verdict
from ivr.callback.reconcile import QueueReconciler
from ivr.callback.store import CallbackStore
from ivr.calls.service import CallSummaries, read_summary
from ivr.clock import WallClock
from ivr.redisdb import keys
from ivr.services.pbx_record import reconciliation
from tests.test_callbacks import ALL_DAY, TZ, add_call

LOG = logs.get("test")
NUMBER = "13900000001"


def record(redis, path, **kw):
    return PbxRecord(redis, CallbackStore(redis), pbx="main", path=path, clock=WallClock(), log=LOG, grace_s=0.0,
                     **kw)


def write(path, lines):
    with path.open("a") as f:
        f.write("".join(x + "\n" for x in lines))


def answered(uid, t, number=NUMBER):
    return [f"{t}|{uid}|general-q|NONE|ENTERQUEUE||{number}|1",
            f"{t + 3}|{uid}|general-q|Seat101|CONNECT|3|{t + 3}.9|0",
            f"{t + 60}|{uid}|general-q|Seat101|COMPLETEAGENT|3|57|1"]


async def drain(rec):
    while (await rec.read_once()).more:
        pass
    await rec.settle_due()


async def capture(redis):
    cap = MissedCallCapture(redis, CallbackStore(redis), ALL_DAY, TZ, LOG)
    await cap.ensure_group()
    return cap


async def dead_engines_call(redis, uid, started, number=NUMBER):
    """A call whose engine died in the flow (its heartbeat expired)."""
    dead = CallSummaries(redis, LOG, owner="engine-dead")
    dead.started(uid, started, number)
    await dead.flush()
    await redis.delete(keys.engine_alive("engine-dead"))


async def test_answered_while_its_engine_was_dead_is_no_missed_call(redis, tmp_path):
    """The defect of issue 20: the sweep recorded the dead engine's call as a
    missed call although a seat had answered it; with the PBX's record read,
    the sweep writes nothing and nobody is called back."""
    t = int(time.time()) - 120
    await dead_engines_call(redis, "500.1", t)
    path = tmp_path / "queue_log"
    write(path, answered("500.1", t + 10))
    rec = record(redis, path)
    await rec.read_once()                      # the mark is set as the line is read
    sweeper = QueueReconciler(redis, clock=WallClock(), emergency_queues=frozenset(), log=LOG, waiting=lambda: set())
    assert await sweeper.sweep() == 0 and await sweeper.sweep() == 0   # judged on the second look: nothing
    assert await redis.xlen(keys.CALLS) == 0 and not await redis.hexists(keys.CALLS_LIVE, "500.1")
    await rec.settle_due()
    cap = await capture(redis)
    await cap.run_once()
    assert await redis.get(keys.CALLBACK_SEQ) is None
    (row,) = (await reconciliation(redis, t, t + 3600))["pbxs"][0]["calls"]
    assert row["verdict"] == Verdict.ENGINE_BLIND          # no engine record of it at all
    assert row["outcome"] == "answered" and row["number"] != NUMBER and row["agent"] == "Seat101"


async def test_settled_before_the_sweep_it_says_the_engine_was_blind(redis, tmp_path):
    t = int(time.time()) - 120
    await dead_engines_call(redis, "501.1", t)
    path = tmp_path / "queue_log"
    write(path, answered("501.1", t + 10))
    rec = record(redis, path)
    await drain(rec)
    assert not await redis.hexists(keys.CALLS_LIVE, "501.1")
    report = await reconciliation(redis, t, t + 3600)
    (row,) = report["pbxs"][0]["calls"]
    assert row["verdict"] == Verdict.ENGINE_BLIND and not row["matched"]
    assert report["pbxs"][0]["counts"]["unmatched"] == 1
    entries = await CallbackStore(redis).audit.entries("-", "+")
    assert [e["kind"] for _, e in entries] == ["suppressed"] and entries[0][1]["call"] == "501.1"


async def test_a_missed_call_summary_already_in_flight_is_not_recorded(redis, tmp_path):
    """The sweep wrote its summary before the file was read: the capture, reading
    it after the mark, records nothing."""
    t = int(time.time()) - 120
    await dead_engines_call(redis, "502.1", t)
    sweeper = QueueReconciler(redis, clock=WallClock(), emergency_queues=frozenset(), log=LOG, waiting=lambda: set())
    await sweeper.sweep()
    assert await sweeper.sweep() == 1                  # the old behaviour: a missed call of unknown outcome
    path = tmp_path / "queue_log"
    write(path, answered("502.1", t + 10))
    await record(redis, path).read_once()
    cap = await capture(redis)
    await cap.run_once()
    assert await redis.get(keys.CALLBACK_SEQ) is None
    entries = await cap.store.audit.entries("-", "+")
    assert [(e["kind"], e["reason"]) for _, e in entries] == [("suppressed", "pbx_answered")]


async def test_an_open_callback_of_a_citizen_answered_later_is_closed(redis, tmp_path):
    t = int(time.time()) - 600
    cap = await capture(redis)
    await add_call(redis, NUMBER, t)                   # missed at t
    await cap.run_once()
    cid = (await cap.store.open_record(NUMBER))["id"]
    path = tmp_path / "queue_log"
    write(path, answered("600.1", t + 100))           # answered at t + 103, no engine saw it
    await drain(record(redis, path))
    assert await cap.store.open_record(NUMBER) is None
    closed = await cap.store.closed_record(cid)
    assert closed["closed_reason"] == "pbx_answered"
    assert await redis.zscore(keys.CALLBACK_READY, NUMBER) is None
    assert await redis.zscore(keys.CALLBACK_PENDING, NUMBER) is None
    (row,) = (await reconciliation(redis, t, t + 3600))["pbxs"][0]["calls"]
    assert row["verdict"] == Verdict.CALLBACK_CLOSED


async def test_a_missed_call_after_the_answer_keeps_its_callback(redis, tmp_path):
    t = int(time.time()) - 600
    path = tmp_path / "queue_log"
    write(path, answered("700.1", t))
    cap = await capture(redis)
    await add_call(redis, NUMBER, t + 200)            # missed again later
    await cap.run_once()
    await drain(record(redis, path))
    assert (await cap.store.open_record(NUMBER))["state"] == "open"


async def test_closing_is_one_step_against_the_claim(redis, tmp_path):
    """Many rounds of a scheduler claiming while the PBX's evidence closes: each
    callback is either closed before any claim (never dialled) or claimed and
    closed after that one attempt; none is lost, none claimed twice."""
    t = int(time.time()) - 600
    cap = await capture(redis)
    numbers = [f"1370000{i:04d}" for i in range(60)]
    for i, n in enumerate(numbers):
        await add_call(redis, n, t + i)
    await cap.run_once()
    store = cap.store

    async def claimer():
        got = []
        for _ in range(40):
            _, ns = await store.claim(now=time.time(), lease_s=600, owner="sched", count=1)
            got += ns
            await asyncio.sleep(0)
        return got

    async def closer():
        # from the other end of the line: the two meet in the middle
        out = [await store.close_answered(n, answered_at=t + 500, now=time.time(), reason="pbx_answered")
               for n in reversed(numbers)]
        return out[::-1]

    claimed, closes = await asyncio.gather(claimer(), closer())
    assert len(claimed) == len(set(claimed)) and claimed       # the two really ran together
    assert any(what == "closed" for what, _ in closes), closes
    for n, (what, _cid) in zip(numbers, closes, strict=True):
        rec = await store.open_record(n)
        if n in claimed:
            assert what in ("assigned", "none") or rec is None
            if rec is not None:           # being dialled: closes after this attempt
                assert rec["state"] == "assigned" and rec["close_after_attempt"] == "pbx_answered"
                assert await store.finish(n, "sched", outcome="no_answer", seat="s", now=time.time(),
                                          next_at=None, close_reason=rec["close_after_attempt"]) == "closed"
        else:
            assert what == "closed" and rec is None
    counts = await store.counts()
    assert counts["open"] == 0 and counts["closed"] == 60


async def test_an_abandon_no_engine_saw_becomes_a_missed_call_once(redis, tmp_path):
    """The hole of docs/chaos.md: queued with no engine, abandoned while the
    leader changed hands. Two readers of the same file (an old and a new
    leader): the chunk counts once, the missed call is recorded once."""
    t = int(time.time()) - 60
    path = tmp_path / "queue_log"
    write(path, [f"{t}|800.1|general-q|NONE|ENTERQUEUE||{NUMBER}|1", f"{t + 42}|800.1|general-q|NONE|ABANDON|1|1|42"])
    r1, r2 = record(redis, path), record(redis, path)
    pos = await r1.position()
    await r1.read_once()
    # r2 read the same chunk from the same position: refused
    assert (await r2.read_once()).lines == []
    assert await r1.settle_due() == 1 and await r2.settle_due() == 0
    (s,) = [read_summary(f) for _, f in await redis.xrange(keys.CALLS)]
    assert s["uniqueid"] == "800.1" and s["queue_status"] == "ABANDONED" and s["hold_s"] == "42"
    assert s["outcome"] == "dialplan_queue" and s["source"] == "queue_log"
    cap = await capture(redis)
    await cap.run_once()
    rec = await cap.store.open_record(NUMBER)
    assert rec["reason"] == "abandoned" and rec["calls"] == "1"
    assert pos.offset == 0 and (await r1.position()).offset == path.stat().st_size
    (row,) = (await reconciliation(redis, t - 1, t + 3600))["pbxs"][0]["calls"]
    assert row["verdict"] == Verdict.RECORDED


async def test_a_second_reader_at_a_stale_position_is_refused(redis, tmp_path):
    t = int(time.time()) - 60
    path = tmp_path / "queue_log"
    write(path, [f"{t}|810.1|general-q|NONE|ENTERQUEUE||{NUMBER}|1"])
    r1, r2 = record(redis, path), record(redis, path)
    stale = await r2.position()
    await r1.read_once()
    from ivr.pbxlog import tail
    chunk = tail.read(path, stale)
    assert chunk.lines                                   # r2 would apply them again from its stale position
    ok = await r2._apply(keys=[keys.pbx_log_position("main"), keys.pbx_queue_calls("main"),
                               keys.pbx_queue_pending("main"), keys.PBX_RECORD_NAMES],
                         args=["main", keys.pbx_queue_call_prefix("main"), keys.PBX_ANSWERED_PREFIX, stale.inode,
                               stale.offset, chunk.position.inode, chunk.position.offset, 60, 60, 0, 0, 1, 0, "",
                               f"810.1\t{t}\tenter\tgeneral-q\t{NUMBER}\tNONE\t"])
    assert ok == 0
    assert await redis.zcard(keys.pbx_queue_calls("main")) == 1 and (await r2.position()).offset == chunk.position.offset


async def test_an_abandon_the_engine_summarised_is_agreed(redis, tmp_path):
    t = int(time.time()) - 60
    await add_call(redis, NUMBER, t, uniqueid="900.1")
    await redis.set(keys.call_summarised("900.1"), "engine")
    path = tmp_path / "queue_log"
    write(path, [f"{t}|900.1|general-q|NONE|ENTERQUEUE||{NUMBER}|1", f"{t + 40}|900.1|general-q|NONE|ABANDON|1|1|40"])
    await drain(record(redis, path))
    assert await redis.xlen(keys.CALLS) == 1
    (row,) = (await reconciliation(redis, t - 1, t + 3600))["pbxs"][0]["calls"]
    assert row["verdict"] == Verdict.AGREED and row["matched"]


async def test_a_timeout_then_queued_again_and_answered_is_no_missed_call(redis, tmp_path):
    t = int(time.time()) - 60
    path = tmp_path / "queue_log"
    write(path, [f"{t}|910.1|general-q|NONE|ENTERQUEUE||{NUMBER}|1",
                 f"{t + 30}|910.1|general-q|NONE|EXITWITHTIMEOUT|1|1|30"])
    rec = record(redis, path)
    rec.grace_s = 3600.0                          # not yet due: the dialplan queues the caller again
    await rec.read_once()
    write(path, [f"{t + 31}|910.1|general-q|NONE|ENTERQUEUE||{NUMBER}|1",
                 f"{t + 35}|910.1|general-q|Seat102|CONNECT|4|{t}.5|1"])
    rec.grace_s = 0.0
    await drain(rec)
    assert not await redis.exists(keys.CALLS)
    call = await redis.hgetall(keys.pbx_queue_call_prefix("main") + "910.1")
    assert call["outcome"] == "answered" and call["entered"] == str(t) and call["verdict"] == Verdict.ENGINE_BLIND


async def test_a_withheld_number_or_an_old_abandon_is_not_recorded(redis, tmp_path):
    now = int(time.time())
    path = tmp_path / "queue_log"
    write(path, [f"{now - 60}|920.1|general-q|NONE|ENTERQUEUE|||1", f"{now - 20}|920.1|general-q|NONE|ABANDON|1|1|40",
                 f"{now - 90000}|921.1|general-q|NONE|ENTERQUEUE||{NUMBER}|1",
                 f"{now - 89990}|921.1|general-q|NONE|ABANDON|1|1|10"])
    await drain(record(redis, path))
    assert not await redis.exists(keys.CALLS)
    report = await reconciliation(redis, now - 100000, now)
    assert sorted(r["verdict"] for r in report["pbxs"][0]["calls"]) == [Verdict.NO_NUMBER, Verdict.TOO_OLD]


# -- the auditors' API and command --------------------------------------------------------

async def _one_of_each(redis, tmp_path):
    """An answered caller its dead engine never summarised, and an abandon no engine saw."""
    t = int(time.time()) - 300
    await dead_engines_call(redis, "950.1", t)
    path = tmp_path / "queue_log"
    write(path, answered("950.1", t + 10) + [f"{t + 20}|951.1|general-q|NONE|ENTERQUEUE||13900000002|1",
                                             f"{t + 50}|951.1|general-q|NONE|ABANDON|1|1|30"])
    await drain(record(redis, path))
    await redis.sadd(keys.PBX_RECORD_NAMES, "other")       # a second PBX, nothing read in the period


async def test_the_auditors_api_shows_what_matched_per_pbx(redis, tmp_path, project_home):
    from aiohttp.test_utils import TestClient, TestServer

    from ivr.accounts.store import Accounts
    from ivr.settings import load_settings
    from ivr.web.app import make_app
    from tests.conftest import copy_project
    from tests.test_web_api import PASSWORD

    await _one_of_each(redis, tmp_path)
    home = copy_project(project_home, tmp_path / "home")
    settings = load_settings({"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path)})
    await Accounts(redis).add("audit", "auditor", PASSWORD)
    await Accounts(redis).add("ops", "operations", PASSWORD)
    async with TestClient(TestServer(make_app(redis=redis, settings=settings))) as c:
        assert (await c.get("/api/audit/reconcile")).status == 401
        assert (await c.post("/api/login", json={"user": "audit", "password": PASSWORD})).status == 200
        r = await c.get("/api/audit/reconcile")
        assert r.status == 200, await r.text()
        body = await r.json()
        main = {p["pbx"]: p for p in body["pbxs"]}["main"]
        assert main["counts"]["calls"] == 2 and main["counts"]["unmatched"] == 2 and main["counts"]["matched"] == 0
        verdicts = {row["uniqueid"]: row["verdict"] for row in main["calls"]}
        assert verdicts == {"950.1": "engine_blind", "951.1": "recorded"}
        assert all("*" in row["number"] for row in main["calls"])             # masked
        assert {p["pbx"]: p for p in body["pbxs"]}["other"]["counts"]["calls"] == 0
        one = await (await c.get("/api/audit/reconcile?pbx=main&unmatched=1")).json()
        assert [p["pbx"] for p in one["pbxs"]] == ["main"] and len(one["pbxs"][0]["calls"]) == 2
        assert (await c.get("/api/audit/reconcile?pbx=nowhere")).status == 404
        assert (await c.get("/api/audit/reconcile?pbx=bad%20name")).status == 400
        assert (await c.get("/api/audit/reconcile?from=2026-12-06&to=2026-12-01")).status == 422
        doc = await (await c.get("/api/openapi.json")).json()
        assert doc["paths"]["/api/audit/reconcile"]["get"]["x-roles"] == ["auditor"]


def test_ivr_audit_reconcile(redis, redis_url, tmp_path, project_home):
    import os
    import subprocess
    import sys

    asyncio.run(_seed_in_thread(redis_url, tmp_path))
    env = {**os.environ, "IVR_HOME": str(project_home), "IVR_REDIS_URL": redis_url, "IVR_DATA_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "ivr", "audit", "reconcile"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "交换机记录核对 PBX record reconciliation" in out.stdout
    assert "main: 来电 2 calls, 一致 matched 0, 不一致 unmatched 2" in out.stdout
    assert "已接通，引擎未见（未记漏话）" in out.stdout and "漏话已补记" in out.stdout
    assert NUMBER not in out.stdout                                               # masked


async def _seed_in_thread(url, tmp_path):
    from ivr.redisdb.server import connect
    r = connect(url)
    try:
        await _one_of_each(r, tmp_path)
    finally:
        await r.aclose()


async def test_the_ami_reconciliation_writes_nothing_for_a_call_the_pbx_saw_answered(redis):
    """AMI showed the dead engine's caller leave the queue but its AgentConnect
    was lost (the link dropped): the PBX's CONNECT line decides."""
    t = int(time.time()) - 60
    await dead_engines_call(redis, "960.1", t)
    await redis.set(keys.pbx_answered("960.1"), str(t + 5))
    r = QueueReconciler(redis, clock=WallClock(), emergency_queues=frozenset(), log=LOG, grace_s=0.0)
    r.on_event({"Event": "QueueCallerJoin", "Uniqueid": "960.1", "CallerIDNum": NUMBER, "Queue": "general-q"})
    r.on_event({"Event": "QueueCallerLeave", "Uniqueid": "960.1", "CallerIDNum": NUMBER, "Queue": "general-q"})
    assert await r.run_once() == 0
    assert not await redis.exists(keys.CALLS)


def test_the_leader_reads_queue_log_only_when_told_where(redis, project_home, tmp_path):
    from ivr.runtime import leader_work
    from ivr.runtime.snapshot import SnapshotSource
    from ivr.settings import load_settings

    source = SnapshotSource(project_home, TZ, LOG)
    base = {"IVR_HOME": str(project_home), "IVR_DATA_DIR": str(tmp_path)}
    without = leader_work.build(settings=load_settings(base), redis=redis, config=source, clock=WallClock(), log=LOG,
                                token="t1")
    assert without.pbx_record is None
    assert "pbx_record" not in [p.name for p in leader_work.parts(without, source, WallClock())]
    with_log = leader_work.build(settings=load_settings({**base, "IVR_QUEUE_LOG": str(tmp_path / "queue_log")}),
                                 redis=redis, config=source, clock=WallClock(), log=LOG, token="t1")
    assert with_log.pbx_record is not None and with_log.pbx_record.path == tmp_path / "queue_log"
    assert "pbx_record" in [p.name for p in leader_work.parts(with_log, source, WallClock())]


async def test_lines_older_than_the_report_keeps_are_read_past(redis, tmp_path):
    old = int(time.time()) - 30 * 24 * 3600
    path = tmp_path / "queue_log"
    write(path, answered("970.1", old) + ["garbage line"] + answered("971.1", int(time.time()) - 60))
    rec = record(redis, path)
    await drain(rec)
    assert await redis.zrange(keys.pbx_queue_calls("main"), 0, -1) == ["971.1"]
    assert rec.stats.lines == 7 and rec.stats.skipped == 1
    pos = await redis.hgetall(keys.pbx_log_position("main"))
    assert pos["lines"] == "7" and pos["skipped"] == "1" and int(pos["offset"]) == path.stat().st_size


def test_each_pbx_s_queue_log_once_and_the_engine_s_own_by_its_name_in_the_pbx_file(redis, project_home, tmp_path):
    """The engine's own PBX is the one queue/pbxs.yaml links (``ami:
    IVR_AMI_URL``), whatever queue/lines.yaml names; a file read as two PBXs'
    (IVR_QUEUE_LOG naming another PBX's queue_log) is read once, as the
    engine's own, and the clash is logged (found in review, session 9)."""
    from ivr.runtime import leader_work
    from ivr.runtime.snapshot import SnapshotSource
    from ivr.settings import load_settings
    from tests.conftest import copy_project

    home = copy_project(project_home, tmp_path / "home")
    (home / "queue" / "pbxs.yaml").write_text(
        "pbxs:\n  east:\n    ami: IVR_AMI_URL\n"
        "  west:\n    ami: ami://ivr@10.0.1.22:5038\n    secret_env: IVR_AMI_SECRET_WEST\n"
        f"    queue_log: {tmp_path / 'west' / 'queue_log'}\n", encoding="utf-8")
    source = SnapshotSource(home, TZ, LOG)
    base = {"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path / "data")}
    work = leader_work.build(settings=load_settings(base), redis=redis, config=source, clock=WallClock(), log=LOG,
                             token="t1")
    assert work.pbx_record is None and [(r.pbx, r.path) for r in work.pbx_records_each] == [
        ("west", tmp_path / "west" / "queue_log")]
    assert "pbx_record:west" in [p.name for p in leader_work.parts(work, source, WallClock())]
    own = leader_work.build(settings=load_settings({**base, "IVR_QUEUE_LOG": str(tmp_path / "west" / "queue_log")}),
                            redis=redis, config=source, clock=WallClock(), log=LOG, token="t1")
    assert own.pbx_record is not None and own.pbx_record.pbx == "east" and own.pbx_records_each == []
