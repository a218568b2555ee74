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
from ivr.web import schemas
from ivr.web.context import Route, body, ctx_of, error, principal, problem_dicts
from ivr.web.schemas import BOOL, INT, NULL_INT, OBJ, STR, answer, array, fields_of, obj, string

READERS = ("operations", "seat_manager", "auditor")
WRITERS = ("operations", "seat_manager")
OWNER = {"prompts/": "operations", "flows/": "operations", "queue/": "seat_manager", "callback/": "seat_manager"}
# the files ivr.project.is_config_file accepts, as one pattern (the guard checks it: 400)
PATH_SCHEMA = string(pattern=config_service.PATH_PATTERN, max_length=200, examples=["queue/contingency.yaml"],
                     description="a configuration file (the message of a wrong one lists them)",
                     message=config_service.PATH_RULE)
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
    data = body(request)
    path = config_service.check_path(data["path"])
    if not _may_change(request, path):
        return error(403, NOT_YOURS)
    ctx = ctx_of(request)
    saved = await config_service.save(ctx.redis, ctx.settings.home, ctx.settings.timezone, path, data["text"],
                                      by=f"web:{principal(request).user}", note=data.get("note") or "",
                                      clock=time.time)
    return web.json_response({"versions": saved.versions, "changes": saved.summaries,
                              "problems": problem_dicts(saved.warnings)})


async def rollback(request: web.Request) -> web.Response:
    data = body(request)
    path = config_service.check_path(data["path"])
    if not _may_change(request, path):
        return error(403, NOT_YOURS)
    ctx = ctx_of(request)
    saved = await config_service.rollback(ctx.redis, ctx.settings.home, ctx.settings.timezone, path,
                                          data.get("version"), by=f"web:{principal(request).user}",
                                          note=data.get("note") or "",
                                          clock=time.time)
    return web.json_response({"versions": saved.versions, "changes": saved.summaries,
                              "problems": problem_dicts(saved.warnings)})


TEXT = string(max_length=256 * 1024, description="the file's text (the YAML reader takes at most 256 KB)")
CHANGED = answer(fields_of({"versions": {"type": "object", "additionalProperties": INT}, "changes": OBJ,
                            "problems": array({"$ref": "#/components/schemas/Problem"})}))
PATH_QUERY = {"path": PATH_SCHEMA}

ROUTES = [
    Route("GET", "/api/config", overview, READERS, "the configuration in force, and how the files on disk compare",
          tag="configuration",
          answers=answer(fields_of({"source": STR, "generation": INT,
                                    "files": array(fields_of({"path": STR, "version": NULL_INT, "on_disk": {
                                        "enum": ["same", "differs", "missing", "unrecorded"]}})),
                                    "disk_problems": array({"$ref": "#/components/schemas/Problem"})}))),
    Route("GET", "/api/config/history", history, READERS, "one file's versions, newest first, each with its diff "
          "(query: path)", tag="configuration", query=PATH_QUERY, required_query=("path",),
          answers=answer(fields_of({"path": STR, "versions": array(fields_of(
              {"version": INT, "by": STR, "at": STR, "removed": BOOL, "diff": STR},
              {"note": STR, "how": STR}))}))),
    Route("GET", "/api/config/file", file_text, READERS, "one file's text in force (query: path)",
          tag="configuration", query=PATH_QUERY, required_query=("path",), errors=(404,),
          answers=answer(fields_of({"path": STR, "text": STR}))),
    Route("PUT", "/api/config/file", save, WRITERS, "save one file: checked with every file and flow it touches "
          "first; refused whole with every problem (422); a file another role owns: 403",
          obj({"path": PATH_SCHEMA, "text": TEXT, "note": schemas.NOTE}, ["path", "text"]), "configuration",
          errors=(409, 422), answers=CHANGED),
    Route("POST", "/api/config/rollback", rollback, WRITERS, "put an earlier version of one file back in force "
          "(default: the one before)", obj({"path": PATH_SCHEMA, "version": {"type": "integer", "minimum": 1},
                                            "note": schemas.NOTE}, ["path"]), "configuration",
          errors=(404, 409, 422), answers=CHANGED),
]
