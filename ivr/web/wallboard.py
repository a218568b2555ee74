"""The wallboard's few numbers, their colours and the seat totals. Pure: the live
snapshot, the plan and the callback figures in, what the wall shows out.

Colours (green / amber / red) come from the contingency plan's automatic
thresholds where it has them — a figure at level 1's ``raise_when`` is amber,
at level 2's it is red — so the wall turns red where the plan would act.
Where the plan has no threshold, the constants below apply (documented in
docs/console.md); the lines tile takes its colours from queue/lines.yaml."""

from __future__ import annotations

from ivr.contingency.plan import Plan, Seats
from ivr.contingency.seat_steps import seat_steps
from ivr.services import status as status_service

GREEN, AMBER, RED = "green", "amber", "red"

# (amber at, red at) where the plan says nothing; "higher is worse" unless noted
SERVICE_LEVEL_PCT = (80.0, 60.0)        # lower is worse: below 80 % amber, below 60 % red
EMERGENCY_WAITING = (1, 3)              # any emergency caller waiting is amber
OLDEST_CALLBACK_S = (2 * 3600, 4 * 3600)  # the emergency and courtesy deadlines (callback/policy.yaml)
FALLBACK = {"calls_waiting": (20, 60), "longest_wait_s": (120, 300), "abandon_rate": (0.15, 0.30)}


def plan_thresholds(plan: Plan | None) -> dict[str, tuple[float, float]]:
    """metric -> (amber, red) from the first two levels that raise on it."""
    out: dict[str, list[float]] = {}
    for lv in plan.levels if plan else ():
        for metric, value in (lv.raise_when.values() if lv.raise_when else {}).items():
            out.setdefault(metric, []).append(value)
    merged = dict(FALLBACK)
    for metric, values in out.items():
        merged[metric] = (values[0], values[1] if len(values) > 1 else values[0])
    return merged


def _higher_worse(v, amber, red) -> str:
    if v is None:
        return ""
    return RED if v >= red else AMBER if v >= amber else GREEN


def colours(fig: dict, thresholds: dict[str, tuple[float, float]]) -> dict[str, str]:
    sl = fig.get("service_level_pct")
    return {
        "waiting": _higher_worse(fig.get("waiting"), *thresholds["calls_waiting"]),
        "emergency_waiting": _higher_worse(fig.get("emergency_waiting"), *EMERGENCY_WAITING),
        "longest_wait_s": _higher_worse(fig.get("longest_wait_s"), *thresholds["longest_wait_s"]),
        "abandon_rate": _higher_worse(fig.get("abandon_rate"), *thresholds["abandon_rate"]),
        "service_level": "" if sl is None else RED if sl < SERVICE_LEVEL_PCT[1] else
        AMBER if sl < SERVICE_LEVEL_PCT[0] else GREEN,
        "idle_seats": "" if fig.get("idle_seats") is None else
        (RED if fig["idle_seats"] == 0 and fig.get("waiting") else AMBER if fig["idle_seats"] == 0 else GREEN),
        "callback_oldest_age_s": _higher_worse(fig.get("callback_oldest_age_s"), *OLDEST_CALLBACK_S),
        "lines": lines_colour(fig),
    }


def added_by_plan(plan: Plan | None, seats: Seats | None, queues: dict[str, str], level: int) -> set[str]:
    """Interfaces the plan's seat actions added to a queue at ``level`` (seats
    called back from a break are the hotline's own: they are not counted)."""
    if plan is None or seats is None:
        return set()
    return {s.interface for s in seat_steps(plan, seats, queues, 0, level) if s.action == "add"}


def lines_colour(fig: dict) -> str:
    """Red once free lines reach the emergency reserve, amber below the
    callback threshold (queue/lines.yaml); none when the lines are unknown."""
    free = fig.get("lines_free")
    if free is None:
        return ""
    return RED if free <= fig["lines_reserve"] else AMBER if free < fig["lines_callback_below"] else GREEN


def _lines(live: dict | None) -> dict:
    ln = status_service.lines(live)
    return {"lines_known": ln["known"], "lines_in_use": ln["in_use"], "lines_total": ln["total"],
            "lines_free": ln["free"], "lines_reserve": ln["emergency_reserve"],
            "lines_callback_below": ln["callback_below_free"], "lines_reason": ln["reason"]}


def seat_line(live: dict, added: set[str]) -> dict:
    """The seat line, one partition (``ivr.ami.model._seat_part``, the same
    figures as ``ivr status`` and ``/metrics``): on shift = talking + wrap-up +
    idle + paused + reserved emergency seats (each seat counted once), and on
    shift = the hotline's own + those the plan added (each counted once)."""
    states = live.get("seat_states", {})
    part = {k: int(states.get(k, 0)) for k in ("busy", "wrapup", "idle", "paused", "reserved", "offline")}
    on_shift = sum(v for k, v in part.items() if k != "offline")
    plus = sum(1 for s in live.get("seats", []) if s["state"] != "offline" and s["interface"] in added)
    return {"on_shift": on_shift, "base": on_shift - plus, "added_by_plan": plus, **part}


def figures(live: dict | None, watched: tuple[str, ...], queues: dict[str, str], added: set[str],
            callbacks_open: int, oldest_s: float | None) -> dict:
    """The wall's numbers. ``watched``: the plan's logical queues (not the
    emergency line); service level and abandon rate are theirs, over the live
    model's window (``window_s``, labelled on the wall). Waiting is now."""
    fig: dict = {"callback_backlog": callbacks_open, "callback_oldest_age_s": oldest_s, **_lines(live)}
    if not live:
        return fig
    q = live["queues"]
    names = {queues.get(n, n) for n in watched}
    mine = [x for n, x in q.items() if n in names] or [x for x in q.values() if not x.get("emergency")]
    answered = sum(x["answered"] for x in mine)
    abandoned = sum(x["abandoned"] for x in mine)
    offered = answered + abandoned
    within = sum((x["service_level"] or 0) * (x["answered"] + x["abandoned"]) for x in mine)
    seats = seat_line(live, added)
    fig.update({
        "waiting": sum(x["waiting"] for x in q.values()),
        "emergency_waiting": live.get("emergency", {}).get("waiting", 0),
        "longest_wait_s": max((x["longest_wait_s"] for x in q.values()), default=0.0),
        "window_s": live.get("window_s"),
        "answered": answered, "abandoned": abandoned,
        "abandon_rate": round(abandoned / offered, 4) if offered else None,
        "service_level_pct": round(100 * within / offered, 1) if offered else None,
        "idle_seats": seats["idle"],          # reserved seats are counted as reserved, never as idle
        "seats": seats,
    })
    return fig
