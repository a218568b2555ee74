"""The callback's codes as enums. They are ``StrEnum``s: equal to the plain
strings stored in Redis, in the Lua scripts (``ivr.callback.scripts``) and in
audit entries, so they can be compared with what is read back as is."""

from __future__ import annotations

from enum import StrEnum


class RecordState(StrEnum):
    """``state`` of a callback record."""
    OPEN = "open"            # waiting in the pending or the ready line
    ASSIGNED = "assigned"    # claimed by a scheduler that is dialling it (lease in ivr:cb:claims)
    CLOSED = "closed"        # done; the record lives under ivr:cb:id:<id>


class Outcome(StrEnum):
    """Outcome of one callback attempt (``last_outcome``; audit ``attempt``)."""
    REACHED = "reached"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    SEAT_HUNG_UP = "seat_hung_up"          # the seat answered, then hung up before the citizen did
    SEAT_NO_ANSWER = "seat_no_answer"      # the seat did not pick up: not counted as an attempt


# Asterisk's DIALSTATUS -> outcome (the scheduler's DIAL_OUTCOMES; '' = the
# seat hung up before the citizen's leg was dialled)
DIAL_OUTCOMES = {"ANSWER": Outcome.REACHED, "NOANSWER": Outcome.NO_ANSWER, "BUSY": Outcome.BUSY,
                 "CONGESTION": Outcome.FAILED, "CHANUNAVAIL": Outcome.FAILED, "CANCEL": Outcome.FAILED,
                 "DONTCALL": Outcome.FAILED, "TORTURE": Outcome.FAILED, "INVALIDARGS": Outcome.FAILED,
                 "": Outcome.SEAT_HUNG_UP}


class EntryKind(StrEnum):
    """``kind`` of an entry in ivr:audit:callbacks."""
    RECORDED = "recorded"
    RECORDED_MISDIAL = "recorded_misdial"
    MERGED = "merged"
    REPLAYED = "replayed"
    ASSIGNED = "assigned"
    ADOPTED = "adopted"          # a new leader took over an attempt whose call was still up
    ATTEMPT = "attempt"
    SCHEDULED = "scheduled"
    CLOSED = "closed"
    SUPPRESSED = "suppressed"    # a dead engine's call the PBX's queue_log saw answered: no missed call
    SURVEY = "survey"            # the citizen's rating after a callback's conversation (or no_answer)
