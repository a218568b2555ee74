"""Runs in the one process that holds the leader lock: stands an expired level
down, evaluates the automatic thresholds, and carries out the seat actions of
the level in force over AMI, retrying and recording what failed."""

from __future__ import annotations

import time
from collections.abc import Mapping

from ivr.ami.controller import ActionResult, AmiController
from ivr.ami.model import LiveModel
from ivr.contingency.plan import Plan, Seats
from ivr.contingency.rules import RuleState, evaluate
from ivr.contingency.seat_steps import SeatStep, seat_steps
from ivr.contingency.store import Applied, ContingencyStore, Proposal
from ivr.logs import Log

RETRY_FAILED_S = 30.0


def expiry_for(plan: Plan, level: int, now: float, hours: float | None = None) -> float | None:
    h = hours if hours is not None else plan.level(level).expire_after_h
    return now + h * 3600 if h else None


class ContingencySupervisor:
    def __init__(self, *, plan: Plan, seats: Seats, queues: Mapping[str, str], store: ContingencyStore,
                 controller: AmiController | None, model: LiveModel | None, log: Log) -> None:
        self.plan = plan
        self.seats = seats
        self.queues = queues                      # logical -> Asterisk name
        self.store = store
        self.controller = controller
        self.model = model
        self.log = log
        self.rules = RuleState()
        self._last_eval = 0.0
        self._last_failed_try = 0.0

    async def tick(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        st = await self.store.state()
        if st.expires_at is not None and now >= st.expires_at and st.level > 0:
            self.log.warning("contingency_expired", level=st.level, set_by=st.by)
            st = await self.store.set_level(0, by="system:expiry", how="expiry", now=now,
                                            reason=f"级别 {st.level}（{st.by} 设置）到期未续期 — level {st.level} set by "
                                                   f"{st.by} expired without renewal")
        if self._can_observe() and now - self._last_eval >= self.plan.evaluate_every_s:
            self._last_eval = now
            await self._evaluate(st.level, st.set_automatically, now)
            st = await self.store.state()
        if self.controller is not None and self.controller.ready.is_set():
            await self.reconcile(st.level, now)

    def _can_observe(self) -> bool:
        return self.model is not None and self.controller is not None and self.controller.ready.is_set()

    async def _evaluate(self, level: int, auto: bool, now: float) -> None:
        watched = [self.queues.get(q, q) for q in self.plan.queues]
        assert self.model is not None        # _can_observe()
        obs = self.model.observation(now, watched)
        d = evaluate(self.plan, level, auto, obs, now, self.rules)
        if d is None:
            return
        if self.plan.mode == "auto":
            self.log.warning("contingency_auto_change", from_level=level, to_level=d.target, reason=d.reason)
            await self.store.set_level(d.target, by="system:auto", how="auto", reason=d.reason, now=now,
                                       expires_at=expiry_for(self.plan, d.target, now))
            return
        current = await self.store.proposal()
        if current is None or current.level != d.target:
            self.log.warning("contingency_proposed", from_level=level, to_level=d.target, reason=d.reason)
            await self.store.propose(Proposal(d.target, d.reason, now, level))

    async def reconcile(self, level: int, now: float) -> Applied:
        applied = await self.store.applied()
        retry_failed = applied.failed and now - self._last_failed_try >= RETRY_FAILED_S
        if applied.level == level and not retry_failed:
            return applied
        todo = [SeatStep(**f) for f in applied.failed] if retry_failed else []
        todo += seat_steps(self.plan, self.seats, self.queues, applied.level, level)
        self._last_failed_try = now
        results, failed = [], []
        for step in todo:
            res = await self._run(step)
            results.append({**step.as_dict(), "result": res.as_dict()})
            if not res.ok:
                failed.append(step.as_dict())
                self.log.error("seat_action_failed", action=step.action, seat=step.interface, queue=step.queue,
                               message=res.message, attempts=res.attempts)
        new = Applied(level, now, failed)
        await self.store.record_actions(new, results, now=now)
        self.log.info("contingency_applied", level=level, actions=len(todo), failed=len(failed))
        return new

    async def _run(self, s: SeatStep) -> ActionResult:
        c = self.controller
        assert c is not None                  # reconcile() runs with a controller only
        if s.action == "add":
            assert s.queue is not None        # the plan refuses add/remove without a queue
            return await c.add_member(s.queue, s.interface, name=s.name, state_interface=s.state_interface,
                                      penalty=s.penalty)
        if s.action == "remove":
            assert s.queue is not None
            return await c.remove_member(s.queue, s.interface)
        return await c.pause(s.interface, s.action == "pause", queue=s.queue, reason=s.reason)
