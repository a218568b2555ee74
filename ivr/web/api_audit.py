"""Auditors' API: callback completion by period, one citizen's record with its
full audit trail, CSV export, and the hash-chain verification."""

from __future__ import annotations

from aiohttp import web

from ivr import redis_keys as keys
from ivr.audit import AuditLog
from ivr.callback.report import period, records_csv
from ivr.callback.store import AUDIT, CallbackQueries
from ivr.logs import mask_number
from ivr.web.app import Route, ctx_of, error
from ivr.web.offload import gather      # in a child process: a month's report must not hold the calls' loop

AUDITOR = ("auditor",)


def _period(request: web.Request) -> tuple[float, float]:
    q = request.query
    if "from" not in q or "to" not in q:
        raise web.HTTPBadRequest(reason="from and to (YYYY-MM-DD) are required")
    try:
        return period(q["from"], q["to"], ctx_of(request).settings.timezone)
    except ValueError as exc:
        raise web.HTTPBadRequest(reason=f"from/to: {exc}")


async def report(request: web.Request) -> web.Response:
    start, end = _period(request)
    r, rows = await gather(ctx_of(request).redis, start, end)
    delays = sorted(float(x["first_callback_at"]) - float(x["first_at"]) for x in rows if x.get("first_callback_at"))
    edges = [600, 1800, 3600, 7200, 14400, 86400]     # time to first callback, for the chart
    hist = [sum(1 for d in delays if (edges[i - 1] if i else 0) <= d < e) for i, e in enumerate(edges)]
    hist.append(sum(1 for d in delays if d >= edges[-1]))
    return web.json_response({**r, "time_to_callback_histogram": {"edges_s": edges, "counts": hist},
                              "callbacks_list": [{"id": x.get("id"), "number": mask_number(x.get("number", "")),
                                                  "kind": x.get("kind"), "state": x.get("state"),
                                                  "closed_reason": x.get("closed_reason", "")}
                                                 for x in sorted(rows, key=lambda x: float(x.get("first_at", 0)))][:500]})


async def report_csv(request: web.Request) -> web.Response:
    start, end = _period(request)
    _, rows = await gather(ctx_of(request).redis, start, end)
    name = f"callbacks-{request.query['from']}-{request.query['to']}.csv"
    return web.Response(text=records_csv(rows), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def record(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    rec = await CallbackQueries(ctx.redis).find(request.match_info["key"])
    if rec is None:
        return error(404, "no such callback")
    trail = [{"stream_id": rid, **e} for rid, e in await AuditLog(ctx.redis, AUDIT).entries()
             if e.get("id") == rec["id"]]
    return web.json_response({"record": {**rec, "number": mask_number(rec.get("number", ""))}, "trail": trail})


async def verify(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    out = {}
    for name, stream in keys.AUDIT_LOGS.items():
        res = await AuditLog(ctx.redis, stream).verify()
        out[name] = {"ok": res.ok, "entries": res.entries, "problem": res.problem, "entry_id": res.entry_id}
    return web.json_response(out)


ROUTES = [
    Route("GET", "/api/callbacks/report", report, AUDITOR,
          "callback completion for ?from=YYYY-MM-DD&to=YYYY-MM-DD", tag="auditor"),
    Route("GET", "/api/callbacks/report.csv", report_csv, AUDITOR, "the same period as CSV (numbers masked)",
          tag="auditor"),
    Route("GET", "/api/callbacks/{key}", record, AUDITOR, "one callback and its audit trail", tag="auditor"),
    Route("GET", "/api/audit/verify", verify, AUDITOR, "verify every hash-chained audit log", tag="auditor"),
]
