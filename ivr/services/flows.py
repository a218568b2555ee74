"""Call flows: check, publish, roll back, history. The console edits one
flow's text; the command line works on the files in ``flows/``."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ivr.errors import FlowInvalid, FlowNotFound, InvalidInput
from ivr.flow import model as m
from ivr.flow.store import FlowStore, FlowVersion, PublishResult
from ivr.project import Project, check_files, check_flow_texts, load_operations, prompt_names, queue_sound_problems
from ivr.services.files import write_atomic
from ivr.services.prompts import pbx_prompts
from ivr.yamldoc.problems import Problem

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    import redis.asyncio as aioredis


@dataclass(frozen=True, slots=True)
class Checked:
    flows: dict[str, m.Flow]    # name -> the valid flow
    problems: list[Problem]     # errors and warnings, every one
    checked: int                # flow files read

    @property
    def errors(self) -> list[Problem]:
        return errors_of(self.problems)


def errors_of(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if not p.warning]


async def listing(redis: aioredis.Redis, home: Path) -> list[dict[str, object]]:
    """The flow files and the version of each in force (None: never published)."""
    store = FlowStore(redis)
    return [{"name": p.stem, "version": await store.current_version(p.stem)} for p in Project(home).flow_files()]


async def detail(redis: aioredis.Redis, home: Path, name: str) -> dict[str, object] | None:
    """One flow: its file's text (the draft) and the published source in force;
    None when there is neither."""
    path = Project(home).flows_dir / f"{name}.yaml"
    store = FlowStore(redis)
    version = await store.current_version(name)
    published = (await store.get(name, version)).source if version else None
    if not path.exists() and published is None:
        return None
    return {"name": name, "version": version, "published": published,
            "source": path.read_text(encoding="utf-8") if path.exists() else published}


def check_project(home: Path, tz: ZoneInfo, paths: list[Path] | None = None) -> Checked:
    """The flow files (all, or ``paths``) with the plan, seat groups and
    announcement sets: a flow may name an announcement set, and an expiring
    announcement is news."""
    project = Project(home)
    ops = load_operations(project, tz, dt.datetime.now(tz))
    flows, problems = check_files(project, paths, frozenset(ops.announcements))
    sounds = queue_sound_problems(home / "asterisk", prompt_names(home / "prompts"))
    return Checked(flows, ops.problems + problems + sounds, len(paths) if paths else len(project.flow_files()))


def check_text(home: Path, name: str, source: str, label: str | None = None,
               published: frozenset[str] = frozenset(),
               pbx_prompts: Mapping[str, frozenset[str]] | None = None) -> tuple[m.Flow | None, list[Problem]]:
    """One flow's text against the project (other flows: the files, ``published``
    and itself) and, to publish it, ``pbx_prompts`` (what each known PBX holds).
    Returns the flow (None if invalid) and every problem."""
    project = Project(home)
    others = frozenset(p.stem for p in project.flow_files()) | published | {name}
    catalog = dataclasses.replace(project.catalog(others), pbx_prompts=pbx_prompts)
    flows, problems = check_flow_texts({name: (label or f"flows/{name}.yaml", source)}, catalog)
    return flows.get(name), problems


@dataclass(frozen=True, slots=True)
class Publishable:
    flows: dict[str, m.Flow]    # name -> the valid flow
    problems: list[Problem]     # errors and warnings of every file
    names: list[str]            # the flows to publish

    def require_valid(self) -> None:
        """``InvalidInput`` naming the flows that may not be published."""
        bad = [n for n in self.names if n not in self.flows]
        if bad:
            raise InvalidInput(f"未发布 {', '.join(bad)}：请先改正上面的错误 — not published: {', '.join(bad)} "
                               "(fix the errors above first)")


def publishable(home: Path, names: list[str],
                pbx_prompts: Mapping[str, frozenset[str]] | None = None) -> Publishable:
    """The files of ``names`` (all by default) checked for publishing, with
    what each known PBX holds (``pbx_prompts``, from ``prompts.pbx_prompts``):
    a flow naming a prompt some PBX lacks is not publishable."""
    project = Project(home)
    flows, problems = check_files(project, pbx_prompts=pbx_prompts)
    return Publishable(flows, problems, names or sorted(p.stem for p in project.flow_files()))


async def publishable_now(redis: aioredis.Redis, home: Path, names: list[str]) -> Publishable:
    """``publishable`` against the PBXs as Redis knows them now."""
    held = await pbx_prompts(redis)
    return await asyncio.to_thread(publishable, home, names, held)


async def publish(redis: aioredis.Redis, name: str, source: str, *, by: str, note: str = "") -> PublishResult:
    return await FlowStore(redis).publish(name, source, by=by, note=note)


async def publish_text(redis: aioredis.Redis, home: Path, name: str, source: str, *, by: str,
                       note: str = "") -> tuple[PublishResult, list[Problem]]:
    """The console's publish: the text checked, published, and written to
    ``flows/NAME.yaml`` so the file and Redis agree. ``FlowInvalid`` (with
    warnings too) when it has errors: nothing published."""
    held = await pbx_prompts(redis)
    flow, problems = await asyncio.to_thread(check_text, home, name, source, None, frozenset(), held)  # off the loop
    if flow is None or errors_of(problems):
        raise FlowInvalid(problems)
    res = await publish(redis, name, source, by=by, note=note)
    write_atomic(Project(home).flows_dir / f"{name}.yaml", source.encode())
    return res, problems


async def rollback(redis: aioredis.Redis, home: Path, name: str, version: int | None, *, by: str, note: str = "",
                   write_file: bool = False) -> FlowVersion:
    """Put ``version`` (default: the one before the version in force) back in
    force, if it still validates: a prompt or queue it names may be gone since.
    ``write_file``: ``flows/NAME.yaml`` becomes that version (the console's
    editor shows what is in force)."""
    store = FlowStore(redis)
    _, target = await store.rollback_target(name, version)
    try:
        fv = await store.get(name, target)
    except FlowNotFound:
        raise FlowNotFound(f"流程 '{name}' 没有版本 {target} — flow '{name}' has no version {target}") from None
    published = frozenset(await store.names())
    held = await pbx_prompts(redis)
    _, problems = await asyncio.to_thread(check_text, home, name, fv.source, f"{name}@v{target}", published, held)
    if errors_of(problems):
        raise FlowInvalid(errors_of(problems))
    v = await store.rollback(name, target, by=by, note=note)
    if write_file:
        write_atomic(Project(home).flows_dir / f"{name}.yaml", fv.source.encode())
    return await store.get(name, v)


async def history(redis: aioredis.Redis, name: str, *,
                  diffs: bool = False) -> tuple[int | None, list[dict[str, str]]]:
    """The version in force (None: never published) and the flow's publishes
    and rollbacks, oldest first; ``diffs``: each with the unified diff from the
    version before."""
    store = FlowStore(redis)
    current = await store.current_version(name)
    entries = await store.history(name)
    if not diffs:
        return current, entries
    out, prev = [], ""
    for e in entries:
        v = int(e["version"])
        src = (await store.get(name, v)).source
        out.append({**e, "diff": "".join(difflib.unified_diff(prev.splitlines(True), src.splitlines(True),
                                                              "before", f"v{v}"))})
        prev = src
    return current, out
