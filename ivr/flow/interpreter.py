"""Runs a validated flow over a ``CallChannel``.

Pure core: no sockets, no Redis, no clock. Everything about the world arrives in
``CallFacts`` (read once per call by the adapter); everything the call taught us
leaves in ``CallLog``. A step that fails sends the caller to the flow's
``fallback`` step, then to the built-in fallback (the general queue), then back to
the dialplan with ``IVR_RESULT=FALLBACK`` — never to dead air.

A call the engine finished on purpose ends with ``IVR_RESULT=DONE``, its last
command: the dialplan hangs up only then. Without it (the engine died, the
socket closed, the call was given back) the dialplan queues the caller itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ivr.admission.announce import announcement
from ivr.admission.speech import spoken
from ivr.call_channel import CallChannel, CallLog, QueueStatus
from ivr.errors import (
    AgiClosed,
    AgiCommandFailed,
    AgiTimeout,
    CallerHungUp,
    MenuExhausted,
    PromptMissing,
    StepBudgetExceeded,
)
from ivr.flow import model as m
from ivr.flow.conditions import CallFacts

if TYPE_CHECKING:
    from ivr.logs import Log

    # a step handler: (call state, step of its type, subflow depth) -> next step name
    _StepHandler = Callable[["_CallState", Any, int], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    queues: Mapping[str, str]            # logical queue -> Asterisk queue
    fallback_queue: str                  # Asterisk queue for the built-in fallback
    fallback_wait_s: int = 600
    transfer_dialstring: str = "Local/{number}@ivr-transfer"
    # an emergency caller moved to another PBX: asterisk/extensions.conf [ivr-to-peer] dials that
    # PBX over IAX2 at ${IVR_PEER} (its peer_address, set inherited on the caller's channel)
    peer_dialstring: str = "Local/12345@ivr-to-peer"
    peer_ring_s: int = 5                 # the other PBX's engine answers in milliseconds; a dead trunk costs this
    peer_context: str = m.PEER_CONTEXT   # where a moved caller arrives: never moved again from there
    max_steps: int = 200                 # a hard cap: a loop in a flow cannot trap a caller


class _CallEnded(Exception):
    """A hangup step ran: unwind every subflow level."""


class _FallbackNeeded(Exception):
    def __init__(self, step: str, cause: BaseException) -> None:
        self.step = step
        self.cause = cause


class FlowInterpreter:
    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        # keyed by the exact step class: the model's steps are final dataclasses
        self._handlers: dict[type, _StepHandler] = {
            m.Play: self._play,
            m.Announce: self._announce,
            m.Menu: self._menu,
            m.Branch: self._branch,
            m.SetVars: self._set_vars,
            m.Queue: self._queue,
            m.Record: self._record,
            m.OfferCallback: self._offer_callback,
            m.Transfer: self._transfer,
            m.Goto: self._goto,
            m.Subflow: self._subflow,
            m.Hangup: self._hangup,
            m.Admit: self._admit,
            m.SayWait: self._say_wait,
            m.Survey: self._survey,
        }

    async def run(self, flows: Mapping[str, m.Flow], name: str, channel: CallChannel,
                  facts: CallFacts, log: Log) -> CallLog:
        """``flows`` holds the call's flow and its subflows, pinned to the
        versions in force when the call started."""
        record = CallLog()
        state = _CallState(flows, channel, facts, record, log, dict(facts.variables))
        try:
            await channel.answer()
            try:
                await self._run_flow(state, flows[name], depth=0)
                record.outcome = "completed"
            except _CallEnded:
                record.outcome = "completed"
            except _FallbackNeeded as fb:
                record.outcome = "fallback"
                log.error("flow_fallback", step=fb.step, error=repr(fb.cause))
                if facts.outbound:
                    # a call the hotline placed (after a callback, a follow-up): never queued, the call ends
                    record.outcome = "failed"
                else:
                    await self._builtin_fallback(state)
            await self._done(state)
        except CallerHungUp:
            record.outcome = "caller_hung_up"
        except (AgiTimeout, AgiClosed) as exc:
            record.outcome = "failed"
            log.warning("agi_link_lost", error=str(exc))
        return record

    async def fallback_only(self, channel: CallChannel, log: Log) -> CallLog:
        """For a call whose flow cannot be run at all (unknown or unreadable)."""
        record = CallLog(outcome="fallback")
        state = _CallState({}, channel, None, record, log, {})
        try:
            await channel.answer()
            await self._builtin_fallback(state)
            await self._done(state)
        except CallerHungUp:
            record.outcome = "caller_hung_up"
        except (AgiTimeout, AgiClosed) as exc:
            record.outcome = "failed"
            log.warning("agi_link_lost", error=str(exc))
        return record

    async def _run_flow(self, state: _CallState, flow: m.Flow, depth: int) -> None:
        step_name = flow.start
        in_fallback = False
        while step_name != m.END:
            state.steps_run += 1
            step = flow.steps[step_name]
            state.record.steps.append(step_name if depth == 0 else f"{flow.name}.{step_name}")
            try:
                if state.steps_run > self.config.max_steps:
                    raise StepBudgetExceeded(f"more than {self.config.max_steps} steps")
                step_name = await self._step(state, step, depth)
            except (CallerHungUp, AgiTimeout, AgiClosed, _CallEnded, _FallbackNeeded):
                raise
            except Exception as exc:  # a failing step must never leave the caller in silence
                state.record.failures.append(step.name)
                state.log.error("step_failed", flow=flow.name, step=step.name, error=repr(exc))
                if flow.fallback and not in_fallback and not isinstance(exc, StepBudgetExceeded):
                    in_fallback = True
                    step_name = flow.fallback
                    continue
                raise _FallbackNeeded(step.name, exc) from exc

    async def _step(self, s: _CallState, step: m.Step, depth: int) -> str:
        """Run one step; return the name of the step to run next."""
        handler = self._handlers.get(type(step))
        if handler is None:
            raise TypeError(f"unknown step {step!r}")
        return await handler(s, step, depth)

    # One handler per step type, each ``(state, step, depth) -> next step name``;
    # the table that names them is built in ``__init__``.

    async def _play(self, s: _CallState, step: m.Play, depth: int) -> str:
        return await _play_prompts(s, step.prompts, step.interrupt, step.on_digit, step.next)

    async def _announce(self, s: _CallState, step: m.Announce, depth: int) -> str:
        prompts = (s.call_facts.announcements if step.set is None
                   else s.call_facts.announcement_sets.get(step.set, ()))
        if not prompts:      # nothing valid right now: say nothing rather than something stale
            return step.next
        s.record.announcements += len(prompts)
        return await _play_prompts(s, prompts, step.interrupt, step.on_digit, step.next)

    async def _branch(self, s: _CallState, step: m.Branch, depth: int) -> str:
        # a copy only when a `set` step changed a variable: branches run on every call
        facts = s.call_facts
        if s.variables != facts.variables:
            facts = replace(facts, variables=s.variables)
        for case in step.cases:
            if case.when.holds(facts):
                return case.goto
        return step.otherwise

    async def _set_vars(self, s: _CallState, step: m.SetVars, depth: int) -> str:
        for k, v in step.variables.items():
            await s.channel.set_variable(k, v)
            s.variables[k] = v
            s.record.flow_vars[k] = v
        return step.next

    async def _record(self, s: _CallState, step: m.Record, depth: int) -> str:
        ch = s.channel
        if step.prompt:
            await ch.play([step.prompt])
        s.messages += 1
        name = f"msg-{_safe(ch.call.uniqueid)}-{s.messages}"
        res = await ch.record(name, step.max_s, step.silence_s, step.beep)
        if res.has_audio:
            s.record.message_path = name
        s.record.wanted_person = True
        if res.reason == "hangup":
            raise CallerHungUp()
        return step.next

    async def _offer_callback(self, s: _CallState, step: m.OfferCallback, depth: int) -> str:
        s.record.wanted_person = True
        if s.call_facts.callback_mode == "message":
            # The contingency plan sends callers straight to leave a message.
            s.record.sent_to_message = True
            return step.on_decline
        digit = await s.channel.read_digits(step.prompt, step.timeout_s, 1)
        if digit == step.accept_digit:
            s.record.callback_accepted = True
            return step.on_accept
        return step.on_decline

    @staticmethod
    async def _fresh(s: _CallState) -> None:
        """The outlook as the leader last published it, before a step reads it (``CallFacts.fresh``)."""
        if s.call_facts.fresh is not None:
            await s.call_facts.fresh()

    def _outlook(self, s: _CallState, queue: str, priority: int) -> tuple[int, float, float] | None:
        by_priority = s.call_facts.queues_now()[0].get(self.config.queues.get(queue, queue))
        return by_priority.get(priority) if by_priority else None

    async def _admit(self, s: _CallState, step: m.Admit, depth: int) -> str:
        f = s.call_facts
        if f.registered_ahead is not None:
            # dialled again while registered: told so and where they stand, not queued again
            s.record.already_registered = s.record.wanted_person = True
            where = announcement(f.registered_ahead, 0.0)
            await s.channel.play(([step.registered_prompt] if step.registered_prompt else [])
                                 + spoken(where.place))
            return step.on_already_registered or step.on_registered
        await self._fresh(s)
        outlook = self._outlook(s, step.queue, step.priority)
        lines_low = f.queues_now()[1]
        long_wait = (outlook is not None and f.admission_wait_s is not None
                     and outlook[1] > f.admission_wait_s)
        if not (long_wait or lines_low):
            return step.on_wait
        s.record.admission_offered = s.record.wanted_person = True
        said: list[str] = [step.intro_prompt] if step.intro_prompt else []
        if outlook is not None:     # the wait only: whoever waits hears their place when they join
            ahead, wait_s, spread_s = outlook
            said += spoken(announcement(ahead, wait_s + spread_s).wait)
        if said:
            await s.channel.play(said)
        digit = await s.channel.read_digits(step.prompt, step.timeout_s, 1)
        if digit == step.accept_digit:
            s.record.callback_accepted = True
            return step.on_registered
        if step.on_emergency and digit == step.emergency_digit:
            s.record.digits.append(digit)
            return step.on_emergency
        if lines_low and step.on_declined_no_lines:   # the lines do not allow waiting: registered all the same
            s.record.callback_accepted = True
            return step.on_declined_no_lines
        return step.on_declined or step.on_wait

    async def _say_wait(self, s: _CallState, step: m.SayWait, depth: int) -> str:
        await self._fresh(s)
        outlook = self._outlook(s, step.queue, step.priority)
        if s.call_facts.say_wait and outlook is not None:
            ahead, wait_s, spread_s = outlook
            said = announcement(ahead, wait_s + spread_s)
            if prompts := spoken(said.pieces if step.say_place else said.wait):
                await s.channel.play(prompts)
        return step.next

    async def _transfer(self, s: _CallState, step: m.Transfer, depth: int) -> str:
        dialstring = self.config.transfer_dialstring.format(number=step.to)
        status = await s.channel.dial(dialstring, step.timeout_s)
        if status == "ANSWER":
            raise _CallEnded()
        if s.channel.hung_up:
            raise CallerHungUp()
        return step.on_fail

    async def _goto(self, s: _CallState, step: m.Goto, depth: int) -> str:
        return step.to

    async def _subflow(self, s: _CallState, step: m.Subflow, depth: int) -> str:
        await self._run_flow(s, s.flows[step.flow], depth + 1)
        return step.next

    async def _hangup(self, s: _CallState, step: m.Hangup, depth: int) -> str:
        if step.prompt:
            await s.channel.play([step.prompt])
        await s.channel.hangup()
        raise _CallEnded()

    async def _menu(self, s: _CallState, step: m.Menu, depth: int) -> str:
        attempts = step.retries + 1
        for attempt in range(attempts):
            digit = await s.channel.read_digits(step.prompt, step.timeout_s, 1)
            if digit in step.options:
                s.record.digits.append(digit)
                return step.options[digit]
            last = attempt == attempts - 1
            retry_prompt = step.timeout_prompt if digit == "" else step.invalid_prompt
            if retry_prompt and not last:
                await s.channel.play([retry_prompt])
        if step.default:
            return step.default
        raise MenuExhausted(f"no valid choice after {attempts} attempts")

    async def _queue(self, s: _CallState, step: m.Queue, depth: int) -> str:
        s.record.wanted_person = True
        s.record.queue = step.queue
        s.record.emergency = s.record.emergency or step.emergency
        await self._fresh(s)
        if step.other_pbxs and await self._moved_elsewhere(s, step):
            raise _CallEnded()
        outlook = self._outlook(s, step.queue, step.priority)
        if outlook is not None:
            # kept with the call, so the estimate can be scored against the wait it then had
            s.record.wait_estimate_s, s.record.position_at_join = round(outlook[1], 1), outlook[0] + 1
            await s.channel.set_variable("IVR_WAIT_EST", f"{outlook[0] + 1},{outlook[1]:.0f}")
        # anything after the conversation (a survey) needs the caller kept on the line when
        # the seat hangs up (Queue option c)
        res = await s.channel.queue(self.config.queues[step.queue], step.priority, step.max_wait_s,
                                    hold_music=s.call_facts.hold_music,
                                    continue_after=step.on_answered != m.END)
        s.record.queue_result = res
        st = res.status
        if st is QueueStatus.ANSWERED:
            return step.on_answered
        if st is QueueStatus.ABANDONED:
            raise CallerHungUp()
        if st is QueueStatus.FULL:
            return step.on_full or step.on_timeout
        if st.no_seats:
            return step.on_no_seats or step.on_timeout
        if st is QueueStatus.WITHDRAW:
            return step.on_withdrawn or step.on_timeout
        return step.on_timeout

    async def _moved_elsewhere(self, s: _CallState, step: m.Queue) -> bool:
        """An emergency caller whose own PBX would keep them waiting, taken over
        the trunk to another PBX's queue that would take them sooner
        (``LiveState.sooner_elsewhere``). True: that PBX took the call (its
        engine runs it from there, and counts it); False: no PBX sooner, or the
        move failed and the caller waits here."""
        ask = s.call_facts.elsewhere
        if ask is None or s.channel.call.context == self.config.peer_context:
            return False                         # moved here already: never a second time (no ping-pong)
        asterisk_queue = self.config.queues[step.queue]
        there = ask(asterisk_queue, step.priority)
        if there is None:
            return False
        s.log.info("moving_to_pbx", pbx=there.pbx, queue=asterisk_queue, wait_here_s=round(there.own_wait_s, 1),
                   wait_there_s=round(there.wait_s, 1))
        if s.call_facts.sending is not None:
            s.call_facts.sending(there.pbx)
        await s.channel.set_variable("__IVR_PEER", there.address)
        status = await s.channel.dial(self.config.peer_dialstring, self.config.peer_ring_s)
        if status == "ANSWER":
            s.record.moved_to = there.pbx
            s.record.wanted_person = False       # the call in on that PBX asks for the seat: counted there, once
            return True
        if s.channel.hung_up:
            raise CallerHungUp()
        s.log.warning("move_to_pbx_failed", pbx=there.pbx, dial_status=status)
        if s.call_facts.unreachable is not None:
            s.call_facts.unreachable(there.pbx)  # the next emergency callers do not wait on it too
        return False

    async def _survey(self, s: _CallState, step: m.Survey, depth: int) -> str:
        """The rating after the conversation. Silence, wrong keys to the last retry and a
        caller who hangs up are all ``no_answer``: never counted as satisfied."""
        facts = s.call_facts
        if s.record.emergency or facts.emergency_matter:
            # an emergency call is never delayed by a survey: not offered, not counted
            s.log.info("survey_skipped_emergency", step=step.name)
            return step.next
        qr = s.record.queue_result
        s.record.survey = m.NO_ANSWER       # kept if the caller hangs up from here on
        # the seat of this call's queue step, or of the callback (follow-up) whose conversation is rated
        s.record.survey_seat = qr.member if qr else facts.rated_seat
        try:
            await self._ask(s, step)
        except (PromptMissing, AgiCommandFailed) as exc:
            # never the flow's fallback (it queues): the conversation is over, the call goes on
            s.record.failures.append(step.name)
            s.log.error("survey_failed", step=step.name, error=repr(exc))
            if not s.survey_asked:          # the citizen never heard it: not offered, not counted
                s.record.survey = ""
        return step.next

    @staticmethod
    async def _ask(s: _CallState, step: m.Survey) -> None:
        attempts = step.retries + 1
        for attempt in range(attempts):
            digit = await s.channel.read_digits(step.prompt, step.timeout_s, 1)
            s.survey_asked = True
            rating = step.answers.get(digit)
            if rating is not None:
                s.record.survey = rating
                if step.thanks_prompt:
                    await s.channel.play([step.thanks_prompt])
                return
            retry_prompt = step.timeout_prompt if digit == "" else step.invalid_prompt
            if retry_prompt and attempt < attempts - 1:
                await s.channel.play([retry_prompt])

    @staticmethod
    async def _done(s: _CallState) -> None:
        """The last act of a call the engine finished: tell the dialplan so."""
        if s.record.given_back or s.channel.hung_up:
            return
        try:
            await s.channel.set_variable("IVR_RESULT", "DONE")
        except (CallerHungUp, AgiTimeout, AgiClosed):
            pass      # gone already: the dialplan ends without us

    async def _builtin_fallback(self, s: _CallState) -> None:
        """The last resort: the general queue; if even that fails, hand the call
        back to the dialplan, which queues it itself."""
        ch = s.channel
        try:
            res = await ch.queue(self.config.fallback_queue, 0, self.config.fallback_wait_s)
            s.record.wanted_person = True
            s.record.queue_result = res
            s.record.queue = s.record.queue or "fallback"
            if res.status is QueueStatus.ABANDONED:
                raise CallerHungUp()
        except (CallerHungUp, AgiTimeout, AgiClosed):
            raise
        except Exception as exc:
            s.log.error("fallback_queue_failed", error=repr(exc))
            s.record.given_back = True
            await ch.set_variable("IVR_RESULT", "FALLBACK")


class _CallState:
    __slots__ = ("flows", "channel", "facts", "record", "log", "variables", "steps_run", "messages",
                 "survey_asked")

    def __init__(self, flows: Mapping[str, m.Flow], channel: CallChannel, facts: CallFacts | None, record: CallLog,
                 log: Log, variables: dict[str, str]) -> None:
        self.flows = flows
        self.channel = channel
        self.facts = facts
        self.record = record
        self.log = log
        self.variables = variables
        self.steps_run = 0
        self.messages = 0
        self.survey_asked = False   # the survey prompt was heard at least once

    @property
    def call_facts(self) -> CallFacts:
        """The facts of a call running a flow (only a fallback-only call has none)."""
        assert self.facts is not None
        return self.facts


async def _play_prompts(s: _CallState, prompts: Sequence[str], interrupt: str, on_digit: str | None,
                        next_step: str) -> str:
    """Play ``prompts``; a digit that cuts them short goes to ``on_digit`` (default: ``next_step``)."""
    digit = await s.channel.play(prompts, interrupt)
    if digit:
        s.record.digits.append(digit)
        return on_digit or next_step
    return next_step


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in text)
