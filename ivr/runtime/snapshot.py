"""The configuration snapshot: every data file staff edit outside the flows,
read into one immutable value and swapped whole on reload.

Files: ``queue/queues.yaml``, ``queue/contingency.yaml``, ``queue/seats.yaml``,
``queue/lines.yaml``, ``prompts/announcements.yaml``, ``callback/policy.yaml``, ``flows/lists/*.txt``,
``flows/calendars/*.txt``. (Flows themselves are versioned in Redis, see
``flow/registry.py``.) Every part of the engine reads the snapshot in force
when it starts a round, so no part ever sees half of a change. A change that
fails validation leaves the previous snapshot in force; the error is logged and
shown on ``/healthz``, ``/metrics`` and ``ivr status``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from ivr.admission.lines import LinesConfig, PbxLines
from ivr.configset.store import ConfigStore
from ivr.configset.texts import CALENDARS_DIR, FIXED_FILES, LISTS_DIR, check_set, read_texts
from ivr.errors import ConfigError
from ivr.flow.interpreter import RunnerConfig
from ivr.logs import Log
from ivr.project import POLICY_FILE, Operations, QueueConfig, prompt_names

if TYPE_CHECKING:
    from ivr.callback.policy import Policy
    from ivr.contingency.plan import Plan, Seats
    from ivr.prompts.announcements import AnnouncementSets
    from ivr.settings import Settings


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    ops: Operations
    queues: QueueConfig
    lists: dict[str, frozenset[str]] = field(default_factory=dict)
    calendars: dict[str, frozenset[dt.date]] = field(default_factory=dict)
    version: int = 1

    # a snapshot is built only from a set without errors (``snapshot_from_texts``):
    # its plan, seat groups and policy are there
    @property
    def plan(self) -> Plan:
        assert self.ops.plan is not None
        return self.ops.plan

    @property
    def seats(self) -> Seats:
        assert self.ops.seats is not None
        return self.ops.seats

    @property
    def policy(self) -> Policy:
        assert self.ops.policy is not None
        return self.ops.policy

    @property
    def announcements(self) -> AnnouncementSets:
        return self.ops.announcements

    @property
    def lines(self) -> LinesConfig | None:
        """``queue/lines.yaml``; None when absent (no line-based admission)."""
        return self.ops.lines

    @property
    def emergency_queues(self) -> frozenset[str]:
        return frozenset(q.asterisk for q in self.queues.queues.values() if q.emergency)


def snapshot_from_texts(texts: Mapping[str, str], prompts: frozenset[str], tz: ZoneInfo,
                        version: int = 1) -> ConfigSnapshot:
    """Every file of a configuration set checked against the others;
    ``ConfigError`` names each problem at its ``file:line:col``."""
    checked = check_set(texts, prompts=prompts, tz=tz, now=dt.datetime.now(tz))
    checked.require()
    assert checked.queues is not None, "a set without errors has its queues"
    if checked.ops.policy is None:
        raise ConfigError(f"{POLICY_FILE}: 缺少回拨策略 (the callback policy is missing)")
    return ConfigSnapshot(checked.ops, checked.queues, checked.lists, checked.calendars, version)


def load_snapshot(home: Path, tz: ZoneInfo, version: int = 1) -> ConfigSnapshot:
    """Read and validate every file on disk; ``ConfigError`` names each problem."""
    try:
        texts = read_texts(home)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{home}: 配置文件无法读取 (a configuration file cannot be read): {exc}") from exc
    return snapshot_from_texts(texts, prompt_names(home / "prompts"), tz, version)


def runner_config(snapshot: ConfigSnapshot, settings: Settings) -> RunnerConfig:
    """What the flow interpreter needs of the snapshot and the settings."""
    qc = snapshot.queues
    return RunnerConfig(queues=qc.asterisk_names, fallback_queue=qc.queues[qc.fallback].asterisk,
                        transfer_dialstring=settings.transfer_dialstring)


Adjust = Callable[[ConfigSnapshot], ConfigSnapshot]


def with_plan_mode(mode: str) -> Adjust:
    """A drill runs the shipped plan in its own mode (``auto``: the level moves
    by itself; ``propose``: a fixed level) without editing the file."""
    def adjust(snap: ConfigSnapshot) -> ConfigSnapshot:
        if snap.plan is None:
            return snap
        plan = dataclasses.replace(snap.plan, mode=mode)
        return dataclasses.replace(snap, ops=dataclasses.replace(snap.ops, plan=plan))
    return adjust


def with_lines(lines: PbxLines | None, adjust: Adjust | None = None) -> Adjust:
    """A drill's PBX has the lines its profile names: queue/lines.yaml as the
    profile states it, without editing the file; None: a PBX with no line limit
    (the shipped file's 30 lines would have the engine offer every caller a
    callback for lines the drill's PBX never runs out of)."""
    def put(snap: ConfigSnapshot) -> ConfigSnapshot:
        snap = adjust(snap) if adjust else snap
        config = LinesConfig({lines.name: lines}) if lines is not None else None
        return dataclasses.replace(snap, ops=dataclasses.replace(snap.ops, lines=config))
    return put


FILES, LAST_GOOD = "files", "last_good"


def without_admission(adjust: Adjust | None = None) -> Adjust:
    """The behaviour before admission, for a drill's comparison on the same
    arrivals: no level offers an early callback or says the wait, and no line
    count is known (no line-based offer, no line rule for callbacks)."""
    def strip(snap: ConfigSnapshot) -> ConfigSnapshot:
        snap = adjust(snap) if adjust else snap
        levels = tuple(dataclasses.replace(lv, admission_wait_s=None, say_wait=False) for lv in snap.plan.levels)
        ops = dataclasses.replace(snap.ops, plan=dataclasses.replace(snap.plan, levels=levels), lines=None)
        return dataclasses.replace(snap, ops=ops)
    return strip


class SnapshotSource:
    """Holds the snapshot in force and reloads it when a file changes.

    ``running_on`` says where the snapshot in force came from: the files on disk,
    or (when they were broken at start) the last good configuration recorded in
    Redis. ``error`` (``file:line:col`` lines) and ``error_since`` say why the
    files on disk are not in force and since when."""

    def __init__(self, home: Path, tz: ZoneInfo, log: Log, *, adjust: Adjust | None = None,
                 initial: ConfigSnapshot | None = None, texts: dict[str, str] | None = None,
                 error: str | None = None, error_since: float | None = None, running_on: str = FILES) -> None:
        self.home = home
        self.tz = tz
        self.log = log
        self.adjust = adjust or (lambda s: s)      # a drill runs the plan in its own mode
        self.error: str | None = error             # why the files on disk are not in force
        self.error_since: float | None = error_since if error else None
        self.running_on = running_on
        self._stamp = self._files_stamp()
        if initial is None:
            texts = read_texts(home)
            initial = self.adjust(snapshot_from_texts(texts, prompt_names(home / "prompts"), tz))
        self.current = initial
        self.texts: dict[str, str] = dict(texts or {})     # the texts in force (to record them)
        self.unrecorded = running_on == FILES              # texts in force not yet recorded in Redis
        self._listeners: list[Callable[[ConfigSnapshot], None]] = []

    def on_change(self, fn: Callable[[ConfigSnapshot], None]) -> None:
        self._listeners.append(fn)

    def _files(self) -> list[Path]:
        h = self.home
        files = [h / f for f in FIXED_FILES]
        for folder in (h / LISTS_DIR, h / CALENDARS_DIR):
            if folder.is_dir():
                files.append(folder)
                files.extend(sorted(folder.glob("*.txt")))
        return files

    def _files_stamp(self) -> tuple[tuple[str, int | None, int | None], ...]:
        out: list[tuple[str, int | None, int | None]] = []
        for p in self._files():
            try:
                st = p.stat()
                out.append((str(p), st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((str(p), None, None))
        return tuple(out)

    def refresh(self, now: float | None = None) -> bool:
        """Reload if a file changed; True when a new snapshot is in force."""
        stamp = self._files_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            texts = read_texts(self.home)
            snap = self.adjust(snapshot_from_texts(texts, prompt_names(self.home / "prompts"), self.tz,
                                                   self.current.version + 1))
        except (ConfigError, UnicodeDecodeError) as exc:
            if self.error is None:
                self.error_since = time.time() if now is None else now
            self.error = str(exc)
            self.log.error("config_reload_refused", problems=self.error, version_in_force=self.current.version,
                           running_on=self.running_on)
            return False
        self.current, self.texts, self.error, self.error_since = snap, texts, None, None
        self.running_on, self.unrecorded = FILES, True
        self.log.info("config_reloaded", version=snap.version, levels=len(snap.plan.levels) if snap.plan else 0,
                      announcement_sets=len(snap.announcements))
        for fn in self._listeners:
            fn(snap)
        return True

    async def record(self, store: ConfigStore, *, by: str, now: float) -> None:
        """The files in force recorded as the last good configuration (a file
        whose text is recorded already is left as it is)."""
        if not self.unrecorded:
            return
        current = await store.in_force()
        changes: dict[str, str | None] = dict(self.texts)
        changes.update({p: None for p in current.versions if p not in self.texts})
        await store.record(changes, by=by, how="start" if self.current.version == 1 else "reload",
                           note="引擎载入的磁盘文件 the files on disk the engine loaded", now=now)
        self.unrecorded = False


async def open_snapshot(home: Path, tz: ZoneInfo, log: Log, store: ConfigStore, *, adjust: Adjust | None = None,
                        now: float) -> SnapshotSource:
    """The engine's configuration at start: the files on disk when they are
    good; when they are broken, the last good configuration recorded in Redis
    (loudly: the error says which file and line, and since when). Only a fresh
    install, with nothing recorded yet, refuses to start on broken files."""
    try:
        return SnapshotSource(home, tz, log, adjust=adjust)
    except (ConfigError, UnicodeDecodeError) as exc:
        problems = str(exc)
        current = await store.in_force()
        if current.empty:
            raise
        try:
            snap = snapshot_from_texts(current.texts, prompt_names(home / "prompts"), tz)
        except ConfigError as last:
            raise ConfigError(f"{problems}\n最近一次正确的配置也无法使用 — the last good configuration cannot be "
                              f"used either: {last}") from exc
        log.error("config_broken_started_on_last_good", problems=problems, generation=current.generation,
                  files=sorted(current.versions))
        return SnapshotSource(home, tz, log, adjust=adjust, initial=(adjust or (lambda s: s))(snap),
                              texts=current.texts, error=problems, error_since=now, running_on=LAST_GOOD)
