"""Prompts as versions in the shared Redis, like flows, and what each PBX holds.

- A prompt's audio is stored once under its SHA-256 (``keys.prompt_blob``),
  at most ``MAX_BLOB_BYTES``: the converter's longest result (10 minutes of
  8 kHz 16-bit mono) fits with room to spare. Writing the same audio again
  changes nothing.
- Each prompt name has numbered versions (``keys.prompt_versions``) and the
  version in force (``keys.PROMPTS_CURRENT``: name -> sha256), moved in one
  Lua step, so two uploads of one name at once get two versions, never one
  number twice.
- Each PBX's sync role reports the hashes its sounds folder holds
  (``keys.pbx_prompts_held``) and when it last synced
  (``keys.PROMPT_SYNC_PBXS``). A PBX is *known* once it has reported; a
  flow may be published only while every known PBX holds every prompt it
  names at the version in force (``held_names``).

Blobs are read with redis-py's ``NEVER_DECODE`` option: the engine's client
decodes replies as text, and audio is not text."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.client import NEVER_DECODE

from ivr import names
from ivr.errors import InvalidInput
from ivr.redisdb import keys
from ivr.redisdb.replies import text_or_none

SCHEMA = 1
MAX_BLOB_BYTES = 12 * 1024 * 1024      # 10 min of 8 kHz 16-bit mono is 9.6 MB

# KEYS: current, seq, versions   ARGV: name, sha256, doc (JSON, "version" filled in here)
# -> {version, changed}: a new version unless the one in force already has this audio
_NEW_VERSION = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur == ARGV[2] then
  return {tonumber(redis.call('HGET', KEYS[2], ARGV[1])), 0}
end
local v = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
local doc = cjson.decode(ARGV[3])
doc['version'] = v
redis.call('HSET', KEYS[3], tostring(v), cjson.encode(doc))
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {v, 1}
"""


@dataclass(frozen=True, slots=True)
class PromptVersion:
    name: str
    version: int
    sha256: str
    changed: bool           # False: this audio was already the version in force


@dataclass(frozen=True, slots=True)
class PbxState:
    pbx: str
    at: float               # when its last sync ended
    host: str
    held: frozenset[str]    # sha256 of the prompt versions its sounds folder holds
    missing: tuple[str, ...]   # prompt names it could not hold at that sync
    errors: tuple[str, ...]


async def raw_reply(redis: aioredis.Redis, *command: str) -> Any:
    """A command's reply as bytes, on a client that decodes replies as text."""
    return await redis.execute_command(*command, **{NEVER_DECODE: True})  # type: ignore[no-untyped-call]  # unannotated in redis-py


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_pbx(pbx: str) -> str:
    if not names.PBX.ok(pbx):
        raise InvalidInput(f"交换机名称无效 '{pbx}'（{names.PBX.what}） — not a PBX name: '{pbx}' ({names.PBX.what})")
    return pbx


class PromptStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._new_version = redis.register_script(_NEW_VERSION)

    async def put(self, name: str, data: bytes, *, by: str, source: str = "", at: float) -> PromptVersion:
        """``data`` (a WAV file) as the version of ``name`` in force."""
        if not names.PROMPT.ok(name):
            raise InvalidInput(f"录音名无效 '{name}' — not a prompt name: '{name}' ({names.PROMPT.what})")
        if len(data) > MAX_BLOB_BYTES:
            raise InvalidInput(f"录音 '{name}' 为 {len(data)} 字节，超过共享存储上限 {MAX_BLOB_BYTES} 字节 — prompt "
                               f"'{name}' is {len(data)} bytes, over the shared store's limit of {MAX_BLOB_BYTES}")
        sha = sha256_of(data)
        # the blob first: a version never names audio that is not there
        await self.redis.set(keys.prompt_blob(sha), data, nx=True)
        doc = json.dumps({"schema": SCHEMA, "name": name, "sha256": sha, "bytes": len(data), "by": by,
                          "at": dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds"),
                          "source": source}, ensure_ascii=False)
        v, changed = await self._new_version(keys=[keys.PROMPTS_CURRENT, keys.PROMPTS_SEQ, keys.prompt_versions(name)],
                                             args=[name, sha, doc])
        return PromptVersion(name, int(v), sha, bool(changed))

    async def current(self) -> dict[str, str]:
        """Every prompt in force: name -> sha256."""
        return {str(k): str(v) for k, v in (await self.redis.hgetall(keys.PROMPTS_CURRENT)).items()}

    async def blob(self, sha256: str) -> bytes | None:
        data = await raw_reply(self.redis, "GET", keys.prompt_blob(sha256))
        return bytes(data) if data is not None else None

    async def versions(self, name: str) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(keys.prompt_versions(name))
        return sorted((json.loads(v) for v in raw.values()), key=lambda d: int(d["version"]))

    # -- what each PBX holds -------------------------------------------------------------

    async def report(self, pbx: str, held: Iterable[str], *, at: float, host: str, missing: Iterable[str] = (),
                     errors: Iterable[str] = (), messages: int = 0) -> None:
        """One PBX's sounds folder after a sync: replaces what it held before, in one transaction."""
        check_pbx(pbx)
        hashes = sorted(set(held))
        state = json.dumps({"at": at, "host": host, "prompts": len(hashes), "missing": sorted(missing),
                            "errors": list(errors)[:20], "messages": messages}, ensure_ascii=False)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.pbx_prompts_held(pbx))
            if hashes:
                pipe.sadd(keys.pbx_prompts_held(pbx), *hashes)
            pipe.hset(keys.PROMPT_SYNC_PBXS, pbx, state)
            await pipe.execute()

    async def pbxs(self) -> list[PbxState]:
        """Every known PBX (one that has synced at least once), by name."""
        states = {str(k): json.loads(v) for k, v in (await self.redis.hgetall(keys.PROMPT_SYNC_PBXS)).items()}
        out = []
        for pbx in sorted(states):
            s = states[pbx]
            held = frozenset(str(h) for h in await self.redis.smembers(keys.pbx_prompts_held(pbx)))
            out.append(PbxState(pbx, float(s["at"]), s.get("host", ""), held, tuple(s.get("missing", ())),
                                tuple(s.get("errors", ()))))
        return out

    async def forget(self, pbx: str) -> bool:
        """A PBX taken out of service: it no longer holds up publishing."""
        check_pbx(pbx)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.PROMPT_SYNC_PBXS, pbx)
            pipe.delete(keys.pbx_prompts_held(pbx))
            removed, _ = await pipe.execute()
        return bool(removed)

    async def held_names(self) -> dict[str, frozenset[str]]:
        """Every known PBX -> the prompt names it holds at the version in force."""
        current = await self.current()
        return {s.pbx: frozenset(n for n, sha in current.items() if sha in s.held) for s in await self.pbxs()}

    async def version_of(self, name: str) -> str | None:
        return text_or_none(await self.redis.hget(keys.PROMPTS_CURRENT, name))
