"""The drill report's rates, from what the drill recorded (pure functions; the
definitions are in docs/drill.md):

- ``answered_within_15s_rate``: GB/T 33358's 15秒接通率;
- ``broad_answer_rate_within_deadline``: 广义接通率, answered live or reached by a
  callback within the callback policy's deadline, over the citizens;
- ``seats_needed_for_95``: Erlang A, from the run's own arrival, handle and
  patience figures.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ivr.callback.figures import figures_of
from ivr.rehearsal.sim.callcenter import erlang_a

TARGET_ANSWERED = 0.95
WINDOW_S = 3600.0       # the busiest hour of the run sizes the seats


@dataclass(frozen=True, slots=True)
class Call:
    """What the rates need of one call that reached the PBX."""
    number: str
    at: float
    redial: bool
    outcome: str
    wait_s: float | None
    wanted_person: bool
    survey: str | None = None   # answered: the key pressed for the rating, "" none (hung up), None not offered


def answered_within(calls: Sequence[Call], blocked_attempts: int, within_s: float = 15.0) -> tuple[int, float | None]:
    """Calls answered within ``within_s`` of entering the queue, and that over
    the calls that wanted a person: those that reached the PBX and queued or
    left a message, plus every attempt that heard busy (a busy tone answers
    nobody; the standard counts every inbound attempt). The wait is taken in
    whole seconds, as Asterisk reports it (QEHOLDTIME) and the engine's
    figures count it: 15.4 s is 15."""
    quick = sum(1 for c in calls if c.outcome == "answered" and c.wait_s is not None and int(c.wait_s) <= within_s)
    wanted = sum(1 for c in calls if c.wanted_person and c.outcome != "in_progress") + blocked_attempts
    return quick, (round(quick / wanted, 4) if wanted else None)


SURVEY_KEYS = {"1": "satisfied", "2": "basically_satisfied", "3": "dissatisfied", "": "no_answer"}
# a citizen who hangs up when Asterisk tells the place on joining (``balked``) left the queue: the engine
# records ABANDONED at once (``agi/channel.py``), so 15秒内放弃 counts them, on the wall as here
_QUEUE_STATUS = {"answered": "ANSWERED", "abandoned": "ABANDONED", "balked": "ABANDONED"}


def national(calls: Sequence[Call], blocked_attempts: int, duration_s: float) -> dict:
    """The national figures of the run (``ivr.callback.figures``, the auditors'
    module, over the drill's own records of each call): calls still in
    progress at the end are left out; every attempt that heard busy wanted a
    person and reached nobody (placed at the run's start: a run of more than
    24 hours would leave them out of its last 24); every conversation but an
    emergency was offered the survey (flows/main.yaml), no key pressed is no
    answer; a citizen who hung up when told their place on joining abandoned
    the queue at once (as the engine records it)."""
    summaries = [{"started": str(c.at), "wanted_person": "1" if c.wanted_person else "0",
                  "queue_status": _QUEUE_STATUS.get(c.outcome, ""),
                  # Asterisk's QEHOLDTIME is whole seconds (what the engine records for an answered call)
                  "hold_s": (str(int(c.wait_s)) if c.outcome == "answered" else str(c.wait_s)) if c.wait_s is not None
                  else "0" if c.outcome == "balked" else "",
                  "survey": SURVEY_KEYS.get(c.survey, "no_answer")
                  if c.outcome == "answered" and c.survey is not None else ""}
                 for c in calls if c.outcome != "in_progress"]
    summaries += [{"started": "0", "wanted_person": "1", "outcome": "lines_full"}] * blocked_attempts
    end = max([duration_s, *(c.at for c in calls)]) + 1
    f = figures_of(summaries, [], 0.0, end, dt.UTC, now=end)
    return {k: f[k] for k in ("answered_within_15s_rate", "answer_rate_24h", "average_speed_of_answer_s",
                              "abandoned_within_15s", "satisfaction_rate", "survey")}


def broad_answer_rate(calls: Sequence[Call], dialled: set[str], records: Iterable[dict], now_epoch: float) -> dict:
    """广义接通率 within deadline. Citizens: every number that dialled (also
    those who only ever heard busy), except those whose last call ended
    satisfied by the policy announcement (the recording answered them).
    Reached: answered live at least once, or a callback closed as reached no
    later than its record's deadline. ``callbacks_open_within_deadline_end``:
    citizens not reached whose callback was still open, its deadline not yet
    passed, when the run ended (they may still be reached in time)."""
    live = {c.number for c in calls if c.outcome == "answered"}
    last: dict[str, str] = {}
    for c in sorted(calls, key=lambda c: c.at):
        last[c.number] = c.outcome
    citizens = {n for n in dialled if last.get(n) != "satisfied" or n in live}
    in_time, still_open = set(), set()
    for r in records:
        number = r.get("number", "")
        if number not in citizens or number in live:
            continue
        deadline = float(r.get("deadline") or 0)
        if r.get("closed_reason") == "reached" and float(r.get("closed_at") or math.inf) <= deadline:
            in_time.add(number)
        elif r.get("state") != "closed" and deadline > now_epoch:
            still_open.add(number)
    still_open -= in_time
    reached = len(live & citizens) + len(in_time)
    return {"broad_answer_rate_within_deadline": round(reached / len(citizens), 4) if citizens else None,
            "citizens_wanting_an_answer": len(citizens), "citizens_answered_live": len(live & citizens),
            "citizens_reached_by_callback_in_time": len(in_time),
            "callbacks_open_within_deadline_end": len(still_open)}


def busiest_hour_rate(times: Sequence[float], duration_s: float) -> float:
    """Arrivals per second in the busiest ``WINDOW_S`` of the run (the whole
    run when it is shorter); ``times`` sorted."""
    if duration_s <= WINDOW_S or not times:
        return len(times) / max(duration_s, 1.0)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= WINDOW_S:
            lo += 1
        best = max(best, hi - lo + 1)
    return best / WINDOW_S


def seats_needed(arrivals_per_s: float, handle_s: float, patience_s: float,
                 target: float = TARGET_ANSWERED) -> int | None:
    """The fewest seats for which Erlang A (M/M/s+M) answers ``target`` of
    the callers (abandons at most 1 - target)."""
    if arrivals_per_s <= 0 or handle_s <= 0:
        return None

    def ok(s: int) -> bool:
        if math.isinf(patience_s):        # nobody gives up: any stable queue answers everyone
            return s * 1.0 > arrivals_per_s * handle_s
        return erlang_a(arrivals_per_s, handle_s, s, patience_s)["p_abandon"] <= 1 - target
    hi = max(1, math.ceil(arrivals_per_s * handle_s))
    while not ok(hi):
        hi *= 2
    lo = 1
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def seats_for_95(*, first_call_times: Sequence[float], duration_s: float, calls: Sequence[Call],
                 talk_times: Sequence[float], wrapup_s: float, queued: Sequence[dict],
                 redial_probability: float) -> dict:
    """``seats_needed_for_95`` and the figures it came from: the busiest hour's
    first calls times the share of first calls that wanted a person (plus the
    redials of the 5 % who would still give up), the mean talk time of the
    answered calls plus wrap-up, and the patience estimated from the queue as
    exponential: the callers who left the queue unanswered (hung up, took the
    callback offer, timed out) over the total time callers waited."""
    first = [c for c in calls if not c.redial and c.outcome not in ("in_progress", "other")]
    wanted_share = sum(1 for c in first if c.wanted_person) / len(first) if first else 1.0
    rate = busiest_hour_rate(first_call_times, duration_s) * wanted_share
    rate /= 1 - (1 - TARGET_ANSWERED) * redial_probability
    handle = (sum(talk_times) / len(talk_times) + wrapup_s) if talk_times else None
    abandoned = sum(1 for r in queued if r["outcome"] in ("abandoned", "callback", "timeout"))
    waited = sum(r["wait_s"] for r in queued if r["wait_s"] is not None)
    patience = waited / abandoned if abandoned else math.inf
    seats = seats_needed(rate, handle, patience) if handle else None
    return {"seats_needed_for_95": seats,
            "seats_needed_for_95_inputs": {"arrivals_per_s": round(rate, 3),
                                           "handle_s": None if handle is None else round(handle, 1),
                                           "patience_s": None if math.isinf(patience) else round(patience, 1)}}
