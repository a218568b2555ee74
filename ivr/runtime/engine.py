"""Wiring: the one place where the engine's roles meet.

- the configuration snapshot (``snapshot.py``): every data file, immutable,
  swapped whole on reload;
- the call server: FastAGI in, a flow run, a call summary out (``call_service.py``,
  ``agi/fastagi.py``), reading flows from Redis and the snapshot;
- the leader role (``leader.py``, ``leader_work.py``): AMI link, contingency
  supervisor, missed-call capture and reconciliation, callback scheduler, each
  a supervised part, in one process at a time;
- the status view (``status.py``): what the web console and the CLI may read,
  published to Redis for the console, which runs in a process of its own
  (``web/process.py``) so that its users never share the calls' event loop.

Time comes from the clock passed in (``clock.py``): the wall clock in
production, a drill's simulated clock in a drill or the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import redis.asyncio as aioredis

from ivr import logs
from ivr.admission.lines import PbxLines
from ivr.agi.fastagi import FastAgiServer
from ivr.aio import cancelling
from ivr.ami.controller import AmiController
from ivr.audit import signing as audit_keys
from ivr.callback.capture import MissedCallCapture
from ivr.callback.scheduler import CallbackScheduler
from ivr.callback.store import CallbackStore
from ivr.calls.arrival import ArrivalLookups
from ivr.calls.service import CallService, CallSummaries, LiveState
from ivr.clock import Clock, from_environment, wall_interval
from ivr.configset.store import ConfigStore
from ivr.contingency.plan import level_from_text
from ivr.errors import ConfigError, LevelInvalid
from ivr.flow.interpreter import FlowInterpreter
from ivr.flow.registry import FlowRegistry
from ivr.flow.store import FlowStore
from ivr.logs import Log
from ivr.project import Project, check_files
from ivr.prompts.sync import PromptSync
from ivr.redisdb import keys
from ivr.redisdb.server import RedisHandle, connect
from ivr.runtime import leader_work, prompt_sync
from ivr.runtime.audit_key import check_audit_key
from ivr.runtime.console import ConsoleProcess
from ivr.runtime.leader import LeaderRole, Part
from ivr.runtime.snapshot import (
    Adjust,
    ConfigSnapshot,
    SnapshotSource,
    open_snapshot,
    runner_config,
    with_lines,
    with_plan_mode,
    without_admission,
)
from ivr.runtime.status import EngineStatus, publish
from ivr.settings import SHIPPED_AMI_SECRET, Settings, shipped_secret_in_use

REFRESH_S = 0.5  # flows, the level and the data files reach every process within a second
PROMPT_SYNC_S = 30.0  # how often the engine on a PBX's host syncs its sounds folder (IVR_SOUNDS_DIR)


def raise_open_file_limit() -> int:
    """Each call holds a socket: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def publish_unpublished(project: Project, store: FlowStore, log: Log) -> None:
    """First start on an empty Redis: publish the shipped flows that validate, so
    the engine answers calls at once. Later changes go through `ivr flows publish`."""
    known = set(await store.names())
    flows, problems = check_files(project)
    for p in problems:
        (log.warning if p.warning else log.error)("flow_problem", problem=str(p))
    for name, flow in flows.items():
        if name not in known:
            res = await store.publish(name, flow.source, by="system:bootstrap", note="first start")
            log.info("flow_bootstrapped", flow=name, version=res.version)


async def index_open_callbacks(redis: aioredis.Redis, log: Log) -> None:
    """The index of open callbacks by first call (the oldest open callback
    shown to staff) for callbacks opened before it existed; idempotent."""
    store = CallbackStore(redis)
    added = await store.index_open()
    if added:
        log.info("callback_index_filled", added=added)
    added = await store.index_closed()      # the month report's index by first call
    if added:
        log.info("callback_closed_index_filled", added=added)


def adjust_for(settings: Settings, adjust: Adjust | None) -> Adjust | None:
    """The drill's terms (``IVR_CONTINGENCY_MODE``, ``IVR_DRILL_LINES``,
    ``IVR_DRILL_ADMISSION``) as one adjustment of the snapshot: settings, so
    that engine processes of their own and the console's process run on the
    same terms as an engine in the drill's process."""
    if adjust is not None:
        return adjust
    out: Adjust | None = with_plan_mode(settings.contingency_mode) if settings.contingency_mode else None
    if settings.drill_unlimited_lines:
        out = with_lines(None, out)
    elif settings.drill_lines is not None:
        lines, reserve, below = settings.drill_lines
        out = with_lines(PbxLines("main", lines, reserve, below), out)     # the drill's one PBX
    if not settings.drill_admission:
        out = without_admission(out)
    return out


class Engine:
    def __init__(self, settings: Settings, redis: aioredis.Redis, log: Log, *, clock: Clock | None = None,
                 adjust: Adjust | None = None, redis_url: str | None = None,
                 config: SnapshotSource | None = None) -> None:
        self.settings = settings
        self.redis = redis
        self.redis_url = redis_url       # for the console's process; None: no console
        self.log = log
        self.clock = clock or from_environment()
        self.project = Project(settings.home)
        self.config = config or SnapshotSource(settings.home, settings.timezone, log, adjust=adjust_for(settings, adjust))
        self.flows = FlowStore(redis)
        self.registry = FlowRegistry(self.flows, log)
        self.live = LiveState(self.config.current)
        self.live.outlook_source = lambda: self.redis.get(keys.OUTLOOK)
        self.leader = LeaderRole(redis, self._leader_term, log)
        self.summaries = CallSummaries(redis, log, owner=self.leader.lock.token)
        self.calls = CallService(
            registry=self.registry, interpreter=FlowInterpreter(runner_config(self.config.current, settings)),
            live=self.live, summaries=self.summaries, arrivals=ArrivalLookups(redis, log), timezone=settings.timezone,
            prompt_prefix=settings.prompt_prefix, recordings_dir=settings.recordings_dir, log=log, clock=self.clock)
        self.config.on_change(self._use_snapshot)
        self.agi = FastAgiServer(self.calls.handle, settings.agi_listen.host, settings.agi_listen.port, log)
        self.work: leader_work.LeaderWork | None = None     # the leader's parts, while this process leads
        # (token) -> [Part]: more leader parts (audit checkpoints)
        self.extra_parts: list[Callable[[str], list[Part]]] = []
        self.status = EngineStatus(clock=self.clock, calls=self.calls, leader=self.leader, config=self.config,
                                   ami_connected=self._ami_connected)

    # -- what tests and the drill look at (read-only) ------------------------------

    @property
    def controller(self) -> AmiController | None:
        return self.work.controller if self.work else None

    @property
    def controllers(self) -> dict[str, AmiController]:
        """PBX name -> its AMI controller (one per PBX of queue/pbxs.yaml the leader links to)."""
        return self.work.controllers if self.work else {}

    @property
    def capture(self) -> MissedCallCapture | None:
        return self.work.capture if self.work else None

    @property
    def scheduler(self) -> CallbackScheduler | None:
        return self.work.scheduler if self.work else None

    @property
    def is_leader(self) -> bool:
        return self.leader.is_leader

    def _ami_connected(self) -> bool:
        """Every AMI link up (several PBXs: each one's state is in the live snapshot's ``pbxs``)."""
        links = list(self.controllers.values())
        return bool(links) and all(c.ready.is_set() for c in links)

    # -- the configuration snapshot and the level ------------------------------------------

    def _use_snapshot(self, snap: ConfigSnapshot) -> None:
        self.live.use(snap)
        self.calls.interpreter = FlowInterpreter(runner_config(snap, self.settings))

    async def refresh(self) -> None:
        await self.registry.refresh()
        raw_level, raw_outlook = await self.redis.mget(keys.CONTINGENCY_LEVEL, keys.OUTLOOK)
        self.live.use_outlook(raw_outlook)
        try:
            self.live.level = level_from_text(raw_level)
        except LevelInvalid as exc:
            self.live.level = 0
            self.log.error("contingency_level_invalid", error=str(exc))
        self.config.refresh(self.clock.now())
        await self.config.record(ConfigStore(self.redis), by=f"engine:{self.leader.lock.token}", now=self.clock.now())

    async def _refresh_loop(self) -> None:
        # redis-py can swallow a cancellation that lands mid-command, so the loop
        # also checks whether it has been asked to stop.
        while not cancelling():
            await asyncio.sleep(wall_interval(self.clock, REFRESH_S))
            try:
                await self.refresh()
                await self.publish_status()
            except Exception as exc:  # noqa: BLE001 - Redis restarting: keep serving on what we have
                self.log.warning("refresh_failed", error=repr(exc))

    # -- the leader role ---------------------------------------------------------------

    async def _leader_term(self, token: str) -> tuple[list[Part], leader_work.Cleanup]:
        work = leader_work.build(settings=self.settings, redis=self.redis, config=self.config, clock=self.clock,
                                 log=self.log, token=token)
        work.extra = [p for make in self.extra_parts for p in make(token)]
        self.work = work

        async def end_term() -> None:
            await leader_work.cleanup(work)
            self.work = None
        return leader_work.parts(work, self.config, self.clock), end_term

    # -- the web console ---------------------------------------------------------------

    async def _start_console(self) -> ConsoleProcess | None:
        """The console and HTTP API on IVR_HTTP_LISTEN (port 0: any free port),
        in a process of their own (``ivr.web.process``); none with
        IVR_CONSOLE=no (``ivr serve --no-console``: ``ivr console`` serves it
        from another host)."""
        if self.redis_url is None or not self.settings.console:
            return None
        audit = audit_keys.current()
        console = ConsoleProcess(self.settings, redis_url=self.redis_url, engine_token=self.leader.lock.token,
                                 clock_spec=self.clock.describe(), audit_key_file=str(audit.key_file),
                                 audit_checkpoint_file=str(audit.checkpoint_file), log=self.log)
        self.status.http_port = await console.start()
        return console

    def _prompt_sync(self) -> PromptSync:
        assert self.settings.sounds_dir is not None
        return prompt_sync.build(self.redis, pbx=self.settings.pbx_name, sounds_dir=self.settings.sounds_dir,
                                 messages_dir=Path(self.settings.recordings_dir), log=self.log)

    async def publish_status(self) -> None:
        await publish(self.redis, self.leader.lock.token, self.status)

    @property
    def http_port(self) -> int | None:
        return self.status.http_port

    # -- running -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        # a drill's or an embedding's engine checks its key too (``serve`` did before opening the snapshot)
        self.status.audit_key = (await check_audit_key(self.redis, by=f"engine:{self.leader.lock.token}")).short
        await publish_unpublished(self.project, self.flows, self.log)
        await index_open_callbacks(self.redis, self.log)
        await self.refresh()
        await self.publish_status()
        async with asyncio.TaskGroup() as tg:
            background = [tg.create_task(self._refresh_loop()), tg.create_task(self.summaries.run())]
            if self.settings.leader:
                background.append(tg.create_task(self.leader.run()))
            if self.settings.sounds_dir is not None:      # on the PBX's host: its prompts and voice messages
                background.append(tg.create_task(prompt_sync.loop(self._prompt_sync(), every_s=PROMPT_SYNC_S)))
            await self.agi.start()
            try:
                console = await self._start_console()
            except ConfigError:
                await self.agi.stop(0)
                raise
            if console is not None:
                background.append(tg.create_task(console.watch()))
            if ready is not None:
                ready.set()
            await stop.wait()
            self.log.info("shutting_down", calls=len(self.agi.calls))
            cancelled = await self.agi.stop(self.settings.drain_s)
            for t in background:
                t.cancel()
            if console is not None:
                await console.stop()
            await self.calls.arrivals.close()
        await self.summaries.flush()
        self.log.info("stopped", calls_cancelled=cancelled, calls_handled=self.calls.finished)


def warn_shipped_secret(settings: Settings, log: Log, stderr: TextIO | None = None) -> bool:
    """Loudly, at start-up: the AMI secret shipped in asterisk/manager.conf is
    public, and whoever knows it can originate calls and move seats."""
    where = shipped_secret_in_use(settings)
    if where is None:
        return False
    log.error("ami_secret_is_the_shipped_one", where=where)
    print(f"警告: AMI 密码仍是随附的 {SHIPPED_AMI_SECRET!r} ({where}), 请在 asterisk/manager.conf 和 IVR_AMI_URL 中更换 "
          f"(warning: the AMI secret is still the shipped one: change it in manager.conf and IVR_AMI_URL)",
          file=stderr or sys.stderr)
    return True


async def report_pbxs(settings: Settings, log: Log) -> dict[str, str]:
    """At start, one line per PBX of queue/pbxs.yaml whose AMI port does not
    answer (or the file's error): said, and nothing else stops — the calls,
    the other PBXs and the engine's own link carry on."""
    from ivr.services import pbxs as pbx_service

    cfg, error = pbx_service.configured(settings.home)
    if cfg is None:
        log.error("pbxs_file_wrong", error=error)
        return {}
    reach = await pbx_service.probe(cfg, settings)
    for pbx in cfg.pbxs.values():       # no IVR_AMI_URL (an engine that only answers calls): nothing to reach
        if reach[pbx.name] and pbx_service.address_of(pbx, settings) is not None:
            log.warning("pbx_unreachable", pbx=pbx.name, problem=reach[pbx.name])
    return reach


async def serve(settings: Settings, *, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None) -> None:
    log = logs.get("ivr.runtime.engine")
    limit = raise_open_file_limit()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    with RedisHandle(settings.redis_url, settings.data_dir) as url:
        redis = connect(url)
        try:
            # before anything touches a call or a log: entries under another key would never verify
            await check_audit_key(redis, by=f"engine:{socket.gethostname()}:{os.getpid()}", log=log)
            clock = from_environment()
            config = await open_snapshot(settings.home, settings.timezone, log, ConfigStore(redis),
                                         adjust=adjust_for(settings, None), now=clock.now())
            engine = Engine(settings, redis, log, redis_url=url, config=config, clock=clock)
            log.info("engine_starting", redis="embedded" if not settings.redis_url else "external",
                     open_files=limit, home=str(settings.home), clock=engine.clock.describe())
            warn_shipped_secret(settings, log)
            probing = asyncio.create_task(report_pbxs(settings, log), name="pbx-probe")
            try:
                await engine.run(stop, ready)
            finally:
                probing.cancel()
                await asyncio.gather(probing, return_exceptions=True)
        finally:
            await redis.aclose()
