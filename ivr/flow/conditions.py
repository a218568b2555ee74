"""Branch conditions: what a flow may ask about the call and the hotline.

Pure: everything a condition needs arrives in ``CallFacts``; the adapter reads
the clock, the contingency level and the caller's history once per call."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Asterisk queue -> priority -> (callers ahead, expected wait s, its spread s)
QueueOutlook = Mapping[str, Mapping[int, tuple[int, float, float]]]


@dataclass(frozen=True, slots=True)
class CallFacts:
    now: dt.datetime                        # timezone-aware, hotline local time
    level: int = 0                          # contingency level in force
    caller: str = ""
    last_call_age_s: float | None = None    # seconds since this number's previous call
    lists: Mapping[str, frozenset[str]] = field(default_factory=dict)
    calendars: Mapping[str, frozenset[dt.date]] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict)
    # what the contingency level in force asks of the flows (queue/contingency.yaml)
    announcements: tuple[str, ...] = ()     # prompts of the level's set valid right now
    announcement_sets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # every set, valid items only
    callback_mode: str = "offer"            # offer | message
    short_menu: bool = False
    hold_music: str | None = None
    # the queues (published by the leader several times a second): Asterisk queue ->
    # priority -> (callers ahead, expected wait s, its spread s), at the call's start
    outlook: QueueOutlook = field(default_factory=dict)
    admission_wait_s: float | None = None   # offer a callback when the expected wait is beyond this (the level's)
    say_wait: bool = False                  # the level announces place and wait
    lines_low: bool = False                 # free lines below their reserve (queue/lines.yaml)
    registered_ahead: int | None = None     # an open callback of this caller: citizens before it (None: none)
    # the outlook and ``lines_low`` as the engine knows them when a step asks
    # (``queues_now``); None: the ones above, of the call's start
    current: Callable[[], tuple[QueueOutlook, bool]] | None = None
    # brings ``current`` up to the leader's latest before a step reads it (the engine's periodic read
    # can be half a second old: at a surge, a seat shown free then has been taken since)
    fresh: Callable[[], Awaitable[None]] | None = None
    # a call the hotline placed to the citizen: "callback" (a callback's citizen leg after the seat
    # hung up, Dial's F(): [ivr-callback-survey]) or "followup" (智能回访, [ivr-followup]); "" a
    # citizen who called in. Nothing queues an outbound call: there is no fallback to a seat.
    outbound: str = ""
    rated_seat: str = ""                    # the seat whose conversation a survey step rates (none queued here)
    emergency_matter: bool = False          # about an emergency: a survey step asks nothing
    # (Asterisk queue, priority) -> another PBX whose queue would take the caller sooner, and where
    # it is reached (``LiveState.sooner_elsewhere``); None: no other PBX, or none sooner
    elsewhere: Callable[[str, int], Elsewhere | None] | None = None
    unreachable: Callable[[str], None] | None = None   # a move to this PBX failed: leave it out for a while
    sending: Callable[[str], None] | None = None       # a caller is being moved to this PBX: its line is longer

    def queues_now(self) -> tuple[QueueOutlook, bool]:
        """The outlook and whether lines run low, now: a flow runs for seconds to
        tens of seconds before its admission or queue step, and at 56 calls a
        second the line grows by hundreds meanwhile."""
        return self.current() if self.current is not None else (self.outlook, self.lines_low)


class Elsewhere(NamedTuple):
    """Another PBX of the hotline whose queue would take a caller sooner."""

    pbx: str            # its name in queue/pbxs.yaml
    address: str        # HOST:PORT where it is reached over IAX2 (its peer_address)
    wait_s: float       # the expected wait there
    own_wait_s: float   # ... and on the caller's own PBX (inf: no seat serves the queue there)


@dataclass(frozen=True, slots=True)
class LevelAtLeast:
    level: int

    def holds(self, f: CallFacts) -> bool:
        return f.level >= self.level


@dataclass(frozen=True, slots=True)
class LevelBelow:
    level: int

    def holds(self, f: CallFacts) -> bool:
        return f.level < self.level


@dataclass(frozen=True, slots=True)
class ShortMenu:
    wanted: bool

    def holds(self, f: CallFacts) -> bool:
        return f.short_menu == self.wanted


@dataclass(frozen=True, slots=True)
class TimeBetween:
    start: dt.time
    end: dt.time  # exclusive; a window that wraps midnight has end < start

    def holds(self, f: CallFacts) -> bool:
        t = f.now.time().replace(tzinfo=None)
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


@dataclass(frozen=True, slots=True)
class WeekdayIn:
    days: frozenset[int]  # 0 = Monday

    def holds(self, f: CallFacts) -> bool:
        return f.now.weekday() in self.days


@dataclass(frozen=True, slots=True)
class InCalendar:
    calendar: str

    def holds(self, f: CallFacts) -> bool:
        return f.now.date() in f.calendars.get(self.calendar, frozenset())


@dataclass(frozen=True, slots=True)
class CalledWithin:
    minutes: int

    def holds(self, f: CallFacts) -> bool:
        return f.last_call_age_s is not None and f.last_call_age_s <= self.minutes * 60


@dataclass(frozen=True, slots=True)
class CallerInList:
    list_name: str

    def holds(self, f: CallFacts) -> bool:
        return f.caller in f.lists.get(self.list_name, frozenset())


@dataclass(frozen=True, slots=True)
class VariableEquals:
    name: str
    value: str

    def holds(self, f: CallFacts) -> bool:
        return f.variables.get(self.name) == self.value


@dataclass(frozen=True, slots=True)
class AllOf:
    parts: tuple[Condition, ...]

    def holds(self, f: CallFacts) -> bool:
        return all(p.holds(f) for p in self.parts)


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[Condition, ...]

    def holds(self, f: CallFacts) -> bool:
        return any(p.holds(f) for p in self.parts)


@dataclass(frozen=True, slots=True)
class Not:
    part: Condition

    def holds(self, f: CallFacts) -> bool:
        return not self.part.holds(f)


Condition = (LevelAtLeast | LevelBelow | ShortMenu | TimeBetween | WeekdayIn | InCalendar |
             CalledWithin | CallerInList | VariableEquals | AllOf | AnyOf | Not)


def walk(cond: Condition) -> Iterator[Condition]:
    yield cond
    if isinstance(cond, (AllOf, AnyOf)):
        for p in cond.parts:
            yield from walk(p)
    elif isinstance(cond, Not):
        yield from walk(cond.part)
