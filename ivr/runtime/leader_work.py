"""What the leader runs, built each time this process takes the role: the AMI
link, the line count, the contingency supervisor, the missed-call capture and
reconciliation (also of attempts the dialplan refused, lines full, and
against the PBX's own queue_log when this host can read it), the callback
scheduler and the in-queue callback offer, each a supervised part
(``leader.py``). Every round reads the configuration snapshot in force.

Several PBXs (``queue/pbxs.yaml``, issue 20): one AMI part per PBX, each its
own ``AmiController`` and live model reconnecting on its own (a PBX that is
down never stops the others), and ``ivr.ami.city`` publishes the city's
figures. With one PBX (no file, or one PBX in it) the work is today's:
one controller publishing its own snapshot."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis

from ivr.admission.lines import LINK_PBX, PbxLines
from ivr.aio import cancelling
from ivr.ami.city import CityPublisher, PbxLink, out_of_sync, waiting_callers
from ivr.ami.controller import PUBLISH_S, AmiController
from ivr.ami.lines import EVERY_S as LINES_EVERY_S
from ivr.ami.lines import LineWatch
from ivr.ami.model import LiveModel
from ivr.callback.blocked import BlockedAttempts
from ivr.callback.capture import MissedCallCapture
from ivr.callback.followup import FollowupStore
from ivr.callback.followup_caller import FollowupCaller
from ivr.callback.in_queue import InQueueOffer
from ivr.callback.pbx_record import PbxRecord
from ivr.callback.reconcile import QueueReconciler
from ivr.callback.rollup import seal_in_child
from ivr.callback.scheduler import CallbackScheduler
from ivr.callback.store import CallbackStore
from ivr.clock import Clock, paced
from ivr.configset.pbxs import Pbx, default_pbxs
from ivr.contingency.store import ContingencyStore
from ivr.contingency.supervisor import ContingencySupervisor
from ivr.logs import Log
from ivr.project import asterisk_wrapup_times
from ivr.runtime.leader import ROUND_S, Part, every
from ivr.runtime.snapshot import SnapshotSource
from ivr.services import pbxs as pbx_service
from ivr.services.audit import Checkpointer
from ivr.settings import Settings


@dataclass
class LeaderWork:
    """The parts of one term as leader (read-only for everyone else)."""

    model: LiveModel
    controller: AmiController | None
    supervisor: ContingencySupervisor
    capture: MissedCallCapture
    reconciler: QueueReconciler | None
    scheduler: CallbackScheduler | None
    in_queue: InQueueOffer | None
    checkpointer: Checkpointer
    checkpoint_s: float
    extra: list[Part] = field(default_factory=list)
    lines: LineWatch | None = None            # the trunk lines in use, over AMI
    blocked: BlockedAttempts | None = None    # attempts the dialplan refused, recorded as missed calls
    pbx_record: PbxRecord | None = None       # the PBX's queue_log, reconciled (IVR_QUEUE_LOG)
    pbx_records_each: list[PbxRecord] = field(default_factory=list)   # other PBXs' (queue/pbxs.yaml queue_log)
    followups: FollowupCaller | None = None   # 智能回访: the chosen samples called without a seat
    links: list[PbxLink] = field(default_factory=list)   # one AMI link per PBX (the first: ``controller``'s)
    city: CityPublisher | None = None         # several PBXs: the city's live figures
    line_watches: list[LineWatch] = field(default_factory=list)   # several PBXs: the lines of each
    blocked_each: list[BlockedAttempts] = field(default_factory=list)   # several PBXs: the refused attempts of each
    # the auditors' report: each hour summed once it is over (ivr.callback.rollup), in a child process
    report_hours: Callable[[], Awaitable[object]] | None = None
    report_hours_s: float = 300.0

    @property
    def controllers(self) -> dict[str, AmiController]:
        return {p.name: p.controller for p in self.links}


ORPHANS_EVERY_S = 5.0
ExtraParts = Callable[[str], list[Part]]


@dataclass(frozen=True, slots=True)
class AmiTarget:
    """A PBX the leader links to: where, and with which credentials."""

    pbx: str
    host: str
    port: int
    username: str
    secret: str
    is_link: bool        # the engine's own IVR_AMI_URL
    peer_address: str | None = None   # where the other PBXs reach it over IAX2 (queue/pbxs.yaml)


def ami_targets(settings: Settings, log: Log, environ: dict[str, str] | None = None) -> list[AmiTarget]:
    """The PBXs of ``queue/pbxs.yaml`` the leader can link to, the engine's
    own (``IVR_AMI_URL``) first. A PBX whose secret is not in the environment
    is left out with an error logged; the others are linked all the same."""
    env = os.environ if environ is None else environ
    cfg, error = pbx_service.configured(settings.home)
    if cfg is None:
        log.error("pbxs_file_wrong", error=error, using="IVR_AMI_URL only")
        cfg = default_pbxs()
    out: list[AmiTarget] = []
    for pbx in cfg.pbxs.values():
        if pbx.ami is None:
            if settings.ami is not None:
                a = settings.ami
                out.insert(0, AmiTarget(pbx.name, a.host, a.port, a.username, a.secret, True, pbx.peer_address))
            continue
        secret = env.get(pbx.ami.secret_env)
        if secret is None:
            log.error("pbx_secret_unset", pbx=pbx.name, secret_env=pbx.ami.secret_env,
                      message=f"PBX '{pbx.name}' 未连接：环境变量 {pbx.ami.secret_env} 未设置 — not linked: "
                              f"{pbx.ami.secret_env} (its AMI secret) is not set")
            continue
        out.append(AmiTarget(pbx.name, pbx.ami.host, pbx.ami.port, pbx.ami.username, secret, False,
                             pbx.peer_address))
    return out


def build(*, settings: Settings, redis: aioredis.Redis, config: SnapshotSource, clock: Clock, log: Log,
          token: str) -> LeaderWork:
    snap = config.current
    targets = ami_targets(settings, log)
    several = len(targets) > 1
    wrapup = asterisk_wrapup_times(settings.home / "asterisk")

    def pbx_lines(t: AmiTarget | None) -> PbxLines | None:
        lines_cfg = config.current.lines
        if lines_cfg is None:
            return None
        if t is None or not several:
            return lines_cfg.for_link()          # one PBX: as it always was
        return lines_cfg.pbxs.get(t.pbx) or (lines_cfg.for_link() if t.is_link else None)

    links: list[PbxLink] = []
    for t in targets:
        m = LiveModel(emergency_queues=snap.emergency_queues,
                      reserved_interfaces=snap.seats.reserved if snap.seats else (), wrapup_s=wrapup)
        m.lines_config = pbx_lines(t)
        links.append(PbxLink(t.pbx, AmiController(
            host=t.host, port=t.port, username=t.username, secret=t.secret, model=m,
            redis=None if several else redis, log=log.bind(part="ami", pbx=t.pbx) if several else log.bind(part="ami"),
            clock=clock.now, publish_s=paced(clock, PUBLISH_S)), peer_address=t.peer_address))
    if links:
        controller: AmiController | None = links[0].controller
        model = links[0].controller.model
    else:
        controller = None
        model = LiveModel(emergency_queues=snap.emergency_queues,
                          reserved_interfaces=snap.seats.reserved if snap.seats else (), wrapup_s=wrapup)
        model.lines_config = pbx_lines(None)
    city = CityPublisher(links, redis=redis, clock=clock.now, log=log.bind(part="live"),
                         link=next((t.pbx for t in targets if t.is_link), None),
                         publish_s=paced(clock, PUBLISH_S)) if several else None
    line_watches = [LineWatch(p.controller, now=clock.now, log=log.bind(part="lines", pbx=p.name),
                              every_s=paced(clock, LINES_EVERY_S),
                              config=lambda t=t: pbx_lines(t))     # type: ignore[misc]
                    for p, t in zip(links, targets, strict=True)] if several else []
    supervisor = ContingencySupervisor(
        plan=snap.plan, seats=snap.seats, queues=snap.queues.asterisk_names, store=ContingencyStore(redis),
        controller=controller, model=model, log=log.bind(part="contingency"),
        pbxs={p.name: p.controller for p in links} if several else None, seat_pbx=_seat_pbx(settings))
    store = CallbackStore(redis)
    general = snap.queues.asterisk_names.get("general", "")
    capture = MissedCallCapture(redis, store, snap.policy, settings.timezone, log.bind(part="capture"),
                                consumer=token,
                                estimated_wait=lambda: _estimated_wait(links, model, general, clock.now()))
    scheduler = reconciler = in_queue = lines = blocked = followups = None
    blocked_each: list[BlockedAttempts] = []
    if controller is not None:
        if not several:       # several PBXs: ``line_watches``, one each
            lines = LineWatch(controller, now=clock.now, log=log.bind(part="lines"), every_s=paced(clock, LINES_EVERY_S),
                              config=lambda: config.current.lines.for_link() if config.current.lines else None)
        if several:           # each PBX's refused attempts, from its own AstDB
            blocked_each = [BlockedAttempts(redis, p.controller, clock=clock, log=log.bind(part="blocked", pbx=p.name),
                                            pbx=p.name) for p in links]
            for p, b in zip(links, blocked_each, strict=True):
                p.controller.listeners.append(b.on_event)
        else:
            blocked = BlockedAttempts(redis, controller, clock=clock, log=log.bind(part="blocked"),
                                      pbx=model.lines_config.name if model.lines_config else LINK_PBX)
            controller.listeners.append(blocked.on_event)
        # a callback to an idle seat on any PBX, originated on the seat's own PBX
        scheduler = CallbackScheduler(store=store, controller=controller, policy=snap.policy, tz=settings.timezone,
                                      queues=snap.queues.asterisk_names, log=log.bind(part="callbacks"),
                                      owner=token, clock=clock.now,
                                      pbxs={p.name: p.controller for p in links} if several else None)
        followups = FollowupCaller(store=FollowupStore(redis), controller=controller, policy=snap.policy,
                                   tz=settings.timezone, queues=snap.queues.asterisk_names,
                                   log=log.bind(part="followups"), owner=token, clock=clock.now,
                                   pbxs={p.name: p.controller for p in links} if several else None)
        reconciler = QueueReconciler(redis, clock=clock, emergency_queues=snap.emergency_queues,
                                     log=log.bind(part="reconcile"), waiting=lambda: waiting_callers(links),
                                     blind=out_of_sync(links) if several else None)
        for p in links:       # callers leaving a queue on any PBX; each PBX's systemname
            p.controller.listeners.append(reconciler.on_event)
            p.controller.listeners.append(p.on_event)
        if snap.policy.in_queue_digit:
            offers = [InQueueOffer(p.controller, digit=snap.policy.in_queue_digit, log=log.bind(part="callbacks"),
                                   emergency_queues=snap.emergency_queues) for p in links]
            in_queue = offers[0]
    pbx_record, pbx_records_each = _pbx_records(settings, redis, store, model, clock, log, config)
    # the audit chains' heads, signed, in a file outside Redis (docs/security.md)
    checkpointer = Checkpointer(redis, log=log.bind(part="audit"), clock=clock.now)
    return LeaderWork(model, controller, supervisor, capture, reconciler, scheduler, in_queue, checkpointer,
                      settings.audit_checkpoint_s, lines=lines, blocked=blocked, pbx_record=pbx_record,
                      report_hours=_report_hours(settings, redis, clock, log.bind(part="report_hours")),
                      report_hours_s=settings.report_hours_s,
                      pbx_records_each=pbx_records_each,
                      followups=followups, links=links, city=city, line_watches=line_watches,
                      blocked_each=blocked_each)


def _pbx_records(settings: Settings, redis: aioredis.Redis, store: CallbackStore, model: LiveModel, clock: Clock,
                 log: Log, config: SnapshotSource) -> tuple[PbxRecord | None, list[PbxRecord]]:
    """Each PBX's queue_log reader: the engine's own PBX's, then the others'."""
    # each PBX's own record (docs/pbx-record.md): read where the file is, AMI or not; the
    # engine's own PBX's from IVR_QUEUE_LOG, or queue/pbxs.yaml's queue_log like every other PBX's
    pbx_entries = _pbx_config(settings)
    link_pbx = next((p.name for p in pbx_entries if p.is_link),
                    model.lines_config.name if model.lines_config else LINK_PBX)
    paths = {p.name: Path(p.queue_log) for p in pbx_entries if p.queue_log is not None}
    if settings.queue_log is not None:
        paths[link_pbx] = settings.queue_log
    for name, path in list(paths.items()):
        other = next((n for n, q in paths.items() if n != name and q == path), None)
        if other is not None and name != link_pbx:      # IVR_QUEUE_LOG is the file of another PBX's queue_log
            log.error("queue_log_shared", pbx=name, with_pbx=other, path=str(path))
            del paths[name]
    records = {name: PbxRecord(redis, store, pbx=name, path=path, clock=clock,
                               log=log.bind(part="pbx_record", pbx=name),
                               emergency_queues=lambda: config.current.emergency_queues)
               for name, path in paths.items()}
    pbx_record = records.pop(link_pbx, None)
    return pbx_record, list(records.values())


def _pbx_config(settings: Settings) -> list[Pbx]:
    cfg, _ = pbx_service.configured(settings.home)
    return list(cfg.pbxs.values()) if cfg is not None else []


def _seat_pbx(settings: Settings) -> Callable[[str], str | None]:
    """A seat's PBX as queue/pbxs.yaml names it (None: not named there)."""
    cfg, _ = pbx_service.configured(settings.home)
    return cfg.pbx_of_seat if cfg is not None else (lambda interface: None)


def _estimated_wait(links: list[PbxLink], model: LiveModel, queue: str, now: float) -> float:
    """What a missed caller was likely to wait: the longest of the PBXs whose link is up."""
    up = [p.controller.model for p in links if p.connected] if len(links) > 1 else [model]
    return max((m.estimated_wait(queue, now) for m in up), default=0.0)


def _ami_part(controller: AmiController) -> Callable[[], Awaitable[None]]:
    async def ami_link() -> None:
        await controller.start()
        try:
            await asyncio.Event().wait()        # the link reconnects by itself; runs until the term ends
        finally:
            await controller.stop()
    return ami_link


def parts(work: LeaderWork, config: SnapshotSource, clock: Clock) -> list[Part]:
    """The supervised parts; each round takes the snapshot in force."""

    async def contingency_round() -> None:
        snap = config.current
        work.supervisor.plan, work.supervisor.seats = snap.plan, snap.seats
        work.supervisor.queues = snap.queues.asterisk_names
        await work.supervisor.tick(clock.now())

    async def capture_loop() -> None:
        await work.capture.ensure_group()
        last_orphans = 0.0
        while not cancelling():
            work.capture.policy = config.current.policy
            if time.monotonic() - last_orphans >= ORPHANS_EVERY_S:     # a dead leader's unacknowledged batch
                last_orphans = time.monotonic()
                await work.capture.claim_orphans(clock.now())
            if not await work.capture.run_once(count=2000, block_ms=500, now=clock.now()):
                await asyncio.sleep(0.05)

    out = [Part("contingency", every(ROUND_S, contingency_round)), Part("capture", capture_loop)]
    several = len(work.links) > 1
    for i, link in enumerate(work.links):
        out.insert(i, Part(f"ami-{link.name}" if several else "ami", _ami_part(link.controller)))
    if work.city is not None:
        out.insert(len(work.links), Part("live", work.city.run))
    out += [Part(f"lines-{p.name}", w.run) for p, w in zip(work.links, work.line_watches, strict=False)]
    out += [Part(f"blocked-{b.pbx}", b.run) for b in work.blocked_each]
    if work.scheduler is not None:
        scheduler = work.scheduler

        async def callback_round() -> None:
            snap = config.current
            scheduler.policy, scheduler.queues = snap.policy, snap.queues.asterisk_names
            await scheduler.tick()
        out.append(Part("callbacks", every(ROUND_S, callback_round)))
    if work.followups is not None:
        caller = work.followups

        async def followup_round() -> None:
            snap = config.current
            caller.policy, caller.queues = snap.policy, snap.queues.asterisk_names
            await caller.tick()
        out.append(Part("followups", every(ROUND_S, followup_round)))
    loops = (("reconcile", work.reconciler), ("lines", work.lines), ("blocked", work.blocked),
             ("pbx_record", work.pbx_record))
    out += [Part(name, part.run) for name, part in loops if part is not None]
    out += [Part(f"pbx_record:{r.pbx}", r.run) for r in work.pbx_records_each]
    out.append(Part("audit_checkpoint", every(work.checkpoint_s, work.checkpointer.checkpoint)))
    return out + _report_hours_part(work) + work.extra


def _report_hours_part(work: LeaderWork) -> list[Part]:
    if work.report_hours is None:
        return []
    hours, period_s = work.report_hours, work.report_hours_s

    async def report_hours_loop() -> None:
        while not cancelling():
            await asyncio.sleep(period_s)       # first after a while: a short term sums nothing
            await hours()
    return [Part("report_hours", report_hours_loop)]


def _report_hours(settings: Settings, redis: aioredis.Redis, clock: Clock,
                  log: Log) -> Callable[[], Awaitable[None]] | None:
    """The auditors' report's hours that are over, summed in a child (``ivr.callback.rollup``)."""
    if settings.report_hours_s <= 0:
        return None
    tz_name = str(getattr(settings.timezone, "key", "UTC"))

    async def report_hours() -> None:
        done = await seal_in_child(redis, tz_name, clock.now())
        if any(done.values()):
            log.info("report_hours_summed", **done)
    return report_hours


async def cleanup(work: LeaderWork) -> None:
    if work.scheduler is not None:
        await work.scheduler.close()      # outcomes of callbacks under way reach Redis first
    if work.followups is not None:
        await work.followups.close()


Cleanup = Callable[[], Awaitable[None]]
