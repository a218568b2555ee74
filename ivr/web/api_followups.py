"""Follow-up calls' API (智能回访): a seat manager or an auditor chooses a
sample, and reads a batch with what the citizens said. Numbers masked."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from ivr.callback import labels as L
from ivr.callback.followup import SOURCES
from ivr.services import callbacks as callback_service
from ivr.services import followups as followup_service
from ivr.web.context import Route, body, ctx_of, principal
from ivr.web.schemas import DATE, INT, OBJ, STR, answer, array, fields_of, obj, string

ROLES = ("seat_manager", "auditor")

SHARE = string(pattern=r"^(?:100(?:\.0+)?|[0-9]{1,2}(?:\.[0-9]+)?)%?$",
               description="the share of the day's calls to follow up, a percentage above 0 and at most 100",
               examples=["10%", "100%", "2.5%"],
               message="抽样比例须为 0% 以上、不超过 100% 的百分数，如 10% — the sample share: a percentage above 0% "
                       "and at most 100%, such as 10%")
SAMPLE = obj({
    "share": SHARE,
    "of": {"enum": list(SOURCES), "description": "reached-callbacks: callbacks closed reached that day; "
                                                  "answered-calls: calls in that a seat answered",
           "x-message": "抽样对象应为 " + "、".join(SOURCES) + " 之一 — of: one of " + ", ".join(SOURCES)},
    "day": DATE,
    "kind": string(pattern="^[a-z_-]{0,40}$", description="only this kind: the callback's (" +
                   ", ".join(sorted(L.KINDS)) + ") or the call's queue (empty: all)",
                   examples=["", "ordinary"], message="类别须为小写字母 — kind: lower-case letters"),
}, ["share", "of"], examples=[{"share": "10%", "of": "reached-callbacks", "day": "2026-12-05"}])


async def sample(request: web.Request) -> web.Response:
    ctx, data = ctx_of(request), body(request)
    r = await followup_service.choose(ctx.redis, ctx.settings.timezone, share=data["share"], of=data["of"],
                                      day=data.get("day"), kind=data.get("kind", ""),
                                      by=f"web:{principal(request).user}", now=ctx.clock.now())
    return web.json_response(r)


def _head(b: dict[str, str], tz: dt.tzinfo) -> dict[str, str]:
    """A batch's head as the pages show it: when in the hotline's local time, what it sampled in Chinese."""
    of = SOURCES.get(b.get("of", ""))
    return {**b, "created_local": L.local_time(b.get("created_at"), tz),
            "of_label": f"{of[0]} {of[1]}" if of else b.get("of", "")}


async def one_batch(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    tz = ctx.settings.timezone
    r = await followup_service.batch(ctx.redis, request.match_info["batch"])
    r["batch"] = _head(r["batch"], tz)
    names = await callback_service.seat_names(ctx.redis, ctx.settings.queue_dir)
    r["items"] = [{**i, "answered_local": L.local_time(i.get("answered_at"), tz),
                   "source_seat_name": L.seat_name(i.get("source_seat"), names) if i.get("source_seat") else "",
                   "source_kind_label": " ".join(dict.fromkeys(L.label(L.KINDS, i.get("source_kind"), lang)
                                                               for lang in ("zh", "en")))} for i in r["items"]]
    return web.json_response(r)


async def batch_list(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    return web.json_response({"batches": [_head(b, ctx.settings.timezone)
                                          for b in await followup_service.batches(ctx.redis)]})


ROUTES = [
    Route("POST", "/api/followups", sample, ROLES,
          "choose a sample to follow up (智能回访): a share of one day's reached callbacks or answered calls; "
          "called without a seat within calling hours while the queues are calm and lines are free; a share "
          "above 100% is refused as bad input (400), one of 0% or a sample with nobody in it with 422", SAMPLE, tag="followup", errors=(422,),
          answers=answer(fields_of({"batch": STR, "chosen": INT, "candidates": INT, "of": STR, "day": STR}))),
    Route("GET", "/api/followups", batch_list, ROLES,
          "the latest follow-up batches, newest first: when (created_local, the hotline's local time), by whom, "
          "the share of what (of_label in Chinese first), how many", tag="followup",
          answers=answer(fields_of({"batches": array(OBJ)}))),
    Route("GET", "/api/followups/{batch}", one_batch, ROLES,
          "one batch (its time also as local time, created_local): its follow-ups (numbers masked, kind followup), "
          "what the citizens said (answered_local), its figures (called, reached, heard, ratings, 满意率)",
          tag="followup", params={"batch": string(pattern="^[1-9][0-9]{0,11}$", description="a batch id",
                                                  examples=["1"], message="批次编号为数字 — a batch id is a number")},
          errors=(404,), answers=answer(fields_of({"batch": OBJ, "figures": OBJ, "items": array(OBJ)}))),
]
