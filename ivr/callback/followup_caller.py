"""The follow-up caller (智能回访, a leader part): calls the citizens of the
chosen samples without a seat. Each round, within the callback policy's
calling hours and only while the live queues are calm and lines are free
(``scheduler.is_calm``, the same gate as callbacks: a follow-up never takes a
line from citizens calling in), it claims due follow-ups (one Lua step) and
originates them over AMI: ``Local/<number>@ivr-followup-out/n`` dials the
citizen on the trunk with the hotline's number; once they answer, the Local
channel's other half runs ``[ivr-followup]``, where an engine runs flow
``followup``. The dialplan's ``UserEvent: IvrFollowup`` (the trunk leg's
DIALSTATUS) gives the outcome; attempts and spacing come from the callback
policy. Every step is an entry of the callbacks' audit log (id ``F<id>``).
What the citizen says arrives later, in the call summary (``kind: followup``),
and the missed-call capture keeps it on the follow-up.

Several PBXs (issue 20): each follow-up is originated on a PBX whose link is
up and whose own gate is open (its queues calm, its lines free), the one
with the most room first; the outcome comes back on that PBX's link.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from ivr.ami.controller import AmiController
from ivr.ami.model import AmiEvent
from ivr.callback.followup import FollowupStore, audit_id
from ivr.callback.policy import Policy, in_calling_hours, next_attempt_at
from ivr.callback.scheduler import (
    FINISH_RETRY_S,
    MAX_CONVERSATION_S,
    NO_OUTCOME_GRACE_S,
    OutboundCaller,
    is_calm,
)
from ivr.callback.states import DIAL_OUTCOMES
from ivr.logs import Log, mask_number

FOLLOWUP_CALL_S = 15 * 60        # a follow-up's claim lease: the ring and a short survey, with room
# A failed Originate of Local/<n>@ivr-followup-out comes before the dialplan's UserEvent, which
# says why (Asterisk 22: the citizen's trunk leg rang out, NOANSWER, yet OriginateResponse said
# only Failure): the event is waited for this long, then the Originate's reason is taken.
DIAL_STATUS_WAIT_S = 5.0


@dataclass
class _Call:
    fid: str
    number: str
    action_id: str
    started: float
    answered_at: float | None = None
    outcome: tuple[str, str] | None = None
    written: tuple[str, int, float | None, str] | None = None    # the state change, once in Redis (retries)
    refused: tuple[str, float] | None = None    # Originate failed: (its reason, when), the dial status awaited
    pbx: str = ""                               # the PBX it was originated on (several PBXs)


def free_line_budget(snapshot: dict[str, Any] | None) -> int | None:
    """How many follow-ups the lines allow now: the free lines above their
    callback reserve (queue/lines.yaml); None when the lines are not counted."""
    lines = (snapshot or {}).get("lines")
    if not lines or not lines.get("known") or lines.get("free") is None:
        return None
    return max(0, int(lines["free"]) - max(1, int(lines.get("callback_below_free", 1))))


class FollowupCaller(OutboundCaller):
    def __init__(self, *, store: FollowupStore, controller: AmiController, policy: Policy, tz: ZoneInfo,
                 queues: dict[str, str], log: Log, owner: str, context: str = "ivr-followup",
                 clock: Callable[[], float] = time.time, pbxs: Mapping[str, AmiController] | None = None) -> None:
        self.store = store
        self.active: dict[str, _Call] = {}         # action id -> call
        self.by_fid: dict[str, _Call] = {}
        self.last_gate = ""                        # why no follow-up was started in the last round ("" started)
        super().__init__(controller=controller, policy=policy, tz=tz, queues=queues, log=log, owner=owner,
                         context=context, clock=clock, pbxs=pbxs)

    async def tick(self, now: float | None = None) -> int:
        """One round; returns how many follow-up calls were started."""
        now = self.clock() if now is None else now
        self._settle_silent(now)
        if not in_calling_hours(now, self.tz, self.policy):
            self.last_gate = "outside calling hours"
            return 0
        room, why = self._room(now)
        if not room:
            self.last_gate = why
            return 0
        budget = self.policy.max_parallel - len(self.active)
        if all(r is not None for r in room.values()):
            budget = min(budget, sum(r for r in room.values() if r is not None))
        recovered, ids = await self.store.claim(now=now, lease_s=self.policy.citizen_ring_s + FOLLOWUP_CALL_S,
                                                owner=self.owner, count=max(0, budget))
        if recovered:
            self.log.warning("followups_recovered", count=recovered)
        self.last_gate = "" if ids else "nothing due" if budget > 0 else "no free line"
        for fid in ids:
            await self._start(fid, now, self._take(room))
        return len(ids)

    def _room(self, now: float) -> tuple[dict[str, int | None], str]:
        """PBX -> the follow-ups its free lines allow (None: lines not
        counted), for each PBX whose link is up and queues calm; else why none."""
        room: dict[str, int | None] = {}
        why = ""
        for pbx, c in self.controllers.items():
            snap = c.model.snapshot(now) if c.ready.is_set() else None
            if snap is not None:
                snap["ami_connected"] = True
            calm, why_not = is_calm(snap, self.policy, self.queues)
            if calm:
                room[pbx] = free_line_budget(dict(snap) if snap is not None else None)
            else:
                why = why or (f"{pbx}: {why_not}" if pbx else why_not)
        return room, why

    @staticmethod
    def _take(room: dict[str, int | None]) -> str:
        """The PBX with the most room (lines not counted: first), one taken from it."""
        def most(p: str) -> float:
            r = room[p]
            return float("inf") if r is None else float(r)
        pbx = max(room, key=most)
        left = room[pbx]
        if left is not None:
            room[pbx] = left - 1
        return pbx

    async def _start(self, fid: str, now: float, pbx: str = "") -> None:
        item = await self.store.item(fid) or {}
        number = item.get("number", "")
        attempt = int(item.get("attempts", 0)) + 1
        aid = f"fu-{fid}-{attempt}-{int(now * 1000) % 100000}"
        call = _Call(fid, number, aid, now, pbx=pbx)
        self.active[aid], self.by_fid[fid] = call, call
        await self.store.audit.append([{"kind": "followup_assigned", "at": now, "id": audit_id(fid),
                                        "batch": item.get("batch", ""), "number": mask_number(number),
                                        "attempt": attempt, "by": self.owner}])
        res = await self.controllers.get(pbx, self.controller).originate({
            "ActionID": aid, "Channel": f"Local/{number}@ivr-followup-out/n", "Context": self.context,
            "Exten": "s", "Priority": "1", "CallerID": f'"12345回访" <{self.policy.caller_id}>',
            "Timeout": str(int((self.policy.citizen_ring_s + 10) * 1000)),
            "Variable": f"IVR_FU_ID={fid},IVR_FU_NUMBER={number},IVR_FU_SEAT={item.get('source_seat', '')},"
                        f"IVR_FU_KIND={item.get('source_kind', '')}"})
        if not res.ok:
            self._outcome(call, "failed", res.message, self.clock())

    def _settle_silent(self, now: float) -> None:
        for call in list(self.active.values()):
            if call.outcome is not None:
                continue
            if call.refused is not None and now > call.refused[1] + DIAL_STATUS_WAIT_S:
                self._outcome(call, call.refused[0], "originate failed, no dial status", now)
                continue
            limit = (call.started + self.policy.citizen_ring_s + NO_OUTCOME_GRACE_S if call.answered_at is None
                     else call.answered_at + MAX_CONVERSATION_S)
            if now > limit:
                self._outcome(call, "failed", "no outcome from Asterisk", now)

    def _on_event(self, event: AmiEvent) -> None:
        name = event.get("Event")
        if name == "OriginateResponse":
            call = self.active.get(event.get("ActionID", ""))
            if call is None:
                return
            if event.get("Response") == "Success":
                call.answered_at = self.clock()      # the citizen answered: the flow runs; the end comes as a UserEvent
            else:       # the UserEvent with the trunk leg's DIALSTATUS follows when its dialplan ran
                reason = {"3": "no_answer", "5": "busy"}.get(event.get("Reason", ""), "failed")
                call.refused = (reason, self.clock())
        elif name == "UserEvent" and event.get("UserEvent") == "IvrFollowup":
            call = self.by_fid.get(event.get("Id", ""))
            if call is not None:
                status = event.get("DialStatus", "")
                self._outcome(call, DIAL_OUTCOMES.get(status, "failed") if status else "failed", status,
                              self.clock())

    def _outcome(self, call: _Call, outcome: str, detail: str, now: float) -> None:
        if call.outcome is not None:
            return
        call.outcome = (outcome, detail)
        self._own(self._write(call, now))

    async def _write(self, call: _Call, now: float) -> None:
        delays = iter(FINISH_RETRY_S)
        while True:
            try:
                await self._finish(call, now)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis failing over: the outcome must not be lost
                self.log.warning("followup_outcome_not_written", followup=call.fid, error=repr(exc))
                await asyncio.sleep(next(delays, FINISH_RETRY_S[-1]))

    async def _finish(self, call: _Call, now: float) -> None:
        assert call.outcome is not None
        outcome, detail = call.outcome
        if call.written is None:
            item = await self.store.item(call.fid) or {}
            attempts = int(item.get("attempts", 0)) + 1
            next_at, reason = None, ""
            if outcome == "reached":
                reason = "reached"
            else:
                next_at = next_attempt_at(attempts, now, False, self.tz, self.policy)
                reason = "" if next_at is not None else "unreached"
            what, attempts = await self.store.finish(call.fid, self.owner, outcome=outcome, now=now,
                                                     next_at=next_at, close_reason=reason)
            call.written = (what, attempts, next_at, reason)
        what, attempts, next_at, reason = call.written
        fid = audit_id(call.fid)
        entries: list[dict[str, Any]] = [{"kind": "followup_attempt", "at": now, "id": fid,
                                          "number": mask_number(call.number), "outcome": outcome, "detail": detail,
                                          "attempt": attempts, "result": what}]
        if what == "closed":
            entries.append({"kind": "followup_closed", "at": now, "id": fid, "number": mask_number(call.number),
                            "reason": reason, "attempts": attempts})
        elif what == "rescheduled":
            entries.append({"kind": "followup_scheduled", "at": now, "id": fid, "number": mask_number(call.number),
                            "next_at": next_at})
        await self.store.audit.append(entries)
        self.active.pop(call.action_id, None)
        if self.by_fid.get(call.fid) is call:
            del self.by_fid[call.fid]
        self.log.info("followup_attempt", followup=call.fid, number=call.number, outcome=outcome, result=what)

