"""The telephony seam: what a flow may do to a call.

``CallChannel`` is implemented by the AGI channel (over FastAGI or classic AGI)
and driven by the flow interpreter; the simulated Asterisk sits on the far side of
the same sockets, so one flow runs identically on all of them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


def pbx_system(uniqueid: str) -> str:
    """The PBX ``systemname`` (asterisk.conf) a uniqueid carries: ``pbx-a-1733480000.12``
    -> ``pbx-a``; "" when the PBX sets none."""
    return uniqueid.rpartition("-")[0]


@dataclass(frozen=True, slots=True)
class CallInfo:
    uniqueid: str
    caller_number: str
    caller_name: str = ""
    channel: str = ""
    flow: str = ""  # the FastAGI request path: agi://host/<flow>
    args: tuple[str, ...] = ()
    context: str = ""  # the dialplan context that ran AGI() (ivr-12345, ivr-from-peer, ...)

    @classmethod
    def from_agi_env(cls, env: dict[str, str]) -> CallInfo:
        number = env.get("agi_callerid", "")
        if number == "unknown":
            number = ""
        flow = env.get("agi_network_script") or env.get("agi_request", "")
        flow = flow.split("?", 1)[0].strip("/")
        args = []
        i = 1
        while f"agi_arg_{i}" in env:
            args.append(env[f"agi_arg_{i}"])
            i += 1
        return cls(
            uniqueid=env.get("agi_uniqueid", ""),
            caller_number=number,
            caller_name=env.get("agi_calleridname", ""),
            channel=env.get("agi_channel", ""),
            flow=flow,
            args=tuple(args),
            context=env.get("agi_context", ""),
        )

    def named_args(self) -> dict[str, str]:
        """The AGI arguments written ``name=value`` (the dialplan's
        ``AGI(url,callback=${IVR_CB_ID},...)``); others are left out."""
        return {k.strip(): v.strip() for k, sep, v in (a.partition("=") for a in self.args) if sep and k.strip()}

    @property
    def callback_id(self) -> str:
        """The callback whose citizen leg this is, after its conversation
        (``[ivr-callback-survey]``); "" otherwise."""
        return self.named_args().get("callback", "")

    @property
    def followup_id(self) -> str:
        """The follow-up call (智能回访) this is (``[ivr-followup]``); "" otherwise."""
        return self.named_args().get("followup", "")

    @property
    def outbound(self) -> str:
        """"callback" or "followup": a call the hotline placed to the citizen;
        "" a citizen who called in (the summary's ``kind``)."""
        return "callback" if self.callback_id else "followup" if self.followup_id else ""


class QueueStatus(enum.StrEnum):
    """How ``Queue()`` ended. Values are Asterisk's QUEUESTATUS where it has one."""

    ANSWERED = "ANSWERED"        # a seat took the call (QUEUESTATUS unset, MEMBERINTERFACE set)
    ABANDONED = "ABANDONED"      # the caller hung up while waiting
    TIMEOUT = "TIMEOUT"
    FULL = "FULL"
    JOINEMPTY = "JOINEMPTY"
    LEAVEEMPTY = "LEAVEEMPTY"
    JOINUNAVAIL = "JOINUNAVAIL"
    LEAVEUNAVAIL = "LEAVEUNAVAIL"
    CONTINUE = "CONTINUE"
    WITHDRAW = "WITHDRAW"        # QueueWithdrawCaller over AMI (a callback was accepted)
    UNKNOWN = "UNKNOWN"

    @property
    def no_seats(self) -> bool:
        return self in (QueueStatus.JOINEMPTY, QueueStatus.LEAVEEMPTY,
                        QueueStatus.JOINUNAVAIL, QueueStatus.LEAVEUNAVAIL)


@dataclass(frozen=True, slots=True)
class QueueResult:
    status: QueueStatus
    member: str = ""          # MEMBERINTERFACE of the seat that answered
    hold_s: int | None = None  # QEHOLDTIME
    withdraw_info: str = ""
    wait_s: float | None = None  # left without a seat: the engine's measure of the time in Queue() (s)


@dataclass(frozen=True, slots=True)
class RecordResult:
    reason: str           # "timeout" (silence/max), "dtmf", "hangup"
    endpos: int = 0       # samples written: 0 means nothing was said

    @property
    def has_audio(self) -> bool:
        return self.endpos > 0


@dataclass(slots=True)
class CallLog:
    """What a flow learned about a call; kept even when the caller hangs up, so
    the missed-call capture can use it."""

    steps: list[str] = field(default_factory=list)
    wanted_person: bool = False
    emergency: bool = False
    queue: str = ""
    queue_result: QueueResult | None = None
    message_path: str = ""
    callback_accepted: bool = False
    sent_to_message: bool = False   # the contingency plan skipped the callback offer
    announcements: int = 0          # policy announcements played
    digits: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    outcome: str = ""  # completed | caller_hung_up | fallback | failed
    given_back: bool = False        # handed back to the dialplan (IVR_RESULT=FALLBACK)
    admission_offered: bool = False  # the early callback offer was made (expected wait too long, lines low)
    already_registered: bool = False  # dialled again with a callback open: told so, not queued
    wait_estimate_s: float | None = None  # the engine's expected wait when the caller joined the queue
    position_at_join: int | None = None   # 1-based place in line then
    # the citizen's rating after the conversation: satisfied | basically_satisfied | dissatisfied |
    # no_answer; "" when no survey was offered (none in the flow, or an emergency call)
    survey: str = ""
    survey_seat: str = ""           # the seat whose conversation was rated (MEMBERINTERFACE)
    flow_vars: dict[str, str] = field(default_factory=dict)   # what the flow's `set` steps set, last value
    # an emergency caller taken to another PBX's emergency queue over the trunk (the PBX's name in
    # queue/pbxs.yaml): the call in on that PBX asks for the seat, and is counted there, once
    moved_to: str = ""


class CallChannel(Protocol):
    """What a flow can do to a call. Every method raises ``CallerHungUp`` once
    the caller is gone, and ``PromptMissing`` for a prompt the PBX lacks."""

    call: CallInfo

    @property
    def hung_up(self) -> bool: ...

    async def answer(self) -> None: ...

    async def play(self, prompts: Sequence[str], escape_digits: str = "") -> str | None:
        """Play prompts in order; return the digit that interrupted them, if any."""

    async def read_digits(self, prompt: str, timeout_s: float, max_digits: int) -> str:
        """Play a prompt and collect up to ``max_digits``; "" on timeout."""

    async def set_variable(self, name: str, value: str) -> None: ...

    async def get_variable(self, name: str) -> str | None: ...

    async def queue(self, queue: str, priority: int, timeout_s: int, *,
                    hold_music: str | None = None, continue_after: bool = False) -> QueueResult:
        """``continue_after``: the flow goes on once the seat hangs up (a survey),
        Queue()'s option ``c``; ``ANSWERED`` either way when a seat took the call."""

    async def record(self, path: str, max_s: int, silence_s: int, beep: bool) -> RecordResult: ...

    async def dial(self, dialstring: str, timeout_s: int) -> str:
        """Return DIALSTATUS."""

    async def hangup(self) -> None: ...
