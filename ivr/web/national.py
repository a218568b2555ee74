"""The national figures of the last 24 hours as the wall and ``/metrics`` show
them (``ivr.services.figures``): one rolling tally per console process, kept
with its context, refreshed at most once per push interval whoever asks."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ivr.services.figures import RollingFigures

if TYPE_CHECKING:
    from ivr.callback.targets import Targets
    from ivr.web.context import Context

REFRESH_S = 1.0     # the wall's push interval (api_seat_managers.WALLBOARD_PUSH_S)


async def last_24h(ctx: Context, targets: Targets | None) -> dict[str, Any]:
    """The figures of the 24 hours up to the engine's clock, coloured against ``targets``."""
    state = ctx.__dict__.setdefault("_national", {"rolling": RollingFigures(), "at": -1e9})
    rolling: RollingFigures = state["rolling"]
    now = ctx.clock.now()
    if time.monotonic() - state["at"] >= REFRESH_S:
        state["at"] = time.monotonic()
        await rolling.refresh(ctx.redis, now)
    return rolling.figures(now, targets)
