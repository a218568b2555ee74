"""The identities the figures staff see must satisfy, checked on what they
see: a board as ``/api/status`` returns it and the wallboard's event stream
pushes it (``ivr.web.api_seat_managers``), with the live model's snapshot
inside (``ivr.ami.model.LiveSnapshot``). Pure: a board in, the violated
identities out. docs/console.md names each one; a drill samples its console
and reports every violation (``ivr.rehearsal.sim.identities``).

Seat states come from one partition (``ivr.ami.model._seat_part``): every
seat is counted once, as busy (talking), wrap-up, idle, paused, reserved (an
emergency seat on shift, whatever it is doing) or offline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SEAT_PARTS = ("busy", "wrapup", "idle", "paused", "reserved")

# every identity, by name (docs/console.md says each in words)
IDENTITIES = {
    "seats_partition": "在岗 = 通话 + 话后整理 + 空闲 + 暂停 + 紧急预留 — on shift = talking + wrap-up + idle + "
                       "paused + reserved",
    "seats_plan_counted_once": "在岗 = 本班 + 预案增援 — on shift = the hotline's own + those the plan added",
    "seats_wall_is_the_model": "the wall's seat line = the live model's partition (as ivr status, /metrics)",
    "seats_list_adds_up": "the seats listed, counted by state, = the partition; every seat counted once",
    "queue_seats_add_up": "each queue's seat counts = the seats that are its members",
    "no_idle_seat_while_callers_wait": "no seat shown idle (longer than the queue's round) while callers wait in a "
                                       "queue it serves",
    "idle_tile_is_idle_seats": "the idle tile = the idle seats of the partition (reserved seats not among them)",
    "waiting_adds_up": "waiting = the sum over the queues; each queue's waiting = its callers listed",
    "emergency_waiting_adds_up": "emergency waiting = the emergency callers listed, and at most waiting",
    "longest_wait_is_a_caller": "the longest wait = the longest wait among the callers listed",
    "window_labelled": "answered, abandoned and the rates carry their window (window_s), and the rate is "
                       "abandoned / (answered + abandoned) of that window",
    "clock_board_is_engine_time": "the board's time (the wall's corner clock) is the engine's (a drill's simulated) "
                                  "time",
    "clock_live_age": "the live figures are the engine's, seconds old, not hours",
    "clock_callback_age": "no open callback is older than the clock allows (in a drill: than the drill)",
    "oldest_callback_is_the_oldest": "最久待回拨 = the board's time - the first call of the oldest open callback, "
                                     "whatever its state (waiting, being dialled, waiting for its next attempt)",
    "clock_level_times": "the level's since is not in the future and its expiry is after its since",
    "national_adds_up": "the last 24 hours' figures add up: survey answered + no answer = offered, 满意 + 基本满意 + "
                        "不满意 = answered, 满意率 = (满意 + 基本满意) / offered; 15秒接通率 and 24-hour 接通率 between "
                        "0 and 1, the first at most the second (answered within 15 s are answered)",
}


@dataclass(frozen=True, slots=True)
class ClockBounds:
    """What the engine's clock said around the request (``earliest``,
    ``latest``), when figures could first exist (``start``: a drill's start),
    and how far apart two readings of one clock may be (``slack_s``, in the
    clock's seconds: the publish and push intervals)."""

    earliest: float
    latest: float
    start: float | None
    slack_s: float
    # the first call of the oldest open callback (the store's index by first
    # call), read just before and just after the request; None: not read
    oldest_first_at: tuple[float | None, float | None] | None = None


def _v(name: str, **figures: Any) -> dict[str, Any]:
    return {"identity": name, "figures": figures}


# app_queue offers a seat that became free at its next round: each waiting
# caller's thread rechecks every second (RECHECK) and then rings the seat (which
# then shows ringing, not idle). An idle seat beside waiting callers is a fault
# once it has been idle longer than that.
DISPATCH_S = 3.0


def check(board: Mapping[str, Any], clock: ClockBounds | None = None,
          dispatch_s: float = DISPATCH_S) -> list[dict[str, Any]]:
    """The identities ``board`` violates (empty: every one holds).
    ``dispatch_s``: how long a seat may be idle beside waiting callers before
    the queue offers it one (the PBX's round; a drill adds its own tick)."""
    out = _clock(board, clock) if clock is not None else []
    out += _national(board.get("national"))
    live = board.get("live")
    if not live:
        return out
    wall = board.get("wall") or {}
    return out + _seats(wall, live, dispatch_s) + _waiting(wall, live) + _window(wall, live)


def _partition_of(seats: list[Mapping[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys((*SEAT_PARTS, "offline"), 0)
    for s in seats:
        state = str(s["state"])
        key = "reserved" if s.get("reserved") and state != "offline" else state
        counts[key] = counts.get(key, 0) + 1
    return counts


def _seat_line(wall: Mapping[str, Any], model: Mapping[str, int]) -> list[dict[str, Any]]:
    """The wall's seat line against the model's partition."""
    out: list[dict[str, Any]] = []
    line = wall.get("seats")
    if line is not None:
        parts = {k: line.get(k) for k in SEAT_PARTS}
        if line.get("on_shift") != sum(int(v or 0) for v in parts.values()):
            out.append(_v("seats_partition", on_shift=line.get("on_shift"), **parts))
        if line.get("on_shift") != line.get("base", 0) + line.get("added_by_plan", 0) or line.get("base", 0) < 0:
            out.append(_v("seats_plan_counted_once", on_shift=line.get("on_shift"), base=line.get("base"),
                          added_by_plan=line.get("added_by_plan")))
        shown = {k: line.get(k) for k in (*SEAT_PARTS, "offline")}
        if any(shown[k] != model.get(k, 0) for k in shown):
            out.append(_v("seats_wall_is_the_model", wall=shown, model=model))
        if wall.get("idle_seats") != model.get("idle", 0):
            out.append(_v("idle_tile_is_idle_seats", tile=wall.get("idle_seats"), idle=model.get("idle", 0)))
    return out


def _seats(wall: Mapping[str, Any], live: Mapping[str, Any], dispatch_s: float) -> list[dict[str, Any]]:
    out = []
    model = {k: int(v) for k, v in live.get("seat_states", {}).items()}
    listed = live.get("seats", [])
    out += _seat_line(wall, model)
    if "seats" not in live:         # the wallboard feed: figures, not every seat (web/api_seat_managers.py: _for_the_wall)
        return out
    counted = _partition_of(listed)
    if sum(model.values()) != len(listed) or any(counted.get(k, 0) != v for k, v in model.items()):
        out.append(_v("seats_list_adds_up", listed=len(listed), counted=counted, model=model))
    queues = live.get("queues", {})
    for name, q in queues.items():
        members = [s for s in listed if name in s.get("queues", {})]
        if sum(int(v) for v in q.get("seats", {}).values()) != len(members):
            out.append(_v("queue_seats_add_up", queue=name, seats=q.get("seats"), members=len(members)))
    per_pbx = live.get("pbxs") or {}
    for s in listed:
        if s["state"] != "idle":
            continue
        since = s.get("idle_since")
        idle_s = None if since is None else float(live["at"]) - float(since)
        if idle_s is not None and idle_s <= dispatch_s:
            continue                  # just became free: the queue offers it a caller at its next round
        # a caller who joined within the queue's round has not been offered a seat yet: only a line whose
        # longest wait is beyond the round makes an idle seat beside it a fault
        # several PBXs: a seat serves the callers of its own PBX's queue (the city's general-q sums every PBX's)
        own = per_pbx[s["pbx"]]["queues"] if s.get("pbx") in per_pbx else queues
        busy_queues = {n: own[n]["waiting"] for n in s.get("queues", {})
                       if n in own and own[n]["waiting"] and float(own[n]["longest_wait_s"]) > dispatch_s}
        if busy_queues:
            out.append(_v("no_idle_seat_while_callers_wait", seat=s.get("name") or s["interface"],
                          reserved=bool(s.get("reserved")), idle_s=None if idle_s is None else round(idle_s, 1),
                          allowed_s=round(dispatch_s, 1), waiting=busy_queues))
    return out


def _oldest_callback(at: float, age: Any, c: ClockBounds) -> list[dict[str, Any]]:
    """The board's oldest open callback against the store's, read around the
    request: the board's lies between the two readings. (The oldest first call
    grows when the oldest closes, and falls when a missed call is recorded
    whose call began before it and ended after: the record comes at its end.)"""
    if c.oldest_first_at is None:
        return []
    before, after = c.oldest_first_at
    if age is None:
        ok = before is None or after is None
    else:
        first = at - float(age)
        seen = [f for f in (before, after) if f is not None]
        ok = bool(seen) and min(seen) - ROUNDING_S <= first <= max(seen) + ROUNDING_S
    return [] if ok else [_v("oldest_callback_is_the_oldest", at=at, oldest_age_s=age, first_call_before=before,
                                 first_call_after=after)]


ROUNDING_S = 0.5        # the board's age is rounded to 0.1 s


def _waiting(wall: Mapping[str, Any], live: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    queues = live.get("queues", {})
    total = sum(int(q["waiting"]) for q in queues.values())
    if any("callers" not in q for q in queues.values()):      # the wallboard's feed: the figures only
        em = live.get("emergency", {}).get("waiting", 0)
        if wall.get("waiting", total) != total:
            out.append(_v("waiting_adds_up", wall=wall.get("waiting"), queues={n: q["waiting"] for n, q in queues.items()}))
        if wall.get("emergency_waiting", em) != em or em > total:
            out.append(_v("emergency_waiting_adds_up", wall=wall.get("emergency_waiting"), live=em, waiting=total))
        return out
    if wall.get("waiting", total) != total or any(q["waiting"] != len(q.get("callers", [])) for q in queues.values()):
        out.append(_v("waiting_adds_up", wall=wall.get("waiting"),
                      queues={n: [q["waiting"], len(q.get("callers", []))] for n, q in queues.items()}))
    em_listed = sum(1 for q in queues.values() for c in q.get("callers", []) if c.get("emergency"))
    em = live.get("emergency", {}).get("waiting", 0)
    if (em != em_listed or wall.get("emergency_waiting", em) != em or em > total
            or any(q["emergency_waiting"] != sum(1 for c in q.get("callers", []) if c.get("emergency"))
                   for q in queues.values())):
        out.append(_v("emergency_waiting_adds_up", wall=wall.get("emergency_waiting"), live=em, listed=em_listed,
                      waiting=total))
    for name, q in queues.items():
        longest = max((float(c["wait_s"]) for c in q.get("callers", [])), default=0.0)
        if abs(float(q["longest_wait_s"]) - longest) > 0.15:
            out.append(_v("longest_wait_is_a_caller", queue=name, longest_wait_s=q["longest_wait_s"],
                          longest_caller_s=longest))
    return out


def _window(wall: Mapping[str, Any], live: Mapping[str, Any]) -> list[dict[str, Any]]:
    window = live.get("window_s")
    answered, abandoned, rate = wall.get("answered"), wall.get("abandoned"), wall.get("abandon_rate")
    bad = not window or window <= 0 or wall.get("window_s") != window or answered is None or abandoned is None
    if not bad and answered is not None and abandoned is not None:
        offered = answered + abandoned
        bad = (rate is None) != (offered == 0) or (offered > 0 and abs(rate - abandoned / offered) > 0.0001)
    return [_v("window_labelled", window_s=wall.get("window_s"), live_window_s=window, answered=answered,
               abandoned=abandoned, abandon_rate=rate)] if bad else []


def _national(n: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The wall's national figures (``ivr.services.figures``) against their own counts."""
    if not n:
        return []
    sv = n.get("survey") or {}
    offered, answered = int(sv.get("offered", 0)), int(sv.get("answered", 0))
    rated = int(sv.get("satisfied", 0)) + int(sv.get("basically_satisfied", 0))
    rate, r15, r24 = n.get("satisfaction_rate"), n.get("answered_within_15s_rate"), n.get("answer_rate_24h")
    bad = (answered + int(sv.get("no_answer", 0)) != offered
           or rated + int(sv.get("dissatisfied", 0)) != answered
           or (rate is None) != (offered == 0)
           or (rate is not None and abs(rate - rated / offered) > 0.0001)
           or any(v is not None and not 0 <= v <= 1 for v in (r15, r24))
           or (r15 is not None and r24 is not None and r15 > r24 + 0.0001))
    return [_v("national_adds_up", survey=dict(sv), satisfaction_rate=rate, answered_within_15s_rate=r15,
               answer_rate_24h=r24)] if bad else []


def _clock(board: Mapping[str, Any], c: ClockBounds) -> list[dict[str, Any]]:
    out = []
    at = board.get("at")
    if not isinstance(at, (int, float)) or not c.earliest - c.slack_s <= at <= c.latest + c.slack_s:
        out.append(_v("clock_board_is_engine_time", at=at, engine_earliest=c.earliest, engine_latest=c.latest))
        return out
    live = board.get("live")
    if live and not -c.slack_s <= at - float(live["at"]) <= c.slack_s:
        out.append(_v("clock_live_age", at=at, live_at=live["at"]))
    age = board.get("callback_oldest_age_s")
    if age is not None and (age < -c.slack_s or (c.start is not None and age > at - c.start + c.slack_s)):
        out.append(_v("clock_callback_age", at=at, oldest_age_s=age, start=c.start))
    out += _oldest_callback(at, age, c)
    since, until = board.get("level_since"), board.get("level_expires_at")
    if (since is not None and since > at + c.slack_s) or (until is not None and since is not None and until < since):
        out.append(_v("clock_level_times", at=at, level_since=since, level_expires_at=until))
    return out
