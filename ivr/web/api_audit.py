"""Auditors' API: callback completion by period, one citizen's record with its
full audit trail, CSV export, and the hash-chain verification."""

from __future__ import annotations

from aiohttp import web

from ivr.callback.report import period
from ivr.callback.store import CallbackQueries
from ivr.logs import mask_number
from ivr.web.app import Route, ctx_of, error
from ivr.web import offload

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
    # built in a child process: a month's report must not hold the calls' loop (ivr.web.offload)
    start, end = _period(request)
    body = await offload.report_json(ctx_of(request).redis, start, end)
    return web.Response(body=body, content_type="application/json")


async def report_csv(request: web.Request) -> web.Response:
    start, end = _period(request)
    body = await offload.report_csv(ctx_of(request).redis, start, end)
    name = f"callbacks-{request.query['from']}-{request.query['to']}.csv"
    return web.Response(body=body, content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def record(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    rec = await CallbackQueries(ctx.redis).find(request.match_info["key"])
    if rec is None:
        return error(404, "no such callback")
    trail = await offload.trail(ctx.redis, rec["id"])      # walks the whole log: in a child process
    return web.json_response({"record": {**rec, "number": mask_number(rec.get("number", ""))}, "trail": trail})


async def verify(request: web.Request) -> web.Response:
    return web.json_response(await offload.verify(ctx_of(request).redis))      # in a child process


ROUTES = [
    Route("GET", "/api/callbacks/report", report, AUDITOR,
          "callback completion for ?from=YYYY-MM-DD&to=YYYY-MM-DD", tag="auditor"),
    Route("GET", "/api/callbacks/report.csv", report_csv, AUDITOR, "the same period as CSV (numbers masked)",
          tag="auditor"),
    Route("GET", "/api/callbacks/{key}", record, AUDITOR, "one callback and its audit trail", tag="auditor"),
    Route("GET", "/api/audit/verify", verify, AUDITOR, "verify every hash-chained audit log", tag="auditor"),
]
