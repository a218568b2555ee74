"""Follow-up calls (智能回访) on a real Asterisk 22 (skipped when no `asterisk`
binary is on PATH): a batch of three citizens; the engine's follow-up caller
originates ``Local/<n>@ivr-followup-out/n`` into the shipped ``[ivr-followup]``
with no seat. One citizen speaks (a prompt played from their side) and presses
1 every few seconds (the matter heard, 满意, and a voice comment), one answers and says nothing, one never answers (the trunk leg
rings out: NOANSWER, tried again after the policy's spacing). The outcome and
what was said are kept with each follow-up, ``kind: followup``.

Changed from the shipped files: paths, ports, secrets, and in ``[globals]``
``IVR_TRUNK = Local`` and ``IVR_CB_RING_S = 8``; the trunk's far end as in
tests/test_live_callback_survey.py; the site's calling hours all day (callback/policy.yaml)
so that the test runs at any hour."""

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from ivr.callback.followup import Candidate, FollowupStore, audit_id
from ivr.callback.trail import read_trail
from tests.conftest import copy_project
from tests.live_pbx import ASTERISK, asterisk_tree, booted, free_port, start_pbx, stop_pbx
from tests.test_live_callback_survey import AgiRecorder, AmiLogger, _cmds
from tests.test_live_lines import _start_engine, _until

pytestmark = [pytest.mark.live_asterisk,
              pytest.mark.skipif(ASTERISK is None, reason="no asterisk binary on PATH")]

PRESSER, SILENT, AWAY = "13900000021", "13900000022", "13900000023"
FAR = f"""
[test-far]
exten => {PRESSER},1,Answer()
 same => n(loop),Playback(12345/timeout)
 same => n,SendDTMF(1)
 same => n,Wait(3.5)
 same => n,Goto(loop)
exten => {SILENT},1,Answer()
 same => n,Wait(120)
 same => n,Hangup()
exten => {AWAY},1,Ringing()
 same => n,Wait(120)
"""


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "asterisk-22"


def _write_fixtures(sessions: list[dict], ami: AmiLogger) -> None:
    (FIXTURES / "agi" / "followup-without-a-seat.json").write_text(
        json.dumps({"env": sessions[0]["env"], "exchange": sessions[0]["exchange"], "other": sessions[1:]},
                   ensure_ascii=False, indent=1) + "\n")
    (FIXTURES / "ami" / "session-followup.json").write_text(json.dumps(ami.log, ensure_ascii=False, indent=1) + "\n")


async def test_a_follow_up_batch_is_called_without_a_seat_and_kept(redis, redis_url, project_home, tmp_path):
    started = time.monotonic()
    home = copy_project(project_home, tmp_path / "home")
    policy = home / "callback" / "policy.yaml"
    policy.write_text(policy.read_text().replace('calling_hours: ["08:00", "21:00"]',
                                                 'calling_hours: ["00:00", "23:59"]'))
    engine_port, ami_port = free_port(), free_port()
    recorder = AgiRecorder(engine_port)
    await recorder.start()
    conf = asterisk_tree(home, tmp_path, recorder.port, ami_port)
    ext = conf.parent / "extensions.conf"
    text = ext.read_text()
    dial = "Dial(${IVR_TRUNK}/${EXTEN},${IVR_CB_RING_S},b(ivr-trunk-line^s^1))"
    assert text.count(dial) == 1            # [ivr-followup-out]: the callback's has F(), the transfer's 30 s
    text = text.replace("IVR_TRUNK = PJSIP/trunk", "IVR_TRUNK = Local", 1)
    text = text.replace("IVR_CB_RING_S = 40", "IVR_CB_RING_S = 8", 1)
    text = text.replace(dial, dial.replace("${EXTEN},", "${EXTEN}@test-far,"))
    ext.write_text(text + FAR)
    daemon = start_pbx(conf)
    stop_engine = ami = None
    try:
        await booted(conf)
        ami = AmiLogger(ami_port)
        await ami.start()
        # where Asterisk writes the voice comments: the engine's messages folder, shared with the PBX
        # (RECORD FILE into a folder that is not there answers `200 result=-1 (randomerror) endpos=0`)
        (tmp_path / "ivr" / "messages").mkdir(parents=True)
        # and the stock sound `beep` RECORD FILE plays first (Asterisk's core sounds; this test tree has only
        # the project's prompts: without it the answer is `200 result=-1 (randomerror) endpos=0`)
        shutil.copy(home / "prompts" / "survey-thanks.wav", tmp_path / "data" / "sounds" / "beep.wav")
        engine, stop_engine = await _start_engine(redis, redis_url, home, tmp_path / "ivr", engine_port, ami_port)
        store = FollowupStore(redis)
        now = time.time()
        chosen = [Candidate(f"cb{n}", n, "Local/101@ivr-seats/n", "ordinary", now - 3600)
                  for n in (PRESSER, SILENT, AWAY)]
        _, ids = await store.create(chosen, now=now, by="test", share=1.0, of="reached-callbacks", day="", kind="")
        fids = dict(zip((PRESSER, SILENT, AWAY), ids, strict=True))

        async def settled():
            items = {n: await store.item(f) for n, f in fids.items()}
            done = (items[PRESSER].get("survey") and items[SILENT].get("survey")
                    and items[AWAY].get("last_outcome"))
            return items if done else None
        items = await _until(settled, 150, "the follow-ups never settled")
        text = json.dumps(items, ensure_ascii=False)
        p, s, a = items[PRESSER], items[SILENT], items[AWAY]
        assert (p["state"], p["closed_reason"], p["heard"], p["survey"]) == ("closed", "reached", "yes",
                                                                              "satisfied"), text
        assert p["kind"] == "followup" and p["survey_seat"] == "Local/101@ivr-seats/n", text
        assert p["comment"].startswith("msg-"), text                                  # the voice comment
        assert (s["closed_reason"], s["heard"], s["survey"]) == ("reached", "", "no_answer"), text
        assert (a["state"], a["last_outcome"], a["attempts"]) == ("open", "no_answer", "1"), text
        assert float(a["next_at"]) >= float(a["last_attempt_at"]) + 600, text       # the policy's 10m spacing
        trail = [e["kind"] for _, e in await read_trail(redis, {"id": audit_id(fids[PRESSER]), "first_at": now})]
        assert trail[0] == "followup_assigned" and {"followup_attempt", "followup_closed",
                                                     "followup_answered"} <= set(trail), trail
    finally:
        if stop_engine is not None:
            await stop_engine()
        if ami is not None:
            await ami.stop()
            (tmp_path / "ami.json").write_text(json.dumps(ami.log, ensure_ascii=False))
            (tmp_path / "agi.json").write_text(json.dumps(recorder.sessions, ensure_ascii=False))
        await recorder.stop()
        stop_pbx(daemon)
    sessions = [x for x in recorder.sessions if x["env"].get("agi_network_script") == "followup"]
    assert len(sessions) == 2, [x["env"] for x in recorder.sessions]        # the one away never ran the flow
    env = sessions[0]["env"]
    assert env["agi_context"] == "ivr-followup" and env["agi_channel"].startswith("Local/1390000002"), env
    assert not any("ivr-seats" in x["env"].get("agi_channel", "") for x in sessions)      # no seat took part
    statuses = sorted(e["msg"].get("DialStatus", "") for e in ami.events("UserEvent")
                      if e["msg"].get("UserEvent") == "IvrFollowup")
    assert statuses == ["ANSWER", "ANSWER", "NOANSWER"], statuses
    cmds = _cmds(next(x for x in sessions if PRESSER in x["env"]["agi_channel"]))
    assert any(c.startswith("RECORD FILE") for c, _ in cmds), cmds
    if os.environ.get("IVR_WRITE_FIXTURES") == "1":
        _write_fixtures(sessions, ami)
    print(f"live follow-up: {time.monotonic() - started:.1f} s")
