"""The callback scheduler: while the live queues are calm, claims the next
callbacks (one atomic step in Redis) for idle, unreserved seats and originates
them over AMI, seat first: the seat answers, hears who is called back and why
(``[ivr-callback]`` in asterisk/extensions.conf), then the citizen is dialled
with the hotline's number as caller ID. The outcome comes back as AMI events:
``OriginateResponse`` (did the seat answer) and the dialplan's
``UserEvent: IvrCallback`` with the citizen leg's DIALSTATUS.

A citizen is never dialled twice at the same time: the claim's lease of every
attempt under way is renewed each round (a conversation may outlast it), a
number already being dialled here is never started again, and an attempt
leaves memory only once its outcome is in Redis (the write is retried).

Several PBXs (issue 20): the scheduler is handed every PBX's controller. A
callback goes to an idle, unreserved seat on any PBX whose link is up and
whose own queues are calm (each PBX's calm gate, on its own live model: its
emergency callers, its lines, its queues), and is originated on that seat's
own PBX; its outcome comes back on that PBX's link. The seats of the PBXs
are taken in turn (the first idle seat of each PBX, then the second...), and
``keep_idle`` is counted over all of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from itertools import chain, zip_longest
from typing import Any
from zoneinfo import ZoneInfo

from ivr.ami.controller import AmiController
from ivr.ami.model import AmiEvent, LiveSnapshot
from ivr.callback.policy import Policy, next_attempt_at
from ivr.callback.states import DIAL_OUTCOMES  # DIALSTATUS of the citizen leg -> outcome
from ivr.callback.store import CallbackStore, Record
from ivr.logs import Log, mask_number
from ivr.redisdb.durable import Replication


@dataclass
class Attempt:
    number: str
    cid: str
    seat: str
    action_id: str
    started: float
    answered_at: float | None = None        # the seat picked up (OriginateResponse Success)
    outcome: tuple[str, str] | None = None  # (outcome, detail) once known; written until it sticks
    seat_name: str = ""                     # the queue member's name (Seat101), as staff know the seat
    written: tuple[str, int, str, float | None] | None = None   # the state change, once in Redis
    audited: bool = False
    pbx: str = ""                           # the seat's PBX (its controller's name in ``controllers``)
    done: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


NO_OUTCOME_GRACE_S = 60          # after the seat and citizen ring times, with no word from Asterisk
MAX_CONVERSATION_S = 4 * 3600    # a callback conversation that never reports its end
FINISH_RETRY_S = (0.5, 1, 2, 5, 10)


def is_calm(snapshot: LiveSnapshot | None, policy: Policy, queues: dict[str, str]) -> tuple[bool, str]:
    """Callbacks never take a seat from citizens waiting live, nor one of the
    last free lines (``callback_below_free`` in queue/lines.yaml)."""
    if snapshot is None or not snapshot.get("ami_connected", True):
        return False, "no live figures"
    if snapshot["emergency"]["waiting"]:
        return False, "emergency callers waiting"
    lines = snapshot.get("lines")
    if lines and lines["known"] and lines["free"] is not None and lines["free"] < max(1, lines["callback_below_free"]):
        # a callback's call to the citizen takes a line too: never one of the last few
        return False, f"lines: {lines['free']} free"
    for name in policy.calm_queues:
        q = snapshot["queues"].get(queues.get(name, name))
        if q is None:
            continue
        if q["waiting"] > policy.calm_max_waiting or q["longest_wait_s"] > policy.calm_max_longest_wait_s:
            return False, f"{name}: {q['waiting']} waiting, longest {q['longest_wait_s']:.0f} s"
    return True, ""


def idle_seats(snapshot: LiveSnapshot, busy: set[str]) -> list[str]:
    return [s["interface"] for s in snapshot["seats"]
            if s["state"] == "idle" and not s["reserved"] and s["interface"] not in busy]


def seat_names(snapshot: LiveSnapshot | None) -> dict[str, str]:
    """interface -> the queue member's name, where Asterisk gave one other than the interface."""
    if snapshot is None:
        return {}
    return {s["interface"]: s["name"] for s in snapshot["seats"] if s.get("name") and s["name"] != s["interface"]}


def _on_pbx(pbx: str) -> dict[str, str]:
    """The seat's PBX in an audit entry, with several PBXs."""
    return {"pbx": pbx} if pbx else {}


def _named(seat_name: str) -> dict[str, str]:
    """The seat's name in an audit entry, when there is one (older entries have none)."""
    return {"seat_name": seat_name} if seat_name else {}


class OutboundCaller:
    """What the callback scheduler and the follow-up caller
    (``followup_caller.FollowupCaller``) share: the calls they place run on
    a PBX's own link (``pbxs``: PBX name -> its controller, with several PBXs;
    ``controller`` is one of them), within the callback policy's hours and
    the live queues' calm, and their outcomes are written by tasks they own,
    awaited when the leader role stops."""

    def __init__(self, *, controller: AmiController, policy: Policy, tz: ZoneInfo, queues: dict[str, str],
                 log: Log, owner: str, context: str, clock: Callable[[], float] = time.time,
                 pbxs: Mapping[str, AmiController] | None = None) -> None:
        self.controller = controller
        self.controllers: dict[str, AmiController] = dict(pbxs) if pbxs else {"": controller}
        self.policy = policy
        self.tz = tz
        self.queues = queues
        self.log = log
        self.owner = owner
        self.context = context
        self.clock = clock
        self._writes: set[asyncio.Task[Any]] = set()       # outcome writes in flight (owned, awaited on close)
        for c in self.controllers.values():
            c.listeners.append(self._on_event)

    def _on_event(self, event: AmiEvent) -> None:
        raise NotImplementedError

    def _own(self, coro: Coroutine[Any, Any, object]) -> None:
        """Writes started from AMI events are owned tasks, awaited on close."""
        task = asyncio.get_running_loop().create_task(coro)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Let outcome writes in flight finish (leader role stopping)."""
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=timeout_s)


class CallbackScheduler(OutboundCaller):
    def __init__(self, *, store: CallbackStore, controller: AmiController, policy: Policy, tz: ZoneInfo,
                 queues: dict[str, str], log: Log, owner: str, context: str = "ivr-callback",
                 clock: Callable[[], float] = time.time, pbxs: Mapping[str, AmiController] | None = None) -> None:
        self.store = store
        self.active: dict[str, Attempt] = {}          # action id -> attempt
        self.by_cid: dict[str, Attempt] = {}
        self.by_number: dict[str, Attempt] = {}
        self.replication = Replication(store.redis)
        super().__init__(controller=controller, policy=policy, tz=tz, queues=queues, log=log, owner=owner,
                         context=context, clock=clock, pbxs=pbxs)

    def busy_seats(self) -> set[str]:
        return {a.seat for a in self.active.values()}

    async def tick(self, now: float | None = None) -> int:
        """One round; returns how many callbacks were started."""
        now = self.clock() if now is None else now
        self._settle_silent(now)
        # attempts whose seat answered: their citizen leg is dialled over the trunk and holds a line (its PBX's)
        for pbx, c in self.controllers.items():
            c.model.callbacks_on_line = sum(1 for a in self.active.values() if a.answered_at is not None
                                            and a.pbx == pbx)
        if self.by_number:
            await self.store.renew(list(self.by_number), owner=self.owner, lease_until=now + self.policy.claim_lease_s)
        seats = self._free_seats(now)
        budget = min(len(seats) - self.policy.keep_idle, self.policy.max_parallel - len(self.active))
        recovered, numbers = await self.store.claim(now=now, lease_s=self.policy.claim_lease_s, owner=self.owner,
                                                    count=max(0, budget))
        if recovered:
            self.log.warning("callbacks_recovered", count=recovered)
        started = 0
        for number, (pbx, seat, name) in zip(numbers, seats, strict=False):  # as many as both allow
            if number in self.by_number:
                # our own attempt whose lease lapsed (a stalled process): it is
                # still under way, so it is kept, never dialled again
                self.log.warning("callback_already_under_way", number=mask_number(number))
                continue
            await self._start(number, seat, now, name, pbx)
            started += 1
        return started

    def _free_seats(self, now: float) -> list[tuple[str, str, str]]:
        """(PBX, seat, its name) of every idle unreserved seat not on a callback,
        on each PBX whose link is up and whose queues are calm; the PBXs in turn."""
        busy = self.busy_seats()
        each: list[list[tuple[str, str, str]]] = []
        for pbx, c in self.controllers.items():
            snap = c.model.snapshot(now) if c.ready.is_set() else None
            if snap is not None:
                snap["ami_connected"] = True
            calm, _ = is_calm(snap, self.policy, self.queues)
            if calm and snap is not None:
                names = seat_names(snap)
                each.append([(pbx, seat, names.get(seat, "")) for seat in idle_seats(snap, busy)])
        return [x for x in chain.from_iterable(zip_longest(*each)) if x is not None]

    def _settle_silent(self, now: float) -> None:
        """Attempts Asterisk never reported on: settle them as failed rather
        than hold the seat forever. A conversation in progress is left alone."""
        ring_s = self.policy.seat_ring_s + self.policy.citizen_ring_s + NO_OUTCOME_GRACE_S
        for att in list(self.active.values()):
            if att.outcome is not None:
                continue
            limit = att.started + ring_s if att.answered_at is None else att.answered_at + MAX_CONVERSATION_S
            if now > limit:
                self._outcome(att, "failed", "no outcome from Asterisk", now)

    async def _start(self, number: str, seat: str, now: float, seat_name: str = "", pbx: str = "") -> None:
        rec = await self.store.open_record(number) or {}
        cid = rec.get("id", "?")
        if rec.get("call_channel") and await self._adopt(number, rec, now):
            return
        attempt_no = int(rec.get("attempts", 0)) + 1
        aid = f"cb-{cid}-{attempt_no}-{int(now * 1000) % 100000}"
        att = Attempt(number, cid, seat, aid, now, seat_name=seat_name, pbx=pbx)
        self.active[aid], self.by_cid[cid], self.by_number[number] = att, att, att
        await self.store.audit.append([{"kind": "assigned", "at": now, "id": cid, "number": mask_number(number),
                                        "seat": seat, **_named(seat_name), **_on_pbx(pbx), "attempt": attempt_no,
                                        "by": self.owner}])
        # originated on the seat's own PBX
        res = await self.controllers.get(pbx, self.controller).originate({
            "ActionID": aid, "Channel": seat, "Context": self.context, "Exten": number, "Priority": "1",
            "CallerID": f'"12345回拨" <{self.policy.caller_id}>',
            "Timeout": str(int(self.policy.seat_ring_s * 1000)),
            # IVR_CB_SEAT: the citizen's survey after the conversation says which seat it rates
            "Variable": f"IVR_CB_ID={cid},IVR_CB_KIND={rec.get('kind', '')},IVR_CB_REASON={rec.get('reason', '')},"
                        f"IVR_CB_SEAT={seat}"})
        if not res.ok:
            self._outcome(att, "failed", res.message, self.clock())

    async def _adopt(self, number: str, rec: Record, now: float) -> bool:
        """A claim taken over from a leader that died while its attempt's call
        was up (the seat had answered): if Asterisk still has that call, it is
        adopted — its outcome will come as a UserEvent — and the citizen is not
        dialled again while they talk."""
        found = ""
        for pbx in self._pbxs_of(rec.get("call_seat", "")):    # the seat's PBX first; any that has the call
            res = await self.controllers[pbx].act({"Action": "Status", "Channel": rec["call_channel"]}, retries=1)
            if res.ok:
                found = pbx
                break
        else:
            self.log.warning("callback_outcome_lost", callback=rec.get("id"), number=mask_number(number),
                             detail="the previous attempt's call ended while no leader watched")
            return False
        cid = rec.get("id", "?")
        att = Attempt(number, cid, rec.get("call_seat", ""), f"adopted-{cid}", now, answered_at=now, pbx=found)
        self.active[att.action_id], self.by_cid[cid], self.by_number[number] = att, att, att
        await self.store.audit.append([{"kind": "adopted", "at": now, "id": cid, "number": mask_number(number),
                                        "seat": att.seat, **_on_pbx(found), "by": self.owner}])
        self.log.warning("callback_adopted", callback=cid, number=mask_number(number), seat=att.seat)
        return True

    def _pbxs_of(self, seat: str) -> list[str]:
        """The PBXs to ask about a seat's call: the one whose model has the seat first."""
        return sorted(self.controllers, key=lambda p: seat not in self.controllers[p].model.seats)

    def _on_event(self, event: AmiEvent) -> None:
        name = event.get("Event")
        if name == "OriginateResponse":
            att = self.active.get(event.get("ActionID", ""))
            if att is None:
                return
            if event.get("Response") == "Success":
                att.answered_at = self.clock()
                self._own(self.store.mark_in_call(att.number, owner=self.owner, channel=event.get("Channel", ""),
                                                  seat=att.seat))
            else:
                # the seat did not answer (Reason 3), was busy (5) or could not be reached
                reason = {"3": "no answer", "5": "busy"}.get(event.get("Reason", ""), "failed")
                self._outcome(att, "seat_no_answer", reason, self.clock())
        elif name == "UserEvent" and event.get("UserEvent") == "IvrCallback":
            att = self.by_cid.get(event.get("Id", ""))
            if att is not None:
                outcome = DIAL_OUTCOMES.get(event.get("DialStatus", ""), "failed")
                self._outcome(att, outcome, event.get("DialStatus", ""), self.clock())

    def _outcome(self, att: Attempt, outcome: str, detail: str, now: float) -> None:
        """The first outcome of an attempt wins; writing it is an owned task."""
        if att.outcome is not None:
            return
        att.outcome = (outcome, detail)
        self._own(self._write(att, now))

    async def _write(self, att: Attempt, now: float) -> None:
        """Write the outcome until it sticks. Until then the attempt stays under
        way: its lease is renewed, so nobody dials the citizen again."""
        delays = iter(FINISH_RETRY_S)
        while True:
            try:
                await self._finish(att, now)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis failing over: the outcome must not be lost
                self.log.warning("callback_outcome_not_written", callback=att.cid, error=repr(exc))
                await asyncio.sleep(next(delays, FINISH_RETRY_S[-1]))

    async def _finish(self, att: Attempt, now: float) -> None:
        """Two steps, each done once even when retried: the state change, then
        its audit entries."""
        assert att.outcome is not None
        outcome, detail = att.outcome
        if att.written is None:
            att.written = await self._settle(att, outcome, now)
            await self.replication.wait()
        what, attempts, close_reason, next_at = att.written
        entry = {"kind": "attempt", "at": now, "id": att.cid, "number": mask_number(att.number), "seat": att.seat,
                 **_named(att.seat_name), **_on_pbx(att.pbx), "outcome": outcome, "detail": detail, "attempt": attempts,
                 "result": what}
        entries = [entry]
        if what == "closed":
            entries.append({"kind": "closed", "at": now, "id": att.cid, "number": mask_number(att.number),
                            "reason": close_reason, "attempts": attempts})
        elif what == "rescheduled":
            entries.append({"kind": "scheduled", "at": now, "id": att.cid, "number": mask_number(att.number),
                            "next_at": next_at})
        if not att.audited:
            await self.store.audit.append(entries)
            att.audited = True
        await self.replication.wait()
        # in Redis: only now does the attempt leave memory (and stop renewing its lease)
        self.active.pop(att.action_id, None)
        self.by_cid.pop(att.cid, None)
        if self.by_number.get(att.number) is att:
            del self.by_number[att.number]
        self.log.info("callback_attempt", callback=att.cid, number=att.number, seat=att.seat, outcome=outcome,
                      result=what)
        if not att.done.done():
            att.done.set_result(outcome)

    async def _settle(self, att: Attempt, outcome: str, now: float) -> tuple[str, int, str, float | None]:
        rec = await self.store.open_record(att.number) or {}
        attempts = int(rec.get("attempts", 0)) + (0 if outcome == "seat_no_answer" else 1)
        emergency = rec.get("kind") == "emergency"
        close_reason, next_at = "", None
        if outcome == "reached":
            close_reason = "reached"
        elif rec.get("close_after_attempt"):
            close_reason = rec["close_after_attempt"]
        elif outcome == "seat_no_answer":
            next_at = now        # the citizen was not dialled: back in line at once, another seat takes it
        else:
            next_at = next_attempt_at(attempts, now, emergency, self.tz, self.policy)
            if next_at is None:
                if self.policy.after_last_attempt == "keep_open":
                    next_at = now + self.policy.spacing_s[-1]
                else:
                    close_reason = "unreached"
        what = await self.store.finish(att.number, self.owner, outcome=outcome, seat=att.seat, now=now,
                                       next_at=next_at, close_reason=close_reason)
        return what, attempts, close_reason, next_at
