"""The configuration files as a set (``ivr.services.config``): what is in
force and how the files on disk compare, each file's versions with diffs, a
file saved (checked with everything it touches first), an earlier version put
back, and the files edited on disk published.

Who may change a file follows who owns its folder: operations staff own
``prompts/`` and ``flows/`` lists and calendars, seat managers ``queue/`` and
``callback/``."""

from __future__ import annotations

import time

from aiohttp import web

from ivr.services import config as config_service
from ivr.web.context import STR, Route, body_json, ctx_of, error, fields, obj, principal, problem_dicts

READERS = ("operations", "seat_manager", "auditor")
WRITERS = ("operations", "seat_manager")
OWNER = {"prompts/": "operations", "flows/": "operations", "queue/": "seat_manager", "callback/": "seat_manager"}
PATH_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 200,
               "pattern": r"^(queue/(queues|contingency|seats)\.yaml|prompts/announcements\.yaml|callback/policy\.yaml"
                          r"|flows/(lists|calendars)/[A-Za-z][A-Za-z0-9_-]{0,63}\.txt)$"}
NOT_YOURS = "这个文件不归您的角色管理 — your role does not own this file"


def _may_change(request: web.Request, path: str) -> bool:
    role = principal(request).role
    return role == "admin" or any(path.startswith(folder) and role == who for folder, who in OWNER.items())


async def overview(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    o = await config_service.overview(ctx.redis, ctx.settings.home, ctx.settings.timezone, time.time)
    return web.json_response({
        "source": o.source, "generation": o.generation,
        "files": [{"path": f.path, "version": f.version, "on_disk": f.on_disk} for f in o.files],
        "disk_problems": problem_dicts(o.disk_problems)})


async def history(request: web.Request) -> web.Response:
    path = config_service.check_path(request.query.get("path", ""))
    versions = await config_service.history(ctx_of(request).redis, path)
    return web.json_response({"path": path, "versions": [
        {"version": v.version, "by": v.by, "at": v.at, "note": v.note, "how": v.how, "removed": v.text is None,
         "diff": diff} for v, diff in versions]})


async def file_text(request: web.Request) -> web.Response:
    path = config_service.check_path(request.query.get("path", ""))
    ctx = ctx_of(request)
    texts, _, _ = await config_service.in_force(ctx.redis, ctx.settings.home)
    if path not in texts:
        return error(404, f"{path} 不在在用配置中 — {path} is not in the configuration in force")
    return web.json_response({"path": path, "text": texts[path]})


async def save(request: web.Request) -> web.Response:
    data = fields(await body_json(request), {"path", "text", "note"}, {"path", "text"})
    path = config_service.check_path(str(data["path"]))
    if not _may_change(request, path):
        return error(403, NOT_YOURS)
    ctx = ctx_of(request)
    saved = await config_service.save(ctx.redis, ctx.settings.home, ctx.settings.timezone, path, str(data["text"]),
                                      by=f"web:{principal(request).user}", note=str(data.get("note") or ""),
                                      clock=time.time)
    return web.json_response({"versions": saved.versions, "changes": saved.summaries,
                              "problems": problem_dicts(saved.warnings)})


async def rollback(request: web.Request) -> web.Response:
    data = fields(await body_json(request), {"path", "version", "note"}, {"path"})
    path = config_service.check_path(str(data["path"]))
    if not _may_change(request, path):
        return error(403, NOT_YOURS)
    version = data.get("version")
    ctx = ctx_of(request)
    saved = await config_service.rollback(ctx.redis, ctx.settings.home, ctx.settings.timezone, path,
                                          version if isinstance(version, int) else None,
                                          by=f"web:{principal(request).user}", note=str(data.get("note") or ""),
                                          clock=time.time)
    return web.json_response({"versions": saved.versions, "changes": saved.summaries,
                              "problems": problem_dicts(saved.warnings)})


ROUTES = [
    Route("GET", "/api/config", overview, READERS, "the configuration in force, and how the files on disk compare",
          tag="configuration"),
    Route("GET", "/api/config/history", history, READERS, "one file's versions, newest first, each with its diff "
          "(query: path)", tag="configuration"),
    Route("GET", "/api/config/file", file_text, READERS, "one file's text in force (query: path)",
          tag="configuration"),
    Route("PUT", "/api/config/file", save, WRITERS, "save one file: checked with every file and flow it touches "
          "first; refused whole with every problem", obj({"path": PATH_SCHEMA, "text": STR, "note": STR},
                                                         ["path", "text"]), "configuration"),
    Route("POST", "/api/config/rollback", rollback, WRITERS, "put an earlier version of one file back in force "
          "(default: the one before)", obj({"path": PATH_SCHEMA, "version": {"type": "integer", "minimum": 1},
                                            "note": STR}, ["path"]), "configuration"),
]
