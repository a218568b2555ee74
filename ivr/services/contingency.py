"""The contingency plan in force: switch the level, renew it, answer the
automatic proposal. ``plan`` is the plan of the configuration in force
(``ivr.services.config``), not the file on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ivr.contingency.plan import Plan, is_level
from ivr.contingency.store import Applied, ContingencyStore, LevelState, Proposal
from ivr.contingency.supervisor import expiry_for
from ivr.errors import ConfigError, Conflict, InvalidInput

if TYPE_CHECKING:
    import redis.asyncio as aioredis

MAX_EXPIRY_H = 24 * 14


async def plan(redis: aioredis.Redis, home: Path, tz: ZoneInfo, now: float) -> Plan:
    """The plan in force (the last good configuration), never the file on disk:
    a broken file there does not stop seat managers from working."""
    from ivr.services.config import configuration

    cfg = await configuration(redis, home, tz, now)
    if cfg.ops.plan is None:
        raise ConfigError("应急预案无法载入 — the contingency plan in force cannot be read: "
                          + "; ".join(str(p) for p in cfg.ops.problems if not p.warning))
    return cfg.ops.plan


@dataclass(frozen=True, slots=True)
class Overview:
    state: LevelState
    proposal: Proposal | None
    applied: Applied


async def overview(redis: aioredis.Redis) -> Overview:
    """The level in force, the open proposal and the seat actions applied."""
    store = ContingencyStore(redis)
    return Overview(await store.state(), await store.proposal(), await store.applied())


async def set_level(redis: aioredis.Redis, plan: Plan, level: object, *, by: str, reason: str, now: float,
                    expires_in_h: object = None, no_expiry: bool = False) -> LevelState:
    """Switch to ``level`` by hand, with a reason for the audit log; it stands
    down after ``expires_in_h`` (default: the level's ``expire_after_h``) unless
    renewed, or never with ``no_expiry``."""
    if not is_level(level) or level > plan.top:    # is_level refuses true
        raise InvalidInput(f"级别应为 0 到 {plan.top} 的整数（queue/contingency.yaml）— level must be a whole "
                           f"number from 0 to {plan.top} (queue/contingency.yaml)")
    if not reason.strip():
        raise InvalidInput("请写明原因：审计日志要记录为什么切换级别 — a reason is required: the audit log says "
                           "why the level changed")
    if expires_in_h is not None and (isinstance(expires_in_h, bool) or not isinstance(expires_in_h, (int, float))
                                     or not 0 < expires_in_h <= MAX_EXPIRY_H):
        raise InvalidInput(f"有效时长应为 0 到 {MAX_EXPIRY_H} 小时 — expires_in_h: hours from 0 to {MAX_EXPIRY_H}")
    expires_at = None if no_expiry else expiry_for(plan, level, now, expires_in_h)
    return await ContingencyStore(redis).set_level(level, by=by, reason=reason.strip(), how="manual",
                                                   expires_at=expires_at, now=now)


async def renew(redis: aioredis.Redis, plan: Plan, hours: float | None, *, by: str, now: float) -> LevelState:
    """Push the expiry of the level in force (default: its ``expire_after_h``)."""
    store = ContingencyStore(redis)
    st = await store.state()
    return await store.renew(expiry_for(plan, st.level, now, hours), by=by)


NO_PROPOSAL = "当前没有自动建议 — there is no proposal"


async def accept_proposal(redis: aioredis.Redis, plan: Plan, *, by: str, now: float) -> tuple[Proposal, LevelState]:
    """The automatic proposal's level put in force (with the level's expiry)."""
    store = ContingencyStore(redis)
    p = await store.proposal()
    if p is None:
        raise Conflict(NO_PROPOSAL)
    st = await store.set_level(p.level, by=by, how="accepted", reason=f"接受自动建议 accepted proposal: {p.reason}",
                               expires_at=expiry_for(plan, p.level, now), now=now)
    return p, st


async def reject_proposal(redis: aioredis.Redis, *, by: str, reason: str = "") -> Proposal:
    """The automatic proposal dropped (atomically: one answer wins)."""
    p = await ContingencyStore(redis).reject(by=by, reason=reason)
    if p is None:
        raise Conflict(NO_PROPOSAL)
    return p


async def history(redis: aioredis.Redis, count: int) -> list[dict[str, Any]]:
    """Level changes, proposals and seat actions, newest first."""
    return [e for _, e in await ContingencyStore(redis).history(count)]
