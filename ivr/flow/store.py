"""Published flows in Redis: versions, the current pointer, and an audit trail
of who published or rolled back what, when.

A flow is validated before it reaches here (``ivr.project``); the store only
keeps versions immutable. Every publish and rollback is one atomic step with
its entry in the chained, keyed audit log ``keys.FLOW_AUDIT`` (``ivr.audit.chain``):
the change is computed from the state read, and written only if that state is
still there (``expect``), else read again. Records from before the chained log
(the plain stream ``keys.FLOW_AUDIT_LEGACY``) still show in ``history``."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

import redis.asyncio as aioredis

from ivr.audit.chain import AuditLog
from ivr.errors import FlowNotFound, PublishError, StaleState
from ivr.redisdb import keys
from ivr.redisdb.replies import stream_entries, text_or_none, text_set

SCHEMA = 1


@dataclass(frozen=True, slots=True)
class FlowVersion:
    name: str
    version: int
    source: str
    sha256: str
    by: str
    at: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class PublishResult:
    name: str
    version: int
    changed: bool


def _never_published(name: str) -> FlowNotFound:
    return FlowNotFound(f"流程 '{name}' 从未发布 — flow '{name}' has never been published")


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class FlowStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.audit = AuditLog(redis, keys.FLOW_AUDIT)

    async def publish(self, name: str, source: str, *, by: str, note: str = "") -> PublishResult:
        sha = hashlib.sha256(source.encode("utf-8")).hexdigest()
        at = _now_iso()
        doc = json.dumps({"schema": SCHEMA, "name": name, "source": source, "sha256": sha,
                          "by": by, "at": at, "note": note}, ensure_ascii=False)
        current, seq = keys.flow_current(name), keys.flow_seq(name)
        for _ in range(50):
            cur, last = (text_or_none(v) for v in await self.redis.mget(current, seq))
            if cur:
                raw = await self.redis.hget(keys.flow_versions(name), cur)
                if raw and json.loads(raw)["sha256"] == sha:
                    return PublishResult(name, int(cur), False)
            v = int(last or 0) + 1
            record = {"action": "publish", "flow": name, "version": v, "from_version": int(cur) if cur else None,
                      "sha256": sha, "by": by, "at": at, "note": note}
            try:
                await self.audit.append([record], expect={current: cur or "", seq: last or ""},
                                        also_set={current: str(v), seq: str(v)},
                                        ops=[("HSET", keys.flow_versions(name), str(v), doc),
                                             ("SADD", keys.FLOW_NAMES, name)])
            except StaleState:
                continue          # someone published or rolled back meanwhile
            return PublishResult(name, v, True)
        raise PublishError(f"flow '{name}': too many publishes at once; try again")

    async def rollback_target(self, name: str, version: int | None = None) -> tuple[int | None, int]:
        """(the version in force, the one a rollback puts back): ``version`` if
        given, else the newest one before the version in force. The one place
        that chooses (the CLI and the console ask here, through
        ``ivr.services.flows``)."""
        current = await self.current_version(name)
        if version is not None:
            return current, version           # None: never published (``rollback`` refuses that)
        if current is None:
            raise _never_published(name)
        older = [v for v in await self.versions(name) if v < current]
        if not older:
            raise PublishError(f"版本 {current} 之前没有版本 — flow '{name}': no version before {current} "
                               "to roll back to")
        return current, max(older)

    async def rollback(self, name: str, version: int | None, *, by: str, note: str = "") -> int:
        for _ in range(50):
            current, target = await self.rollback_target(name, version)
            if current is None:
                raise _never_published(name)
            if target == current:
                raise PublishError(f"flow '{name}': version {target} is already in force")
            if not await self.redis.hexists(keys.flow_versions(name), str(target)):
                raise PublishError(f"flow '{name}' has no version {target}")
            record = {"action": "rollback", "flow": name, "version": target, "from_version": current,
                      "by": by, "at": _now_iso(), "note": note}
            try:
                await self.audit.append([record], expect={keys.flow_current(name): str(current)},
                                        also_set={keys.flow_current(name): str(target)})
            except StaleState:
                continue
            return target
        raise PublishError(f"flow '{name}': too many changes at once; try again")

    async def versions(self, name: str) -> list[int]:
        return sorted(int(v) for v in await self.redis.hkeys(keys.flow_versions(name)))

    async def current_version(self, name: str) -> int | None:
        v = await self.redis.get(keys.flow_current(name))
        return int(v) if v is not None else None

    async def get(self, name: str, version: int | None = None) -> FlowVersion:
        if version is None:
            version = await self.current_version(name)
            if version is None:
                raise _never_published(name)
        raw = await self.redis.hget(keys.flow_versions(name), str(version))
        if raw is None:
            raise FlowNotFound(f"flow '{name}' has no version {version}")
        d = json.loads(raw)
        return FlowVersion(name, int(version), d["source"], d["sha256"], d["by"], d["at"], d.get("note", ""))

    async def names(self) -> list[str]:
        return sorted(text_set(await self.redis.smembers(keys.FLOW_NAMES)))

    async def history(self, name: str) -> list[dict[str, str]]:
        """Publish and rollback records for one flow, oldest first (values as
        text, as they were shown before the chained log)."""
        out: list[dict[str, str]] = []
        for entry_id, fields in stream_entries(await self.redis.xrange(keys.FLOW_AUDIT_LEGACY)):
            if fields.get("flow") == name:
                out.append({"id": entry_id, **fields})
        for entry_id, rec in await self.audit.entries():
            if rec.get("flow") == name:
                out.append({"id": entry_id, **{k: "" if v is None else str(v) for k, v in rec.items()}})
        return out
