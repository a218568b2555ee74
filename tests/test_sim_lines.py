"""Trunk lines in the simulated Asterisk: a call holds a line from arrival to
hang-up, a callback's citizen leg holds one too, an arrival that finds every
line busy hears busy and is recorded nowhere, and the engine reads the count
the way it would from a real Asterisk 22 (AMI Getvar of the shipped
dialplan's GROUP_COUNT(trunk@ivr), tests/fixtures/asterisk-22/ami/
session-line-count.json). Also the plain wait predictors at queue join and
the report's rates."""

import asyncio
import math
import random

import pytest

from ivr.errors import ConfigError
from ivr.rehearsal.sim import scores
from ivr.rehearsal.sim.agi_peer import Caller, SimChannel
from ivr.rehearsal.sim.baselines import HoldAverage, accuracy, score
from ivr.rehearsal.sim.callcenter import CallCenter, erlang_a
from ivr.rehearsal.sim.dialplan import run_dialplan
from ivr.rehearsal.sim.drill import Drill
from ivr.rehearsal.sim.pbx import SimPbx
from ivr.rehearsal.sim.profiles import load_profile, parse_profile
from ivr.rehearsal.sim.trunk import Trunk
from tests.ami_transcripts import keys_of, load

PROFILE = """duration_s: 120
seats: 2
emergency_seats: 1
lines: {lines}
arrivals:
  - {{at_s: 0, per_hour: 3600}}
callers:
  redial_probability: 1
  redial_after_s: 10
callbacks:
  reach_probability: 1
"""


def getvar(pbx: SimPbx, variable: str, **kw) -> dict[str, str]:
    return dict(pbx.action({"Action": "Getvar", "ActionID": "g", "Variable": variable, **kw})[0])


# -- the trunk --------------------------------------------------------------------

def test_a_full_trunk_refuses_the_next_call_and_a_hang_up_frees_a_line():
    now = [0.0]
    trunk = Trunk(lambda: now[0], lines=2)
    assert trunk.seize("a") and trunk.seize("b")
    assert not trunk.seize("c")                       # busy: every line held
    assert (trunk.in_use, trunk.blocked, trunk.peak) == (2, 1, 2)
    now[0] = 30.0
    assert trunk.release("a") == 30.0
    assert trunk.seize("c") and trunk.in_use == 2
    now[0] = 40.0
    assert trunk.line_seconds() == 30 + 40 + 10       # a: 30 s; b and c still held
    assert trunk.release("nobody") == 0.0


def test_unlimited_trunk_never_refuses():
    trunk = Trunk(lambda: 0.0)
    assert all(trunk.seize(str(i)) for i in range(10_000)) and trunk.blocked == 0


def test_group_count_follows_app_c():
    trunk = Trunk(lambda: 0.0)
    trunk.set_group("c1", "ivr", "trunk")
    trunk.set_group("c2", "IVR", "Trunk")             # case-insensitive, as strcasecmp
    trunk.set_group("c3", "other", "trunk")
    assert trunk.group_count("trunk", "ivr") == 2 and trunk.group_count("trunk") == 3
    trunk.set_group("c1", "ivr", "elsewhere")         # one group per category: moved, not added
    assert trunk.group_count("trunk", "ivr") == 1
    trunk.release("c2")                               # a channel that hangs up leaves its groups
    assert trunk.group_count("trunk", "ivr") == 0


# -- what the engine sees over AMI, against the real Asterisk ----------------------

async def test_the_shipped_dialplan_counts_the_line_and_getvar_reads_it(project_home):
    """No engine can be reached: the shipped [ivr-12345] queues the citizen
    itself; while they wait, GROUP_COUNT(trunk@ivr) is 1 and IVR_LINES the total."""
    pbx = SimPbx(lambda: 0.0)
    pbx.globals["IVR_LINES"] = "3000"
    sim = SimChannel(Caller())
    seen = []

    async def queue_join(ch, queue, prio):
        seen.append((queue, getvar(pbx, "GROUP_COUNT(trunk@ivr)")["Value"], getvar(pbx, "IVR_LINES")["Value"]))

    assert pbx.trunk.seize(sim.channel)
    run = await run_dialplan(project_home / "asterisk" / "extensions.conf", sim, queue_join=queue_join,
                             engines="agi://127.0.0.1:1", connect_timeout_s=1,
                             set_group=lambda ch, cat, grp: pbx.trunk.set_group(ch.channel, cat, grp))
    assert run.agi == ["FAILURE"] and seen == [("general-q", "1", "3000")]
    assert "GROUP(ivr)" not in sim.vars                # a function, not a variable
    pbx.trunk.release(sim.channel)
    assert getvar(pbx, "GROUP_COUNT(trunk@ivr)")["Value"] == "0"


def test_sim_getvar_answers_as_the_real_asterisk_did():
    real = [m for m in load("session-line-count") if m["action"].get("Action") == "Getvar"]
    counts = [m["msg"]["Value"] for m in real if m["action"].get("Variable") == "GROUP_COUNT(trunk@ivr)"]
    assert counts == ["0", "2", "3", "0"]             # nobody; two citizens waiting; and a callback's leg; nobody
    pbx = SimPbx(lambda: 0.0)
    pbx.globals["IVR_LINES"] = "3000"
    held = []
    for m in real:
        if m["action"].get("Variable") == "GROUP_COUNT(trunk@ivr)":     # the same lines held as then
            while len(held) < int(m["msg"]["Value"]):
                held.append(f"Local/{len(held)}@sim;1")
                pbx.trunk.seize(held[-1])
                pbx.trunk.set_group(held[-1], "ivr", "trunk")
            while len(held) > int(m["msg"]["Value"]):
                pbx.trunk.release(held.pop())
        sim = pbx.action(dict(m["action"]))[0]
        assert tuple(k for k, _ in sim) == keys_of(m["raw"]), (m["action"], sim)
        assert {k: v for k, v in sim if k != "ActionID"} == {k: v for k, v in m["msg"].items() if k != "ActionID"}


def test_core_status_is_no_line_count():
    """Why not CoreStatus: with 3 trunk lines in use the real one counted 8 calls."""
    status = next(m["msg"] for m in load("session-line-count") if m["action"].get("Action") == "CoreStatus")
    assert status["CoreCurrentCalls"] != "3"


# -- the drill: arrivals, redials, callbacks -----------------------------------------

class FakeClock:
    """Simulated time that jumps; every sleep after the first ``free`` waits
    for ``gate`` (so a test can look at a callback in the middle)."""

    def __init__(self, free=1):
        self.t = 0.0
        self.free = free
        self.gate = asyncio.Event()

    def now(self):
        return self.t

    async def sleep(self, s):
        self.t += s
        await asyncio.sleep(0)
        self.free -= 1
        if self.free < 0:
            await self.gate.wait()


def small_drill(project_home, lines=2):
    profile = parse_profile(PROFILE.format(lines=lines), "queue/drills/t.yaml", "t")
    drill = Drill(profile, home=project_home, seed=1)
    drill._build_sites()
    drill.clock = FakeClock()
    drill.cc.now = 0.0
    return drill


async def test_an_arrival_on_a_full_trunk_hears_busy_and_redials(project_home, monkeypatch):
    drill = small_drill(project_home, lines=1)
    started = []
    monkeypatch.setattr(drill, "_call", lambda ch: started.append(ch) or asyncio.sleep(0))
    drill._new_call(None, 1.0)                     # takes the only line
    drill._new_call(None, 2.0)                     # busy
    await asyncio.sleep(0)
    assert len(started) == 1 and len(drill.calls) == 1           # no AGI, no dialplan, no record for the second
    assert (drill.attempts, drill.blocked, drill.redials_after_busy) == (2, 1, 1)
    when, number = drill._redials[0]
    assert number == "13900000002" and when > 2.0                  # the same citizen dials again later
    drill.pbx.trunk.release(started[0].channel)    # the first hangs up
    drill._new_call(number, when)
    assert len(started) == 2 and drill.calls[started[1].uniqueid].redial
    assert drill.attempts == drill.blocked + len(drill.calls)


async def test_a_callback_leg_holds_a_line_and_is_refused_when_none_is_free(project_home):
    drill = small_drill(project_home, lines=1)
    msg = {"Channel": "Local/10001@ivr-seats/n", "Exten": "13800138000", "Variable": "IVR_CB_ID=7",
           "ActionID": "o1", "Context": "ivr-callback"}
    task = asyncio.create_task(drill._callback_call(msg, drill.sites[0]))
    for _ in range(5):
        await asyncio.sleep(0)
    assert drill.pbx.trunk.in_use == 1                                   # the citizen's leg, over the trunk
    assert getvar(drill.pbx, "GROUP_COUNT(trunk@ivr)")["Value"] == "1"   # as Dial's b() handler sets it
    assert getvar(drill.pbx, "IVR_LINES")["Value"] == "1"
    drill.clock.gate.set()                                               # the conversation ends
    await task
    assert drill.pbx.trunk.in_use == 0 and drill.cb_reached == 1
    drill.pbx.drain()
    assert drill.pbx.trunk.seize("Local/13900000009@sim-caller;1")      # a citizen holds the only line
    await drill._callback_call({**msg, "ActionID": "o2"}, drill.sites[0])
    statuses = [dict(m).get("DialStatus") for m in drill.pbx.drain() if dict(m).get("Event") == "UserEvent"]
    assert statuses == ["CONGESTION"] and drill.cb_line_busy == 1        # the carrier refused the leg


# -- the plain predictors at queue join ---------------------------------------------

def test_asterisk_holdtime_is_app_queues_exponential_average():
    h = HoldAverage()
    h.connected(40, samples_before=0)       # the first sample is taken as it is
    assert h.holdtime == 40
    h.connected(80, samples_before=1)
    assert h.holdtime == (40 * 3 + 80) >> 2 == 50
    h.connected(7, samples_before=2)
    assert h.holdtime == ((50 << 2) - 50 + 7) >> 2 == 39


def test_estimates_at_join_come_from_what_the_pbx_sees():
    cc = None
    pbx = SimPbx(lambda: cc.now, chan_vars=())
    cc = CallCenter(pbx)
    pbx.add_queue("q", wrapup_s=10)
    for i in range(2):
        pbx.add_member("q", f"Local/{i}@s/n", f"S{i}", f"Custom:s{i}")
    first = cc.join("q", "1", handle_s=50)
    assert first.estimates["queue_length"] == 0.0          # a seat was free
    cc.join("q", "2", handle_s=50)
    cc.now = 5.0
    a = cc.join("q", "3", chan_vars={"IVR_WAIT_EST": "1,42.5"})
    assert a.estimates == {"asterisk_holdtime": 0.0, "head_of_line": 0.0, "queue_length": None}
    assert (a.wait_est_s, a.engine_position, a.original_position) == (42.5, 1, 1)
    cc.now = 20.0
    b = cc.join("q", "4", chan_vars={"IVR_WAIT_EST": "soon"})
    assert b.wait_est_s is None and b.engine_position is None      # unreadable or unset: None
    assert b.estimates["head_of_line"] == 15.0                     # caller 3 has waited 15 s
    cc.run_until(60.0)             # the first two end at 50 s, wrap up until 60 s: 3 and 4 connect
    status = {k: v for k, v in pbx.action({"Action": "QueueStatus", "Queue": "q"})[1]}
    # holds 0 and 0 (taken as they are: nothing completed yet), then 55 and 40: (0*3+55)>>2 = 13, (13*3+40)>>2 = 19
    assert status["Holdtime"] == "19" and status["TalkTime"] == "50"
    cc.join("q", "5")
    c = cc.join("q", "6")
    assert c.estimates["queue_length"] == 2 * (50 + 10) / 2        # (n+1)/(s*mu), mu from talk + wrap-up
    assert c.estimates["asterisk_holdtime"] == float(pbx.queues["q"].hold.holdtime)


def test_scores_of_estimators():
    assert score([(60, 60), (0, 100), (None, 5)]) == {"rrmse": round(math.sqrt(100 ** 2 / 2) / 80, 3),
                                                       "within_share": 0.5, "n": 2}
    records = [{"outcome": "answered", "wait_s": 100.0, "est_engine": 90.0, "est_asterisk_holdtime": 10.0,
                "est_head_of_line": None, "est_queue_length": 200.0},
               {"outcome": "abandoned", "wait_s": 5.0, "est_engine": 500.0, "est_asterisk_holdtime": 0.0,
                "est_head_of_line": 0.0, "est_queue_length": 0.0}]
    records.append({"outcome": "answered", "wait_s": 200.0, "est_engine": 190.0, "est_asterisk_holdtime": 10.0,
                    "est_head_of_line": 150.0, "est_queue_length": 500.0})
    acc = accuracy(records)
    # scored on the same callers: those every estimator made an estimate for (not the first one here)
    assert {name: a["n"] for name, a in acc.items()} == {"engine": 1, "asterisk_holdtime": 1, "head_of_line": 1,
                                                          "queue_length": 1}
    assert acc["engine"]["within_share"] == 1.0 and acc["queue_length"]["within_share"] == 0.0


# -- the report's rates ---------------------------------------------------------------

def test_answered_within_15s_counts_busy_attempts_as_wanting_a_person():
    calls = [scores.Call("1", 0, False, "answered", 10, True), scores.Call("2", 0, False, "answered", 40, True),
             scores.Call("3", 0, False, "satisfied", None, False), scores.Call("4", 0, False, "in_progress", None, True)]
    assert scores.answered_within(calls, blocked_attempts=2) == (1, 0.25)


def test_broad_answer_rate_within_deadline():
    calls = [scores.Call("1", 0, False, "answered", 1, True), scores.Call("2", 0, False, "abandoned", 9, True),
             scores.Call("3", 0, False, "abandoned", 9, True), scores.Call("4", 0, False, "satisfied", None, False),
             scores.Call("5", 0, False, "abandoned", 9, True)]
    records = [{"number": "2", "state": "closed", "closed_reason": "reached", "closed_at": "900", "deadline": "1000"},
               {"number": "3", "state": "closed", "closed_reason": "reached", "closed_at": "1100", "deadline": "1000"},
               {"number": "5", "state": "open", "deadline": "5000"}]
    r = scores.broad_answer_rate(calls, {"1", "2", "3", "4", "5", "6"}, records, now_epoch=2000)
    # citizens: 1, 2, 3, 5 and 6 (only ever heard busy); 4 was answered by the announcement
    assert r["citizens_wanting_an_answer"] == 5 and r["broad_answer_rate_within_deadline"] == 0.4
    assert (r["citizens_answered_live"], r["citizens_reached_by_callback_in_time"],
            r["callbacks_open_within_deadline_end"]) == (1, 1, 1)


def test_seats_needed_for_95():
    seats = scores.seats_needed(1.0, 240.0, 120.0)
    assert erlang_a(1.0, 240.0, seats, 120.0)["p_abandon"] <= 0.05 < erlang_a(1.0, 240.0, seats - 1, 120.0)["p_abandon"]
    assert scores.seats_needed(1.0, 100.0, math.inf) == 101
    rng = random.Random(3)
    times = sorted(rng.uniform(0, 7200) for _ in range(1000)) + [7200 + i for i in range(3600)]
    assert scores.busiest_hour_rate(sorted(times), 10_800) == pytest.approx(3600 / 3600, rel=0.2)


# -- profiles -----------------------------------------------------------------------------

def test_profiles_name_their_lines(project_home):
    assert load_profile(project_home, "smoke").lines is None            # unlimited, as before
    beijing = load_profile(project_home, "beijing-peak-hour")
    assert beijing.lines == 3000 and beijing.seats + beijing.emergency_seats == 1820
    day = load_profile(project_home, "beijing-peak-day")
    assert day.lines == 3000 and day.expected_calls == 1_337_000 - 120_000
    assert day.rate_per_s(10) * 3600 == pytest.approx(203_000)
    with pytest.raises(ConfigError, match=r"queue/drills/t.yaml:4:8: .*from 1 to 1000000, got '0'"):
        parse_profile(PROFILE.format(lines=0), "queue/drills/t.yaml", "t")


def test_seats_for_95_takes_its_figures_from_the_run():
    calls = [scores.Call(str(i), i, False, "answered" if i % 2 else "satisfied", 1, bool(i % 2)) for i in range(100)]
    queued = [{"outcome": "answered", "wait_s": 10.0}, {"outcome": "abandoned", "wait_s": 30.0},
              {"outcome": "callback", "wait_s": 20.0}, {"outcome": "in_progress", "wait_s": None}]
    r = scores.seats_for_95(first_call_times=[float(i) for i in range(100)], duration_s=100.0, calls=calls,
                            talk_times=[100.0, 200.0], wrapup_s=10.0, queued=queued, redial_probability=0.5)
    inputs = r["seats_needed_for_95_inputs"]
    # 1 first call a second, half of them wanting a person, plus the redials of the 5 % still lost
    assert inputs == {"arrivals_per_s": round(0.5 / (1 - 0.05 * 0.5), 3), "handle_s": 160.0, "patience_s": 30.0}
    assert r["seats_needed_for_95"] == scores.seats_needed(0.5 / (1 - 0.025), 160.0, 30.0)
