"""The callback policy as tables: what is a missed call, of which kind, when the
next attempt may be made (spacing, calling hours), deadlines and order."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from ivr.callback.policy import (
    Policy,
    classify,
    first_attempt_at,
    next_attempt_at,
    parse_policy,
    rank,
    reached_a_person,
)
from tests import english

TZ = ZoneInfo("Asia/Shanghai")
P = Policy()


def at(h, m=0, day=23):
    return dt.datetime(2026, 11, day, h, m, tzinfo=TZ).timestamp()


def summary(**kw):
    base = {"wanted_person": "1", "queue_status": "", "emergency": "0", "callback_accepted": "0",
            "message": "", "sent_to_message": "0", "hold_s": "", "started": "100", "ended": "160"}
    return {**base, **kw}


@pytest.mark.parametrize("s, expected", [
    (summary(queue_status="ANSWERED"), None),
    (summary(wanted_person="0"), None),                                   # hung up at the greeting
    (summary(queue_status="ABANDONED", hold_s="42"), ("ordinary", "abandoned", False)),
    (summary(queue_status="ABANDONED", hold_s="3"), ("ordinary", "abandoned", True)),       # misdial
    (summary(queue_status="ABANDONED", hold_s="3", emergency="1"), ("emergency", "abandoned", False)),
    (summary(queue_status="TIMEOUT"), ("ordinary", "queue_timeout", False)),
    (summary(queue_status="FULL"), ("ordinary", "queue_full", False)),
    (summary(queue_status="JOINEMPTY"), ("ordinary", "no_seats", False)),
    (summary(queue_status="WITHDRAW"), ("courtesy", "callback_accepted", False)),
    (summary(queue_status="TIMEOUT", callback_accepted="1"), ("courtesy", "callback_accepted", False)),
    (summary(queue_status="TIMEOUT", message="msg-1"), ("ordinary", "message_left", False)),
    (summary(queue_status="TIMEOUT", sent_to_message="1"), ("ordinary", "sent_to_message", False)),
    (summary(), ("ordinary", "hung_up_in_flow", False)),                  # asked for a person, hung up before the queue
])
def test_what_a_missed_call_is(s, expected):
    miss = classify(s, P)
    assert (None if miss is None else (miss.kind, miss.reason, miss.misdial)) == expected


def test_a_summary_with_unreadable_times_has_no_hold_time():
    # found by mypy: None - float raised TypeError out of classify
    miss = classify(summary(queue_status="ABANDONED", started="?", ended="103"), P)
    assert miss is not None and (miss.reason, miss.misdial) == ("abandoned", False)
    assert classify(summary(queue_status="ABANDONED", started="100", ended="103"), P).misdial


def test_reached_a_person():
    assert reached_a_person(summary(queue_status="ANSWERED")) and not reached_a_person(summary())


@pytest.mark.parametrize("attempts, failed_at, emergency, expected", [
    (1, at(10), False, at(10, 10)),          # +10 min
    (2, at(10), False, at(10, 30)),          # +30 min
    (3, at(10), False, at(12)),              # +2 h
    (4, at(10), False, None),                # the last attempt was made
    (3, at(20), False, at(8, day=24)),       # 22:00 is outside calling hours: next morning 08:00
    (3, at(20), True, at(22)),               # emergencies are called at night too
])
def test_next_attempt(attempts, failed_at, emergency, expected):
    assert next_attempt_at(attempts, failed_at, emergency, TZ, P) == expected


def test_first_attempt_waits_for_calling_hours_unless_emergency():
    assert first_attempt_at(at(2), False, TZ, P) == at(8)
    assert first_attempt_at(at(2), True, TZ, P) == at(2)
    assert first_attempt_at(at(9), False, TZ, P) == at(9)


def test_order_emergency_then_deadline():
    ordinary_old = rank("ordinary", P.deadline("ordinary", at(8)))
    courtesy_new = rank("courtesy", P.deadline("courtesy", at(10)))
    emergency_new = rank("emergency", P.deadline("emergency", at(11)))
    assert sorted([ordinary_old, courtesy_new, emergency_new]) == [emergency_new, courtesy_new, ordinary_old]
    assert P.deadline("emergency", at(8)) == at(10)      # the Ordos rule: 2 hours


def test_shipped_policy_reads(project_home):
    from ivr.callback.policy import load_policy
    policy, problems = load_policy(project_home / "callback")
    assert problems == [] and policy.spacing_s == (600, 1800, 7200) and policy.deadlines_s["emergency"] == 7200


@pytest.mark.parametrize("text, message", [
    ("attempts: [10m, 3 hours]\n", "callback/policy.yaml:1:17: callback policy: expected a duration like 90s, 10m, 2h or 1d, got '3 hours'"),
    ("calling_hours: ['8:00', '21:00']\n", "callback/policy.yaml:1:17: callback policy: expected a time HH:MM, got '8:00'"),
    ("short_abandon: 5\n", "callback/policy.yaml:1:1: callback policy: unknown key 'short_abandon' (did you mean 'short_abandon_s'?)"),
    ("deadlines: {emergncy: 2h}\n", "callback/policy.yaml:1:13: deadlines: unknown key 'emergncy' (did you mean 'emergency'?)"),
])
def test_policy_errors_point_at_the_line(text, message):
    policy, problems = parse_policy(text, "callback/policy.yaml")
    assert policy is None and message in [english(p) for p in problems], [str(p) for p in problems]
