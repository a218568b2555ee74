"""An emergency caller on a PBX with no emergency seat free soon is moved to
another PBX's emergency queue over the trunk between them (issue 20): the
choice (``LiveState.sooner_elsewhere``), the flow step (``other_pbxs``), what
the call's summary says, and the checks of ``queue/pbxs.yaml`` and the flow
language. Over the real AgiChannel and the simulated Asterisk, in memory; the
same on two real Asterisks: tests/test_live_two_pbxs.py."""

from __future__ import annotations

import datetime as dt
import math
import textwrap
from zoneinfo import ZoneInfo

import orjson
import pytest

from ivr import logs
from ivr.agi.channel import AgiChannel
from ivr.ami.city import city_outlook
from ivr.call_channel import CallInfo
from ivr.callback.figures import asks_for_a_seat
from ivr.callback.policy import Policy, classify
from ivr.calls.service import LiveState, summary_fields
from ivr.configset.pbxs import parse_pbxs
from ivr.flow.interpreter import FlowInterpreter, RunnerConfig
from ivr.flow.references import Catalog
from ivr.project import PBXS_FILE, Project, check_files, check_flow_texts
from ivr.rehearsal.sim.agi_peer import Caller, InMemoryTransport, SimChannel

TZ = ZoneInfo("Asia/Shanghai")
NOON = dt.datetime(2026, 11, 23, 12, 0, tzinfo=TZ)
CONFIG = RunnerConfig(queues={"general": "general-q", "emergency": "emergency-q"}, fallback_queue="general-q")
LOG = logs.get("test")
B_ADDRESS = "10.0.0.12:4569"


def pbx_outlook(emergency_wait_s: float, ahead: int = 0) -> dict:
    """One PBX's outlook as the leader publishes it (``LiveModel.outlook``)."""
    return {"queues": {"general-q": {"0": [40, 300.0, 60.0], "10": [0, 20.0, 5.0]},
                       "emergency-q": {"0": [0, 0.0, 0.0], "10": [ahead, emergency_wait_s, 5.0]}},
            "lines_low": False}


def live(waits: dict[str, float], peers: dict[str, str | None]) -> LiveState:
    """PBX name -> its emergency queue's expected wait; systemname pbx-<name>."""
    state = LiveState()
    doc = city_outlook({p: pbx_outlook(w) for p, w in waits.items()}, {p: f"pbx-{p}" for p in waits}, peers)
    state.use_outlook(orjson.dumps(doc))
    return state


@pytest.mark.parametrize(("waits", "peers", "expected"), [
    # no emergency seat on a (the horizon), one free on b: moved to b
    ({"a": 3600.0, "b": 0.0}, {"b": B_ADDRESS}, ("b", B_ADDRESS)),
    # a's wait is within 15 s (GB/T 33358): the caller stays, however free b is
    ({"a": 14.0, "b": 0.0}, {"b": B_ADDRESS}, None),
    # b is sooner, but by less than 10 s: not worth the move
    ({"a": 20.0, "b": 12.0}, {"b": B_ADDRESS}, None),
    ({"a": 20.0, "b": 9.0}, {"b": B_ADDRESS}, ("b", B_ADDRESS)),
    # b has no peer_address: nobody can reach it over the trunk
    ({"a": 3600.0, "b": 0.0}, {"b": None}, None),
    # the shortest of several
    ({"a": 3600.0, "b": 40.0, "c": 5.0}, {"b": B_ADDRESS, "c": "10.0.0.13:4569"}, ("c", "10.0.0.13:4569")),
    # a PBX named as its own peer is never its own elsewhere
    ({"a": 3600.0}, {"a": "10.0.0.11:4569"}, None),
])
def test_the_pbx_that_takes_the_emergency_caller_sooner(waits, peers, expected) -> None:
    there = live(waits, peers).sooner_elsewhere("pbx-a", "emergency-q", 10)
    assert (there and (there.pbx, there.address)) == expected or (there is None and expected is None)
    if there is not None:
        assert there.own_wait_s == waits["a"] and there.wait_s == waits[there.pbx]


def test_a_caller_whose_pbx_is_not_known_is_never_moved_on_a_guess() -> None:
    state = live({"a": 3600.0, "b": 0.0}, {"b": B_ADDRESS})
    assert state.sooner_elsewhere("", "emergency-q", 10) is None
    assert state.sooner_elsewhere("pbx-x", "emergency-q", 10) is None
    # a PBX without the queue at all counts as no seat there
    doc = city_outlook({"a": {"queues": {}, "lines_low": False}, "b": pbx_outlook(0.0)},
                       {"a": "pbx-a", "b": "pbx-b"}, {"b": B_ADDRESS})
    state.use_outlook(orjson.dumps(doc))
    there = state.sooner_elsewhere("pbx-a", "emergency-q", 10)
    assert there is not None and there.pbx == "b" and math.isinf(there.own_wait_s)
    # an outlook unreadable: nothing is known, nobody is moved
    state.use_outlook(b"{not json")
    assert state.sooner_elsewhere("pbx-a", "emergency-q", 10) is None


@pytest.fixture(scope="module")
def shipped(project_home):
    flows, problems = check_files(Project(project_home))
    assert not [p for p in problems if not p.warning]
    return flows


async def run(flows, caller: Caller, state: LiveState, *, flow: str = "main", pbx: str = "pbx-a"):
    sim = SimChannel(caller, flow=flow)
    ch = AgiChannel(InMemoryTransport(sim), CallInfo.from_agi_env(
        dict(line.rstrip("\n").split(": ", 1) for line in sim.env() if ": " in line)))
    facts = state.facts(NOON, pbx, caller=caller.number)
    record = await FlowInterpreter(CONFIG).run(flows, flow, ch, facts, LOG)
    return record, sim, ch


async def test_an_emergency_caller_with_no_seat_soon_is_taken_to_the_pbx_that_has_one(shipped) -> None:
    record, sim, ch = await run(shipped, Caller(digits=["1"], dial_status="ANSWER"),
                                live({"a": 3600.0, "b": 0.0}, {"b": B_ADDRESS}))
    assert f'SET VARIABLE __IVR_PEER "{B_ADDRESS}"' in sim.commands     # inherited by the Local channel
    assert 'EXEC Dial "Local/12345@ivr-to-peer,5"' in sim.commands
    assert sim.queue_calls == []                                        # never queued on a
    assert record.moved_to == "b" and record.emergency and record.outcome == "completed"
    # the call in on PBX b asks for the seat: this one is neither a missed call nor counted twice
    s = summary_fields(ch.call, record, 0.0, 10.0, 1)
    assert s["moved_to"] == "b" and s["wanted_person"] == "0"
    assert classify(s, Policy()) is None and not asks_for_a_seat(s)


@pytest.mark.parametrize("status", ["CHANUNAVAIL", "CONGESTION", "NOANSWER"])
async def test_a_move_that_fails_keeps_the_caller_in_line_at_home(shipped, status) -> None:
    record, sim, _ = await run(shipped, Caller(digits=["1"], dial_status=status),
                               live({"a": 3600.0, "b": 0.0}, {"b": B_ADDRESS}))
    assert 'EXEC Dial "Local/12345@ivr-to-peer,5"' in sim.commands
    assert sim.queue_calls[0] == ("emergency-q", 10, 30)
    assert record.moved_to == "" and record.wanted_person


async def test_a_caller_who_hangs_up_during_the_move_is_a_missed_emergency_call(shipped) -> None:
    caller = Caller(digits=["1"], dial_status="NOANSWER", hangup_on="EXEC Dial")
    record, sim, ch = await run(shipped, caller, live({"a": 3600.0, "b": 0.0}, {"b": B_ADDRESS}))
    assert sim.queue_calls == [] and record.moved_to == ""
    miss = classify(summary_fields(ch.call, record, 0.0, 10.0, 1), Policy())
    assert miss is not None and miss.kind == "emergency"


async def test_nobody_is_moved_when_home_is_soon_enough_or_the_caller_is_not_an_emergency(shipped) -> None:
    _, sim, _ = await run(shipped, Caller(digits=["1"]), live({"a": 10.0, "b": 0.0}, {"b": B_ADDRESS}))
    assert not any("ivr-to-peer" in c for c in sim.commands) and sim.queue_calls[0][:2] == ("emergency-q", 10)
    # an ordinary caller: the general queue's steps never move anyone
    _, sim, _ = await run(shipped, Caller(digits=["2"]), live({"a": 3600.0, "b": 0.0}, {"b": B_ADDRESS}))
    assert not any("ivr-to-peer" in c for c in sim.commands) and sim.queue_calls[0][:2] == ("general-q", 0)


async def test_a_moved_caller_is_never_moved_again(shipped) -> None:
    """On PBX b, [ivr-from-peer] runs flow emergency_moved: straight to the
    emergency queue, even when PBX a now looks sooner (no ping-pong)."""
    record, sim, _ = await run(shipped, Caller(), live({"a": 0.0, "b": 3600.0}, {"a": "10.0.0.11:4569"}),
                               flow="emergency_moved", pbx="pbx-b")
    assert not any("ivr-to-peer" in c for c in sim.commands)
    assert sim.queue_calls[0] == ("emergency-q", 10, 30) and record.emergency and record.wanted_person
    assert "GET DATA" not in " ".join(sim.commands)        # nothing asked again: the caller chose on PBX a


def test_other_pbxs_moves_only_emergency_callers() -> None:
    text = textwrap.dedent("""\
        description: x
        start: q
        steps:
          q:
            type: queue
            queue: general
            other_pbxs: true
            on_timeout: bye
          bye:
            type: hangup
        """)
    _, problems = check_flow_texts({"x": ("flows/x.yaml", text)}, Catalog(frozenset(), {"general": "general-q"}, None))
    errs = [str(p) for p in problems if not p.warning]
    assert len(errs) == 1 and errs[0].startswith("flows/x.yaml:7:") and "other_pbxs 只用于紧急排队" in errs[0], errs


PBXS = """\
pbxs:
  a:
    ami: IVR_AMI_URL
    peer_address: 10.0.0.11:4569
  b:
    ami: ami://ivr@10.0.1.22:5039
    secret_env: IVR_AMI_SECRET_B
    peer_address: {b}
"""


def test_each_pbx_says_where_the_others_reach_it_over_the_trunk() -> None:
    cfg, problems = parse_pbxs(PBXS.format(b="pbx-b.example:4570"), PBXS_FILE)
    assert cfg is not None and not problems
    assert (cfg.pbxs["a"].peer_address, cfg.pbxs["b"].peer_address) == ("10.0.0.11:4569", "pbx-b.example:4570")


@pytest.mark.parametrize(("b", "col", "says"), [
    ("10.0.0.12", 19, "peer_address 应为 主机:端口"),
    ("10.0.0.12:0", 19, "peer_address 应为 主机:端口"),
    ("IAX2/x@10.0.0.12:4569", 19, "peer_address 应为 主机:端口"),
    ("10.0.0.11:4569", 19, "has the peer_address of PBX 'a'"),
])
def test_a_peer_address_that_is_wrong_or_taken_is_an_error_at_its_value(b, col, says) -> None:
    cfg, problems = parse_pbxs(PBXS.format(b=b), PBXS_FILE)
    errs = [str(p) for p in problems if not p.warning]
    assert cfg is None and len(errs) == 1, errs
    assert errs[0].startswith(f"queue/pbxs.yaml:8:{col}") and says in errs[0], errs


async def test_a_pbx_a_move_failed_to_is_left_out_for_the_next_callers(shipped) -> None:
    """Its trunk unreachable (AMI up, IAX2 dropped by a firewall): before, every
    emergency caller rang it for 10 s before queueing at home."""
    state = live({"a": 3600.0, "b": 0.0}, {"b": B_ADDRESS})
    _, sim, _ = await run(shipped, Caller(digits=["1"], dial_status="CHANUNAVAIL"), state)
    assert 'EXEC Dial "Local/12345@ivr-to-peer,5"' in sim.commands
    _, sim, _ = await run(shipped, Caller(digits=["1"], dial_status="ANSWER"), state)
    assert not any("ivr-to-peer" in c for c in sim.commands) and sim.queue_calls[0][:2] == ("emergency-q", 10)
    assert state.sooner_elsewhere("pbx-a", "emergency-q", 10) is None


async def test_a_caller_who_arrived_from_another_pbx_is_never_moved_whatever_the_flow_says(shipped) -> None:
    """The receiving side's guard is the dialplan context, not the flow: a flow
    naming other_pbxs on PBX b cannot send the caller back to a (no ping-pong)."""
    sim = SimChannel(Caller(digits=["1"]), flow="main")
    sim.context = "ivr-from-peer"
    ch = AgiChannel(InMemoryTransport(sim), CallInfo.from_agi_env(
        dict(line.rstrip("\n").split(": ", 1) for line in sim.env() if ": " in line)))
    assert ch.call.context == "ivr-from-peer"
    facts = live({"a": 0.0, "b": 3600.0}, {"a": "10.0.0.11:4569"}).facts(NOON, "pbx-b", caller="13900000009")
    record = await FlowInterpreter(CONFIG).run(shipped, "main", ch, facts, LOG)
    assert not any("ivr-to-peer" in c for c in sim.commands) and record.moved_to == ""
    assert sim.queue_calls[0][:2] == ("emergency-q", 10)


def test_other_pbxs_is_for_the_emergency_class_only() -> None:
    """The outlook the decision reads has the ordinary class and the emergency
    class (priority 10); the receiving PBX queues the caller in the latter."""
    text = textwrap.dedent("""\
        description: x
        start: q
        steps:
          q:
            type: queue
            queue: emergency
            emergency: true
            priority: 5
            other_pbxs: true
            on_timeout: bye
          bye:
            type: hangup
        """)
    catalog = Catalog(frozenset(), {"general": "general-q", "emergency": "emergency-q"}, None)
    _, problems = check_flow_texts({"x": ("flows/x.yaml", text)}, catalog)
    errs = [str(p) for p in problems if not p.warning]
    assert len(errs) == 1 and "priority: 10" in errs[0], errs


def test_a_moved_call_is_one_call_in_the_report() -> None:
    from ivr.callback.report import hotline_figures
    calls = [{"number": "139", "wanted_person": "0", "queue_status": "", "moved_to": "b"},
             {"number": "139", "wanted_person": "1", "queue_status": "ANSWERED"}]
    h = hotline_figures(calls, [], {})
    assert (h["calls"], h["calls_wanting_person"], h["calls_answered_live"]) == (1, 1, 1)


@pytest.mark.parametrize(("home_wait", "second_moved"), [(20.0, False), (3600.0, True)])
async def test_callers_moved_within_one_outlook_do_not_all_count_on_the_same_free_seat(
        shipped, home_wait, second_moved) -> None:
    """Every emergency caller deciding before the next outlook saw the same
    free seat on b (found by review, session 10): the first is sent; after it
    b's line counts as a wait of 15 s, so the next goes only when home is
    worse by the margin; a new outlook counts the moved callers itself."""
    state = live({"a": home_wait, "b": 0.0}, {"b": B_ADDRESS})
    _, first, _ = await run(shipped, Caller(digits=["1"]), state)
    _, second, _ = await run(shipped, Caller(digits=["1"]), state)
    assert any("ivr-to-peer" in c for c in first.commands)
    assert any("ivr-to-peer" in c for c in second.commands) is second_moved
    doc = city_outlook({"a": pbx_outlook(home_wait), "b": pbx_outlook(0.0)}, {"a": "pbx-a", "b": "pbx-b"},
                       {"b": B_ADDRESS})
    state.use_outlook(orjson.dumps(doc))                # b's seats as they are now: trusted again
    there = state.sooner_elsewhere("pbx-a", "emergency-q", 10)
    assert there is not None and there.wait_s == 0.0
