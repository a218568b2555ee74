"""Two real Asterisk 22 processes, one engine set (issue 20; skipped when no
`asterisk` binary is on PATH).

PBX ``a`` is the engine's own link (``IVR_AMI_URL``); PBX ``b`` is named in
``queue/pbxs.yaml`` with ``ami://ivr@127.0.0.1:PORT`` and its secret in
``IVR_AMI_SECRET_B`` (``secret_env``). Each runs the shipped asterisk/ files
with its own directories, ports and ``systemname`` (``pbx-a``, ``pbx-b``: the
uniqueids of the two never collide). Changed from the shipped files, as the
other live tests do: paths, ports, secrets, ``IVR_SEAT_TECH``/``IVR_TRUNK`` =
Local and the trunk's far end (``${EXTEN}@test-far``), and on ``b`` its seats
(queue members 301, 302, 309 instead of 101, 102, 109; on a, none: nobody
logged in).

1. A citizen calls PBX a, where no seat is logged in, waits in general-q and
   hangs up: the missed call is called back through an idle seat of PBX b,
   originated on b (b's dialplan runs ``[ivr-callback]``; a's never does), and
   the audit trail says PBX b.
2. An emergency caller on PBX a, where no emergency seat is logged in, is
   taken over IAX2 (the shipped asterisk/iax.conf, only its port and secret
   changed) to PBX b's emergency queue, where a seat answers: a's summary says
   moved to b and asks for no seat, b's says answered; no missed call. Then
   b's IAX2 is gone (its AMI still up): the next emergency caller on a rings
   b for at most 5 s and waits in line at home; hung up there, a missed
   emergency call.
3. PBX a is killed: a citizen calling b still reaches a seat, and the engine
   says which PBX is down (``/healthz`` pbxs, ``ivr_pbx_up{pbx="a"} 0``).

Not here: the queue_log reconciliation over two PBXs. ``IVR_QUEUE_LOG`` is one
path, read as the record of the engine's own link PBX (``leader_work.py``):
there is no queue_log per PBX yet (docs/deploy.md, "Not yet")."""

import asyncio
import datetime as dt
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ivr import logs
from ivr.callback.pbx_record import Verdict
from ivr.callback.store import CallbackStore
from ivr.callback.trail import read_trail
from ivr.calls.service import read_summary
from ivr.redisdb import keys
from ivr.runtime.engine import Engine
from ivr.services.pbx_record import reconciliation
from ivr.settings import load_settings
from ivr.web.app import make_app
from tests.conftest import copy_project
from tests.live_pbx import ASTERISK, asterisk_tree, booted, cli, free_port, start_pbx, stop_pbx, until_cli
from tests.test_live_callback_survey import AmiLogger
from tests.test_live_lines import _until

pytestmark = [pytest.mark.live_asterisk,
              pytest.mark.skipif(ASTERISK is None, reason="no asterisk binary on PATH")]

MISSED = "13900000001"        # Local/1@test-citizen, on PBX a
ON_B = "13900000002"          # Local/2@test-citizen, on PBX b
CUT_OFF = "13900000003"       # Local/3@test-citizen, waiting on PBX a when it dies
EMERGENCY = "13900000004"     # Local/4@test-citizen, on PBX a, on the urgent-callers list: the emergency path
STAYED = "13900000005"        # Local/5@test-citizen, the same, while PBX b's IAX2 is gone
A_SEATS = ("Local/101@ivr-seats/n", "Local/102@ivr-seats/n", "Local/109@ivr-seats/n")
B_SEATS = ("Local/301@ivr-seats/n", "Local/302@ivr-seats/n", "Local/309@ivr-seats/n")

CONTEXTS = """
[default]
; PBX b's seat phones: answer, talk a while (the callback's whisper is ~5 s), hang up
exten => _3XX,1,Answer()
 same => n,Wait(12)
 same => n,Hangup()

[test-far]
; the far end of the trunk: the citizen's phone answers a callback, talks, hangs up
exten => _X.,1,Answer()
 same => n,Wait(3)
 same => n,Hangup()
"""


def _pbx(project_home: Path, tmp: Path, name: str, agi_port: int, ami_port: int, iax_port: int) -> Path:
    """One PBX's tree: the shipped files, this PBX's ports, directories, systemname and seats."""
    tmp.mkdir()
    conf = asterisk_tree(project_home, tmp, agi_port, ami_port)
    iax = (project_home / "asterisk" / "iax.conf").read_text()
    assert "bindport = 4569" in iax
    # its port, and the trunk's secret changed from the shipped one (a PBX still on that is named no peer)
    (conf.parent / "iax.conf").write_text(iax.replace("bindport = 4569", f"bindport = {iax_port}")
                                          .replace("bindaddr = 0.0.0.0", "bindaddr = 127.0.0.1")
                                          .replace("secret = change-this-peer-secret", "secret = live-peer-secret"))
    shutil.copy(project_home / "asterisk" / "logger.conf", conf.parent / "logger.conf")   # queue_log on, as shipped
    conf.write_text(conf.read_text().replace("[options]\n", f"[options]\nsystemname = pbx-{name}\n"))
    ext = conf.parent / "extensions.conf"
    text = ext.read_text()
    dial = "Dial(${IVR_TRUNK}/${EXTEN},${IVR_CB_RING_S},"
    assert dial in text and "IVR_TRUNK = PJSIP/trunk" in text
    text = text.replace("IVR_TRUNK = PJSIP/trunk", "IVR_TRUNK = Local", 1)
    assert "IVR_PEER_SECRET = change-this-peer-secret" in text
    text = text.replace("IVR_PEER_SECRET = change-this-peer-secret", "IVR_PEER_SECRET = live-peer-secret", 1)
    ext.write_text(text.replace(dial, dial.replace("${EXTEN},", "${EXTEN}@test-far,")) + CONTEXTS)
    queues = conf.parent / "queues.conf"
    text = queues.read_text()
    if name == "a":                      # nobody logged in on PBX a: its queues have no members
        queues.write_text("".join(ln for ln in text.splitlines(keepends=True) if not ln.startswith("member =>")))
    else:
        for seat in ("101", "102", "109"):
            text = text.replace(f"Local/{seat}@", f"Local/3{seat[1:]}@").replace(f"Seat{seat}", f"Seat3{seat[1:]}")
            text = text.replace(f"Custom:seat{seat}", f"Custom:seat3{seat[1:]}")
        queues.write_text(text)
    return conf


def _home(project_home: Path, dst: Path, ami_port_b: int, iax_ports: tuple[int, int]) -> Path:
    """The project's data files with queue/pbxs.yaml naming both PBXs, where
    the leader reads each one's queue_log (their trees, beside ``dst``) and
    where each is reached over IAX2; the emergency citizen on the urgent list."""
    home = copy_project(project_home, dst)
    (home / "queue" / "pbxs.yaml").write_text(
        "pbxs:\n"
        "  a:\n    ami: IVR_AMI_URL\n    queues: [general-q, emergency-q]\n"
        f"    seats: [{', '.join(A_SEATS)}, Local/201@ivr-seats/n]\n"
        f"    queue_log: {dst.parent / 'a' / 'log' / 'queue_log'}\n"
        f"    peer_address: 127.0.0.1:{iax_ports[0]}\n"
        f"  b:\n    ami: ami://ivr@127.0.0.1:{ami_port_b}\n    secret_env: IVR_AMI_SECRET_B\n"
        f"    queues: [general-q, emergency-q]\n    seats: [{', '.join(B_SEATS)}, Local/202@ivr-seats/n]\n"
        f"    queue_log: {dst.parent / 'b' / 'log' / 'queue_log'}\n"
        f"    peer_address: 127.0.0.1:{iax_ports[1]}\n",
        encoding="utf-8")
    urgent = home / "flows" / "lists" / "urgent-callers.txt"
    urgent.write_text(urgent.read_text(encoding="utf-8") + EMERGENCY + "\n" + STAYED + "\n", encoding="utf-8")
    return home


def _midday_zone() -> str:
    """A time zone where it is about noon now: callbacks are made within calling hours (08:00-21:00)."""
    offset = (12 - dt.datetime.now(dt.UTC).hour + 12) % 24 - 12          # -12 .. 11 hours east of UTC
    return "Etc/GMT" + (f"{-offset:+d}" if offset else "")                # Etc/GMT-8 is UTC+8


def _stop(daemon: subprocess.Popen) -> None:
    if daemon.poll() is None:
        stop_pbx(daemon)


async def _summary_of(eng: Engine, number: str, on: str = "pbx-") -> dict | None:
    """The first summary of ``number``'s calls whose uniqueid begins with ``on`` (its PBX's systemname)."""
    await eng.summaries.flush()
    return next((s for s in (read_summary(f) for _, f in await eng.redis.xrange(keys.CALLS))
                 if s["number"] == number and s["uniqueid"].startswith(on)), None)


async def _closed(store: CallbackStore, cid: str) -> dict | None:
    got = await store.closed_record(cid)
    return got if got and got.get("state") == "closed" else None


def _callback_events(logger: AmiLogger) -> list[dict]:
    """What a PBX's AMI told of a callback's dialplan ([ivr-callback])."""
    return [e["msg"] for e in logger.log[1:]
            if e["msg"].get("Context") == "ivr-callback" or e["msg"].get("UserEvent") == "IvrCallback"]


async def _missed_on_a_called_back_on_b(eng: Engine, conf_a: Path, loggers: dict[str, AmiLogger]) -> None:
    # a citizen on PBX a waits in general-q with no seat there, and hangs up
    out = cli(conf_a, "channel originate Local/1@test-citizen extension s@test-caller")
    assert "rror" not in out, out
    await until_cli(conf_a, "queue show general-q", lambda out: "has 1 call" in out, 60)
    await asyncio.sleep(7)             # waits longer than short_abandon_s (5 s): not a misdial
    cli(conf_a, "channel request hangup all")
    store = CallbackStore(eng.redis)
    rec = await _until(lambda: store.open_record(MISSED), 60, "the missed call on PBX a was never recorded")
    assert rec["reason"] == "abandoned", rec
    summary = await _summary_of(eng, MISSED)
    assert summary is not None and summary["uniqueid"].startswith("pbx-a-"), summary

    # ... and is called back through an idle seat on PBX b, originated on b
    done = await _until(lambda: _closed(store, rec["id"]), 120, f"the callback never closed: {rec}")
    assert (done["closed_reason"], done["last_outcome"]) == ("reached", "reached"), done
    assert done["last_seat"] in B_SEATS, done
    trail = [e for _, e in await read_trail(eng.redis, done)]
    assigned = [e for e in trail if e["kind"] == "assigned"]
    assert [(e["seat"], e.get("pbx")) for e in assigned] == [(done["last_seat"], "b")], trail
    assert [e.get("pbx") for e in trail if e["kind"] == "attempt"] == ["b"], trail
    on_b = _callback_events(loggers["b"])
    assert [m.get("DialStatus") for m in on_b if m.get("UserEvent") == "IvrCallback"] == ["ANSWER"], on_b
    assert any(m.get("Exten") == MISSED for m in on_b), on_b
    assert _callback_events(loggers["a"]) == []                   # PBX a never ran the callback
    # each PBX's systemname, learned from its calls' uniqueids: the reconciliation judges a call on its own PBX
    assert eng.work is not None
    assert {p.name: p.systemname for p in eng.work.links} == {"a": "pbx-a", "b": "pbx-b"}


async def _emergency_on_a_moved_to_b(eng: Engine, conf_a: Path, conf_b: Path) -> None:
    # an emergency caller on PBX a, where no emergency seat is logged in
    out = cli(conf_a, "channel originate Local/4@test-citizen extension s@test-caller")
    assert "rror" not in out, out
    on_b = await _until(lambda: _summary_of(eng, EMERGENCY, "pbx-b-"), 120,
                        "the emergency caller never reached PBX b's emergency queue")
    on_a = await _until(lambda: _summary_of(eng, EMERGENCY, "pbx-a-"), 60, "no summary of the call on PBX a")
    # a: taken to b over the trunk; it asks for no seat of its own (counted on b, once)
    assert (on_a["moved_to"], on_a["wanted_person"], on_a["emergency"]) == ("b", "0", "1"), on_a
    assert on_a["queue_status"] == "" and on_a["steps"] == "known_urgent,emergency_queue", on_a
    # b: the flow for moved callers, straight to the emergency seats, answered there
    assert (on_b["flow"], on_b["queue"], on_b["emergency"]) == ("emergency_moved", "emergency", "1"), on_b
    assert on_b["queue_status"] == "ANSWERED" and on_b["member"] in B_SEATS, on_b
    assert await CallbackStore(eng.redis).open_record(EMERGENCY) is None      # reached: no missed call
    # PBX b's own record shows the emergency caller connected there
    log_b = conf_b.parent.parent / "log" / "queue_log"
    rows = [ln.split("|") for ln in log_b.read_text().splitlines()]
    assert any(r[1] == on_b["uniqueid"] and r[2] == "emergency-q" and r[4] == "CONNECT" for r in rows if len(r) > 4)


async def _peer_unreachable_the_caller_waits_at_home(eng: Engine, conf_a: Path, conf_b: Path) -> None:
    out = cli(conf_b, "module unload chan_iax2.so")          # b's trunk gone, its AMI still up
    assert "rror" not in out, out
    try:
        started = time.monotonic()
        out = cli(conf_a, "channel originate Local/5@test-citizen extension s@test-caller")
        assert "rror" not in out, out
        await until_cli(conf_a, "queue show emergency-q", lambda out: "has 1 call" in out, 60)
        waited = time.monotonic() - started
        assert waited < 20, f"the failed move held the caller {waited:.1f} s before they joined the line at home"
        await asyncio.sleep(6)           # waits longer than short_abandon_s (5 s): not a misdial
        cli(conf_a, "channel request hangup all")
        s = await _until(lambda: _summary_of(eng, STAYED, "pbx-a-"), 60, "no summary of the caller who stayed")
        assert (s["moved_to"], s["wanted_person"], s["emergency"]) == ("", "1", "1"), s
        assert s["queue"] == "emergency" and s["queue_status"] == "ABANDONED", s
        rec = await _until(lambda: CallbackStore(eng.redis).open_record(STAYED), 60, "the stayed caller not recorded")
        assert rec["kind"] == "emergency", rec
    finally:
        cli(conf_b, "module load chan_iax2.so")


async def _a_dies_b_carries_on(eng: Engine, settings, conf_a: Path, conf_b: Path, pbx_a: subprocess.Popen) -> None:
    # PBX a dies with a citizen waiting there
    out = cli(conf_a, "channel originate Local/3@test-citizen extension s@test-caller")
    assert "rror" not in out, out
    await until_cli(conf_a, "queue show general-q", lambda out: "has 1 call" in out, 60)
    await asyncio.sleep(6)             # waits longer than short_abandon_s (5 s)
    pbx_a.send_signal(signal.SIGKILL)
    pbx_a.wait(10)

    async def a_down():
        return not eng.controllers["a"].ready.is_set()
    await _until(a_down, 30, "the engine never noticed PBX a went away")
    # PBX b's callers carry on: a citizen there reaches a seat
    out = cli(conf_b, "channel originate Local/2@test-citizen extension s@test-caller")
    assert "rror" not in out, out
    s = await _until(lambda: _summary_of(eng, ON_B), 120, "the call on PBX b never ended")
    assert s["queue_status"] == "ANSWERED" and s["member"] in B_SEATS, s
    assert s["uniqueid"].startswith("pbx-b-"), s
    # each PBX's own record, read from its own queue_log: b's answered call agrees with the engine's

    async def on_b_agreed():
        report = await reconciliation(eng.redis, time.time() - 3600, time.time() + 60)
        calls = {c["uniqueid"]: (p["pbx"], c) for p in report["pbxs"] for c in p["calls"]}
        pbx, row = calls.get(s["uniqueid"], ("", {}))
        return row if pbx == "b" and row.get("verdict") == Verdict.AGREED else None
    row = await _until(on_b_agreed, 60, "PBX b's queue_log never showed the answered call")
    assert row["outcome"] == "answered" and row["agent"] in {f"Seat3{n}" for n in ("01", "02", "09")}, row
    assert eng.controllers["b"].ready.is_set()
    # and the engine says which PBX is down
    web = TestClient(TestServer(make_app(redis=eng.redis, settings=settings)))
    await web.start_server()
    try:
        async def healthz():
            h = await (await web.get("/healthz")).json()
            return h if {p["name"]: p["state"] for p in h["pbxs"]} == {"a": "disconnected", "b": "connected"} else None
        await _until(healthz, 20, "/healthz never said PBX a is down")
        text = await (await web.get("/metrics")).text()
        assert 'ivr_pbx_up{pbx="a"} 0' in text and 'ivr_pbx_up{pbx="b"} 1' in text, text
    finally:
        await web.close()
    # the citizen cut off with PBX a is recorded as a missed call, and called back through PBX b
    cut = await _until(lambda: _summary_of(eng, CUT_OFF), 60, "no summary of the call cut off with PBX a")
    assert cut["uniqueid"].startswith("pbx-a-") and cut["queue_status"] != "ANSWERED", cut
    store = CallbackStore(eng.redis)

    async def recorded():
        return next((e for _, e in await store.audit.entries("-", "+")
                     if e["kind"] == "recorded" and e.get("call") == cut["uniqueid"]), None)
    entry = await _until(recorded, 60, f"the caller cut off with PBX a was not recorded: {cut}")
    done = await _until(lambda: _closed(store, entry["id"]), 120, f"the cut-off caller's callback never closed: {entry}")
    assert done["closed_reason"] == "reached" and done["last_seat"] in B_SEATS, done


async def test_two_pbxs_a_missed_call_on_a_called_back_on_b_then_a_dies_and_b_carries_on(
        redis, redis_url, project_home, tmp_path, monkeypatch):
    started = time.monotonic()
    agi_port, ami_a, ami_b, iax_a, iax_b = (free_port() for _ in range(5))
    conf_a = _pbx(project_home, tmp_path / "a", "a", agi_port, ami_a, iax_a)
    conf_b = _pbx(project_home, tmp_path / "b", "b", agi_port, ami_b, iax_b)
    home = _home(project_home, tmp_path / "home", ami_b, (iax_a, iax_b))
    pbx_a, pbx_b = (start_pbx(c) for c in (conf_a, conf_b))
    monkeypatch.setenv("IVR_AMI_SECRET_B", "live-test-secret")
    settings = load_settings({"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path / "ivr"), "IVR_REDIS_URL": redis_url,
                              "IVR_AGI_LISTEN": f"127.0.0.1:{agi_port}", "IVR_HTTP_LISTEN": "127.0.0.1:0",
                              "IVR_TIMEZONE": _midday_zone(),
                              "IVR_AMI_URL": f"ami://ivr:live-test-secret@127.0.0.1:{ami_a}"})
    eng = Engine(settings, redis, logs.get("live"))
    stop, ready = asyncio.Event(), asyncio.Event()
    task = None
    loggers: dict[str, AmiLogger] = {}
    try:
        for conf in (conf_a, conf_b):
            await booted(conf)
        assert "Local/301@ivr-seats/n" in cli(conf_b, "queue show general-q")
        assert "No Members" in cli(conf_a, "queue show general-q")          # nobody logged in on PBX a
        for name, port in (("a", ami_a), ("b", ami_b)):
            loggers[name] = AmiLogger(port)
            await loggers[name].start()
        task = asyncio.create_task(eng.run(stop, ready))
        await asyncio.wait_for(ready.wait(), 20)

        async def both_linked():
            c = eng.controllers
            return set(c) == {"a", "b"} and all(x.ready.is_set() for x in c.values())
        await _until(both_linked, 60, f"the engine never linked to both PBXs: {eng.controllers}")
        assert set(B_SEATS[:2]) <= set(eng.controllers["b"].model.seats) and not eng.controllers["a"].model.seats
        # each PBX's systemname, from CoreSettings at login: known before any of its calls is seen
        assert {n: c.system_name for n, c in eng.controllers.items()} == {"a": "pbx-a", "b": "pbx-b"}
        await _missed_on_a_called_back_on_b(eng, conf_a, loggers)
        print(f"missed call on a called back on b: {time.monotonic() - started:.1f} s")
        await _emergency_on_a_moved_to_b(eng, conf_a, conf_b)
        print(f"emergency caller on a moved to b: {time.monotonic() - started:.1f} s")
        await _peer_unreachable_the_caller_waits_at_home(eng, conf_a, conf_b)
        print(f"b's trunk gone, the caller waited on a: {time.monotonic() - started:.1f} s")
        await _a_dies_b_carries_on(eng, settings, conf_a, conf_b, pbx_a)
        print(f"live two PBXs: {time.monotonic() - started:.1f} s")
    finally:
        for lg in loggers.values():
            await lg.stop()
        if task is not None:
            stop.set()
            await asyncio.wait_for(task, 30)
        for daemon in (pbx_a, pbx_b):
            _stop(daemon)
