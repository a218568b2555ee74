"""Auditors' API: callback completion and the hotline's figures by period (days
in the hotline's time zone, IVR_TIMEZONE), the callbacks to pick from, one
callback's audit trail as a timeline, CSV export, the hash-chain verification
and the heads of the audit chains that sign a printed report."""

from __future__ import annotations

from aiohttp import web

from ivr.callback import labels as L
from ivr.logs import mask_number
from ivr.services import audit as audit_service
from ivr.services import callbacks as callback_service
from ivr.web import audit_views, offload, schemas
from ivr.web.context import Route, ctx_of, principal
from ivr.web.schemas import INT, OBJ, STR, answer, array, fields_of, string

AUDITOR = ("auditor",)


def _period(request: web.Request) -> tuple[float, float, str, str]:
    """?from&to (YYYY-MM-DD) or ?month (YYYY-MM); by default today, in the
    hotline's time zone."""
    q = request.query
    span = callback_service.report_period(ctx_of(request).settings.timezone, q.get("from"), q.get("to"),
                                          q.get("month"))
    return span.start, span.end, span.date_from, span.date_to


async def _seat_names(request: web.Request) -> dict[str, str]:
    ctx = ctx_of(request)
    return await callback_service.seat_names(ctx.redis, ctx.settings.queue_dir)


async def report(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    start, end, a, b = _period(request)
    body = await offload.view("report", ctx.redis, start, end, a=a, b=b, tz=ctx.settings.timezone.key,
                              now=ctx.clock.now(), names=await _seat_names(request))
    return web.Response(body=body, content_type="application/json")


def _number(value: str | None, default: int) -> int:
    """A query number the guard has already checked (digits only), or the default when empty."""
    return int(value) if value else default


async def callbacks(request: web.Request) -> web.Response:
    """One page of the callbacks of a period to pick from: ?from&to, &state=open|closed, &kind=,
    &page=, &per_page= (one of ``audit_views.PAGE_SIZES``)."""
    ctx = ctx_of(request)
    start, end, a, b = _period(request)
    q = request.query
    body = await offload.view("callbacks", ctx.redis, start, end, a=a, b=b, tz=ctx.settings.timezone.key,
                              state=q.get("state"), kind_of=q.get("kind"), page=_number(q.get("page"), 1),
                              per_page=_number(q.get("per_page"), audit_views.PAGE_SIZES[0]),
                              names=await _seat_names(request))
    return web.Response(body=body, content_type="application/json")


async def report_csv(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    start, end, a, b = _period(request)
    part = request.query.get("part") or "callbacks"
    body = await offload.view("csv", ctx.redis, start, end, a=a, b=b, tz=ctx.settings.timezone.key,
                              now=ctx.clock.now(), part=part,
                              names=await _seat_names(request) if part == "figures" else {})
    name = f"{'figures' if part == 'figures' else 'callbacks'}-{a}-{b}.csv"
    return web.Response(body=body, content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def record(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    tz = ctx.settings.timezone
    rec, trail = await callback_service.find(ctx.redis, request.match_info["key"])
    names = {**await _seat_names(request), **{e["seat"]: e["seat_name"] for _, e in trail
                                              if e.get("seat") and e.get("seat_name")}}
    shown = {**rec, "number": mask_number(rec.get("number", ""))}
    message_url = f"/api/callbacks/{rec['id']}/message.wav" if rec.get("message") and rec.get("id") else ""
    return web.json_response({"record": shown, "summary": {**audit_views.row(rec, tz, names), **{
        k: L.local_time(rec.get(k), tz) for k in ("deadline", "first_callback_at", "closed_at")},
        "reason_label": L.label(L.MISS_REASONS, rec.get("reason")), "calls": rec.get("calls", "1"),
        "message_url": message_url},
        "trail": [{"stream_id": rid, **e, **L.trail_row(e, tz, names)} for rid, e in trail]})


async def message_audio(request: web.Request) -> web.Response:
    """The citizen's voice message of one callback, from the shared store: the
    PBX it was recorded on sent it up (docs/prompts.md), so any console host plays it."""
    ctx = ctx_of(request)
    audio = await callback_service.voice_message(ctx.redis, request.match_info["key"], by=principal(request).user)
    return web.Response(body=audio, content_type="audio/wav", headers={"Cache-Control": "private, no-store"})


async def verify(request: web.Request) -> web.Response:
    return web.json_response(await offload.verify(ctx_of(request).redis))      # in a child process


async def checkpoint(request: web.Request) -> web.Response:
    """The chain heads now (by the engine's clock) as the printed table reads
    them, beside the latest signed checkpoint."""
    ctx = ctx_of(request)
    tz = ctx.settings.timezone
    signed = await audit_service.signed_checkpoint(ctx.redis, tz)
    heads = await audit_service.chain_heads(ctx.redis, tz, ctx.clock.now())
    return web.json_response({"signed": signed, **heads, "chains": audit_service.chain_rows(heads, signed)})


NULL_RATE = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
# the national figures of the period (docs/audit-report.md); per kind, seat and day in "figures"
NATIONAL_FIGURES = {"answered_within_15s_rate": NULL_RATE, "answer_rate_24h": NULL_RATE,
                    "average_speed_of_answer_s": {"type": ["number", "null"], "minimum": 0},
                    "abandoned_within_15s": {"type": ["integer", "null"], "minimum": 0},
                    "satisfaction_rate": NULL_RATE,
                    "survey": fields_of({k: {"type": "integer", "minimum": 0} for k in (
                        "offered", "answered", "satisfied", "basically_satisfied", "dissatisfied", "no_answer")})}
PERIOD = {"from": schemas.or_empty(schemas.DATE), "to": schemas.or_empty(schemas.DATE),
          "month": schemas.or_empty(schemas.MONTH)}
CALLBACK_KEY = string(pattern="^[+]?[0-9]{1,20}$", description="a callback's id, or the full number of an open one",
                      examples=["1", "13812345678"])
PERIOD_OUT = fields_of({"from": STR, "to": STR})
PAGE = string(pattern="^(?:|[1-9][0-9]{0,5})$", description="the page, from 1 (empty: the first)",
              examples=["1", "2"], message="页码应为 1 以上的整数 — page: a whole number from 1")
PER_PAGE = {"enum": ["", *map(str, audit_views.PAGE_SIZES)],
            "description": "callbacks per page (empty: 20)", "x-message": "每页条数应为 " +
            "、".join(map(str, audit_views.PAGE_SIZES)) + " 之一 — per_page: one of " +
            ", ".join(map(str, audit_views.PAGE_SIZES))}
CHAIN_ROW = fields_of({"log": STR, "label": STR, "entries": INT, "head": STR, "checkpoint_entries":
                       {"type": ["integer", "null"]}, "checkpoint_time": STR,
                       "check": {"enum": ["same", "grown", "none", "empty", "differs"]}, "check_label": STR})
CHAIN = fields_of({"ok": {"type": "boolean"}, "entries": {"type": "integer"}},
                  {"problem": {"type": ["string", "null"]}, "entry_id": {"type": ["string", "null"]}})

ROUTES = [
    Route("GET", "/api/callbacks/report", report, AUDITOR,
          "callback completion and the hotline's figures for ?from=YYYY-MM-DD&to=YYYY-MM-DD or ?month=YYYY-MM "
          "(default: today in IVR_TIMEZONE; a period that ends before it starts: 422)", tag="auditor",
          query=PERIOD, errors=(422,),
          answers=answer(fields_of({"period": PERIOD_OUT, "callbacks": {"type": "integer"}, "hotline": OBJ,
                                    **NATIONAL_FIGURES, "figures": OBJ, "figures_seats": array(OBJ),
                                    # the calls stream is capped: when the kept summaries begin, if after the start
                                    "calls_from": {"type": ["number", "null"]},
                                    "calls_from_local": {"type": ["string", "null"]}}))),
    Route("GET", "/api/callbacks/report.csv", report_csv, AUDITOR,
          "the same period as CSV for Excel (UTF-8 with BOM, Chinese headers, local time, numbers masked): "
          "one row per callback, or (part=figures) the national figures of the period, each day, kind and seat",
          tag="auditor", query={**PERIOD, "part": {"enum": ["", "callbacks", "figures"],
                                                   "description": "empty: callbacks"}},
          errors=(422,), answers=answer(media="text/csv")),
    Route("GET", "/api/callbacks", callbacks, AUDITOR,
          "one page of the callbacks of a period, newest first (?from&to, state=open|closed, kind, page, "
          "per_page), numbers masked, seats by their names", tag="auditor",
          query={**PERIOD, "state": {"enum": ["", "open", "closed"], "description": "empty: any"},
                 "kind": {"enum": ["", *sorted(L.KINDS)], "description": "empty: any"},
                 "page": PAGE, "per_page": PER_PAGE},
          errors=(422,),
          answers=answer(fields_of({"period": PERIOD_OUT, "total": INT, "page": INT, "per_page": INT,
                                    "pages": INT, "callbacks": array(OBJ)}))),
    Route("GET", "/api/callbacks/{key}", record, AUDITOR, "one callback and its audit trail as a timeline",
          tag="auditor", params={"key": CALLBACK_KEY}, errors=(404,),
          answers=answer(fields_of({"record": OBJ, "summary": OBJ, "trail": array(OBJ)}))),
    Route("GET", "/api/callbacks/{key}/message.wav", message_audio, AUDITOR,
          "the citizen's voice message of one callback (8 kHz WAV), sent up by the PBX it was recorded on; "
          "each play is recorded in the console's audit log", tag="auditor", params={"key": CALLBACK_KEY},
          errors=(404,), answers=answer(media="audio/wav")),
    Route("GET", "/api/audit/verify", verify, AUDITOR, "verify every hash-chained audit log", tag="auditor",
          answers=answer({"type": "object", "additionalProperties": CHAIN})),
    Route("GET", "/api/audit/checkpoint", checkpoint, AUDITOR,
          "the heads of every audit chain now (and the signed checkpoint once there is one); ``chains``: "
          "one row per log as the printed report shows it", tag="auditor",
          answers=answer(fields_of({"signed": {"type": ["object", "null"]}, "heads": OBJ, "time": STR,
                                    "chains": array(CHAIN_ROW)}))),
]
