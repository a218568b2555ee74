"""The AMI adapter: panoramisk's ``Manager`` with the few things it lacks.

- Reconnect with exponential backoff (panoramisk retries at a fixed interval) and
  a liveness ping that aborts a half-open link (its own pinger never notices
  one), so the reconnect path also covers a silent PBX.
- After every (re)connect the whole view is rebuilt from ``QueueStatus``, and
  again every ``resync_s``: events can be lost while the link is down, and
  ``QueueCallerJoin`` does not carry the queue priority.
- Incremental UTF-8 decoding: panoramisk decodes each TCP chunk on its own with
  ``errors='ignore'``, which drops a Chinese caller name split across chunks.
- Every action says whether it is a list (``as_list``): panoramisk otherwise
  guesses from the answer's text and, for Asterisk 22's "Added interface to
  queue", waits for events that never come.
- Actions are retried with backoff and every failure is returned to the caller,
  never swallowed; event callbacks are plain functions (panoramisk drops the
  exceptions of coroutine callbacks).
"""

from __future__ import annotations

import asyncio
import codecs
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict, cast

import redis.asyncio as aioredis
from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

from ivr.aio import cancelling
from ivr.ami.model import AmiEvent, LiveModel
from ivr.clock import Every, every
from ivr.logs import Log
from ivr.redisdb.live import write_live

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
ACTION_TIMEOUT_S = 5.0
RESYNC_RETRY_S = 2.0      # logged in but the first QueueStatus failed (a PBX still starting): try again
PEER_SECRET_VARIABLE = "IVR_PEER_SECRET"     # asterisk/extensions.conf [globals]: the IAX2 trunk between PBXs
SHIPPED_PEER_SECRET = "change-this-peer-secret"
PUBLISH_S = 0.25          # the live model to Redis (the wall, the engines' outlook), at most this often

# What panoramisk's loop.create_connection task resolves to.
_Connected = tuple[asyncio.BaseTransport, asyncio.BaseProtocol]
# A plain function called with every AMI event (the callback scheduler, the reconciler).
Listener = Callable[[AmiEvent], None]


class _Utf8Protocol(AMIProtocol):  # type: ignore[misc]  # panoramisk ships no hints: its classes are Any
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def data_received(self, data: bytes) -> None:
        # Hand panoramisk whole characters only; it re-encodes and decodes again.
        text = self._decoder.decode(data)
        if text:
            super().data_received(text.encode("utf-8"))


class _Everything:
    """panoramisk re-sends, after a reconnect, every action that had no answer
    when the link dropped, unless its name is "forgettable". Asterisk may have
    carried it out already: a re-sent Originate dials a citizen twice. So every
    action is forgettable here and ``AmiController.act`` decides what to retry."""

    def __contains__(self, item: object) -> bool:
        return True


class _Link(Manager):  # type: ignore[misc]  # panoramisk ships no hints: its classes are Any
    """panoramisk Manager with backoff and a clean stop."""

    def __init__(self, **config: object) -> None:
        super().__init__(protocol_factory=_Utf8Protocol, reconnect_timeout=0, ping_delay=3600,
                         ping_interval=3600, forgetable_actions=_Everything(), **config)
        self.reconnect_timeout = BACKOFF_FIRST_S
        self.stopping = False

    def connection_made(self, f: asyncio.Future[_Connected]) -> None:
        if self.stopping:
            if not f.cancelled() and f.exception() is None:
                f.result()[0].close()
            return
        if f.cancelled() or f.exception() is not None:
            self.reconnect_timeout = min(BACKOFF_MAX_S, self.reconnect_timeout * 2)
        super().connection_made(f)

    def connect(self, *a: object, **kw: object) -> asyncio.Task[_Connected] | None:
        if self.stopping:
            return None
        return cast("asyncio.Task[_Connected]", super().connect(*a, **kw))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stopping:
            return
        self.authenticated = False
        super().connection_lost(exc)
        self.reconnect_timeout = min(BACKOFF_MAX_S, self.reconnect_timeout * 2)

    def login(self, future: asyncio.Future[Any]) -> bool:   # the Login action's answer (a panoramisk Message)
        ok = cast(bool, super().login(future))
        if ok:
            self.reconnect_timeout = BACKOFF_FIRST_S
        return ok

    def ping(self) -> None:  # replaced by AmiController._watchdog
        pass

    def stop(self) -> None:
        self.stopping = True
        self.close()


class ActionSummary(TypedDict):
    ok: bool
    message: str
    attempts: int


@dataclass(frozen=True, slots=True)
class ActionResult:
    ok: bool
    message: str
    attempts: int
    response: object = None

    def as_dict(self) -> ActionSummary:
        return {"ok": self.ok, "message": self.message, "attempts": self.attempts}


class AmiController:
    def __init__(self, *, host: str, port: int, username: str, secret: str, model: LiveModel,
                 redis: aioredis.Redis | None, log: Log, publish_s: Every = PUBLISH_S, resync_s: float = 30.0,
                 ping_s: float = 5.0, clock: Callable[[], float] = time.time) -> None:
        self.model = model
        self.now = clock             # the engine's clock: the live model's windows are in its seconds
        self.redis = redis
        self.log = log
        self.publish_s = publish_s
        self.resync_s = resync_s
        self.ping_s = ping_s
        self.link = _Link(host=host, port=port, username=username, secret=secret, events="on",
                          on_login=self._on_login, on_disconnect=self._on_disconnect,
                          log=_PanoramiskLog(log))
        self.link.register_event("*", self._on_event)
        self.ready = asyncio.Event()     # logged in and resynced
        self.logged_in = False
        # asterisk.conf's systemname, the prefix of this PBX's uniqueids ("": none set;
        # None: not read yet), read with CoreSettings after each login
        self.system_name: str | None = None
        # the trunk between PBXs as this PBX's dialplan sets it (read with the systemname): "ok", "shipped"
        # (the secret everyone knows), "unset" (no IVR_PEER_SECRET), None (not read yet)
        self.peer_trunk: str | None = None
        self._named_at_login = 0
        self._refused_while_booting = False     # the last QueueStatus was refused: FullyBooted brings the resync
        self.resyncs = 0
        self.logins = 0
        self._dirty = True
        self._tasks: list[asyncio.Task[Any]] = []
        self.listeners: list[Listener] = []    # called with every event (the callback scheduler)
        # A QueueStatus answer is the PBX at one moment; the events after it
        # describe what changed since. panoramisk completes the answer while it
        # reads a chunk and dispatches the rest of the chunk (and maybe more)
        # before ``resync`` resumes: those events are held here and applied after
        # the rebuild, in order, instead of to the model the rebuild replaces.
        self._answer: asyncio.Future[Any] | None = None
        self._held: list[AmiEvent] = []

    # -- life cycle -----------------------------------------------------------

    async def start(self) -> None:
        self.link.loop = asyncio.get_running_loop()
        self.link.connect()
        self._tasks = [asyncio.create_task(self._publisher()), asyncio.create_task(self._watchdog())]

    async def stop(self) -> None:
        self.link.stop()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._publish()

    def _on_login(self, manager: _Link) -> None:
        self.logins += 1
        self.logged_in = True
        self.log.info("ami_logged_in", logins=self.logins)
        self._tasks.append(asyncio.create_task(self.resync()))

    def _on_disconnect(self, manager: _Link, exc: Exception | None) -> None:
        self.logged_in = False
        self.ready.clear()
        self.log.warning("ami_disconnected", error=repr(exc), retry_in_s=manager.reconnect_timeout)

    def _on_event(self, manager: _Link, event: AmiEvent) -> None:
        if event.get("Event") == "FullyBooted" and self._refused_while_booting and self._answer is None:
            # the PBX was still starting when we logged in (its QueueStatus refused): read it now that it is up
            self._refused_while_booting = False
            self._tasks.append(asyncio.create_task(self.resync()))
        if self._answer is not None and self._answer.done():
            self._held.append(event)          # after the answer: applied once it is (``resync``)
            return
        self._apply(event)

    def _apply(self, event: AmiEvent) -> None:
        self.model.apply(event, self.now())
        self._dirty = True
        for listener in self.listeners:
            try:
                listener(event)
            except Exception as exc:  # one listener's bug must not stop the model
                self.log.error("ami_listener_failed", error=repr(exc), ami_event=event.get("Event"))

    async def resync(self) -> bool:
        answer: asyncio.Future[Any] | None = None
        try:
            # as_list=None: "Queue status will follow" makes it a list, and an
            # Error comes back at once (as_list=True waits for events that never come)
            answer = self._answer = self.link.send_action({"Action": "QueueStatus"}, as_list=None)
            res = await asyncio.wait_for(answer, ACTION_TIMEOUT_S * 2)
        except (TimeoutError, ConnectionError, AttributeError) as exc:
            self.log.warning("ami_resync_failed", error=repr(exc))
            return False
        else:
            events = res if isinstance(res, list) else [res]
            refused = next((e for e in events if e.get("Response") == "Error"), None)
            if refused is not None:
                # A PBX still starting: its manager takes logins before app_queue
                # has loaded and answers "Invalid/unknown command: QueueStatus"
                # (fixture ami/session-booting.json). Rebuilt from that, the view
                # would be an empty PBX, and a false one: stay not ready until
                # FullyBooted (or the next retry) brings a real answer.
                self.log.warning("ami_resync_refused", message=refused.get("Message", ""))
                self._refused_while_booting = True
                return False
            self.model.rebuild([e for e in events if "Event" in e], self.now())
        finally:
            self._release_held(answer)
        self.resyncs += 1
        self._dirty = True
        self.ready.set()
        self.log.info("ami_resynced", seats=len(self.model.seats), waiting=len(self.model.waiting),
                      queues=len(self.model.queue_names))
        if self._named_at_login != self.logins:
            await self._read_system_name()
        return True

    async def _read_system_name(self) -> None:
        """CoreSettings' SystemName: which calls are this PBX's, known before any
        of its calls is seen (``ivr.ami.city.out_of_sync``). Asked once per login."""
        self._named_at_login = self.logins
        try:
            resp = await asyncio.wait_for(self.link.send_action({"Action": "CoreSettings"}, as_list=False),
                                          ACTION_TIMEOUT_S)
        except (TimeoutError, ConnectionError, AttributeError) as exc:
            self.log.warning("ami_system_name_unknown", error=repr(exc))
            return
        if resp.success:
            self.system_name = str(resp.get("SystemName", "") or "")
        else:
            self.log.warning("ami_system_name_unknown", error=resp.get("Message", ""))
        await self._read_peer_trunk()

    async def _read_peer_trunk(self) -> None:
        """Whether this PBX's trunk to the others (emergency callers moved over
        IAX2) has a secret of its own: a PBX still on the shipped one takes
        emergency calls from anyone who read this project (``ivr.ami.city``
        then names it no peer, and says why)."""
        try:
            resp = await asyncio.wait_for(self.link.send_action(
                {"Action": "Getvar", "Variable": PEER_SECRET_VARIABLE}, as_list=False), ACTION_TIMEOUT_S)
        except (TimeoutError, ConnectionError, AttributeError) as exc:
            self.log.warning("ami_peer_trunk_unknown", error=repr(exc))
            return
        value = str(resp.get("Value", "") or "") if resp.success else ""
        self.peer_trunk = "shipped" if value == SHIPPED_PEER_SECRET else "ok" if value else "unset"

    def _release_held(self, answer: asyncio.Future[Any] | None) -> None:
        """The events that followed ``answer``, applied in order (after the
        rebuild; or, the resync having failed, to the model as it is)."""
        if answer is None or self._answer is not answer:
            return                  # a later resync holds events of its own
        self._answer = None
        held, self._held = self._held, []
        for event in held:
            self._apply(event)

    async def _publisher(self) -> None:
        last_resync = time.monotonic()
        while not cancelling():
            await asyncio.sleep(every(self.publish_s))
            if self._dirty:
                await self._publish()
            since = time.monotonic() - last_resync
            # Resync now and then; and until one succeeds after a login: a PBX
            # that was too busy to answer the first QueueStatus in time must not
            # leave the link up but never ready (no live figures, no callbacks).
            if (self.ready.is_set() and since >= self.resync_s) or \
                    (self.logged_in and not self.ready.is_set() and since >= RESYNC_RETRY_S):
                last_resync = time.monotonic()
                await self.resync()

    async def _publish(self) -> None:
        if self.redis is None:
            return
        self._dirty = False
        now = self.now()
        snap = self.model.snapshot(now)
        snap["ami_connected"] = self.ready.is_set()
        try:
            await write_live(self.redis, snap, self.model.outlook(now, snap.get("lines")))
        except Exception as exc:  # the next round tries again
            self._dirty = True
            self.log.warning("live_model_not_published", error=repr(exc))

    async def _watchdog(self) -> None:
        """Ping; a link that does not answer is aborted so that it reconnects."""
        while not cancelling():
            await asyncio.sleep(self.ping_s)
            proto = self.link.protocol
            if not self.ready.is_set() or proto is None or getattr(proto, "closed", True):
                continue
            try:
                await asyncio.wait_for(self.link.send_action({"Action": "Ping"}, as_list=False), ACTION_TIMEOUT_S)
            except (TimeoutError, ConnectionError):
                self.log.warning("ami_link_silent", action="abort")
                self.ready.clear()
                proto.transport.abort()

    # -- actions ----------------------------------------------------------------

    async def act(self, action: dict[str, str], *, retries: int = 3, wait_ready_s: float = 10.0) -> ActionResult:
        """Send one action; retry on an error answer, a timeout or a lost link.
        The last answer is returned, whatever it was."""
        message = "not sent"
        delay = 0.2
        if any("\r" in f"{k}{v}" or "\n" in f"{k}{v}" for k, v in action.items()):
            # AMI is line-based too: a value with a line break would add headers
            # (or a second action). Refused, never sent, never rewritten.
            self.log.error("ami_action_refused", action=action.get("Action"), reason="line break in a value")
            return ActionResult(False, "拒绝发送: 含换行符 (refused: a value contains a line break)", 0)
        for attempt in range(1, retries + 1):
            try:
                await asyncio.wait_for(self.ready.wait(), wait_ready_s)
                # as_list=False: panoramisk guesses from the answer's text whether
                # events follow, and guesses wrong for Asterisk 22's "Added interface
                # to queue" (waits forever) and an async Originate.
                resp = await asyncio.wait_for(self.link.send_action(dict(action), as_list=False),
                                              ACTION_TIMEOUT_S)
                first = resp[0] if isinstance(resp, list) else resp
                message = first.get("Message", "") or first.get("Response", "")
                if first.success:
                    return ActionResult(True, message, attempt, resp)
            except TimeoutError:
                message = "no answer from Asterisk" if self.ready.is_set() else "AMI not connected"
            except (ConnectionError, AttributeError) as exc:
                message = f"AMI link lost: {exc!r}"
            self.log.warning("ami_action_failed", action=action.get("Action"), attempt=attempt, message=message)
            if attempt < retries:
                await asyncio.sleep(delay)
                delay *= 2.5
        return ActionResult(False, message, retries)

    async def ask(self, action: dict[str, str], *, as_list: bool | None = False,
                  timeout_s: float = ACTION_TIMEOUT_S) -> ActionResult:
        """One question, asked once, for a poll that asks again on its next
        round (the line count): no retry, no wait for the link, no warning
        logged (the caller says what a failure means). A list action's
        ``response`` is every message, the answer first; ``as_list=None`` lets
        panoramisk tell from the answer (an ``Error`` is then returned at
        once instead of waiting for events that never come)."""
        if not self.ready.is_set():
            return ActionResult(False, "AMI not connected", 0)
        try:
            resp = await asyncio.wait_for(self.link.send_action(dict(action), as_list=as_list), timeout_s)
        except TimeoutError:
            return ActionResult(False, "no answer from Asterisk", 1)
        except (ConnectionError, AttributeError) as exc:
            return ActionResult(False, f"AMI link lost: {exc!r}", 1)
        first = resp[0] if isinstance(resp, list) else resp
        return ActionResult(bool(first.success), first.get("Message", "") or first.get("Response", ""), 1, resp)

    def mark_changed(self) -> None:
        """The model changed outside an event (a poll): publish it next round."""
        self._dirty = True

    def take_changed(self) -> bool:
        """Whether the model changed since the last call (several PBXs: the
        controllers have no ``redis`` and ``ivr.ami.city`` publishes them all)."""
        changed, self._dirty = self._dirty, False
        return changed

    async def pause(self, interface: str, paused: bool, *, queue: str | None = None, reason: str = "") -> ActionResult:
        a = {"Action": "QueuePause", "Interface": interface, "Paused": "true" if paused else "false"}
        if queue:
            a["Queue"] = queue
        if reason and paused:
            a["Reason"] = reason
        return await self.act(a)

    async def add_member(self, queue: str, interface: str, *, name: str, state_interface: str,
                         penalty: int = 0) -> ActionResult:
        res = await self.act({"Action": "QueueAdd", "Queue": queue, "Interface": interface, "MemberName": name,
                              "StateInterface": state_interface, "Penalty": str(penalty)})
        if not res.ok and "Already there" in res.message:
            return ActionResult(True, res.message, res.attempts)   # the goal is reached
        return res

    async def remove_member(self, queue: str, interface: str) -> ActionResult:
        res = await self.act({"Action": "QueueRemove", "Queue": queue, "Interface": interface})
        if not res.ok and "Not there" in res.message:
            return ActionResult(True, res.message, res.attempts)
        return res

    async def change_priority(self, queue: str, channel: str, priority: int, uniqueid: str = "") -> ActionResult:
        res = await self.act({"Action": "QueueChangePriorityCaller", "Queue": queue, "Caller": channel,
                              "Priority": str(priority), "Immediate": "true"}, retries=1)
        if res.ok and uniqueid:
            self.model.note_priority(uniqueid, priority)
            self._dirty = True
        return res

    async def originate(self, fields: dict[str, str]) -> ActionResult:
        """Never retried here: a lost answer may hide a call that is ringing."""
        return await self.act({"Action": "Originate", "Async": "true", **fields}, retries=1)

    async def withdraw(self, queue: str, channel: str, uniqueid: str, info: str = "callback-offered") -> ActionResult:
        self.model.note_withdraw(uniqueid)
        return await self.act({"Action": "QueueWithdrawCaller", "Queue": queue, "Caller": channel,
                               "WithdrawInfo": info}, retries=1)


class _PanoramiskLog:
    """panoramisk logs through ``logging``; route what matters into structlog."""

    def __init__(self, log: Log) -> None:
        self._log = log

    def debug(self, *a: object, **kw: object) -> None:
        pass

    info = debug

    def warning(self, msg: object, *a: object, **kw: object) -> None:
        self._log.debug("panoramisk", message=str(msg) % a if a else str(msg))

    error = exception = warning
