"""Admission on a real Asterisk 22 (skipped when no `asterisk` binary is on
PATH), with the shipped asterisk/ files and flows/main.yaml: every seat
paused, three citizens wait; at level 2 a fourth hears where they stand and
the expected wait from the number recordings, and the early callback offer,
then (pressing nothing) waits with the estimate kept with the call; a citizen
with a callback open who dials again hears that they are registered and where
they stand, and is not queued again."""

import json
import time

import pytest

from ivr.callback.store import CallbackStore
from ivr.calls.service import read_summary
from ivr.contingency.store import ContingencyStore
from ivr.redisdb import keys
from tests.live_pbx import ASTERISK, asterisk_tree, booted, cli, free_port, start_pbx, stop_pbx, until_cli
from tests.test_live_lines import _start_engine, _until

pytestmark = [pytest.mark.live_asterisk,
              pytest.mark.skipif(ASTERISK is None, reason="no asterisk binary on PATH")]


async def _summary(engine, redis, number: str) -> dict | None:
    await engine.summaries.flush()
    for _, fields in await redis.xrange(keys.CALLS):
        s = read_summary(fields)
        if s.get("number") == number and s.get("outcome"):
            return s
    return None


async def test_a_peak_caller_is_told_the_wait_offered_a_callback_and_a_registered_one_is_not_queued_again(
        redis, redis_url, project_home, tmp_path):
    agi_port, ami_port = free_port(), free_port()
    conf = asterisk_tree(project_home, tmp_path, agi_port, ami_port)
    ext = tmp_path / "etc" / "extensions.conf"      # a citizen who waits long enough to hear it all
    ext.write_text(ext.read_text() + "\n[test-patient]\nexten => s,1,Answer()\n same => n,Wait(240)\n"
                                     " same => n,Hangup()\n")
    daemon = start_pbx(conf)
    stop_engine = None
    try:
        await booted(conf)
        for seat in ("101", "102", "109"):
            cli(conf, f"queue pause member Local/{seat}@ivr-seats/n")
        engine, stop_engine = await _start_engine(redis, redis_url, project_home, tmp_path / "ivr", agi_port,
                                                  ami_port)
        for n in ("1", "2", "3"):                 # level 0: straight into the queue, where they wait
            res = await engine.controller.originate({
                "Channel": f"Local/{n}@test-citizen", "Context": "test-patient", "Exten": "s", "Priority": "1",
                "ActionID": f"adm-{n}"})
            assert res.ok, res.message

        async def three_waiting():
            return engine.live.outlook.get("general-q", {}).get(0, (0, 0.0, 0.0))[0] == 3
        await _until(three_waiting, 60, f"the outlook never showed 3 waiting: {engine.live.outlook}")
        await ContingencyStore(redis).set_level(2, by="live-test", reason="高峰", how="manual", now=time.time())
        # level 2 calls seats in (front-line unpaused, back-office added): keep every one of them busy elsewhere
        await until_cli(conf, "queue show general-q", lambda out: "Local/202@ivr-seats/n" in out, 30)
        for seat in ("101", "102", "109", "201", "202"):
            cli(conf, f"queue pause member Local/{seat}@ivr-seats/n")

        async def long_wait():
            return engine.live.outlook.get("general-q", {}).get(0, (0, 0.0, 0.0))[1] > 60
        await _until(long_wait, 30, f"the outlook never showed a long wait: {engine.live.outlook}")
        res = await engine.controller.originate({
            "Channel": "Local/4@test-citizen", "Context": "test-patient", "Exten": "s", "Priority": "1",
            "ActionID": "adm-4"})
        assert res.ok, res.message

        async def fourth_queued():
            return any(w.number == "13900000004" for w in engine.controller.model.waiting.values()) or \
                await _summary(engine, redis, "13900000004")
        await _until(fourth_queued, 180, "the fourth citizen never reached the queue")
        cli(conf, "channel request hangup all")
        s4 = await _until(lambda: _summary(engine, redis, "13900000004"), 30, "no summary of the fourth call")
        assert s4["level"] == "2" and s4["admission_offered"] == "1" and s4["callback_accepted"] == "0", \
            json.dumps(s4, ensure_ascii=False)
        assert int(s4["position_at_join"]) >= 1 and float(s4["wait_estimate_s"]) > 60, s4   # some were answered when level 2 called seats in
        assert "admission" in s4["steps"] and "say_wait" in s4["steps"] and not s4["failures"], s4
        # the peak path: offered before any long greeting or menu
        assert s4["steps"].startswith("known_urgent,admission,peak_announcements") and "menu" not in s4["steps"], s4

        # a citizen with a callback open dials again
        store = CallbackStore(redis)
        now = time.time()
        await store.record(store.record_args(
            number="13900000005", now=now, started=now - 60, kind="ordinary", reason="abandoned", flow="main",
            step="general_queue", wait_s=60.0, message="", not_before=now + 3600,
            deadlines={"emergency": now + 1800, "courtesy": now + 3600, "ordinary": now + 86400}, misdial=False))
        res = await engine.controller.originate({
            "Channel": "Local/5@test-citizen", "Context": "test-caller", "Exten": "s", "Priority": "1",
            "ActionID": "adm-5"})
        assert res.ok, res.message
        s5 = await _until(lambda: _summary(engine, redis, "13900000005"), 60, "no summary of the registered redial")
        assert s5["steps"].endswith("admission,registered_bye") and s5["queue_status"] == "", s5
        assert not s5["failures"] and s5["outcome"] == "completed", s5
    finally:
        if stop_engine is not None:
            await stop_engine()
        stop_pbx(daemon)
