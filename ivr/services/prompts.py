"""Prompts and announcement sets: what callers hear. Recordings are converted
to 8 kHz mono 16-bit WAV (any common format, decoded in a child process with
limits); drafts are spoken from text by espeak-ng. Changes made from the
console are recorded in the console's audit log."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivr import names
from ivr.audit.chain import AuditLog
from ivr.errors import AudioRefused, ConfigError, InvalidInput, NotFound
from ivr.project import prompt_names
from ivr.prompts.announcements import parse_announcements
from ivr.prompts.audio import Converted, convert_in_child, write_prompt
from ivr.prompts.messages import MessageStore, VoiceMessage
from ivr.prompts.store import PromptStore, PromptVersion
from ivr.redisdb import keys
from ivr.yamldoc import bounded as yamlfile
from ivr.yamldoc.problems import Problem

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    import redis.asyncio as aioredis

PROMPT_NAME = names.PROMPT       # full-match rules (ivr/names.py): never `$`
MAX_PROMPT_NAME = 120            # a file name component is at most 255 bytes; keep paths short
MAX_DRAFT_TEXT = 500
ANNOUNCEMENTS = "prompts/announcements.yaml"
PROMPT_NAME_RULE = ("录音名须为字母、数字、'-'、'_'，可用 '/' 分级，最长 120 个字符 "
                    "name: letters, digits, '-', '_' and '/' (e.g. policy/heating-2026), at most 120 characters")


def check_name(name: str | None) -> str:
    if not name or len(name) > MAX_PROMPT_NAME or not PROMPT_NAME.match(name):
        raise InvalidInput(PROMPT_NAME_RULE)
    return name


def _dir(home: Path) -> Path:
    return home / "prompts"


async def _record(redis: aioredis.Redis, kind: str, by: str, **fields: object) -> None:
    await AuditLog(redis, keys.CONSOLE_AUDIT).append([{"kind": kind, "at": time.time(), "by": by, **fields}])


def _duration_s(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


def listing(home: Path) -> list[dict[str, Any]]:
    """Every prompt and its duration (None: not a WAV file)."""
    out = []
    for name in sorted(prompt_names(_dir(home))):
        p = _dir(home) / f"{name}.wav"
        out.append({"name": name, "duration_s": round(_duration_s(p), 1) if p.exists() else None})
    return out


async def listing_shared(redis: aioredis.Redis, home: Path) -> list[dict[str, Any]]:
    """``listing``, with the prompts in the shared store that this host's
    prompts/ lacks (uploaded on another console host, pushed from elsewhere)."""
    local = await asyncio.to_thread(listing, home)
    have = {p["name"] for p in local}
    store = PromptStore(redis)
    extra = []
    for name in sorted(set(await store.current()) - have):
        versions = await store.versions(name)
        size = int(versions[-1]["bytes"]) if versions else 0
        extra.append({"name": name, "duration_s": round(max(size - 44, 0) / 16000, 1) if size else None})
    return sorted(local + extra, key=lambda p: str(p["name"]))


async def audio(redis: aioredis.Redis, home: Path, name: str) -> Path | bytes:
    """A prompt's audio: this host's file, else the version in force in the shared store."""
    try:
        return audio_path(home, name)
    except NotFound:
        sha = await PromptStore(redis).version_of(name)
        data = await PromptStore(redis).blob(sha) if sha else None
        if data is None:
            raise
        return data


def audio_path(home: Path, name: str) -> Path:
    path = _dir(home) / f"{check_name(name)}.wav"
    if not path.exists():
        raise NotFound(f"没有录音 '{name}' — no prompt '{name}'")
    return path


async def upload(redis: aioredis.Redis, home: Path, name: str | None, data: bytes | None, filename: str, *,
                 by: str) -> Converted:
    """A recording in any common format, converted and stored as NAME.wav."""
    check_name(name)
    if not data:
        raise InvalidInput("没有文件 no file")
    try:
        # decoding happens in a child process with limits; the thread only waits for it
        conv = await asyncio.to_thread(convert_in_child, data)
        await asyncio.to_thread(write_prompt, _dir(home) / f"{name}.wav", conv.wav)
    except AudioRefused as exc:
        raise InvalidInput(str(exc)) from exc
    assert name is not None
    pv = await PromptStore(redis).put(name, conv.wav, by=by, source=filename, at=time.time())
    await _record(redis, "prompt_uploaded", by, prompt=name, **{"from": filename}, format=conv.source_format,
                  duration_s=round(conv.seconds, 2), version=pv.version, sha256=pv.sha256)
    return conv


# -- the shared store and the PBXs' sounds folders (docs/prompts.md) --------------------------

@dataclass(frozen=True, slots=True)
class Pushed:
    versions: list[PromptVersion]       # every prompt file pushed (changed: a new version)
    skipped: list[str]                  # files not pushed (not WAV, or too large), with why


async def push(redis: aioredis.Redis, home: Path, *, by: str, only: list[str] | None = None) -> Pushed:
    """The WAV files of prompts/ (all, or ``only``) as the versions in force in
    the shared store: what every PBX's sync then writes into its sounds folder."""
    store = PromptStore(redis)
    wanted = [check_name(n) for n in only] if only else sorted(prompt_names(_dir(home)))
    out, skipped = [], []
    for name in wanted:
        path = _dir(home) / f"{name}.wav"
        if not path.is_file():
            skipped.append(f"{name}: 不是 WAV 文件或不存在 — no prompts/{name}.wav")
            continue
        data = await asyncio.to_thread(path.read_bytes)
        try:
            out.append(await store.put(name, data, by=by, source=f"prompts/{name}.wav", at=time.time()))
        except InvalidInput as exc:
            skipped.append(f"{name}: {exc}")
    changed = [v for v in out if v.changed]
    if changed:
        await _record(redis, "prompts_pushed", by, prompts={v.name: v.version for v in changed})
    return Pushed(out, skipped)


async def pbx_prompts(redis: aioredis.Redis) -> dict[str, frozenset[str]]:
    """Every known PBX (one that has synced) -> the prompt names its sounds folder
    holds at the version in force: what publishing a flow is checked against."""
    return await PromptStore(redis).held_names()


async def pbx_status(redis: aioredis.Redis) -> list[dict[str, Any]]:
    """Each known PBX: when it last synced, from which host, and the prompts in force it lacks."""
    store = PromptStore(redis)
    current = await store.current()
    out = []
    for s in await store.pbxs():
        lacking = sorted(n for n, sha in current.items() if sha not in s.held)
        out.append({"pbx": s.pbx, "at": s.at, "host": s.host, "prompts": len(current) - len(lacking),
                    "lacking": lacking, "errors": list(s.errors)})
    return out


async def forget_pbx(redis: aioredis.Redis, pbx: str, *, by: str) -> None:
    """A PBX taken out of service no longer holds up publishing."""
    if not await PromptStore(redis).forget(pbx):
        raise NotFound(f"没有同步过录音的交换机 '{pbx}' — no PBX '{pbx}' has synced prompts")
    await _record(redis, "prompt_sync_pbx_forgotten", by, pbx=pbx)


async def voice_message(redis: aioredis.Redis, name: str) -> VoiceMessage:
    """A voice message as the PBX it was recorded on sent it up."""
    msg = await MessageStore(redis).get(name)
    if msg is None:
        raise NotFound(f"留言 {name} 尚未从交换机上传或已过保存期 — voice message {name} has not reached the "
                       "shared store (its PBX's prompt sync sends it up) or has expired")
    return msg


def texts_to_draft(home: Path, name: str | None, text: str | None) -> dict[str, str]:
    """What ``ivr prompts draft`` speaks: TEXT as NAME, NAME's line of
    prompts/texts.yaml, or every line of it."""
    if text:
        return {check_name(name): text}
    texts = draft_texts(home)
    if not name:
        return texts
    if name not in texts:
        raise InvalidInput(f"prompts/texts.yaml 中没有 '{name}' 的文字；请直接给出：ivr prompts draft NAME TEXT — "
                           f"no text for '{name}' in prompts/texts.yaml; give one: ivr prompts draft NAME TEXT")
    return {name: texts[name]}


def draft_texts(home: Path) -> dict[str, str]:
    """prompts/texts.yaml: each prompt's words, by prompt name. ``ConfigError``
    naming every entry that is not ``name: text`` (``welcome: 12345`` is a
    number to YAML: quote it)."""
    data = yamlfile.load(yamlfile.read(_dir(home) / "texts.yaml"), "prompts/texts.yaml") or {}
    if not isinstance(data, dict):
        raise ConfigError("prompts/texts.yaml: 应为“名称: 文字”的行 — expected lines of `name: text`")
    bad = [str(k) for k, v in data.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise ConfigError(f"prompts/texts.yaml: {', '.join(bad)} 的文字应为字符串（请加引号） — the text of "
                          f"{', '.join(bad)} must be a string (quote it)")
    return {str(k): str(v) for k, v in data.items()}


def speak(home: Path, name: str, text: str) -> float:
    """A draft prompt NAME.wav spoken from ``text``; its length in seconds.
    ``ConfigError`` when espeak-ng is missing."""
    from ivr.prompts.tts import synthesize

    check_name(name)
    text = text.strip()
    if not text or len(text) > MAX_DRAFT_TEXT:
        raise InvalidInput(f"文字须为 1 到 {MAX_DRAFT_TEXT} 个字符 text: 1 to {MAX_DRAFT_TEXT} characters")
    return synthesize(text, _dir(home) / f"{name}.wav")


async def draft(redis: aioredis.Redis, home: Path, name: str, text: str, *, by: str) -> float:
    """``speak`` off the event loop, recorded in the console's audit log."""
    seconds = await asyncio.to_thread(speak, home, name, text)
    data = await asyncio.to_thread((_dir(home) / f"{name}.wav").read_bytes)
    pv = await PromptStore(redis).put(name, data, by=by, source="draft", at=time.time())
    await _record(redis, "prompt_drafted", by, prompt=name, text=text.strip(), version=pv.version)
    return seconds


async def announcements_text(redis: aioredis.Redis, home: Path) -> tuple[str, str]:
    """The announcement sets in force (YAML), and how the file on disk compares:
    "same", "differs" (edited on disk, not published) or "missing"."""
    from ivr.services.config import in_force

    texts, _, _ = await in_force(redis, home)
    text = texts.get(ANNOUNCEMENTS, "sets: {}\n")
    path = home / ANNOUNCEMENTS
    try:
        disk = "same" if path.read_text(encoding="utf-8") == text else "differs"
    except (OSError, UnicodeDecodeError):
        disk = "missing"
    return text, disk


@dataclass(frozen=True, slots=True)
class SavedSets:
    sets: list[str]
    version: int | None           # None: the text was the one in force already
    warnings: list[Problem]
    removed: list[str]            # sets that the change removed


async def save_announcements(redis: aioredis.Redis, home: Path, tz: ZoneInfo, text: str, *, by: str,
                             clock: Callable[[], float], note: str = "") -> SavedSets:
    """The announcement sets checked with everything that names them (the
    contingency plan, the flows in force), then saved as a new version.
    ``ConfigInvalid`` with every problem, and nothing written, when the change
    would break them: emptying the file under a plan that names a set is such
    a change."""
    from ivr.services.config import save

    saved = await save(redis, home, tz, ANNOUNCEMENTS, text, by=by, note=note, clock=clock)
    sets, _ = parse_announcements(text, ANNOUNCEMENTS, tz=tz, prompts=None, now=dt.datetime.fromtimestamp(clock(), tz))
    summary = saved.summaries.get(ANNOUNCEMENTS, {})
    removed = sorted(e.split(".", 1)[1] for e in summary.get("entries_removed", []) if e.startswith("sets."))
    await _record(redis, "announcements_saved", by, sets=sorted(sets), removed=removed,
                  version=saved.versions.get(ANNOUNCEMENTS))
    return SavedSets(sorted(sets), saved.versions.get(ANNOUNCEMENTS), saved.warnings, removed)
