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
import sys

import orjson

from ivr import logs
from ivr.child_process import run_module
from ivr.errors import OffloadError
from ivr.prompts.audio import low_priority
from ivr.redisdb.server import url_of

REPORT_TIMEOUT_S = 300.0

log = logs.get("web")


async def _run_child(request: dict, timeout_s: float) -> bytes:
    """The child's stdout: the finished response body, passed on without parsing
    (parsing 30,000 rows back took the loop 130 ms)."""
    code, out, err = await run_module("ivr.web.offload", orjson.dumps(request), timeout_s, low_priority())
    if code != 0:
        log.error("offload_failed", kind=request.get("kind"), returncode=code,
                  stderr=err.decode(errors="replace")[-2000:])
        raise OffloadError(f"{request.get('kind')} worker failed")
    return out


async def view(kind: str, redis, start: float, end: float, **params) -> bytes:
    """An auditors' view of [start, end) built in the child (``web/audit_views.py``):
    ``report`` and ``callbacks`` as JSON, ``csv`` as UTF-8 CSV, all numbers masked."""
    return await _run_child({"kind": kind, "url": url_of(redis), "start": start, "end": end, **params},
                            REPORT_TIMEOUT_S)


async def verify(redis) -> dict:
    """Every hash-chained audit log verified, as GET /api/audit/verify answers."""
    return orjson.loads(await _run_child({"kind": "verify", "url": url_of(redis)}, REPORT_TIMEOUT_S))


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

        from ivr.services.callbacks import period_records
        from ivr.web import audit_views
        tz, a, b = ZoneInfo(request["tz"]), request["a"], request["b"]
        start, end = request["start"], request["end"]
        if request["kind"] == "csv" and request.get("part") != "figures":
            return audit_views.csv(await period_records(redis, start, end), tz).encode("utf-8")
        r = await report(redis, start, end, tz, request.get("now"))
        names = {**(request.get("names") or {}), **r.get("seat_names", {})}     # the attempts' own names win
        if request["kind"] == "callbacks":
            return orjson.dumps(audit_views.callbacks(await period_records(redis, start, end), a, b, tz,
                                                      request.get("state"), request.get("kind_of"),
                                                      page=request.get("page", 1),
                                                      per_page=request.get("per_page", audit_views.PAGE_SIZES[0]),
                                                      names=names))
        if request["kind"] == "csv":
            return audit_views.figures_csv(r["figures"], names).encode("utf-8")
        first = await period_records(redis, start, end, limit=audit_views.LIST_LIMIT)
        return orjson.dumps(audit_views.report(r, first, a, b, tz, names))
    raise ValueError(f"unknown work {request['kind']!r}")


def main() -> None:
    request = orjson.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(asyncio.run(_child_main(request)))


if __name__ == "__main__":
    main()
