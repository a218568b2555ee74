"""The configuration staff edit outside the flows (``ivr.configset``): what is
in force, a change checked against everything it touches before anything is
written, versions with diffs, rollback, and publishing files edited on disk.

A change (a console save, ``ivr files publish``, a rollback) is checked as part
of the whole set it would make: the other files in force, and the flows in
force. A plan naming an announcement set that the change removes, a flow
naming a queue that is gone, an emptied file others depend on: refused with
every problem at ``file:line:col``, and nothing written. One change is checked
and written at a time (a lock in Redis), and the set's generation guards the
write, so two changes can never mix into a set nobody checked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import difflib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivr.configset.store import ConfigStore, FileVersion, InForce
from ivr.configset.texts import FILE_RULE, Checked, check_set, config_paths, is_config_file, read_texts
from ivr.errors import ConfigError, ConfigInvalid, Conflict, InvalidInput, NotFound
from ivr.flow.store import FlowStore
from ivr.project import CONFIG_FILE_PATTERN, Operations, QueueConfig, asterisk_queue_names, prompt_names
from ivr.services.files import write_atomic
from ivr.yamldoc import bounded
from ivr.yamldoc.problems import Problem

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    import redis.asyncio as aioredis

Clock = Callable[[], float]
LOCK_WAIT_S = 10.0


PATH_PATTERN = CONFIG_FILE_PATTERN    # what check_path accepts, and its message: for the API's document
PATH_RULE = FILE_RULE


def check_path(path: str) -> str:
    if not is_config_file(path):
        raise InvalidInput(FILE_RULE)
    return path


async def in_force(redis: aioredis.Redis, home: Path) -> tuple[dict[str, str], int, str]:
    """The configuration in force: (file -> text, generation, where from). The
    last good set in Redis; on a fresh install (nothing recorded yet) the files
    on disk."""
    current = await ConfigStore(redis).in_force()
    if not current.empty:
        return current.texts, current.generation, "redis"
    return read_texts(home), current.generation, "files"


async def flows_in_force(redis: aioredis.Redis) -> dict[str, str]:
    """Every published flow's source in force (name -> YAML)."""
    store = FlowStore(redis)
    out: dict[str, str] = {}
    for name in await store.names():
        version = await store.current_version(name)
        if version is not None:
            out[name] = (await store.get(name, version)).source
    return out


@dataclass(frozen=True, slots=True)
class InForceConfig:
    """What the console and the CLI show: the configuration in force (never
    the files on disk, which may be broken or not published)."""

    ops: Operations
    queues: QueueConfig | None
    source: str               # "redis" (the last good set) | "files" (a fresh install)
    generation: int


async def configuration(redis: aioredis.Redis, home: Path, tz: ZoneInfo, now: float) -> InForceConfig:
    texts, generation, source = await in_force(redis, home)
    checked = check_set(texts, prompts=prompt_names(home / "prompts"), tz=tz, now=dt.datetime.fromtimestamp(now, tz))
    return InForceConfig(checked.ops, checked.queues, source, generation)


def check_texts(home: Path, tz: ZoneInfo, texts: Mapping[str, str], flows: Mapping[str, str], now: float) -> Checked:
    return check_set(texts, prompts=prompt_names(home / "prompts"), tz=tz,
                     now=dt.datetime.fromtimestamp(now, tz), flows=flows,
                     asterisk_queues=asterisk_queue_names(home / "asterisk"))


def _bounded_text(path: str, text: str) -> None:
    size = len(text.encode("utf-8"))
    if size > bounded.MAX_BYTES:
        raise ConfigInvalid([Problem(path, 1, 1, bounded.too_large(size))])


def describe_change(path: str, old: str | None, new: str | None) -> dict[str, Any]:
    """What a change did, for the audit log and the history: lines added and
    removed, and for YAML the entries removed and added (two levels deep, e.g.
    ``sets.peak``), so that an emptied file says what it took away."""
    a, b = (old or "").splitlines(), (new or "").splitlines()
    diff = list(difflib.unified_diff(a, b, lineterm="", n=0))
    out: dict[str, Any] = {"lines_added": sum(1 for d in diff if d.startswith("+") and not d.startswith("+++")),
                           "lines_removed": sum(1 for d in diff if d.startswith("-") and not d.startswith("---"))}
    if path.endswith(".yaml"):
        before, after = _entries(old), _entries(new)
        out["entries_removed"] = sorted(before - after)
        out["entries_added"] = sorted(after - before)
    return out


def _entries(text: str | None) -> set[str]:
    try:
        data = bounded.load(text or "", "-")
    except ConfigError:
        return set()
    out: set[str] = set()
    if isinstance(data, dict):
        for k, v in data.items():
            out.add(str(k))
            if isinstance(v, dict):
                out.update(f"{k}.{kk}" for kk in v)
    return out


def diff_text(path: str, old: FileVersion | None, new: FileVersion) -> str:
    a = (old.text or "").splitlines() if old else []
    b = (new.text or "").splitlines()
    return "\n".join(difflib.unified_diff(a, b, f"{path} v{old.version if old else 0}", f"{path} v{new.version}",
                                          lineterm=""))


@dataclass(frozen=True, slots=True)
class Saved:
    versions: dict[str, int]          # file -> new version (empty: nothing changed)
    warnings: list[Problem]
    summaries: dict[str, dict[str, Any]]


class _Locked:
    """One change checked and written at a time, across processes."""

    def __init__(self, store: ConfigStore) -> None:
        self.store = store
        self.token = secrets.token_hex(8)

    async def __aenter__(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCK_WAIT_S
        while not await self.store.lock(self.token):
            if loop.time() > deadline:
                raise Conflict("另一项配置变更正在进行，请稍后再试 — another configuration change is in progress; "
                               "try again in a moment")
            await asyncio.sleep(0.05)

    async def __aexit__(self, *exc: object) -> None:
        await self.store.unlock(self.token)


async def change(redis: aioredis.Redis, home: Path, tz: ZoneInfo, changes: Mapping[str, str | None], *, by: str,
                 note: str = "", how: str = "save", clock: Clock, expect_generation: int | None = None,
                 write_files: bool = True) -> Saved:
    """``changes`` (file -> new text, None to remove) checked with the rest of the
    set in force and the flows in force; ``ConfigInvalid`` with every problem
    and nothing written, else written to disk and recorded as new versions."""
    for path, text in changes.items():
        check_path(path)
        if text is not None:
            _bounded_text(path, text)
    store = ConfigStore(redis)
    async with _Locked(store):
        texts, generation, _ = await in_force(redis, home)
        if expect_generation is not None and expect_generation != generation:
            raise Conflict("配置已被他人修改，请重新载入后再改 — the configuration changed meanwhile: reload and "
                           "make the change again")
        candidate = dict(texts)
        for path, text in changes.items():
            if text is None:
                candidate.pop(path, None)
            else:
                candidate[path] = text
        now = clock()
        checked = check_texts(home, tz, candidate, await flows_in_force(redis), now)
        if checked.errors:
            raise ConfigInvalid(checked.problems)
        summaries = {p: describe_change(p, texts.get(p), t) for p, t in changes.items() if t != texts.get(p)}
        if write_files:
            for path, text in changes.items():
                if text is None:
                    (home / path).unlink(missing_ok=True)
                elif (home / path).is_file() is False or (home / path).read_text(encoding="utf-8") != text:
                    write_atomic(home / path, text.encode("utf-8"))
        if await store.generation() == 0 and how not in ("start", "publish"):
            # nothing recorded yet: the files in force so far become version 1
            await store.record(texts, by="system:first-record", how="start", note="在此之前的文件 files before "
                               "the first recorded change", now=now)
            generation = await store.generation()
        versions = await store.record(candidate if how in ("start", "publish") else dict(changes), by=by, how=how,
                                      note=note, expect_generation=generation, summaries=summaries, now=now)
        return Saved(versions, [p for p in checked.problems if p.warning], summaries)


async def save(redis: aioredis.Redis, home: Path, tz: ZoneInfo, path: str, text: str, *, by: str, note: str = "",
               clock: Clock) -> Saved:
    """One file's new text (the console's editor)."""
    return await change(redis, home, tz, {check_path(path): text}, by=by, note=note, how="save", clock=clock)


async def publish_files(redis: aioredis.Redis, home: Path, tz: ZoneInfo, *, by: str, note: str = "",
                        clock: Clock) -> Saved:
    """The files as they are on disk (edited by hand), checked as a set and
    recorded: the way a change made on disk becomes a version."""
    try:
        disk = read_texts(home)
    except ConfigError as exc:
        raise ConfigInvalid([Problem(str(exc).split(":", 1)[0], 1, 1, str(exc))]) from exc
    texts, _, source = await in_force(redis, home)
    changes: dict[str, str | None] = {p: t for p, t in disk.items() if texts.get(p) != t or source == "files"}
    changes.update({p: None for p in texts if p not in disk})
    if not changes:
        return Saved({}, [], {})
    return await change(redis, home, tz, changes, by=by, note=note, how="publish", clock=clock, write_files=False)


async def history(redis: aioredis.Redis, path: str) -> list[tuple[FileVersion, str]]:
    """Every version of one file, newest first, each with its diff from the one before."""
    versions = await ConfigStore(redis).versions(check_path(path))
    out = [(v, diff_text(path, versions[i - 1] if i else None, v)) for i, v in enumerate(versions)]
    return list(reversed(out))


async def rollback(redis: aioredis.Redis, home: Path, tz: ZoneInfo, path: str, version: int | None, *, by: str,
                   note: str = "", clock: Clock) -> Saved:
    """An earlier version of one file put back in force (checked like any change;
    it becomes a new version). Default: the version before the one in force."""
    store = ConfigStore(redis)
    current = await store.in_force()
    now_v = current.versions.get(check_path(path))
    if version is None:
        older = [v.version for v in await store.versions(path) if now_v is None or v.version < now_v]
        if not older:
            raise NotFound(f"{path} 没有更早的版本 — {path} has no earlier version to roll back to")
        version = max(older)
    if version == now_v:
        raise Conflict(f"{path} 版本 {version} 已在使用 — version {version} of {path} is already in force")
    target = await store.get(path, version)
    return await change(redis, home, tz, {path: target.text}, by=by, note=note or f"回滚到版本 {version} rollback "
                        f"to version {version}", how="rollback", clock=clock, expect_generation=current.generation)


@dataclass(frozen=True, slots=True)
class FileState:
    path: str
    version: int | None           # in force (None: not recorded yet)
    on_disk: str                  # "same" | "differs" | "missing" | "unrecorded"


@dataclass(frozen=True, slots=True)
class Overview:
    source: str                   # where the set in force is read from: "redis" | "files"
    generation: int
    files: list[FileState]
    disk_problems: list[Problem]  # the files on disk checked as a set (errors mean: not publishable)


async def overview(redis: aioredis.Redis, home: Path, tz: ZoneInfo, clock: Clock) -> Overview:
    """The set in force, and how the files on disk compare with it (a broken
    file on disk is a warning here, never an error of the page)."""
    current: InForce = await ConfigStore(redis).in_force()
    problems: list[Problem] = []
    try:
        disk = read_texts(home)
        problems = check_texts(home, tz, disk, await flows_in_force(redis), clock()).problems
    except ConfigError as exc:
        disk = {}
        problems = [Problem("-", 1, 1, str(exc))]
    files = []
    for path in sorted(set(current.versions) | set(config_paths(home))):
        v = current.versions.get(path)
        if v is None:
            state = "unrecorded"
        elif path not in disk:
            state = "missing"
        else:
            state = "same" if disk[path] == current.texts.get(path) else "differs"
        files.append(FileState(path, v, state))
    return Overview("redis" if not current.empty else "files", current.generation, files, problems)
