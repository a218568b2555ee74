"""The prompt sync role as a process (``ivr prompts sync``) or as a task of the
engine on the PBX's host (IVR_SOUNDS_DIR): ``PromptSync`` passes, once or
every ``every_s``.

Redis restarting or failing over (a connection refused, a replica that is
read-only now, a timeout) ends a pass, not the loop: it is logged and tried
again after a short backoff, as the engine's refresh loop does; the client
(``redisdb/server.py: connect``) finds the new master through Sentinel on
its next command. A single pass (``PromptSync.once``, ``ivr prompts sync``
without ``--every``) lets the error out: the command ends on one line saying
what failed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ivr.aio import cancelling
from ivr.logs import Log
from ivr.prompts.messages import MESSAGE_KEEP_S
from ivr.prompts.sync import SETTLE_S, PromptSync

RETRY_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)


def build(redis: aioredis.Redis, *, pbx: str, sounds_dir: Path, messages_dir: Path | None, log: Log,
          keep_s: float = MESSAGE_KEEP_S) -> PromptSync:
    return PromptSync(redis, pbx=pbx, sounds_dir=sounds_dir, messages_dir=messages_dir,
                      log=log.bind(part="prompt_sync", pbx=pbx), settle_s=SETTLE_S, keep_s=keep_s)


async def loop(sync: PromptSync, *, every_s: float, stop: asyncio.Event | None = None) -> None:
    """A pass every ``every_s`` until ``stop`` is set or the task is cancelled."""
    stop = stop or asyncio.Event()
    backoff = iter(RETRY_BACKOFF_S)
    while not stop.is_set() and not cancelling():
        delay = every_s
        try:
            await sync.once()
            backoff = iter(RETRY_BACKOFF_S)
        except (RedisError, OSError) as exc:
            delay = min(every_s, next(backoff, RETRY_BACKOFF_S[-1]))
            sync.log.warning("prompt_sync_failed", error=repr(exc), retry_in_s=delay)
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except TimeoutError:
            pass
