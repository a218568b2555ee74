"""`ivr demo`: the engine on embedded defaults (a real redis-server, the real
FastAGI server) answering a handful of simulated citizens over TCP, one of each
kind of call, printed as a table. The full peak-hour drill comes with `ivr drill`."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from ivr import logs
from ivr.calls.service import read_summary
from ivr.logs import mask_number
from ivr.redisdb import keys
from ivr.redisdb.replies import stream_entries
from ivr.redisdb.server import RedisHandle, connect
from ivr.rehearsal.sim.agi_peer import Caller, QueueOutcome, SimChannel, run_call
from ivr.runtime.engine import Engine
from ivr.settings import Settings

SCENARIOS = [
    ("普通来电，按2，坐席接听 / ordinary call answered", 0, Caller(digits=["2"])),
    ("紧急诉求，按1 / emergency key", 0, Caller(digits=["1"])),
    ("不按键，仍转人工 / no key pressed, still reaches a seat", 0, Caller(digits=["", ""])),
    ("排队超时，接受回拨 / queue timeout, callback accepted", 0,
     Caller(digits=["2", "1"], queue=QueueOutcome("timeout"))),
    ("排队超时，留言 / queue timeout, voice message", 0, Caller(digits=["2", "2"], queue=QueueOutcome("timeout"))),
    ("问候时挂机 / hung up during greeting", 0, Caller(hangup_on="welcome")),
    ("排队中放弃 / abandoned in queue", 0, Caller(digits=["2"], queue=QueueOutcome("abandon"))),
    ("高峰2级：先听政策播报 / peak level 2: policy announcement first", 2, Caller(digits=["2"])),
    ("高峰2级：听完政策后挂机 / level 2: satisfied by the announcement", 2, Caller(hangup_on="policy/current")),
    ("无空闲坐席 / no seats logged in", 0, Caller(digits=["2", "1"], queue=QueueOutcome("joinempty"))),
]


async def _demo(settings: Settings, calls: int) -> None:
    with RedisHandle(settings.redis_url, settings.data_dir) as url:
        redis = connect(url)
        try:
            await redis.delete(keys.CONTINGENCY_LEVEL)
            engine = Engine(replace(settings, agi_listen=replace(settings.agi_listen, port=0),
                                    http_listen=replace(settings.http_listen, port=0)), redis,
                            logs.get("ivr.rehearsal.demo"), redis_url=url)
            stop, ready = asyncio.Event(), asyncio.Event()
            task = asyncio.create_task(engine.run(stop, ready))
            await ready.wait()
            start_id = (stream_entries(await redis.xrevrange(keys.CALLS, count=1)) or [("0-0", {})])[0][0]
            print(f"\n12345 引擎已启动 / engine up: FastAGI 127.0.0.1:{engine.agi.port}, Redis "
                  f"{'embedded' if not settings.redis_url else settings.redis_url}\n")
            for i in range(calls):
                title, level, caller = SCENARIOS[i % len(SCENARIOS)]
                caller = replace(caller, number=f"1380013{i:04d}")
                await redis.set(keys.CONTINGENCY_LEVEL, level)
                await engine.refresh()
                res = await run_call("127.0.0.1", engine.agi.port, SimChannel(caller))
                heard = [line.split()[2].split("/", 1)[-1] for who, line in res.transcript
                         if who == "engine" and line.startswith(("STREAM FILE", "GET DATA"))]
                print(f"{i + 1:>2}. {title}\n    {mask_number(caller.number)}  heard: {', '.join(heard) or '-'}")
            await engine.summaries.flush()
            print("\n通话记录 / call summaries (Redis stream ivr:calls):")
            for _, fields in stream_entries(await redis.xrange(keys.CALLS, min=f"({start_id}")):
                s = read_summary(fields)
                print(f"  {mask_number(s['number'])}  outcome={s['outcome']:<15} queue={s['queue_status'] or '-':<10} "
                      f"person={'yes' if s['wanted_person'] == '1' else 'no ':<3} emergency={'yes' if s['emergency'] == '1' else 'no':<3} "
                      f"last_step={s['last_step']}")
            stop.set()
            await task
        finally:
            await redis.delete(keys.CONTINGENCY_LEVEL)
            await redis.aclose()


def main(args, settings: Settings) -> int:
    logs.configure("warning", "console")
    asyncio.run(_demo(settings, args.calls))
    return 0
