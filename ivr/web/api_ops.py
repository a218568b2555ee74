"""Operations staff's API: flows (validate with errors at their lines, publish,
history with diffs, roll back), prompts (upload any common format, converted to
8 kHz mono 16-bit and loudness-normalised; drafts from text), announcement sets
with validity windows."""

from __future__ import annotations

import asyncio
import difflib
import os
import tempfile
import time
from pathlib import Path

from aiohttp import web

from ivr import names
from ivr.announcements import parse_announcements
from ivr.errors import ConfigError, FlowNotFound
from ivr.flow.store import FlowStore
from ivr.project import Project, check_flow_texts, prompt_names
from ivr.prompt_audio import AudioRefused, convert_in_child, write_prompt
from ivr.web.app import STR, Route, bad_request, body_json, ctx_of, error, fields, obj, principal

OPS = ("operations",)
PROMPT_NAME = names.PROMPT   # full-match rules (ivr/names.py): never `$`
FLOW_NAME = names.FLOW
MAX_UPLOAD = 15 * 1024 * 1024
MAX_PROMPT_NAME = 120            # a file name component is at most 255 bytes; keep paths short
PROMPT_NAME_RULE = ("录音名须为字母、数字、'-'、'_'，可用 '/' 分级，最长 120 个字符 "
                    "name: letters, digits, '-', '_' and '/' (e.g. policy/heating-2026), at most 120 characters")


def _prompt_name_ok(name: str) -> bool:
    return len(name) <= MAX_PROMPT_NAME and bool(PROMPT_NAME.match(name))


def _project(request) -> Project:
    return Project(ctx_of(request).settings.home)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _flow_name(request) -> str:
    name = request.match_info["name"]
    if not FLOW_NAME.match(name):
        raise web.HTTPBadRequest(reason=f"'{name}' 不是流程名 — '{name}' is not a flow name")
    return name


def _check(request, name: str, source: str) -> tuple[object, list[dict]]:
    project = _project(request)
    others = frozenset(p.stem for p in project.flow_files()) | {name}
    flows, problems = check_flow_texts({name: (f"flows/{name}.yaml", source)}, project.catalog(others))
    return flows.get(name), [{"line": p.line, "col": p.col, "message": p.message, "warning": p.warning,
                              "text": str(p)} for p in problems]


async def flows_list(request: web.Request) -> web.Response:
    store = FlowStore(ctx_of(request).redis)
    out = []
    for p in _project(request).flow_files():
        out.append({"name": p.stem, "version": await store.current_version(p.stem)})
    return web.json_response({"flows": out})


async def flow_get(request: web.Request) -> web.Response:
    name = _flow_name(request)
    path = _project(request).flows_dir / f"{name}.yaml"
    store = FlowStore(ctx_of(request).redis)
    version = await store.current_version(name)
    published = (await store.get(name, version)).source if version else None
    if not path.exists() and published is None:
        return error(404, f"没有流程 '{name}' — no flow '{name}'")
    return web.json_response({"name": name, "version": version, "published": published,
                              "source": path.read_text(encoding="utf-8") if path.exists() else published})


async def flow_check(request: web.Request) -> web.Response:
    name = _flow_name(request)
    data = fields(await body_json(request), {"source"}, {"source"})
    flow, problems = await asyncio.to_thread(_check, request, name, str(data["source"]))
    return web.json_response({"ok": not [p for p in problems if not p["warning"]], "problems": problems})


async def flow_publish(request: web.Request) -> web.Response:
    name = _flow_name(request)
    data = fields(await body_json(request), {"source", "note"}, {"source"})
    source = str(data["source"])
    flow, problems = await asyncio.to_thread(_check, request, name, source)
    if flow is None or [p for p in problems if not p["warning"]]:
        return web.json_response({"error": "the flow has errors: nothing was published", "problems": problems},
                                 status=400)
    res = await FlowStore(ctx_of(request).redis).publish(name, source, by=f"web:{principal(request).user}",
                                                         note=str(data.get("note", "")))
    _write_atomic(_project(request).flows_dir / f"{name}.yaml", source.encode())
    return web.json_response({"version": res.version, "changed": res.changed, "problems": problems})


async def flow_history(request: web.Request) -> web.Response:
    name = _flow_name(request)
    store = FlowStore(ctx_of(request).redis)
    entries = await store.history(name)
    out, prev = [], ""
    for e in entries:
        v = int(e["version"])
        src = (await store.get(name, v)).source
        diff = "".join(difflib.unified_diff(prev.splitlines(True), src.splitlines(True), "before", f"v{v}"))
        out.append({**e, "diff": diff})
        prev = src
    return web.json_response({"name": name, "current": await store.current_version(name), "history": out})


async def flow_rollback(request: web.Request) -> web.Response:
    name = _flow_name(request)
    data = fields(await body_json(request), {"version", "note"}, set())
    store = FlowStore(ctx_of(request).redis)
    target = data.get("version")
    if target is not None and not isinstance(target, int):
        return error(400, "版本号应为整数 — version must be a whole number")
    if target is None:
        current = await store.current_version(name)
        older = [v for v in await store.versions(name) if current and v < current]
        if not older:
            return error(409, f"版本 {current} 之前没有版本 — no version before {current}")
        target = max(older)
    try:
        fv = await store.get(name, target)
    except FlowNotFound:
        return error(404, f"流程 '{name}' 没有版本 {target} flow '{name}' has no version {target}")
    _, problems = await asyncio.to_thread(_check, request, name, fv.source)
    if [p for p in problems if not p["warning"]]:
        return web.json_response({"error": f"version {target} no longer validates", "problems": problems},
                                 status=400)
    v = await store.rollback(name, target, by=f"web:{principal(request).user}", note=str(data.get("note", "")))
    _write_atomic(_project(request).flows_dir / f"{name}.yaml", fv.source.encode())
    return web.json_response({"version": v})


# -- prompts ------------------------------------------------------------------------------

def _duration(path: Path) -> float:
    import wave
    with wave.open(str(path)) as w:
        return w.getnframes() / float(w.getframerate())


async def prompts_list(request: web.Request) -> web.Response:
    prompts_dir = _project(request).home / "prompts"
    out = []
    for name in sorted(prompt_names(prompts_dir)):
        p = prompts_dir / f"{name}.wav"
        out.append({"name": name, "duration_s": round(_duration(p), 1) if p.exists() else None})
    return web.json_response({"prompts": out})


async def prompt_audio(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if not _prompt_name_ok(name):
        return error(400, PROMPT_NAME_RULE)
    path = _project(request).home / "prompts" / f"{name}.wav"
    if not path.exists():
        return error(404, f"没有录音 '{name}' — no prompt '{name}'")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


async def _read_upload(request: web.Request) -> tuple[str | None, bytes | None, str]:
    """The multipart form: a 'name' field and a 'file', the file read in chunks up
    to ``MAX_UPLOAD``. A malformed body is a 400, never a 500."""
    name, data, filename = None, None, ""
    try:
        reader = await request.multipart()
        async for part in reader:
            if part.name == "name":
                name = (await part.text()).strip()[:MAX_PROMPT_NAME + 1]
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
    except (ValueError, AssertionError, KeyError, RuntimeError) as exc:
        # aiohttp's multipart reader signals a malformed body with these
        raise bad_request("上传格式错误 malformed multipart/form-data body") from exc
    return name, data, filename


async def prompt_upload(request: web.Request) -> web.Response:
    if not request.content_type.startswith("multipart/"):
        return error(400, "请以 multipart/form-data 上传 send multipart/form-data with a 'name' field and a 'file'")
    try:
        name, data, filename = await _read_upload(request)
    except web.HTTPRequestEntityTooLarge:
        return error(413, f"文件超过 {MAX_UPLOAD // (1024 * 1024)} MB the file is over "
                          f"{MAX_UPLOAD // (1024 * 1024)} MB")
    if not name or not _prompt_name_ok(name):
        return error(400, PROMPT_NAME_RULE)
    if not data:
        return error(400, "没有文件 no file")
    try:
        # decoding happens in a child process with limits; the thread only waits for it
        conv = await asyncio.to_thread(convert_in_child, data)
        await asyncio.to_thread(write_prompt, _project(request).home / "prompts" / f"{name}.wav", conv.wav)
    except AudioRefused as exc:
        return error(400, str(exc))
    ctx = ctx_of(request)
    await ctx.audit().append([{"kind": "prompt_uploaded", "at": time.time(), "by": principal(request).user,
                               "prompt": name, "from": filename, "format": conv.source_format,
                               "duration_s": round(conv.seconds, 2)}])
    return web.json_response({"name": name, "duration_s": round(conv.seconds, 2),
                              "format": "8 kHz mono 16-bit WAV"})


async def prompt_draft(request: web.Request) -> web.Response:
    from ivr.prompts_tts import synthesize

    data = fields(await body_json(request), {"name", "text"}, {"name", "text"})
    name, text = str(data["name"]), str(data["text"]).strip()
    if not _prompt_name_ok(name):
        return error(400, PROMPT_NAME_RULE)
    if not text or len(text) > 500:
        return error(400, "文字须为 1 到 500 个字符 text: 1 to 500 characters")
    path = _project(request).home / "prompts" / f"{name}.wav"
    try:
        seconds = await asyncio.to_thread(synthesize, text, path)
    except ConfigError as exc:
        return error(503, str(exc))
    await ctx_of(request).audit().append([{"kind": "prompt_drafted", "at": time.time(),
                                           "by": principal(request).user, "prompt": name, "text": text}])
    return web.json_response({"name": name, "duration_s": round(seconds, 2)})


# -- announcement sets ---------------------------------------------------------------------

async def announcements_get(request: web.Request) -> web.Response:
    path = _project(request).home / "prompts" / "announcements.yaml"
    return web.json_response({"yaml": path.read_text(encoding="utf-8") if path.exists() else "sets: {}\n"})


async def announcements_put(request: web.Request) -> web.Response:
    data = fields(await body_json(request), {"yaml"}, {"yaml"})
    text = str(data["yaml"])
    project = _project(request)
    settings = ctx_of(request).settings
    import datetime as dt
    sets, problems = parse_announcements(text, "prompts/announcements.yaml", tz=settings.timezone,
                                         prompts=prompt_names(project.home / "prompts"),
                                         now=dt.datetime.now(settings.timezone))
    errors = [p for p in problems if not p.warning]
    out = [{"line": p.line, "col": p.col, "message": p.message, "warning": p.warning, "text": str(p)}
           for p in problems]
    if errors:
        return web.json_response({"error": "not saved: fix the errors", "problems": out}, status=400)
    _write_atomic(project.home / "prompts" / "announcements.yaml", text.encode())
    await ctx_of(request).audit().append([{"kind": "announcements_saved", "at": time.time(),
                                           "by": principal(request).user, "sets": sorted(sets)}])
    return web.json_response({"saved": sorted(sets), "problems": out})


ROUTES = [
    Route("GET", "/api/flows", flows_list, OPS, "flow files and their published versions", tag="operations"),
    Route("GET", "/api/flows/{name}", flow_get, OPS, "a flow's file and its published source", tag="operations"),
    Route("POST", "/api/flows/{name}/check", flow_check, OPS, "validate a flow text: problems with line and column",
          obj({"source": STR}, ["source"]), "operations"),
    Route("POST", "/api/flows/{name}/publish", flow_publish, OPS, "validate and publish (a new version)",
          obj({"source": STR, "note": STR}, ["source"]), "operations"),
    Route("GET", "/api/flows/{name}/history", flow_history, OPS, "publishes and rollbacks with diffs",
          tag="operations"),
    Route("POST", "/api/flows/{name}/rollback", flow_rollback, OPS, "put an earlier version back in force",
          obj({"version": {"type": "integer"}, "note": STR}, []), "operations"),
    Route("GET", "/api/prompts", prompts_list, OPS, "prompts and their durations", tag="operations"),
    Route("GET", "/api/prompts/{name:.+}.wav", prompt_audio, OPS, "a prompt's audio", tag="operations"),
    Route("POST", "/api/prompts", prompt_upload, OPS,
          "upload a recording (multipart: name, file; WAV, MP3, M4A/AAC, OGG/Opus or AMR by content, "
          "at most 15 MB and 10 minutes)", tag="operations"),
    Route("POST", "/api/prompts/draft", prompt_draft, OPS, "a draft prompt spoken from text (espeak-ng, Mandarin)",
          obj({"name": STR, "text": STR}, ["name", "text"]), "operations"),
    Route("GET", "/api/announcements", announcements_get, OPS, "the announcement sets (YAML)", tag="operations"),
    Route("PUT", "/api/announcements", announcements_put, OPS, "save the announcement sets, validated first",
          obj({"yaml": STR}, ["yaml"]), "operations"),
]
