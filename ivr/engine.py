"""Wiring: settings -> Redis -> flows -> FastAGI server. The one place where the
adapters meet; everything else receives what it needs."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import sys
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from ivr import logs
from ivr import redis_keys as keys
from ivr.agi.fastagi import FastAgiServer
from ivr.ami.controller import AmiController
from ivr.ami.model import LiveModel
from ivr.callback.capture import MissedCallCapture
from ivr.callback.in_queue import InQueueOffer
from ivr.callback.scheduler import CallbackScheduler
from ivr.callback.store import CallbackStore
from ivr.contingency.plan import level_from_text
from ivr.contingency.store import ContingencyStore
from ivr.contingency.supervisor import ContingencySupervisor
from ivr.errors import ConfigError, LevelInvalid
from ivr.leader import LeaderLock
from ivr.calls import CallService, CallSummaries, LiveState
from ivr.flow.interpreter import FlowInterpreter, RunnerConfig
from ivr.flow.registry import FlowRegistry
from ivr.flow.store import FlowStore
from ivr.project import (Project, check_files, load_calendars, load_number_lists, load_queue_config,
                         require_operations)
from ivr.redis_server import RedisHandle, connect
from ivr.settings import SHIPPED_AMI_SECRET, Settings, shipped_secret_in_use

REFRESH_S = 0.5  # flows and the contingency level reach every process within a second
LEADER_ROUND_S = 1.0


def raise_open_file_limit() -> int:
    """Each call holds a socket: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def publish_unpublished(project: Project, store: FlowStore, log) -> None:
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


def runner_config(project: Project, settings: Settings) -> RunnerConfig:
    qc = load_queue_config(project.home / "queue")
    return RunnerConfig(queues=qc.asterisk_names, fallback_queue=qc.queues[qc.fallback].asterisk,
                        transfer_dialstring=settings.transfer_dialstring)


@dataclass
class Engine:
    settings: Settings
    redis: aioredis.Redis
    log: object

    def __post_init__(self) -> None:
        self.project = Project(self.settings.home)
        self.store = FlowStore(self.redis)
        self.registry = FlowRegistry(self.store, self.log)
        self.ops = require_operations(self.project, self.settings.timezone)
        self.queue_config = load_queue_config(self.project.home / "queue")
        self.live = LiveState(self.ops.plan, self.ops.announcements)
        self.summaries = CallSummaries(self.redis, self.log)
        self.calls = CallService(
            registry=self.registry, interpreter=FlowInterpreter(runner_config(self.project, self.settings)),
            live=self.live, summaries=self.summaries, redis=self.redis, timezone=self.settings.timezone,
            prompt_prefix=self.settings.prompt_prefix, recordings_dir=self.settings.recordings_dir,
            log=self.log)
        self.agi = FastAgiServer(self.calls.handle, self.settings.agi_listen.host,
                                 self.settings.agi_listen.port, self.log)
        self._lists_mtime = -1.0
        self._ops_mtime = self._operations_mtime()
        self.controller: AmiController | None = None
        self.supervisor: ContingencySupervisor | None = None
        self.leader = LeaderLock(self.redis, keys.AMI_LEADER)
        self.is_leader = False
        self.time_scale = 1.0     # a drill runs the PBX this many times faster than the wall clock
        self.http_port: int | None = None   # where the console listens, once it does
        self._leader_tasks: list[asyncio.Task] = []
        self.capture: MissedCallCapture | None = None
        self.scheduler: CallbackScheduler | None = None

    async def refresh(self) -> None:
        await self.registry.refresh()
        try:
            self.live.level = level_from_text(await self.redis.get(keys.CONTINGENCY_LEVEL))
        except LevelInvalid as exc:
            self.live.level = 0
            self.log.error("contingency_level_invalid", error=str(exc))
        self._reload_lists()
        self._reload_operations()

    def _operations_mtime(self) -> float:
        files = [self.project.home / "queue" / n for n in ("contingency.yaml", "seats.yaml", "queues.yaml")]
        files.append(self.project.home / "prompts" / "announcements.yaml")
        return max((p.stat().st_mtime for p in files if p.exists()), default=0.0)

    def _reload_operations(self) -> None:
        """A seat manager saved the plan or an announcement set: take it if it
        is valid; if not, say so and keep the one in force (lose nothing)."""
        mtime = self._operations_mtime()
        if mtime == self._ops_mtime:
            return
        self._ops_mtime = mtime
        try:
            ops = require_operations(self.project, self.settings.timezone)
        except ConfigError as exc:
            self.log.error("operations_reload_refused", problems=str(exc))
            return
        self.ops = ops
        self.live.plan, self.live.announcements = ops.plan, ops.announcements
        self.live._valid_at = -1
        if self.supervisor is not None:
            self.supervisor.plan, self.supervisor.seats = ops.plan, ops.seats
        self.log.info("operations_reloaded", levels=len(ops.plan.levels), sets=len(ops.announcements))

    def _reload_lists(self) -> None:
        folders = [self.project.flows_dir / "lists", self.project.flows_dir / "calendars"]
        mtime = max((p.stat().st_mtime for f in folders if f.is_dir() for p in [f, *f.iterdir()]), default=0.0)
        if mtime != self._lists_mtime:
            self.live.lists = load_number_lists(self.project.flows_dir)
            self.live.calendars = load_calendars(self.project.flows_dir)
            self._lists_mtime = mtime

    async def _refresh_loop(self) -> None:
        # redis-py can swallow a cancellation that lands mid-command, so the loop
        # also checks whether it has been asked to stop.
        while not asyncio.current_task().cancelling():
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
            except Exception as exc:  # Redis restarting: keep serving on what we have
                self.log.warning("refresh_failed", error=repr(exc))

    async def _start_web(self):
        """The console and HTTP API on IVR_HTTP_LISTEN (port 0: any free port)."""
        from aiohttp import web

        from ivr.web.app import make_app

        listen = self.settings.http_listen
        runner = web.AppRunner(make_app(redis=self.redis, settings=self.settings, engine=self),
                               access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, listen.host, listen.port, reuse_address=True).start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(f"IVR_HTTP_LISTEN={listen}: cannot listen there ({exc.strerror})") from exc
        self.http_port = runner.addresses[0][1]
        self.log.info("http_listening", host=listen.host, port=self.http_port)
        return runner

    # -- the leader's work: the AMI link and the contingency supervisor ----------

    def _make_leader_parts(self) -> list:
        """The leader's work, as coroutines to run while it holds the lock."""
        emergency = [q.asterisk for q in self.queue_config.queues.values() if q.emergency]
        model = LiveModel(emergency_queues=emergency, reserved_interfaces=self.ops.seats.reserved,
                          window_s=900 / self.time_scale, service_level_s=20 / self.time_scale)
        ami = self.settings.ami
        self.controller = None if ami is None else AmiController(
            host=ami.host, port=ami.port, username=ami.username, secret=ami.secret, model=model,
            redis=self.redis, log=self.log.bind(part="ami"))
        self.supervisor = ContingencySupervisor(
            plan=self.ops.plan, seats=self.ops.seats, queues=self.queue_config.asterisk_names,
            store=ContingencyStore(self.redis), controller=self.controller, model=model,
            log=self.log.bind(part="contingency"))
        cb_store = CallbackStore(self.redis)
        general = self.queue_config.asterisk_names.get("general", "")
        self.capture = MissedCallCapture(
            self.redis, cb_store, self.ops.policy, self.settings.timezone, self.log.bind(part="capture"),
            consumer=self.leader.token,
            estimated_wait=lambda: model.estimated_wait(general, time.time()))
        self.scheduler = None if self.controller is None else CallbackScheduler(
            store=cb_store, controller=self.controller, policy=self.ops.policy, tz=self.settings.timezone,
            queues=self.queue_config.asterisk_names, log=self.log.bind(part="callbacks"), owner=self.leader.token)
        if self.controller is not None and self.ops.policy.in_queue_digit:
            self.in_queue_offer = InQueueOffer(
                self.controller, digit=self.ops.policy.in_queue_digit, log=self.log.bind(part="callbacks"),
                emergency_queues=frozenset(q.asterisk for q in self.queue_config.queues.values() if q.emergency))
        work = [self._every(LEADER_ROUND_S, self.supervisor.tick, "contingency"), self._capture_loop()]
        if self.scheduler is not None:
            work.append(self._every(LEADER_ROUND_S, self.scheduler.tick, "callbacks"))
        return work

    async def _every(self, period_s: float, fn, what: str) -> None:
        while not asyncio.current_task().cancelling():
            try:
                await fn()
            except Exception as exc:  # a failed round is logged; the next one tries again
                self.log.warning("leader_round_failed", part=what, error=repr(exc))
            await asyncio.sleep(period_s)

    async def _capture_loop(self) -> None:
        await self.capture.ensure_group()
        while not asyncio.current_task().cancelling():
            try:
                if not await self.capture.run_once(count=2000, block_ms=500):
                    await asyncio.sleep(0.05)
            except Exception as exc:
                self.log.warning("capture_round_failed", error=repr(exc))
                await asyncio.sleep(1.0)

    async def _leader_loop(self) -> None:
        """Holds (or waits for) the leader lock; the holder runs the AMI link
        and the supervisor. Losing the lock stops both at once."""
        try:
            while not asyncio.current_task().cancelling():
                try:
                    if not self.is_leader and await self.leader.acquire():
                        self.is_leader = True
                        work = self._make_leader_parts()
                        if self.controller is not None:
                            await self.controller.start()
                        self._leader_tasks = [asyncio.create_task(w) for w in work]
                        self.log.info("leader_acquired", ami=self.controller is not None)
                    elif self.is_leader and not await self.leader.renew():
                        self.log.warning("leader_lost")
                        await self._stop_leader_parts()
                except Exception as exc:  # Redis restarting: try again next round
                    self.log.warning("leader_round_failed", error=repr(exc))
                await asyncio.sleep(LEADER_ROUND_S)
        finally:
            await self._stop_leader_parts()

    async def _stop_leader_parts(self) -> None:
        for t in self._leader_tasks:
            t.cancel()
        await asyncio.gather(*self._leader_tasks, return_exceptions=True)
        self._leader_tasks = []
        if self.controller is not None:
            await self.controller.stop()
        if self.is_leader:
            with contextlib.suppress(Exception):
                await self.leader.release()
        self.controller, self.supervisor, self.is_leader = None, None, False

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        await publish_unpublished(self.project, self.store, self.log)
        await self.refresh()
        async with asyncio.TaskGroup() as tg:
            background = [tg.create_task(self._refresh_loop()), tg.create_task(self.summaries.run())]
            if self.settings.leader:
                background.append(tg.create_task(self._leader_loop()))
            await self.agi.start()
            web_runner = await self._start_web()
            if ready is not None:
                ready.set()
            await stop.wait()
            self.log.info("shutting_down", calls=len(self.agi.calls))
            cancelled = await self.agi.stop(self.settings.drain_s)
            for t in background:
                t.cancel()
            if web_runner is not None:
                await web_runner.cleanup()
        await self.summaries.flush()
        self.log.info("stopped", calls_cancelled=cancelled, calls_handled=self.calls.finished)


def warn_shipped_secret(settings: Settings, log, stderr=None) -> bool:
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


async def serve(settings: Settings, *, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None) -> None:
    log = logs.get("ivr.engine")
    limit = raise_open_file_limit()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    with RedisHandle(settings.redis_url, settings.data_dir) as url:
        redis = connect(url)
        try:
            engine = Engine(settings, redis, log)
            log.info("engine_starting", redis="embedded" if not settings.redis_url else "external",
                     open_files=limit, home=str(settings.home))
            warn_shipped_secret(settings, log)
            await engine.run(stop, ready)
        finally:
            await redis.aclose()
