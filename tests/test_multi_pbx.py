"""Several PBXs, one hotline (issue 20): the leader holds one AMI link per
PBX of queue/pbxs.yaml, each reconnecting on its own; the live figures are
each PBX's and the city's, summed. Two simulated Asterisks over real TCP:
both linked and shown; one stopped, the other's callers and figures carry
on and the engine says which PBX is down; back, it is linked again."""

import asyncio
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ivr import logs
from ivr.ami.city import city_observation, city_outlook, city_snapshot
from ivr.ami.model import LiveModel, Observation
from ivr.call_channel import pbx_system
from ivr.contingency.store import ContingencyStore
from ivr.redisdb import keys
from ivr.rehearsal.sim.agi_peer import Caller, SimChannel, run_call
from ivr.rehearsal.sim.ami_server import SimAmiServer
from ivr.rehearsal.sim.pbx import SimPbx
from ivr.runtime.engine import Engine
from ivr.settings import load_settings
from ivr.web.app import make_app
from tests.conftest import copy_project
from tests.test_ami_controller import shipped_pbx, until

B_SEATS = ("Local/301@ivr-seats/n", "Local/302@ivr-seats/n")


def pbx_b() -> SimPbx:
    import time

    pbx = SimPbx(time.time)
    pbx.add_queue("general-q")
    pbx.add_queue("emergency-q", strategy="ringall", weight=10)
    for i, seat in enumerate(B_SEATS):
        pbx.add_member("general-q", seat, f"Seat30{i + 1}", f"Custom:seat30{i + 1}")
    return pbx


# -- the sums (pure) ------------------------------------------------------------------------

def model_with(joins: list[tuple[str, str, int]], members: list[tuple[str, str]], now: float) -> LiveModel:
    m = LiveModel(emergency_queues=["emergency-q"])
    events = [{"Event": "QueueMember", "Queue": q, "Interface": i, "MemberName": i, "Status": "1", "Paused": "0",
               "Penalty": "0", "InCall": "0"} for q, i in members]
    events += [{"Event": "QueueParams", "Queue": q} for q in ("general-q", "emergency-q")]
    m.rebuild(events, now - 100)
    for n, (q, number, wait) in enumerate(joins):
        m.apply({"Event": "QueueCallerJoin", "Queue": q, "Channel": f"SIP/x-{number}", "Uniqueid": f"{number}.{n}",
                 "CallerIDNum": number, "Position": "1"}, now - wait)
    return m


def test_the_city_sums_the_pbxs_that_are_up_and_keeps_each_pbxs_own() -> None:
    now = 1000.0
    a = model_with([("general-q", "13800000001", 30), ("general-q", "13800000002", 10),
                    ("emergency-q", "13800000003", 5)],
                   [("general-q", "Local/101@s"), ("general-q", "Local/102@s")], now)
    b = model_with([("general-q", "13900000001", 50)], [("general-q", "Local/301@s")], now)
    c = model_with([("general-q", "13700000001", 999)], [("general-q", "Local/401@s")], now)
    snaps = {"a": a.snapshot(now), "b": b.snapshot(now), "c": c.snapshot(now)}
    city = city_snapshot({"a": (snaps["a"], True), "b": (snaps["b"], True), "c": (snaps["c"], False)}, now, "a")
    g = city["queues"]["general-q"]
    assert g["waiting"] == 3                             # a's 2 + b's 1; c is down: not counted
    assert g["longest_wait_s"] == 50.0                   # the worst PBX's, b
    assert [(c["pbx"], c["number"]) for c in g["callers"]] == [("b", "139******01"), ("a", "138******01"),
                                                               ("a", "138******02")]
    assert city["queues"]["emergency-q"]["waiting"] == 1 and city["emergency"]["waiting"] == 1
    assert sorted((s["pbx"], s["interface"]) for s in city["seats"]) == [
        ("a", "Local/101@s"), ("a", "Local/102@s"), ("b", "Local/301@s")]
    assert city["seat_states"]["idle"] == 3 and sum(city["seat_states"].values()) == 3
    assert city["ami_connected"] is False                # one PBX is down
    per = city["pbxs"]
    assert [(n, p["connected"], p["waiting"]) for n, p in per.items()] == [("a", True, 3), ("b", True, 1),
                                                                           ("c", False, 1)]
    assert per["a"]["queues"]["general-q"]["waiting"] == 2 and per["c"]["seat_states"]["idle"] == 1
    assert city["lines"] == snaps["a"]["lines"]          # the engine's own link PBX's lines
    # everyone up: the city's counts are the PBXs' added up, and the link reads connected
    every = city_snapshot({k: (v, True) for k, v in snaps.items()}, now, "a")
    assert every["queues"]["general-q"]["waiting"] == 4 and every["ami_connected"] is True


def test_the_city_outlook_is_the_longest_wait_of_the_pbxs() -> None:
    a = {"queues": {"general-q": {"0": [2, 60.0, 5.0], "10": [0, 0.0, 0.0]}}, "lines_low": False}
    b = {"queues": {"general-q": {"0": [1, 90.0, 8.0], "10": [0, 0.0, 0.0]},
                    "other-q": {"0": [0, 3.0, 1.0]}}, "lines_low": True}
    got = city_outlook({"a": a, "b": b})
    assert got["queues"]["general-q"]["0"] == [1, 90.0, 8.0] and got["queues"]["other-q"]["0"] == [0, 3.0, 1.0]
    assert got["lines_low"] is True and got["pbxs"] == {"a": a, "b": b}


def test_a_call_is_told_the_wait_and_the_lines_of_its_own_pbx() -> None:
    """A caller waits in their own PBX's queue and holds one of its lines. The
    engine was told the city's outlook: the longest wait of the PBXs and lines
    low if any PBX's were, so a caller on a PBX with free lines and seats was
    offered a callback for another PBX's peak (issue 20: "the line admission
    uses the call's own PBX"). The call's PBX is its uniqueid's systemname."""
    import orjson

    from ivr.calls.service import LiveState

    a = {"queues": {"general-q": {"0": [40, 300.0, 30.0]}}, "lines_low": True}
    b = {"queues": {"general-q": {"0": [0, 0.0, 0.0]}}, "lines_low": False}
    live = LiveState()
    live.use_outlook(orjson.dumps(city_outlook({"a": a, "b": b}, {"a": "pbx-a", "b": "pbx-b"})))
    now = dt.datetime(2026, 12, 6, 10, 0)
    on_b = live.facts(now, pbx_system("pbx-b-1796576333.12"))
    assert on_b.queues_now() == ({"general-q": {0: (0, 0.0, 0.0)}}, False)
    assert on_b.lines_low is False and on_b.outlook == {"general-q": {0: (0, 0.0, 0.0)}}
    assert live.facts(now, "pbx-a").queues_now() == ({"general-q": {0: (40, 300.0, 30.0)}}, True)
    # a call whose PBX is not known (no systemname set, or one not published): the city's, as before
    assert live.facts(now, "").queues_now() == ({"general-q": {0: (40, 300.0, 30.0)}}, True)
    assert live.facts(now, "pbx-c").queues_now()[1] is True
    # two PBXs without their own systemname cannot be told apart: neither is used
    live.use_outlook(orjson.dumps(city_outlook({"a": a, "b": b}, {"a": "", "b": ""})))
    assert live.facts(now, "").queues_now()[1] is True


def test_the_contingency_rules_look_at_the_city() -> None:
    a = Observation(calls_waiting=10, longest_wait_s=40.0, abandon_rate=0.5, offered=10)
    b = Observation(calls_waiting=5, longest_wait_s=90.0, abandon_rate=0.0, offered=30)
    got = city_observation([a, b])
    assert (got.calls_waiting, got.longest_wait_s, got.offered) == (15, 90.0, 40)
    assert got.abandon_rate == 5 / 40                    # 5 abandoned of 40 offered, not the rates' mean
    assert city_observation([]) == Observation(0, 0.0, 0.0, 0)


# -- two simulated PBXs over TCP ---------------------------------------------------------------

def ivr(args, env):
    return subprocess.run([sys.executable, "-m", "ivr", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


@contextlib.asynccontextmanager
async def running_city(redis, redis_url, project_home, tmp_path, monkeypatch, *, b_up: bool = True,
                       peer_secrets: tuple[str, str] | None = None):
    """main (IVR_AMI_URL) and b (ami://, its secret in IVR_AMI_SECRET_B), an
    engine linked to both (to b once it is up), the console's web app."""
    a, b = shipped_pbx(), pbx_b()
    a.system_name, b.system_name = "pbx-main", "pbx-b"      # asterisk.conf systemname (docs/deploy.md)
    if peer_secrets is not None:                             # extensions.conf [globals] IVR_PEER_SECRET of each
        a.globals["IVR_PEER_SECRET"], b.globals["IVR_PEER_SECRET"] = peer_secrets
    server_a, server_b = SimAmiServer(a), SimAmiServer(b, secret="secret-b")
    await server_a.start()
    await server_b.start()
    if not b_up:
        await server_b.stop()                            # its port known, nothing listening
    home = copy_project(project_home, tmp_path / "home")
    (home / "queue" / "pbxs.yaml").write_text(
        "pbxs:\n"
        "  main:\n    ami: IVR_AMI_URL\n"
        "    seats: [Local/101@ivr-seats/n, Local/102@ivr-seats/n, Local/109@ivr-seats/n, Local/201@ivr-seats/n]\n"
        f"  b:\n    ami: ami://ivr@127.0.0.1:{server_b.port}\n    secret_env: IVR_AMI_SECRET_B\n"
        f"    seats: [Local/202@ivr-seats/n, {', '.join(B_SEATS)}]\n"
        f"    queue_log: {tmp_path / 'pbx-b' / 'queue_log'}\n"
        + ("" if peer_secrets is None else "    peer_address: 10.0.0.12:4569\n"), encoding="utf-8")
    if peer_secrets is not None:
        text = (home / "queue" / "pbxs.yaml").read_text(encoding="utf-8")
        (home / "queue" / "pbxs.yaml").write_text(text.replace("    ami: IVR_AMI_URL\n",
                                                               "    ami: IVR_AMI_URL\n    peer_address: 10.0.0.11:4569\n"),
                                                  encoding="utf-8")
    monkeypatch.setenv("IVR_AMI_SECRET_B", "secret-b")
    env = {"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path / "data"), "IVR_AGI_LISTEN": "127.0.0.1:0",
           "IVR_HTTP_LISTEN": "127.0.0.1:0", "IVR_REDIS_URL": redis_url,
           "IVR_AMI_URL": f"ami://ivr:ivrsecret@127.0.0.1:{server_a.port}"}
    settings = load_settings(env)
    eng = Engine(settings, redis, logs.get("test"))
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(eng.run(stop, ready))
    web = TestClient(TestServer(make_app(redis=redis, settings=settings)))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        await until(lambda: len(eng.controllers) == 2 and eng.controllers["main"].ready.is_set()
                    and (eng.controllers["b"].ready.is_set() or not b_up), 10)
        await web.start_server()
        yield a, b, server_a, server_b, eng, env, web
    finally:
        await web.close()
        stop.set()
        await asyncio.wait_for(task, 15)
        await server_a.stop()
        await server_b.stop()


@pytest.fixture
async def city(redis, redis_url, project_home, tmp_path, monkeypatch):
    async with running_city(redis, redis_url, project_home, tmp_path, monkeypatch) as got:
        yield got


async def live(redis, cond, timeout=10.0):
    """The published live snapshot, once ``cond`` holds of it."""
    end = asyncio.get_running_loop().time() + timeout
    while True:
        raw = await redis.get(keys.LIVE)
        snap = json.loads(raw) if raw else None
        if snap is not None and cond(snap):
            return snap
        assert asyncio.get_running_loop().time() < end, f"the live figures never got there: {snap}"
        await asyncio.sleep(0.05)


async def test_two_pbxs_linked_one_down_the_other_carries_on_and_comes_back(city):
    a, b, server_a, server_b, eng, env, web = city
    # both linked: each PBX's own model, the city's figures summed
    assert set(eng.controllers) == {"main", "b"}
    assert eng.controllers["b"].model is not eng.controllers["main"].model
    a.join("general-q", "13800000001")
    b.join("general-q", "13900000001")
    b.join("general-q", "13900000002")
    server_a.flush()
    server_b.flush()
    snap = await live(eng.redis, lambda s: s["queues"]["general-q"]["waiting"] == 3)
    assert {n: (p["connected"], p["waiting"]) for n, p in snap["pbxs"].items()} == {"main": (True, 1), "b": (True, 2)}
    assert snap["ami_connected"] is True
    assert {s["interface"]: s["pbx"] for s in snap["seats"]}["Local/301@ivr-seats/n"] == "b"
    health = await (await web.get("/healthz")).json()
    assert [(p["name"], p["state"], p["linked"]) for p in health["pbxs"]] == [
        ("main", "connected", True), ("b", "connected", True)], health
    text = await (await web.get("/metrics")).text()
    for line in ('ivr_pbx_up{pbx="main"} 1', 'ivr_pbx_up{pbx="b"} 1', 'ivr_pbx_linked{pbx="b"} 1',
                 'ivr_pbx_queue_waiting{pbx="b",queue="general-q"} 2', 'ivr_queue_waiting{queue="general-q"} 3',
                 'ivr_pbx_seats{pbx="b",state="idle"} 2'):
        assert line in text, text

    # PBX b stops: the engine says b is down; main's callers and figures carry on
    await server_b.stop()
    await until(lambda: not eng.controllers["b"].ready.is_set(), 10)
    a.join("general-q", "13800000002")
    server_a.flush()
    snap = await live(eng.redis, lambda s: not s["pbxs"]["b"]["connected"] and s["pbxs"]["main"]["waiting"] == 2)
    assert snap["pbxs"]["main"]["connected"] is True and snap["ami_connected"] is False
    assert snap["queues"]["general-q"]["waiting"] == 2       # the city's figures: main's (b's are unknown)
    assert eng.controllers["main"].ready.is_set()
    health = await (await web.get("/healthz")).json()
    assert [(p["name"], p["state"]) for p in health["pbxs"]] == [("main", "connected"), ("b", "disconnected")]
    text = await (await web.get("/metrics")).text()
    assert 'ivr_pbx_up{pbx="main"} 1' in text and 'ivr_pbx_up{pbx="b"} 0' in text, text
    res = await asyncio.to_thread(ivr, ["status"], env)
    assert res.returncode == 0, res.stderr
    assert "未连接 DOWN: b" in res.stdout and "PBX b: 未连接 DOWN" in res.stdout, res.stdout
    assert "PBX main: 已连接 connected; 等待 waiting 2" in res.stdout, res.stdout
    call = await run_call("127.0.0.1", eng.agi.port, SimChannel(Caller(digits=["2"])))
    assert call.channel.vars.get("IVR_RESULT") == "DONE"    # the calls carry on
    # the leader's health, as it next publishes it (the key lapses between two writes on a loaded machine:
    # read as None under two pytest workers)
    end = asyncio.get_running_loop().time() + 10
    while (leader := await eng.redis.get(keys.LEADER_HEALTH)) is None:
        assert asyncio.get_running_loop().time() < end, "the leader's health was never published"
        await asyncio.sleep(0.05)
    parts = json.loads(leader)["parts"]
    assert parts["ami-main"]["state"] == "running" and parts["ami-b"]["state"] == "running"

    # b comes back on its address: linked again, its callers counted again
    await server_b.start()
    b.join("general-q", "13900000003")
    await until(lambda: eng.controllers["b"].ready.is_set(), 40)
    server_b.flush()
    snap = await live(eng.redis, lambda s: s["pbxs"]["b"]["connected"] and s["queues"]["general-q"]["waiting"] == 5)
    assert snap["ami_connected"] is True and snap["pbxs"]["b"]["waiting"] == 3
    health = await (await web.get("/healthz")).json()
    assert [(p["name"], p["state"]) for p in health["pbxs"]] == [("main", "connected"), ("b", "connected")]


async def test_a_missed_call_is_called_back_through_an_idle_seat_on_the_other_pbx(city):
    """The missed call of a caller on main; main's seats all taken (paused,
    or its reserved emergency seat): the callback goes to an idle seat of PBX
    b and is originated there, once b's own calm gate opens."""
    from ivr.rehearsal.sim.agi_peer import QueueOutcome

    a, b, server_a, server_b, eng, env, web = city
    for s in ("101", "102"):
        a.action({"Action": "QueuePause", "Interface": f"Local/{s}@ivr-seats/n", "Paused": "true"})
    server_a.flush()
    emergency = b.join("emergency-q", "13900000009")      # b has no emergency seat: its caller waits
    server_b.flush()
    await until(lambda: eng.controllers["main"].model.seats["Local/102@ivr-seats/n"].paused
                and len(eng.controllers["b"].model.waiting) == 1)
    await run_call("127.0.0.1", eng.agi.port,
                   SimChannel(Caller(number="13312345678", digits=["2", "1"], queue=QueueOutcome("timeout"))))
    await until(lambda: eng.capture is not None and eng.capture.recorded == 1, 5)
    # b is not calm (an emergency caller waits there), main has no idle unreserved seat: nobody is dialled
    assert await eng.scheduler.tick() == 0
    assert a.originated == [] and b.originated == []
    b.abandon(emergency.uniqueid)                         # b calm again
    server_b.flush()
    await until(lambda: bool(b.originated), 10)
    orig = b.originated[0]
    assert orig["Exten"] == "13312345678" and orig["Channel"] in B_SEATS
    assert a.originated == []                             # never on main: the seat is b's
    b.originate_result(orig, True)                        # the outcome comes back on b's link
    b.user_event("IvrCallback", orig["Channel"], Id="1", DialStatus="ANSWER")
    server_b.flush()
    await until(lambda: not eng.scheduler.active, 5)
    entries = [e for _, e in await eng.scheduler.store.audit.entries("-", "+")]
    assigned = [e for e in entries if e["kind"] == "assigned"]
    assert [(e["seat"], e.get("pbx")) for e in assigned] == [(orig["Channel"], "b")]
    assert [(e["result"], e.get("pbx")) for e in entries if e["kind"] == "attempt"] == [("closed", "b")]


async def test_the_level_moves_each_seat_on_its_own_pbx(city):
    """queue/pbxs.yaml puts back-office seat 201 on main and 202 on b: level 2
    adds each to general-q on its own PBX; b down, standing down removes 201
    on main and records 202's step as failed (retried later), said to be b's."""
    a, b, server_a, server_b, eng, env, web = city
    res = await asyncio.to_thread(ivr, ["contingency", "set", "2", "--reason", "高峰演练"], env)
    assert res.returncode == 0, res.stderr
    await until(lambda: "Local/201@ivr-seats/n" in a.queues["general-q"].members
                and "Local/202@ivr-seats/n" in b.queues["general-q"].members, 10)
    assert "Local/202@ivr-seats/n" not in a.queues["general-q"].members
    assert "Local/201@ivr-seats/n" not in b.queues["general-q"].members
    await server_b.stop()
    await until(lambda: not eng.controllers["b"].ready.is_set(), 10)
    res = await asyncio.to_thread(ivr, ["contingency", "set", "0", "--reason", "演练结束"], env)
    assert res.returncode == 0, res.stderr
    await until(lambda: "Local/201@ivr-seats/n" not in a.queues["general-q"].members, 10)
    store = ContingencyStore(eng.redis)
    end = asyncio.get_running_loop().time() + 10
    while (applied := await store.applied()).level != 0:
        assert asyncio.get_running_loop().time() < end
        await asyncio.sleep(0.05)
    assert [(f["action"], f["interface"]) for f in applied.failed] == [("remove", "Local/202@ivr-seats/n")]


async def test_a_pbx_that_is_down_does_not_stop_the_dead_engine_sweep_on_the_others(city):
    """Seen with two real Asterisks (tests/test_live_two_pbxs.py): while one
    PBX's link is down, the leader's sweep of calls whose engine died used
    to stop for every PBX, so a citizen on PBX main who hung up in a dead
    engine's flow was never recorded while PBX b was down. Each PBX has its
    own systemname (docs/deploy.md), which its uniqueids carry: a call of
    main is judged on main's link; b's calls wait until b is back."""
    import time

    a, b, server_a, server_b, eng, env, web = city
    for pbx, server, uid in ((a, server_a, "pbx-main-100.1"), (b, server_b, "pbx-b-100.2")):
        pbx.join("general-q", "13700000001", uniqueid=uid)      # each PBX shows its systemname
        server.flush()
    await until(lambda: all(len(c.model.waiting) == 1 for c in eng.controllers.values()))
    await server_b.stop()
    await until(lambda: not eng.controllers["b"].ready.is_set(), 10)
    # an engine died with one citizen in its flow on each PBX (nobody keeps it alive)
    now = time.time()
    await eng.redis.hset(keys.CALLS_LIVE, mapping={"pbx-main-200.1": f"gone|{now}|13800000009",
                                                   "pbx-b-200.2": f"gone|{now}|13900000009"})
    sweeper = eng.work.reconciler
    await sweeper.sweep()                                    # judged when seen in two sweeps running
    await sweeper.sweep()
    assert await eng.redis.exists(keys.call_summarised("pbx-main-200.1"))
    assert not await eng.redis.hexists(keys.CALLS_LIVE, "pbx-main-200.1")
    # b's caller may be waiting on b, unseen: left until b's link is back
    assert await eng.redis.hget(keys.CALLS_LIVE, "pbx-b-200.2") == f"gone|{now}|13900000009"
    assert not await eng.redis.exists(keys.call_summarised("pbx-b-200.2"))


async def test_a_pbx_down_before_any_of_its_calls_was_seen_still_does_not_stop_the_sweep(city):
    """A PBX's systemname was learnt from its calls' uniqueids only: a PBX
    whose link went down before the engine saw one of its calls (an engine
    started while that PBX was quiet, or just restarted) stopped the dead-
    engine sweep on every PBX, since any call might have been its. CoreSettings
    says the systemname at each login (fixture ami/session-booting.json)."""
    import time

    a, b, server_a, server_b, eng, env, web = city
    assert {n: c.system_name for n, c in eng.controllers.items()} == {"main": "pbx-main", "b": "pbx-b"}
    assert all(p.systemname is None for p in eng.work.links)            # no call seen on either PBX
    # and the outlook the engines read names them: a call's own PBX from its uniqueid
    deadline = time.monotonic() + 10
    while json.loads(await eng.redis.get(keys.OUTLOOK) or "{}").get("systems") != {"main": "pbx-main", "b": "pbx-b"}:
        assert time.monotonic() < deadline, await eng.redis.get(keys.OUTLOOK)
        await asyncio.sleep(0.05)
    await server_b.stop()
    await until(lambda: not eng.controllers["b"].ready.is_set(), 10)
    now = time.time()
    await eng.redis.hset(keys.CALLS_LIVE, mapping={"pbx-main-300.1": f"gone|{now}|13800000019",
                                                   "pbx-b-300.2": f"gone|{now}|13900000019"})
    sweeper = eng.work.reconciler
    await sweeper.sweep()
    await sweeper.sweep()
    assert await eng.redis.exists(keys.call_summarised("pbx-main-300.1"))
    assert await eng.redis.hget(keys.CALLS_LIVE, "pbx-b-300.2") == f"gone|{now}|13900000019"


async def test_each_pbx_s_own_queue_log_is_read_and_reconciled(city):
    """Each PBX's record as evidence (issue 20): PBX b's queue_log, named in
    queue/pbxs.yaml, is read by the leader like the engine's own PBX's
    (IVR_QUEUE_LOG); a caller who abandoned on b while no engine saw it is a
    missed call, and the reconciliation lists it under b."""
    import time

    from ivr.callback.store import CallbackStore
    from ivr.services.pbx_record import reconciliation

    a, b, server_a, server_b, eng, env, web = city
    assert [r.pbx for r in eng.work.pbx_records_each] == ["b"] and eng.work.pbx_record is None
    log = Path(env["IVR_HOME"]).parent / "pbx-b" / "queue_log"
    log.parent.mkdir(parents=True, exist_ok=True)
    t = int(time.time()) - 60
    log.write_text(f"{t}|pbx-b-800.1|general-q|NONE|ENTERQUEUE||13900000077|1\n"
                   f"{t + 42}|pbx-b-800.1|general-q|NONE|ABANDON|1|1|42\n")
    store = CallbackStore(eng.redis)
    deadline = time.monotonic() + 30
    while await store.open_record("13900000077") is None:
        assert time.monotonic() < deadline, "b's queue_log was never read"
        await asyncio.sleep(0.1)
    report = await reconciliation(eng.redis, t - 1, t + 3600)
    assert {p["pbx"]: [c["uniqueid"] for c in p["calls"]] for p in report["pbxs"]} == {"b": ["pbx-b-800.1"]}


async def test_a_follow_up_goes_out_on_a_pbx_whose_gate_is_open(redis):
    """Follow-ups need no seat: each goes out on a PBX whose link is up and
    whose own queues are calm; its outcome comes back on that PBX's link."""
    import time

    from ivr.ami.controller import AmiController
    from ivr.callback.followup import FollowupStore
    from ivr.callback.followup_caller import FollowupCaller
    from tests.test_followups import ALL_DAY, LOG, TZ, _batch

    a, b = shipped_pbx(), pbx_b()
    servers = [SimAmiServer(a), SimAmiServer(b)]
    controllers = {}
    for name, server in zip(("a", "b"), servers, strict=True):
        await server.start()
        controllers[name] = AmiController(host="127.0.0.1", port=server.port, username="ivr", secret="ivrsecret",
                                          model=LiveModel(emergency_queues=["emergency-q"]), redis=None, log=LOG,
                                          publish_s=0.05, ping_s=0.5)
        await controllers[name].start()
    try:
        await until(lambda: all(c.ready.is_set() for c in controllers.values()), 5)
        store = FollowupStore(redis)
        fc = FollowupCaller(store=store, controller=controllers["a"], policy=ALL_DAY, tz=TZ,
                            queues={"general": "general-q"}, log=LOG, owner="fu-1", pbxs=controllers)
        for i in range(6):                               # a's queue is not calm (more than 5 wait)
            a.join("general-q", f"1370000000{i}")
        servers[0].flush()
        await until(lambda: len(controllers["a"].model.waiting) == 6)
        (fid,) = await _batch(store, ["13300133000"], time.time())
        assert await fc.tick() == 1
        assert a.originated == [] and b.originated[-1]["Channel"] == "Local/13300133000@ivr-followup-out/n"
        orig = b.originated[-1]
        b.originate_result(orig, True)
        b.user_event("IvrFollowup", orig["Channel"], Id=fid, DialStatus="ANSWER")
        servers[1].flush()
        await until(lambda: not fc.active)
        assert (await store.item(fid))["closed_reason"] == "reached"
        for i in range(6):                               # b busy too: no PBX's gate is open
            b.join("general-q", f"1390000000{i}")
        servers[1].flush()
        await until(lambda: len(controllers["b"].model.waiting) == 6)
        await _batch(store, ["13300133001"], time.time())
        assert await fc.tick() == 0 and fc.last_gate.startswith("a: general")
    finally:
        for c in controllers.values():
            await c.stop()
        for server in servers:
            await server.stop()


async def test_a_pbx_down_when_the_leader_starts_stops_nothing_and_is_linked_once_up(redis, redis_url, project_home,
                                                                                  tmp_path, monkeypatch):
    async with running_city(redis, redis_url, project_home, tmp_path, monkeypatch, b_up=False) as city:
        a, b, server_a, server_b, eng, env, web = city
        a.join("general-q", "13800000001")
        server_a.flush()
        snap = await live(eng.redis, lambda s: s["pbxs"]["main"]["waiting"] == 1)
        assert snap["pbxs"]["b"]["connected"] is False and snap["queues"]["general-q"]["waiting"] == 1
        health = await (await web.get("/healthz")).json()
        assert [(p["name"], p["state"]) for p in health["pbxs"]] == [("main", "connected"), ("b", "disconnected")]
        res = await asyncio.to_thread(ivr, ["status"], env)
        assert "未连接 DOWN: b" in res.stdout, res.stdout
        b.join("general-q", "13900000001")
        await server_b.start()                           # b comes up: its link logs in on its own
        await until(lambda: eng.controllers["b"].ready.is_set(), 40)
        snap = await live(eng.redis, lambda s: s["pbxs"]["b"]["connected"] and s["ami_connected"])
        assert snap["queues"]["general-q"]["waiting"] == 2 and snap["pbxs"]["b"]["waiting"] == 1


async def test_a_pbx_still_on_the_shipped_trunk_secret_takes_no_moved_emergency_callers(
        redis, redis_url, project_home, tmp_path, monkeypatch):
    """Each PBX's IVR_PEER_SECRET is read with AMI Getvar at login: a PBX whose
    trunk to the others still has the secret everyone can read in this
    project is named no peer in the outlook (found by review, session 10: its
    [ivr-from-peer] would take emergency calls from anyone)."""
    async with running_city(redis, redis_url, project_home, tmp_path, monkeypatch,
                            peer_secrets=("change-this-peer-secret", "a-site-secret")) as (a, b, *_, eng, env, web):
        await until(lambda: {n: c.peer_trunk for n, c in eng.controllers.items()} == {"main": "shipped", "b": "ok"})

        async def peers():
            return json.loads(await eng.redis.get(keys.OUTLOOK) or "{}").get("peers")
        deadline = asyncio.get_running_loop().time() + 10
        while await peers() != {"b": "10.0.0.12:4569"}:
            assert asyncio.get_running_loop().time() < deadline, await peers()
            await asyncio.sleep(0.05)
        # and /healthz says which PBX takes moved emergency callers, and why the other does not
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            health = await (await web.get("/healthz")).json()
            said = {p["name"]: (p["peer_address"], p["peer_text"]) for p in health["pbxs"]}
            if said["b"][1].startswith("接收"):
                break
            assert asyncio.get_running_loop().time() < deadline, said
            await asyncio.sleep(0.05)
        assert said["main"] == ("10.0.0.11:4569", "不接收：IVR_PEER_SECRET 仍为默认值 — takes none: IVR_PEER_SECRET "
                                "is still the shipped one"), said
        assert said["b"][0] == "10.0.0.12:4569", said
