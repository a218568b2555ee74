"""Seat managers' API: the live figures (also pushed as server-sent events for
the wallboard) and the contingency level."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from ivr.ami.controller import read_live
from ivr.callback.store import CallbackStore
from ivr.contingency.store import ContingencyStore
from ivr.contingency.supervisor import expiry_for
from ivr.project import Project, require_operations
from ivr.web.app import INT, STR, Route, body_json, ctx_of, error, fields, obj, principal, still_signed_in

SEATS = ("seat_manager",)
WALLBOARD_PUSH_S = 1.0


def _plan(request):
    ctx = ctx_of(request)
    return require_operations(Project(ctx.settings.home), ctx.settings.timezone).plan


async def _board(ctx) -> dict:
    snap = await read_live(ctx.redis)
    st = await ContingencyStore(ctx.redis).state()
    prop = await ContingencyStore(ctx.redis).proposal()
    counts = await CallbackStore(ctx.redis).counts()
    now = time.time()
    return {"live": snap, "level": st.level, "level_set_by": st.by, "level_reason": st.reason,
            "level_expires_at": st.expires_at, "proposal": prop.__dict__ if prop else None,
            "callbacks": counts, "at": now, "callback_oldest_age_s": await _oldest_age(ctx.redis, now)}


async def _oldest_age(redis, now: float) -> float | None:
    """Age of the oldest open callback. The lines are ordered by deadline and by
    due time, and within a kind the deadline follows the first call, so the
    heads of the lines hold the oldest one."""
    heads = []
    for key in ("ivr:cb:ready", "ivr:cb:pending"):
        heads += await redis.zrange(key, 0, 2)
    firsts = [await redis.hget(f"ivr:cb:n:{n}", "first_at") for n in heads]
    firsts = [float(f) for f in firsts if f]
    return round(now - min(firsts), 1) if firsts else None


async def status(request: web.Request) -> web.Response:
    return web.json_response(await _board(ctx_of(request)))


async def _shared_event(ctx) -> bytes:
    """One board per push interval for all open wallboards: twenty streams used
    to build twenty boards in the same instant, a burst the calls' loop waited
    behind. Streams arriving while it is built wait for the same one."""
    cache = ctx.__dict__.setdefault("_wallboard", {"at": -1e9, "body": b"", "building": None})
    if time.monotonic() - cache["at"] < WALLBOARD_PUSH_S / 2:
        return cache["body"]
    if cache["building"] is None:
        async def build() -> bytes:
            try:
                data = json.dumps(await _board(ctx), ensure_ascii=False)
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
    try:
        while await still_signed_in(request):      # a sign-out or password change ends the stream
            await resp.write(await _shared_event(ctx))
            await asyncio.sleep(WALLBOARD_PUSH_S)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return resp


async def contingency_get(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    store = ContingencyStore(ctx.redis)
    st, prop, applied = await store.state(), await store.proposal(), await store.applied()
    plan = _plan(request)
    return web.json_response({
        "state": st.__dict__, "proposal": prop.__dict__ if prop else None, "applied": applied.__dict__,
        "mode": plan.mode,
        "levels": [{"level": lv.level, "name": lv.name, "name_en": lv.name_en, "announcements": lv.announcements,
                    "callback": lv.callback, "short_menu": lv.short_menu, "expire_after_h": lv.expire_after_h}
                   for lv in plan.levels],
        "history": [e for _, e in await store.history(30)]})


async def contingency_set(request: web.Request) -> web.Response:
    data = fields(await body_json(request), {"level", "reason", "confirm", "expires_in_h"},
                  {"level", "reason", "confirm"})
    plan = _plan(request)
    level, reason = data["level"], str(data["reason"]).strip()
    if not isinstance(level, int) or not 0 <= level <= plan.top:
        return error(400, f"level must be a whole number from 0 to {plan.top}")
    if not reason:
        return error(400, "a reason is required: the audit log says why the level changed")
    if data["confirm"] is not True:
        return error(400, "confirm must be true: switching the level changes what every caller hears")
    hours = data.get("expires_in_h")
    if hours is not None and (not isinstance(hours, (int, float)) or not 0 < hours <= 24 * 14):
        return error(400, "expires_in_h: hours from 0 to 336")
    now = time.time()
    st = await ContingencyStore(ctx_of(request).redis).set_level(
        level, by=f"web:{principal(request).user}", reason=reason, how="manual", now=now,
        expires_at=expiry_for(plan, level, now, hours))
    return web.json_response({"state": st.__dict__})


async def proposal_answer(request: web.Request) -> web.Response:
    data = fields(await body_json(request), {"accept", "reason"}, {"accept"})
    store = ContingencyStore(ctx_of(request).redis)
    prop = await store.proposal()
    if prop is None:
        return error(409, "there is no proposal")
    who = f"web:{principal(request).user}"
    if data["accept"] is True:
        plan = _plan(request)
        now = time.time()
        st = await store.set_level(prop.level, by=who, how="accepted", reason=f"accepted proposal: {prop.reason}",
                                   expires_at=expiry_for(plan, prop.level, now), now=now)
        return web.json_response({"state": st.__dict__})
    await store.reject(by=who, reason=str(data.get("reason", "")))
    return web.json_response({"rejected": prop.level})


ROUTES = [
    Route("GET", "/api/status", status, SEATS + ("auditor",), "live queues, seats, level, callback backlog",
          tag="seat manager"),
    Route("GET", "/api/events", events, SEATS, "the wallboard feed (text/event-stream, one event a second)",
          tag="seat manager"),
    Route("GET", "/api/contingency", contingency_get, SEATS, "the level, the plan's levels, proposal, history",
          tag="seat manager"),
    Route("POST", "/api/contingency", contingency_set, SEATS, "switch the contingency level",
          obj({"level": INT, "reason": STR, "confirm": {"type": "boolean"}, "expires_in_h": {"type": "number"}},
              ["level", "reason", "confirm"]), "seat manager"),
    Route("POST", "/api/contingency/proposal", proposal_answer, SEATS, "accept or reject the automatic proposal",
          obj({"accept": {"type": "boolean"}, "reason": STR}, ["accept"]), "seat manager"),
]
