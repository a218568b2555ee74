"""The trunk lines in use, read over the leader's AMI link (a leader part).

Every ``every_s`` it asks ``Getvar GROUP_COUNT(trunk@ivr)`` (the lines in
use: ``ivr.admission.lines``), and ``Getvar IVR_LINES`` (the dialplan's
limit) after each login and every ``limit_every_s``. The answer goes into the
live model, which publishes it with the queues. A count that cannot be read
is recorded with the reason, so the figures say "unknown" and why, and the
flows fall back to admitting without lines; the first failure and the
recovery are logged, not every round.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ivr.admission.lines import IN_USE_VAR, LIMIT_VAR, LineReading, PbxLines, count_value
from ivr.aio import cancelling
from ivr.ami.controller import AmiController
from ivr.clock import Every, every
from ivr.logs import Log

EVERY_S = 1.0
LIMIT_EVERY_S = 30.0


class LineWatch:
    def __init__(self, controller: AmiController, *, now: Callable[[], float], log: Log,
                 config: Callable[[], PbxLines | None], every_s: Every = EVERY_S,
                 limit_every_s: float = LIMIT_EVERY_S) -> None:
        self.controller = controller
        self.now = now                   # the engine's clock (the model's figures are in its seconds)
        self.log = log
        self.config = config             # queue/lines.yaml's PBX in force (the snapshot may change)
        self.every_s = every_s
        self.limit_every_s = limit_every_s
        self._limit: int | None = None
        self._limit_read_at: float | None = None       # on the engine clock
        self._logins_seen = -1
        self._failing = ""

    async def run(self) -> None:
        while not cancelling():
            await self.read_once()
            await asyncio.sleep(every(self.every_s))

    async def read_once(self) -> LineReading | None:
        model = self.controller.model
        model.lines_config = self.config()
        if model.lines_config is None:          # no lines configured for this PBX: nothing to count against
            model.lines_reading = None
            self.controller.mark_changed()
            return None
        reading = await self._read()
        model.lines_reading = reading
        self.controller.mark_changed()
        if reading.error != self._failing:
            if reading.error:
                self.log.warning("lines_unknown", error=reading.error)
            else:
                self.log.info("lines_known", in_use=reading.in_use, limit=reading.limit)
            self._failing = reading.error
        return reading

    async def _read(self) -> LineReading:
        now = self.now()
        if not self.controller.ready.is_set():
            self._logins_seen = -1
            return LineReading(now, limit=self._limit, error="AMI 未连接 — the AMI link is down")
        if self._logins_seen != self.controller.logins or self._limit_read_at is None \
                or now - self._limit_read_at >= self.limit_every_s:
            res = await self.controller.ask({"Action": "Getvar", "Variable": LIMIT_VAR})
            if not res.ok:
                return LineReading(now, limit=self._limit, error=f"Getvar {LIMIT_VAR}: {res.message}")
            self._limit = count_value(_value(res.response))
            self._limit_read_at, self._logins_seen = now, self.controller.logins
        res = await self.controller.ask({"Action": "Getvar", "Variable": IN_USE_VAR})
        if not res.ok:
            return LineReading(now, limit=self._limit, error=f"Getvar {IN_USE_VAR}: {res.message}")
        value = _value(res.response)
        in_use = count_value(value)
        if in_use is None:
            return LineReading(now, limit=self._limit, error=f"Getvar {IN_USE_VAR} answered {value!r}, not a count")
        return LineReading(now, in_use=in_use, limit=self._limit)


def _value(response: object) -> str:
    first = response[0] if isinstance(response, list) and response else response
    get = getattr(first, "get", None)
    value = get("Value", "") if get is not None else ""
    return value if isinstance(value, str) else ""
