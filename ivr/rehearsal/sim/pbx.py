"""The simulated Asterisk's queues and seats: app_queue's behaviour, sans-I/O.

It turns what happens (a caller joins, a seat is paused, an AMI action arrives)
into the AMI messages a real Asterisk 22 sends, field for field in the order the
transcripts in ``tests/fixtures/asterisk-22/ami`` show. The AMI server
(``ivr.rehearsal.sim.ami_server``) puts them on a socket; the drill drives the clock.

What it models of app_queue: callers ordered by priority then arrival;
the queue's hold-time and talk-time averages (``QueueParams``);
``QueueChangePriorityCaller`` (re-sort when Immediate); ``QueueWithdrawCaller``
(reported as QueueCallerAbandon then QueueCallerLeave, as the real one does);
members with penalty, pause and reason, device state; and queue ``weight``: a
seat that belongs to a heavier queue with callers waiting is not offered calls
from a lighter one — how reserved emergency seats stay free for emergencies.
Also the carrier's trunk lines (``ivr.rehearsal.sim.trunk``, read with AMI
``Getvar``) and, for every caller who joins a queue, the plain wait predictors
at that moment (``ivr.rehearsal.sim.baselines``).
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ivr.rehearsal.sim.baselines import HandleTimes, HoldAverage, queue_length_estimate
from ivr.rehearsal.sim.trunk import Trunk

Message = list[tuple[str, str]]   # AMI keys may repeat, so a message is an ordered list of pairs

_NOT_INUSE, _INUSE = 1, 2
_GROUP_COUNT = re.compile(r"^GROUP_COUNT\(([^@)]*)(?:@([^)]*))?\)$", re.IGNORECASE)


@dataclass
class SimMember:
    interface: str
    name: str
    state_interface: str
    penalty: int = 0
    membership: str = "static"
    paused: bool = False
    paused_reason: str = ""
    last_pause: int = 0
    calls_taken: int = 0
    last_call: int = 0
    login_time: int = 0


@dataclass
class SimEntry:
    uniqueid: str
    channel: str
    number: str
    name: str
    joined: float
    priority: int = 0
    seq: int = 0
    original_position: int = 1
    context: str = "ivr-12345"
    waiting: bool = True
    wait_est_s: float | None = None     # IVR_WAIT_EST of the channel when it joined: the engine's estimate ...
    engine_position: int | None = None  # ... and the place in line it expected ("<position>,<seconds>")
    estimates: dict[str, float | None] = field(default_factory=dict)   # the plain predictors at join


@dataclass
class SimQueue:
    """Callers are kept in app_queue's order (priority, then arrival) with a
    parallel list of sort keys, so a position is a bisect, not a sort: the drill
    holds thousands of callers in one line."""

    name: str
    strategy: str = "rrmemory"
    weight: int = 0
    wrapup_s: float = 0.0
    members: dict[str, SimMember] = field(default_factory=dict)
    entries: list[SimEntry] = field(default_factory=list)
    keys: list[tuple[int, int]] = field(default_factory=list)
    completed: int = 0
    abandoned: int = 0
    hold: HoldAverage = field(default_factory=HoldAverage)
    arrivals: deque[SimEntry] = field(default_factory=deque)   # in arrival order; those gone dropped lazily
    _serving: int | None = None        # members not paused (cached; None: count again)

    def ordered(self) -> list[SimEntry]:
        return self.entries

    def insert(self, e: SimEntry) -> int:
        key = (-e.priority, e.seq)
        i = bisect.bisect(self.keys, key)
        self.keys.insert(i, key)
        self.entries.insert(i, e)
        return i + 1

    def longest_wait(self, now: float) -> float:
        while self.arrivals and not self.arrivals[0].waiting:
            self.arrivals.popleft()
        return now - self.arrivals[0].joined if self.arrivals else 0.0

    def serving(self) -> int:
        if self._serving is None:
            self._serving = sum(1 for m in self.members.values() if not m.paused)
        return self._serving

    def position(self, e: SimEntry) -> int:
        return bisect.bisect_left(self.keys, (-e.priority, e.seq)) + 1

    def remove(self, e: SimEntry) -> int:
        pos = self.position(e)
        del self.keys[pos - 1], self.entries[pos - 1]
        return pos


@dataclass
class Bridged:
    entry: SimEntry
    queue: str
    interface: str
    since: float
    member: SimMember     # kept: a dynamic member removed while talking still ends its call (as app_queue does)


class SimPbx:
    def __init__(self, clock: Callable[[], float], *, chan_vars: tuple[str, ...] = ("QUEUE_PRIO",)) -> None:
        self.clock = clock
        self.queues: dict[str, SimQueue] = {}
        self.device: dict[str, int] = {}          # state interface -> AST_DEVICE_*
        self.calls: dict[str, Bridged] = {}       # seat interface -> call in progress
        self.chan_vars = chan_vars                 # manager.conf channelvars
        self.system_name = ""                      # asterisk.conf systemname: CoreSettings says it ("" none)
        self.withdrawn: dict[str, str] = {}        # uniqueid -> WithdrawInfo (read by the AGI side)
        self.events: list[Message] = []            # emitted, for the server to send
        self.originated: list[dict[str, str]] = []
        self.live_channels: dict[str, str] = {}    # channel of an answered Originate -> the seat it rang
        self.on_withdraw: Callable[[str], None] | None = None   # the call centre model takes it from here
        self.where: dict[str, tuple[SimQueue, SimEntry]] = {}   # uniqueid and channel -> waiting caller
        self.free: set[str] = set()              # seats neither in a call, nor wrapping up, nor occupied
        self.wrapping: set[str] = set()
        self.occupied: set[str] = set()          # busy outside the queues (a callback)
        self.by_state: dict[str, list[tuple[str, SimMember]]] = {}
        self.trunk = Trunk(clock)                  # the carrier's lines (unlimited unless the drill says)
        self.globals: dict[str, str] = {}         # the dialplan's [globals], read by AMI Getvar
        self.astdb: dict[str, str] = {}           # AstDB: "/family/key" -> value (Set(DB(...)), DBGetTree, DBDel)
        self.handle_times = HandleTimes()         # recently completed calls, for the queue-length predictor
        self._seq = itertools.count(1)
        self._chan = itertools.count(1)

    # -- configuration -------------------------------------------------------

    def add_queue(self, name: str, *, strategy: str = "rrmemory", weight: int = 0, wrapup_s: float = 0.0) -> SimQueue:
        q = self.queues.setdefault(name, SimQueue(name, strategy, weight, wrapup_s))
        return q

    def add_member(self, queue: str, interface: str, name: str, state_interface: str, *,
                   penalty: int = 0, membership: str = "static", emit: bool = False) -> None:
        m = SimMember(interface, name, state_interface, penalty, membership, login_time=int(self.clock()))
        self._place_member(queue, m)
        if emit:
            self._emit(self._member_event("QueueMemberAdded", queue, m))

    def _place_member(self, queue: str, m: SimMember) -> None:
        self.queues[queue].members[m.interface] = m
        self.queues[queue]._serving = None
        self.device.setdefault(m.state_interface, _NOT_INUSE)
        self.by_state.setdefault(m.state_interface, []).append((queue, m))
        self._refresh_free(m.interface)

    # -- callers ---------------------------------------------------------------

    def join(self, queue: str, number: str, *, priority: int = 0, name: str = "Citizen",
             uniqueid: str | None = None, chan_vars: dict[str, str] | None = None) -> SimEntry:
        """A caller enters Queue(). ``chan_vars``: the channel's variables then
        (the engine's ``IVR_WAIT_EST``, "<position>,<seconds>", is kept)."""
        q = self.queues[queue]
        n = next(self._chan)
        e = SimEntry(uniqueid or self.uid(n), f"Local/{number}@sim-in-{n:08x};1", number, name,
                     self.clock(), priority, next(self._seq))
        if chan_vars:
            pos_text, _, wait_text = (chan_vars.get("IVR_WAIT_EST") or "").partition(",")
            e.wait_est_s = _number(wait_text)
            pos = _number(pos_text)
            e.engine_position = int(pos) if pos is not None and e.wait_est_s is not None else None
        e.original_position = q.insert(e)
        q.arrivals.append(e)
        e.estimates = self._estimates(q, e)
        self.where[e.uniqueid] = self.where[e.channel] = (q, e)
        self._emit(self._chan_event("QueueCallerJoin", e, priority) +
                   [("Queue", queue), ("Position", str(e.original_position)), ("Count", str(len(q.entries)))])
        return e

    def _estimates(self, q: SimQueue, e: SimEntry) -> dict[str, float | None]:
        """The plain predictors for ``e``, just joined, from what the PBX sees now."""
        now = self.clock()
        seat_free = any(i in q.members and self._offerable(q, q.members[i]) for i in self.free)
        return {"asterisk_holdtime": float(max(q.hold.holdtime, 0)),     # minus the time waited: 0 at join
                "head_of_line": round(q.longest_wait(now), 1),
                "queue_length": queue_length_estimate(e.original_position - 1, q.serving(),
                                                      self.handle_times.mean(), seat_free)}

    def uid(self, n: int) -> str:
        """A channel's uniqueid as Asterisk makes it: ``SYSTEMNAME-EPOCH.N`` when
        asterisk.conf names the system (several PBXs), else ``EPOCH.N``."""
        plain = f"{self.clock():.0f}.{n}"
        return f"{self.system_name}-{plain}" if self.system_name else plain

    def find(self, uniqueid_or_channel: str) -> tuple[SimQueue, SimEntry] | None:
        return self.where.get(uniqueid_or_channel)

    def abandon(self, uniqueid: str) -> None:
        found = self.find(uniqueid)
        if found is None:
            return
        q, e = found
        pos = q.position(e)
        q.abandoned += 1
        self._emit(self._chan_event("QueueCallerAbandon", e) +
                   [("Queue", q.name), ("Position", str(pos)), ("OriginalPosition", str(e.original_position)),
                    ("HoldTime", str(int(self.clock() - e.joined)))])
        self._leave(q, e, pos)

    def leave(self, uniqueid: str) -> None:
        """The caller leaves without a seat and without hanging up (Queue()'s
        timeout): app_queue reports only QueueCallerLeave."""
        found = self.find(uniqueid)
        if found is not None:
            q, e = found
            self._leave(q, e, q.position(e))

    def _leave(self, q: SimQueue, e: SimEntry, pos: int) -> None:
        q.remove(e)
        e.waiting = False
        self.where.pop(e.uniqueid, None)
        self.where.pop(e.channel, None)
        self._emit(self._chan_event("QueueCallerLeave", e) +
                   [("Queue", q.name), ("Position", str(pos)), ("Count", str(len(q.entries)))])

    # -- seats -----------------------------------------------------------------

    def _seat_busy(self, interface: str) -> bool:
        if interface in self.calls or interface in self.wrapping or interface in self.occupied:
            return True
        for q in self.queues.values():
            m = q.members.get(interface)
            if m is not None:
                return self.device.get(m.state_interface, _NOT_INUSE) != _NOT_INUSE
        return True

    def _refresh_free(self, interface: str) -> None:
        if self._seat_busy(interface):
            self.free.discard(interface)
        else:
            self.free.add(interface)

    def end_wrapup(self, interface: str) -> None:
        self.wrapping.discard(interface)
        self._refresh_free(interface)

    def occupy(self, interface: str) -> bool:
        """A seat taken outside the queues (a callback): False if it is not free."""
        if interface not in self.free:
            return False
        self.occupied.add(interface)
        self._seat_device(interface, _INUSE)
        return True

    def release(self, interface: str) -> None:
        self.occupied.discard(interface)
        self._seat_device(interface, _NOT_INUSE)

    def _seat_device(self, interface: str, state: int) -> None:
        for q in self.queues.values():
            m = q.members.get(interface)
            if m is not None:
                self._set_device(m.state_interface, state)
                return
        self._refresh_free(interface)

    def _offerable(self, q: SimQueue, m: SimMember) -> bool:
        if m.paused or self._seat_busy(m.interface):
            return False
        # app_queue's compare_weight: a heavier queue with callers keeps its seats.
        return not any(other.weight > q.weight and m.interface in other.members and other.entries
                       for other in self.queues.values())

    def dispatch(self) -> list[Bridged]:
        """Offer the head of every line to a free seat, heaviest queue first;
        the seat answers at once (ring time is the drill's business). Looks only
        at free seats, so a busy hotline costs nothing here."""
        made = []
        for q in sorted(self.queues.values(), key=lambda q: -q.weight):
            while q.entries and self.free:
                cands = [q.members[i] for i in self.free if i in q.members]
                cands = [m for m in cands if self._offerable(q, m)]
                if not cands:
                    break
                best = min(cands, key=lambda m: (m.penalty, m.last_call, m.interface))
                made.append(self._connect(q, q.entries[0], best))
        return made

    def _connect(self, q: SimQueue, e: SimEntry, m: SimMember) -> Bridged:
        now = self.clock()
        pos = q.position(e)
        dest = self._dest_fields(m, e)
        agent = [("Queue", q.name), ("Interface", m.interface), ("MemberName", m.name)]
        self._emit(self._chan_event("AgentCalled", e) + dest + agent)
        q.hold.connected(now - e.joined, q.completed + q.abandoned)     # app_queue's recalc_holdtime
        self._leave(q, e, pos)
        self._emit(self._chan_event("AgentConnect", e) + dest + agent +
                   [("HoldTime", str(int(now - e.joined))), ("RingTime", "0")])
        b = Bridged(e, q.name, m.interface, now, m)
        self.calls[m.interface] = b
        self.free.discard(m.interface)
        self._set_device(m.state_interface, _INUSE)
        return b

    def hangup_call(self, interface: str, reason: str = "agent") -> None:
        b = self.calls.pop(interface, None)
        if b is None:
            return
        q, m = self.queues[b.queue], b.member
        m.calls_taken += 1
        m.last_call = int(self.clock())
        talk_s = self.clock() - b.since
        q.hold.completed(talk_s, q.completed)
        self.handle_times.add(talk_s + q.wrapup_s)
        q.completed += 1
        self._emit(self._chan_event("AgentComplete", b.entry) + self._dest_fields(m, b.entry) +
                   [("Queue", q.name), ("Interface", interface), ("MemberName", m.name),
                    ("HoldTime", str(int(b.since - b.entry.joined))),
                    ("TalkTime", str(int(self.clock() - b.since))), ("Reason", reason)])
        if q.wrapup_s > 0:
            self.wrapping.add(interface)     # the drill calls end_wrapup when it is over
        self._set_device(m.state_interface, _NOT_INUSE)

    def _set_device(self, state_interface: str, state: int) -> None:
        self.device[state_interface] = state
        names = {1: "NOT_INUSE", 2: "INUSE"}
        self._emit([("Event", "DeviceStateChange"), ("Privilege", "call,all"), ("Device", state_interface),
                    ("State", names.get(state, "UNKNOWN"))])
        for qname, m in self.by_state.get(state_interface, ()):
            if m.interface in self.queues[qname].members:
                self._emit(self._member_event("QueueMemberStatus", qname, m))
                self._refresh_free(m.interface)

    # -- AMI actions -------------------------------------------------------------

    def action(self, msg: dict[str, str]) -> list[Message]:
        """The response (and, for list actions, the events) to one action."""
        name = msg.get("Action", "").lower()
        aid = msg.get("ActionID", "")
        handler = getattr(self, f"_act_{name}", None)
        if handler is None:
            return [_resp("Error", aid, "Invalid/unknown command")]
        return handler(msg, aid)

    def _act_status(self, msg, aid):
        """``Status`` of one channel: Success, its ``Status`` event and
        ``StatusComplete``; ``No such channel`` when it has hung up."""
        name = msg.get("Channel", "")
        if name not in self.live_channels:
            return [_resp("Error", aid, "No such channel")]
        return [_resp("Success", aid, "Channel status will follow"),
                [("Event", "Status"), ("ActionID", aid), ("Channel", name), ("ChannelState", "6"),
                 ("ChannelStateDesc", "Up"), ("Context", "ivr-callback")],
                [("Event", "StatusComplete"), ("ActionID", aid), ("EventList", "Complete"), ("ListItems", "1"),
                 ("Items", "1")]]

    def _act_ping(self, msg, aid):
        return [[("Response", "Success"), ("ActionID", aid), ("Ping", "Pong"),
                 ("Timestamp", f"{self.clock():.6f}")]]

    def _act_coresettings(self, msg, aid):
        """As Asterisk 22 answers it (fixture ami/session-booting.json)."""
        return [[("Response", "Success"), ("ActionID", aid), ("AMIversion", "11.0.0"), ("AsteriskVersion", "22.10.1"),
                 ("SystemName", self.system_name), ("CoreMaxCalls", "0"), ("CoreMaxLoadAvg", "0.000000"),
                 ("CoreRunUser", ""), ("CoreRunGroup", ""), ("CoreMaxFilehandles", "0"),
                 ("CoreRealTimeEnabled", "No"), ("CoreCDRenabled", "Yes"), ("CoreHTTPenabled", "No"),
                 ("SoundsSearchCustomDir", "No")]]

    def _act_queuepause(self, msg, aid):
        iface, paused = msg.get("Interface", ""), msg.get("Paused", "").lower() in ("true", "yes", "1")
        hit = False
        for q in self.queues.values():
            if msg.get("Queue") and q.name != msg["Queue"]:
                continue
            m = q.members.get(iface)
            if m is None:
                continue
            hit = True
            m.paused, m.paused_reason = paused, msg.get("Reason", "") if paused else ""
            q._serving = None
            if paused:
                m.last_pause = int(self.clock())
            self._emit(self._member_event("QueueMemberPause", q.name, m))
        if not hit:
            return [_resp("Error", aid, "Interface not found")]
        return [_resp("Success", aid, "Interface paused successfully" if paused
                      else "Interface unpaused successfully")]

    def _act_queueadd(self, msg, aid):
        q = self.queues.get(msg.get("Queue", ""))
        iface = msg.get("Interface", "")
        if q is None:
            return [_resp("Error", aid, "Unable to add interface to queue: No such queue")]
        if iface in q.members:
            return [_resp("Error", aid, "Unable to add interface: Already there")]
        m = SimMember(iface, msg.get("MemberName") or iface, msg.get("StateInterface") or iface,
                      int(msg.get("Penalty") or 0), "dynamic", login_time=int(self.clock()))
        m.paused = msg.get("Paused", "").lower() in ("true", "1")
        self._place_member(q.name, m)
        out = [_resp("Success", aid, "Added interface to queue")]
        self._emit(self._member_event("QueueMemberAdded", q.name, m))
        return out

    def _act_queueremove(self, msg, aid):
        q = self.queues.get(msg.get("Queue", ""))
        m = q.members.get(msg.get("Interface", "")) if q else None
        if q is None or m is None:
            return [_resp("Error", aid, "Unable to remove interface: Not there")]
        if m.membership == "static":
            return [_resp("Error", aid, "Unable to remove interface from queue: Not a dynamic member")]
        del q.members[m.interface]
        q._serving = None
        self.by_state[m.state_interface] = [(qn, x) for qn, x in self.by_state.get(m.state_interface, [])
                                            if not (qn == q.name and x is m)]
        self._emit(self._member_event("QueueMemberRemoved", q.name, m))
        return [_resp("Success", aid, "Removed interface from queue")]

    def _act_queuechangeprioritycaller(self, msg, aid):
        found = self.find(msg.get("Caller", ""))
        if found is None or found[0].name != msg.get("Queue"):
            return [_resp("Error", aid, "Unable to change priority caller on queue: No such caller")]
        q, e = found
        q.remove(e)                       # Immediate: re-sorted at once (as Asterisk 22 does)
        e.priority = int(msg.get("Priority") or 0)
        q.insert(e)
        return [_resp("Success", aid, "Priority change for caller on queue")]

    def _act_queuewithdrawcaller(self, msg, aid):
        found = self.find(msg.get("Caller", ""))
        if found is None or found[0].name != msg.get("Queue"):
            return [_resp("Error", aid, "Unable to request withdraw from queue: No such caller")]
        q, e = found
        self.withdrawn[e.uniqueid] = msg.get("WithdrawInfo", "")
        # app_queue notices the request on its next poll; the caller leaves as an abandon.
        if self.on_withdraw is not None:
            self.on_withdraw(e.uniqueid)
        else:
            self.abandon(e.uniqueid)
        return [_resp("Success", aid, "Withdraw requested successfully")]

    def _act_queuestatus(self, msg, aid):
        out = [[("Response", "Success"), ("ActionID", aid), ("EventList", "start"),
                ("Message", "Queue status will follow")]]
        items = 0
        for q in self.queues.values():
            if msg.get("Queue") and q.name != msg["Queue"]:
                continue
            out.append([("Event", "QueueParams"), ("Queue", q.name), ("Max", "0"), ("Strategy", q.strategy),
                        ("Calls", str(len(q.entries))), ("Holdtime", str(q.hold.holdtime)),
                        ("TalkTime", str(q.hold.talktime)),
                        ("Completed", str(q.completed)), ("Abandoned", str(q.abandoned)), ("ServiceLevel", "0"),
                        ("ServicelevelPerf", "0.0"), ("ServicelevelPerf2", "0.0"), ("Weight", str(q.weight)),
                        ("ActionID", aid)])
            for m in q.members.values():
                out.append([("Event", "QueueMember"), ("Queue", q.name), ("Name", m.name),
                            ("Location", m.interface)] + self._member_fields(m)[2:-2]
                           + [("Wrapuptime", f"{q.wrapup_s:.0f}"), ("ActionID", aid)])
            for pos, e in enumerate(q.ordered(), 1):
                out.append([("Event", "QueueEntry"), ("Queue", q.name), ("Position", str(pos)),
                            ("Channel", e.channel), ("Uniqueid", e.uniqueid), ("CallerIDNum", e.number),
                            ("CallerIDName", e.name), ("ConnectedLineNum", e.number),
                            ("ConnectedLineName", e.name), ("Wait", str(int(self.clock() - e.joined))),
                            ("Priority", str(e.priority)), ("ActionID", aid)])
            items += 1 + len(q.members) + len(q.entries)
        out.append([("Event", "QueueStatusComplete"), ("ActionID", aid), ("EventList", "Complete"),
                    ("ListItems", str(items))])
        return out

    def _act_getvar(self, msg, aid):
        """``Getvar`` as manager.c's action_getvar answers it: a function
        (``GROUP_COUNT(trunk@ivr)``: the trunk lines in use) is evaluated on a
        dummy channel when no Channel is given; a plain name is a global."""
        name, channel = msg.get("Variable", ""), msg.get("Channel", "")
        if not name:
            return [_resp("Error", aid, "No variable specified")]
        if channel and channel not in self.trunk.held and channel not in self.where \
                and channel not in self.live_channels:
            return [_resp("Error", aid, "No such channel")]
        value = ""
        m = _GROUP_COUNT.match(name)
        if m is not None:
            value = str(self.trunk.group_count(m.group(1), m.group(2) or ""))
        elif not name.endswith(")"):
            value = self.globals.get(name, "")
        return [[("Response", "Success"), ("ActionID", aid), ("Variable", name), ("Value", value)]]

    def _act_originate(self, msg, aid):
        if not msg.get("Channel", "").startswith("Local/"):
            return [_resp("Error", aid, "Originate failed")]
        self.originated.append(dict(msg))
        return [_resp("Success", aid, "Originate successfully queued")]

    def originate_result(self, msg: dict[str, str], ok: bool, *, reason: int | None = None) -> None:
        """How the call placed by an earlier Originate ended (the drill or a test decides)."""
        n = next(self._chan)
        if ok:     # the seat's channel lives until the dialplan's h extension runs (user_event)
            self.live_channels[f"{msg.get('Channel', '').removesuffix('/n')}-{n:08x};1"] = msg.get("Channel", "")
        self._emit([("Event", "OriginateResponse"), ("Privilege", "call,all"), ("ActionID", msg.get("ActionID", "")),
                    ("Response", "Success" if ok else "Failure"),
                    ("Channel", f"{msg.get('Channel', '').removesuffix('/n')}-{n:08x};1" if ok else msg.get("Channel", "")),
                    ("Context", msg.get("Context", "")), ("Exten", msg.get("Exten", "")),
                    ("Reason", str(reason if reason is not None else (4 if ok else 0))),
                    ("Uniqueid", self.uid(n) if ok else "<unknown>"),
                    ("CallerIDNum", _cid_num(msg.get("CallerID", ""))), ("CallerIDName", _cid_name(msg.get("CallerID", "")))])

    def dtmf(self, uniqueid: str, digit: str) -> None:
        """A waiting caller presses a key (AMI class ``dtmf``)."""
        found = self.find(uniqueid)
        if found is None:
            return
        e = found[1]
        msg = self._chan_event("DTMFEnd", e)
        msg = [(k, v) for k, v in msg if k != "ChanVariable"]
        msg[1] = ("Privilege", "dtmf,all")
        self._emit(msg + [("Digit", digit), ("DurationMs", "100"), ("Direction", "Received")])

    def user_event(self, name: str, channel: str, **fields: str) -> None:
        """``UserEvent(name,Key: value,...)`` run by the dialplan on ``channel``."""
        for live, seat in list(self.live_channels.items()):
            if seat == channel:
                del self.live_channels[live]
        self._emit([("Event", "UserEvent"), ("Privilege", "user,all"), ("Channel", channel), ("ChannelState", "6"),
                    ("ChannelStateDesc", "Up"), ("CallerIDNum", ""), ("CallerIDName", ""), ("ConnectedLineNum", ""),
                    ("ConnectedLineName", ""), ("Language", "en"), ("AccountCode", ""), ("Context", "ivr-callback"),
                    ("Exten", "h"), ("Priority", "1"), ("Uniqueid", self.uid(next(self._chan))),
                    ("Linkedid", ""), ("UserEvent", name)] + list(fields.items()))

    def dialplan_event(self, channel: str, uniqueid: str, number: str, name: str, fields: list[tuple[str, str]],
                       *, context: str = "ivr-12345", exten: str = "12345") -> None:
        """``UserEvent(name,Key: value,...)`` run by the incoming dialplan on a
        caller's channel before it is answered (the refused branch of
        ``[ivr-12345]``: ``UserEvent: IvrBlocked``)."""
        self._emit([("Event", "UserEvent"), ("Privilege", "user,all"), ("Channel", channel), ("ChannelState", "4"),
                    ("ChannelStateDesc", "Ring"), ("CallerIDNum", number), ("CallerIDName", "<unknown>"),
                    ("Context", context), ("Exten", exten), ("Priority", "1"), ("Uniqueid", uniqueid),
                    ("Linkedid", uniqueid), ("UserEvent", name)] + fields)

    def _act_dbgettree(self, msg, aid):
        prefix = f"/{msg.get('Family', '')}/"
        rows = sorted((k, v) for k, v in self.astdb.items() if k.startswith(prefix))
        out = [[("Response", "Success"), ("ActionID", aid), ("EventList", "start"),
                ("Message", "Result will follow")]]
        out += [[("Event", "DBGetTreeResponse"), ("Key", k), ("Val", v), ("ActionID", aid)] for k, v in rows]
        out.append([("Event", "DBGetTreeComplete"), ("ActionID", aid), ("EventList", "Complete"),
                    ("ListItems", str(len(rows)))])
        return out

    def _act_dbdel(self, msg, aid):
        key = f"/{msg.get('Family', '')}/{msg.get('Key', '')}"
        if self.astdb.pop(key, None) is None:
            return [[("Response", "Error"), ("ActionID", aid), ("Message", "Database entry could not be deleted")]]
        return [[("Response", "Success"), ("ActionID", aid), ("Message", "Key deleted successfully")]]

    # -- message builders (field order as Asterisk 22 sends them) ---------------

    def _emit(self, msg: Message) -> None:
        self.events.append(msg)

    def drain(self) -> list[Message]:
        out, self.events = self.events, []
        return out

    def _chan_event(self, event: str, e: SimEntry, prio: int | None = None) -> Message:
        msg = [("Event", event), ("Privilege", "agent,all"), ("Channel", e.channel), ("ChannelState", "6"),
               ("ChannelStateDesc", "Up"), ("CallerIDNum", e.number), ("CallerIDName", e.name),
               ("ConnectedLineNum", e.number), ("ConnectedLineName", e.name), ("Language", "en"),
               ("AccountCode", ""), ("Context", e.context), ("Exten", "12345"), ("Priority", "1"),
               ("Uniqueid", e.uniqueid), ("Linkedid", e.uniqueid)]
        if "QUEUE_PRIO" in self.chan_vars:
            msg.append(("ChanVariable", f"QUEUE_PRIO={e.priority if prio is None else prio}"))
        return msg

    def _dest_fields(self, m: SimMember, e: SimEntry) -> Message:
        n = next(self._chan)
        exten = m.interface.split("/", 1)[1].split("@", 1)
        return [("DestChannel", f"{m.interface.removesuffix('/n')}-{n:08x};1"), ("DestChannelState", "6"),
                ("DestChannelStateDesc", "Up"), ("DestCallerIDNum", e.number), ("DestCallerIDName", e.name),
                ("DestConnectedLineNum", e.number), ("DestConnectedLineName", e.name), ("DestLanguage", "en"),
                ("DestAccountCode", ""), ("DestContext", exten[1] if len(exten) > 1 else ""),
                ("DestExten", "12345"), ("DestPriority", "1"), ("DestUniqueid", self.uid(n)),
                ("DestLinkedid", e.uniqueid)]

    def _member_fields(self, m: SimMember, wrapup_s: float = 0.0) -> Message:
        """A member as QueueMember* events show it; ``Wrapuptime``: the member's
        wrap-up (the simulated queues' members carry their queue's, as a
        ``member =>`` line may in queues.conf), so the engine sees it."""
        in_call = m.interface in self.calls
        return [("MemberName", m.name), ("Interface", m.interface), ("StateInterface", m.state_interface),
                ("Membership", m.membership), ("Penalty", str(m.penalty)), ("CallsTaken", str(m.calls_taken)),
                ("LastCall", str(m.last_call)), ("LastPause", str(m.last_pause)), ("LoginTime", str(m.login_time)),
                ("InCall", "1" if in_call else "0"), ("Status", str(self.device.get(m.state_interface, 1))),
                ("Paused", "1" if m.paused else "0"), ("PausedReason", m.paused_reason),
                ("Ringinuse", "0"), ("Wrapuptime", f"{wrapup_s:.0f}")]

    def _member_event(self, event: str, queue: str, m: SimMember) -> Message:
        q = self.queues.get(queue)
        return [("Event", event), ("Privilege", "agent,all"), ("Queue", queue)] + \
            self._member_fields(m, q.wrapup_s if q else 0.0)


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _resp(status: str, aid: str, message: str) -> Message:
    return [("Response", status), ("ActionID", aid), ("Message", message)]


def _cid_num(cid: str) -> str:
    return cid.rsplit("<", 1)[1].rstrip(">") if "<" in cid else cid


def _cid_name(cid: str) -> str:
    return cid.split("<", 1)[0].strip().strip('"') if "<" in cid else ""


def render(msg: Message) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in msg) + "\r\n").encode()
