"""The configuration snapshot: every data file staff edit outside the flows,
read into one immutable value and swapped whole on reload.

Files: ``queue/queues.yaml``, ``queue/contingency.yaml``, ``queue/seats.yaml``,
``prompts/announcements.yaml``, ``callback/policy.yaml``, ``flows/lists/*.txt``,
``flows/calendars/*.txt``. (Flows themselves are versioned in Redis, see
``flow/registry.py``.) Every part of the engine reads the snapshot in force
when it starts a round, so no part ever sees half of a change. A change that
fails validation leaves the previous snapshot in force; the error is logged and
shown on ``/healthz``, ``/metrics`` and ``ivr status``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from ivr.errors import ConfigError
from ivr.flow.interpreter import RunnerConfig
from ivr.logs import Log
from ivr.project import (
    Operations,
    Project,
    QueueConfig,
    load_calendars,
    load_number_lists,
    load_queue_config,
    require_operations,
)


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    ops: Operations
    queues: QueueConfig
    lists: dict[str, frozenset[str]] = field(default_factory=dict)
    calendars: dict[str, frozenset[dt.date]] = field(default_factory=dict)
    version: int = 1

    @property
    def plan(self):
        return self.ops.plan

    @property
    def seats(self):
        return self.ops.seats

    @property
    def policy(self):
        return self.ops.policy

    @property
    def announcements(self):
        return self.ops.announcements

    @property
    def emergency_queues(self) -> frozenset[str]:
        return frozenset(q.asterisk for q in self.queues.queues.values() if q.emergency)


def load_snapshot(home: Path, tz: ZoneInfo, version: int = 1) -> ConfigSnapshot:
    """Read and validate every file; ``ConfigError`` names each problem."""
    project = Project(home)
    ops = require_operations(project, tz)
    if ops.policy is None:
        raise ConfigError(f"{home / 'callback' / 'policy.yaml'}: 缺少回拨策略 (the callback policy is missing)")
    try:
        lists, calendars = load_number_lists(project.flows_dir), load_calendars(project.flows_dir)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{project.flows_dir}: 号码表或日历无法读取 (a number list or calendar cannot be read): "
                          f"{exc}") from exc
    return ConfigSnapshot(ops, load_queue_config(home / "queue"), lists, calendars, version)


def runner_config(snapshot: ConfigSnapshot, settings) -> RunnerConfig:
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


class SnapshotSource:
    """Holds the snapshot in force and reloads it when a file changes."""

    def __init__(self, home: Path, tz: ZoneInfo, log: Log, *, adjust: Adjust | None = None) -> None:
        self.home = home
        self.tz = tz
        self.log = log
        self.adjust = adjust or (lambda s: s)      # a drill runs the plan in its own mode
        self.error: str | None = None              # why the files on disk are not in force
        self._stamp = self._files_stamp()
        self.current = self.adjust(load_snapshot(home, tz))
        self._listeners: list[Callable[[ConfigSnapshot], None]] = []

    def on_change(self, fn: Callable[[ConfigSnapshot], None]) -> None:
        self._listeners.append(fn)

    def _files(self) -> list[Path]:
        h = self.home
        files = [h / "queue" / n for n in ("queues.yaml", "contingency.yaml", "seats.yaml")]
        files += [h / "prompts" / "announcements.yaml", h / "callback" / "policy.yaml"]
        for folder in (h / "flows" / "lists", h / "flows" / "calendars"):
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

    def refresh(self) -> bool:
        """Reload if a file changed; True when a new snapshot is in force."""
        stamp = self._files_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            snap = self.adjust(load_snapshot(self.home, self.tz, self.current.version + 1))
        except ConfigError as exc:
            self.error = str(exc)
            self.log.error("config_reload_refused", problems=self.error, version_in_force=self.current.version)
            return False
        self.current, self.error = snap, None
        self.log.info("config_reloaded", version=snap.version, levels=len(snap.plan.levels) if snap.plan else 0,
                      announcement_sets=len(snap.announcements))
        for fn in self._listeners:
            fn(snap)
        return True
