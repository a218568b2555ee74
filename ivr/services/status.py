"""What the wall, ``ivr status``, ``/healthz`` and ``/metrics`` read: the
live model the leader publishes (queues, seats, trunk lines), the level in
force, every engine process's published status and the leader's health."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ivr.admission.lines import LINK_PBX
from ivr.clock import Clock, WallClock
from ivr.clock import from_setting as clock_from_setting
from ivr.contingency.plan import level_or_minus_one
from ivr.redisdb import keys
from ivr.redisdb.live import read_live

if TYPE_CHECKING:
    import redis.asyncio as aioredis


async def live(redis: aioredis.Redis) -> dict[str, Any] | None:
    """The live model's snapshot (None: no leader with an AMI link has published one)."""
    return await read_live(redis)


async def level(redis: aioredis.Redis) -> int:
    """The level in force; -1 when the stored value is not a level (never ``int('True')``)."""
    return level_or_minus_one(await redis.get(keys.CONTINGENCY_LEVEL))


async def leader_health(redis: aioredis.Redis) -> dict[str, Any] | None:
    raw = await redis.get(keys.LEADER_HEALTH)
    return json.loads(raw) if raw else None


async def engine_clock(redis: aioredis.Redis) -> Clock:
    """The engines' clock, as they publish it (a drill's simulated one; the
    wall clock in production, or when no engine publishes): ``ivr status``
    measures ages on it, as the wall does."""
    for st in (await engines(redis)).values():
        if st.get("engine_responding") and st.get("clock"):
            return clock_from_setting(str(st["clock"]))
    return WallClock()


async def engines(redis: aioredis.Redis) -> dict[str, dict[str, Any]]:
    """Every engine process's published status, by token."""
    from ivr.runtime.status import engines as published
    return await published(redis)


NO_LIVE = ("无实时数据：没有进程持有 AMI 连接 — no live figures: no engine holds the AMI link (no leader, or "
           "IVR_AMI_URL unset)")


def lines(snap: dict[str, Any] | None) -> dict[str, Any]:
    """The trunk lines of the live snapshot (``ivr.admission.lines.LineFigures``);
    unknown, with the reason, when there is no snapshot or it has no lines
    (a writer older than lines). Unknown lines: no line-based admission."""
    got = (snap or {}).get("lines")
    if got:
        return dict(got)
    reason = NO_LIVE if snap is None else "实时数据不含线路 — the live figures carry no lines (an older engine)"
    return {"pbx": LINK_PBX, "known": False, "reason": reason, "warning": "", "in_use": None, "total": None,
            "limit": None, "free": None, "emergency_reserve": 0, "callback_below_free": 0, "in_flows": None,
            "waiting": None, "talking": None, "callbacks": None, "read_at": None}


def lines_health(snap: dict[str, Any] | None) -> dict[str, Any]:
    """What ``/healthz`` says of the lines: known or not, and why."""
    ln = lines(snap)
    return {"lines_known": bool(ln["known"]), "lines_reason": ln["reason"], "lines_warning": ln["warning"],
            "lines_in_use": ln["in_use"], "lines_total": ln["total"]}


async def lines_blocked(redis: aioredis.Redis, pbx: str = LINK_PBX) -> int:
    """Attempts the PBX's dialplan answered busy (lines full), recorded, ever."""
    raw = await redis.get(keys.lines_blocked(pbx))
    return int(raw) if raw else 0
