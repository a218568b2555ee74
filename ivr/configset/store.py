"""Every configuration file's versions in Redis, and the set in force.

Each change is an immutable version (its text, who, when, a note, how it came:
a console save, a publish of the files on disk, a rollback, what an engine
found on disk at start), recorded with its entry in the chained audit log
``keys.CONFIG_AUDIT`` in one atomic step (``ivr.audit.chain``). The set in
force, ``keys.CONFIG_IN_FORCE`` (file -> version), is the last good
configuration: a change is written only after the whole set, with it, has been
checked (``ivr.services.config``). ``keys.CONFIG_GENERATION`` moves with every
change, so a change computed from a set that another writer has changed since
is refused (``Conflict``) instead of mixing two sets never checked together.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ivr.audit.chain import AuditLog
from ivr.errors import Conflict, NotFound, StaleState
from ivr.redisdb import keys
from ivr.redisdb.replies import text_or_none

if TYPE_CHECKING:
    import redis.asyncio as aioredis

SCHEMA = 1
HOWS = ("save", "publish", "rollback", "start", "reload")


@dataclass(frozen=True, slots=True)
class FileVersion:
    path: str
    version: int
    text: str | None        # None: the file was removed in this version
    sha256: str
    by: str
    at: str                 # ISO 8601, UTC
    note: str
    how: str


@dataclass(frozen=True, slots=True)
class InForce:
    generation: int
    versions: dict[str, int]        # file -> version in force
    texts: dict[str, str]           # file -> its text (removed files absent)

    @property
    def empty(self) -> bool:
        return not self.versions


def sha_of(text: str | None) -> str:
    return "" if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def _version_of(path: str, version: int, raw: str | bytes) -> FileVersion:
    d = json.loads(raw)
    return FileVersion(path, version, d.get("text"), d.get("sha256", ""), d.get("by", ""), d.get("at", ""),
                       d.get("note", ""), d.get("how", ""))


class ConfigStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.audit = AuditLog(redis, keys.CONFIG_AUDIT)

    async def generation(self) -> int:
        return int(text_or_none(await self.redis.get(keys.CONFIG_GENERATION)) or 0)

    async def in_force(self) -> InForce:
        """The last good set: every file's version in force and its text."""
        for _ in range(20):
            gen = await self.generation()
            raw = await self.redis.hgetall(keys.CONFIG_IN_FORCE)
            versions = {k.decode() if isinstance(k, bytes) else k: int(v) for k, v in raw.items()}
            texts: dict[str, str] = {}
            if versions:
                pipe = self.redis.pipeline(transaction=False)
                for path, v in versions.items():
                    pipe.hget(keys.config_versions(path), str(v))
                for (path, v), doc in zip(versions.items(), await pipe.execute(), strict=True):
                    if doc is not None:
                        fv = _version_of(path, v, doc)
                        if fv.text is not None:
                            texts[path] = fv.text
            if await self.generation() == gen:      # no change landed while we read
                return InForce(gen, {p: v for p, v in versions.items() if p in texts}, texts)
        raise Conflict("配置正在频繁变更，请重试 — the configuration is changing too often to be read; try again")

    async def record(self, changes: Mapping[str, str | None], *, by: str, how: str, note: str = "",
                     expect_generation: int | None = None, summaries: Mapping[str, dict[str, Any]] | None = None,
                     now: float) -> dict[str, int]:
        """Each changed file as a new version in force (a file whose text is the
        one in force already is left as it is): file -> new version. With
        ``expect_generation``, ``Conflict`` if the set changed since it was read."""
        assert how in HOWS, how
        at = dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="seconds")
        for _ in range(50):
            gen = await self.generation()
            if expect_generation is not None and gen != expect_generation:
                raise Conflict("配置已被他人修改，请重新载入后再改 — the configuration changed meanwhile: reload "
                               "and make the change again")
            current = await self.in_force()
            if current.generation != gen:
                continue
            records, ops, new = [], [], {}
            for path, text in sorted(changes.items()):
                if sha_of(text) == sha_of(current.texts.get(path)):
                    continue
                if text is None and path not in current.versions:
                    continue
                version = max(await self._version_numbers(path), default=0) + 1
                sha = sha_of(text)
                doc = json.dumps({"schema": SCHEMA, "file": path, "version": version, "text": text, "sha256": sha,
                                  "by": by, "at": at, "note": note, "how": how}, ensure_ascii=False)
                records.append({"action": how, "file": path, "version": version,
                                "from_version": current.versions.get(path), "sha256": sha, "removed": text is None,
                                "by": by, "at": at, "note": note, **(summaries or {}).get(path, {})})
                ops += [("HSET", keys.config_versions(path), str(version), doc),
                        ("HSET", keys.CONFIG_IN_FORCE, path, str(version))]
                new[path] = version
            if not records:
                return {}
            try:
                await self.audit.append(records, expect={keys.CONFIG_GENERATION: str(gen) if gen else ""},
                                        also_set={keys.CONFIG_GENERATION: str(gen + 1)}, ops=ops)
            except StaleState:
                if expect_generation is not None:
                    raise Conflict("配置已被他人修改，请重新载入后再改 — the configuration changed meanwhile: "
                                   "reload and make the change again") from None
                continue
            return new
        raise Conflict("配置变更过于频繁，请重试 — too many configuration changes at once; try again")

    async def _version_numbers(self, path: str) -> list[int]:
        return sorted(int(v) for v in await self.redis.hkeys(keys.config_versions(path)))

    async def versions(self, path: str) -> list[FileVersion]:
        """Every version of one file, oldest first."""
        raw = await self.redis.hgetall(keys.config_versions(path))
        out = [_version_of(path, int(v), doc) for v, doc in raw.items()]
        return sorted(out, key=lambda fv: fv.version)

    async def get(self, path: str, version: int) -> FileVersion:
        raw = await self.redis.hget(keys.config_versions(path), str(version))
        if raw is None:
            raise NotFound(f"{path} 没有版本 {version} — {path} has no version {version}")
        return _version_of(path, version, raw)

    async def lock(self, token: str, ttl_ms: int = 15_000) -> bool:
        return bool(await self.redis.set(keys.CONFIG_LOCK, token, nx=True, px=ttl_ms))

    async def unlock(self, token: str) -> None:
        # only our own lock: compare and delete in one step
        await self.redis.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) "
                              "end return 0", 1, keys.CONFIG_LOCK, token)
