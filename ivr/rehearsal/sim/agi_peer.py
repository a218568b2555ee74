"""A simulated Asterisk channel on the FastAGI socket.

``SimChannel`` is sans-I/O: it turns one command line into the lines Asterisk
would send back (including the one-time ``HANGUP`` notice and 511s after a
hang-up), parsing commands with the port of res_agi.c's ``parse_args``. What the
caller does comes from a ``Caller`` script; what happens in a queue comes from a
``QueueDecider`` (a fixed outcome here; the drill plugs in a queue model).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import wave
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ivr.agi.protocol import parse_args

DEAD_OK = {("exec",), ("get", "variable"), ("get", "full", "variable"), ("set", "variable"),
           ("verbose",), ("noop",), ("database", "get"), ("database", "put")}
_VAR = re.compile(r"\$\{([A-Za-z0-9_()]+)\}")
_ids = itertools.count(1)


@dataclass
class QueueOutcome:
    """How Queue() ends for this caller. kind: answered | timeout | abandon |
    full | joinempty | leaveempty | withdraw."""

    kind: str = "answered"
    member: str = "Local/101@ivr-seats/n"
    hold_s: int = 0
    withdraw_info: str = "callback-offered"
    wait: Callable[[], Awaitable[None]] | None = None  # held here while "in the queue"
    caller_ends: bool = False     # answered: the citizen, not the seat, hangs up at the end


@dataclass
class Caller:
    number: str = "13800138000"
    name: str = "Citizen"
    digits: list[str] = field(default_factory=list)  # answers to successive GET DATA ("" = timeout)
    press_during_prompt: dict[str, str] = field(default_factory=dict)  # prompt -> digit pressed
    answers: dict[str, str] = field(default_factory=dict)  # prompt -> the answer to GET DATA on it ("" = none)
    hangup_on: str | None = None   # hang up during the first command whose line contains this
    queue: QueueOutcome = field(default_factory=QueueOutcome)
    dial_status: str = "ANSWER"
    message_samples: int = 24000   # what RECORD FILE captures (0: silence)
    # how long this citizen would wait for a seat (None: as long as it takes). Told a longer wait,
    # they do not stay to find out: they take an offer they would take, or hang up (they "balk",
    # as in Whitt, "Improving service by informing customers about anticipated delays", 1999)
    patience_s: float | None = None


QueueDecider = Callable[["SimChannel", str, int, int], Awaitable[QueueOutcome]]

SAY_DIGIT_S = 0.45      # one digit of SAY DIGITS
ANSWER_AFTER_S = 1.0    # a caller who answers a prompt presses about a second after it ends


@dataclass(frozen=True)
class Pace:
    """How long what the caller hears takes, on the drill's clock: a prompt its
    recording's length (cut short by a key pressed during it, a third when the
    caller hangs up in it), GET DATA its prompt and then the key or the
    timeout, a message its length. Without a ``Pace`` every command is instant
    (the unit tests' channel). A line is held all that time: every second of
    greeting at Beijing's peak holds about 56 lines (issue 23)."""

    sleep: Callable[[float], Awaitable[None]]
    lengths: Mapping[str, float]     # prompt name as under prompts/ ("welcome", "numbers/12") -> seconds
    default_s: float = 2.0           # a prompt with no recording to measure

    def length(self, name: str) -> float:
        got = self.lengths.get(name)
        if got is None and "/" in name:       # the engine's sound folder first: "12345/welcome"
            got = self.lengths.get(name.split("/", 1)[1])
        return self.default_s if got is None else got


def told_wait_s(heard: list[str]) -> float | None:
    """The wait the caller was last told, in seconds, from the prompts they
    heard: "预计等待约3分钟" (queue-wait-about, numbers/3, queue-minutes) is
    taken as 2.5 minutes, the middle of what the engine rounds up to 3;
    "预计等待超过30分钟" (queue-wait-over) at its figure. None when no wait was
    said."""
    for i in range(len(heard) - 1, 1, -1):
        if heard[i].endswith("queue-minutes") and "numbers/" in heard[i - 1]:
            try:
                minutes = int(heard[i - 1].rsplit("/", 1)[1])
            except ValueError:
                return None
            return 60.0 * (minutes if heard[i - 2].endswith("queue-wait-over") else minutes - 0.5)
    return None


def prompt_lengths(folder: Path) -> dict[str, float]:
    """The length of every WAV recording under ``folder`` (prompts/), by the
    name the flows use: ``numbers/12`` for ``numbers/12.wav``."""
    out: dict[str, float] = {}
    for path in sorted(folder.rglob("*.wav")):
        try:
            with wave.open(str(path), "rb") as w:
                out[path.relative_to(folder).with_suffix("").as_posix()] = w.getnframes() / w.getframerate()
        except (wave.Error, EOFError, OSError):
            continue          # not a PCM WAV: the default length stands in
    return out


class SimChannel:
    def __init__(self, caller: Caller, *, flow: str = "main", missing_prompts: frozenset[str] = frozenset(),
                 uniqueid: str | None = None, prompt_ms: int = 3000, pace: Pace | None = None) -> None:
        self.caller = caller
        self.pace = pace
        self.missing = missing_prompts
        n = next(_ids)
        self.uniqueid = uniqueid or f"{int(time.time())}.{n}"
        self.channel = f"Local/{caller.number}@sim-caller-{n:08x};1"
        self.flow = flow
        self.vars: dict[str, str] = {}
        self.dead = False            # the caller is gone
        self.notified = False        # HANGUP notice sent
        self.answered = False
        self.digit_iter = iter(caller.digits)
        self.prompt_samples = prompt_ms * 8
        self.commands: list[str] = []
        self.heard: list[str] = []   # the prompts played to the caller, in order (what a citizen hears)
        self.balked = False          # told a wait beyond their patience: they will not queue
        self.balked_at_queue = False  # ... and hung up as Queue() started (not at a prompt before it)
        self.queue_calls: list[tuple[str, int, int]] = []
        self.queue_options: list[str] = []
        # where the dialplan runs AGI() and the application's arguments after the URL
        # (AGI(url,a,b): agi_arg_1, agi_arg_2 after agi_threadid, as Asterisk 22 sends them)
        self.context, self.extension, self.priority = "ivr-12345", "12345", "3"
        self.args: tuple[str, ...] = ()

    def env(self) -> list[str]:
        c = self.caller
        pairs = [
            ("agi_network", "yes"), ("agi_network_script", self.flow),
            ("agi_request", f"agi://127.0.0.1:4573/{self.flow}"), ("agi_channel", self.channel),
            ("agi_language", "en"), ("agi_type", "Local"), ("agi_uniqueid", self.uniqueid),
            ("agi_version", "22.11.0-rc1"), ("agi_callerid", c.number or "unknown"),
            ("agi_calleridname", c.name or "unknown"), ("agi_callingpres", "0"),
            ("agi_callingani2", "0"), ("agi_callington", "0"), ("agi_callingtns", "0"),
            ("agi_dnid", "unknown"), ("agi_rdnis", "unknown"), ("agi_context", self.context),
            ("agi_extension", self.extension), ("agi_priority", self.priority), ("agi_enhanced", "0.0"),
            ("agi_accountcode", ""), ("agi_threadid", "140000000000000"),
        ]
        pairs += [(f"agi_arg_{i}", a) for i, a in enumerate(self.args, 1)]
        return [f"{k}: {v}\n" for k, v in pairs] + ["\n"]

    def hang_up(self) -> None:
        self.dead = True

    def _prefix(self) -> list[str]:
        if self.dead and not self.notified:
            self.notified = True
            return ["HANGUP\n"]
        return []

    def _hangs_up_now(self, line: str) -> bool:
        h = self.caller.hangup_on
        if h and not self.dead and h in line:
            self.caller.hangup_on = None
            self.dead = True
            return True
        return False

    async def respond(self, line: str, decide_queue: QueueDecider | None = None) -> list[str]:
        self.commands.append(line)
        argv = parse_args(line)
        if not argv:
            return ["510 Invalid or unknown command\n"]
        words = [a.lower() for a in argv]
        key = next((tuple(words[:n]) for n in (3, 2, 1) if _KNOWN.get(tuple(words[:n]))), None)
        if key is None:
            return self._prefix() + ["510 Invalid or unknown command\n"]
        pre = self._prefix()
        if self.dead and key not in DEAD_OK:
            return pre + ["511 Command Not Permitted on a dead channel or intercept routine\n"]
        handler = getattr(self, _KNOWN[key])
        out = await handler(argv, line, decide_queue)
        return pre + out

    # -- commands (argv as Asterisk splits it) --------------------------------
    async def _answer(self, argv, line, dq):
        self.answered = True
        return ["200 result=0\n"]

    async def _stream_file(self, argv, line, dq):
        if len(argv) < 4 and len(argv) != 3:
            return _usage()
        name = argv[2]
        escape = argv[3] if len(argv) > 3 else ""
        if name in self.missing or name.split("/", 1)[-1] in self.missing:
            return ["200 result=-1 endpos=0\n"]
        self.heard.append(name)
        if self._hangs_up_now(line):
            await self._spend(name, 1 / 3)
            return [f"200 result=-1 endpos={self.prompt_samples // 3}\n"]
        for prompt, digit in self.caller.press_during_prompt.items():
            if name.endswith(prompt) and digit in escape:
                await self._spend(name, 1 / 2)
                return [f"200 result={ord(digit)} endpos={self.prompt_samples // 2}\n"]
        await self._spend(name)
        if name.endswith("queue-minutes"):
            told = told_wait_s(self.heard)
            self.balked = told is not None and self.caller.patience_s is not None and told > self.caller.patience_s
        return [f"200 result=0 endpos={self.prompt_samples}\n"]

    async def _spend(self, prompt: str | None, share: float = 1.0, extra_s: float = 0.0) -> None:
        """The caller's time passing while they listen (only with a ``Pace``)."""
        if self.pace is not None:
            s = (self.pace.length(prompt) * share if prompt else 0.0) + extra_s
            if s > 0:
                await self.pace.sleep(s)

    async def _get_data(self, argv, line, dq):
        if len(argv) < 3:
            return _usage()
        name = argv[2]
        if name in self.missing or name.split("/", 1)[-1] in self.missing:
            return ["200 result=-1\n"]
        self.heard.append(name)
        if self._hangs_up_now(line):
            await self._spend(name, 1 / 3)
            return ["200 result=-1\n"]
        answer = next((a for p, a in self.caller.answers.items() if name.endswith(p)), None)
        digits = answer if answer is not None else next(self.digit_iter, "")
        maxd = int(argv[4]) if len(argv) > 4 and argv[4].isdigit() else 1024
        timeout_s = int(argv[3]) / 1000 if len(argv) > 3 and argv[3].isdigit() else 6.0
        if self.balked and not digits:       # told too long a wait, no offer taken: gone after the prompt
            await self._spend(name)
            self.dead = True
            return ["200 result=-1\n"]
        await self._spend(name, extra_s=ANSWER_AFTER_S * len(digits) if digits else timeout_s)
        if digits and len(digits) >= maxd:
            return [f"200 result={digits[:maxd]}\n"]
        return [f"200 result={digits} (timeout)\n"]

    async def _wait_for_digit(self, argv, line, dq):
        digits = next(self.digit_iter, "")
        return [f"200 result={ord(digits[0]) if digits else 0}\n"]

    async def _say_digits(self, argv, line, dq):
        await self._spend(None, extra_s=SAY_DIGIT_S * len(argv[2]) if len(argv) > 2 else 0.0)
        return ["200 result=0\n"]

    async def _set_variable(self, argv, line, dq):
        if len(argv) != 4:
            return _usage()
        self.vars[argv[2]] = argv[3]
        return ["200 result=1\n"]

    async def _get_variable(self, argv, line, dq):
        if len(argv) != 3:
            return _usage()
        v = self._var(argv[2])
        return [f"200 result=1 ({v})\n"] if v is not None else ["200 result=0\n"]

    async def _get_full_variable(self, argv, line, dq):
        if len(argv) < 4 and len(argv) != 4 - 1:
            return _usage()
        text = _VAR.sub(lambda m: self._var(m.group(1)) or "", argv[3])
        return [f"200 result=1 ({text})\n"]

    def _var(self, name: str) -> str | None:
        if name == "CALLERID(num)":
            return self.caller.number
        v = self.vars.get(name)
        return v if v else None

    async def _channel_status(self, argv, line, dq):
        return ["200 result=6\n"]

    async def _verbose(self, argv, line, dq):
        return ["200 result=1\n"]

    async def _hangup(self, argv, line, dq):
        self.dead = True
        self.notified = False  # Asterisk still sends the notice before the next answer
        return ["200 result=1\n"]

    async def _record_file(self, argv, line, dq):
        if len(argv) < 6:
            return _usage()
        await self._spend(None, extra_s=self.caller.message_samples / 8000)
        if self._hangs_up_now(line):
            return [f"200 result=-1 (hangup) endpos={self.caller.message_samples}\n"]
        return [f"200 result=1 (timeout) endpos={self.caller.message_samples}\n"]

    async def _exec(self, argv, line, dq):
        if len(argv) < 2:
            return _usage()
        app = argv[1].lower()
        data = argv[2] if len(argv) > 2 else ""
        if app == "queue":
            return await self._queue(data, dq)
        if app == "dial":
            if self.dead:
                return ["200 result=-1\n"]
            if self._hangs_up_now(line):         # gone while it rang: Asterisk's DIALSTATUS CANCEL
                self.vars["DIALSTATUS"] = "CANCEL"
                return ["200 result=-1\n"]
            self.vars["DIALSTATUS"] = self.caller.dial_status
            return ["200 result=0\n"] if self.caller.dial_status != "ANSWER" else ["200 result=-1\n"]
        if app == "playback":
            return ["200 result=0\n"]
        return ["200 result=-2\n"]  # Asterisk: "Could not find application"

    async def _queue(self, data: str, dq: QueueDecider | None) -> list[str]:
        parts = data.split(",")
        queue = parts[0]
        timeout_s = int(parts[4]) if len(parts) > 4 and parts[4].isdigit() else 0
        prio = int(self.vars.get("QUEUE_PRIO", "0") or 0)
        if self.balked and prio < 10:        # told too long a wait: hangs up rather than join the line
            self.dead = self.balked_at_queue = True
            return ["200 result=-1\n"]
        self.queue_calls.append((queue, prio, timeout_s))
        self.queue_options.append(parts[1] if len(parts) > 1 else "")
        for var in ("QUEUESTATUS", "QUEUE_WITHDRAW_INFO"):
            self.vars.pop(var, None)
        if self.dead:
            return ["200 result=-1\n"]
        outcome = await dq(self, queue, prio, timeout_s) if dq else self.caller.queue
        if outcome.wait is not None:
            await outcome.wait()
        if outcome.kind == "answered":
            self.vars["MEMBERINTERFACE"] = outcome.member
            self.vars["QEHOLDTIME"] = str(outcome.hold_s)
            if outcome.caller_ends:
                self.dead = True
            # app_queue.c (queue_exec, after "stop:"): the bridge ended (res < 0, qe.handled):
            # with option c, QUEUESTATUS=CONTINUE and 0, whichever side hung up; without c, -1
            # and QUEUESTATUS unset. Either way the AGI session goes on (fact 12).
            if "c" in _queue_flags(parts[1] if len(parts) > 1 else ""):
                self.vars["QUEUESTATUS"] = "CONTINUE"
                return ["200 result=0\n"]
            return ["200 result=-1\n"]
        if outcome.kind == "abandon":
            self.dead = True
            return ["200 result=-1\n"]
        status = {"timeout": "TIMEOUT", "full": "FULL", "joinempty": "JOINEMPTY",
                  "leaveempty": "LEAVEEMPTY", "withdraw": "WITHDRAW"}[outcome.kind]
        self.vars["QUEUESTATUS"] = status
        if outcome.kind == "withdraw":
            self.vars["QUEUE_WITHDRAW_INFO"] = outcome.withdraw_info
        return ["200 result=0\n"]


_KNOWN = {
    ("answer",): "_answer", ("stream", "file"): "_stream_file", ("get", "data"): "_get_data",
    ("wait", "for", "digit"): "_wait_for_digit", ("say", "digits"): "_say_digits",
    ("set", "variable"): "_set_variable", ("get", "variable"): "_get_variable",
    ("get", "full", "variable"): "_get_full_variable", ("channel", "status"): "_channel_status",
    ("verbose",): "_verbose", ("hangup",): "_hangup", ("record", "file"): "_record_file",
    ("exec",): "_exec",
}


def _queue_flags(options: str) -> str:
    """Queue()'s option letters without their arguments: "cm(peak)" -> "cm"."""
    return re.sub(r"\([^)]*\)", "", options)


def _usage() -> list[str]:
    return ["520-Invalid command syntax.  Proper usage follows:\n", "Usage: see 'agi show commands'\n",
            "520 End of proper usage.\n"]


@dataclass
class SimCallResult:
    channel: SimChannel
    transcript: list[tuple[str, str]]   # (who, line) in order
    closed_by_engine: bool


async def run_call(host: str, port: int, sim: SimChannel, *, decide_queue: QueueDecider | None = None,
                   timeout_s: float = 30.0, connect_timeout_s: float = 5.0) -> SimCallResult:
    """Dial the engine like Asterisk's AGI() does and answer until it hangs up
    the AGI session (closes the socket). A connection that cannot be made
    raises ``OSError`` (Asterisk: ``AGISTATUS=FAILURE``); one that breaks in
    the middle of the call (the engine died) ends it like a close, which is
    what Asterisk 22 does (``AGISTATUS=SUCCESS``, fact 10)."""
    async with asyncio.timeout(connect_timeout_s):
        reader, writer = await asyncio.open_connection(host, port)
    transcript: list[tuple[str, str]] = []
    try:
        for line in sim.env():
            transcript.append(("asterisk", line))
        writer.write("".join(sim.env()).encode())
        while True:
            try:
                async with asyncio.timeout(timeout_s):
                    raw = await reader.readline()
            except TimeoutError:
                raise TimeoutError(f"engine silent for {timeout_s}s after {transcript[-1:]}") from None
            except (ConnectionError, OSError):
                raw = b""
            if not raw:
                return SimCallResult(sim, transcript, True)
            line = raw.decode()
            transcript.append(("engine", line))
            out = await sim.respond(line.rstrip("\n"), decide_queue)
            for o in out:
                transcript.append(("asterisk", o))
            try:
                writer.write("".join(out).encode())
            except (ConnectionError, OSError):
                return SimCallResult(sim, transcript, True)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass


class InMemoryTransport:
    """``LineTransport`` wired straight to a ``SimChannel``: the interpreter's
    tests run the real AgiChannel with no socket in between."""

    hangup_signalled = False

    def __init__(self, sim: SimChannel, decide_queue: QueueDecider | None = None) -> None:
        self.sim = sim
        self.decide_queue = decide_queue
        self._pending: list[str] = []
        self._last = ""

    def write_line(self, line: str) -> None:
        self._last = line

    async def read_line(self, timeout_s: float) -> str:
        if not self._pending:
            out = await self.sim.respond(self._last.rstrip("\n"), self.decide_queue)
            self._pending = [o.rstrip("\n") for o in out]
        return self._pending.pop(0)
