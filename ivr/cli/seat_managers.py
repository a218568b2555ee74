"""Seat managers' commands: ``ivr contingency ...`` (the level, its expiry,
the automatic proposal, the history) and ``ivr queue promote``.

What staff read is in Simplified Chinese first, English after."""

from __future__ import annotations

from ivr.cli.common import audited, fmt_time, level_line, run_with_redis, who
from ivr.services import contingency
from ivr.services import status as status_service
from ivr.settings import Settings


async def _now(redis) -> float:
    """The engines' clock (a drill's simulated one), as the wall and the
    supervisor stamp the level: a level set here carries the same times."""
    return (await status_service.engine_clock(redis)).now()


async def _plan(redis, settings: Settings):
    return await contingency.plan(redis, settings.home, settings.timezone, await _now(redis))


def cmd_contingency_show(args, settings: Settings) -> int:
    tz = settings.timezone

    async def go(redis):
        plan = await _plan(redis, settings)
        o = await contingency.overview(redis)
        st, prop, applied = o.state, o.proposal, o.applied
        lv = plan.level(st.level)
        print(f"应急级别 level in force: {level_line(plan, st.level)}")
        print(f"  设置人 set by: {st.by} ({st.how}) at {fmt_time(st.since or None, tz)}")
        print(f"  原因 reason: {st.reason or '-'}")
        print(f"  到期 expires: {fmt_time(st.expires_at, tz)}")
        print(f"  播报 announcements: {lv.announcements or '无 none'}; 回拨 callback: {lv.callback}; "
              f"精简菜单 short menu: {'是 yes' if lv.short_menu else '否 no'}; hold music: {lv.hold_music or 'default'}")
        print(f"  座席动作 seat actions: level {applied.level} applied at {fmt_time(applied.at or None, tz)}"
              + (f", {len(applied.failed)} FAILED (retried every 30 s)" if applied.failed else ""))
        for f in applied.failed:
            print(f"    失败 failed: {f['action']} {f['interface']} {f.get('queue') or ''}")
        if prop is not None:
            print(f"自动建议 proposal: {level_line(plan, prop.level)} — {prop.reason} "
                  f"(at {fmt_time(prop.at, tz)}; ivr contingency accept | reject)")
        print(f"模式 mode: {plan.mode}; levels: " + ", ".join(level_line(plan, lv.level) for lv in plan.levels))
    run_with_redis(settings, go)
    return 0


def cmd_contingency_set(args, settings: Settings) -> int:

    async def go(redis):
        plan = await _plan(redis, settings)
        st = await contingency.set_level(redis, plan, args.level, by=who(), reason=args.reason, now=await _now(redis),
                                         expires_in_h=args.expires_in, no_expiry=args.no_expiry)
        print(f"应急级别已切换 level set: {level_line(plan, st.level)}; expires {fmt_time(st.expires_at, settings.timezone)}")
        print("各引擎进程一秒内生效，坐席调整经 AMI 执行 — every engine process applies it within a second; "
              "seat actions run over AMI")
    run_with_redis(settings, go)
    return 0


def cmd_contingency_renew(args, settings: Settings) -> int:

    async def go(redis):
        plan = await _plan(redis, settings)
        st = await contingency.renew(redis, plan, args.hours, by=who(), now=await _now(redis))
        print(f"级别 {st.level} 已续期至 {fmt_time(st.expires_at, settings.timezone)} — level {st.level} renewed")
    run_with_redis(settings, go)
    return 0


def cmd_contingency_accept(args, settings: Settings) -> int:

    async def go(redis):
        plan = await _plan(redis, settings)
        p, _ = await contingency.accept_proposal(redis, plan, by=who(), now=await _now(redis))
        print(f"已接受 accepted: {level_line(plan, p.level)}")
    run_with_redis(settings, go)
    return 0


def cmd_contingency_reject(args, settings: Settings) -> int:
    async def go(redis):
        p = await contingency.reject_proposal(redis, by=who(), reason=args.reason)
        print(f"已拒绝级别 {p.level} 的建议 — rejected the proposal of level {p.level}")
    run_with_redis(settings, go)
    return 0


def cmd_contingency_history(args, settings: Settings) -> int:
    from ivr.contingency.history import history_row

    async def go(redis):
        for e in await contingency.history(redis, args.count):
            row = history_row(e, settings.timezone)
            reason = f"  原因 {e['reason']}" if e.get("reason") else ""
            print(f"{row['time']}  {row['label']}  {row['detail']}  · {row['by_label']}{reason}")
    run_with_redis(settings, go)
    return 0


def cmd_queue_promote(args, settings: Settings) -> int:
    """Move a waiting caller up in place: QueueChangePriorityCaller over AMI."""
    from ivr.services import queues

    async def go(redis):
        moved = await queues.promote(redis, settings.ami, args.caller, args.priority)
        print(f"已提前 promoted: {moved.number} in {moved.queue} to priority {moved.priority} ({moved.message})")
    run_with_redis(settings, go)
    return 0


def add_commands(sub) -> None:
    c = sub.add_parser("contingency", help="the high-volume contingency plan").add_subparsers(dest="sub", required=True)
    c.add_parser("show", help="the level in force, its expiry, proposal and seat actions").set_defaults(
        fn=cmd_contingency_show)
    s = c.add_parser("set", help="switch level (0 normal ... 3 surge)")
    s.add_argument("level", type=int)
    s.add_argument("--reason", required=True)
    s.add_argument("--expires-in", type=float, default=None, metavar="HOURS",
                   help="stand down after this many hours unless renewed (default: the level's expire_after_h)")
    s.add_argument("--no-expiry", action="store_true")
    audited(s).set_defaults(fn=cmd_contingency_set)
    r = c.add_parser("renew", help="push the expiry of the level in force")
    r.add_argument("--hours", type=float, default=None)
    audited(r).set_defaults(fn=cmd_contingency_renew)
    audited(c.add_parser("accept", help="accept the automatic proposal")).set_defaults(fn=cmd_contingency_accept)
    rj = c.add_parser("reject", help="reject the automatic proposal")
    rj.add_argument("--reason", default="")
    audited(rj).set_defaults(fn=cmd_contingency_reject)
    h = c.add_parser("history", help="changes, proposals and seat actions, newest first")
    h.add_argument("--count", type=int, default=20)
    h.set_defaults(fn=cmd_contingency_history)
    q = sub.add_parser("queue", help="act on waiting callers").add_subparsers(dest="sub", required=True)
    p = q.add_parser("promote", help="move a waiting caller up in place (QueueChangePriorityCaller)")
    p.add_argument("caller", help="the caller's unique id as `ivr status` shows it (or its end)")
    p.add_argument("--priority", type=int, default=10)
    p.set_defaults(fn=cmd_queue_promote)
