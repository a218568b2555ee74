"""Published flows in Redis: versions, the current pointer, and an audit trail
of who published or rolled back what, when.

A flow is validated before it reaches here (``ivr.project``); the store only
keeps versions immutable and the pointer moves atomically (Lua)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

import redis.asyncio as aioredis

from ivr import redis_keys as keys
from ivr.errors import FlowNotFound, PublishError

SCHEMA = 1

# KEYS: versions, current, seq, names, audit   ARGV: name, doc-json, sha256, by, at, note
_PUBLISH = """
local cur = redis.call('GET', KEYS[2])
if cur then
  local doc = redis.call('HGET', KEYS[1], cur)
  if doc and cjson.decode(doc)['sha256'] == ARGV[3] then return {0, tonumber(cur)} end
end
local v = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], v, ARGV[2])
redis.call('SET', KEYS[2], v)
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('XADD', KEYS[5], '*', 'action', 'publish', 'flow', ARGV[1], 'version', v,
           'from_version', cur or '', 'by', ARGV[4], 'at', ARGV[5], 'note', ARGV[6])
return {1, v}
"""

# KEYS: versions, current, audit   ARGV: name, version, by, at, note
_ROLLBACK = """
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then return -1 end
local cur = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('XADD', KEYS[3], '*', 'action', 'rollback', 'flow', ARGV[1], 'version', ARGV[2],
           'from_version', cur or '', 'by', ARGV[3], 'at', ARGV[4], 'note', ARGV[5])
return tonumber(ARGV[2])
"""


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


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class FlowStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._publish = redis.register_script(_PUBLISH)
        self._rollback = redis.register_script(_ROLLBACK)

    async def publish(self, name: str, source: str, *, by: str, note: str = "") -> PublishResult:
        sha = hashlib.sha256(source.encode("utf-8")).hexdigest()
        at = _now_iso()
        doc = json.dumps({"schema": SCHEMA, "name": name, "source": source, "sha256": sha,
                          "by": by, "at": at, "note": note}, ensure_ascii=False)
        changed, version = await self._publish(
            keys=[keys.flow_versions(name), keys.flow_current(name), keys.flow_seq(name),
                  keys.FLOW_NAMES, keys.FLOW_AUDIT],
            args=[name, doc, sha, by, at, note])
        return PublishResult(name, int(version), bool(changed))

    async def rollback(self, name: str, version: int | None, *, by: str, note: str = "") -> int:
        current = await self.current_version(name)
        if current is None:
            raise FlowNotFound(f"flow '{name}' has never been published")
        if version is None:
            older = [v for v in await self.versions(name) if v < current]
            if not older:
                raise PublishError(f"flow '{name}': no version before {current} to roll back to")
            version = max(older)
        if version == current:
            raise PublishError(f"flow '{name}': version {version} is already in force")
        res = await self._rollback(keys=[keys.flow_versions(name), keys.flow_current(name), keys.FLOW_AUDIT],
                                   args=[name, version, by, _now_iso(), note])
        if int(res) < 0:
            raise PublishError(f"flow '{name}' has no version {version}")
        return int(res)

    async def versions(self, name: str) -> list[int]:
        return sorted(int(v) for v in await self.redis.hkeys(keys.flow_versions(name)))

    async def current_version(self, name: str) -> int | None:
        v = await self.redis.get(keys.flow_current(name))
        return int(v) if v is not None else None

    async def get(self, name: str, version: int | None = None) -> FlowVersion:
        if version is None:
            version = await self.current_version(name)
            if version is None:
                raise FlowNotFound(f"flow '{name}' has never been published")
        raw = await self.redis.hget(keys.flow_versions(name), str(version))
        if raw is None:
            raise FlowNotFound(f"flow '{name}' has no version {version}")
        d = json.loads(raw)
        return FlowVersion(name, int(version), d["source"], d["sha256"], d["by"], d["at"], d.get("note", ""))

    async def names(self) -> list[str]:
        return sorted(await self.redis.smembers(keys.FLOW_NAMES))

    async def history(self, name: str) -> list[dict]:
        """Publish and rollback records for one flow, oldest first."""
        out = []
        for entry_id, fields in await self.redis.xrange(keys.FLOW_AUDIT):
            if fields.get("flow") == name:
                out.append({"id": entry_id, **fields})
        return out
