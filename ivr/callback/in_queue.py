"""A callback offered while the caller waits in the queue.

The hold music of a busy level tells callers "press 1 to keep your place and
be called back" (prompt ``hold-callback-offer``). Asterisk's Queue() keeps the
digit to itself, but AMI reports it (``DTMFEnd``, class ``dtmf``). The leader
then takes the caller out of the line with ``QueueWithdrawCaller``: their
``EXEC Queue`` returns ``WITHDRAW``, the flow confirms the callback
(``on_withdrawn``), and the missed call is recorded as a courtesy callback that
is due when their place would have reached a seat.
"""

from __future__ import annotations

import asyncio

from ivr.ami.controller import AmiController
from ivr.ami.model import AmiEvent
from ivr.logs import Log


class InQueueOffer:
    def __init__(self, controller: AmiController, *, digit: str, emergency_queues: frozenset[str], log: Log) -> None:
        self.controller = controller
        self.digit = digit
        self.emergency_queues = emergency_queues   # emergency callers are never taken out of line
        self.log = log
        self.requested: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        controller.listeners.append(self._on_event)

    def _on_event(self, event: AmiEvent) -> None:
        if event.get("Event") != "DTMFEnd" or event.get("Direction") != "Received" or event.get("Digit") != self.digit:
            return
        uid = event.get("Uniqueid", "")
        waiting = self.controller.model.waiting.get(uid)
        if waiting is None or uid in self.requested or waiting.queue in self.emergency_queues:
            return
        self.requested.add(uid)
        task = asyncio.ensure_future(self._withdraw(waiting.queue, waiting.channel, uid))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _withdraw(self, queue: str, channel: str, uid: str) -> None:
        res = await self.controller.withdraw(queue, channel, uid, "callback-offered")
        (self.log.info if res.ok else self.log.warning)("callback_taken_in_queue", call_id=uid, queue=queue,
                                                         ok=res.ok, message=res.message)
        if not res.ok:
            self.requested.discard(uid)     # pressing again tries again
