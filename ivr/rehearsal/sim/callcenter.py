"""The simulated hotline's queueing behaviour in simulated time: callers join,
free seats take the head of the line, conversations last their handle time,
seats wrap up, impatient callers abandon, Queue()'s timeout sends the rest on.

Discrete events over ``SimPbx`` (which keeps the state and writes the AMI
events). Time is whatever ``now`` says: a test runs it as fast as the CPU goes
(and checks it against Erlang C and Erlang A), the drill runs it as a multiple
of the wall clock.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ivr.rehearsal.sim.pbx import Bridged, SimEntry, SimPbx


@dataclass
class Outcome:
    kind: str              # answered | abandoned | timeout | withdrawn
    wait_s: float
    member: str = ""
    emergency: bool = False
    talk_s: float = 0.0
    queue: str = ""


class CallCenter:
    def __init__(self, pbx: SimPbx, *, on_connect: Callable[[SimEntry, Bridged], None] | None = None,
                 on_end: Callable[[str, Outcome], None] | None = None) -> None:
        self.pbx = pbx
        self.now = 0.0
        self.on_connect = on_connect          # a seat took the caller
        self.on_end = on_end                  # the caller's time in the queue (and the conversation) is over
        # payload by kind: abandon/timeout a SimEntry, hangup (interface, uniqueid),
        # wrapup an interface, call a function
        self._heap: list[tuple[float, int, str, Any]] = []
        self._seq = itertools.count()
        self.handle: dict[str, float] = {}    # uniqueid -> conversation length
        self.talking: dict[str, Outcome] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.emergency: set[str] = set()
        pbx.on_withdraw = self.withdraw

    def at(self, t: float, kind: str, payload: Any) -> None:
        heapq.heappush(self._heap, (t, next(self._seq), kind, payload))

    def join(self, queue: str, number: str, *, priority: int = 0, patience_s: float = math.inf,
             max_wait_s: float = math.inf, handle_s: float = 180.0, emergency: bool = False,
             uniqueid: str | None = None, chan_vars: dict[str, str] | None = None) -> SimEntry:
        e = self.pbx.join(queue, number, priority=priority, uniqueid=uniqueid, chan_vars=chan_vars)
        self.handle[e.uniqueid] = handle_s
        if emergency:
            self.emergency.add(e.uniqueid)
        if patience_s < max_wait_s and math.isfinite(patience_s):
            self.at(self.now + patience_s, "abandon", e)
        elif math.isfinite(max_wait_s):
            self.at(self.now + max_wait_s, "timeout", e)
        self._dispatch()
        return e

    def withdraw(self, uniqueid: str) -> None:
        found = self.pbx.find(uniqueid)
        if found is not None:
            e = found[1]
            self.pbx.abandon(uniqueid)
            self._end(e, "withdrawn")

    def run_until(self, t: float) -> None:
        while self._heap and self._heap[0][0] <= t:
            when, _, kind, payload = heapq.heappop(self._heap)
            self.now = when
            if kind in ("abandon", "timeout"):
                e = payload
                if self.pbx.find(e.uniqueid) is None:
                    continue                         # already connected or gone
                if kind == "abandon":
                    self.pbx.abandon(e.uniqueid)
                    self._end(e, "abandoned")
                else:
                    self.pbx.leave(e.uniqueid)
                    self._end(e, "timeout")
            elif kind == "hangup":
                iface, uid = payload
                self.pbx.hangup_call(iface)
                out = self.talking.pop(uid)
                self.outcomes[uid] = out
                if self.on_end:
                    self.on_end(uid, out)
                wrap = self.pbx.queues[out.queue].wrapup_s
                if wrap > 0:
                    self.at(self.now + wrap, "wrapup", iface)
            elif kind == "wrapup":
                self.pbx.end_wrapup(payload)
            elif kind == "call":
                payload()
            self._dispatch()
        self.now = max(self.now, t)
        self._dispatch()           # seats freed outside the queues (a callback ended)

    def _end(self, e: SimEntry, kind: str) -> None:
        out = Outcome(kind, self.now - e.joined, emergency=e.uniqueid in self.emergency)
        self.handle.pop(e.uniqueid, None)
        self.outcomes[e.uniqueid] = out
        if self.on_end:
            self.on_end(e.uniqueid, out)

    def _dispatch(self) -> None:
        for b in self.pbx.dispatch():
            uid = b.entry.uniqueid
            out = Outcome("answered", self.now - b.entry.joined, b.interface, uid in self.emergency,
                          self.handle.pop(uid, 180.0), b.queue)
            self.talking[uid] = out
            self.at(self.now + out.talk_s, "hangup", (b.interface, uid))
            if self.on_connect:
                self.on_connect(b.entry, b)


def erlang_a(arrivals_per_s: float, service_s: float, seats: int, patience_s: float = math.inf,
             max_n: int | None = None) -> dict[str, float]:
    """M/M/c+M (Erlang A; Erlang C when patience is infinite), solved exactly as
    a birth-death chain: probability of waiting, of abandoning, mean wait."""
    lam, mu = arrivals_per_s, 1.0 / service_s
    theta = 0.0 if math.isinf(patience_s) else 1.0 / patience_s
    if theta == 0 and lam >= seats * mu:
        raise ValueError("Erlang C needs arrivals below capacity")
    max_n = max_n or seats + 4000
    # log-probabilities, to stay finite for large seat counts
    logp = [0.0]
    for n in range(1, max_n + 1):
        death = min(n, seats) * mu + max(n - seats, 0) * theta
        logp.append(logp[-1] + math.log(lam) - math.log(death))
    top = max(logp)
    p = [math.exp(x - top) for x in logp]
    total = sum(p)
    p = [x / total for x in p]
    waiting_prob = sum(p[seats:])                    # PASTA: an arrival finds all seats busy
    lq = sum((n - seats) * p[n] for n in range(seats, max_n + 1))
    return {"p_wait": waiting_prob, "mean_wait_s": lq / lam, "p_abandon": theta * lq / lam}
