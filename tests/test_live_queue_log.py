"""Against a real Asterisk (skipped without an `asterisk` binary on PATH): the
PBX's queue_log as evidence (issue 20, docs/pbx-record.md).

The defect, as seen on Asterisk 22: the only engine is killed in the middle of
a caller's flow, the shipped dialplan queues the caller itself, a seat answers
while no engine watches AMI, and when the engine comes back its sweep finds
the dead engine's call unresolved and records it as a missed call: that
citizen, who was answered, is called back. With the shipped logger.conf the
PBX writes queue_log, the leader reads it (IVR_QUEUE_LOG) and no callback is
made, also when the file was rotated (Asterisk's `logger rotate`) before the
engine came back."""

import asyncio
import shutil
import socket
import time

import pytest

from ivr.redisdb import keys
from tests.live_pbx import ASTERISK, asterisk_tree, booted, cli, free_port, start_pbx, stop_pbx, until_cli

pytestmark = [pytest.mark.live_asterisk,
              pytest.mark.skipif(ASTERISK is None, reason="no asterisk binary on PATH")]

NUMBER = "13900000001"          # Local/1@test-citizen


async def _until(pred, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        got = await pred()
        if got:
            return got
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.5)


async def _capture_caught_up(redis) -> bool:
    """The missed-call capture has read and acknowledged every summary."""
    if not await redis.exists(keys.CALLS):
        return True
    last = (await redis.xinfo_stream(keys.CALLS))["last-generated-id"]
    groups = await redis.xinfo_groups(keys.CALLS)
    return bool(groups) and all(g["pending"] == 0 and g["last-delivered-id"] == last for g in groups)


async def test_a_caller_answered_while_the_engine_was_dead_is_not_called_back(redis, redis_url, project_home,
                                                                             tmp_path):
    from tests.engine_proc import EngineProcess

    ami_port = free_port()
    queue_log = tmp_path / "log" / "queue_log"
    env = {"IVR_AMI_URL": f"ami://ivr:live-test-secret@127.0.0.1:{ami_port}", "IVR_QUEUE_LOG": str(queue_log)}
    engine = EngineProcess(redis_url, tmp_path / "ivr", leader=True, **env)
    conf = asterisk_tree(project_home, tmp_path, engine.agi_port, ami_port)
    # the shipped logger.conf, as a site installs it: queue_log on
    shutil.copy(project_home / "asterisk" / "logger.conf", conf.parent / "logger.conf")
    daemon = start_pbx(conf)
    restarted = None
    try:
        await booted(conf)
        await engine.start()
        await _until(lambda: redis.exists(keys.AMI_LEADER), 30, "the first engine never took the leader role")
        await _until(lambda: redis.scard(keys.PBX_RECORD_NAMES), 30, "the leader never read queue_log")
        out = cli(conf, "channel originate Local/1@test-citizen extension s@test-caller")
        assert "rror" not in out, out

        async def live_call():
            return [u for u, v in (await redis.hgetall(keys.CALLS_LIVE)).items() if v.endswith(NUMBER)]
        uid = (await _until(live_call, 30, "the engine never took the citizen's call"))[0]
        await asyncio.sleep(2)                          # in the greeting (7 s)
        engine.kill()
        # no engine: the shipped dialplan queues the citizen and a seat answers (talks 2 s)
        await until_cli(conf, "queue show general-q", lambda out: "C:1," in out, 60)
        assert "CONNECT" in queue_log.read_text(), queue_log.read_text()
        # and the file is rotated before anyone read those lines: they are in queue_log.0 now
        cli(conf, "logger rotate")
        rotated = [p for p in queue_log.parent.iterdir() if p.name.startswith("queue_log.")]
        assert rotated and "CONNECT" in rotated[0].read_text() and "CONNECT" not in queue_log.read_text()

        restarted = await EngineProcess(redis_url, tmp_path / "ivr2", leader=True, **env).start()
        # the dead engine's entry is settled one way or the other (the sweep needs two looks, 15 s apart)
        await _until(lambda: _not(redis.hexists(keys.CALLS_LIVE, uid)), 120, "the dead engine's call never settled")
        await _until(lambda: _capture_caught_up(redis), 60, "the capture never caught up")
        # no missed call, so no callback: nothing recorded for that citizen, ever
        assert await redis.get(keys.CALLBACK_SEQ) is None, await redis.hgetall(keys.callback_open(NUMBER))
        assert not await redis.exists(keys.callback_open(NUMBER))

        # the auditors' view: the PBX saw it answered, the engine did not
        from ivr.services.pbx_record import reconciliation
        report = await reconciliation(redis, time.time() - 3600, time.time() + 60)
        calls = {c["uniqueid"]: c for p in report["pbxs"] for c in p["calls"]}
        assert calls[uid]["outcome"] == "answered" and calls[uid]["agent"].startswith("Seat"), calls
        assert calls[uid]["verdict"] == "engine_blind", calls[uid]
    finally:
        engine.stop()
        if restarted is not None:
            restarted.stop()
        stop_pbx(daemon)


async def _not(aw) -> bool:
    return not await aw


async def test_a_caller_who_abandoned_while_no_engine_ran_is_recorded(redis, redis_url, project_home, tmp_path):
    """The hole of docs/chaos.md: no engine reachable, the dialplan queues the
    citizen, who hangs up while nobody watches AMI. Only the PBX's queue_log
    saw it; the engine that starts afterwards records the missed call."""
    from ivr.callback.store import CallbackStore
    from tests.engine_proc import EngineProcess

    ami_port = free_port()
    queue_log = tmp_path / "log" / "queue_log"
    engine = EngineProcess(redis_url, tmp_path / "ivr", leader=True,
                           IVR_AMI_URL=f"ami://ivr:live-test-secret@127.0.0.1:{ami_port}",
                           IVR_QUEUE_LOG=str(queue_log))
    # the dialplan's only engine address: a port bound and never listened on, so that
    # AGI() fails there (connection refused) whatever else runs on this machine
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    conf = asterisk_tree(project_home, tmp_path, refused.getsockname()[1], ami_port)
    shutil.copy(project_home / "asterisk" / "logger.conf", conf.parent / "logger.conf")
    daemon = start_pbx(conf)
    try:
        await booted(conf)
        for seat in ("101", "102", "109"):                    # nobody free: the citizen waits
            cli(conf, f"queue pause member Local/{seat}@ivr-seats/n")
        cli(conf, "channel originate Local/2@test-citizen extension s@test-caller")
        await until_cli(conf, "queue show general-q", lambda out: "has 1 call" in out, 60)
        await asyncio.sleep(7)            # waits longer than short_abandon_s (5 s): not a misdial
        cli(conf, "channel request hangup all")
        await _until(lambda: _async_true("|ABANDON|" in queue_log.read_text()), 30, "no ABANDON in queue_log")
        await engine.start()
        store = CallbackStore(redis)
        rec = await _until(lambda: store.open_record("13900000002"), 60,
                           f"the abandoned caller was never recorded: {queue_log.read_text()}")
        assert rec["reason"] == "abandoned" and rec["calls"] == "1", rec
        (_, s), = [(i, f) for i, f in await redis.xrange(keys.CALLS)]
        assert '"source":"queue_log"' in s["j"] and '"outcome":"dialplan_queue"' in s["j"], s
    finally:
        engine.stop()
        refused.close()
        stop_pbx(daemon)


async def _async_true(v: bool) -> bool:
    return v
