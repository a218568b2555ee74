"""HTTP hardening for every response: security headers, a Content-Security-Policy
that lets the console run only its own code, and one place that turns any
error into a JSON answer staff can read (Chinese first) — never a traceback.

The console pages keep small inline scripts and ``onclick`` handlers; rather
than allowing inline script in general, the policy of each page lists the
SHA-256 of every inline ``<script>`` block of that page and of every inline
event handler found in the static files (``'unsafe-hashes'``), computed from
the files themselves, so a changed page never needs a hand-edited policy.
Styles may be inline (``style=`` attributes): with script locked down they
cannot run code.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from pathlib import Path

from aiohttp import web

from ivr import logs

log = logs.get("web")

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), geolocation=(), microphone=()",
}
INTERNAL_ERROR = "服务器内部错误，已记录 internal server error (logged)"
_STATUS_TEXT = {
    400: "请求有误 bad request", 401: "请先登录 sign in first", 403: "无权访问 forbidden",
    404: "未找到 not found", 405: "不支持该方法 method not allowed",
    413: "请求体过大 request body too large", 415: "不支持的内容类型 unsupported content type",
    429: "请求过多 too many requests",
}

_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
_HANDLER = re.compile(r"\son[a-z]+=\"([^\"]*)\"")
_csp_cache: dict[Path, tuple[tuple, str]] = {}


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def page_csp(page: Path) -> str:
    """The policy for one console page, from its inline code (cached by mtime)."""
    static = page.parent
    files = sorted([*static.glob("*.html"), *static.glob("*.js")])
    stamp = tuple(f.stat().st_mtime_ns for f in files)
    cached = _csp_cache.get(page)
    if cached and cached[0] == stamp:
        return cached[1]
    scripts = {_sha(s) for s in _SCRIPT.findall(page.read_text(encoding="utf-8"))}
    handlers = {_sha(h) for f in files for h in _HANDLER.findall(f.read_text(encoding="utf-8"))}
    script_src = " ".join(["'self'", *(["'unsafe-hashes'"] if handlers else []), *sorted(scripts | handlers)])
    csp = (f"default-src 'self'; script-src {script_src}; style-src 'self' 'unsafe-inline'; "
           "img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; "
           "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    _csp_cache[page] = (stamp, csp)
    return csp


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, including static files, errors and streams."""
    for k, v in HEADERS.items():
        response.headers.setdefault(k, v)
    response.headers.setdefault("Content-Security-Policy", API_CSP)


def json_error(status: int, message: str, headers: dict | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


@web.middleware
async def shield(request: web.Request, handler) -> web.StreamResponse:
    """The outermost middleware: HTTP errors become JSON with a readable message,
    anything unexpected a generic 500 and one logged event."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.content_type == "application/json" and exc.text:
            return web.Response(status=exc.status, text=exc.text, content_type="application/json",
                                headers={k: v for k, v in exc.headers.items()
                                         if k in ("Retry-After", "Allow", "WWW-Authenticate")})
        reason = _STATUS_TEXT.get(exc.status, "请求有误 error")
        detail = exc.reason if exc.reason and exc.reason not in reason else ""
        return json_error(exc.status, f"{reason}: {detail}" if detail else reason,
                          {k: v for k, v in exc.headers.items() if k in ("Retry-After", "Allow")})
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("web.unhandled", method=request.method, path=request.path)
        return json_error(500, INTERNAL_ERROR)


_FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
            'fill="#c8102e"/><text x="8" y="12" font-size="9" text-anchor="middle" fill="#fff" '
            'font-family="sans-serif">12</text></svg>')


async def favicon(request: web.Request) -> web.Response:
    return web.Response(text=_FAVICON, content_type="image/svg+xml",
                        headers={"Cache-Control": "public, max-age=86400"})
