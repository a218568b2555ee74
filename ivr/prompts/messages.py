"""Voice messages (the flow's ``record`` step) in the shared Redis, so that the
callback record and the console can play them from any host.

Asterisk writes a message as ``<IVR_RECORDINGS_DIR>/msg-<uniqueid>-<n>.wav``
on the PBX's own host; the callback record names it (``message``). The PBX's
sync role (``ivr prompts sync``, or the engine on that host) uploads each
finished file here: one hash per message, ``keys.voice_message(name)``, with
the audio and where it came from, kept ``MESSAGE_KEEP_S`` (a week by
default: the callback deadlines are hours to a day; at 16 kB a second of
audio, Redis is no archive. The PBX host keeps the file itself, and that is
what a site backs up). A message over ``MAX_MESSAGE_BYTES`` (more than the
record step's 300 s at 8 kHz 16-bit mono) is not uploaded and is reported."""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis.asyncio as aioredis

from ivr import names
from ivr.errors import InvalidInput
from ivr.prompts.store import raw_reply, sha256_of
from ivr.redisdb import keys

MAX_MESSAGE_BYTES = 6 * 1024 * 1024            # 300 s of 8 kHz 16-bit mono is 4.8 MB
MESSAGE_KEEP_S = 7 * 86400                     # the longest callback deadline is a day; a week for auditors


@dataclass(frozen=True, slots=True)
class VoiceMessage:
    name: str
    audio: bytes
    pbx: str
    sha256: str
    at: float           # when the PBX's file was last written (its end)


def check_message_name(name: str) -> str:
    if not names.MESSAGE.ok(name):
        raise InvalidInput(f"留言名无效 '{name[:80]}' — not a voice message name ({names.MESSAGE.what})")
    return name


class MessageStore:
    def __init__(self, redis: aioredis.Redis, keep_s: float = MESSAGE_KEEP_S) -> None:
        self.redis = redis
        self.keep_s = max(keep_s, 3600.0)

    async def put(self, name: str, audio: bytes, *, pbx: str, at: float) -> bool:
        """Store one finished message; False when the same audio is already there."""
        check_message_name(name)
        if len(audio) > MAX_MESSAGE_BYTES:
            raise InvalidInput(f"留言 {name} 为 {len(audio)} 字节，超过上限 {MAX_MESSAGE_BYTES} — voice message "
                               f"{name} is {len(audio)} bytes, over the limit of {MAX_MESSAGE_BYTES}")
        sha = sha256_of(audio)
        key = keys.voice_message(name)
        if await self.redis.hget(key, "sha256") == sha:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"audio": audio, "pbx": pbx, "sha256": sha, "bytes": str(len(audio)),
                                    "at": json.dumps(at)})
            pipe.expire(key, int(self.keep_s))
            await pipe.execute()
        return True

    async def uploaded_sha(self, name: str) -> str | None:
        v = await self.redis.hget(keys.voice_message(name), "sha256")
        return str(v) if v is not None else None

    async def get(self, name: str) -> VoiceMessage | None:
        check_message_name(name)
        key = keys.voice_message(name)
        raw = await raw_reply(self.redis, "HMGET", key, "audio", "pbx", "sha256", "at")
        audio, pbx, sha, at = raw
        if audio is None:
            return None
        return VoiceMessage(name, bytes(audio), bytes(pbx or b"").decode(), bytes(sha or b"").decode(),
                            float(json.loads(at)) if at else 0.0)
