"""A load-generator process for `ivr bench agi`: simulated Asterisk connections
running the main flow. Prints one JSON line of results.

mode cpu:  N calls, C at a time, each answered at once; per-command latency is
           the time from our answer to the engine's next command.
mode hold: N calls that stay inside EXEC Queue until a line arrives on stdin.
mode paced: N calls started at a steady R calls/s whatever the engine's answers
           (an open load, as callers arrive): latency without self-made queueing."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from ivr.rehearsal.sim.agi_peer import Caller, QueueOutcome, SimChannel


async def one_call(port: int, sim: SimChannel, latencies: list[float] | None) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write("".join(sim.env()).encode())
        sent_at = None
        while True:
            raw = await reader.readline()
            if not raw:
                return
            if latencies is not None and sent_at is not None:
                latencies.append(time.perf_counter() - sent_at)
            out = await sim.respond(raw.decode().rstrip("\n"))
            writer.write("".join(out).encode())
            sent_at = time.perf_counter()
    finally:
        writer.close()


async def cpu(port: int, calls: int, concurrency: int) -> dict:
    latencies: list[float] = []
    sem = asyncio.Semaphore(concurrency)
    failures = 0

    async def run(i: int) -> None:
        nonlocal failures
        async with sem:
            try:
                await one_call(port, SimChannel(Caller(number=f"139{i:08d}", digits=["2"])), latencies)
            except OSError:
                failures += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(run(i) for i in range(calls)))
    return {"calls": calls, "failures": failures, "wall_s": time.perf_counter() - t0, "latencies": latencies}


async def paced(port: int, calls: int, rate: float) -> dict:
    latencies: list[float] = []
    failures = 0

    async def run(i: int) -> None:
        nonlocal failures
        try:
            await one_call(port, SimChannel(Caller(number=f"136{i:08d}", digits=["2"])), latencies)
        except OSError:
            failures += 1

    t0 = time.perf_counter()
    tasks = []
    for i in range(calls):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(run(i)))
    await asyncio.gather(*tasks)
    return {"calls": calls, "failures": failures, "wall_s": time.perf_counter() - t0, "latencies": latencies}


async def hold(port: int, calls: int, offset: int) -> dict:
    release = asyncio.Event()
    entered = 0
    done = 0

    async def wait_in_queue():
        nonlocal entered
        entered += 1
        if entered == calls:
            print(json.dumps({"held": entered}), flush=True)
        await release.wait()

    async def run(i: int) -> None:
        nonlocal done
        sim = SimChannel(Caller(number=f"137{offset + i:08d}", digits=["2"],
                                queue=QueueOutcome("answered", wait=wait_in_queue)))
        await one_call(port, sim, None)
        done += 1

    tasks = []
    for i in range(calls):
        tasks.append(asyncio.create_task(run(i)))
        if i % 200 == 199:
            await asyncio.sleep(0.05)  # do not flood the listen backlog
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    return {"held": entered, "done": done, "errors": errors[:3], "error_count": len(errors)}


def main() -> None:
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    mode, port, calls, extra = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    if mode == "paced":
        res = asyncio.run(paced(port, calls, float(sys.argv[5])))
    else:
        res = asyncio.run(cpu(port, calls, extra) if mode == "cpu" else hold(port, calls, extra))
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
