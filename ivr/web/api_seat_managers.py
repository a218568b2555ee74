"""Seat managers' API: the live figures (also pushed as server-sent events for
the wallboard) and the contingency level (``ivr.services.contingency``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aiohttp import web

from ivr.contingency.history import history_row, who_label
from ivr.contingency.plan import MAX_LEVEL, Plan, Seats
from ivr.services import callbacks as callback_service
from ivr.services import config as config_service
from ivr.services import contingency
from ivr.services import status as status_service
from ivr.web import national, schemas
from ivr.web import wallboard as wall
from ivr.web.context import Context, Route, body, ctx_of, principal, still_signed_in
from ivr.web.schemas import BOOL, INT, NULL_NUM, NULL_STR, NUM, OBJ, STR, answer, array, fields_of, obj, string

if TYPE_CHECKING:
    from ivr.callback.targets import Targets

SEATS = ("seat_manager",)
WALLBOARD_PUSH_S = 1.0


async def _plan(request: web.Request) -> Plan:
    ctx = ctx_of(request)
    return await contingency.plan(ctx.redis, ctx.settings.home, ctx.settings.timezone, ctx.clock.now())


def _by(request: web.Request) -> str:
    return f"web:{principal(request).user}"


@dataclass(frozen=True)
class WallSetup:
    """What the wall needs from the project's files, read once per page (not
    once a second)."""
    plan: Plan | None
    seats: Seats | None
    queues: dict[str, str]      # logical -> Asterisk queue name
    thresholds: dict[str, tuple[float, float]]
    targets: Targets | None = None     # queue/targets.yaml in force (None: the defaults)

    @classmethod
    async def load(cls, ctx: Context) -> WallSetup:
        # the configuration in force, never the files on disk: a mistake in a
        # file must not blank the wall
        cfg = await config_service.configuration(ctx.redis, ctx.settings.home, ctx.settings.timezone,
                                                 ctx.clock.now())
        queues = cfg.queues.asterisk_names if cfg.queues else {}
        return cls(cfg.ops.plan, cfg.ops.seats, queues, wall.plan_thresholds(cfg.ops.plan), targets=cfg.ops.targets)


async def _board(ctx: Context, setup: WallSetup) -> dict[str, Any]:
    snap = await status_service.live(ctx.redis)
    o = await contingency.overview(ctx.redis)
    st, prop, applied = o.state, o.proposal, o.applied
    counts = await callback_service.counts(ctx.redis)
    now = ctx.clock.now()               # the engine's clock: a drill's simulated time, as its callbacks carry
    oldest = await callback_service.oldest_open_age(ctx.redis, now)
    plan = setup.plan
    added = wall.added_by_plan(plan, setup.seats, setup.queues, applied.level)
    fig = wall.figures(snap, plan.queues if plan else ("general",), setup.queues, added, counts["open"], oldest)
    lv = plan.level(st.level) if plan else None
    return {"live": snap, "level": st.level, "level_name": lv.name if lv else "",
            "level_name_en": lv.name_en if lv else "", "level_set_by": st.by,
            "level_by_label": who_label(st.by), "level_how": st.how,
            "level_reason": st.reason, "level_since": st.since, "level_expires_at": st.expires_at,
            "proposal": prop.__dict__ if prop else None, "callbacks": counts, "at": now,
            "callback_oldest_age_s": oldest, "wall": fig, "colours": wall.colours(fig, setup.thresholds),
            "thresholds": setup.thresholds, "timezone": ctx.settings.timezone.key,
            "level_since_local": _local(st.since, ctx.settings.timezone),
            "level_expires_local": _local(st.expires_at, ctx.settings.timezone),
            "config": _config_health(ctx),
            # 15秒接通率, 24-hour 接通率, ASA, abandons within 15 s, 满意率 over the last 24 hours, coloured
            "national": await national.last_24h(ctx, setup.targets)}


def _config_health(ctx: Context) -> dict[str, Any] | None:
    """The files on disk not in force (which file, line, since when), for the wall."""
    if ctx.status is None:
        return None
    st = ctx.status.as_dict()
    if not st.get("config_error"):
        return None
    return {"error": st["config_error"], "since_local": _local(st.get("config_error_since"), ctx.settings.timezone),
            "running_on": st.get("config_running_on")}


def _local(ts: float | None, tz: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(ts, tz).strftime("%m-%d %H:%M") if ts else ""


async def status(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    return web.json_response(await _board(ctx, await WallSetup.load(ctx)))


def _for_the_wall(board: dict[str, Any]) -> dict[str, Any]:
    """The board as the wall screen uses it: its figures, without the lists of
    every seat and every waiting caller (``/api/status`` keeps them). At
    Beijing's peak those lists made each event over 512 KB, pushed every second
    to every wall screen."""
    live = board.get("live")
    if not live:
        return board
    trimmed = {k: v for k, v in live.items() if k != "seats"}
    trimmed["queues"] = {n: {k: v for k, v in q.items() if k != "callers"} for n, q in live["queues"].items()}
    return {**board, "live": trimmed}


async def _shared_event(ctx: Context, setup: WallSetup) -> bytes:
    """One board per push interval for all open wallboards: twenty streams used
    to build twenty boards in the same instant, a burst the calls' loop waited
    behind. Streams arriving while it is built wait for the same one."""
    cache = ctx.__dict__.setdefault("_wallboard", {"at": -1e9, "body": b"", "building": None})
    if time.monotonic() - cache["at"] < WALLBOARD_PUSH_S / 2:
        return cache["body"]
    if cache["building"] is None:
        async def build() -> bytes:
            try:
                data = json.dumps(_for_the_wall(await _board(ctx, setup)), ensure_ascii=False)
                cache.update(at=time.monotonic(), body=f"event: board\ndata: {data}\n\n".encode())
                return cache["body"]
            finally:
                cache["building"] = None
        cache["building"] = asyncio.ensure_future(build())
    return await asyncio.shield(cache["building"])


async def events(request: web.Request) -> web.StreamResponse:
    """The wallboard's feed: one event per second, no reload."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    ctx = ctx_of(request)
    setup = await WallSetup.load(ctx)
    try:
        while await still_signed_in(request):      # a sign-out or password change ends the stream
            await resp.write(await _shared_event(ctx, setup))
            await asyncio.sleep(WALLBOARD_PUSH_S)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return resp


async def contingency_get(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    o = await contingency.overview(ctx.redis)
    plan = await _plan(request)
    return web.json_response({
        "state": o.state.__dict__, "proposal": o.proposal.__dict__ if o.proposal else None,
        "applied": o.applied.__dict__,
        "mode": plan.mode,
        "levels": [{"level": lv.level, "name": lv.name, "name_en": lv.name_en, "announcements": lv.announcements,
                    "callback": lv.callback, "short_menu": lv.short_menu, "expire_after_h": lv.expire_after_h}
                   for lv in plan.levels],
        "history": [history_row(e, ctx.settings.timezone) for e in await contingency.history(ctx.redis, 30)]})


async def contingency_set(request: web.Request) -> web.Response:
    data = body(request)           # confirm is true: the schema says so
    st = await contingency.set_level(ctx_of(request).redis, await _plan(request), data["level"], by=_by(request),
                                     now=ctx_of(request).clock.now(),
                                     reason=data["reason"], expires_in_h=data.get("expires_in_h"))
    return web.json_response({"state": st.__dict__})


async def proposal_answer(request: web.Request) -> web.Response:
    data = body(request)
    redis = ctx_of(request).redis
    if data["accept"] is True:
        _, st = await contingency.accept_proposal(redis, await _plan(request), by=_by(request),
                                                  now=ctx_of(request).clock.now())
        return web.json_response({"state": st.__dict__})
    prop = await contingency.reject_proposal(redis, by=_by(request), reason=data.get("reason", ""))
    return web.json_response({"rejected": prop.level})


REASON = string(pattern=schemas.NONBLANK, max_length=500,
                message="请写明原因（最多 500 字）：审计日志要记录为什么切换级别 — a reason is required (at most 500 "
                        "characters): the audit log says why the level changed")
LEVEL_STATE = fields_of({"level": INT, "since": NULL_NUM, "by": NULL_STR, "reason": NULL_STR, "how": NULL_STR,
                         "expires_at": NULL_NUM})
PROPOSAL = {"type": ["object", "null"]}
SET_LEVEL = obj({
    "level": {"type": "integer", "minimum": 0, "maximum": MAX_LEVEL,
              "description": "a level of the plan in force (queue/contingency.yaml): one it does not have is "
                             "refused with 422",
              "x-message": f"级别应为 0 到 {MAX_LEVEL} 的整数 — level must be a whole number from 0 to {MAX_LEVEL}"},
    "reason": REASON,
    "confirm": {"const": True, "description": "switching the level changes what every caller hears",
                "x-message": "请确认：切换级别会改变每位来电者听到的内容 — confirm must be true: switching the level "
                             "changes what every caller hears"},
    "expires_in_h": {"type": "number", "exclusiveMinimum": 0, "maximum": contingency.MAX_EXPIRY_H,
                     "description": "stand down after this many hours unless renewed (default: the level's "
                                    "expire_after_h)",
                     "x-message": f"有效时长应为 0 到 {contingency.MAX_EXPIRY_H} 小时 — expires_in_h: hours from 0 "
                                  f"to {contingency.MAX_EXPIRY_H}"}},
    ["level", "reason", "confirm"],
    [{"level": 2, "reason": "供暖政策发布，来电激增 heating policy published", "confirm": True, "expires_in_h": 8},
     {"level": 7, "reason": "a level the shipped plan does not have", "confirm": True}])

NATIONAL = fields_of({"answered_within_15s_rate": NULL_NUM, "answer_rate_24h": NULL_NUM,
                      "average_speed_of_answer_s": NULL_NUM, "abandoned_within_15s": {"type": ["integer", "null"]},
                      "satisfaction_rate": NULL_NUM, "survey": OBJ, "window_s": NUM, "complete": BOOL,
                      "colours": OBJ, "targets": OBJ})
BOARD = fields_of({"live": {"type": ["object", "null"]}, "level": INT, "level_name": STR, "proposal": PROPOSAL,
                   "callbacks": OBJ, "at": NUM, "wall": OBJ, "colours": OBJ, "timezone": STR, "national": NATIONAL})
# each event of the wallboard's stream: `event: board`, its data the board as JSON
BOARD_EVENT = fields_of({"event": {"const": "board"},
                         "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": BOARD}})

ROUTES = [
    Route("GET", "/api/status", status, SEATS + ("auditor",), "live queues, seats, level, callback backlog",
          tag="seat manager", answers=answer(BOARD)),
    Route("GET", "/api/events", events, SEATS, "the wallboard feed (text/event-stream, one event a second)",
          tag="seat manager", answers=answer(BOARD_EVENT, media="text/event-stream")),
    Route("GET", "/api/contingency", contingency_get, SEATS, "the level, the plan's levels, proposal, history",
          tag="seat manager",
          answers=answer(fields_of({"state": LEVEL_STATE, "proposal": PROPOSAL, "applied": OBJ, "mode": STR,
                                    "levels": array(fields_of({"level": INT, "name": STR})),
                                    "history": array(OBJ)}))),
    Route("POST", "/api/contingency", contingency_set, SEATS, "switch the contingency level", SET_LEVEL,
          "seat manager", errors=(422,), answers=answer(fields_of({"state": LEVEL_STATE}))),
    Route("POST", "/api/contingency/proposal", proposal_answer, SEATS, "accept or reject the automatic proposal",
          obj({"accept": BOOL, "reason": string(max_length=500)}, ["accept"],
              [{"accept": True}, {"accept": False, "reason": "the queues are already emptying"}]), "seat manager",
          errors=(409,),
          answers=answer({"type": "object", "oneOf": [fields_of({"state": LEVEL_STATE}),
                                                      fields_of({"rejected": INT})]})),
]
