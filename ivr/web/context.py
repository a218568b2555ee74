"""What the API modules share: the request's context (Redis, settings,
accounts, the engine's read-only status), the route table's entries with their
schemas, the signed-in principal, requests read with limits and checked
against those schemas (``check_request``), and the JSON errors (``error_of``
maps the errors the services raise)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from ivr.accounts.store import Accounts, Principal
from ivr.audit.chain import AuditLog
from ivr.clock import Clock, WallClock
from ivr.errors import (
    ConfigInvalid,
    Conflict,
    FlowInvalid,
    InvalidInput,
    IvrError,
    LevelInvalid,
    NotFound,
    PublishError,
    RequestInvalid,
)
from ivr.redisdb import keys
from ivr.web import schemas
from ivr.web.schemas import Schema

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ivr.runtime.status import StatusView
    from ivr.settings import Settings

COOKIE = "ivr_session"
CSRF_HEADER = "X-CSRF-Token"
MAX_BODY = 20 * 1024 * 1024     # the largest request: an uploaded recording
MAX_JSON = 2 * 1024 * 1024      # a flow's source is the largest JSON body
STATIC = Path(__file__).parent / "static"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """One route: how it is served, who may use it, and its rules as data. The
    guard checks ``params``, ``query`` and ``body`` before the handler runs and
    the OpenAPI document (``ivr.web.openapi``) states the same schemas, so the
    two cannot disagree."""
    method: str
    path: str                       # aiohttp's pattern: {name:.+} becomes {name} in the document
    handler: Handler
    roles: tuple[str, ...]          # () = no sign-in needed
    summary: str
    body: Schema | None = None      # the JSON body's schema (the guard parses and checks it)
    tag: str = "general"
    params: dict[str, Schema] = field(default_factory=dict)   # path parameters (unlisted: any text)
    query: dict[str, Schema] = field(default_factory=dict)    # query parameters, optional unless listed in:
    required_query: tuple[str, ...] = ()
    form: Schema | None = None      # a multipart/form-data body: the handler reads it, with ``check``
    answers: dict[str, dict] = field(default_factory=lambda: {"200": {"description": "OK"}})
    errors: tuple[int, ...] = ()    # JSON errors the handler itself sends (404, 409, 422, 503...)


@dataclass
class Context:
    redis: aioredis.Redis
    settings: Settings
    accounts: Accounts
    status: StatusView | None = None    # the engine's read-only status (None: the web app alone, in tests)
    clock: Clock = field(default_factory=WallClock)   # the engine's clock (a drill's simulated one)
    routes: list[Route] = field(default_factory=list)
    # each registered aiohttp route's entry: the guard reads the roles from here
    route_of: dict[web.AbstractRoute, Route] = field(default_factory=dict)

    def audit(self) -> AuditLog:
        return AuditLog(self.redis, keys.CONSOLE_AUDIT)


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def principal(request: web.Request) -> Principal:
    """Who is signed in, in a handler of a route with roles (the guard let them in)."""
    return request[PRINCIPAL]


CTX = web.AppKey("ctx", Context)
PRINCIPAL = web.RequestKey("principal", Principal)     # set by the guard when someone is signed in
BODY = web.RequestKey("body", dict)                    # the JSON body, checked by the guard


def ctx_of(request: web.Request) -> Context:
    return request.app[CTX]


def bad_request(message: str, status: int = 400) -> web.HTTPException:
    """An HTTP error whose JSON body the shield middleware passes on as is."""
    cls = {400: web.HTTPBadRequest, 413: web.HTTPRequestEntityTooLarge,
           415: web.HTTPUnsupportedMediaType}[status]
    kw = {"max_size": MAX_JSON, "actual_size": 0} if status == 413 else {}
    return cls(text=json.dumps({"error": message}, ensure_ascii=False), content_type="application/json", **kw)


def require_json(request: web.Request) -> None:
    """JSON bodies only, declared as such: a form or text/plain body is what a
    cross-site form can send without a preflight (login CSRF)."""
    if request.content_type != "application/json":
        raise bad_request("请求体须为 JSON（Content-Type: application/json） the body must be JSON, sent as "
                          "Content-Type: application/json", 415)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")        # Python's json reads NaN and Infinity; JSON has neither


async def body_json(request: web.Request) -> dict:
    require_json(request)
    if request.content_length is not None and request.content_length > MAX_JSON:
        raise bad_request(f"请求体过大 the body is over {MAX_JSON // (1024 * 1024)} MB", 413)
    raw = await request.read()
    if len(raw) > MAX_JSON:
        raise bad_request(f"请求体过大 the body is over {MAX_JSON // (1024 * 1024)} MB", 413)
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):          # JSONDecodeError and bad UTF-8 are ValueErrors
        raise bad_request("请求体不是有效的 JSON the body is not JSON") from None
    if not isinstance(data, dict):
        raise bad_request("请求体须为 JSON 对象 the body must be a JSON object")
    return data


async def check_request(request: web.Request, route: Route) -> None:
    """The route's path parameters, query and body against its schemas (the
    ones the OpenAPI document states): 400, 413 or 415 before the handler runs.
    The checked body is ``body(request)``."""
    try:
        for name, schema in route.params.items():
            schemas.check(schema, request.match_info[name], name)
        missing = [q for q in route.required_query if q not in request.query]
        if missing:
            raise RequestInvalid(f"缺少查询参数 — missing query parameter(s): {', '.join(missing)}")
        for name, schema in route.query.items():
            for value in request.query.getall(name, []):
                schemas.check(schema, value, name)
        if route.form is not None and request.content_type != "multipart/form-data":
            raise bad_request("请以 multipart/form-data 上传 send multipart/form-data with a 'name' field and a "
                              "'file'", 415)
        if route.body is not None:
            request[BODY] = schemas.check(route.body, await body_json(request))
    except RequestInvalid as exc:
        raise bad_request(str(exc)) from None


def body(request: web.Request) -> dict:
    """The JSON body, checked against the route's schema by the guard."""
    return request[BODY]


async def still_signed_in(request: web.Request) -> bool:
    """For long-lived responses (the wallboard stream): is the sign-in that
    opened it still valid? A sign-out or a password change ends it."""
    who = request.get(PRINCIPAL)
    if who is None:
        return False
    accounts = ctx_of(request).accounts
    if who.via == "token":
        auth = request.headers.get("Authorization", "")
        return await accounts.token(auth[7:].strip()) is not None
    return await accounts.session_alive(request.cookies.get(COOKIE, ""))


def problem_dicts(problems: list) -> list[dict]:
    """Validation problems as the console shows them, each at its line and column."""
    return [{"path": p.path, "line": p.line, "col": p.col, "message": p.message, "warning": p.warning, "text": str(p)}
            for p in problems]


def error_of(exc: IvrError) -> web.Response | None:
    """The JSON answer to an error a service raised on purpose; None: not a
    request's fault (a bug or a broken setting: the shield's generic 500).

    A request that does not match the document is a 400, refused by the guard
    before any service runs; what a service refuses afterwards is the content
    of a well-formed request (a flow with errors, a level the plan does not
    have, a recording that is not audio): 422, with the reason."""
    if isinstance(exc, FlowInvalid):
        return web.json_response({"error": "流程有错误，未作改动 — the flow has errors: nothing was changed",
                                  "problems": problem_dicts(exc.problems)}, status=422)
    if isinstance(exc, ConfigInvalid):
        return web.json_response({"error": "配置有错误，未作改动 — the change would break the configuration: nothing "
                                           "was written", "problems": problem_dicts(exc.problems)}, status=422)
    for kinds, status in (((RequestInvalid,), 400), ((InvalidInput, LevelInvalid), 422), ((NotFound,), 404),
                          ((Conflict, PublishError), 409)):
        if isinstance(exc, kinds):
            return error(status, str(exc))
    return None
