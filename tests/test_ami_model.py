"""The live model fed with the real AMI sessions, and the simulated PBX checked
against them: same event names, same fields in the same order, same answers."""

import pytest

from ivr.ami.model import LiveModel
from ivr.rehearsal.sim.pbx import SimPbx
from tests.ami_transcripts import keys_of, load, real_messages, real_shapes

LIST_EVENTS = {"QueueParams", "QueueMember", "QueueEntry", "QueueStatusComplete", "QueueSummary",
               "QueueSummaryComplete", "DeviceStateListComplete", "CoreShowChannelsComplete"}


def replay(session: str, model: LiveModel, *, withdraw: dict[str, str] | None = None) -> list[dict]:
    """Feed a session as the controller would: unsolicited events to ``apply``,
    each QueueStatus answer to ``rebuild``. Returns the snapshots taken after
    each rebuild."""
    snaps, listing = [], None
    for m in load(session):
        msg, t = m["msg"], m["t"]
        if msg.get("Message") == "Queue status will follow":
            listing = []
        elif listing is not None and msg.get("Event") in LIST_EVENTS:
            listing.append(msg)
            if msg["Event"] == "QueueStatusComplete":
                model.rebuild(listing, t)
                snaps.append(model.snapshot(t))
                listing = None
        elif msg.get("Message") == "Withdraw requested successfully" and withdraw:
            pass
        elif "Event" in msg:
            model.apply(msg, t)
        if withdraw and msg.get("ActionID") in withdraw and msg.get("Response") == "Success":
            model.note_withdraw(withdraw[msg["ActionID"]])
    return snaps


def test_priority_change_and_withdraw_session():
    model = LiveModel(emergency_queues=["emergency"])
    # cap-10 is the QueueWithdrawCaller for the second caller (see capture-priority-withdraw.py)
    snaps = replay("session-priority-change-and-withdraw", model, withdraw={"cap-10": "1795373725.30"})
    before, after_prio, after_withdraw = (s["queues"]["general-q"] for s in snaps)
    assert [c["priority"] for c in before["callers"]] == [0, 0, 0]
    # QueueChangePriorityCaller: the third caller is now first, with priority 10 -> an emergency
    assert [(c["uniqueid"], c["priority"]) for c in after_prio["callers"]][0] == ("1795373726.32", 10)
    assert after_prio["emergency_waiting"] == 1
    assert after_prio["callers"][0]["number"] == "135******03"          # masked
    # The withdrawn caller's QueueCallerAbandon is a withdrawal, not an abandon
    assert after_withdraw["waiting"] == 2
    assert after_withdraw["withdrawn"] == 1 and after_withdraw["abandoned"] == 0
    assert model.snapshot(load("session-priority-change-and-withdraw")[-1]["t"])["queues"]["general-q"]["waiting"] == 0


def test_pause_abandon_answer_and_dynamic_members_session():
    model = LiveModel(emergency_queues=["emergency"])
    events = load("session-queues-originate-pause")
    paused_at = None
    for m in events:
        if "Event" in m["msg"] and m["msg"]["Event"] not in LIST_EVENTS:
            model.apply(m["msg"], m["t"])
        if m["msg"].get("Event") == "QueueMemberPause" and m["msg"]["Paused"] == "1" and paused_at is None:
            paused_at = m["t"]
            seat = model.seats["Local/101@seats/n"]
            assert seat.state == "paused" and seat.paused_reason == "break"
        if m["msg"].get("Event") == "QueueMemberAdded":
            # it joined the emergency line as well as the general one: an overflow seat, not a reserved one
            assert "emergency" in model.seats["Local/102@seats/n"].queues
            assert not model.seats["Local/102@seats/n"].reserved
    snap = model.snapshot(events[-1]["t"])
    q = snap["queues"]["general-q"]
    assert (q["abandoned"], q["answered"], q["withdrawn"]) == (1, 1, 0)
    assert q["abandon_rate"] == 0.5 and q["service_level"] == 0.5
    assert "emergency" not in model.seats["Local/102@seats/n"].queues   # removed again
    assert not model.seats["Local/102@seats/n"].reserved
    assert snap["ordinary"]["answered"] == 1 and snap["emergency"]["answered"] == 0


def test_device_state_makes_a_seat_busy_and_free_again():
    model = LiveModel()
    for m in load("session-full-call"):
        if "Event" in m["msg"]:
            model.apply(m["msg"], m["t"])
            if m["msg"].get("Event") == "AgentConnect":
                assert model.seats[m["msg"]["Interface"]].state == "busy"
    assert all(s.state == "idle" for s in model.seats.values())


def test_outcomes_leave_the_window():
    model = LiveModel(window_s=60)
    join = {"Event": "QueueCallerJoin", "Uniqueid": "1.1", "Queue": "q", "CallerIDNum": "13800000000",
            "Channel": "c1"}
    model.apply(join, 0)
    model.apply({"Event": "QueueCallerAbandon", "Uniqueid": "1.1", "Queue": "q", "HoldTime": "30"}, 30)
    assert model.observation(31).abandon_rate == 1.0
    assert model.observation(200).offered == 0


def test_queue_priority_from_chanvariable_marks_an_emergency():
    model = LiveModel(emergency_priority=10)
    model.apply({"Event": "QueueCallerJoin", "Uniqueid": "1.2", "Queue": "general-q", "CallerIDNum": "1",
                 "Channel": "c", "ChanVariable": ["IVR_X=1", "QUEUE_PRIO=10"]}, 0)
    assert [w.uniqueid for w in model.emergency_waiting()] == ["1.2"]


# -- the simulated PBX speaks like the real one ---------------------------------

def _sim_session() -> tuple[SimPbx, list[list[tuple[str, str]]], list[list[tuple[str, str]]]]:
    now = [1000.0]
    pbx = SimPbx(lambda: now[0])
    pbx.add_queue("general-q")
    pbx.add_queue("emergency", weight=10)
    pbx.add_member("general-q", "Local/101@seats/n", "Seat101", "Custom:seat101")
    pbx.add_member("general-q", "Local/102@seats/n", "Seat102", "Custom:seat102")
    pbx.add_member("emergency", "Local/101@seats/n", "Seat101", "Custom:seat101")
    responses = []
    act = lambda **kw: responses.extend(pbx.action({"ActionID": f"t-{len(responses)}", **kw}))  # noqa: E731
    act(Action="QueuePause", Queue="general-q", Interface="Local/101@seats/n", Paused="true", Reason="break")
    act(Action="QueuePause", Queue="general-q", Interface="Local/102@seats/n", Paused="true", Reason="break")
    a = pbx.join("general-q", "13500000001")
    b = pbx.join("general-q", "13500000002")
    c = pbx.join("general-q", "13500000003")
    now[0] += 4
    act(Action="QueueStatus", Queue="general-q")
    act(Action="QueueChangePriorityCaller", Queue="general-q", Caller=c.channel, Priority="10", Immediate="true")
    act(Action="QueueWithdrawCaller", Queue="general-q", Caller=b.channel, WithdrawInfo="callback-offered")
    pbx.abandon(a.uniqueid)
    d = pbx.join("general-q", "13600136000")
    pbx.dtmf(d.uniqueid, "1")
    act(Action="QueuePause", Queue="general-q", Interface="Local/101@seats/n", Paused="false")
    pbx.dispatch()
    now[0] += 4
    pbx.hangup_call("Local/101@seats/n")
    act(Action="QueueAdd", Queue="emergency", Interface="Local/102@seats/n", MemberName="Seat102",
        StateInterface="Custom:seat102")
    act(Action="QueueRemove", Queue="emergency", Interface="Local/102@seats/n")
    act(Action="Originate", Channel="Local/101@seats/n", Context="caller", Exten="wait", Priority="1",
        CallerID='"12345 callback" <12345>', Async="true")
    pbx.originate_result(pbx.originated[-1], True)
    act(Action="Originate", Channel="SIP/nowhere", Context="caller", Exten="wait", Priority="1")
    pbx.originate_result({"ActionID": "x", "Channel": "Local/999@nonexistent/n", "Context": "caller",
                          "Exten": "wait", "CallerID": '"Citizen" <13800138000>'}, False)
    waiting = {e.uniqueid for q in pbx.queues.values() for e in q.entries}
    assert c.uniqueid not in waiting and d.uniqueid in waiting     # priority 10 went first
    return pbx, responses, pbx.drain()


def test_sim_events_have_the_fields_of_the_real_ones():
    real = real_shapes()
    pbx, responses, events = _sim_session()
    seen = set()
    for msg in events + [r for r in responses if r[0][0] == "Event"]:
        name = msg[0][1]
        shape = tuple(k for k, _ in msg if k != "ChanVariable")   # the captures ran without channelvars
        assert shape in real[name], f"{name}: simulator sends {shape}"
        seen.add(name)
    assert {"QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "AgentCalled", "AgentConnect",
            "AgentComplete", "QueueMemberPause", "QueueMemberStatus", "QueueMemberAdded", "QueueMemberRemoved",
            "QueueParams", "QueueMember", "QueueEntry", "QueueStatusComplete", "DeviceStateChange",
            "OriginateResponse", "DTMFEnd"} <= seen


def test_sim_answers_actions_with_the_real_messages():
    real = real_messages()
    _, responses, _ = _sim_session()
    answers = [(dict(r)["Response"], dict(r).get("Message", "")) for r in responses if r[0][0] == "Response"]
    assert len(answers) == 10
    for a in answers:
        assert a in real, f"simulator answers {a}"


def test_sim_withdraw_is_reported_as_abandon_then_leave_like_asterisk():
    pbx, _, events = _sim_session()
    names = [m[0][1] for m in events]
    i = names.index("QueueCallerAbandon")
    assert names[i + 1] == "QueueCallerLeave"
    real = [m["msg"].get("Event") for m in load("session-priority-change-and-withdraw")
            if m["msg"].get("Event", "").startswith("Queue")]
    j = real.index("QueueCallerAbandon")
    assert real[j + 1] == "QueueCallerLeave"


@pytest.mark.parametrize("emergency_waits, expected", [(True, "emergency"), (False, "general-q")])
def test_reserved_seat_takes_no_ordinary_call_while_an_emergency_waits(emergency_waits, expected):
    now = [0.0]
    pbx = SimPbx(lambda: now[0])
    pbx.add_queue("general-q")
    pbx.add_queue("emergency", weight=10)
    pbx.add_member("general-q", "Local/109@s/n", "Seat109", "Custom:seat109", penalty=10)
    pbx.add_member("emergency", "Local/109@s/n", "Seat109", "Custom:seat109")
    pbx.add_member("emergency", "Local/110@s/n", "Seat110", "Custom:seat110")
    pbx.action({"Action": "QueuePause", "Interface": "Local/110@s/n", "Paused": "true"})
    pbx.join("general-q", "13800000001")           # the ordinary caller came first
    if emergency_waits:
        pbx.join("emergency", "13800000009", priority=10)
    made = pbx.dispatch()
    assert [(b.queue, b.interface) for b in made] == [(expected, "Local/109@s/n")]


def test_priority_caller_is_connected_first():
    now = [0.0]
    pbx = SimPbx(lambda: now[0])
    pbx.add_queue("general-q")
    pbx.add_member("general-q", "Local/101@s/n", "Seat101", "Custom:seat101")
    pbx.action({"Action": "QueuePause", "Interface": "Local/101@s/n", "Paused": "true"})
    first = pbx.join("general-q", "13800000001")
    urgent = pbx.join("general-q", "13800000002")
    assert keys_of("x: 1\r\n") == ("x",)
    pbx.action({"Action": "QueueChangePriorityCaller", "Queue": "general-q", "Caller": urgent.channel,
                "Priority": "10", "Immediate": "true"})
    pbx.action({"Action": "QueuePause", "Interface": "Local/101@s/n", "Paused": "false"})
    made = pbx.dispatch()
    assert [b.entry.uniqueid for b in made] == [urgent.uniqueid]
    assert [e.uniqueid for e in pbx.queues["general-q"].entries] == [first.uniqueid]


CALL_EVENTS = {"QueueCallerJoin", "AgentCalled", "QueueCallerLeave", "AgentConnect", "AgentComplete",
               "QueueCallerAbandon"}


def _call_sequence(events):
    return [e for e in events if e in CALL_EVENTS]


def test_sim_sequence_for_an_answered_call_and_an_abandon_matches_asterisk():
    real = _call_sequence(m["msg"].get("Event") for m in load("session-full-call"))
    assert real == ["QueueCallerJoin", "AgentCalled", "QueueCallerLeave", "AgentConnect", "AgentComplete"]
    now = [0.0]
    pbx = SimPbx(lambda: now[0])
    pbx.add_queue("general-q")
    pbx.add_member("general-q", "Local/101@seats/n", "Seat101", "Custom:seat101")
    pbx.join("general-q", "13800138000")
    pbx.dispatch()
    now[0] += 5
    pbx.hangup_call("Local/101@seats/n")
    assert _call_sequence(m[0][1] for m in pbx.drain()) == real
    real_abandon = _call_sequence(m["msg"].get("Event") for m in load("session-queues-originate-pause"))[:3]
    assert real_abandon == ["QueueCallerJoin", "QueueCallerAbandon", "QueueCallerLeave"]
    pbx.action({"Action": "QueuePause", "Interface": "Local/101@seats/n", "Paused": "true"})
    e = pbx.join("general-q", "13700137000")
    pbx.abandon(e.uniqueid)
    assert _call_sequence(m[0][1] for m in pbx.drain()) == real_abandon


def test_sim_callback_originate_answers_like_asterisk():
    # Originate (Async): a response now, OriginateResponse (Success, Reason 4) when the seat answers
    real = [m["msg"] for m in load("session-queues-originate-pause")]
    queued = next(m for m in real if m.get("Message") == "Originate successfully queued")
    answer = next(m for m in real if m.get("Event") == "OriginateResponse" and m.get("Response") == "Success")
    pbx = SimPbx(lambda: 0.0)
    resp = pbx.action({"Action": "Originate", "ActionID": queued["ActionID"], "Channel": "Local/101@seats/n",
                       "Context": "caller", "Exten": "wait", "Priority": "1", "Async": "true"})
    assert dict(resp[0])["Message"] == queued["Message"]
    pbx.originate_result(pbx.originated[-1], True)
    ev = dict(pbx.drain()[-1])
    assert (ev["Event"], ev["Response"], ev["Reason"]) == ("OriginateResponse", "Success", answer["Reason"])


def test_the_walls_estimated_wait_is_what_a_caller_joining_now_is_told():
    """The wall's and `ivr status`'s "预计 est. s" (the snapshot's estimated wait)
    and the capture's (``estimated_wait``: when a courtesy callback is due) were
    a plain figure of their own: the median recent wait times the callers beyond
    the free seats, 45 s x 3 = 135 s here (960 s in the demo), while callers were
    told the wait estimator's. Now all three are the estimator's figure for a
    caller joining at the back at priority 0, as the outlook publishes it."""
    model = LiveModel()
    model.apply({"Event": "QueueMemberStatus", "Queue": "q", "Interface": "S1", "StateInterface": "Custom:s1",
                 "Status": "2", "InCall": "1", "Paused": "0"}, 0)
    for i, (join, answer) in enumerate([(0, 30), (5, 65)]):
        model.apply({"Event": "QueueCallerJoin", "Uniqueid": f"a{i}", "Queue": "q", "CallerIDNum": "1",
                     "Channel": "c"}, join)
        model.apply({"Event": "AgentConnect", "Uniqueid": f"a{i}", "Queue": "q", "Interface": "S1",
                     "HoldTime": str(answer - join)}, answer)
    for i in range(3):
        model.apply({"Event": "QueueCallerJoin", "Uniqueid": f"w{i}", "Queue": "q", "CallerIDNum": "1",
                     "Channel": "c"}, 70)
    model.apply({"Event": "DeviceStateChange", "Device": "Custom:s1", "State": "INUSE"}, 70)
    assert model.seats["S1"].status == 2 and model.seats["S1"].state == "busy"
    # asked in either order, at the same moment: the same figure
    assert model.estimated_wait("q", 80) == model.snapshot(80)["queues"]["q"]["estimated_wait_s"] \
        == model.outlook(80)["queues"]["q"]["0"][1]
    told = model.outlook(90)["queues"]["q"]["0"]
    assert model.snapshot(90)["queues"]["q"]["estimated_wait_s"] == model.estimated_wait("q", 90) == told[1]
    assert told[0] == 3 and told[1] > 0 and told[1] != 45 * 3      # three ahead, the only seat busy
    # a queue the PBX never reported (an AMI link not up yet): no wait, as before, not the estimator's
    # horizon for a queue without seats, which would put a courtesy callback an hour off
    assert LiveModel().estimated_wait("q", 80) == model.estimated_wait("elsewhere-q", 80) == 0.0
    assert "elsewhere-q" not in model.observers


def test_the_wall_and_the_outlook_agree_through_a_real_session():
    """At every event of a real session: the snapshot's estimated wait of each
    queue is what the outlook tells a caller joining it (an emergency queue's
    callers join at the emergency priority)."""
    model = LiveModel(emergency_queues=["emergency"])
    seen = 0
    for m in load("session-queues-originate-pause"):
        if "Event" not in m["msg"] or m["msg"]["Event"] in LIST_EVENTS:
            continue
        model.apply(m["msg"], m["t"])
        snap, told = model.snapshot(m["t"]), model.outlook(m["t"])["queues"]
        for q, figures in snap["queues"].items():
            joining = "10" if q == "emergency" else "0"
            assert figures["estimated_wait_s"] == told[q][joining][1], (m["msg"]["Event"], q)
            seen += figures["estimated_wait_s"] > 0
    assert seen                                   # not only empty queues with a free seat


def test_a_dynamic_member_removed_while_talking_still_ends_its_call():
    """The plan stands down and removes a seat it had added while that seat is
    on a call (QueueRemove is allowed then): the call goes on and ends with
    AgentComplete, as app_queue does. The simulator used to raise KeyError
    here and stopped the demo."""
    now = [1000.0]
    pbx = SimPbx(lambda: now[0])
    pbx.add_queue("general-q")
    assert pbx.action({"Action": "QueueAdd", "Queue": "general-q", "Interface": "Local/202@seats/n",
                       "MemberName": "Seat202", "StateInterface": "Custom:seat202", "ActionID": "a"})[0][0] \
        == ("Response", "Success")
    pbx.join("general-q", "13500000001")
    pbx.dispatch()
    assert "Local/202@seats/n" in pbx.calls
    pbx.action({"Action": "QueueRemove", "Queue": "general-q", "Interface": "Local/202@seats/n", "ActionID": "b"})
    pbx.drain()
    now[0] += 60
    pbx.hangup_call("Local/202@seats/n")
    done = [dict(m) for m in pbx.drain() if dict(m).get("Event") == "AgentComplete"]
    assert len(done) == 1 and done[0]["Interface"] == "Local/202@seats/n" and done[0]["TalkTime"] == "60"


def test_the_wait_estimator_counts_an_answered_caller_as_served_not_abandoned():
    """Asterisk 22 sends QueueCallerLeave before AgentConnect when a seat
    answers (the real session): counting that leave as leaving without a seat
    doubled the abandonment the estimator saw and halved its waits."""
    from ivr.admission.estimate import QueueObserver

    seen: list[tuple[str, str]] = []

    class Spy(QueueObserver):
        def served(self, caller, now, wait_s=None):
            seen.append(("served", caller))
            super().served(caller, now, wait_s)

        def abandoned(self, caller, now, wait_s=None):
            seen.append(("abandoned", caller))
            super().abandoned(caller, now, wait_s)

    model = LiveModel(emergency_queues=["emergency"])
    events = load("session-queues-originate-pause")
    model.observers["general-q"] = Spy("general-q", start=events[0]["t"])
    for m in events:
        if "Event" in m["msg"] and m["msg"]["Event"] not in LIST_EVENTS:
            model.apply(m["msg"], m["t"])
    model.outlook(events[-1]["t"] + 5)          # a leave with no connect after it is settled here
    kinds = [k for k, _ in seen]
    assert kinds.count("served") == 1 and kinds.count("abandoned") == 1, seen     # one answered, one abandoned
    assert model.observers["general-q"].waiting == 0


def test_an_emergency_queue_whose_general_seats_are_busy_is_still_served():
    """The drill's emergency line: reserved seats and every general seat at
    penalty 5 (queues.conf). General callers take the general seats; the
    emergency estimator saw its member seats turn busy with no caller of its
    own served, counted that as minus calls finished, and its service rate
    went below zero: every emergency caller was told 3600 s ("no seat
    serving") and answered within a second."""
    now = [1000.0]
    pbx = SimPbx(lambda: now[0])
    pbx.add_queue("general-q")
    pbx.add_queue("emergency-q", strategy="ringall", weight=10)
    for n in range(10001, 10005):
        iface, name, dev = f"Local/{n}@ivr-seats/n", f"Seat{n}", f"Custom:seat{n}"
        pbx.add_member("general-q", iface, name, dev)
        pbx.add_member("emergency-q", iface, name, dev, penalty=5)
    pbx.add_member("emergency-q", "Local/9002@ivr-seats/n", "Seat9002", "Custom:seat9002")
    model = LiveModel(emergency_queues=["emergency-q"])
    model.rebuild([dict(m) for m in pbx.action({"Action": "QueueStatus", "ActionID": "s"})[1:]], now[0])

    def tick(seconds: float) -> None:
        now[0] += seconds
        pbx.dispatch()
        for m in pbx.drain():
            model.apply(dict(m), now[0])
        model.outlook(now[0])                  # the leader publishes as events come

    for k in range(40):                        # a general line longer than the general seats
        pbx.join("general-q", f"1350000{k:04d}")
        tick(1)
    for k in range(24):                        # each general call done in about 30 s, the next caller
        pbx.hangup_call(f"Local/{10001 + k % 4}@ivr-seats/n")       # takes the seat at once
        tick(7.5)
    pbx.join("emergency-q", "13600000001", priority=10, chan_vars={"QUEUE_PRIO": "10"})
    tick(1)                                    # the reserved seat takes it
    pbx.join("emergency-q", "13600000002", priority=10, chan_vars={"QUEUE_PRIO": "10"})
    tick(1)                                    # every seat is busy: it waits
    assert len(pbx.queues["emergency-q"].entries) == 1
    waits = model.outlook(now[0])["queues"]["emergency-q"]["10"]
    assert waits[0] == 1 and 0 < waits[1] < 600, waits
    # the same seats finish calls at the same pace, whichever line they came from
    general, emergency = model.observers["general-q"], model.observers["emergency-q"]
    assert emergency.service_rate > 0.7 * general.service_rate > 0


def test_a_seat_whose_wrap_up_ended_is_idle_whatever_order_the_readers_come_in():
    """The snapshot keeps each seat's row and makes it again when the seat
    changes or its wrap-up ends. A reader may come with an earlier ``now``
    than the last one (the callback scheduler reads the clock, awaits Redis,
    then asks): the row it made at that earlier moment said "wrapup", and
    the wrap-up's end had already been taken by the later reader, so the
    seat stayed "wrapup" for good (found in review, session 9)."""
    iface = "Local/101@ivr-seats/n"
    model = LiveModel(wrapup_s={"general-q": 5.0})
    model.apply({"Event": "QueueMemberAdded", "Queue": "general-q", "Interface": iface, "MemberName": "Seat101",
                 "StateInterface": "Custom:seat101", "Status": "1", "Paused": "0", "InCall": "0"}, 0.0)
    model.apply({"Event": "AgentConnect", "Queue": "general-q", "Interface": iface, "Uniqueid": "1.1",
                 "HoldTime": "3"}, 1.0)
    model.apply({"Event": "AgentComplete", "Queue": "general-q", "Interface": iface, "Uniqueid": "1.1"}, 10.0)
    assert model.snapshot(12.0)["seats"][0]["state"] == "wrapup"         # until 15
    assert model.snapshot(16.0)["seats"][0]["state"] == "idle"
    model.apply({"Event": "QueueMemberPause", "Queue": "general-q", "Interface": iface, "MemberName": "Seat101",
                 "StateInterface": "Custom:seat101", "Status": "1", "Paused": "0", "InCall": "0"}, 16.1)
    assert model.snapshot(14.9)["seats"][0]["state"] == "wrapup"         # a reader a little behind
    for t in (20.0, 100.0, 1000.0):
        snap = model.snapshot(t)
        assert snap["seats"][0]["state"] == "idle" and snap["seat_states"]["idle"] == 1, (t, snap["seats"])


def test_callers_whose_leave_was_lost_in_a_reconnect_leave_the_wait_estimate_too():
    """``rebuild`` replaced the model's line with the PBX's listing, but the wait
    estimators kept every caller whose leave was lost while the link was down:
    each stayed ahead of everyone for good (found by review, session 10)."""
    now = [1000.0]
    pbx = SimPbx(lambda: now[0])
    pbx.add_queue("general-q")
    model = LiveModel()
    model.rebuild([dict(m) for m in pbx.action({"Action": "QueueStatus", "ActionID": "s"})[1:]], now[0])
    for k in range(5):
        model.apply({"Event": "QueueCallerJoin", "Queue": "general-q", "Uniqueid": f"1000.{k}",
                     "Channel": f"Local/{k}@x;1", "CallerIDNum": f"1390000000{k}", "Position": str(k + 1),
                     "Priority": "0"}, now[0])
    assert model.observers["general-q"].preview(0, now[0]).engine.position == 5
    # the link drops; the five leave meanwhile; one caller joined and is listed on reconnect
    now[0] += 60
    listing = [dict(m) for m in pbx.action({"Action": "QueueStatus", "ActionID": "s2"})[1:]]
    entry = {"Event": "QueueEntry", "Queue": "general-q", "Position": "1", "Uniqueid": "1060.9",
             "Channel": "Local/9@x;1", "CallerIDNum": "13900000009", "Wait": "20", "Priority": "0"}
    model.rebuild([*listing[:-1], entry, listing[-1]], now[0])
    assert set(model.waiting) == {"1060.9"}
    obs = model.observers["general-q"]
    assert obs.preview(0, now[0]).engine.position == 1          # the one listed, not six
    est = obs.estimate("1060.9", now[0])
    assert est is not None and est.engine.waited_s == 20.0       # at its own join time


def test_callers_moved_here_from_another_pbx_hold_no_line_of_this_one():
    """An emergency caller moved over IAX2 (``[ivr-from-peer]``) waits and
    talks on this PBX, but the line it holds is on the PBX it dialled: the
    split of this PBX's lines in use counted it as waiting (or talking) and
    took it out of those still in the flows (found by review, session 10)."""
    from ivr.admission.lines import LineReading, PbxLines

    now = 1000.0
    model = LiveModel(emergency_queues=["emergency-q"])
    model.lines_config = PbxLines("b", 30)
    model.lines_reading = LineReading(now, in_use=5, limit=28)
    model.rebuild([{"Event": "QueueMember", "Queue": "emergency-q", "Location": "Local/301@ivr-seats/n",
                    "Name": "Seat301", "StateInterface": "Custom:seat301", "Status": "1", "Paused": "0",
                    "InCall": "0", "Penalty": "0"}], now)
    for k, context in enumerate(("ivr-12345", "ivr-from-peer", "ivr-from-peer")):
        model.apply({"Event": "QueueCallerJoin", "Queue": "emergency-q", "Uniqueid": f"pbx-b-1000.{k}",
                     "Channel": f"IAX2/ivr-peer-{k}" if k else "Local/1@x;1", "CallerIDNum": f"1390000000{k}",
                     "Context": context, "Position": str(k + 1)}, now)
    lines = model.lines(now)
    assert (lines["in_use"], lines["waiting"], lines["talking"], lines["in_flows"]) == (5, 1, 0, 4)
    # one of them reaches the seat: still on no line of this PBX
    model.apply({"Event": "AgentConnect", "Queue": "emergency-q", "Uniqueid": "pbx-b-1000.1",
                 "Channel": "IAX2/ivr-peer-1", "Context": "ivr-from-peer", "Interface": "Local/301@ivr-seats/n",
                 "HoldTime": "3"}, now + 3)
    lines = model.lines(now + 3)
    assert (lines["waiting"], lines["talking"], lines["in_flows"]) == (1, 0, 4)
    assert model.snapshot(now + 3)["lines"]["talking"] == 0
