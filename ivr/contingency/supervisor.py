"""Runs in the one process that holds the leader lock: stands an expired level
down, evaluates the automatic thresholds, and carries out the seat actions of
the level in force over AMI, retrying and recording what failed.

Several PBXs (issue 20): the level is evaluated on the city's figures (the
PBXs whose link is up, summed: ``ivr.ami.city.city_observation``) and each
seat action is carried out on the seat's own PBX (``queue/pbxs.yaml``, else
the PBX whose live model has the seat). An action for a PBX whose link is
down fails at once and is retried with the other failed ones."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from ivr.ami.city import city_observation
from ivr.ami.controller import ActionResult, AmiController
from ivr.ami.model import LiveModel, Observation
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
                 controller: AmiController | None, model: LiveModel | None, log: Log,
                 pbxs: Mapping[str, AmiController] | None = None,
                 seat_pbx: Callable[[str], str | None] = lambda interface: None) -> None:
        """``pbxs``: PBX name -> its controller, with several PBXs (``controller``
        is one of them); ``seat_pbx``: the PBX of a seat in queue/pbxs.yaml."""
        self.plan = plan
        self.seats = seats
        self.queues = queues                      # logical -> Asterisk name
        self.store = store
        self.controller = controller
        self.model = model
        self.log = log
        self.pbxs: dict[str, AmiController] = dict(pbxs) if pbxs else {}
        self.seat_pbx = seat_pbx
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
        if self._linked():
            await self.reconcile(st.level, now)

    def _linked(self) -> bool:
        if self.pbxs:
            return any(c.ready.is_set() for c in self.pbxs.values())
        return self.controller is not None and self.controller.ready.is_set()

    def _can_observe(self) -> bool:
        return (self.model is not None or bool(self.pbxs)) and self._linked()

    def _observe(self, now: float, watched: list[str]) -> Observation:
        if self.pbxs:
            return city_observation([c.model.observation(now, watched) for c in self.pbxs.values()
                                     if c.ready.is_set()])
        assert self.model is not None        # _can_observe()
        return self.model.observation(now, watched)

    async def _evaluate(self, level: int, auto: bool, now: float) -> None:
        watched = [self.queues.get(q, q) for q in self.plan.queues]
        obs = self._observe(now, watched)
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
        c = self._controller_of(s.interface)
        if c is None:
            return ActionResult(False, f"坐席所在 PBX 未连接 — the seat's PBX is not linked ({s.interface})", 0)
        if self.pbxs and not c.ready.is_set():
            pbx = next(n for n, x in self.pbxs.items() if x is c)
            return ActionResult(False, f"PBX '{pbx}' 未连接 — PBX '{pbx}' is down; tried again later", 0)
        if s.action == "add":
            assert s.queue is not None        # the plan refuses add/remove without a queue
            return await c.add_member(s.queue, s.interface, name=s.name, state_interface=s.state_interface,
                                      penalty=s.penalty)
        if s.action == "remove":
            assert s.queue is not None
            return await c.remove_member(s.queue, s.interface)
        return await c.pause(s.interface, s.action == "pause", queue=s.queue, reason=s.reason)

    def _controller_of(self, interface: str) -> AmiController | None:
        """The controller of the seat's PBX: as queue/pbxs.yaml says, else the
        PBX whose live model has the seat, else the engine's own link."""
        if not self.pbxs:
            return self.controller
        named = self.seat_pbx(interface)
        if named is not None:
            return self.pbxs.get(named)
        return next((c for c in self.pbxs.values() if interface in c.model.seats), self.controller)
