"""The aiohttp application: authentication (sessions and API tokens), roles,
CSRF on every change, JSON-only request bodies, JSON errors (``security``:
headers on every response, no traceback ever reaches a user), sign-in rate
limits (``login_limit``), the OpenAPI document built from the same route table
that serves the requests, /healthz and /metrics."""

from __future__ import annotations

import hmac
import math
from typing import TYPE_CHECKING

from aiohttp import web

from ivr import names
from ivr.accounts.store import ROLE_NAMES, Accounts, Principal
from ivr.clock import Clock, WallClock
from ivr.errors import IvrError
from ivr.metrics import AGI_COMMAND_SECONDS, counter, gauge
from ivr.services import callbacks as callback_service
from ivr.services import pbxs as pbx_service
from ivr.services import status as status_service
from ivr.web import (
    api_auditors,
    api_config,
    api_followups,
    api_operations,
    api_reconcile,
    api_seat_managers,
    console,
    openapi,
    schemas,
    security,
)
from ivr.web.context import (
    COOKIE,
    CSRF_HEADER,
    CTX,
    MAX_BODY,
    PRINCIPAL,
    STATIC,
    Context,
    Handler,
    Route,
    body,
    check_request,
    ctx_of,
    error,
    error_of,
    principal,
)
from ivr.web.login_limit import LoginLimiter
from ivr.web.schemas import BOOL, NULL_INT, NULL_STR, OBJ, STR, answer, fields_of, obj, string

SIGNED_IN = ("operations", "seat_manager", "auditor")
HEALTH = fields_of({"ok": BOOL, "redis": BOOL, "calls_in_progress": {"type": ["integer", "null"]},
                    "ami_connected": BOOL, "leader": BOOL},
                   {"calls_handled": NULL_INT, "parts": OBJ, "parts_ok": BOOL, "config_version": {"type": ["integer", "null"]},
                    "config_error": NULL_STR, "clock": STR, "engine_responding": BOOL,
                    "engine_problem": STR, "pbxs": {"type": "array", "items": OBJ}, "pbxs_error": NULL_STR})

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ivr.runtime.status import StatusView
    from ivr.settings import Settings


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Who is asking, whether their role may, the CSRF header of a session's
    change, then the request against the route's schemas (``check_request``):
    in that order, so whoever may not use a route learns nothing of its rules."""
    ctx = ctx_of(request)
    route = ctx.route_of.get(request.match_info.route)      # None: static files, 404s, 405s
    who: Principal | None = None
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        who = await ctx.accounts.token(auth[7:].strip())
        if who is None:
            return error(401, "API 令牌无效或已撤销 — unknown or revoked API token")
    else:
        who = await ctx.accounts.session(request.cookies.get(COOKIE, ""))
    if who is not None:
        request[PRINCIPAL] = who
    if route is not None and route.roles:
        if who is None:
            if request.path.startswith("/console/"):
                raise web.HTTPFound("/console/login")
            return error(401, "请先登录 — sign in first (POST /api/login) or send an API token")
        if who.role not in route.roles and who.role != "admin":
            return error(403, f"{ROLE_NAMES[who.role]} 无权使用 — may not use {request.method} {request.path}")
        if request.method not in ("GET", "HEAD") and who.via == "session":
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or not hmac.compare_digest(sent, who.csrf):
                return error(403, f"缺少或错误的 {CSRF_HEADER}，请刷新页面 — missing or wrong {CSRF_HEADER} header")
    return await _handle(request, handler, route)


async def _handle(request: web.Request, handler: Handler, route: Route | None) -> web.StreamResponse:
    try:
        if route is not None:
            await check_request(request, route)
        return await handler(request)
    except web.HTTPException:
        raise            # the shield answers it in JSON, keeping Allow and Retry-After
    except IvrError as exc:       # a service refused: the request's fault, said as such (else the shield's 500)
        resp = error_of(exc)
        if resp is None:
            raise
        return resp


def add(app: web.Application, route: Route) -> None:
    for what, schema in [("body", route.body), ("form", route.form), *route.params.items(), *route.query.items()]:
        if schema is not None:
            schemas.supported(schema, f"{route.method} {route.path} {what}")
    assert set(route.params) <= set(openapi.params_of(route.path)), route.path
    ctx = app[CTX]
    ctx.route_of[app.router.add_route(route.method, route.path, route.handler)] = route
    ctx.routes.append(route)


# -- general routes -----------------------------------------------------------------

async def healthz(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    try:
        await ctx.redis.ping()
        redis_ok = True
    except Exception:
        redis_ok = False
    st = ctx.status
    body = {"ok": redis_ok, "redis": redis_ok, "calls_in_progress": None, "ami_connected": False, "leader": False}
    if st is not None:
        body |= st.as_dict()
        body["ok"] = redis_ok and st.config_error is None and st.as_dict()["parts_ok"]
    # lines unknown is not a failure: the flows admit without them (today's behaviour), and this says why
    snap = await status_service.live(ctx.redis) if redis_ok else None
    body |= status_service.lines_health(snap)
    # each PBX of queue/pbxs.yaml and its state (not a failure either: the link's own state is ami_connected)
    body |= pbx_service.health(ctx.settings.home, snap, ctx.clock.now())
    return web.json_response(body, status=200 if redis_ok else 503)


def _line_metrics(snap: dict | None, blocked: int) -> list[str]:
    ln = status_service.lines(snap)
    pbx = {"pbx": ln["pbx"]}
    out = gauge("ivr_lines_known", "1 if the PBX's lines in use are known (0: no line-based admission)",
                [(pbx, int(ln["known"]))])
    if ln["known"]:
        out += gauge("ivr_lines_in_use", "Trunk lines in use (GROUP_COUNT of the dialplan's trunk group)",
                     [(pbx, ln["in_use"])])
        out += gauge("ivr_lines_free", "Trunk lines free, below the lower of queue/lines.yaml and IVR_LINES",
                     [(pbx, ln["free"])])
        out += gauge("ivr_lines_by_use", "Trunk lines in use by what holds them",
                     [(pbx | {"use": u}, ln[u]) for u in ("in_flows", "waiting", "talking", "callbacks")])
    if ln["total"] is not None:
        out += gauge("ivr_lines_total", "Trunk lines of the PBX (queue/lines.yaml)", [(pbx, ln["total"])])
    out += counter("ivr_lines_blocked_total", "Attempts the dialplan answered busy, lines full (each recorded "
                   "for a callback)", [(pbx, blocked)])
    return out


_NATIONAL_METRICS = (  # (figure, metric, help)
    ("answered_within_15s_rate", "ivr_answered_within_15s_ratio", "15秒接通率: calls answered within 15 s of joining "
     "the queue / calls that wanted a person, last 24 h (GB/T 33358-2016)"),
    ("answer_rate_24h", "ivr_answer_rate_24h_ratio", "24小时接通率: answered / calls that wanted a person, last 24 h"),
    ("average_speed_of_answer_s", "ivr_average_speed_of_answer_seconds", "平均应答时长: mean wait of the calls "
     "answered, last 24 h"),
    ("abandoned_within_15s", "ivr_abandoned_within_15s", "15秒内放弃: callers who hung up within 15 s of joining "
     "the queue, last 24 h"),
    ("satisfaction_rate", "ivr_satisfaction_ratio", "满意率: (满意 + 基本满意) / surveys offered, last 24 h"))
_COLOUR_VALUE = {"green": 0, "amber": 1, "red": 2}


async def _national_metrics(ctx: Context) -> list[str]:
    """The national figures of the last 24 hours (docs/audit-report.md), their
    targets (queue/targets.yaml) and where each stands: 0 met, 1 amber, 2 red.
    A figure with nothing to divide yet is left out (no sample, not 0)."""
    from ivr.services import config as config_service
    from ivr.web import national

    cfg = await config_service.configuration(ctx.redis, ctx.settings.home, ctx.settings.timezone, ctx.clock.now())
    n = await national.last_24h(ctx, cfg.ops.targets)
    out: list[str] = []
    for figure, name, help_text in _NATIONAL_METRICS:
        out += gauge(name, help_text, [({}, n[figure])] if n[figure] is not None else [])
    out += gauge("ivr_survey_answers", "满意度调查 survey answers over the last 24 h, by answer (offered = their sum)",
                 [({"answer": a}, n["survey"][a]) for a in ("satisfied", "basically_satisfied", "dissatisfied",
                                                            "no_answer")])
    out += gauge("ivr_national_target", "The target seat managers set (queue/targets.yaml): rates at least, ASA "
                 "and abandons at most", [({"figure": f}, v) for f, v in n["targets"].items()
                                          if v is not None and f != "amber_within_pct"])
    out += gauge("ivr_national_colour", "Each figure against its target: 0 met, 1 amber, 2 red",
                 [({"figure": f}, _COLOUR_VALUE[c]) for f, c in n["colours"].items() if c])
    return out


async def metrics(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    snap = await status_service.live(ctx.redis)
    level = await status_service.level(ctx.redis)     # -1 for a stored value that is not a level
    counts = await callback_service.counts(ctx.redis)
    st = ctx.status
    lines = gauge("ivr_calls_in_progress", "Calls this process is running a flow for",
                  [({}, st.calls_in_progress if st else 0)])
    if st is not None:
        health = st.leader_health()
        lines += gauge("ivr_leader", "1 if this process holds the leader role", [({}, int(health["leader"]))])
        lines += gauge("ivr_leader_part_up", "Leader parts running (1) or restarting (0)",
                       [({"part": n}, int(p["state"] == "running")) for n, p in health["parts"].items()])
        lines += gauge("ivr_leader_part_restarts", "Restarts of each leader part",
                       [({"part": n}, p["restarts"]) for n, p in health["parts"].items()])
        lines += gauge("ivr_config_reload_failed", "1 if a changed data file was refused (the previous one is in force)",
                       [({}, int(st.config_error is not None))])
        since = st.as_dict().get("config_error_since")
        lines += gauge("ivr_config_error_since_seconds", "When the files on disk stopped being in force (0: they are)",
                       [({}, since or 0)])
        lines += gauge("ivr_config_on_last_good", "1 if the engine runs on the last good configuration from Redis "
                       "because the files on disk were broken at start", [({}, int(st.as_dict().get(
                           "config_running_on") == "last_good"))])
    lines += gauge("ivr_contingency_level", "Contingency level in force", [({}, level)])
    lines += gauge("ivr_callback_backlog", "Open callbacks", [({"state": k}, counts[k])
                                                             for k in ("pending", "ready", "assigned")])
    now = ctx.clock.now()
    oldest = await callback_service.oldest_open_age(ctx.redis, now)
    lines += gauge("ivr_callback_oldest_open_seconds", "Age of the oldest open callback, from its first call, in "
                   "any state (waiting, being dialled, waiting for its next attempt; 0: none open)", [({}, oldest or 0)])
    overdue = await callback_service.overdue_ready(ctx.redis, now)
    lines += gauge("ivr_callback_overdue", "Callbacks ready to dial past their deadline (callback/policy.yaml)",
                   [({"kind": k}, v) for k, v in overdue.items()])
    up, linked = pbx_service.metric_samples(ctx.settings.home, snap, now)
    lines += gauge("ivr_pbx_up", "1 if the engine's AMI link to the PBX (queue/pbxs.yaml) is up", up)
    lines += gauge("ivr_pbx_linked", "1 if the leader holds an AMI link to this PBX, up or down (0: its secret_env "
                   "unset, or no leader)", linked)
    if snap is not None:
        q = snap["queues"]
        lines += gauge("ivr_queue_waiting", "Callers waiting", [({"queue": n}, v["waiting"]) for n, v in q.items()])
        lines += gauge("ivr_queue_emergency_waiting", "Emergency callers waiting",
                       [({"queue": n}, v["emergency_waiting"]) for n, v in q.items()])
        lines += gauge("ivr_queue_longest_wait_seconds", "Longest current wait",
                       [({"queue": n}, v["longest_wait_s"]) for n, v in q.items()])
        lines += gauge("ivr_queue_abandon_ratio", "Abandoned / offered over the window",
                       [({"queue": n}, v["abandon_rate"]) for n, v in q.items()])
        lines += gauge("ivr_queue_answered", "Callers answered by a seat over the live window (ivr_live_window_seconds)",
                       [({"queue": n}, v["answered"]) for n, v in q.items()])
        lines += gauge("ivr_queue_abandoned", "Callers who hung up waiting over the live window "
                       "(ivr_live_window_seconds)", [({"queue": n}, v["abandoned"]) for n, v in q.items()])
        lines += gauge("ivr_live_window_seconds", "The window of answered, abandoned and the rates",
                       [({}, snap["window_s"])])
        lines += gauge("ivr_seats", "Seats by state, each counted once (busy = talking, wrapup, idle, paused, "
                       "reserved = emergency seats on shift, offline); on shift = all but offline",
                       [({"state": k}, v) for k, v in snap["seat_states"].items()])
        lines += gauge("ivr_live_age_seconds", "Age of the live figures", [({}, ctx.clock.now() - snap["at"])])
        per_pbx = snap.get("pbxs") or {}
        if per_pbx:     # several PBXs: the figures above are the city's (the PBXs whose link is up), these each one's
            lines += gauge("ivr_pbx_queue_waiting", "Callers waiting in each queue of each PBX (its last figures "
                           "while its link is down: ivr_pbx_up)",
                           [({"pbx": p, "queue": n}, v["waiting"]) for p, f in per_pbx.items()
                            for n, v in f.get("queues", {}).items()])
            lines += gauge("ivr_pbx_emergency_waiting", "Emergency callers waiting on each PBX",
                           [({"pbx": p}, f.get("emergency_waiting", 0)) for p, f in per_pbx.items()])
            lines += gauge("ivr_pbx_seats", "Seats of each PBX by state (as ivr_seats)",
                           [({"pbx": p, "state": k}, v) for p, f in per_pbx.items()
                            for k, v in f.get("seat_states", {}).items()])
    lines += _line_metrics(snap, await status_service.lines_blocked(
        ctx.redis, status_service.lines(snap)["pbx"]))
    lines += await _national_metrics(ctx)
    lines += AGI_COMMAND_SECONDS.render()
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


async def login(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    data = body(request)
    user, password = data["user"], data["password"]
    address = request.remote or "unknown"
    limiter = LoginLimiter(ctx.redis, ctx.audit())
    wait_s = await limiter.blocked_for(user, address)
    if wait_s:
        await limiter.tarpit(wait_s)
        retry = max(1, math.ceil(wait_s))
        return web.json_response({"error": f"登录尝试过多，请 {retry} 秒后再试 too many sign-in attempts: "
                                           f"try again in {retry} s"},
                                 status=429, headers={"Retry-After": str(retry)})
    role = await ctx.accounts.check(user, password)
    if role is None:
        await limiter.failed(user, address)
        return error(401, "用户名或密码错误 wrong user name or password")
    await limiter.succeeded(user)
    token, csrf = await ctx.accounts.open_session(user, role)
    resp = web.json_response({"user": data["user"], "role": role, "csrf": csrf})
    resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                    secure=request.secure)
    await ctx.audit().append([{"kind": "signed_in", "at": ctx.clock.now(), "by": data["user"], "role": role}])
    return resp


async def logout(request: web.Request) -> web.Response:
    await ctx_of(request).accounts.close_session(request.cookies.get(COOKIE, ""))
    resp = web.json_response({"ok": True})
    resp.del_cookie(COOKIE, path="/")
    return resp


async def me(request: web.Request) -> web.Response:
    p = principal(request)
    return web.json_response({"user": p.user, "role": p.role, "role_name": ROLE_NAMES[p.role], "csrf": p.csrf})


async def openapi_doc(request: web.Request) -> web.Response:
    return web.json_response(openapi.document(ctx_of(request).routes))


def routes() -> list[Route]:
    """Every route the console serves, with its rules: what ``make_app`` serves
    and what the OpenAPI document states."""
    return [
        Route("GET", "/favicon.ico", security.favicon, (), "the console's icon", tag="console",
              answers=answer(media="image/svg+xml")),
        Route("GET", "/healthz", healthz, (), "liveness: Redis reachable, calls in progress",
              answers={**answer(HEALTH), **answer(HEALTH, status="503", description="Redis is unreachable")}),
        Route("GET", "/metrics", metrics, (), "Prometheus metrics", answers=answer(media="text/plain")),
        Route("GET", "/api/openapi.json", openapi_doc, (), "this document", answers=answer(OBJ)),
        Route("POST", "/api/login", login, (), "sign in: a session cookie and a CSRF token",
              obj({"user": string(pattern=schemas.whole(names.USER), description=names.USER.what),
                   "password": string(max_length=1024)}, ["user", "password"],
                  [{"user": "ops", "password": "correct horse battery"}]), "session",
              answers=answer(fields_of({"user": STR, "role": STR, "csrf": STR})), errors=(429,)),
        Route("POST", "/api/logout", logout, SIGNED_IN, "sign out", tag="session",
              answers=answer(fields_of({"ok": {"const": True}}))),
        Route("GET", "/api/me", me, SIGNED_IN, "who is signed in", tag="session",
              answers=answer(fields_of({"user": STR, "role": {"enum": list(ROLE_NAMES)}, "role_name": STR,
                                        "csrf": STR}))),
    ] + api_operations.ROUTES + api_seat_managers.ROUTES + api_auditors.ROUTES + api_reconcile.ROUTES \
        + api_config.ROUTES + api_followups.ROUTES + console.ROUTES


def make_app(*, redis: aioredis.Redis, settings: Settings, status: StatusView | None = None,
             clock: Clock | None = None) -> web.Application:
    app = web.Application(middlewares=[security.shield, guard], client_max_size=MAX_BODY)
    app.on_response_prepare.append(security.add_headers)
    app[CTX] = Context(redis, settings, Accounts(redis), status, clock or WallClock())
    for r in routes():
        add(app, r)
    app.router.add_static("/static/", STATIC)
    return app
