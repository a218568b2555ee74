"""Auditors' API: the PBX's own record (Asterisk's queue_log) against the
engine's, per PBX and period: what matched and what did not
(``ivr.services.pbx_record``; docs/pbx-record.md)."""

from __future__ import annotations

from aiohttp import web

from ivr.callback import labels as L
from ivr.services import callbacks as callback_service
from ivr.services import pbx_record as pbx_record_service
from ivr.web import schemas
from ivr.web.context import Route, ctx_of
from ivr.web.schemas import OBJ, STR, answer, array, fields_of

AUDITOR = ("auditor",)


async def reconcile(request: web.Request) -> web.Response:
    """?from&to (YYYY-MM-DD) or ?month, &pbx=, &unmatched=1 (only what did not match)."""
    ctx = ctx_of(request)
    q = request.query
    span = callback_service.report_period(ctx.settings.timezone, q.get("from"), q.get("to"), q.get("month"))
    out = await pbx_record_service.reconciliation(ctx.redis, span.start, span.end, pbx=q.get("pbx") or None,
                                                  unmatched_only=q.get("unmatched") == "1")
    return web.json_response({"period": {"from": span.date_from, "to": span.date_to}, **out,
                              "verdicts": {k: {"zh": zh, "en": en} for k, (zh, en) in L.PBX_VERDICTS.items()}})


COUNTS = fields_of({"calls": {"type": "integer"}, "matched": {"type": "integer"}, "unmatched": {"type": "integer"},
                    "pending": {"type": "integer"}, "by_verdict": OBJ, "truncated": {"type": "boolean"}})
PBX_OUT = fields_of({"pbx": STR, "read": OBJ, "counts": COUNTS, "calls": array(OBJ)})

ROUTES = [
    Route("GET", "/api/audit/reconcile", reconcile, AUDITOR,
          "the PBX's own record (queue_log) against the engine's, per PBX, for callers who entered a queue in "
          "?from=YYYY-MM-DD&to=YYYY-MM-DD or ?month=YYYY-MM (default: today in IVR_TIMEZONE): each caller's "
          "outcome and whether the engine's record matched; numbers masked (a period that ends before it "
          "starts: 422; a PBX whose record was never read: 404)", tag="auditor",
          query={"from": schemas.or_empty(schemas.DATE), "to": schemas.or_empty(schemas.DATE),
                 "month": schemas.or_empty(schemas.MONTH), "pbx": schemas.or_empty(schemas.PBX_NAME),
                 "unmatched": {"enum": ["", "0", "1"], "description": "1: only the callers that did not match"}},
          errors=(404, 422),
          answers=answer(fields_of({"period": fields_of({"from": STR, "to": STR}), "start": {"type": "number"},
                                    "end": {"type": "number"}, "pbxs": array(PBX_OUT), "verdicts": OBJ}))),
]
