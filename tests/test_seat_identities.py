"""What the staff see must add up (issue 18): one partition of the seats in the
live model, shown the same on the wall, ``ivr status`` and ``/metrics``; no
seat shown idle while callers wait for it; windows labelled; one clock. The
identity checker (``ivr.services.identities``) is what a drill runs on every
board it reads."""

import json
from zoneinfo import ZoneInfo

from ivr.ami.model import LiveModel
from ivr.cli.engine import render_status
from ivr.clock import ScaledClock
from ivr.redisdb import keys
from ivr.rehearsal.sim.pbx import SimPbx
from ivr.services import identities
from ivr.services import status as status_service
from ivr.web import wallboard as wall
from tests.test_web_api import home, web  # noqa: F401  (fixtures)

TZ = ZoneInfo("Asia/Shanghai")
QUEUES = {"general": "general-q", "emergency": "emergency-q"}


def _feed(pbx: SimPbx, model: LiveModel, now: float) -> None:
    """The simulated PBX's events, parsed as the controller does, into the model."""
    for msg in pbx.drain():
        ev = dict(msg)
        if "Event" in ev:
            model.apply(ev, now)


def _board(model: LiveModel, now: float, added: set[str] = frozenset()) -> dict:
    snap = model.snapshot(now)
    return {"live": snap, "wall": wall.figures(snap, ("general",), QUEUES, set(added), 0, None), "at": now}


def _hotline(wrapup_s: float = 10.0) -> tuple[SimPbx, LiveModel, list[float]]:
    """Two general seats, a reserved emergency seat that helps the general line
    last (penalty 10, as asterisk/queues.conf), a second emergency-only seat."""
    now = [1000.0]
    pbx = SimPbx(lambda: now[0])
    pbx.add_queue("general-q", wrapup_s=wrapup_s)
    pbx.add_queue("emergency-q", strategy="ringall", weight=10, wrapup_s=wrapup_s)
    for n in (101, 102):
        pbx.add_member("general-q", f"Local/{n}@s/n", f"Seat{n}", f"Custom:seat{n}")
        pbx.add_member("emergency-q", f"Local/{n}@s/n", f"Seat{n}", f"Custom:seat{n}", penalty=5)
    pbx.add_member("emergency-q", "Local/109@s/n", "Seat109", "Custom:seat109")
    pbx.add_member("general-q", "Local/109@s/n", "Seat109", "Custom:seat109", penalty=10)
    pbx.add_member("emergency-q", "Local/9002@s/n", "Seat9002", "Custom:seat9002")
    model = LiveModel(emergency_queues=["emergency-q"], reserved_interfaces=["Local/109@s/n"])
    pbx.drain()
    model.rebuild([dict(m) for m in pbx.action({"Action": "QueueStatus", "ActionID": "r"})[1:]], now[0])
    return pbx, model, now


def test_a_seat_in_wrap_up_is_not_shown_idle_while_callers_wait():
    """The demo showed 4 idle seats while 18 callers had waited 65 s: seats in
    app_queue's wrap-up look free to AMI (device not in use, InCall 0) but take
    no call. They are in wrap-up, and the wall's idle tile does not count them."""
    pbx, model, now = _hotline()
    for i in range(3):                       # three callers: 101, 102 and (last resort) 109 answer
        pbx.join("general-q", f"1380000000{i}")
    assert len(pbx.dispatch()) == 3
    _feed(pbx, model, now[0])
    now[0] += 120
    pbx.hangup_call("Local/101@s/n")         # 101 wraps up for 10 s
    pbx.join("general-q", "13800000009")     # a caller waits: nobody can take them yet
    assert pbx.dispatch() == []
    _feed(pbx, model, now[0])
    board = _board(model, now[0] + 3)
    seats = {s["name"]: s["state"] for s in board["live"]["seats"]}
    assert seats["Seat101"] == "wrapup"
    assert board["wall"]["idle_seats"] == 0 and board["wall"]["seats"]["wrapup"] == 1
    assert identities.check(board) == []
    # after the wrap-up, with nobody waiting, the seat is idle again
    now[0] += 10
    pbx.end_wrapup("Local/101@s/n")
    pbx.dispatch()
    _feed(pbx, model, now[0])
    assert {s["name"]: s["state"] for s in model.snapshot(now[0])["seats"]}["Seat101"] == "busy"


def test_the_queues_wrapup_time_from_queues_conf_when_the_member_has_none():
    model = LiveModel(wrapup_s={"general-q": 5.0})
    model.apply({"Event": "QueueMemberStatus", "Queue": "general-q", "Interface": "S1", "StateInterface": "Custom:s1",
                 "Status": "2", "InCall": "1", "Paused": "0", "Wrapuptime": "0"}, 0)
    model.apply({"Event": "AgentComplete", "Queue": "general-q", "Interface": "S1"}, 100)
    model.apply({"Event": "DeviceStateChange", "Device": "Custom:s1", "State": "NOT_INUSE"}, 100)
    assert [s["state"] for s in model.snapshot(104)["seats"]] == ["wrapup"]
    assert [s["state"] for s in model.snapshot(105)["seats"]] == ["idle"]


def test_a_resync_keeps_a_seat_in_wrap_up_and_says_since_when_a_seat_is_idle():
    """QueueStatus (every 30 s, and after a reconnect) says nothing of wrap-up:
    the seat that was wrapping up must not come back from a resync idle."""
    pbx, model, now = _hotline()
    pbx.join("general-q", "13800000001")
    pbx.dispatch()
    _feed(pbx, model, now[0])
    now[0] += 100
    pbx.hangup_call("Local/101@s/n")
    _feed(pbx, model, now[0])
    model.rebuild([dict(m) for m in pbx.action({"Action": "QueueStatus", "ActionID": "r"})[1:]], now[0] + 2)
    seats = {s["name"]: s for s in model.snapshot(now[0] + 4)["seats"]}
    assert seats["Seat101"]["state"] == "wrapup" and seats["Seat101"]["idle_since"] is None
    seats = {s["name"]: s for s in model.snapshot(now[0] + 12)["seats"]}
    assert seats["Seat101"]["state"] == "idle" and seats["Seat101"]["idle_since"] == now[0] + 10


def test_asterisk_wrapup_times_read_from_the_shipped_queues_conf(project_home):
    from ivr.project import asterisk_wrapup_times

    assert asterisk_wrapup_times(project_home / "asterisk") == {"general-q": 5.0, "emergency-q": 2.0}


def test_the_seats_are_one_partition_each_counted_once():
    """The wall said "在岗坐席 44 = 42 + 2 预案增援 · 通话 42 · 空闲 4 · 暂停 0 ·
    紧急预留 2" (46 ≠ 44): busy counted every seat, reserved ones too, and the
    reserved ones again. Now: on shift = talking + wrap-up + idle + paused +
    reserved, the plan's seats counted once, and the sum is every seat."""
    pbx, model, now = _hotline()
    pbx.add_member("general-q", "Local/201@s/n", "Seat201", "Custom:seat201", penalty=5)    # the plan's
    pbx.action({"Action": "QueuePause", "Interface": "Local/102@s/n", "Paused": "true", "Reason": "break"})
    for i in range(3):
        pbx.join("general-q", f"1380000000{i}")
    pbx.dispatch()                          # 101, 201, then the reserved 109 (last resort) answer
    _feed(pbx, model, now[0])
    board = _board(model, now[0], added={"Local/201@s/n"})
    s = board["wall"]["seats"]
    assert s == {"on_shift": 5, "base": 4, "added_by_plan": 1, "busy": 2, "wrapup": 0, "idle": 0, "paused": 1,
                 "reserved": 2, "offline": 0}
    assert sum(board["live"]["seat_states"].values()) == len(board["live"]["seats"]) == 5
    assert board["live"]["queues"]["general-q"]["seats"] == {"busy": 2, "wrapup": 0, "idle": 0, "paused": 1,
                                                             "reserved": 1, "offline": 0}
    assert identities.check(board) == []


def test_the_checker_finds_the_seat_line_the_issue_saw():
    snap = {"at": 0, "window_s": 900, "queues": {}, "seats": [], "emergency": {"waiting": 0},
            "seat_states": {"busy": 42, "idle": 4, "paused": 0, "reserved": 2}}
    board = {"live": snap, "wall": {"waiting": 0, "window_s": 900, "answered": 0, "abandoned": 0, "abandon_rate": None,
                                    "idle_seats": 4,
                                    "seats": {"on_shift": 44, "base": 42, "added_by_plan": 2, "busy": 42, "idle": 4,
                                              "paused": 0, "reserved": 2}}}
    found = {v["identity"] for v in identities.check(board)}
    assert {"seats_partition", "seats_list_adds_up"} <= found
    assert found <= set(identities.IDENTITIES)


def test_the_checker_finds_an_idle_seat_beside_waiting_callers_and_unlabelled_windows():
    seat = {"interface": "S1", "name": "Seat1", "state": "idle", "reserved": False, "queues": {"general-q": 0}}
    caller = {"wait_s": 65.0, "emergency": False}
    snap = {"at": 0, "window_s": 900, "seats": [seat], "emergency": {"waiting": 0},
            "seat_states": {"busy": 0, "wrapup": 0, "idle": 1, "paused": 0, "reserved": 0, "offline": 0},
            "queues": {"general-q": {"waiting": 1, "emergency_waiting": 0, "longest_wait_s": 65.0, "callers": [caller],
                                     "seats": {"idle": 1}, "answered": 147, "abandoned": 3,
                                     "service_level": 0.5}}}
    fig = wall.figures(snap, ("general",), QUEUES, set(), 0, None)
    found = [v["identity"] for v in identities.check({"live": snap, "wall": fig})]
    assert found == ["no_idle_seat_while_callers_wait"]
    seat["idle_since"] = -60.0               # idle a minute beside a waiting caller
    assert [v["identity"] for v in identities.check({"live": snap, "wall": fig})] == found
    seat["idle_since"] = -1.0                # free a second ago: the queue offers it a caller at its next round
    assert identities.check({"live": snap, "wall": fig}) == []
    seat["idle_since"] = -60.0               # idle a minute, and a caller who joined a second ago: not yet offered
    snap["queues"]["general-q"]["longest_wait_s"] = caller["wait_s"] = 1.0
    assert identities.check({"live": snap, "wall": fig}) == []
    # several PBXs: the city's line sums every PBX's; a seat idle on one PBX beside callers waiting on another
    # is no fault (the drill over 3 PBXs saw 18 such), beside its own PBX's it is
    seat["idle_since"] = -60.0
    snap["queues"]["general-q"]["longest_wait_s"] = caller["wait_s"] = 65.0
    seat["pbx"] = "a"
    own = {"waiting": 0, "emergency_waiting": 0, "longest_wait_s": 0.0, "estimated_wait_s": 0.0, "answered": 0,
           "abandoned": 0}
    snap["pbxs"] = {"a": {"queues": {"general-q": own}}, "b": {"queues": {"general-q": {**own, "waiting": 1,
                                                                                        "longest_wait_s": 65.0}}}}
    assert identities.check({"live": snap, "wall": fig}) == []
    seat["pbx"] = "b"
    assert [v["identity"] for v in identities.check({"live": snap, "wall": fig})] == found
    del snap["pbxs"], seat["pbx"]
    snap["queues"]["general-q"]["longest_wait_s"] = caller["wait_s"] = 1.0
    fig.pop("window_s")                       # a count that shrinks without saying over what
    assert "window_labelled" in {v["identity"] for v in identities.check({"live": snap, "wall": fig})}


def test_the_checker_finds_wall_time_on_a_simulated_clock():
    """The issue: the corner clock at 14:00 (the wall) while the drill was at
    09:0x; the oldest callback "4.9 时" old in a drill 70 minutes long."""
    start = 1_800_000_000.0
    bounds = identities.ClockBounds(start + 420, start + 421, start, 90)
    wall_time = {"at": start + 5 * 3600, "callback_oldest_age_s": None}
    assert [v["identity"] for v in identities.check(wall_time, bounds)] == ["clock_board_is_engine_time"]
    aged = {"at": start + 420, "callback_oldest_age_s": 4.9 * 3600, "level_since": start + 300,
            "level_expires_at": start + 300 + 7200}
    assert [v["identity"] for v in identities.check(aged, bounds)] == ["clock_callback_age"]
    assert identities.check(aged | {"callback_oldest_age_s": 400.0}, bounds) == []
    future = aged | {"callback_oldest_age_s": 60.0, "level_since": start + 5 * 3600}
    assert [v["identity"] for v in identities.check(future, bounds)] == ["clock_level_times"]


def test_the_checker_finds_an_oldest_callback_that_understates():
    """The seats page read 55 minutes while the oldest open callback, being
    dialled, was 1.1 hours old: the board's figure against the store's oldest
    first call, read just before and just after the request."""
    start = 1_800_000_000.0
    at = start + 4000
    first = start + 40                            # 3,960 s before the board's time
    bounds = identities.ClockBounds(at, at + 1, start, 90, oldest_first_at=(first, first))
    told = {"at": at, "callback_oldest_age_s": 3300.0}
    assert [v["identity"] for v in identities.check(told, bounds)] == ["oldest_callback_is_the_oldest"]
    assert identities.check(told | {"callback_oldest_age_s": 3960.0}, bounds) == []
    # closed during the request: the next oldest (first call 100 s later) is as true as the one before
    moving = identities.ClockBounds(at, at + 1, start, 90, oldest_first_at=(first, first + 100))
    assert identities.check(told | {"callback_oldest_age_s": 3860.0}, moving) == []
    # a missed call that began before it, recorded at its end during the request (the smoke drill saw one)
    earlier = identities.ClockBounds(at, at + 1, start, 90, oldest_first_at=(first + 100, first))
    assert identities.check(told | {"callback_oldest_age_s": 3960.0}, earlier) == []
    none_open = identities.ClockBounds(at, at + 1, start, 90, oldest_first_at=(None, None))
    assert [v["identity"] for v in identities.check(told, none_open)] == ["oldest_callback_is_the_oldest"]
    assert identities.check(told | {"callback_oldest_age_s": None}, none_open) == []
    assert [v["identity"] for v in identities.check(told | {"callback_oldest_age_s": None}, bounds)] == \
        ["oldest_callback_is_the_oldest"]


def test_ivr_status_shows_the_partition_and_the_window():
    pbx, model, now = _hotline()
    pbx.join("general-q", "13800000001")
    pbx.dispatch()
    _feed(pbx, model, now[0])
    out = "\n".join(render_status(model.snapshot(now[0]), "0 正常", TZ, now[0]))
    assert ("坐席 seats: 在岗 on shift 4 = 通话 talking 1 + 话后整理 wrap-up 0 + 空闲 idle 1 + 暂停 paused 0 + "
            "紧急预留 reserved 2; 离线 offline 0") in out
    assert "接通(近15分)" in out and "近15分钟 — answered, abandoned and the rates: the last 15 min" in out


async def test_ivr_status_measures_ages_on_the_engines_clock(redis):
    """``ivr status`` said "figures 18000 s old" in a drill: it read the wall
    clock while the figures carry the drill's simulated time."""
    sim = ScaledClock.starting_now(1_800_000_000.0, 30.0)
    record = {"status": {"engine_responding": True, "clock": sim.describe(), "calls_in_progress": 0,
                         "calls_handled": 0, "leader": True, "ami_connected": True, "parts": {},
                         "config_version": 1, "config_error": None},
              "mono": __import__("time").monotonic()}
    await redis.set(keys.engine_status("t1"), json.dumps(record), ex=keys.ENGINE_STATUS_TTL_S)
    clock = await status_service.engine_clock(redis)
    assert clock.describe() == sim.describe()
    _, model, _ = _hotline()
    snap = model.snapshot(sim.now())
    line = render_status(snap, "0 正常", TZ, clock.now())[1]
    age = float(line.split("figures ")[1].split(" s old")[0])
    assert 0 <= age < 600, line
    await redis.delete(keys.engine_status("t1"))


async def test_a_level_set_from_the_command_line_carries_the_engines_clock(redis, redis_url, project_home, tmp_path):
    """The level's "有效至" was in wall time during a drill when set with
    ``ivr contingency set``: the command stamped ``time.time()``."""
    import asyncio
    import os
    import subprocess
    import sys

    from ivr.contingency.store import ContingencyStore

    sim = ScaledClock.starting_now(1_800_000_000.0, 30.0)       # 2027-01-15, far from today's wall clock
    record = {"status": {"engine_responding": True, "clock": sim.describe(), "calls_in_progress": 0,
                         "calls_handled": 0, "leader": True, "ami_connected": True, "parts": {},
                         "config_version": 1, "config_error": None},
              "mono": __import__("time").monotonic() + 600}
    # kept longer than an engine's (10 s): on a loaded machine the command's start alone can take that long
    await redis.set(keys.engine_status("t1"), json.dumps(record), ex=600)
    env = {**os.environ, "IVR_HOME": str(project_home), "IVR_DATA_DIR": str(tmp_path), "IVR_REDIS_URL": redis_url}
    before = sim.now()
    res = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "ivr", "contingency", "set", "1", "--reason",
                                                   "演练"], capture_output=True, text=True, env=env, timeout=60)
    after = sim.now()
    assert res.returncode == 0, res.stderr
    st = await ContingencyStore(redis).state()
    assert before <= st.since <= after, (st.since, before, after)
    assert st.expires_at is None or st.expires_at > st.since
    await redis.delete(keys.engine_status("t1"), keys.CONTINGENCY_LEVEL)


async def test_the_wall_the_api_and_metrics_show_the_same_partition(web, redis):  # noqa: F811
    pbx, model, now = _hotline()
    for i in range(3):
        pbx.join("general-q", f"1380000000{i}")
    pbx.dispatch()
    _feed(pbx, model, now[0])
    now[0] += 60
    pbx.hangup_call("Local/102@s/n")                            # wrapping up
    _feed(pbx, model, now[0])
    snap = model.snapshot(now[0] + 1)
    await redis.set(keys.LIVE, json.dumps(snap))
    c, _ = await web("boss")
    board = await (await c.get("/api/status")).json()
    assert identities.check(board) == []
    seats = board["wall"]["seats"]
    assert {k: seats[k] for k in snap["seat_states"]} == snap["seat_states"] == \
        {"busy": 1, "wrapup": 1, "idle": 0, "paused": 0, "reserved": 2, "offline": 0}
    assert board["wall"]["window_s"] == 900
    text = await (await c.get("/metrics")).text()
    for state, n in snap["seat_states"].items():
        assert f'ivr_seats{{state="{state}"}} {n}' in text
    assert "ivr_live_window_seconds 900" in text


def test_the_drills_live_line_counts_the_seats_on_shift(project_home):
    """The demo's live line said "seats busy 43/42": the break seats the plan
    called back were busy but not counted among the seats."""
    from ivr.rehearsal.sim.drill import ON_BREAK, Drill
    from ivr.rehearsal.sim.profiles import load_profile

    drill = Drill(load_profile(project_home, "demo"), home=project_home)
    drill._build_sites()
    for iface in ON_BREAK:                   # level 1 calls the front line back from the break
        drill.pbx.action({"Action": "QueuePause", "Interface": iface, "Paused": "false"})
    for i in range(60):
        drill.pbx.join("general-q", f"1380000{i:04d}")
    busy = len(drill.pbx.dispatch())
    assert busy == 43                        # 40 + 2 called back + the reserved seat that helps last
    assert "seats busy 43/44 " in drill._progress_line(600.0, 0, 0)


def test_the_drills_live_line_counts_calls_as_they_end_and_shows_the_backlog_and_level_of_now(project_home):
    """The live line scanned every call for its "not answered" share (0.5 s
    of the drill's loop a line by the end of the Beijing day's 1.2 million
    calls), and showed the backlog and level of the last 15-minute sample:
    "callback backlog 0  level 0" 12 minutes into the peak while the level
    was 2."""
    from ivr.rehearsal.sim.drill import CallRecord, Drill
    from ivr.rehearsal.sim.profiles import load_profile

    drill = Drill(load_profile(project_home, "demo"), home=project_home)
    drill._build_sites()
    ended = [CallRecord("13800000001", 0.0, False, False, outcome="answered", wanted_person=True),
             CallRecord("13800000002", 0.0, False, False, outcome="abandoned", wanted_person=True),
             CallRecord("13800000003", 0.0, False, False, outcome="abandoned", wanted_person=True),
             CallRecord("13800000004", 0.0, False, False, outcome="satisfied", wanted_person=False),
             CallRecord("13800000005", 0.0, False, False, wanted_person=True)]       # still in progress
    for rec in ended:
        drill._count_ended(rec)
    line = drill._progress_line(600.0, 1234, 2)
    assert "not answered 67%" in line and line.endswith("callback backlog 1234  level 2"), line


def test_the_wall_feed_carries_the_figures_not_every_seat_and_caller_and_they_still_add_up():
    """At Beijing's peak the board listed 1,820 seats and thousands of waiting
    callers: each wallboard event was over 512 KB, pushed every second to every
    wall screen (a drill's reader gave up on the line). The feed carries what
    the wall shows; /api/status keeps the lists, and the checker checks the
    figures of both."""
    from ivr.web.api_seat_managers import _for_the_wall
    pbx, model, now = _hotline()
    for i in range(3000):
        pbx.join("general-q", f"1390000{i:04d}")
    _feed(pbx, model, now[0])
    board = _board(model, now[0])
    assert len(board["live"]["queues"]["general-q"]["callers"]) >= 2990
    feed = _for_the_wall(board)
    assert "seats" not in feed["live"] and all("callers" not in q for q in feed["live"]["queues"].values())
    assert feed["live"]["queues"]["general-q"]["waiting"] == board["live"]["queues"]["general-q"]["waiting"]
    assert len(json.dumps(feed)) < len(json.dumps(board)) / 20
    assert identities.check(feed) == identities.check(board) == []
    feed["wall"]["waiting"] += 1                # a figure that does not add up is still found on the feed
    assert [v["identity"] for v in identities.check(feed)] == ["waiting_adds_up"]
