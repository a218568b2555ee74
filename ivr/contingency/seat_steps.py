"""From one level to another: the AMI seat actions to carry out, in order. Pure.

Going up, each level's actions run in the order written, lowest level first.
Going down, the actions marked ``undo`` of every level left are reversed, the
highest level first and each level's list backwards, so the hotline returns to
how the lower level had it (seats added for the surge leave the queue; seats on
a break that were called back are not sent on break again unless asked).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ivr.contingency.plan import UNDO, Plan, SeatAction, Seats


@dataclass(frozen=True, slots=True)
class SeatStep:
    level: int
    action: str          # add | remove | pause | unpause
    interface: str
    name: str
    state_interface: str
    queue: str | None    # Asterisk queue name; None: every queue (pause/unpause)
    penalty: int = 0
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:   # JSON-ready: ``SeatStep(**d)`` makes it again
        return asdict(self)


def _expand(level: int, a: SeatAction, action: str, seats: Seats, queues: Mapping[str, str]) -> list[SeatStep]:
    queue = queues.get(a.queue, a.queue) if a.queue else None
    reason = a.reason or f"contingency level {level}"
    return [SeatStep(level, action, s.interface, s.name, s.state_interface, queue, a.penalty, reason)
            for s in seats.groups.get(a.group, ())]


def seat_steps(plan: Plan, seats: Seats, queues: Mapping[str, str], from_level: int, to_level: int) -> list[SeatStep]:
    """``queues``: logical queue name -> Asterisk queue name."""
    steps: list[SeatStep] = []
    if to_level > from_level:
        for lv in plan.levels[from_level + 1: to_level + 1]:
            for a in lv.seat_actions:
                steps += _expand(lv.level, a, a.action, seats, queues)
    elif to_level < from_level:
        for lv in reversed(plan.levels[to_level + 1: from_level + 1]):
            for a in reversed(lv.seat_actions):
                if a.undo:
                    steps += _expand(lv.level, a, UNDO[a.action], seats, queues)
    return steps
