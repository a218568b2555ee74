"""The OpenAPI 3.1 document, built from the route table that serves the
requests: each route's schemas (the ones the guard checks, ``ivr.web.schemas``),
its roles, and every status it can answer — the guard's (401, 403, 302 for a
console page, 400/413/415 for input) and the handler's own (``Route.errors``).

400 means the request does not match this document; 422 that it does, and a
rule no schema can state refused its content (a flow with errors, dates out of
order, a recording that is not audio): tools can trust that a request this
document calls valid is never answered 400.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ivr.web.context import COOKIE, CSRF_HEADER

if TYPE_CHECKING:
    from ivr.web.context import Route

PROBLEM = {"type": "object", "required": ["path", "line", "col", "message", "warning", "text"],
           "properties": {"path": {"type": "string"}, "line": {"type": "integer"}, "col": {"type": "integer"},
                          "message": {"type": "string"}, "warning": {"type": "boolean"}, "text": {"type": "string"}}}
ERROR = {"type": "object", "required": ["error"],
         "properties": {"error": {"type": "string", "minLength": 1},
                        "problems": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}}}}

WHY = {
    302: "a console page without a sign-in: to the sign-in page",
    400: "the request does not match this document: the message names the field",
    401: "not signed in, or an unknown or revoked API token",
    403: "the signed-in role may not use this, or a change made with a session lacks its X-CSRF-Token",
    404: "not found",
    409: "the state no longer allows it: the message says why",
    413: "the body is too large",
    415: "the body is not of the media type this document names",
    422: "well-formed, but its content is refused by a rule no schema states: the message (and the problems, "
         "at line and column) says which",
    429: "too many sign-in attempts: try again after Retry-After seconds",
    503: "a service this needs is missing on the server",
}
ALL_ROLES = {"operations", "seat_manager", "auditor"}      # admin may use everything


def path_of(pattern: str) -> str:
    """aiohttp's ``/api/prompts/{name:.+}.wav`` as OpenAPI's ``/api/prompts/{name}.wav``."""
    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*):(?:[^{}]|\{[^{}]*\})*\}", r"{\1}", pattern)


def params_of(pattern: str) -> list[str]:
    return re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*)", pattern)


def statuses(route: Route) -> set[int]:
    """Every status the guard and the handler can answer besides ``route.answers``."""
    out = {401} | set(route.errors)       # 401: an unknown API token, on any route
    writes = route.method not in ("GET", "HEAD")
    if route.roles:
        if route.path.startswith("/console/"):
            out.add(302)
        if writes or not ALL_ROLES <= set(route.roles):
            out.add(403)
    if route.params or route.query or route.body is not None or route.form is not None:
        out.add(400)
    if route.body is not None or route.form is not None:
        out |= {413, 415}
    return out


def _error_answer(status: int) -> dict:
    answer: dict[str, Any] = {"description": WHY.get(status, "error"),
                              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if status == 302:
        return {"description": WHY[302], "headers": {"Location": {"schema": {"type": "string"}}}}
    if status == 429:
        answer["headers"] = {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}}}
    return answer


def operation(route: Route) -> dict:
    op: dict[str, Any] = {"summary": route.summary, "tags": [route.tag],
                          "operationId": f"{route.method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', path_of(route.path))}",
                          "responses": dict(route.answers)}
    for status in sorted(statuses(route)):
        op["responses"].setdefault(str(status), _error_answer(status))
    if route.roles:
        op["security"] = [{"session": [], "csrf": []} if route.method not in ("GET", "HEAD") else {"session": []},
                          {"token": []}]
        op["x-roles"] = list(route.roles)
    else:           # no sign-in needed, but a token that is sent must be a known one (else 401)
        op["security"] = [{}, {"token": []}]
    params = [{"name": p, "in": "path", "required": True, "schema": route.params.get(p, {"type": "string"})}
              for p in params_of(route.path)]
    params += [{"name": q, "in": "query", "required": q in route.required_query, "schema": s}
               for q, s in route.query.items()]
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": route.body}}}
    if route.form is not None:
        op["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": route.form}}}
    return op


def document(routes: list[Route]) -> dict:
    paths: dict[str, dict] = {}
    for r in routes:
        paths.setdefault(path_of(r.path), {})[r.method.lower()] = operation(r)
    return {"openapi": "3.1.0",
            "info": {"title": "12345 IVR engine API", "version": "1",
                     "description": "Everything the console does. Sign in with POST /api/login (a session cookie "
                                    f"and a CSRF token to send as {CSRF_HEADER} on every change) or send "
                                    "Authorization: Bearer <token> (ivr users token). An unknown token is "
                                    "refused (401) on every route. 400: the request does not match this "
                                    "document; 422: it does, and its content was refused (the message says why)."},
            "components": {
                "securitySchemes": {
                    "session": {"type": "apiKey", "in": "cookie", "name": COOKIE},
                    "csrf": {"type": "apiKey", "in": "header", "name": CSRF_HEADER},
                    "token": {"type": "http", "scheme": "bearer"}},
                "schemas": {"Error": ERROR, "Problem": PROBLEM}},
            "paths": paths}
