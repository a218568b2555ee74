"""The national figures over the last 24 hours, for the wallboard and
``/metrics``: 15秒接通率, the rolling 24-hour 接通率, the average speed of
answer, abandons within 15 s and 满意率 (``ivr.callback.figures`` counts each
call; docs/audit-report.md defines them), and their colours against
``queue/targets.yaml``.

The console reads the calls stream on from where it stopped, at most
``PAGE_LIMIT`` summaries a refresh, into one tally per minute: a refresh
costs the calls of the last second, not the day's (Beijing's busiest day was
1.3 million calls). A call is counted in the minute it started, so the window
is 24 hours to the minute."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from ivr.aio import between_pages
from ivr.callback.figures import DAY_S, Tally, count_live_call
from ivr.redisdb import keys
from ivr.redisdb.replies import stream_entries

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ivr.callback.targets import Targets

PAGE = 500                  # summaries per XRANGE (streams.CALLS_BATCH)
PAGE_LIMIT = 20_000         # summaries read per refresh: a day's backlog is caught up over a few refreshes
MARGIN_S = 6 * 3600         # a summary is written when its call ends: read back this far for the calls still going


class RollingFigures:
    """The last 24 hours' figures, kept up to date from the calls stream (one per console process)."""

    def __init__(self) -> None:
        self._minutes: dict[int, Tally] = {}
        self._after: str | None = None       # the last stream id read
        self._lock = asyncio.Lock()
        self.caught_up = False

    async def refresh(self, redis: aioredis.Redis, now: float) -> None:
        """Read the summaries written since the last refresh. ``now``: the
        engine's clock (a drill's simulated one, as the summaries' times)."""
        async with self._lock:
            if self._after is None:
                # stream ids are the wall clock's; a drill's clock may be ahead of it
                self._after = f"{int((min(now, time.time()) - DAY_S - MARGIN_S) * 1000)}-0"
            read = 0
            while read < PAGE_LIMIT:
                rows = stream_entries(await redis.xrange(keys.CALLS, self._after, "+", count=PAGE))
                for sid, fields in rows:
                    self._add(fields)
                    self._after = "(" + sid
                read += len(rows)
                if len(rows) < PAGE:
                    break
                await between_pages()
            self.caught_up = read < PAGE_LIMIT
            oldest = int((now - DAY_S) // 60)
            for m in [m for m in self._minutes if m < oldest]:
                del self._minutes[m]

    def _add(self, fields: dict[str, str]) -> None:
        from ivr.calls.service import read_summary  # lazily: it brings in the whole call engine

        try:
            s = read_summary(fields)
            minute = int(float(s.get("started") or 0) // 60)
        except (KeyError, ValueError, TypeError):
            return                                      # not a summary: nothing to count
        t = self._minutes.get(minute)
        if t is None:
            t = self._minutes[minute] = Tally()
        count_live_call(t, s)

    def figures(self, now: float, targets: Targets | None = None) -> dict[str, Any]:
        """The figures of the 24 hours up to ``now``, with ``colours`` and the
        ``targets`` they were coloured against (the defaults when ``targets``
        is None: the file is absent or was refused)."""
        from ivr.callback.targets import DEFAULTS

        total = Tally()
        lo, hi = int((now - DAY_S) // 60), int(now // 60)
        for m, t in self._minutes.items():
            if lo < m <= hi:
                total.merge(t, m * 60 // 3600)
        window = (now - DAY_S, now + 1)
        fig = total.figures(window, window)
        for k in ("answer_rate", "answer_rate_24h_offered", "answer_rate_24h_lowest", "answer_rate_24h_lowest_from"):
            fig.pop(k, None)
        goals = targets or DEFAULTS
        return {**fig, "window_s": DAY_S, "complete": self.caught_up, "colours": goals.colours(fig),
                "targets": goals.as_dict()}
