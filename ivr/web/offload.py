"""Heavy console work in a child process, so it never holds the event loop that
answers calls.

A month's callback report reads every callback and every attempt of the
period (hundreds of thousands of Redis replies turned into Python objects):
measured in the engine's loop it held AGI commands up to seconds
(`ivr bench agi --console-load`, docs/benchmarks.md). Here it runs in
``python -m ivr.web.offload`` at a lower CPU priority (nice 10: calls win the
cores), with its own Redis connection; the parent only waits for one JSON
reply. The request (the Redis URL included) goes on stdin, never argv.
"""

from __future__ import annotations

import asyncio
import os
import sys
from urllib.parse import quote

import orjson

from ivr import logs

CHILD_NICE = 10
REPORT_TIMEOUT_S = 300.0

log = logs.get("web")


def redis_url_of(redis) -> str:
    """The URL a child process connects with, from a client's connection settings."""
    kw = redis.connection_pool.connection_kwargs
    auth = ""
    if kw.get("password"):
        auth = f"{quote(kw.get('username') or '', safe='')}:{quote(kw['password'], safe='')}@"
    db = kw.get("db", 0)
    if kw.get("path"):
        return f"unix://{auth}{kw['path']}?db={db}"
    scheme = "rediss" if kw.get("ssl") or "ssl_cert_reqs" in kw else "redis"
    return f"{scheme}://{auth}{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{db}"


class OffloadError(RuntimeError):
    pass


async def _run_child(request: dict, timeout_s: float) -> dict:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ivr.web.offload", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, preexec_fn=lambda: os.nice(CHILD_NICE))
    try:
        out, err = await asyncio.wait_for(proc.communicate(orjson.dumps(request)), timeout_s)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        log.error("offload_failed", kind=request.get("kind"), returncode=proc.returncode,
                  stderr=err.decode(errors="replace")[-2000:])
        raise OffloadError(f"{request.get('kind')} worker failed")
    return orjson.loads(out)


async def gather(redis, start: float, end: float) -> tuple[dict, list[dict]]:
    """``ivr.callback.report.gather`` in a child process: same arguments, same result."""
    res = await _run_child({"kind": "report", "url": redis_url_of(redis), "start": start, "end": end},
                           REPORT_TIMEOUT_S)
    return res["report"], res["rows"]


async def _child_main(request: dict) -> dict:
    from ivr.callback.report import gather as gather_in_process
    from ivr.redis_server import connect

    if request["kind"] != "report":
        raise ValueError(f"unknown work {request['kind']!r}")
    redis = connect(request["url"])
    try:
        report, rows = await gather_in_process(redis, request["start"], request["end"])
    finally:
        await redis.aclose()
    return {"report": report, "rows": rows}


def main() -> None:
    request = orjson.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(orjson.dumps(asyncio.run(_child_main(request)), option=orjson.OPT_NON_STR_KEYS))


if __name__ == "__main__":
    main()
