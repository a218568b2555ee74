"""The survey after a callback on a real Asterisk 22 (skipped when no
`asterisk` binary is on PATH), with the shipped asterisk/ files and
flows/callback_survey.yaml: two missed calls are due; the engine's callback
scheduler originates two seats into the shipped ``[ivr-callback]``; each seat
hears the whisper, the citizen is dialled and answers, and the seat hangs up
after a short conversation. Dial's ``F(ivr-callback-survey^s^1)`` sends the
citizen's leg on (fact 14): it runs ``AGI(.../callback_survey)`` on the
citizen's channel; one citizen presses 2 (基本满意), the other presses nothing
(no_answer). Both answers are kept on the closed callback record with the seat
and the time, and in its audit trail.

Changed from the shipped files, as tests/capture_line_count.py does: paths,
ports, secrets, ``IVR_SEAT_TECH``/``IVR_TRUNK`` = Local (``[globals]``), and the
trunk's far end (``${IVR_TRUNK}/${EXTEN}`` -> ``${IVR_TRUNK}/${EXTEN}@test-far``:
a Local channel needs a context where a real trunk has none); Dial's options,
``F()`` included, are the shipped ones.

Every FastAGI line passes through a recording proxy and a raw AMI client logs
every event: with IVR_WRITE_FIXTURES=1 the run is written to
tests/fixtures/asterisk-22/ (``agi/callback-seat-hangs-up-then-survey.json``,
``ami/session-callback-survey.json``)."""

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from ivr.callback.store import CallbackStore
from ivr.callback.trail import read_trail
from tests.live_pbx import ASTERISK, asterisk_tree, booted, free_port, start_pbx, stop_pbx
from tests.test_live_lines import _start_engine, _until

pytestmark = [pytest.mark.live_asterisk,
              pytest.mark.skipif(ASTERISK is None, reason="no asterisk binary on PATH")]

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "asterisk-22"
RATER, SILENT = "13900000007", "13900000008"
SEAT_TALKS_S = 14           # the seat's phone: answers, whisper (5 s) and digits, a few seconds' talk, hangs up

CONTEXTS = f"""
[default]
; this test's seats: answer the callback, stay {SEAT_TALKS_S} s, hang up (exact matches beat _1XX)
exten => 101,1,Answer()
 same => n,Wait({SEAT_TALKS_S})
 same => n,Hangup()
exten => 102,1,Answer()
 same => n,Wait({SEAT_TALKS_S})
 same => n,Hangup()
exten => 109,1,Answer()
 same => n,Wait({SEAT_TALKS_S})
 same => n,Hangup()

[test-far]
; the far end of the trunk: the citizens' phones
exten => {RATER},1,Answer()
 same => n(loop),Wait(1)
 same => n,SendDTMF(2)
 same => n,Goto(loop)
exten => {SILENT},1,Answer()
 same => n,Wait(120)
 same => n,Hangup()
"""


class AgiRecorder:
    """A FastAGI proxy in front of the engine that keeps every line, as
    /work/shared/asterisk-22/capture.py logs them: ``{t, from, raw}``."""

    def __init__(self, engine_port: int) -> None:
        self.engine_port = engine_port
        self.sessions: list[dict] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, a_reader, a_writer) -> None:
        t0 = time.monotonic()
        session: dict = {"wall": time.time(), "env": {}, "exchange": []}
        self.sessions.append(session)
        e_reader, e_writer = await asyncio.open_connection("127.0.0.1", self.engine_port)

        async def pump(reader, writer, who: str) -> None:
            while True:
                line = await reader.readline()
                if not line:
                    break
                text = line.decode(errors="replace")
                session["exchange"].append({"t": round(time.monotonic() - t0, 3), "from": who, "raw": text})
                if who == "asterisk" and text.startswith("agi_") and ": " in text:
                    k, _, v = text.rstrip("\n").partition(": ")
                    session["env"].setdefault(k, v)
                writer.write(line)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

        try:
            await asyncio.gather(pump(a_reader, e_writer, "asterisk"), pump(e_reader, a_writer, "engine"),
                                 return_exceptions=True)
        finally:
            session["exchange"].append({"t": round(time.monotonic() - t0, 3), "event": "closed"})
            for w in (a_writer, e_writer):
                w.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class AmiLogger:
    """A raw AMI client that logs every message: ``{t, msg, raw}``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.log: list[dict] = []
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.log.append({"banner": (await reader.readline()).decode()})
        self.writer.write(b"Action: Login\r\nActionID: log-1\r\nUsername: ivr\r\nSecret: live-test-secret\r\n"
                          b"Events: on\r\n\r\n")
        self.task = asyncio.create_task(self._read(reader))

    async def _read(self, reader) -> None:
        while True:
            try:
                raw = (await reader.readuntil(b"\r\n\r\n")).decode(errors="replace")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            msg: dict = {}
            for line in raw.split("\r\n"):
                if not line:
                    continue
                k, _, v = line.partition(": ")
                msg[k] = (msg[k] if isinstance(msg[k], list) else [msg[k]]) + [v] if k in msg else v
            self.log.append({"t": time.time(), "msg": msg, "raw": raw})

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.writer.close()

    def events(self, name: str) -> list[dict]:
        return [e for e in self.log[1:] if e["msg"].get("Event") == name]


def _shipped_with_far_end(conf: Path) -> None:
    ext = conf.parent / "extensions.conf"
    text = ext.read_text()
    dial = "Dial(${IVR_TRUNK}/${EXTEN},${IVR_CB_RING_S},b(ivr-trunk-line^s^1)F(ivr-callback-survey^s^1))"
    assert dial in text, "the shipped [ivr-callback] no longer dials with F()"
    text = text.replace("IVR_TRUNK = PJSIP/trunk", "IVR_TRUNK = Local", 1)
    text = text.replace(dial, dial.replace("${EXTEN},", "${EXTEN}@test-far,"), 1)
    ext.write_text(text + CONTEXTS)


async def _record_missed_call(store: CallbackStore, number: str, now: float) -> str:
    """A missed call due now (as the capture records one; calling hours are
    applied when it is recorded, so the time of day of the test does not matter)."""
    args = store.record_args(number=number, now=now, started=now - 60, kind="ordinary", reason="abandoned",
                             flow="main", step="general_queue", wait_s=40.0, message="", not_before=now - 1,
                             deadlines={"emergency": 7200, "courtesy": 14400, "ordinary": 86400}, misdial=False)
    what, cid, _ = await store.record(args)
    assert what == "recorded", what
    return cid


def _cmds(session: dict) -> list[tuple[str, str]]:
    """(command, Asterisk's answer) of one AGI session, in order."""
    out, cmd = [], None
    for line in session["exchange"]:
        raw = line.get("raw", "")
        if line.get("from") == "engine":
            cmd = raw.strip()
        elif line.get("from") == "asterisk" and cmd is not None and raw[:3].isdigit():
            out.append((cmd, raw.strip()))
            cmd = None
    return out


async def test_after_a_callback_the_seat_hangs_up_and_the_citizen_stays_on_the_line_to_rate(
        redis, redis_url, project_home, tmp_path):
    started = time.monotonic()
    engine_port, ami_port = free_port(), free_port()
    recorder = AgiRecorder(engine_port)
    await recorder.start()
    conf = asterisk_tree(project_home, tmp_path, recorder.port, ami_port)
    _shipped_with_far_end(conf)
    daemon = start_pbx(conf)
    stop_engine = ami = None
    try:
        await booted(conf)
        ami = AmiLogger(ami_port)
        await ami.start()
        engine, stop_engine = await _start_engine(redis, redis_url, project_home, tmp_path / "ivr", engine_port,
                                                  ami_port)
        store = CallbackStore(redis)
        ids = {n: await _record_missed_call(store, n, time.time()) for n in (RATER, SILENT)}

        async def closed(number: str):
            rec = await store.closed_record(ids[number])
            return rec if rec and rec.get("survey") else None
        rated = await _until(lambda: closed(RATER), 120, "the rater's callback never had its survey")
        silent = await _until(lambda: closed(SILENT), 120, "the silent citizen's callback never had its survey")
        text = json.dumps([rated, silent], ensure_ascii=False)
        for rec in (rated, silent):
            assert (rec["state"], rec["closed_reason"], rec["last_outcome"]) == ("closed", "reached", "reached"), text
            assert rec["survey_seat"] == rec["last_seat"] and rec["survey_seat"].startswith("Local/1"), text
            assert float(rec["survey_at"]) >= float(rec["last_attempt_at"]), text      # after the seat hung up
        assert rated["survey"] == "basically_satisfied" and silent["survey"] == "no_answer", text
        trail = [e for _, e in await read_trail(redis, rated)]
        assert [e["kind"] for e in trail][-4:] == ["assigned", "attempt", "closed", "survey"], trail
        assert trail[-1]["rating"] == "basically_satisfied" and trail[-1]["seat"] == rated["last_seat"]
        await asyncio.sleep(1)      # the last lines of the AGI sessions and AMI events
    finally:
        if stop_engine is not None:
            await stop_engine()
        if ami is not None:
            await ami.stop()
        await recorder.stop()
        stop_pbx(daemon)

    # what Asterisk did: the survey ran on the citizen's channel, after the seat had hung up
    surveys = [s for s in recorder.sessions if s["env"].get("agi_network_script") == "callback_survey"]
    assert len(surveys) == 2, [s["env"] for s in recorder.sessions]
    by_number = {s["env"].get("agi_arg_4", "").removeprefix("number="): s for s in surveys}
    session = by_number[RATER]
    env = session["env"]
    assert env["agi_channel"].startswith(f"Local/{RATER}@test-far-"), env       # the citizen's leg, not the seat's
    assert env["agi_context"] == "ivr-callback-survey" and env["agi_arg_1"] == f"callback={ids[RATER]}", env
    cmds = _cmds(session)
    get_data = next(ans for cmd, ans in cmds if cmd.startswith("GET DATA"))
    assert get_data == "200 result=2", cmds              # the citizen was there: pressed 2 after the seat left
    thanks = next(ans for cmd, ans in cmds if "survey-thanks" in cmd)
    assert thanks.startswith("200 result=0 endpos=") and not thanks.endswith("endpos=0"), cmds
    silent_cmds = _cmds(by_number[SILENT])
    assert [ans for cmd, ans in silent_cmds if cmd.startswith("GET DATA")] == ["200 result= (timeout)"] * 2, \
        silent_cmds
    seat_hangups = [e for e in ami.events("Hangup")
                    if e["msg"].get("Context") == "ivr-callback" and e["msg"].get("Channel", "").startswith("Local/1")]
    assert seat_hangups and min(e["t"] for e in seat_hangups) <= session["wall"] + 0.5, seat_hangups
    dial_status = [e["msg"].get("DialStatus") for e in ami.events("UserEvent")
                   if e["msg"].get("UserEvent") == "IvrCallback"]
    assert dial_status == ["ANSWER", "ANSWER"], dial_status
    if os.environ.get("IVR_WRITE_FIXTURES") == "1":
        (FIXTURES / "agi" / "callback-seat-hangs-up-then-survey.json").write_text(
            json.dumps({"env": env, "exchange": session["exchange"], "silent_citizen": by_number[SILENT]},
                       ensure_ascii=False, indent=1) + "\n")
        (FIXTURES / "ami" / "session-callback-survey.json").write_text(
            json.dumps(ami.log, ensure_ascii=False, indent=1) + "\n")
    print(f"live callback survey: {time.monotonic() - started:.1f} s")
