"""A drill's identity sampler: it reads the console as staff do — ``/api/status``
every few simulated seconds, and the wallboard's event stream as it is pushed —
and checks every board against the identities of ``ivr.services.identities``,
the clock's included (the board's time is the drill's simulated time).

The drill starts it from its sampling hook (``Drill._sample``) and reports it
(``Drill._report``: ``identity_violations``). It needs the console of an engine
in the drill's process (``http_port``); a drill without one reports that
nothing was checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from typing import Any

import aiohttp

from ivr.callback.store import CallbackStore
from ivr.services import identities, users

EVERY_S = 5.0            # simulated seconds between two reads of /api/status
MIN_WALL_S = 0.25        # ... but not more often than this (the console runs at the lowest priority)
SLACK_WALL_S = 5.0       # how far apart two readings of the clock may be: the publish and push intervals, a busy host
TICK_WALL_S = 0.02       # the drill advances the simulated PBX this often (drill.py: TICK_S)
LAG_EVERY_S = 0.05       # the event loop's lag is measured this often (wall seconds) ...
LAG_KEPT_S = 3.0         # ... and the largest over this long is what the model may be behind
FIRST = 5                # violations kept in the report with their figures
USER = "drill-identities"


class IdentitySampler:
    def __init__(self, *, port: int, redis: Any, clock: Any, every_s: float = EVERY_S) -> None:
        self.port = port
        self.redis = redis
        self.store = CallbackStore(redis)
        self.clock = clock            # the drill's SimClock: ``engine`` is the engine's (scaled) clock
        self.every_s = every_s
        self.count = 0
        self.samples = {"status": 0, "events": 0}
        self.first: list[dict[str, Any]] = []
        self.by_identity: dict[str, int] = {}
        self.errors: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._lags: list[tuple[float, float]] = []      # (wall time, how late the loop woke)
        self.lag_max_s = 0.0
        self.last_read_s: float | None = None     # the drill's time of the last board checked
        self._report: dict[str, Any] | None = None

    @classmethod
    def start(cls, drill: Any) -> IdentitySampler | None:
        """From the drill's sampling hook: None when the drill has no console of its own."""
        engine = getattr(drill, "engine", None)
        port = getattr(engine, "http_port", None) if engine is not None else None
        if not port:
            return None
        sampler = cls(port=port, redis=drill.redis, clock=drill.clock)
        sampler._tasks = [asyncio.create_task(sampler._run()), asyncio.create_task(sampler._loop_lag())]
        return sampler

    async def _loop_lag(self) -> None:
        """How late this event loop wakes: the engine, its AMI link and the
        simulated PBX share it, so an AMI event waits as long (a busy host)."""
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(LAG_EVERY_S)
            t1 = time.monotonic()
            lag = max(0.0, t1 - t0 - LAG_EVERY_S)
            self._lags = [(t, v) for t, v in self._lags if t1 - t <= LAG_KEPT_S] + [(t1, lag)]
            self.lag_max_s = max(self.lag_max_s, lag)

    def dispatch_s(self) -> float:
        """How long a seat may show idle beside waiting callers: app_queue's
        round, plus how far the live model may be behind the simulated PBX
        (its tick and the loop's recent lag), in simulated seconds."""
        recent = max((v for _, v in self._lags), default=0.0)
        return identities.DISPATCH_S + (TICK_WALL_S + recent) * self.clock.engine.speed

    def bounds(self, earliest: float, latest: float,
               oldest: tuple[float | None, float | None] | None = None) -> identities.ClockBounds:
        return identities.ClockBounds(earliest, latest, self.clock.engine.start,
                                      SLACK_WALL_S * self.clock.engine.speed, oldest)

    def note(self, source: str, board: dict[str, Any], earliest: float, latest: float,
             oldest: tuple[float | None, float | None] | None = None) -> None:
        """``oldest``: the store's oldest open callback read around the request
        (the event stream's boards were built before they arrived: not checked)."""
        self.samples[source] += 1
        self.last_read_s = latest - self.clock.engine.start
        found = identities.check(board, self.bounds(earliest, latest, oldest), self.dispatch_s())
        for v in found:
            self.count += 1
            self.by_identity[v["identity"]] = self.by_identity.get(v["identity"], 0) + 1
            if len(self.first) < FIRST:
                at_s = earliest - self.clock.engine.start
                self.first.append({"at_s": round(at_s, 1), "clock": _hms(at_s), "source": source, **v})

    async def _run(self) -> None:
        token = await _token(self.redis)
        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{self.port}"
        async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=None)) as http:
            await asyncio.gather(self._status(http, base), self._events(http, base))

    async def _status(self, http: aiohttp.ClientSession, base: str) -> None:
        engine = self.clock.engine
        while True:
            wall0 = time.monotonic()
            before = engine.now()
            first_before = await self.store.oldest_open_first_at()
            try:
                async with http.get(f"{base}/api/status", timeout=aiohttp.ClientTimeout(total=30)) as resp:
                    board = await resp.json() if resp.status == 200 else None
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.errors.append(f"/api/status: {exc!r}"[:200])
                board = None
            if board is not None:
                oldest = (first_before, await self.store.oldest_open_first_at())
                self.note("status", board, before, engine.now(), oldest)
            await asyncio.sleep(max(MIN_WALL_S, self.every_s / engine.speed - (time.monotonic() - wall0)))

    async def _events(self, http: aiohttp.ClientSession, base: str) -> None:
        engine = self.clock.engine
        try:
            async with http.get(f"{base}/api/events") as resp:
                event = ""
                async for raw in resp.content:
                    line = raw.decode("utf-8").rstrip("\n")
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "board":
                        now = engine.now()
                        self.note("events", json.loads(line[6:]), now, now)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.errors.append(f"/api/events: {exc!r}"[:200])

    async def stop(self) -> dict[str, Any]:
        """No board is read after this (every task cancelled before the first
        await); the report, the same on every later call."""
        if self._report is not None:
            return self._report
        for t in self._tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                self.errors.append(f"sampler stopped: {t.exception()!r}"[:200])     # said in the report
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._report = self.report()
        return self._report

    def report(self) -> dict[str, Any]:
        return {"count": self.count, "first": self.first, "by_identity": self.by_identity,
                "samples": dict(self.samples), "checked": sum(self.samples.values()) > 0,
                "loop_lag_max_s": round(self.lag_max_s, 3),
                "last_read_s": None if self.last_read_s is None else round(self.last_read_s, 1),
                "errors": self.errors[:5]}


async def _token(redis: Any) -> str:
    """A seat manager of the drill's own Redis, and an API token for it."""
    await users.add(redis, USER, "seat_manager", secrets.token_urlsafe(12), by="drill")
    return await users.issue_token(redis, USER, "identity checks", by="drill")


def _hms(s: float) -> str:
    return f"{int(s // 3600):02d}:{int(s % 3600 // 60):02d}:{int(s % 60):02d}"


async def finish(drill: Any) -> dict[str, Any]:
    """For the drill's report: what the sampler found (nothing checked: no console)."""
    sampler: IdentitySampler | None = getattr(drill, "identities", None)
    if sampler is None:
        return {"count": 0, "first": [], "by_identity": {}, "samples": {"status": 0, "events": 0},
                "checked": False, "errors": ["no console in the drill's process (engine processes)"]}
    return await sampler.stop()


def seats_on_shift(pbx: Any) -> int:
    """The simulated PBX's seats on shift, for the drill's live line: every
    member not paused, in any queue, once (the plan's seats and those called
    back from a break included), and every seat on a call. Busy seats are a
    part of it, so "seats busy N/M" never reads N > M."""
    seats = {i for q in pbx.queues.values() for i, m in q.members.items() if not m.paused}
    return len(seats | set(pbx.calls) | set(pbx.occupied))
