"""The survey on a real Asterisk 22 (skipped when no `asterisk` binary is on
PATH), with the shipped asterisk/ files and flows/main.yaml: a seat answers and
hangs up after 2 s; the citizen stays on the line (Queue option c), hears the
survey and presses 2 (基本满意), and the rating is kept with the call. A citizen
who presses nothing after the conversation is recorded as no_answer."""

import json

import pytest

from ivr.calls.service import read_summary
from ivr.redisdb import keys
from tests.live_pbx import ASTERISK, asterisk_tree, booted, free_port, start_pbx, stop_pbx
from tests.test_live_lines import _start_engine, _until

pytestmark = [pytest.mark.live_asterisk,
              pytest.mark.skipif(ASTERISK is None, reason="no asterisk binary on PATH")]

# The ;1 side of Local/N@test-citizen: a citizen who presses 2 every second (the
# greeting lets 2 through to the menu, 2 is "other matters" there, and 2 is the
# survey's 基本满意), and one who presses nothing and listens to the end.
RATERS = """
[test-rater]
exten => s,1,Answer()
 same => n(loop),Wait(1)
 same => n,SendDTMF(2)
 same => n,Goto(loop)

[test-silent]
exten => s,1,Answer()
 same => n,Wait(120)
 same => n,Hangup()
"""


async def _summary(engine, redis, number: str) -> dict | None:
    await engine.summaries.flush()
    for _, fields in await redis.xrange(keys.CALLS):
        s = read_summary(fields)
        if s.get("number") == number and s.get("outcome"):
            return s
    return None


async def test_the_citizen_stays_on_the_line_after_the_seat_hangs_up_and_rates_the_call(
        redis, redis_url, project_home, tmp_path):
    agi_port, ami_port = free_port(), free_port()
    conf = asterisk_tree(project_home, tmp_path, agi_port, ami_port)
    ext = tmp_path / "etc" / "extensions.conf"
    ext.write_text(ext.read_text() + RATERS)
    daemon = start_pbx(conf)
    stop_engine = None
    try:
        await booted(conf)
        engine, stop_engine = await _start_engine(redis, redis_url, project_home, tmp_path / "ivr", agi_port,
                                                  ami_port)
        for n, context in (("5", "test-rater"), ("6", "test-silent")):
            res = await engine.controller.originate({
                "Channel": f"Local/{n}@test-citizen", "Context": context, "Exten": "s", "Priority": "1",
                "ActionID": f"survey-{n}"})
            assert res.ok, res.message
        rated = await _until(lambda: _summary(engine, redis, "13900000005"), 180, "no summary of the rated call")
        silent = await _until(lambda: _summary(engine, redis, "13900000006"), 180, "no summary of the silent call")
        text = json.dumps([rated, silent], ensure_ascii=False)
        for s in (rated, silent):
            assert s["queue_status"] == "ANSWERED" and s["member"].startswith("Local/1"), text
            assert s["steps"].endswith("general_queue,survey"), text
            assert s["survey_seat"] == s["member"] and s["survey_at"] == s["ended"], text
        # the seat hung up 2 s into the conversation; the citizen was still there to answer
        assert rated["survey"] == "basically_satisfied" and rated["outcome"] == "completed", text
        assert silent["survey"] == "no_answer" and silent["outcome"] == "completed", text
    finally:
        if stop_engine is not None:
            await stop_engine()
        stop_pbx(daemon)
