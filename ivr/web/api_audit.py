"""Auditors' API: callback completion and the hotline's figures by period (days
in the hotline's time zone, IVR_TIMEZONE), the callbacks to pick from, one
callback's audit trail as a timeline, CSV export, the hash-chain verification
and the heads of the audit chains that sign a printed report."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from ivr import redis_keys as keys
from ivr.audit import AuditLog
from ivr.callback import labels as L
from ivr.callback.report import month_days, period
from ivr.callback.store import CallbackQueries
from ivr.callback.trail import read_trail
from ivr.logs import mask_number
from ivr.web.app import Route, ctx_of, error
from ivr.web import audit_views, offload

AUDITOR = ("auditor",)


def _days(request: web.Request) -> tuple[str, str]:
    """from/to (YYYY-MM-DD) or month (YYYY-MM); by default today, in the
    hotline's time zone — not the UTC day, which starts at 08:00 in Beijing."""
    q, tz = request.query, ctx_of(request).settings.timezone
    try:
        if q.get("month"):
            return month_days(q["month"])
    except ValueError:
        raise web.HTTPBadRequest(reason="月份格式应为 YYYY-MM — month: YYYY-MM")
    today = dt.datetime.now(tz).date().isoformat()
    return q.get("from") or today, q.get("to") or q.get("from") or today


def _period(request: web.Request) -> tuple[float, float, str, str]:
    a, b = _days(request)
    try:
        start, end = period(a, b, ctx_of(request).settings.timezone)
    except ValueError as exc:
        raise web.HTTPBadRequest(reason=f"日期应为 YYYY-MM-DD，且结束不早于开始 — from/to: {exc}")
    return start, end, a, b


async def report(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    start, end, a, b = _period(request)
    body = await offload.view("report", ctx.redis, start, end, a=a, b=b, tz=ctx.settings.timezone.key)
    return web.Response(body=body, content_type="application/json")


async def callbacks(request: web.Request) -> web.Response:
    """The callbacks of a period to pick from: ?from&to, &state=open|closed, &kind=."""
    ctx = ctx_of(request)
    start, end, a, b = _period(request)
    body = await offload.view("callbacks", ctx.redis, start, end, a=a, b=b, tz=ctx.settings.timezone.key,
                              state=request.query.get("state"), kind_of=request.query.get("kind"))
    return web.Response(body=body, content_type="application/json")


async def report_csv(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    start, end, a, b = _period(request)
    body = await offload.view("csv", ctx.redis, start, end, a=a, b=b, tz=ctx.settings.timezone.key)
    name = f"callbacks-{a}-{b}.csv"
    return web.Response(body=body, content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def record(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    tz = ctx.settings.timezone
    rec = await CallbackQueries(ctx.redis).find(request.match_info["key"])
    if rec is None:
        return error(404, "没有这条回拨记录 — no such callback")
    trail = [{"stream_id": rid, **e, **L.trail_row(e, tz)} for rid, e in await read_trail(ctx.redis, rec)]
    shown = {**rec, "number": mask_number(rec.get("number", ""))}
    return web.json_response({"record": shown, "summary": {**audit_views.row(rec, tz), **{
        k: L.local_time(rec.get(k), tz) for k in ("deadline", "first_callback_at", "closed_at")},
        "reason_label": L.label(L.MISS_REASONS, rec.get("reason")), "calls": rec.get("calls", "1"),
        "last_seat": rec.get("last_seat", "")}, "trail": trail})


async def verify(request: web.Request) -> web.Response:
    return web.json_response(await offload.verify(ctx_of(request).redis))      # in a child process


async def signed_checkpoint(redis, tz) -> dict | None:
    """The latest signed checkpoint of every audit log (``ivr audit
    checkpoint`` and the leader's schedule write them to a file outside Redis,
    each line with its HMAC): printed under the monthly report, so whoever
    keeps the paper can later prove the log was not rewritten since."""
    import asyncio

    from ivr.audit_checkpoints import read_latest
    from ivr.audit_keys import current

    config = current()
    latest, problems = await asyncio.to_thread(read_latest, config.checkpoint_file, config.key)
    if not latest:
        return None
    names = {stream: name for name, stream in keys.AUDIT_LOGS.items()}
    return {"file": str(config.checkpoint_file), "problems": problems,
            "logs": {names.get(log, log): {"entries": cp.n, "head": cp.head, "entry_id": cp.entry_id,
                                           "at": dt.datetime.fromtimestamp(cp.at, tz).strftime("%Y-%m-%d %H:%M:%S"),
                                           "mac": cp.mac} for log, cp in sorted(latest.items())}}


async def chain_heads(redis, tz) -> dict:
    """The head (entry count and hash) of every audit chain, now: printed on
    the monthly report so a later reader can check the log still matches."""
    now = dt.datetime.now(tz)
    heads = {}
    for name, stream in keys.AUDIT_LOGS.items():
        log = AuditLog(redis, stream)
        head = await redis.get(log.head_key) or ""
        n, _, h = head.partition(":") if ":" in head else ("0", "", head)
        heads[name] = {"head": head, "entries": int(n) if n.isdigit() else None, "hash": h}
    return {"at": now.timestamp(), "time": now.strftime("%Y-%m-%d %H:%M:%S %Z"), "heads": heads}


async def checkpoint(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    return web.json_response({"signed": await signed_checkpoint(ctx.redis, ctx.settings.timezone),
                              **await chain_heads(ctx.redis, ctx.settings.timezone)})


ROUTES = [
    Route("GET", "/api/callbacks/report", report, AUDITOR,
          "callback completion and the hotline's figures for ?from=YYYY-MM-DD&to=YYYY-MM-DD or ?month=YYYY-MM "
          "(default: today in IVR_TIMEZONE)", tag="auditor"),
    Route("GET", "/api/callbacks/report.csv", report_csv, AUDITOR,
          "the same period as CSV for Excel (UTF-8 with BOM, Chinese headers, local time, numbers masked)",
          tag="auditor"),
    Route("GET", "/api/callbacks", callbacks, AUDITOR,
          "the callbacks of a period (?from&to, state=open|closed, kind), numbers masked", tag="auditor"),
    Route("GET", "/api/callbacks/{key}", record, AUDITOR, "one callback and its audit trail as a timeline",
          tag="auditor"),
    Route("GET", "/api/audit/verify", verify, AUDITOR, "verify every hash-chained audit log", tag="auditor"),
    Route("GET", "/api/audit/checkpoint", checkpoint, AUDITOR,
          "the heads of every audit chain now (and the signed checkpoint once there is one)", tag="auditor"),
]
