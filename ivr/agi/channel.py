"""``CallChannel`` over AGI, on any line transport (FastAGI socket, classic
stdin/stdout). One implementation, so both transports agree with the transcripts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from ivr import names
from ivr.agi.protocol import (
    DEAD_CHANNEL,
    HANGUP_NOTICE,
    AgiResponse,
    checked_command,
    is_usage_start,
    parse_response,
    quote,
)
from ivr.call_channel import CallInfo, QueueResult, QueueStatus, RecordResult
from ivr.errors import AgiCommandFailed, CallerHungUp, PromptMissing
from ivr.metrics import AGI_COMMAND_SECONDS

_VARIABLE_NAME = names.CHANNEL_VARIABLE
# Prompt names, queue names and dial strings reach EXEC/STREAM FILE; the flow
# validator restricts them, and this is the last line of defence.
_SAFE_TOKEN = names.PBX_TOKEN

COMMAND_TIMEOUT_S = 30.0


class LineTransport(Protocol):
    @property
    def hangup_signalled(self) -> bool:
        """Classic AGI learns of a hang-up by SIGHUP (FastAGI by a HANGUP line)."""

    def write_line(self, line: str) -> None: ...

    async def read_line(self, timeout_s: float) -> str:
        """One line without its newline; raises AgiTimeout/AgiClosed."""


def _safe_token(value: str, what: str) -> str:
    if not _SAFE_TOKEN.ok(value):
        raise ValueError(f"unsafe {what} {value!r}")
    return value


class AgiChannel:
    def __init__(
        self,
        transport: LineTransport,
        call: CallInfo,
        *,
        prompt_prefix: str = "",
        recordings_dir: str = "",
        max_call_s: float = 4 * 3600,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._t = transport
        self._now = now                  # the engine's clock (a drill's simulated one): the time spent in Queue()
        self.call = call
        self._prefix = prompt_prefix
        self._recordings_dir = recordings_dir.rstrip("/")
        self._max_call_s = max_call_s
        self._hung_up = False
        self._queue_prio = 0
        self._queued = False
        self.commands = 0

    @property
    def hung_up(self) -> bool:
        return self._hung_up

    async def _run(
        self, line: str, timeout_s: float = COMMAND_TIMEOUT_S, *, dead_ok: bool = False
    ) -> AgiResponse:
        if self._t.hangup_signalled:
            self._hung_up = True  # classic AGI: SIGHUP arrived
        if self._hung_up and not dead_ok:
            # Asterisk would run some commands (EXEC among them) on a dead
            # channel; a flow must never queue or dial a caller who has gone.
            raise CallerHungUp()
        checked_command(line)   # the one place a command leaves: one line, whatever built it
        self.commands += 1
        started = time.perf_counter()
        self._t.write_line(line)
        while True:
            text = await self._t.read_line(timeout_s)
            if text == HANGUP_NOTICE:
                # A notice, not the answer: the answer to `line` still follows.
                self._hung_up = True
                continue
            if is_usage_start(text):
                usage = [text]
                while not text.startswith("520 "):
                    text = await self._t.read_line(timeout_s)
                    usage.append(text)
                raise AgiCommandFailed(line.strip(), 520, " / ".join(usage))
            resp = parse_response(text)
            if resp.code == DEAD_CHANNEL:
                self._hung_up = True
                raise CallerHungUp()
            if resp.code != 200:
                raise AgiCommandFailed(line.strip(), resp.code, resp.text)
            if timeout_s == COMMAND_TIMEOUT_S:   # quick commands only: prompts and queues last as long as the caller
                AGI_COMMAND_SECONDS.observe(time.perf_counter() - started)
            return resp

    async def _gone_or(self, exc: Exception) -> Exception:
        """``result=-1`` means a hang-up or a failure that looks the same (e.g. a
        missing prompt): ask the channel. A dead one answers 511 (-> CallerHungUp)."""
        if not self._hung_up:
            await self._run("CHANNEL STATUS\n")
        if self._hung_up:
            return CallerHungUp()
        return exc

    def _prompt(self, name: str) -> str:
        return _safe_token(self._prefix + name, "prompt")

    async def answer(self) -> None:
        resp = await self._run("ANSWER\n")
        if resp.result == "-1":
            raise await self._gone_or(CallerHungUp())

    async def play(self, prompts: Sequence[str], escape_digits: str = "") -> str | None:
        escape = quote(escape_digits)
        for name in prompts:
            resp = await self._run(f"STREAM FILE {self._prompt(name)} {escape}\n", self._max_call_s)
            r = resp.result_int
            if r > 0:
                return chr(r)
            if r < 0:
                raise await self._gone_or(PromptMissing(name))
        return None

    async def read_digits(self, prompt: str, timeout_s: float, max_digits: int) -> str:
        ms = int(timeout_s * 1000)
        resp = await self._run(
            f"GET DATA {self._prompt(prompt)} {ms} {int(max_digits)}\n", self._max_call_s
        )
        if resp.result == "-1":
            raise await self._gone_or(PromptMissing(prompt))
        return resp.result

    async def set_variable(self, name: str, value: str) -> None:
        if not _VARIABLE_NAME.ok(name):
            raise ValueError(f"invalid channel variable name {name!r}")
        await self._run(f"SET VARIABLE {name} {quote(value)}\n", dead_ok=True)

    async def get_variable(self, name: str) -> str | None:
        if not _VARIABLE_NAME.ok(name):
            raise ValueError(f"invalid channel variable name {name!r}")
        resp = await self._run(f"GET VARIABLE {name}\n", dead_ok=True)
        return resp.data if resp.result == "1" else None

    async def queue(self, queue: str, priority: int, timeout_s: int, *,
                    hold_music: str | None = None, continue_after: bool = False) -> QueueResult:
        _safe_token(queue, "queue")
        # c: when the seat hangs up, Queue() returns 0 with QUEUESTATUS=CONTINUE and the
        # caller stays on the line for what follows (a survey; Asterisk 22, fact 12).
        # m(class): the hold music (and general notices) the contingency level chose
        options = "c" if continue_after else ""
        if hold_music:
            options += f"m({_safe_token(hold_music, 'music class')})"
        if priority != self._queue_prio:
            await self.set_variable("QUEUE_PRIO", str(int(priority)))
            self._queue_prio = priority
        if self._queued:
            # MEMBERINTERFACE survives from an earlier Queue() on this channel.
            await self.set_variable("MEMBERINTERFACE", "")
        self._queued = True
        # Queue() returns when the caller leaves the queue or the bridged call
        # ends: the socket may stay silent for the whole conversation.
        joined = self._now()
        await self._run(f"EXEC Queue {quote(f'{queue},{options},,,{int(timeout_s)}')}\n", self._max_call_s)
        # a caller who left without a seat has no QEHOLDTIME (app_queue sets it on connecting):
        # the time in Queue() is the wait (15秒内放弃, docs/audit-report.md)
        in_queue_s = round(self._now() - joined, 1)
        # One round trip for everything Queue() left behind; GET FULL VARIABLE is
        # allowed on a dead channel, so it answers even after an abandon.
        resp = await self._run(
            'GET FULL VARIABLE "${QUEUESTATUS}|${MEMBERINTERFACE}|${QEHOLDTIME}|${QUEUE_WITHDRAW_INFO}"\n',
            dead_ok=True,
        )
        status, member, hold, withdraw_info = ((resp.data or "") + "|||").split("|", 3)
        withdraw_info = withdraw_info.rstrip("|")
        hold_s = int(hold) if hold.isdigit() else None
        if status == QueueStatus.CONTINUE and member:
            # option c: a seat took the call and the conversation ended (app_queue sets
            # CONTINUE for whichever side hung up; a caller who did is found gone next command)
            return QueueResult(QueueStatus.ANSWERED, member, hold_s)
        if status:
            try:
                qs = QueueStatus(status)
            except ValueError:
                qs = QueueStatus.UNKNOWN
            return QueueResult(qs, member, hold_s, withdraw_info,
                               wait_s=None if qs == QueueStatus.ANSWERED else in_queue_s)
        if member:
            return QueueResult(QueueStatus.ANSWERED, member, hold_s)
        if not self._hung_up:
            await self._gone_or(CallerHungUp())
        return QueueResult(QueueStatus.ABANDONED if self._hung_up else QueueStatus.UNKNOWN, wait_s=in_queue_s)

    async def record(self, path: str, max_s: int, silence_s: int, beep: bool) -> RecordResult:
        target = _safe_token(f"{self._recordings_dir}/{path}" if self._recordings_dir else path, "path")
        beep_word = " BEEP" if beep else ""
        resp = await self._run(
            f'RECORD FILE {target} wav "#" {int(max_s * 1000)} 0{beep_word} s={int(silence_s)}\n',
            max_s + COMMAND_TIMEOUT_S,
        )
        reason = resp.data or ""
        if resp.result == "-1" and reason != "hangup":
            raise await self._gone_or(PromptMissing("record:" + path))
        if reason == "hangup" or resp.result == "-1":
            self._hung_up = True
        return RecordResult(reason or "timeout", max(resp.endpos or 0, 0))

    async def dial(self, dialstring: str, timeout_s: int) -> str:
        _safe_token(dialstring, "dial string")
        await self._run(f"EXEC Dial {quote(f'{dialstring},{int(timeout_s)}')}\n", self._max_call_s)
        return (await self.get_variable("DIALSTATUS")) or ""

    async def hangup(self) -> None:
        if not self._hung_up:
            await self._run("HANGUP\n")
            self._hung_up = True
