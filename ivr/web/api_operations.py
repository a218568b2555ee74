"""Operations staff's API: flows (validate with errors at their lines, publish,
history with diffs, roll back), prompts (upload any common format, converted to
8 kHz mono 16-bit and loudness-normalised; drafts from text), announcement sets
with validity windows. The work is ``ivr.services.flows`` and
``ivr.services.prompts``'s; errors they raise become JSON answers
(``context.error_of``)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ivr import names
from ivr.errors import ConfigError, FlowInvalid, RequestInvalid
from ivr.services import flows as flow_service
from ivr.services import prompts as prompt_service
from ivr.web import schemas
from ivr.web.context import Route, bad_request, body, ctx_of, error, principal, problem_dicts
from ivr.web.schemas import (
    BOOL,
    NULL_INT,
    NULL_NUM,
    NULL_STR,
    NUM,
    STR,
    answer,
    array,
    fields_of,
    obj,
    string,
)
from ivr.yamldoc import bounded as yamlfile

OPS = ("operations",)
FLOW_NAME = names.FLOW           # full-match rules (ivr/names.py): never `$`
MAX_UPLOAD = 15 * 1024 * 1024


def _home(request: web.Request) -> Path:
    return ctx_of(request).settings.home


def _by(request: web.Request) -> str:
    return f"web:{principal(request).user}"


def _flow_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not FLOW_NAME.match(name):
        raise web.HTTPBadRequest(reason=f"'{name}' 不是流程名 — '{name}' is not a flow name")
    return name


async def flows_list(request: web.Request) -> web.Response:
    return web.json_response({"flows": await flow_service.listing(ctx_of(request).redis, _home(request))})


async def flow_get(request: web.Request) -> web.Response:
    name = _flow_name(request)
    d = await flow_service.detail(ctx_of(request).redis, _home(request), name)
    if d is None:
        return error(404, f"没有流程 '{name}' — no flow '{name}'")
    return web.json_response(d)


async def flow_check(request: web.Request) -> web.Response:
    name = _flow_name(request)
    data = body(request)
    _, problems = await asyncio.to_thread(flow_service.check_text, _home(request), name, str(data["source"]))
    return web.json_response({"ok": not flow_service.errors_of(problems), "problems": problem_dicts(problems)})


async def flow_publish(request: web.Request) -> web.Response:
    name = _flow_name(request)
    data = body(request)
    try:
        res, problems = await flow_service.publish_text(ctx_of(request).redis, _home(request), name,
                                                        data["source"], by=_by(request), note=data.get("note", ""))
    except FlowInvalid as exc:
        return web.json_response({"error": "the flow has errors: nothing was published",
                                  "problems": problem_dicts(exc.problems)}, status=422)
    return web.json_response({"version": res.version, "changed": res.changed, "problems": problem_dicts(problems)})


async def flow_history(request: web.Request) -> web.Response:
    name = _flow_name(request)
    current, entries = await flow_service.history(ctx_of(request).redis, name, diffs=True)
    return web.json_response({"name": name, "current": current, "history": entries})


async def flow_rollback(request: web.Request) -> web.Response:
    name = _flow_name(request)
    data = body(request)
    try:
        fv = await flow_service.rollback(ctx_of(request).redis, _home(request), name, data.get("version"),
                                         by=_by(request), note=data.get("note", ""), write_file=True)
    except FlowInvalid as exc:
        return web.json_response({"error": "该版本已无法通过检查 — that version no longer validates",
                                  "problems": problem_dicts(exc.problems)}, status=422)
    return web.json_response({"version": fv.version})


# -- prompts ------------------------------------------------------------------------------

async def prompts_list(request: web.Request) -> web.Response:
    return web.json_response({"prompts": await prompt_service.listing_shared(ctx_of(request).redis, _home(request))})


async def prompt_pbxs(request: web.Request) -> web.Response:
    """Each PBX that has synced prompts: when, and the prompts in force it lacks
    (publishing a flow that names one of them is refused)."""
    return web.json_response({"pbxs": await prompt_service.pbx_status(ctx_of(request).redis)})


async def prompt_audio(request: web.Request) -> web.StreamResponse:
    found = await prompt_service.audio(ctx_of(request).redis, _home(request), request.match_info["name"])
    if isinstance(found, bytes):        # from the shared store: this console host's prompts/ lacks it
        return web.Response(body=found, content_type="audio/wav")
    return web.FileResponse(found, headers={"Content-Type": "audio/wav"})


async def _read_upload(request: web.Request) -> tuple[str | None, bytes | None, str]:
    """The multipart form: a 'name' field and a 'file', the file read in chunks up
    to ``MAX_UPLOAD``. A malformed body is a 400, never a 500."""
    name, data, filename = None, None, ""
    try:
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):      # a part that is itself multipart/*
                raise bad_request("上传格式错误 malformed multipart/form-data body (a nested multipart part)")
            if part.name == "name":
                name = (await part.text())[:prompt_service.MAX_PROMPT_NAME + 1]
            elif part.name == "file":
                filename = (part.filename or "upload")[:200]
                buf = bytearray()
                while chunk := await part.read_chunk(256 * 1024):
                    buf += chunk
                    if len(buf) > MAX_UPLOAD:
                        raise web.HTTPRequestEntityTooLarge(max_size=MAX_UPLOAD, actual_size=len(buf))
                data = bytes(buf)
            else:
                raise bad_request(f"未知字段 unknown field '{str(part.name)[:40]}'")
    except (ValueError, AssertionError, KeyError, RuntimeError, HttpProcessingError) as exc:
        # aiohttp's multipart reader signals a malformed body with these (a part's header it
        # cannot parse: its HTTP parser's own errors)
        raise bad_request("上传格式错误 malformed multipart/form-data body") from exc
    return name, data, filename


async def prompt_upload(request: web.Request) -> web.Response:
    try:
        name, data, filename = await _read_upload(request)
    except web.HTTPRequestEntityTooLarge:
        return error(413, f"文件超过 {MAX_UPLOAD // (1024 * 1024)} MB the file is over "
                          f"{MAX_UPLOAD // (1024 * 1024)} MB")
    form = ({"name": name} if name is not None else {}) | ({"file": ""} if data is not None else {})
    try:           # the form's fields against the schema the document states (the file's content: 422)
        schemas.check(UPLOAD, form, "form")
    except RequestInvalid as exc:
        return error(400, str(exc))
    conv = await prompt_service.upload(ctx_of(request).redis, _home(request), name, data, filename,
                                       by=principal(request).user)
    return web.json_response({"name": name, "duration_s": round(conv.seconds, 2),
                              "format": "8 kHz mono 16-bit WAV"})


async def prompt_draft(request: web.Request) -> web.Response:
    data = body(request)
    name, text = data["name"], data["text"]
    try:
        seconds = await prompt_service.draft(ctx_of(request).redis, _home(request), name, text,
                                             by=principal(request).user)
    except ConfigError as exc:       # espeak-ng missing: the service is unavailable, not the request wrong
        return error(503, str(exc))
    return web.json_response({"name": name, "duration_s": round(seconds, 2)})


# -- announcement sets ---------------------------------------------------------------------

async def announcements_get(request: web.Request) -> web.Response:
    text, disk = await prompt_service.announcements_text(ctx_of(request).redis, _home(request))
    return web.json_response({"yaml": text, "disk": disk})


async def announcements_put(request: web.Request) -> web.Response:
    data = body(request)
    ctx = ctx_of(request)
    saved = await prompt_service.save_announcements(ctx.redis, _home(request), ctx.settings.timezone,
                                                    data["yaml"], by=principal(request).user, clock=time.time,
                                                    note=data.get("note") or "")
    return web.json_response({"saved": saved.sets, "version": saved.version, "removed": saved.removed,
                              "problems": problem_dicts(saved.warnings)})


# a flow's or a YAML file's text: the YAML reader refuses a file over MAX_BYTES bytes (a problem, 422)
YAML_TEXT = string(max_length=yamlfile.MAX_BYTES, description=f"YAML text, at most {yamlfile.MAX_BYTES} bytes")
EXAMPLE_FLOW = ("description: 示例 example\nstart: hello\nsteps:\n  hello:\n    type: play\n    prompts: [welcome]\n"
                "    next: end\n")
EXAMPLE_SETS = ("sets:\n  peak:\n    - prompt: policy/current\n      valid_from: 2026-11-01\n"
                "      valid_until: 2027-12-31\n")
NAME = {"name": schemas.FLOW_NAME}
UPLOAD = obj({"name": schemas.PROMPT_NAME,
              "file": {"type": "string", "format": "binary", "description": "WAV, MP3, M4A/AAC, OGG/Opus or AMR, "
                       f"at most {MAX_UPLOAD // (1024 * 1024)} MB and 10 minutes"}}, ["name", "file"])
PROBLEMS = array({"$ref": "#/components/schemas/Problem"})
FLOW_VERSION = fields_of({"version": NULL_INT})
HISTORY_ENTRY = fields_of({"version": STR, "by": STR, "at": STR}, {"note": STR, "action": STR, "diff": STR})

ROUTES = [
    Route("GET", "/api/flows", flows_list, OPS, "flow files and their published versions", tag="operations",
          answers=answer(fields_of({"flows": array(fields_of({"name": STR, "version": NULL_INT}))}))),
    Route("GET", "/api/flows/{name}", flow_get, OPS, "a flow's file and its published source", tag="operations",
          params=NAME, errors=(404,),
          answers=answer(fields_of({"name": STR, "version": NULL_INT, "published": NULL_STR, "source": NULL_STR}))),
    Route("POST", "/api/flows/{name}/check", flow_check, OPS, "validate a flow text: problems with line and column",
          obj({"source": YAML_TEXT}, ["source"], [{"source": EXAMPLE_FLOW}, {"source": "steps: ["}]), "operations",
          params=NAME,
          answers=answer(fields_of({"ok": BOOL, "problems": PROBLEMS}))),
    Route("POST", "/api/flows/{name}/publish", flow_publish, OPS, "validate and publish (a new version)",
          obj({"source": YAML_TEXT, "note": schemas.NOTE}, ["source"],
              [{"source": EXAMPLE_FLOW, "note": "a shorter greeting"}, {"source": "start: nowhere\n"}]),
          "operations", params=NAME,
          errors=(409, 422),
          answers=answer(fields_of({"version": {"type": "integer"}, "changed": BOOL, "problems": PROBLEMS}))),
    Route("GET", "/api/flows/{name}/history", flow_history, OPS, "publishes and rollbacks with diffs",
          tag="operations", params=NAME,
          answers=answer(fields_of({"name": STR, "current": NULL_INT, "history": array(HISTORY_ENTRY)}))),
    Route("POST", "/api/flows/{name}/rollback", flow_rollback, OPS,
          "put an earlier version back in force (default: the one before the version in force)",
          obj({"version": {"type": ["integer", "null"], "minimum": 1}, "note": schemas.NOTE}, [],
              [{"version": 1, "note": "back to the first version"}, {}]), "operations",
          params=NAME, errors=(404, 409, 422), answers=answer(fields_of({"version": {"type": "integer"}}))),
    Route("GET", "/api/prompts", prompts_list, OPS, "prompts and their durations", tag="operations",
          answers=answer(fields_of({"prompts": array(fields_of({"name": STR, "duration_s": NULL_NUM}))}))),
    Route("GET", "/api/prompts/pbxs", prompt_pbxs, OPS,
          "each PBX that has synced prompts (ivr prompts sync): when, from which host, the prompts in force it "
          "lacks; a flow naming one of them is not published", tag="operations",
          answers=answer(fields_of({"pbxs": array(fields_of({
              "pbx": STR, "at": NUM, "host": STR, "prompts": {"type": "integer"}, "lacking": array(STR),
              "errors": array(STR)}))}))),
    Route("GET", "/api/prompts/{name:.+}.wav", prompt_audio, OPS, "a prompt's audio", tag="operations",
          params={"name": schemas.PROMPT_NAME}, errors=(404,), answers=answer(media="audio/wav")),
    Route("POST", "/api/prompts", prompt_upload, OPS,
          "upload a recording (multipart: name, file; WAV, MP3, M4A/AAC, OGG/Opus or AMR by content, "
          "at most 15 MB and 10 minutes)", tag="operations", form=UPLOAD, errors=(422,),
          answers=answer(fields_of({"name": STR, "duration_s": NUM, "format": STR}))),
    Route("POST", "/api/prompts/draft", prompt_draft, OPS, "a draft prompt spoken from text (espeak-ng, Mandarin)",
          obj({"name": schemas.PROMPT_NAME,
               "text": string(pattern=schemas.NONBLANK, max_length=prompt_service.MAX_DRAFT_TEXT,
                              message=f"文字须为 1 到 {prompt_service.MAX_DRAFT_TEXT} 个字符 text: 1 to "
                                      f"{prompt_service.MAX_DRAFT_TEXT} characters, not only spaces")},
              ["name", "text"], [{"name": "draft/welcome", "text": "您好，这里是 12345 市民服务热线"}]),
          "operations", errors=(503,),
          answers=answer(fields_of({"name": STR, "duration_s": NUM}))),
    Route("GET", "/api/announcements", announcements_get, OPS, "the announcement sets (YAML)", tag="operations",
          answers=answer(fields_of({"yaml": STR}))),
    Route("PUT", "/api/announcements", announcements_put, OPS, "save the announcement sets, validated first",
          obj({"yaml": YAML_TEXT, "note": schemas.NOTE}, ["yaml"],
              [{"yaml": EXAMPLE_SETS, "note": "heating policy until the end of 2027"},
               {"yaml": "sets:\n  peak:\n    - prompt: nope\n"}, {"yaml": ""}]),
          "operations", errors=(409, 422),
          answers=answer(fields_of({"saved": array(STR), "version": NULL_INT, "removed": array(STR),
                                    "problems": PROBLEMS}))),
]
