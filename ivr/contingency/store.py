"""The contingency level in Redis: what is in force, who set it and why, what
the automatic rules propose, and which seat actions have been carried out.

Every change is one atomic step with its audit record (``ivr.audit.chain``): the
level key every engine process polls, the state, and the hash-chained entry.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis.asyncio as aioredis

from ivr.audit.chain import AuditLog, Entry, Record
from ivr.contingency.plan import check_level
from ivr.redisdb import keys


@dataclass
class LevelState:
    level: int = 0
    since: float = 0.0
    by: str = "system:default"
    reason: str = ""
    how: str = "manual"            # manual | auto | expiry | accepted
    expires_at: float | None = None
    seq: int = 0

    @property
    def set_automatically(self) -> bool:
        return self.how == "auto"


@dataclass
class Proposal:
    level: int
    reason: str
    at: float
    from_level: int


@dataclass
class Applied:
    level: int = 0
    at: float = 0.0
    failed: list[dict[str, Any]] = field(default_factory=list)   # SeatStep.as_dict() of actions still to retry


class ContingencyStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.audit = AuditLog(redis, keys.CONTINGENCY_AUDIT)

    async def state(self) -> LevelState:
        """Raises ``LevelInvalid`` if the stored level is not a whole number."""
        raw = await self.redis.get(keys.CONTINGENCY_STATE)
        st = LevelState(**json.loads(raw)) if raw else LevelState()
        check_level(st.level)
        return st

    async def set_level(self, level: int, *, by: str, reason: str, how: str = "manual",
                        expires_at: float | None = None, now: float | None = None) -> LevelState:
        check_level(level)          # the one place a level is written: never True, "2" or -1
        now = time.time() if now is None else now
        old = await self.state()
        new = LevelState(level, now, by, reason, how, expires_at, old.seq + 1)
        await self.audit.append(
            [{"kind": "level_set", "at": now, "by": by, "how": how, "reason": reason, "from": old.level,
              "to": level, "expires_at": expires_at}],
            also_set={keys.CONTINGENCY_STATE: json.dumps(asdict(new), ensure_ascii=False),
                      keys.CONTINGENCY_LEVEL: str(level),
                      keys.CONTINGENCY_PROPOSAL: ""})
        return new

    async def renew(self, expires_at: float | None, *, by: str, now: float | None = None) -> LevelState:
        now = time.time() if now is None else now
        st = await self.state()
        st.expires_at, st.seq = expires_at, st.seq + 1
        await self.audit.append([{"kind": "expiry_renewed", "at": now, "by": by, "level": st.level,
                                  "expires_at": expires_at}],
                                also_set={keys.CONTINGENCY_STATE: json.dumps(asdict(st), ensure_ascii=False)})
        return st

    async def proposal(self) -> Proposal | None:
        raw = await self.redis.get(keys.CONTINGENCY_PROPOSAL)
        if not raw:
            return None
        p = Proposal(**json.loads(raw))
        check_level(p.level)
        check_level(p.from_level)
        return p

    async def propose(self, p: Proposal) -> None:
        check_level(p.level)
        check_level(p.from_level)
        await self.audit.append([{"kind": "proposed", "at": p.at, "by": "system:auto", "from": p.from_level,
                                  "to": p.level, "reason": p.reason}],
                                also_set={keys.CONTINGENCY_PROPOSAL: json.dumps(asdict(p), ensure_ascii=False)})

    async def reject(self, *, by: str, reason: str, now: float | None = None) -> Proposal | None:
        p = await self.proposal()
        if p is None:
            return None
        now = time.time() if now is None else now
        await self.audit.append([{"kind": "proposal_rejected", "at": now, "by": by, "to": p.level,
                                  "reason": reason}], also_set={keys.CONTINGENCY_PROPOSAL: ""})
        return p

    async def applied(self) -> Applied:
        raw = await self.redis.get(keys.CONTINGENCY_APPLIED)
        return Applied(**json.loads(raw)) if raw else Applied()

    async def record_actions(self, applied: Applied, results: Sequence[Record], *, now: float) -> None:
        await self.audit.append(
            [{"kind": "seat_action", "at": now, "by": "system:ami", **r} for r in results]
            + [{"kind": "level_applied", "at": now, "by": "system:ami", "level": applied.level,
                "failed": len(applied.failed)}],
            also_set={keys.CONTINGENCY_APPLIED: json.dumps(asdict(applied), ensure_ascii=False)})

    async def history(self, count: int = 20) -> list[tuple[str, Entry]]:
        return await self.audit.entries(count=count, reverse=True)
