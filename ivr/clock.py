"""The one clock the engine reads.

Production runs on the wall clock. A drill or the demo runs the simulated PBX
``speed`` times faster than the wall, and gives the engine a ``ScaledClock`` on
the same time line, so calling hours, deadlines, spacing, hysteresis, expiry and
every figure on the wallboard are in the same (simulated) seconds as the report.

Only what the hotline's rules measure goes through the clock. Protocol
timeouts (an AGI command, an AMI answer, the Redis lock's lease) are about
sockets and processes and stay on the wall clock.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (simulated in a drill)."""

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of this clock's time."""

    def describe(self) -> str:
        """What the logs and /status say about this clock."""


class WallClock:
    speed = 1.0

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def describe(self) -> str:
        return "wall"


@dataclass(frozen=True, slots=True)
class ScaledClock:
    """``start`` (epoch seconds) at the wall's ``mono0`` (``time.monotonic()``,
    the same in every process of the machine), running ``first_speed`` times
    faster; from each ``(at, speed)`` of ``later`` (simulated seconds since
    ``start``, ascending) at that speed instead: a long drill runs its quiet
    hours faster than its peak."""

    start: float
    first_speed: float
    mono0: float
    later: tuple[tuple[float, float], ...] = ()
    knots: tuple[tuple[float, float, float], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        out = [(0.0, 0.0, self.first_speed)]            # (simulated s, wall s since mono0, speed from there)
        for at, speed in self.later:
            sim0, wall0, before = out[-1]
            out.append((at, wall0 + (at - sim0) / before, speed))
        object.__setattr__(self, "knots", tuple(out))

    @classmethod
    def starting_now(cls, start: float, speed: float) -> ScaledClock:
        return cls(start, speed, time.monotonic())

    def _knot(self, value: float, axis: int) -> tuple[float, float, float]:
        """The last change of speed at or before ``value`` (axis 0: simulated, 1: wall seconds)."""
        found = self.knots[0]
        for k in self.knots[1:]:
            if k[axis] > value:
                break
            found = k
        return found

    def _sim_at(self, wall: float) -> float:
        sim0, wall0, speed = self._knot(wall, 1)
        return sim0 + (wall - wall0) * speed

    def _wall_at(self, sim: float) -> float:
        sim0, wall0, speed = self._knot(sim, 0)
        return wall0 + (sim - sim0) / speed

    @property
    def speed(self) -> float:
        """The speed now (simulated seconds per wall second)."""
        if not self.later:
            return self.first_speed
        now = self.elapsed()
        return next((s for at, s in reversed(self.later) if now >= at), self.first_speed)

    def now(self) -> float:
        return self.start + self.elapsed()

    def elapsed(self) -> float:
        """Simulated seconds since ``start``."""
        return self._sim_at(time.monotonic() - self.mono0)

    async def sleep(self, seconds: float) -> None:
        if not self.later:
            await asyncio.sleep(max(0.0, seconds) / self.first_speed)
            return
        wall = time.monotonic() - self.mono0
        await asyncio.sleep(max(0.0, self._wall_at(self._sim_at(wall) + max(0.0, seconds)) - wall))

    def describe(self) -> str:
        """For ``IVR_CLOCK``: how a drill hands its clock to engine processes."""
        tail = ":" + ",".join(f"{at!r}={s!r}" for at, s in self.later) if self.later else ""
        return f"scaled:{self.start!r}:{self.first_speed!r}:{self.mono0!r}{tail}"


def from_setting(text: str | None) -> Clock:
    """``IVR_CLOCK``: unset or ``wall``; ``scaled:START:SPEED:MONO0`` and
    optionally ``:AT=SPEED,AT=SPEED`` (set by a drill for the engine processes
    it starts)."""
    if not text or text == "wall":
        return WallClock()
    from ivr.errors import ConfigError

    kind, _, rest = text.partition(":")
    parts = rest.split(":")
    try:
        if kind != "scaled" or len(parts) not in (3, 4):
            raise ValueError
        start, speed, mono0 = (float(p) for p in parts[:3])
        later = tuple((float(a), float(b)) for a, _, b in (x.partition("=") for x in parts[3].split(","))) \
            if len(parts) == 4 else ()
        if speed <= 0 or any(s <= 0 for _, s in later) or [a for a, _ in later] != sorted({a for a, _ in later}) \
                or any(a <= 0 for a, _ in later):
            raise ValueError
    except ValueError:
        raise ConfigError(f"IVR_CLOCK={text!r}: 应为 wall 或 scaled:START:SPEED:MONO0[:AT=SPEED,...] (drills set it) — "
                          "expected 'wall' or 'scaled:START:SPEED:MONO0' with a positive speed, then optionally "
                          "ascending positive AT=SPEED pairs") from None
    return ScaledClock(start, speed, mono0, later)


def from_environment() -> Clock:
    return from_setting(os.environ.get("IVR_CLOCK"))


Every = float | Callable[[], float]     # a loop's wall seconds between rounds, fixed or read each round


def every(interval: Every) -> float:
    """The wall seconds to the next round: a loop given ``wall_interval`` as a
    callable follows a drill clock whose speed changes (a fixed figure worked
    out at start went stale at the faster hours' speed)."""
    return interval() if callable(interval) else interval


def paced(clock: object, seconds: float, floor_s: float = 0.05) -> Every:
    """``wall_interval`` of ``clock`` read each round: a constant for a clock
    whose speed never changes."""
    if getattr(clock, "later", ()):
        return lambda: wall_interval(clock, seconds, floor_s)
    return wall_interval(clock, seconds, floor_s)


def wall_interval(clock: object, seconds: float, floor_s: float = 0.05) -> float:
    """Wall seconds between rounds of a loop meant to run every ``seconds`` of
    ``clock``'s time: a drill's faster clock runs the engine's refresh and the
    live model's publishing as often in its time as production does in real
    time (at speed 10 a 0.25 s publish was 2.5 simulated seconds behind the
    queue), never more often than every ``floor_s``."""
    speed = getattr(clock, "speed", 1.0)
    return max(floor_s, seconds / speed) if speed > 0 else seconds
