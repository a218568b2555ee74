"""The engine's read-only status: what the web console (``/healthz``,
``/metrics``, the wallboard) and ``ivr status`` may know about a running
engine, and nothing it could change.

The console runs in its own process (``ivr.web.process``), so that nothing a
console user does — a sign-in flood, a month report, an upload — competes with
calls for the engine's event loop. The engine therefore *publishes* its status
to Redis every half second (``EngineStatus.record``, ``publish``), and the
console reads it back (``PublishedStatus``, the same read-only interface). A
record older than ``STALE_S`` means the engine's loop is not turning: the
console says so instead of showing old figures as current. ``StatusView`` is
that interface: the web depends on it, never on either class.

A console on a host of its own (``ivr console``) reads every engine's record
(``FleetStatus``): the calls of all engines summed, the leader's parts. A
record's age is measured by Redis (the key's remaining TTL, the same for every
reader) and, on the engine's own host, by the monotonic clock too: the
monotonic clocks of two hosts (two boots) cannot be compared.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ivr.aio import cancelling
from ivr.clock import WallClock
from ivr.redisdb import keys

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ivr.calls.service import CallService
    from ivr.clock import Clock
    from ivr.runtime.leader import LeaderRole
    from ivr.runtime.snapshot import SnapshotSource

STALE_S = 3.0        # the engine publishes every 0.5 s: six missed rounds and it is not responding
READ_EVERY_S = 0.5
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@functools.cache
def boot_id() -> str:
    """This boot of this host ('' where unknown): monotonic times compare only within one."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


class StatusView(Protocol):
    """The engine's status, read-only: what the console (``/healthz``,
    ``/metrics``) may know. ``EngineStatus`` in the engine's process,
    ``PublishedStatus`` in the console's."""

    def now(self) -> float: ...

    @property
    def calls_in_progress(self) -> int: ...

    @property
    def calls_handled(self) -> int: ...

    @property
    def is_leader(self) -> bool: ...

    @property
    def ami_connected(self) -> bool: ...

    @property
    def config_version(self) -> int | None: ...     # None: the engine is not responding

    @property
    def config_error(self) -> str | None: ...

    def leader_health(self) -> dict[str, Any]: ...

    def as_dict(self) -> dict[str, Any]: ...


class EngineStatus:
    """In the engine's process: read straight from the engine's roles, which
    ``engine.py`` hands over when it wires them (``ami_connected``: whether the
    leader's AMI link, if this process holds one, is up)."""

    def __init__(self, *, clock: Clock, calls: CallService, leader: LeaderRole, config: SnapshotSource,
                 ami_connected: Callable[[], bool]) -> None:
        self._clock = clock
        self._calls = calls
        self._leader = leader
        self._config = config
        self._ami_connected = ami_connected
        self.http_port: int | None = None
        self.audit_key = ""            # the short fingerprint of the audit key in use (ivr.audit.keycheck)

    def now(self) -> float:
        """The engine's clock (simulated in a drill)."""
        return self._clock.now()

    @property
    def calls_in_progress(self) -> int:
        return self._calls.active

    @property
    def calls_handled(self) -> int:
        return self._calls.finished

    @property
    def is_leader(self) -> bool:
        return self._leader.is_leader

    @property
    def ami_connected(self) -> bool:
        return self._ami_connected()

    @property
    def config_version(self) -> int:
        return self._config.current.version

    @property
    def config_error(self) -> str | None:
        return self._config.error

    def leader_health(self) -> dict[str, Any]:
        return self._leader.health()

    def as_dict(self) -> dict[str, Any]:
        """For /healthz and the status line."""
        leader = self.leader_health()
        parts = leader["parts"]
        return {"calls_in_progress": self.calls_in_progress, "calls_handled": self.calls_handled,
                "leader": self.is_leader, "ami_connected": self.ami_connected,
                "parts": parts, "parts_ok": all(p["state"] == "running" for p in parts.values()),
                "config_version": self.config_version, "config_error": self.config_error,
                "config_error_since": self._config.error_since, "config_running_on": self._config.running_on,
                "clock": self._clock.describe(), "engine_responding": True,
                "audit_key_fingerprint": self.audit_key}

    def record(self) -> dict[str, Any]:
        """What ``publish`` writes: the status and when (monotonic, and which
        boot of which host that monotonic time belongs to)."""
        return {"status": self.as_dict(), "mono": time.monotonic(), "boot": boot_id()}


async def publish(redis: aioredis.Redis, token: str, status: EngineStatus) -> None:
    await redis.set(keys.engine_status(token), json.dumps(status.record()), ex=keys.ENGINE_STATUS_TTL_S)


def _not_responding(why: str) -> dict[str, Any]:
    return {"calls_in_progress": None, "calls_handled": None, "leader": False, "ami_connected": False,
            "parts": {}, "parts_ok": False, "config_version": None, "config_error": None,
            "config_error_since": None, "config_running_on": None, "engine_responding": False, "engine_problem": why}


def record_age(rec: dict[str, Any], ttl_ms: int, read_mono: float) -> float:
    """Seconds since the engine wrote ``rec``: from the key's remaining TTL
    (Redis's clock: right on any host), and from the monotonic time the record
    carries when it was written on this boot of this host."""
    since_read = time.monotonic() - read_mono
    age = max(0.0, keys.ENGINE_STATUS_TTL_S - ttl_ms / 1000) + since_read if ttl_ms >= 0 else since_read
    if rec.get("boot", boot_id()) == boot_id():       # a record without "boot": written by an older engine here
        age = max(age, time.monotonic() - float(rec["mono"]))
    return age


class PublishedStatus:
    """In the console's process: the same read-only view, from the record the
    engine ``token`` publishes. ``run`` keeps it fresh; the properties never
    wait on Redis (a request handler reads the last record)."""

    def __init__(self, redis: aioredis.Redis, token: str, clock: Clock, *, audit_key: str = "") -> None:
        self._redis = redis
        self._token = token
        self._clock = clock
        self._record: dict[str, Any] | None = None
        self._ttl_ms = -1
        self._read_mono = 0.0
        self.audit_key = audit_key       # this (the console's) process's audit key, short fingerprint
        self.http_port: int | None = None

    async def read(self) -> None:
        key = keys.engine_status(self._token)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.pttl(key)
            raw, ttl_ms = await pipe.execute()
        self._record = json.loads(raw) if raw else None
        self._ttl_ms, self._read_mono = int(ttl_ms), time.monotonic()

    async def run(self) -> None:
        while not cancelling():
            try:
                await self.read()
            except Exception:  # noqa: BLE001 - Redis restarting: the record goes stale and says so
                pass
            await asyncio.sleep(READ_EVERY_S)

    def now(self) -> float:
        return self._clock.now()

    def _status(self) -> dict[str, Any]:
        rec = self._record
        if rec is None:
            st = _not_responding("no status from the engine (starting, or stopped)")
        else:
            age = record_age(rec, self._ttl_ms, self._read_mono)
            st = (_not_responding(f"the engine's status is {age:.0f} s old: its event loop is not turning")
                  if age > STALE_S else dict(rec["status"]))
        if self.audit_key:
            st["audit_key_fingerprint"] = self.audit_key
        return st

    @property
    def calls_in_progress(self) -> int:
        return int(self._status()["calls_in_progress"] or 0)

    @property
    def calls_handled(self) -> int:
        return int(self._status()["calls_handled"] or 0)

    @property
    def is_leader(self) -> bool:
        return bool(self._status()["leader"])

    @property
    def ami_connected(self) -> bool:
        return bool(self._status()["ami_connected"])

    @property
    def config_version(self) -> int | None:
        v = self._status()["config_version"]
        return None if v is None else int(v)

    @property
    def config_error(self) -> str | None:
        err = self._status()["config_error"]
        return None if err is None else str(err)

    def leader_health(self) -> dict[str, Any]:
        st = self._status()           # not responding: no leader, no parts
        return {"leader": bool(st["leader"]), "token": self._token, "parts": dict(st["parts"])}

    def as_dict(self) -> dict[str, Any]:
        return self._status()


class FleetStatus:
    """On a console host of its own (``ivr console``, no engine beside it): the
    same read-only view over every engine publishing a status to this Redis.
    Calls are summed over the engines that respond; ``leader``,
    ``ami_connected`` and the parts are the leader's (whichever engine holds
    the role now); a configuration error of any engine shows, named by its
    engine; an engine that stopped turning makes ``parts_ok`` false (so
    ``/healthz`` says not ok) and is named in ``engine_problem``. With no
    engine responding at all, the view is the one of a stopped engine."""

    def __init__(self, redis: aioredis.Redis, clock: Clock, *, audit_key: str = "") -> None:
        self._redis = redis
        self._clock = clock
        self._engines: dict[str, dict[str, Any]] = {}
        self.audit_key = audit_key
        self.http_port: int | None = None

    async def read(self) -> None:
        self._engines = await engines(self._redis)

    async def run(self) -> None:
        while not cancelling():
            try:
                await self.read()
            except Exception:  # noqa: BLE001 - Redis restarting: the records go stale and say so
                pass
            await asyncio.sleep(READ_EVERY_S)

    def clock_spec(self) -> str | None:
        """The engines' clock as they describe it (``IVR_CLOCK``), None when none responds."""
        return next((str(s["clock"]) for s in self._engines.values() if s["engine_responding"] and s.get("clock")),
                    None)

    def now(self) -> float:
        return self._clock.now()

    def _status(self) -> dict[str, Any]:
        every = self._engines
        up = {t: s for t, s in every.items() if s["engine_responding"]}
        if not up:
            why = ("no engine publishes a status to this Redis (is `ivr serve` running?)" if not every else
                   "no engine responding: " + "; ".join(f"{t}: {s['engine_problem']}" for t, s in every.items()))
            st = _not_responding(why)
        else:
            st = self._combined(up, [t for t in every if t not in up])
        st["engines"] = {t: {"responding": bool(s["engine_responding"]), "leader": bool(s["leader"]),
                             "calls_in_progress": s["calls_in_progress"]} for t, s in every.items()}
        if self.audit_key:
            st["audit_key_fingerprint"] = self.audit_key
        return st

    @staticmethod
    def _combined(up: dict[str, dict[str, Any]], down: list[str]) -> dict[str, Any]:
        leader_token = next((t for t, s in up.items() if s["leader"]), None)
        main = up[leader_token or min(up)]
        st = dict(main)
        st["calls_in_progress"] = sum(int(s["calls_in_progress"] or 0) for s in up.values())
        st["calls_handled"] = sum(int(s["calls_handled"] or 0) for s in up.values())
        st["leader"] = leader_token is not None
        st["leader_token"] = leader_token
        st["ami_connected"] = bool(leader_token and main["ami_connected"])
        st["parts"] = dict(main["parts"]) if leader_token else {}
        st["parts_ok"] = (bool(main["parts_ok"]) if leader_token else True) and not down
        wrong = next(((t, s) for t, s in sorted(up.items()) if s.get("config_error")), None)
        if wrong is not None:
            st |= {"config_error": f"{wrong[0]}: {wrong[1]['config_error']}",
                   "config_error_since": wrong[1].get("config_error_since"),
                   "config_running_on": wrong[1].get("config_running_on")}
        if down:
            st["engine_problem"] = "not responding: " + ", ".join(down)
        return st

    @property
    def calls_in_progress(self) -> int:
        return int(self._status()["calls_in_progress"] or 0)

    @property
    def calls_handled(self) -> int:
        return int(self._status()["calls_handled"] or 0)

    @property
    def is_leader(self) -> bool:
        return bool(self._status()["leader"])

    @property
    def ami_connected(self) -> bool:
        return bool(self._status()["ami_connected"])

    @property
    def config_version(self) -> int | None:
        v = self._status()["config_version"]
        return None if v is None else int(v)

    @property
    def config_error(self) -> str | None:
        err = self._status()["config_error"]
        return None if err is None else str(err)

    def leader_health(self) -> dict[str, Any]:
        st = self._status()
        return {"leader": bool(st["leader"]), "token": st.get("leader_token"), "parts": dict(st["parts"])}

    def as_dict(self) -> dict[str, Any]:
        return self._status()


if TYPE_CHECKING:
    # both satisfy the protocol (checked here: the web only ever sees one of them)
    _VIEWS: tuple[type[StatusView], ...] = (EngineStatus, PublishedStatus, FleetStatus)


async def engines(redis: aioredis.Redis) -> dict[str, dict[str, Any]]:
    """Every engine's published status, by token (``ivr status``): a record
    older than ``STALE_S`` reads as not responding."""
    tokens = [k.split(":")[2:-1] async for k in redis.scan_iter(match=keys.ENGINE_STATUS_MATCH, count=100)]
    out: dict[str, dict[str, Any]] = {}
    for parts in tokens:
        token = ":".join(parts)
        view = PublishedStatus(redis, token, WallClock())
        await view.read()
        out[token] = view.as_dict()
    return dict(sorted(out.items()))


def engine_lines(statuses: dict[str, dict[str, Any]]) -> list[str]:
    """Staff-facing lines, Chinese first: one per engine process."""
    if not statuses:
        return ["引擎 engines: 无 (none publishing a status: is `ivr serve` running?)"]
    up = sum(1 for s in statuses.values() if s["engine_responding"])
    lines = [f"引擎 engines: {up}/{len(statuses)} 正常响应 responding"]
    for token, s in statuses.items():
        if not s["engine_responding"]:
            lines.append(f"  {token}: 无响应 NOT RESPONDING — {s['engine_problem']}")
            continue
        role = " 主控 leader" if s["leader"] else ""
        err = config_error_line(s)
        lines.append(f"  {token}: 通话中 calls {s['calls_in_progress']}, 已处理 handled {s['calls_handled']}{role}{err}")
    return lines



def config_error_line(s: dict[str, Any]) -> str:
    """``; 配置错误 ...`` for an engine whose files on disk are not in force ('' when they are)."""
    if not s.get("config_error"):
        return ""
    since = s.get("config_error_since")
    when = time.strftime(" %m-%d %H:%M", time.localtime(since)) if since else ""
    on = ("，正在使用最近一次正确的配置 running on the last good configuration"
          if s.get("config_running_on") == "last_good" else "，仍使用之前的配置 the previous one stays in force")
    return f"; 配置错误 config error (自{when} since{when}{on}): {s['config_error']}"
