"""The console's pages: one page per role, each guarded by its role like the
API it calls; the pages are static HTML and JavaScript in ``static/``."""

from __future__ import annotations

from aiohttp import web

from ivr.web.context import STATIC, Route, principal
from ivr.web.schemas import answer
from ivr.web.security import page_csp

HOME = {"operations": "/console/ops", "seat_manager": "/console/seats", "auditor": "/console/audit",
        "admin": "/console/seats"}


def _page(name: str):
    async def serve(request: web.Request) -> web.FileResponse:
        # the page's own policy: its inline scripts and the handlers in the static files, by hash
        return web.FileResponse(STATIC / name, headers={"Cache-Control": "no-store",
                                                        "Content-Security-Policy": page_csp(STATIC / name)})
    return serve


async def home(request: web.Request) -> web.Response:
    raise web.HTTPFound(HOME[principal(request).role])


async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/console/")


ALL = ("operations", "seat_manager", "auditor")
HTML = answer(media="text/html")
TO = {"302": {"description": "to the signed-in user's page", "headers": {"Location": {"schema": {"type": "string"}}}}}
ROUTES = [
    Route("GET", "/", root, (), "the console", tag="console", answers=TO),
    Route("GET", "/console/login", _page("login.html"), (), "sign-in page", tag="console", answers=HTML),
    Route("GET", "/console/", home, ALL, "the signed-in user's home page", tag="console", answers=TO),
    Route("GET", "/console/ops", _page("ops.html"), ("operations",), "flows, prompts, announcements",
          tag="console", answers=HTML),
    Route("GET", "/console/seats", _page("seats.html"), ("seat_manager",), "wallboard and contingency plan",
          tag="console", answers=HTML),
    Route("GET", "/console/audit", _page("audit.html"), ("auditor",), "callback completion reports",
          tag="console", answers=HTML),
    Route("GET", "/console/config", _page("config.html"), ALL, "configuration files: in force, versions, rollback",
          tag="console", answers=HTML),
]
