"""Asterisk's ``queue_log`` line format, parsed. Pure.

One line per app_queue event, written by ``ast_queue_log`` (main/logger.c)::

    <epoch>|<uniqueid>|<queue>|<agent>|<event>|<data1>|<data2>|...

The data fields per event, as apps/app_queue.c writes them (Asterisk 20/22):

=================  ======================================================
ENTERQUEUE         url | caller's number | position [| caller's name]
CONNECT            hold s | the seat leg's uniqueid | ring s
COMPLETECALLER     hold s | talk s | original position
COMPLETEAGENT      hold s | talk s | original position
ABANDON            position | original position | wait s
EXITWITHTIMEOUT    position | original position | wait s
EXITEMPTY          position | original position | wait s
EXITWITHKEY        key | position | original position | wait s
WITHDRAW           position | original position | wait s | withdraw info
RINGNOANSWER       ring ms
RINGCANCELED       ring ms
=================  ======================================================

Other events (QUEUESTART, CONFIGRELOAD, ADDMEMBER, PAUSE, TRANSFER, ...) are
parsed too and carry no caller's outcome. A caller's uniqueid is ``NONE``,
``MANAGER``, ``CLI`` or ``REALTIME`` on lines about members or the module.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ivr.errors import QueueLogLineInvalid


class Event(StrEnum):
    ENTERQUEUE = "ENTERQUEUE"
    CONNECT = "CONNECT"
    COMPLETECALLER = "COMPLETECALLER"
    COMPLETEAGENT = "COMPLETEAGENT"
    ABANDON = "ABANDON"
    EXITWITHTIMEOUT = "EXITWITHTIMEOUT"
    EXITEMPTY = "EXITEMPTY"
    EXITWITHKEY = "EXITWITHKEY"
    WITHDRAW = "WITHDRAW"
    RINGNOANSWER = "RINGNOANSWER"
    RINGCANCELED = "RINGCANCELED"


class Outcome(StrEnum):
    """How a caller left a queue, as the PBX saw it."""
    ANSWERED = "answered"          # CONNECT: a seat took the call
    ABANDONED = "abandoned"        # ABANDON: hung up while waiting
    TIMEOUT = "timeout"            # EXITWITHTIMEOUT / EXITEMPTY: left without a seat
    KEY = "key"                    # EXITWITHKEY: pressed a key to leave
    WITHDRAWN = "withdrawn"        # WITHDRAW: taken out by the engine (a callback accepted)


# the queue_log event that ends a caller's wait -> the outcome
LEFT: dict[str, Outcome] = {Event.CONNECT: Outcome.ANSWERED, Event.ABANDON: Outcome.ABANDONED, Event.EXITWITHTIMEOUT: Outcome.TIMEOUT,
        Event.EXITEMPTY: Outcome.TIMEOUT, Event.EXITWITHKEY: Outcome.KEY, Event.WITHDRAW: Outcome.WITHDRAWN}
# the data field holding the wait in seconds, per event (CONNECT: its first)
_WAIT_FIELD: dict[str, int] = {Event.CONNECT: 0, Event.ABANDON: 2, Event.EXITWITHTIMEOUT: 2, Event.EXITEMPTY: 2,
               Event.EXITWITHKEY: 3, Event.WITHDRAW: 2}
NOT_A_CALL = frozenset({"NONE", "MANAGER", "CLI", "REALTIME", ""})
MAX_LINE = 8192                    # ast_queue_log's buffer: a longer line is not Asterisk's


@dataclass(frozen=True, slots=True)
class Entry:
    at: int                        # epoch seconds, the PBX's clock
    uniqueid: str
    queue: str
    agent: str
    event: str                     # an ``Event`` or any other name Asterisk writes
    data: tuple[str, ...]

    @property
    def is_call(self) -> bool:
        """A line about a caller (not about members or the module)."""
        return self.uniqueid not in NOT_A_CALL

    @property
    def number(self) -> str:
        """ENTERQUEUE: the caller's number ('' when withheld or unknown)."""
        return self.data[1] if self.event == Event.ENTERQUEUE and len(self.data) > 1 else ""

    @property
    def outcome(self) -> Outcome | None:
        """The outcome of a line that ends a caller's wait; None for any other."""
        return LEFT.get(self.event)

    @property
    def wait_s(self) -> int | None:
        i = _WAIT_FIELD.get(self.event)
        if i is None or len(self.data) <= i:
            return None
        try:
            return int(self.data[i])
        except ValueError:
            return None


def parse_line(line: str) -> Entry:
    """One line of the file (without its newline) -> an ``Entry``; raises
    ``QueueLogLineInvalid`` for anything Asterisk does not write."""
    if len(line) > MAX_LINE:
        raise QueueLogLineInvalid(f"queue_log line longer than {MAX_LINE} characters")
    parts = line.rstrip("\r\n").split("|")
    if len(parts) < 5:
        raise QueueLogLineInvalid(f"queue_log line with {len(parts)} fields, expected at least 5: {line[:80]!r}")
    at, uid, queue, agent, event = parts[:5]
    if not at.isdigit():
        raise QueueLogLineInvalid(f"queue_log line without an epoch: {line[:80]!r}")
    if not event or not event.replace("_", "").isalnum() or not event.upper() == event:
        raise QueueLogLineInvalid(f"queue_log line without an event name: {line[:80]!r}")
    return Entry(int(at), uid, queue, agent, event, tuple(parts[5:]))


def caller_line_fields(e: Entry) -> tuple[str, str, str, str, str, str, str] | None:
    """What the reconciliation keeps of a caller's line: (uniqueid, epoch,
    kind, queue, number, agent, seconds), kind ``enter``, ``complete`` (seconds:
    the talk) or an ``Outcome`` (seconds: the wait); None for any other line."""
    if not e.is_call:
        return None
    if e.event == Event.ENTERQUEUE:
        kind, secs = "enter", ""
    elif e.event in (Event.COMPLETECALLER, Event.COMPLETEAGENT):
        kind, secs = "complete", e.data[1] if len(e.data) > 1 else ""
    elif (outcome := e.outcome) is not None:
        kind, secs = outcome.value, "" if e.wait_s is None else str(e.wait_s)
    else:
        return None
    return (e.uniqueid, str(e.at), kind, e.queue, e.number if e.number.isdigit() else "", e.agent, secs)
