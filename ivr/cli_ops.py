"""Seat managers' commands: ``ivr status``, ``ivr contingency ...``, ``ivr queue promote``.

What staff read is in Simplified Chinese first, English after."""

from __future__ import annotations

import json

import datetime as dt
import time

from ivr import redis_keys as keys
from ivr.errors import ConfigError, IvrError
from ivr.settings import Settings


def _fmt_time(ts: float | None, tz) -> str:
    return dt.datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _ops(settings: Settings):
    from ivr.project import Project, require_operations

    return require_operations(Project(settings.home), settings.timezone)


def _level_line(plan, level: int) -> str:
    lv = plan.level(level)
    return f"{level} {lv.name}" + (f" ({lv.name_en})" if lv.name_en else "")


def cmd_contingency_show(args, settings: Settings) -> int:
    from ivr.cli import _run, _with_redis
    from ivr.contingency.store import ContingencyStore

    plan = _ops(settings).plan
    tz = settings.timezone

    async def go(redis):
        store = ContingencyStore(redis)
        st, prop, applied = await store.state(), await store.proposal(), await store.applied()
        lv = plan.level(st.level)
        print(f"应急级别 level in force: {_level_line(plan, st.level)}")
        print(f"  设置人 set by: {st.by} ({st.how}) at {_fmt_time(st.since or None, tz)}")
        print(f"  原因 reason: {st.reason or '-'}")
        print(f"  到期 expires: {_fmt_time(st.expires_at, tz)}")
        print(f"  播报 announcements: {lv.announcements or '无 none'}; 回拨 callback: {lv.callback}; "
              f"精简菜单 short menu: {'是 yes' if lv.short_menu else '否 no'}; hold music: {lv.hold_music or 'default'}")
        print(f"  座席动作 seat actions: level {applied.level} applied at {_fmt_time(applied.at or None, tz)}"
              + (f", {len(applied.failed)} FAILED (retried every 30 s)" if applied.failed else ""))
        for f in applied.failed:
            print(f"    失败 failed: {f['action']} {f['interface']} {f.get('queue') or ''}")
        if prop is not None:
            print(f"自动建议 proposal: {_level_line(plan, prop.level)} — {prop.reason} "
                  f"(at {_fmt_time(prop.at, tz)}; ivr contingency accept | reject)")
        print(f"模式 mode: {plan.mode}; levels: " + ", ".join(_level_line(plan, lv.level) for lv in plan.levels))
    _run(_with_redis(settings, go))
    return 0


def cmd_contingency_set(args, settings: Settings) -> int:
    from ivr.cli import _run, _who, _with_redis
    from ivr.contingency.store import ContingencyStore
    from ivr.contingency.supervisor import expiry_for

    plan = _ops(settings).plan
    if not 0 <= args.level <= plan.top:
        raise ConfigError(f"没有级别 {args.level}：预案只有 0..{plan.top} 级 — level {args.level} does not exist: "
                          f"queue/contingency.yaml has levels 0..{plan.top}")
    if not args.reason.strip():
        raise ConfigError("请用 --reason 写明原因：审计日志要记录为什么切换级别 — --reason is required: the audit log "
                          "says why the level changed")

    async def go(redis):
        now = time.time()
        exp = None if args.no_expiry else expiry_for(plan, args.level, now, args.expires_in)
        st = await ContingencyStore(redis).set_level(args.level, by=_who(), reason=args.reason, how="manual",
                                                     expires_at=exp, now=now)
        print(f"应急级别已切换 level set: {_level_line(plan, st.level)}; expires {_fmt_time(st.expires_at, settings.timezone)}")
        print("各引擎进程一秒内生效，坐席调整经 AMI 执行 — every engine process applies it within a second; "
          "seat actions run over AMI")
    _run(_with_redis(settings, go))
    return 0


def cmd_contingency_renew(args, settings: Settings) -> int:
    from ivr.cli import _run, _who, _with_redis
    from ivr.contingency.store import ContingencyStore
    from ivr.contingency.supervisor import expiry_for

    plan = _ops(settings).plan

    async def go(redis):
        store = ContingencyStore(redis)
        st = await store.state()
        exp = expiry_for(plan, st.level, time.time(), args.hours)
        await store.renew(exp, by=_who())
        print(f"级别 {st.level} 已续期至 {_fmt_time(exp, settings.timezone)} — level {st.level} renewed")
    _run(_with_redis(settings, go))
    return 0


def cmd_contingency_accept(args, settings: Settings) -> int:
    from ivr.cli import _run, _who, _with_redis
    from ivr.contingency.store import ContingencyStore
    from ivr.contingency.supervisor import expiry_for

    plan = _ops(settings).plan

    async def go(redis):
        store = ContingencyStore(redis)
        p = await store.proposal()
        if p is None:
            raise IvrError("没有待接受的自动建议 — there is no proposal to accept")
        now = time.time()
        await store.set_level(p.level, by=_who(), how="accepted", reason=f"accepted proposal: {p.reason}",
                              expires_at=expiry_for(plan, p.level, now), now=now)
        print(f"已接受 accepted: {_level_line(plan, p.level)}")
    _run(_with_redis(settings, go))
    return 0


def cmd_contingency_reject(args, settings: Settings) -> int:
    from ivr.cli import _run, _who, _with_redis
    from ivr.contingency.store import ContingencyStore

    async def go(redis):
        p = await ContingencyStore(redis).reject(by=_who(), reason=args.reason)
        print("没有自动建议 — no proposal" if p is None else f"已拒绝级别 {p.level} 的建议 — rejected the proposal of level {p.level}")
    _run(_with_redis(settings, go))
    return 0


def cmd_contingency_history(args, settings: Settings) -> int:
    from ivr.cli import _run, _with_redis
    from ivr.contingency.history import history_row
    from ivr.contingency.store import ContingencyStore

    async def go(redis):
        for _, e in await ContingencyStore(redis).history(args.count):
            row = history_row(e, settings.timezone)
            reason = f"  原因 {e['reason']}" if e.get("reason") else ""
            print(f"{row['time']}  {row['label']}  {row['detail']}  · {row['by_label']}{reason}")
    _run(_with_redis(settings, go))
    return 0


def render_status(snap: dict | None, level_line: str, tz, now: float) -> list[str]:
    out = [f"应急级别 contingency level: {level_line}"]
    if snap is None:
        out.append("实时数据 live figures: none — no engine holds an AMI link (is IVR_AMI_URL set?)")
        return out
    age = now - snap["at"]
    link = "已连接 connected" if snap.get("ami_connected") else "未连接 NOT connected"
    out.append(f"AMI: {link}; figures {age:.1f} s old; last full resync {_fmt_time(snap.get('resynced_at'), tz)}")
    out.append(f"{'队列 queue':<16}{'等待':>6}{'紧急':>6}{'最长等待s':>10}{'预计等待s':>10}{'接通':>6}{'放弃':>6}"
               f"{'放弃率':>8}{'服务水平':>9}  座席 idle/busy/paused/offline/reserved")
    for name, q in snap["queues"].items():
        s = q["seats"]
        sl = "-" if q["service_level"] is None else f"{q['service_level']:.0%}"
        out.append(f"{name:<16}{q['waiting']:>6}{q['emergency_waiting']:>6}{q['longest_wait_s']:>10.0f}"
                   f"{q['estimated_wait_s']:>10.0f}{q['answered']:>6}{q['abandoned']:>6}{q['abandon_rate']:>8.0%}"
                   f"{sl:>9}  {s['idle']}/{s['busy']}/{s['paused']}/{s['offline']}/{s['reserved']}")
    for name, q in snap["queues"].items():
        for c in q["callers"][:10]:
            mark = " 紧急 emergency" if c["emergency"] else ""
            out.append(f"  {name} #{c['position']:<3} {c['number']}  waited {c['wait_s']:.0f} s  "
                       f"priority {c['priority']}  id {c['uniqueid']}{mark}")
        if len(q["callers"]) > 10:
            out.append(f"  {name}: ... {len(q['callers']) - 10} more")
    em, od = snap["emergency"], snap["ordinary"]

    def p(v):
        return "-" if v is None else f"{v:.0f}"
    out.append(f"紧急来电 emergency: waiting {em['waiting']}, wait p50 {p(em['wait_p50_s'])} s, "
               f"p95 {p(em['wait_p95_s'])} s ({em['answered']} answered in {snap['window_s'] / 60:.0f} min)")
    out.append(f"普通来电 ordinary: wait p50 {p(od['wait_p50_s'])} s, p95 {p(od['wait_p95_s'])} s "
               f"({od['answered']} answered)")
    return out


def leader_line(raw: str | None) -> str:
    """The leader role and its parts, from what the leader publishes each second."""
    if not raw:
        return "领导进程 leader: 无 (none: no engine holds the leader role — AMI link, capture and callbacks stopped)"
    h = json.loads(raw)
    parts = []
    for name, p in h.get("parts", {}).items():
        state = {"running": "运行", "restarting": "重启中", "stopped": "已停"}.get(p["state"], p["state"])
        extra = f", {p['restarts']} 次重启 restarts: {p['last_error']}" if p.get("restarts") else ""
        parts.append(f"{name} {state} {p['state']}{extra}")
    return f"领导进程 leader: {h.get('token', '?')}; 各部分 parts: " + "; ".join(parts)


def cmd_status(args, settings: Settings) -> int:
    from ivr.live_store import read_live
    from ivr.cli import _run, _with_redis
    from ivr.contingency.store import ContingencyStore

    plan = _ops(settings).plan

    async def go(redis):
        snap = await read_live(redis)
        st = await ContingencyStore(redis).state()
        for line in render_status(snap, _level_line(plan, st.level), settings.timezone, time.time()):
            print(line)
        print(leader_line(await redis.get(keys.LEADER_HEALTH)))
    _run(_with_redis(settings, go))
    return 0


def cmd_queue_promote(args, settings: Settings) -> int:
    """Move a waiting caller up in place: QueueChangePriorityCaller over AMI."""
    import asyncio

    from ivr import logs
    from ivr.ami.controller import AmiController
    from ivr.live_store import read_live
    from ivr.ami.model import LiveModel
    from ivr.cli import _run, _with_redis

    if settings.ami is None:
        raise ConfigError("未设置 IVR_AMI_URL：调整排队顺序需要 AMI 连接 — IVR_AMI_URL is not set: promoting a caller "
                          "needs the AMI link")

    async def go(redis):
        snap = await read_live(redis)
        if snap is None:
            raise IvrError("没有实时数据：有连着 AMI 的引擎在运行吗？ — no live figures: is an engine with an AMI link running?")
        hits = [(q, c) for q, qs in snap["queues"].items() for c in qs["callers"]
                if c["uniqueid"] == args.caller or c["uniqueid"].endswith(args.caller)]
        if len(hits) != 1:
            raise IvrError(f"{len(hits)} 位排队来电者匹配 '{args.caller}'，请给出完整的 uniqueid — {len(hits)} waiting callers match '{args.caller}': give the full unique id "
                           "(ivr status lists them)")
        queue, caller = hits[0]
        ami = settings.ami
        ctl = AmiController(host=ami.host, port=ami.port, username=ami.username, secret=ami.secret,
                            model=LiveModel(), redis=None, log=logs.get("ivr.cli"))
        await ctl.start()
        try:
            await asyncio.wait_for(ctl.ready.wait(), 10)
            channel = next((w.channel for w in ctl.model.waiting.values() if w.uniqueid == caller["uniqueid"]), None)
            if channel is None:
                raise IvrError("来电者已离开队列 — the caller has left the queue")
            res = await ctl.change_priority(queue, channel, args.priority, caller["uniqueid"])
        finally:
            await ctl.stop()
        if not res.ok:
            raise IvrError(f"Asterisk 拒绝 — Asterisk refused: {res.message}")
        print(f"已提前 promoted: {caller['number']} in {queue} to priority {args.priority} ({res.message})")
    _run(_with_redis(settings, go))
    return 0


def add_commands(sub) -> None:
    sub.add_parser("status", help="live queues, seats and the contingency level").set_defaults(fn=cmd_status)
    c = sub.add_parser("contingency", help="the high-volume contingency plan").add_subparsers(dest="sub", required=True)
    c.add_parser("show", help="the level in force, its expiry, proposal and seat actions").set_defaults(
        fn=cmd_contingency_show)
    s = c.add_parser("set", help="switch level (0 normal ... 3 surge)")
    s.add_argument("level", type=int)
    s.add_argument("--reason", required=True)
    s.add_argument("--expires-in", type=float, default=None, metavar="HOURS",
                   help="stand down after this many hours unless renewed (default: the level's expire_after_h)")
    s.add_argument("--no-expiry", action="store_true")
    s.set_defaults(fn=cmd_contingency_set)
    r = c.add_parser("renew", help="push the expiry of the level in force")
    r.add_argument("--hours", type=float, default=None)
    r.set_defaults(fn=cmd_contingency_renew)
    c.add_parser("accept", help="accept the automatic proposal").set_defaults(fn=cmd_contingency_accept)
    rj = c.add_parser("reject", help="reject the automatic proposal")
    rj.add_argument("--reason", default="")
    rj.set_defaults(fn=cmd_contingency_reject)
    h = c.add_parser("history", help="changes, proposals and seat actions, newest first")
    h.add_argument("--count", type=int, default=20)
    h.set_defaults(fn=cmd_contingency_history)
    q = sub.add_parser("queue", help="act on waiting callers").add_subparsers(dest="sub", required=True)
    p = q.add_parser("promote", help="move a waiting caller up in place (QueueChangePriorityCaller)")
    p.add_argument("caller", help="the caller's unique id as `ivr status` shows it (or its end)")
    p.add_argument("--priority", type=int, default=10)
    p.set_defaults(fn=cmd_queue_promote)
