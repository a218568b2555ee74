"""Seat managers' actions on the queues themselves: move a waiting caller up
in place (``ivr queue promote``: AMI ``QueueChangePriorityCaller``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ivr import logs
from ivr.ami.controller import AmiController
from ivr.ami.model import LiveModel
from ivr.errors import ConfigError, Conflict, InvalidInput, NotFound
from ivr.redisdb.live import read_live

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ivr.settings import AmiTarget

READY_S = 10.0


@dataclass(frozen=True, slots=True)
class Promoted:
    uniqueid: str
    number: str
    queue: str
    priority: int
    message: str


async def promote(redis: aioredis.Redis, ami: AmiTarget | None, caller: str, priority: int) -> Promoted:
    """The waiting caller whose unique id is (or ends with) ``caller`` moved to
    ``priority`` in its queue, over an AMI link of its own."""
    if ami is None:
        raise ConfigError("未设置 IVR_AMI_URL：调整排队顺序需要 AMI 连接 — IVR_AMI_URL is not set: promoting a caller "
                          "needs the AMI link")
    snap = await read_live(redis)
    if snap is None:
        raise NotFound("没有实时数据：有连着 AMI 的引擎在运行吗？ — no live figures: is an engine with an AMI link "
                       "running?")
    hits = [(q, c) for q, qs in snap["queues"].items() for c in qs["callers"]
            if c["uniqueid"] == caller or c["uniqueid"].endswith(caller)]
    if len(hits) != 1:
        raise InvalidInput(f"{len(hits)} 位排队来电者匹配 '{caller}'，请给出完整的 uniqueid — {len(hits)} waiting "
                           f"callers match '{caller}': give the full unique id (ivr status lists them)")
    queue, found = hits[0]
    ctl = AmiController(host=ami.host, port=ami.port, username=ami.username, secret=ami.secret,
                        model=LiveModel(), redis=None, log=logs.get("ivr.services.queues"))
    await ctl.start()
    try:
        await asyncio.wait_for(ctl.ready.wait(), READY_S)
        channel = next((w.channel for w in ctl.model.waiting.values() if w.uniqueid == found["uniqueid"]), None)
        if channel is None:
            raise NotFound("来电者已离开队列 — the caller has left the queue")
        res = await ctl.change_priority(queue, channel, priority, found["uniqueid"])
    finally:
        await ctl.stop()
    if not res.ok:
        raise Conflict(f"Asterisk 拒绝 — Asterisk refused: {res.message}")
    return Promoted(found["uniqueid"], found["number"], queue, priority, res.message)
