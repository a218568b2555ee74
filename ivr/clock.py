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
from dataclasses import dataclass
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
    the same in every process of the machine), running ``speed`` times faster."""

    start: float
    speed: float
    mono0: float

    @classmethod
    def starting_now(cls, start: float, speed: float) -> ScaledClock:
        return cls(start, speed, time.monotonic())

    def now(self) -> float:
        return self.start + (time.monotonic() - self.mono0) * self.speed

    def elapsed(self) -> float:
        """Simulated seconds since ``start``."""
        return (time.monotonic() - self.mono0) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    def describe(self) -> str:
        """For ``IVR_CLOCK``: how a drill hands its clock to engine processes."""
        return f"scaled:{self.start!r}:{self.speed!r}:{self.mono0!r}"


def from_setting(text: str | None) -> Clock:
    """``IVR_CLOCK``: unset or ``wall``; ``scaled:START:SPEED:MONO0`` (set by a
    drill for the engine processes it starts)."""
    if not text or text == "wall":
        return WallClock()
    from ivr.errors import ConfigError

    kind, _, rest = text.partition(":")
    parts = rest.split(":")
    try:
        if kind != "scaled" or len(parts) != 3:
            raise ValueError
        start, speed, mono0 = (float(p) for p in parts)
        if speed <= 0:
            raise ValueError
    except ValueError:
        raise ConfigError(f"IVR_CLOCK={text!r}: 应为 wall 或 scaled:START:SPEED:MONO0 (drills set it) — "
                          "expected 'wall' or 'scaled:START:SPEED:MONO0' with a positive speed") from None
    return ScaledClock(start, speed, mono0)


def from_environment() -> Clock:
    return from_setting(os.environ.get("IVR_CLOCK"))


def wall_interval(clock: object, seconds: float, floor_s: float = 0.05) -> float:
    """Wall seconds between rounds of a loop meant to run every ``seconds`` of
    ``clock``'s time: a drill's faster clock runs the engine's refresh and the
    live model's publishing as often in its time as production does in real
    time (at speed 10 a 0.25 s publish was 2.5 simulated seconds behind the
    queue), never more often than every ``floor_s``."""
    speed = getattr(clock, "speed", 1.0)
    return max(floor_s, seconds / speed) if speed > 0 else seconds
