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
from urllib.parse import quote

import orjson

from ivr import logs
from ivr.prompt_audio import low_priority

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


async def report_json(redis, start: float, end: float) -> bytes:
    """The auditors' report for [start, end) as the JSON body of GET /api/callbacks/report."""
    return await _run_child({"kind": "report", "url": redis_url_of(redis), "start": start, "end": end},
                            REPORT_TIMEOUT_S)


async def report_csv(redis, start: float, end: float) -> bytes:
    """The callbacks of [start, end) as CSV (numbers masked), UTF-8."""
    return await _run_child({"kind": "csv", "url": redis_url_of(redis), "start": start, "end": end},
                            REPORT_TIMEOUT_S)


async def trail(redis, callback_id: str) -> list[dict]:
    """One callback's entries in the callback audit log (a walk over the whole log)."""
    out = await _run_child({"kind": "trail", "url": redis_url_of(redis), "id": callback_id}, REPORT_TIMEOUT_S)
    return orjson.loads(out)


async def verify(redis) -> dict:
    """Every hash-chained audit log verified, as GET /api/audit/verify answers."""
    return orjson.loads(await _run_child({"kind": "verify", "url": redis_url_of(redis)}, REPORT_TIMEOUT_S))


def _report_body(r: dict, rows: list[dict]) -> dict:
    from ivr.logs import mask_number

    delays = sorted(float(x["first_callback_at"]) - float(x["first_at"]) for x in rows if x.get("first_callback_at"))
    edges = [600, 1800, 3600, 7200, 14400, 86400]     # time to first callback, for the chart
    hist = [sum(1 for d in delays if (edges[i - 1] if i else 0) <= d < e) for i, e in enumerate(edges)]
    hist.append(sum(1 for d in delays if d >= edges[-1]))
    return {**r, "time_to_callback_histogram": {"edges_s": edges, "counts": hist},
            "callbacks_list": [{"id": x.get("id"), "number": mask_number(x.get("number", "")),
                                "kind": x.get("kind"), "state": x.get("state"),
                                "closed_reason": x.get("closed_reason", "")}
                               for x in sorted(rows, key=lambda x: float(x.get("first_at", 0)))][:500]}


async def _child_main(request: dict) -> bytes:
    from ivr.redis_server import connect

    redis = connect(request["url"])
    try:
        return await _work(redis, request)
    finally:
        await redis.aclose()


async def _work(redis, request: dict) -> bytes:
    import json

    from ivr import redis_keys as keys
    from ivr.audit import AuditLog
    from ivr.callback.report import gather, records_csv
    from ivr.callback.store import AUDIT

    if request["kind"] == "trail":
        log, out, start = AuditLog(redis, AUDIT), [], "-"
        while rows := await log.entries(start, "+", count=500):      # a page at a time (Redis stays free)
            out += [{"stream_id": rid, **e} for rid, e in rows if e.get("id") == request["id"]]
            start = "(" + rows[-1][0]
        return orjson.dumps(out)
    if request["kind"] == "verify":
        out = {}
        for name, stream in keys.AUDIT_LOGS.items():
            res = await AuditLog(redis, stream).verify()
            out[name] = {"ok": res.ok, "entries": res.entries, "problem": res.problem, "entry_id": res.entry_id}
        return orjson.dumps(out)
    r, rows = await gather(redis, request["start"], request["end"])
    if request["kind"] == "report":
        return json.dumps(_report_body(r, rows)).encode()   # the same text web.json_response sends
    if request["kind"] == "csv":
        return records_csv(rows).encode()
    raise ValueError(f"unknown work {request['kind']!r}")


def main() -> None:
    request = orjson.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(asyncio.run(_child_main(request)))


if __name__ == "__main__":
    main()
