"""The live model of Asterisk's queues and seats, built from AMI events.

Pure: events arrive as mappings (what panoramisk or the simulator parsed), the
clock arrives as an argument. The controller feeds it; a snapshot of it is what
every engine process, the console and the callback scheduler read.

Asterisk reports a caller's queue priority only in ``QueueStatus`` (QueueEntry)
and, when manager.conf lists ``channelvars = QUEUE_PRIO``, as a ``ChanVariable``
on channel events; ``QueueCallerJoin``'s own ``Priority`` field is the dialplan
priority, not the queue's. So a caller is "emergency" when it waits in an
emergency queue or carries a queue priority at or above ``emergency_priority``.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from ivr.admission.estimate import QueueObserver
from ivr.admission.lines import LineFigures, LineReading, PbxLines, figures
from ivr.flow.model import EMERGENCY_PRIORITY, PEER_CONTEXT
from ivr.logs import mask_number
from ivr.stats import percentile_of_sorted

# Asterisk's AST_DEVICE_* numbers as QueueMember/QueueMemberStatus report them.
DEVICE_STATES = {0: "UNKNOWN", 1: "NOT_INUSE", 2: "INUSE", 3: "BUSY", 4: "INVALID", 5: "UNAVAILABLE",
                 6: "RINGING", 7: "RINGINUSE", 8: "ONHOLD"}
_DEVICE_BY_NAME = {v: k for k, v in DEVICE_STATES.items()}
_OFFLINE = {4, 5}

# One AMI event or list entry as panoramisk (or the simulator) parsed it: header
# -> text, and a repeated header (``ChanVariable``) -> a list of texts. Open by
# nature: which headers come depends on the event and on Asterisk's version.
AmiEvent = Mapping[str, Any]


class CallerFigures(TypedDict):
    position: int
    uniqueid: str
    number: str                  # masked
    priority: int
    wait_s: float
    emergency: bool
    pbx: NotRequired[str]        # several PBXs: the city's snapshot says whose caller (ivr.ami.city)


class QueueFigures(TypedDict):
    emergency: bool
    waiting: int
    emergency_waiting: int
    longest_wait_s: float
    estimated_wait_s: float
    answered: int
    abandoned: int
    withdrawn: int
    abandon_rate: float
    service_level: float | None
    seats: dict[str, int]        # the seat partition (``_seat_part``): busy | wrapup | idle | paused | reserved | offline
    callers: list[CallerFigures]


class SeatFigures(TypedDict):
    interface: str
    name: str
    state: str                   # busy (talking) | wrapup | idle | paused | offline
    paused_reason: str
    device: str
    in_call: bool
    reserved: bool
    queues: dict[str, int]       # queue -> penalty
    calls_taken: int
    idle_since: float | None     # idle: since when (the engine's clock); None otherwise
    pbx: NotRequired[str]        # several PBXs: the city's snapshot says whose seat (ivr.ami.city)


class EmergencyFigures(TypedDict):
    waiting: int
    wait_p50_s: float | None
    wait_p95_s: float | None
    answered: int


class OrdinaryFigures(TypedDict):
    wait_p50_s: float | None
    wait_p95_s: float | None
    answered: int


class LiveSnapshot(TypedDict):
    """What ``LiveModel.snapshot`` returns and ``ivr.redisdb.live`` stores."""

    at: float
    resynced_at: float | None
    window_s: float
    queues: dict[str, QueueFigures]
    seats: list[SeatFigures]
    seat_states: dict[str, int]          # the partition of every seat (``_seat_part``)
    emergency: EmergencyFigures
    ordinary: OrdinaryFigures
    lines: NotRequired[LineFigures]      # the trunk lines (ivr.admission.lines); absent from an older writer
    ami_connected: NotRequired[bool]     # added by whoever holds the AMI link (several PBXs: every link up)
    pbxs: NotRequired[dict[str, Any]]    # several PBXs: each PBX's figures (ivr.ami.city.PbxFigures)


@dataclass
class Seat:
    interface: str
    name: str = ""
    state_interface: str = ""
    queues: dict[str, int] = field(default_factory=dict)   # queue -> penalty
    paused: bool = False
    paused_reason: str = ""
    in_call: bool = False
    peer_call: bool = False        # its call is a caller moved here from another PBX (no line of this PBX)
    status: int = 0
    reserved: bool = False
    calls_taken: int = 0
    wrapup_s: float = 0.0          # the member's own wrap-up time (QueueMember ``Wrapuptime``; 0: the queue's)
    wrapup_until: float = 0.0      # after a queue call: app_queue offers the seat nothing before this
    idle_since: float = 0.0        # when the model last saw it become idle (the wrap-up's end counts too)

    def state_at(self, now: float) -> str:
        """busy (talking) | wrapup | idle | paused | offline: what a seat
        manager asks first. One state each, so the states partition the seats.
        A seat in wrap-up after a queue call looks free to AMI (device not in
        use, ``InCall`` 0) but app_queue offers it no call: it is not idle."""
        if self.status in _OFFLINE:
            return "offline"
        if self.paused:
            return "paused"
        if self.in_call or self.status not in (0, 1):
            return "busy"
        if now < self.wrapup_until:
            return "wrapup"
        return "idle"

    @property
    def state(self) -> str:
        """The state ignoring wrap-up (no clock): ``state_at`` is the one the figures use."""
        return self.state_at(0.0)


@dataclass
class Waiting:
    uniqueid: str
    channel: str
    number: str
    queue: str
    joined_at: float
    priority: int = 0
    seq: int = 0              # arrival order, for Asterisk's priority-then-arrival ordering
    masked: str = ""          # the number as staff see it, masked when a snapshot first lists it
    holds_line: bool = True   # False: moved here from another PBX (PEER_CONTEXT): its line is there


class _Line:
    """One queue's waiting callers, kept as events arrive so that no reading
    rescans them: by priority class, each class in arrival order (``seq``), and
    their join times in a heap for the longest wait (entries of callers who
    left are dropped when they reach its top, or all at once when they are
    most of it)."""

    __slots__ = ("members", "classes", "joins")

    def __init__(self) -> None:
        self.members: dict[str, Waiting] = {}
        self.classes: dict[int, dict[str, Waiting]] = {}   # priority -> uniqueid -> caller, by seq
        self.joins: list[tuple[float, int, str]] = []      # heap of (joined_at, seq, uniqueid)

    def add(self, w: Waiting) -> None:
        """A caller who joined after every one here (a join, or a resync's list in order)."""
        self.members[w.uniqueid] = w
        cls = self.classes.get(w.priority)
        if cls is None:
            self.classes[w.priority] = {w.uniqueid: w}
        else:
            cls[w.uniqueid] = w
        heapq.heappush(self.joins, (w.joined_at, w.seq, w.uniqueid))
        if len(self.joins) > 2 * len(self.members) + 64:
            self.joins = [(m.joined_at, m.seq, m.uniqueid) for m in self.members.values()]
            heapq.heapify(self.joins)

    def remove(self, w: Waiting) -> None:
        del self.members[w.uniqueid]
        self._unplace(w)

    def reprioritise(self, w: Waiting, priority: int) -> None:
        """Into its new class at its place by arrival (rare: the class is rebuilt if it is not the last)."""
        self._unplace(w)
        w.priority = priority
        cls = self.classes.setdefault(priority, {})
        before_last = bool(cls) and next(reversed(cls.values())).seq > w.seq
        cls[w.uniqueid] = w
        if before_last:
            self.classes[priority] = dict(sorted(cls.items(), key=lambda kv: kv[1].seq))

    def _unplace(self, w: Waiting) -> None:
        cls = self.classes[w.priority]
        del cls[w.uniqueid]
        if not cls:
            del self.classes[w.priority]

    def ordered(self) -> list[Waiting]:
        """Asterisk's order: higher priority first, then arrival."""
        return [w for p in sorted(self.classes, reverse=True) for w in self.classes[p].values()]

    def at_or_above(self, priority: int) -> int:
        return sum(len(c) for p, c in self.classes.items() if p >= priority)

    def earliest_join(self) -> float | None:
        joins = self.joins
        while joins:
            at, seq, uid = joins[0]
            w = self.members.get(uid)
            if w is not None and w.seq == seq:
                return at
            heapq.heappop(joins)
        return None


@dataclass(slots=True)
class _Tally:
    """One queue's outcomes in the window, kept as they are recorded and pruned."""

    answered: int = 0
    abandoned: int = 0
    withdrawn: int = 0
    within: int = 0           # answered within the service level


@dataclass(frozen=True, slots=True)
class Outcome:
    at: float
    queue: str
    kind: str                 # answered | abandoned | withdrawn
    wait_s: float
    emergency: bool


@dataclass(frozen=True, slots=True)
class Observation:
    """What the contingency rules look at, summed over the general queues."""

    calls_waiting: int
    longest_wait_s: float
    abandon_rate: float
    offered: int


def _int(value: Any, default: int = 0) -> int:
    """An AMI header as a number; a missing (None) or garbled one is ``default``."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _chan_vars(event: AmiEvent) -> dict[str, str]:
    raw = event.get("ChanVariable")
    if raw is None:
        return {}
    out = {}
    for item in raw if isinstance(raw, list) else [raw]:
        k, _, v = str(item).partition("=")
        out[k] = v
    return out


class LiveModel:
    def __init__(self, *, emergency_queues: Iterable[str] = (), reserved_interfaces: Iterable[str] = (),
                 emergency_priority: int = EMERGENCY_PRIORITY, window_s: float = 900.0, service_level_s: float = 20.0,
                 wrapup_s: Mapping[str, float] | None = None) -> None:
        self.emergency_queues = frozenset(emergency_queues)
        self.reserved_interfaces = frozenset(reserved_interfaces)
        # queue -> its ``wrapuptime`` (asterisk/queues.conf); a member's own Wrapuptime overrides it
        self.wrapup_s: dict[str, float] = dict(wrapup_s or {})
        self.emergency_priority = emergency_priority
        self.window_s = window_s
        self.service_level_s = service_level_s
        self.seats: dict[str, Seat] = {}
        # uniqueid -> caller (one queue at a time); read it, change it only through
        # ``_put`` and ``_drop``, which keep each queue's ``_Line`` with it
        self.waiting: dict[str, Waiting] = {}
        self._peer_waiting = 0          # of them, callers moved here from another PBX (no line of this PBX)
        self._lines: dict[str, _Line] = {}
        self.queue_names: set[str] = set()
        self.outcomes: deque[Outcome] = deque()     # the window, oldest first; counted as it moves:
        self._tallies: dict[str, _Tally] = {}        # queue -> its outcomes in the window
        self._answered_waits: dict[bool, list[float]] = {True: [], False: []}   # emergency? -> waits, sorted
        self.withdraw_requested: set[str] = set()
        self.events_seen = 0
        self._version = 0                            # counts changes (events, resyncs): what was read is current
        self._by_state: dict[str, set[str]] = {}     # device (state interface) -> seat interfaces
        self.resynced_at: float | None = None
        self._seq = 0
        # the trunk lines: queue/lines.yaml's PBX, the last count read over AMI
        # (ivr.ami.lines), and the callbacks whose citizen leg holds a line
        self.observers: dict[str, QueueObserver] = {}   # queue -> its wait estimator (ivr.admission.estimate)
        # queue -> (version, estimator, next wrap-up end, calls finished told)
        self._seats_told: dict[str, tuple[int, QueueObserver, float, int]] = {}
        # queue -> calls its member seats finished (whichever queue's, or none's): the estimator's μ
        self._finished: dict[str, int] = {}
        self._left: dict[str, tuple[str, float]] = {}    # uniqueid -> (queue, when): left, no connect seen yet
        self.lines_config: PbxLines | None = None
        self.lines_reading: LineReading | None = None
        self.callbacks_on_line = 0
        # the seats as a snapshot lists them, kept row by row: a row is made
        # again only for a seat an event touched (``_touch``) or whose wrap-up
        # ended since (``_wrap_ends``, a heap); 1,800 seats, a few changing at a time
        self._rows: dict[str, SeatFigures] = {}
        self._touched: set[str] = set()
        self._wrap_ends: list[tuple[float, str]] = []
        self._row_order: list[str] | None = None      # the interfaces sorted; None: the seats changed

    # -- what happened -------------------------------------------------------

    def apply(self, event: AmiEvent, now: float) -> None:
        handler = _HANDLERS.get(event.get("Event", ""))
        if handler is not None:
            self.events_seen += 1
            self._version += 1
            handler(self, event, now)

    def rebuild(self, status_events: Iterable[AmiEvent], now: float) -> None:
        """Replace seats and waiting callers with a ``QueueStatus`` answer; keep the
        outcome window (what was answered before a reconnect stays answered)."""
        seats: dict[str, Seat] = {}
        waiting: dict[str, Waiting] = {}
        queues: set[str] = set()
        for ev in status_events:
            kind = ev.get("Event")
            if kind == "QueueParams":
                queues.add(ev["Queue"])
            elif kind == "QueueMember":
                iface = ev.get("Location") or ev.get("Interface", "")
                seat = seats.get(iface) or Seat(iface)
                self._fill_seat(seat, ev, name_key="Name")
                seats[iface] = seat
            elif kind == "QueueEntry":
                uid = ev.get("Uniqueid", "")
                wait = _int(ev.get("Wait"))
                self._seq += 1
                waiting[uid] = Waiting(uid, ev.get("Channel", ""), ev.get("CallerIDNum", ""), ev["Queue"],
                                       now - wait, _int(ev.get("Priority")), seq=self._seq,
                                       holds_line=ev.get("Context") != PEER_CONTEXT)
        # QueueEntry lists callers in Asterisk's order, which ``seq`` keeps.
        for seat in seats.values():
            queues.update(seat.queues)
            # QueueStatus says nothing of wrap-up: a seat wrapping up stays so
            old = self.seats.get(seat.interface)
            seat.wrapup_until, seat.idle_since = (old.wrapup_until, old.idle_since) if old else (0.0, now)
        self.seats, self.waiting, self.queue_names = seats, waiting, queues
        self._peer_waiting = sum(not w.holds_line for w in waiting.values())
        # the wait estimators see the same line (a caller whose leave was lost is gone there too)
        listed: dict[str, dict[str, tuple[int, float]]] = {}
        for w in waiting.values():
            listed.setdefault(w.queue, {})[w.uniqueid] = (w.priority, w.joined_at)
        for q in set(self.observers) | set(listed):
            self._observer(q, now).resync(listed.get(q, {}), now)
        self._lines = {}
        for w in waiting.values():
            self._line(w.queue).add(w)
        self._by_state = {}
        for seat in seats.values():
            self._by_state.setdefault(seat.state_interface, set()).add(seat.interface)
        self.withdraw_requested &= set(waiting)
        self.resynced_at = now
        self._version += 1
        self._rows, self._touched, self._row_order = {}, set(self.seats), None
        self._wrap_ends = [(s.wrapup_until, s.interface) for s in self.seats.values() if s.wrapup_until > now]
        heapq.heapify(self._wrap_ends)

    def _fill_seat(self, seat: Seat, ev: AmiEvent, name_key: str = "MemberName") -> None:
        queue = ev.get("Queue", "")
        if queue:
            seat.queues[queue] = _int(ev.get("Penalty"))
            self.queue_names.add(queue)
        seat.name = ev.get(name_key) or ev.get("MemberName") or seat.name
        seat.state_interface = ev.get("StateInterface") or seat.state_interface
        self._by_state.setdefault(seat.state_interface, set()).add(seat.interface)
        seat.paused = ev.get("Paused") == "1"
        seat.paused_reason = ev.get("PausedReason", "") if seat.paused else ""
        seat.in_call = ev.get("InCall") == "1"
        seat.status = _int(ev.get("Status"), seat.status)
        seat.calls_taken = max(seat.calls_taken, _int(ev.get("CallsTaken")))
        seat.wrapup_s = float(_int(ev.get("Wrapuptime"), int(seat.wrapup_s)))
        seat.reserved = self._reserved(seat)
        self._touch(seat.interface)

    def _touch(self, interface: str) -> None:
        """The seat changed: its row is made again at the next snapshot."""
        if interface not in self._rows:
            self._row_order = None
        self._touched.add(interface)

    def _reserved(self, seat: Seat) -> bool:
        """Kept for emergencies: named as such (queue/seats.yaml), or a member of
        emergency queues only. A general seat that also serves the emergency
        line (with a penalty) is not reserved: it is where emergencies overflow."""
        return seat.interface in self.reserved_interfaces or (
            bool(seat.queues) and all(q in self.emergency_queues for q in seat.queues))

    def _member_update(self, ev: AmiEvent, now: float) -> None:
        iface = ev.get("Interface", "")
        seat = self.seats.get(iface)
        if seat is None:
            seat = self.seats[iface] = Seat(iface, idle_since=now)
        before = seat.state_at(now)
        self._fill_seat(seat, ev)
        self._seat_changed(seat, before, now)

    def _member_removed(self, ev: AmiEvent, now: float) -> None:
        seat = self.seats.get(ev.get("Interface", ""))
        if seat is None:
            return
        seat.queues.pop(ev.get("Queue", ""), None)
        if not seat.queues:
            del self.seats[seat.interface]
            self._rows.pop(seat.interface, None)
            self._row_order = None
        else:
            seat.reserved = self._reserved(seat)
            self._touch(seat.interface)

    def _device_state(self, ev: AmiEvent, now: float) -> None:
        device, state = ev.get("Device", ""), _DEVICE_BY_NAME.get(ev.get("State", ""))
        if state is None:
            return
        # indexed: a busy hotline sends a few of these per call, and has 1,800 seats
        for iface in self._by_state.get(device, ()):
            seat = self.seats.get(iface)
            if seat is not None and seat.state_interface == device:
                before = seat.state_at(now)
                seat.status = state
                self._touch(iface)
                self._seat_changed(seat, before, now)

    def _join(self, ev: AmiEvent, now: float) -> None:
        uid = ev.get("Uniqueid", "")
        prio = _int(_chan_vars(ev).get("QUEUE_PRIO"))
        self._seq += 1
        self._put(Waiting(uid, ev.get("Channel", ""), ev.get("CallerIDNum", ""), ev.get("Queue", ""), now, prio,
                          self._seq, holds_line=ev.get("Context") != PEER_CONTEXT))
        self.queue_names.add(ev.get("Queue", ""))
        self._observer(ev.get("Queue", ""), now).joined(uid, prio, now)

    def _observer(self, queue: str, now: float) -> QueueObserver:
        obs = self.observers.get(queue)
        if obs is None:
            obs = self.observers[queue] = QueueObserver(queue, start=now)
        return obs

    def _abandon(self, ev: AmiEvent, now: float) -> None:
        uid = ev.get("Uniqueid", "")
        w = self.waiting.get(uid)
        # Asterisk reports a withdrawn caller with QueueCallerAbandon too: counting
        # it as abandoned would count every accepted callback offer twice.
        kind = "withdrawn" if uid in self.withdraw_requested else "abandoned"
        self.withdraw_requested.discard(uid)
        hold = _int(ev.get("HoldTime"), int(now - w.joined_at) if w else 0)
        self._record(Outcome(now, ev.get("Queue", ""), kind, hold, self._is_emergency(w, ev.get("Queue", ""))))
        self._drop(uid)
        self._observer(ev.get("Queue", ""), now).abandoned(uid, now, hold)

    def _leave(self, ev: AmiEvent, now: float) -> None:
        if self._drop(ev.get("Uniqueid", "")) is None:
            return             # an abandon (or a withdrawal) already took the caller out of the line
        # Asterisk sends QueueCallerLeave *before* AgentConnect when a seat answers
        # (the transcripts): only a leave that no connect follows (a timeout, a
        # full queue) is a caller gone without a seat, settled in ``_settle_leaves``
        self._left[ev.get("Uniqueid", "")] = (ev.get("Queue", ""), now)

    def _connect(self, ev: AmiEvent, now: float) -> None:
        uid = ev.get("Uniqueid", "")
        w = self._drop(uid)
        queue = ev.get("Queue", "")
        hold = _int(ev.get("HoldTime"), int(now - w.joined_at) if w else 0)
        self._record(Outcome(now, queue, "answered", hold, self._is_emergency(w, queue)))
        self._left.pop(uid, None)
        self._observer(queue, now).served(uid, now, hold)
        seat = self.seats.get(ev.get("Interface", ""))
        if seat is not None:
            seat.in_call = True
            seat.peer_call = ev.get("Context") == PEER_CONTEXT
            seat.wrapup_until = 0.0
            self._touch(seat.interface)

    def _complete(self, ev: AmiEvent, now: float) -> None:
        seat = self.seats.get(ev.get("Interface", ""))
        if seat is not None:
            before = seat.state_at(now)
            seat.in_call = seat.peer_call = False
            # app_queue's wrap-up: the member's own time, else the queue's
            wrap = seat.wrapup_s or self.wrapup_s.get(ev.get("Queue", ""), 0.0)
            seat.wrapup_until = now + wrap if wrap > 0 else 0.0
            if wrap > 0:
                heapq.heappush(self._wrap_ends, (seat.wrapup_until, seat.interface))
            self._touch(seat.interface)
            self._seat_changed(seat, before, now)

    def _seat_changed(self, seat: Seat, before: str, now: float) -> None:
        """After an event changed the seat (its state was ``before``): a seat that
        stops talking finished a call for every queue it serves. Counted seat by
        seat, because a seat serving two queues turns busy with the callers of
        either (the general seats on the emergency line): the busy count of one
        queue's seats says nothing of how many calls they finished."""
        after = seat.state_at(now)
        if before == "busy" and after != "busy":
            for q in seat.queues:
                self._finished[q] = self._finished.get(q, 0) + 1
        _note_idle(seat, before, now)

    def _line(self, queue: str) -> _Line:
        line = self._lines.get(queue)
        if line is None:
            line = self._lines[queue] = _Line()
        return line

    def _put(self, w: Waiting) -> None:
        self._drop(w.uniqueid)             # a second join of the same channel replaces the first
        self.waiting[w.uniqueid] = w
        self._line(w.queue).add(w)
        self._peer_waiting += not w.holds_line

    def _drop(self, uniqueid: str) -> Waiting | None:
        w = self.waiting.pop(uniqueid, None)
        if w is not None:
            self._lines[w.queue].remove(w)
            self._peer_waiting -= not w.holds_line
        return w

    def _record(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self._count(outcome, 1)

    def _count(self, o: Outcome, step: int) -> None:
        """Add (step 1) or take out (step -1) one outcome of the window's counts."""
        tally = self._tallies.get(o.queue)
        if tally is None:
            tally = self._tallies[o.queue] = _Tally()
        if o.kind == "answered":
            tally.answered += step
            tally.within += step if o.wait_s <= self.service_level_s else 0
            waits = self._answered_waits[o.emergency]
            if step > 0:
                bisect.insort(waits, o.wait_s)     # after its equals: the order ``sorted`` gives the window
            else:
                del waits[bisect.bisect_left(waits, o.wait_s)]   # the oldest is the first of its equals
        elif o.kind == "abandoned":
            tally.abandoned += step
        elif o.kind == "withdrawn":
            tally.withdrawn += step

    def _is_emergency(self, w: Waiting | None, queue: str) -> bool:
        return queue in self.emergency_queues or (w is not None and w.priority >= self.emergency_priority)

    # -- what the engine did -------------------------------------------------

    def note_withdraw(self, uniqueid: str) -> None:
        self.withdraw_requested.add(uniqueid)

    def note_priority(self, uniqueid: str, priority: int) -> None:
        w = self.waiting.get(uniqueid)
        if w is not None:
            self._lines[w.queue].reprioritise(w, priority)

    # -- figures ---------------------------------------------------------------
    # The waiting callers (``_Line``), the window's counts (``_Tally``) and its
    # answered waits (sorted) are kept as events arrive and the window moves, so
    # a reading costs the queues and what changed since the last one, not a scan
    # of thousands of waiting callers (``ivr bench model``). The seats are still
    # counted per reading.

    def _prune(self, now: float) -> None:
        horizon = now - self.window_s
        while self.outcomes and self.outcomes[0].at < horizon:
            self._count(self.outcomes.popleft(), -1)

    def ordered(self, queue: str) -> list[Waiting]:
        """Asterisk's order: higher priority first, then arrival."""
        line = self._lines.get(queue)
        return line.ordered() if line is not None else []

    def observation(self, now: float, queues: Iterable[str] | None = None) -> Observation:
        self._prune(now)
        names = set(queues) if queues is not None else self.queue_names
        lines = [line for line in (self._lines.get(q) for q in names) if line is not None]
        joins = [at for at in (line.earliest_join() for line in lines) if at is not None]
        tallies = [t for t in (self._tallies.get(q) for q in names) if t is not None]
        abandoned = sum(t.abandoned for t in tallies)
        offered = abandoned + sum(t.answered for t in tallies)
        return Observation(
            calls_waiting=sum(len(line.members) for line in lines),
            longest_wait_s=now - min(joins) if joins else 0.0,
            abandon_rate=abandoned / offered if offered else 0.0,
            offered=offered,
        )

    def estimated_wait(self, queue: str, now: float) -> float:
        """The queue's expected wait as the wall shows it (``snapshot``) and as a
        caller joining now is told (``outlook``), without building either: the
        capture asks once per courtesy callback, which is due when it has passed.
        A queue the PBX has not reported (no AMI link yet, a name not in queues.yaml):
        0, nothing to wait for, and nothing a caller is told."""
        if queue not in self.queue_names:
            return 0.0
        self._settle_leaves(now)
        return self._told(queue, now)

    def _estimator(self, queue: str, now: float, staffing: _Staffing | None = None) -> QueueObserver:
        """The queue's wait estimator, told what the seats serving it are doing now
        (``staffing``, when the caller counted them already). Only after a change:
        a seat's state changes only with an event, a resync or the end of a
        wrap-up (and telling the same counts again only moves the estimator's
        clock on, which its preview does)."""
        obs = self._observer(queue, now)
        told = self._seats_told.get(queue)
        if told is None or told[0] != self._version or told[1] is not obs or now >= told[2]:
            if staffing is None:
                staffing = _Staffing()
                for seat in self.seats.values():
                    if queue in seat.queues:
                        staffing.add(seat, seat.state_at(now), now)
            finished = self._finished.get(queue, 0)
            # a new estimator has seen no busy seat yet: it counts from the seats of now
            since = told[3] if told is not None and told[1] is obs else finished
            obs.seats(now, staffing.staffed, staffing.busy, finished - since)
            # a wrap-up ending changes a seat with no event: recount once the first one ends
            self._seats_told[queue] = (self._version, obs, staffing.edge, finished)
        return obs

    def _told(self, queue: str, now: float, staffing: _Staffing | None = None) -> float:
        """What a caller joining ``queue`` now at the back of its class is told,
        as ``outlook`` publishes it: priority 0, or the emergency class in an
        emergency queue (the class its callers join with)."""
        prio = self.emergency_priority if queue in self.emergency_queues else 0
        return round(self._estimator(queue, now, staffing).preview(prio, now).engine.wait_s, 1)

    def emergency_waiting(self) -> list[Waiting]:
        found = [w for q, line in self._lines.items()
                 for w in (line.members.values() if q in self.emergency_queues else
                           (w for p, c in line.classes.items() if p >= self.emergency_priority for w in c.values()))]
        return sorted(found, key=lambda w: w.seq)      # arrival order, as ``waiting`` holds them

    def _emergency_count(self, queue: str, line: _Line) -> int:
        return len(line.members) if queue in self.emergency_queues else line.at_or_above(self.emergency_priority)

    def outlook(self, now: float, lines: LineFigures | None = None) -> dict[str, Any]:
        """What a caller joining now can expect, per queue and priority class
        (ordinary 0, emergency): [callers ahead, expected wait s, its spread s];
        and whether free lines are below the early-callback threshold."""
        self._settle_leaves(now)
        queues: dict[str, dict[str, list[float]]] = {}
        for q in sorted(self.queue_names):
            obs = self._estimator(q, now)
            queues[q] = {}
            for prio in (0, self.emergency_priority):
                e = obs.preview(prio, now).engine
                queues[q][str(prio)] = [e.position, round(e.wait_s, 1), round(e.spread_s, 1)]
        free = lines["free"] if lines else None
        low = bool(lines and lines["known"] and free is not None and free < lines["callback_below_free"])
        return {"queues": queues, "lines_low": low}

    def _settle_leaves(self, now: float, grace_s: float = 2.0) -> None:
        """Callers who left their queue ``grace_s`` ago with no AgentConnect: gone
        without a seat (a timeout or a full queue), for the wait estimator."""
        for uid, (queue, at) in list(self._left.items()):
            if now - at >= grace_s:
                del self._left[uid]
                self._observer(queue, now).abandoned(uid, now)

    def lines(self, now: float, talking: int | None = None) -> LineFigures:
        """The trunk lines in use, split: waiting in a queue, talking to a
        seat (queue calls; ``talking`` when the caller counted them), on a
        callback, and the rest in the flows."""
        if talking is None:
            talking = sum(1 for s in self.seats.values() if s.in_call and not s.peer_call)
        # callers moved here from another PBX hold a line there, not here
        return figures(self.lines_config, self.lines_reading, now=now, connected=True,
                       waiting=len(self.waiting) - self._peer_waiting, talking=talking,
                       callbacks=self.callbacks_on_line)

    def _seat_rows(self, now: float) -> list[SeatFigures]:
        """Every seat's row, sorted by interface; made again only for the seats
        that changed (``_touch``) or whose wrap-up ended since the last call."""
        while self._wrap_ends and self._wrap_ends[0][0] <= now:
            self._touched.add(heapq.heappop(self._wrap_ends)[1])
        for iface in self._touched:
            seat = self.seats.get(iface)
            if seat is None:
                self._rows.pop(iface, None)
                continue
            state = seat.state_at(now)
            if state == "wrapup":      # (again: a reader may come with an earlier ``now`` than the last)
                heapq.heappush(self._wrap_ends, (seat.wrapup_until, iface))
            self._rows[iface] = {
                "interface": seat.interface, "name": seat.name, "state": state,
                "paused_reason": seat.paused_reason, "device": DEVICE_STATES.get(seat.status, str(seat.status)),
                "in_call": seat.in_call, "reserved": seat.reserved, "queues": dict(seat.queues),
                "calls_taken": seat.calls_taken, "idle_since": _idle_since(seat, now)}
        self._touched.clear()
        if self._row_order is None or len(self._row_order) != len(self.seats):
            self._row_order = sorted(self.seats)
        return [self._rows[i] for i in self._row_order]

    def snapshot(self, now: float) -> LiveSnapshot:
        """JSON-ready figures; numbers masked (personal information law). The
        estimated wait is what a caller joining now is told (``_told``)."""
        self._prune(now)
        self._settle_leaves(now)
        rows = self._seat_rows(now)
        # every seat counted once, for all queues at a time: the partition of the
        # seats and of each queue's seats, what the estimator is told, the talking
        total = dict.fromkeys(SEAT_PARTITION, 0)
        per_queue = {q: dict.fromkeys(SEAT_PARTITION, 0) for q in self.queue_names}
        staffing = {q: _Staffing() for q in self.queue_names}
        talking = 0
        for seat in self.seats.values():
            state = self._rows[seat.interface]["state"]
            part = _seat_part(seat, state)
            total[part] += 1
            talking += seat.in_call and not seat.peer_call      # on a line of this PBX
            for q in seat.queues:
                if q in per_queue:
                    per_queue[q][part] += 1
                    staffing[q].add(seat, state, now)
        queues: dict[str, QueueFigures] = {}
        for q in sorted(self.queue_names):
            line = self._line(q)
            tally = self._tallies.get(q) or _Tally()
            offered = tally.answered + tally.abandoned
            first = line.earliest_join()
            queues[q] = {
                "emergency": q in self.emergency_queues,
                "waiting": len(line.members),
                "emergency_waiting": self._emergency_count(q, line),
                "longest_wait_s": round(now - first, 1) if first is not None else 0.0,
                "estimated_wait_s": self._told(q, now, staffing[q]),
                "answered": tally.answered,
                "abandoned": tally.abandoned,
                "withdrawn": tally.withdrawn,
                "abandon_rate": round(tally.abandoned / offered, 4) if offered else 0.0,
                "service_level": round(tally.within / offered, 4) if offered else None,
                "seats": per_queue[q],
                "callers": self._callers(q, line, now),
            }
        em_waits, ord_waits = self._answered_waits[True], self._answered_waits[False]
        return {
            "at": now,
            "resynced_at": self.resynced_at,
            "window_s": self.window_s,
            "queues": queues,
            "seats": rows,
            "seat_states": total,
            "emergency": {"waiting": sum(self._emergency_count(q, line) for q, line in self._lines.items()),
                          "wait_p50_s": percentile_of_sorted(em_waits, 50),
                          "wait_p95_s": percentile_of_sorted(em_waits, 95), "answered": len(em_waits)},
            "ordinary": {"wait_p50_s": percentile_of_sorted(ord_waits, 50),
                         "wait_p95_s": percentile_of_sorted(ord_waits, 95), "answered": len(ord_waits)},
            "lines": self.lines(now, talking),
        }

    def _callers(self, queue: str, line: _Line, now: float) -> list[CallerFigures]:
        """The line in Asterisk's order, as staff see it (a list as long as the
        line: the one part of a snapshot that grows with it)."""
        out: list[CallerFigures] = []
        for p in sorted(line.classes, reverse=True):
            emergency = queue in self.emergency_queues or p >= self.emergency_priority
            for w in line.classes[p].values():
                if not w.masked:
                    w.masked = mask_number(w.number)
                out.append({"position": len(out) + 1, "uniqueid": w.uniqueid, "number": w.masked, "priority": p,
                            "wait_s": round(now - w.joined_at, 1), "emergency": emergency})
        return out


def _note_idle(seat: Seat, before: str, now: float) -> None:
    """The seat became idle with this event: since now."""
    if before != "idle" and seat.state_at(now) == "idle":
        seat.idle_since = now


def _idle_since(seat: Seat, now: float) -> float | None:
    """When an idle seat became so: its last change into idle, or the end of
    its wrap-up (no event marks it); None for a seat that is not idle."""
    return round(max(seat.idle_since, seat.wrapup_until), 1) if seat.state_at(now) == "idle" else None


SEAT_PARTITION = ("busy", "wrapup", "idle", "paused", "reserved", "offline")


class _Staffing:
    """What a queue's wait estimator is told of the seats serving it: how many
    are staffed (idle, talking or wrapping up), how many of them busy, and the
    first moment a wrap-up ends (a change no event reports)."""

    __slots__ = ("staffed", "busy", "edge")

    def __init__(self) -> None:
        self.staffed, self.busy, self.edge = 0, 0, math.inf

    def add(self, seat: Seat, state: str, now: float) -> None:
        if state in ("idle", "busy", "wrapup"):
            self.staffed += 1
            self.busy += state != "idle"
        if now < seat.wrapup_until < self.edge:
            self.edge = seat.wrapup_until


def _seat_part(seat: Seat, state: str) -> str:
    """The seats partitioned, each counted once (``SEAT_PARTITION``): a
    reserved emergency seat on shift counts as ``reserved`` whatever it is
    doing, every other seat on shift by its state (busy = talking, wrapup,
    idle, paused); ``offline`` takes every seat whose device is unavailable,
    reserved or not. So on shift = busy + wrapup + idle + paused + reserved,
    and the sum is every seat (docs/console.md names the identities)."""
    return "reserved" if seat.reserved and state != "offline" else state


_HANDLERS = {
    "QueueCallerJoin": LiveModel._join,
    "QueueCallerLeave": LiveModel._leave,
    "QueueCallerAbandon": LiveModel._abandon,
    "AgentConnect": LiveModel._connect,
    "AgentComplete": LiveModel._complete,
    "QueueMemberStatus": LiveModel._member_update,
    "QueueMemberPause": LiveModel._member_update,
    "QueueMemberAdded": LiveModel._member_update,
    "QueueMemberPenalty": LiveModel._member_update,
    "QueueMemberRinginuse": LiveModel._member_update,
    "QueueMemberRemoved": LiveModel._member_removed,
    "DeviceStateChange": LiveModel._device_state,
}
