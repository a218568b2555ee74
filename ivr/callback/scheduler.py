"""The callback scheduler: while the live queues are calm, claims the next
callbacks (one atomic step in Redis) for idle, unreserved seats and originates
them over AMI, seat first: the seat answers, hears who is called back and why
(``[ivr-callback]`` in asterisk/extensions.conf), then the citizen is dialled
with the hotline's number as caller ID. The outcome comes back as AMI events:
``OriginateResponse`` (did the seat answer) and the dialplan's
``UserEvent: IvrCallback`` with the citizen leg's DIALSTATUS.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from ivr.ami.controller import AmiController
from ivr.callback.policy import Policy, next_attempt_at
from ivr.callback.store import CallbackStore
from ivr.logs import mask_number

# DIALSTATUS of the citizen leg -> outcome
DIAL_OUTCOMES = {"ANSWER": "reached", "NOANSWER": "no_answer", "BUSY": "busy", "CONGESTION": "failed",
                 "CHANUNAVAIL": "failed", "CANCEL": "failed", "DONTCALL": "failed", "TORTURE": "failed",
                 "INVALIDARGS": "failed", "": "seat_hung_up"}


@dataclass
class Attempt:
    number: str
    cid: str
    seat: str
    action_id: str
    started: float
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def is_calm(snapshot: dict | None, policy: Policy, queues: dict[str, str]) -> tuple[bool, str]:
    """Callbacks never take a seat from citizens waiting live."""
    if snapshot is None or not snapshot.get("ami_connected", True):
        return False, "no live figures"
    if snapshot["emergency"]["waiting"]:
        return False, "emergency callers waiting"
    for name in policy.calm_queues:
        q = snapshot["queues"].get(queues.get(name, name))
        if q is None:
            continue
        if q["waiting"] > policy.calm_max_waiting or q["longest_wait_s"] > policy.calm_max_longest_wait_s:
            return False, f"{name}: {q['waiting']} waiting, longest {q['longest_wait_s']:.0f} s"
    return True, ""


def idle_seats(snapshot: dict, busy: set[str]) -> list[str]:
    return [s["interface"] for s in snapshot["seats"]
            if s["state"] == "idle" and not s["reserved"] and s["interface"] not in busy]


class CallbackScheduler:
    def __init__(self, *, store: CallbackStore, controller: AmiController, policy: Policy, tz: ZoneInfo,
                 queues: dict[str, str], log, owner: str, context: str = "ivr-callback") -> None:
        self.store = store
        self.controller = controller
        self.policy = policy
        self.tz = tz
        self.queues = queues
        self.log = log
        self.owner = owner
        self.context = context
        self.active: dict[str, Attempt] = {}          # action id -> attempt
        self.by_cid: dict[str, Attempt] = {}
        controller.listeners.append(self._on_event)

    def busy_seats(self) -> set[str]:
        return {a.seat for a in self.active.values()}

    async def tick(self, now: float | None = None) -> int:
        """One round; returns how many callbacks were started."""
        now = time.time() if now is None else now
        snap = self.controller.model.snapshot(now) if self.controller.ready.is_set() else None
        if snap is not None:
            snap["ami_connected"] = True
        calm, why = is_calm(snap, self.policy, self.queues)
        seats = idle_seats(snap, self.busy_seats()) if calm else []
        budget = min(len(seats) - self.policy.keep_idle, self.policy.max_parallel - len(self.active))
        recovered, numbers = await self.store.claim(now=now, lease_s=self.policy.claim_lease_s, owner=self.owner,
                                                    count=max(0, budget))
        if recovered:
            self.log.warning("callbacks_recovered", count=recovered)
        for number, seat in zip(numbers, seats):
            await self._start(number, seat, now)
        return len(numbers)

    async def _start(self, number: str, seat: str, now: float) -> None:
        rec = await self.store.open_record(number) or {}
        cid = rec.get("id", "?")
        attempt_no = int(rec.get("attempts", 0)) + 1
        aid = f"cb-{cid}-{attempt_no}-{int(now * 1000) % 100000}"
        att = Attempt(number, cid, seat, aid, now)
        self.active[aid], self.by_cid[cid] = att, att
        await self.store.audit.append([{"kind": "assigned", "at": now, "id": cid, "number": mask_number(number),
                                        "seat": seat, "attempt": attempt_no, "by": self.owner}])
        res = await self.controller.originate({
            "ActionID": aid, "Channel": seat, "Context": self.context, "Exten": number, "Priority": "1",
            "CallerID": f'"12345回拨" <{self.policy.caller_id}>',
            "Timeout": str(int(self.policy.seat_ring_s * 1000)),
            "Variable": f"IVR_CB_ID={cid},IVR_CB_KIND={rec.get('kind', '')},IVR_CB_REASON={rec.get('reason', '')}"})
        if not res.ok:
            await self._finish(att, "failed", time.time(), detail=res.message)
            return
        asyncio.get_running_loop().call_later(self.policy.seat_ring_s + self.policy.citizen_ring_s + 600,
                                              self._expire, aid)

    def _expire(self, aid: str) -> None:
        att = self.active.get(aid)
        if att is not None:   # no event came back: settle it as failed rather than hold the seat forever
            asyncio.ensure_future(self._finish(att, "failed", time.time(), detail="no outcome from Asterisk"))

    def _on_event(self, event) -> None:
        name = event.get("Event")
        if name == "OriginateResponse":
            att = self.active.get(event.get("ActionID", ""))
            if att is not None and event.get("Response") != "Success":
                # the seat did not answer (Reason 3), was busy (5) or could not be reached
                reason = {"3": "no answer", "5": "busy"}.get(event.get("Reason", ""), "failed")
                asyncio.ensure_future(self._finish(att, "seat_no_answer", time.time(), detail=reason))
        elif name == "UserEvent" and event.get("UserEvent") == "IvrCallback":
            att = self.by_cid.get(event.get("Id", ""))
            if att is not None:
                outcome = DIAL_OUTCOMES.get(event.get("DialStatus", ""), "failed")
                asyncio.ensure_future(self._finish(att, outcome, time.time(), detail=event.get("DialStatus", "")))

    async def _finish(self, att: Attempt, outcome: str, now: float, detail: str = "") -> None:
        if self.active.pop(att.action_id, None) is None:
            return
        self.by_cid.pop(att.cid, None)
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
        entry = {"kind": "attempt", "at": now, "id": att.cid, "number": mask_number(att.number), "seat": att.seat,
                 "outcome": outcome, "detail": detail, "attempt": attempts, "result": what}
        entries = [entry]
        if what == "closed":
            entries.append({"kind": "closed", "at": now, "id": att.cid, "number": mask_number(att.number),
                            "reason": close_reason, "attempts": attempts})
        elif what == "rescheduled":
            entries.append({"kind": "scheduled", "at": now, "id": att.cid, "number": mask_number(att.number),
                            "next_at": next_at})
        await self.store.audit.append(entries)
        self.log.info("callback_attempt", callback=att.cid, number=att.number, seat=att.seat, outcome=outcome,
                      result=what)
        if not att.done.done():
            att.done.set_result(outcome)
