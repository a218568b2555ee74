"""Heavy console work in a child process, so it never holds the event loop that
answers calls.

A month's callback report reads every callback and every attempt of the
period (hundreds of thousands of Redis replies turned into Python objects):
measured in the engine's loop it held AGI commands up to seconds
(`ivr bench agi --console-load`, docs/benchmarks.md). Here it runs in
``python -m ivr.web.offload`` at the lowest CPU priority (SCHED_IDLE: it runs
only on CPU time the calls leave), with its own Redis connection; the parent only waits for one JSON
reply. The request (the Redis URL included) goes on stdin, never argv.
"""

from __future__ import annotations

import asyncio
import os
import sys
from urllib.parse import quote

import orjson

from ivr import logs
from ivr.errors import OffloadError
from ivr.prompts.audio import low_priority

REPORT_TIMEOUT_S = 300.0

log = logs.get("web")


def redis_url_of(redis) -> str:
    """The URL a child process connects with, from a client's connection settings
    (a Sentinel client: the engine's own IVR_REDIS_URL, which names the sentinels)."""
    if getattr(redis.connection_pool, "service_name", None):
        return os.environ.get("IVR_REDIS_URL", "")
    kw = redis.connection_pool.connection_kwargs
    auth = ""
    if kw.get("password"):
        auth = f"{quote(kw.get('username') or '', safe='')}:{quote(kw['password'], safe='')}@"
    db = kw.get("db", 0)
    if kw.get("path"):
        return f"unix://{auth}{kw['path']}?db={db}"
    scheme = "rediss" if kw.get("ssl") or "ssl_cert_reqs" in kw else "redis"
    return f"{scheme}://{auth}{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{db}"


async def _run_child(request: dict, timeout_s: float) -> bytes:
    """The child's stdout: the finished response body, passed on without parsing
    (parsing 30,000 rows back took the loop 130 ms)."""
    # chrt/nice as a command, not a preexec_fn: without one the child is spawned with vfork, cheap
    # for a large engine
    proc = await asyncio.create_subprocess_exec(
        *low_priority(), sys.executable, "-m", "ivr.web.offload",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
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
    return out


async def view(kind: str, redis, start: float, end: float, **params) -> bytes:
    """An auditors' view of [start, end) built in the child (``web/audit_views.py``):
    ``report`` and ``callbacks`` as JSON, ``csv`` as UTF-8 CSV, all numbers masked."""
    return await _run_child({"kind": kind, "url": redis_url_of(redis), "start": start, "end": end, **params},
                            REPORT_TIMEOUT_S)


async def verify(redis) -> dict:
    """Every hash-chained audit log verified, as GET /api/audit/verify answers."""
    return orjson.loads(await _run_child({"kind": "verify", "url": redis_url_of(redis)}, REPORT_TIMEOUT_S))


async def _child_main(request: dict) -> bytes:
    from ivr.redisdb.server import connect

    redis = connect(request["url"])
    try:
        return await _work(redis, request)
    finally:
        await redis.aclose()


async def _work(redis, request: dict) -> bytes:
    from ivr.services.callbacks import report

    if request["kind"] == "verify":
        from ivr.services.audit import verify

        results, _ = await verify(redis)         # the file's own problems show on the checkpoint view
        return orjson.dumps({name: {"ok": res.ok, "entries": res.entries, "problem": res.problem,
                                    "entry_id": res.entry_id} for name, res in results.items()})
    if request["kind"] in ("report", "callbacks", "csv"):
        from zoneinfo import ZoneInfo

        from ivr.web import audit_views
        tz, a, b = ZoneInfo(request["tz"]), request["a"], request["b"]
        r, rows = await report(redis, request["start"], request["end"], tz, request.get("now"))
        names = {**(request.get("names") or {}), **r.get("seat_names", {})}     # the attempts' own names win
        if request["kind"] == "csv":
            if request.get("part") == "figures":
                return audit_views.figures_csv(r["figures"], names).encode("utf-8")
            return audit_views.csv(rows, tz).encode("utf-8")
        if request["kind"] == "report":
            return orjson.dumps(audit_views.report(r, rows, a, b, tz, names))
        return orjson.dumps(audit_views.callbacks(rows, a, b, tz, request.get("state"), request.get("kind_of"),
                                                  page=request.get("page", 1),
                                                  per_page=request.get("per_page", audit_views.PAGE_SIZES[0]),
                                                  names=names))
    raise ValueError(f"unknown work {request['kind']!r}")


def main() -> None:
    request = orjson.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(asyncio.run(_child_main(request)))


if __name__ == "__main__":
    main()
