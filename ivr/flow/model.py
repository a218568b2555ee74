"""What a validated flow is: immutable steps that name each other.

Reserved targets: ``end`` ends this flow (the main flow hands the call back to
the dialplan; a subflow returns to its caller's ``next``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ivr.flow.conditions import Condition

END = "end"
RESERVED_TARGETS = frozenset({END})


# the emergency class of a queue's callers (QUEUE_PRIO): the leader's outlook publishes it and 0 for
# every queue (``ivr.ami.model.LiveModel``), and a caller moved to another PBX joins it there
EMERGENCY_PRIORITY = 10
# where a caller moved from another PBX arrives (asterisk/extensions.conf): never moved again from there,
# and holding no carrier line on this PBX (the caller's line is on the PBX they dialled)
PEER_CONTEXT = "ivr-from-peer"

@dataclass(frozen=True, slots=True)
class Where:
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class Play:
    name: str
    prompts: tuple[str, ...]
    next: str
    interrupt: str = ""          # digits that cut the prompt short
    on_digit: str | None = None  # where an interrupting digit goes (default: next)
    where: Where = Where(0, 0)


@dataclass(frozen=True, slots=True)
class Announce:
    """Plays the policy announcements in force: the set the contingency level
    names (``set: current``) or a named set, skipping every item outside its
    validity window. Nothing valid: nothing plays, the call goes on."""

    name: str
    next: str
    set: str | None = None       # None: the current level's set
    interrupt: str = ""
    on_digit: str | None = None
    where: Where = Where(0, 0)


@dataclass(frozen=True, slots=True)
class Menu:
    name: str
    prompt: str
    options: dict[str, str]
    timeout_s: float = 5.0
    retries: int = 2
    invalid_prompt: str | None = None
    timeout_prompt: str | None = None
    default: str | None = None   # where to go when retries run out (else: fallback)
    where: Where = Where(0, 0)


@dataclass(frozen=True, slots=True)
class Case:
    when: Condition
    goto: str


@dataclass(frozen=True, slots=True)
class Branch:
    name: str
    cases: tuple[Case, ...]
    otherwise: str
    where: Where = Where(0, 0)


@dataclass(frozen=True, slots=True)
class SetVars:
    name: str
    variables: dict[str, str]
    next: str
    where: Where = Where(0, 0)


@dataclass(frozen=True, slots=True)
class Queue:
    name: str
    queue: str                    # logical name, from queue/queues.yaml
    on_timeout: str
    priority: int = 0
    max_wait_s: int = 300
    emergency: bool = False
    on_full: str | None = None      # default: on_timeout
    on_no_seats: str | None = None  # default: on_timeout
    on_withdrawn: str | None = None  # taken out of line for a callback; default: on_timeout
    on_answered: str = END
    # an emergency caller whose own PBX has no emergency seat free soon is taken over the trunk
    # to another PBX's queue of the same name, where one is (queue/pbxs.yaml peer_address)
    other_pbxs: bool = False
    where: Where = Where(0, 0)


@dataclass(frozen=True, slots=True)
class Admit:
    """In the first seconds of a call: when the caller's expected wait is beyond
    what the contingency level allows (``admission_wait_s``), or free lines are
    below their reserve, offer to register a callback; whoever accepts keeps
    their place in the callback order and hangs up, freeing the line. A caller
    registered already hears so, and where they stand, instead of queueing
    again. Otherwise (and for whoever declines) the call goes on to ``on_wait``."""

    name: str
    queue: str                    # the queue the caller would wait in
    prompt: str                   # the offer: "press 1 to be called back"
    on_wait: str
    on_registered: str
    priority: int = 0
    accept_digit: str = "1"
    timeout_s: float = 6.0
    registered_prompt: str | None = None      # "您已登记回拨" before where they stand
    on_already_registered: str | None = None  # default: on_registered
    emergency_digit: str | None = None        # during the offer: an emergency is never turned away
    on_emergency: str | None = None
    on_declined: str | None = None            # offered, did not accept: default on_wait
    # offered because free lines ran low, did not accept: the lines do not allow waiting, so the
    # caller is registered for a callback all the same (a missed call) and goes here; default on_declined
    on_declined_no_lines: str | None = None
    intro_prompt: str | None = None           # before an offer: "您好，12345热线。"
    where: Where = Where(0, 0)


@dataclass(frozen=True, slots=True)
class SayWait:
    """Where the caller stands and about how long the wait is ("您前面还有12位，
    预计等待约3分钟"), played from recordings (``prompts/queue/`` phrases and
    ``prompts/numbers/``). Says nothing when the level does not announce the
    wait or nothing is known about the queue. ``say_place: false`` says the
    wait only, for a queue whose Asterisk says the place itself as the caller
    joins and at intervals (asterisk/queues.conf ``announce-position``):
    otherwise the caller hears their place twice within seconds."""

    name: str
    queue: str
    next: str
    priority: int = 0
    say_place: bool = True
    where: Where = Where(0, 0)


# What a citizen's survey answer is recorded as; "no answer" is its own outcome
SATISFIED = "satisfied"
BASICALLY_SATISFIED = "basically_satisfied"
DISSATISFIED = "dissatisfied"
NO_ANSWER = "no_answer"
RATINGS = (SATISFIED, BASICALLY_SATISFIED, DISSATISFIED)
DEFAULT_ANSWERS = {"1": SATISFIED, "2": BASICALLY_SATISFIED, "3": DISSATISFIED}


@dataclass(frozen=True, slots=True)
class Survey:
    """After the conversation (a queue step's ``on_answered``): the citizen is
    asked to rate the call by key (满意 / 基本满意 / 不满意). The answer, or
    ``no_answer`` (silence, wrong keys until the retries run out, or the caller
    gone), is kept with the call. An emergency call is never asked: the step
    goes straight on to ``next``."""

    name: str
    prompt: str
    next: str
    answers: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ANSWERS))  # digit -> rating
    timeout_s: float = 5.0
    retries: int = 1
    invalid_prompt: str | None = None
    timeout_prompt: str | None = None
    thanks_prompt: str | None = None   # after an answer
    where: Where = Where(0, 0)


@dataclass(frozen=True, slots=True)
class Record:
    name: str
    next: str
    prompt: str | None = None
    max_s: int = 60
    silence_s: int = 3
    beep: bool = True
    where: Where = Where(0, 0)


@dataclass(frozen=True, slots=True)
class OfferCallback:
    name: str
    prompt: str
    on_accept: str
    on_decline: str
    accept_digit: str = "1"
    timeout_s: float = 5.0
    where: Where = Where(0, 0)


@dataclass(frozen=True, slots=True)
class Transfer:
    name: str
    to: str
    on_fail: str
    timeout_s: int = 30
    where: Where = Where(0, 0)


@dataclass(frozen=True, slots=True)
class Goto:
    name: str
    to: str
    where: Where = Where(0, 0)


@dataclass(frozen=True, slots=True)
class Subflow:
    name: str
    flow: str
    next: str
    where: Where = Where(0, 0)


@dataclass(frozen=True, slots=True)
class Hangup:
    name: str
    prompt: str | None = None
    where: Where = Where(0, 0)


Step = (Play | Announce | Menu | Branch | SetVars | Queue | Record | OfferCallback | Transfer |
        Goto | Subflow | Hangup | Admit | SayWait | Survey)


def targets(step: Step) -> list[str]:
    """Every step name this step can continue at."""
    match step:
        case Play(next=n, on_digit=d) | Announce(next=n, on_digit=d):
            return [n] + ([d] if d else [])
        case Menu(options=o, default=d):
            return list(o.values()) + ([d] if d else [])
        case Branch(cases=c, otherwise=o):
            return [x.goto for x in c] + [o]
        case SetVars(next=n) | Record(next=n) | Subflow(next=n):
            return [n]
        case Queue():
            return [t for t in (step.on_timeout, step.on_full, step.on_no_seats,
                                step.on_withdrawn, step.on_answered) if t]
        case OfferCallback(on_accept=a, on_decline=d):
            return [a, d]
        case Transfer(on_fail=f):
            return [f]
        case Goto(to=t):
            return [t]
        case Admit():
            return [x for x in (step.on_wait, step.on_registered, step.on_already_registered, step.on_emergency,
                                step.on_declined, step.on_declined_no_lines) if x]
        case SayWait(next=n) | Survey(next=n):
            return [n]
    return []


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    start: str
    steps: dict[str, Step]
    description: str = ""
    fallback: str | None = None
    path: str = ""
    source: str = ""
    subflows: frozenset[str] = field(default_factory=frozenset)
