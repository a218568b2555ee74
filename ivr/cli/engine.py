"""Commands for whoever runs the engine: ``ivr serve``, ``ivr console`` (the
console on a host of its own), ``ivr config``, ``ivr status`` (live queues,
seats, lines, the level, the leader) and ``ivr agi``."""

from __future__ import annotations

import dataclasses

from ivr.cli.common import fmt_time, level_line, run, run_with_redis
from ivr.settings import SETTINGS_HELP, Settings, shown


def cmd_serve(args, settings: Settings) -> int:
    from ivr.runtime.engine import serve

    if args.no_console:
        settings = dataclasses.replace(settings, console=False)
    run(serve(settings))
    return 0


def cmd_console(args, settings: Settings) -> int:
    from ivr.runtime.console import run_standalone

    run_standalone(settings)      # does not return: this process becomes the console


def cmd_config(args, settings: Settings) -> int:
    for name, (_, help_text) in SETTINGS_HELP.items():
        print(f"{name}\n    {help_text}")
    print("\nIn force:")
    for name, value in shown(settings):           # passwords and secrets masked
        print(f"  {name} = {value}")
    for line in run(pbx_lines(settings)):
        print(line)
    return 0


async def pbx_lines(settings: Settings, environ: dict[str, str] | None = None) -> list[str]:
    """The PBXs of queue/pbxs.yaml as this host sees them: address, whether the
    engine links to it, its secret's variable set or not, its AMI port
    reachable or not (a TCP connection, no login)."""
    import os

    from ivr.services import pbxs

    env = os.environ if environ is None else environ
    cfg, error = pbxs.configured(settings.home)
    out = ["", "PBX (queue/pbxs.yaml):"]
    if cfg is None:
        return [*out, f"  配置错误 config error: {error}"]
    reach = await pbxs.probe(cfg, settings)
    for pbx in cfg.pbxs.values():
        if pbx.ami is None:
            link = f"引擎的 AMI 连接 the engine's link ({settings.ami or '未配置 unset'})"
        else:
            if env.get(pbx.ami.secret_env):
                link = (f"{pbx.ami}, 密钥 secret {pbx.ami.secret_env} 已设置 set; 领导进程连接此 PBX — the leader "
                        "links to it (its state: ivr status, /healthz)")
            else:
                link = (f"{pbx.ami}, 密钥 secret {pbx.ami.secret_env} 未设置 NOT set; "
                        f"{pbxs.STATE_TEXT[pbxs.NOT_LINKED]}")
        state = "可连接 reachable" if not reach[pbx.name] else reach[pbx.name]
        out.append(f"  {pbx.name}: {link}")
        out.append(f"    AMI: {state}; 队列 queues: {', '.join(pbx.queues) or '全部 all'}; 坐席 seats: {len(pbx.seats)}")
        if pbx.peer_address is not None:
            out.append(f"    中继 trunk (IAX2) {pbx.peer_address}: 他台紧急来电可转入 emergency callers may be moved here "
                       "(IVR_PEER_SECRET 由领导进程登录时核对 checked by the leader at login; /healthz)")
    return out


def cmd_agi(args, settings: Settings) -> int:
    from ivr.agi.classic import main as classic_main

    return classic_main([args.flow])


def lines_line(ln: dict, blocked: int | None = None) -> str:
    """The trunk lines (``ivr.services.status.lines``), as staff read them."""
    busy = "" if blocked is None else f"; 线路忙已记录 blocked and recorded {blocked}"
    if not ln["known"]:
        return (f"线路 lines ({ln['pbx']}): 未知 unknown — {ln['reason']}; 不按线路准入 no line-based admission "
                f"(today's behaviour){busy}")
    limit = f", 拨号方案上限 IVR_LINES {ln['limit']}" if ln["limit"] else ""
    out = (f"线路 lines ({ln['pbx']}): 在用 in use {ln['in_use']} / 共 {ln['total']}{limit}; 空闲 free {ln['free']} "
           f"(紧急预留 reserve {ln['emergency_reserve']}, 回拨提议 offer callback below {ln['callback_below_free']}); "
           f"流程中 in flows {ln['in_flows']}, 排队 waiting {ln['waiting']}, 通话 talking {ln['talking']}, "
           f"回拨 callbacks {ln['callbacks']}{busy}")
    return out + (f"\n  警告 warning: {ln['warning']}" if ln["warning"] else "")


SEAT_KEYS = ("busy", "wrapup", "idle", "paused", "reserved", "offline")


def seats_line(st: dict) -> str:
    """The seat partition (``ivr.ami.model._seat_part``), as on the wall."""
    on = sum(int(st.get(k, 0)) for k in SEAT_KEYS if k != "offline")
    return (f"坐席 seats: 在岗 on shift {on} = 通话 talking {st.get('busy', 0)} + 话后整理 wrap-up "
            f"{st.get('wrapup', 0)} + 空闲 idle {st.get('idle', 0)} + 暂停 paused {st.get('paused', 0)} + "
            f"紧急预留 reserved {st.get('reserved', 0)}; 离线 offline {st.get('offline', 0)}")


def callbacks_line(counts: dict[str, int], oldest_s: float | None) -> str:
    """The open callbacks and the oldest one's age (from its first call, in any
    state: waiting, being dialled, waiting for its next attempt), as on the wall."""
    if oldest_s is None:
        oldest = "无 none"
    elif oldest_s < 3600:
        oldest = f"{oldest_s / 60:.0f} 分钟 min"
    else:
        oldest = f"{oldest_s / 3600:.1f} 小时 h"
    return (f"待回拨 open callbacks {counts['open']} (待拨 pending {counts['pending']}, 就绪 ready {counts['ready']}, "
            f"拨打中 dialling {counts['assigned']}); 最久待回拨 oldest {oldest}")


def render_status(snap: dict | None, level_line: str, tz, now: float, blocked: int | None = None) -> list[str]:
    from ivr.services.status import lines

    out = [f"应急级别 contingency level: {level_line}"]
    if snap is None:
        out.append("实时数据 live figures: none — no engine holds an AMI link (is IVR_AMI_URL set?)")
        out.append(lines_line(lines(snap), blocked))
        return out
    age = now - snap["at"]
    per_pbx = snap.get("pbxs") or {}
    down = [name for name, p in per_pbx.items() if not p.get("connected")]
    if per_pbx and down and len(down) < len(per_pbx):
        link = f"部分连接 {len(per_pbx) - len(down)}/{len(per_pbx)} connected, 未连接 DOWN: {', '.join(down)}"
    else:
        link = "已连接 connected" if snap.get("ami_connected") else "未连接 NOT connected"
    out.append(f"AMI: {link}; figures {age:.1f} s old; last full resync {fmt_time(snap.get('resynced_at'), tz)}")
    out += pbx_status_lines(per_pbx)
    out.append(lines_line(lines(snap), blocked))
    out.append(seats_line(snap.get("seat_states", {})))
    mins = f"{snap['window_s'] / 60:.0f}"
    out.append(f"{'队列 queue':<16}{'等待(当前)':>8}{'紧急':>6}{'最长等待s':>10}{'预计等待s':>10}{f'接通(近{mins}分)':>10}"
               f"{f'放弃(近{mins}分)':>10}{'放弃率':>8}{'服务水平':>9}  座席 busy/wrapup/idle/paused/reserved/offline")
    for name, q in snap["queues"].items():
        s = q["seats"]
        sl = "-" if q["service_level"] is None else f"{q['service_level']:.0%}"
        out.append(f"{name:<16}{q['waiting']:>12}{q['emergency_waiting']:>6}{q['longest_wait_s']:>10.0f}"
                   f"{q['estimated_wait_s']:>10.0f}{q['answered']:>13}{q['abandoned']:>13}{q['abandon_rate']:>8.0%}"
                   f"{sl:>9}  " + "/".join(str(s.get(k, 0)) for k in SEAT_KEYS))
    out.append(f"  接通、放弃、放弃率、服务水平：近{mins}分钟 — answered, abandoned and the rates: the last {mins} min; "
               "等待：当前 — waiting: now")
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
               f"({od['answered']} answered in {snap['window_s'] / 60:.0f} min)")
    return out


def pbx_status_lines(per_pbx: dict) -> list[str]:
    """Several PBXs: one line each (the figures above are the city's, summed over the PBXs connected)."""
    out = []
    for name, p in per_pbx.items():
        state = "已连接 connected" if p.get("connected") else "未连接 DOWN (figures below leave it out)"
        seats = p.get("seat_states", {})
        out.append(f"  PBX {name}: {state}; 等待 waiting {p.get('waiting', 0)} (紧急 emergency "
                   f"{p.get('emergency_waiting', 0)}); 座席 seats " + "/".join(str(seats.get(k, 0)) for k in SEAT_KEYS)
                   + " busy/wrapup/idle/paused/reserved/offline")
    return out


def leader_line(h: dict | None) -> str:
    """The leader role and its parts, from what the leader publishes each second."""
    if not h:
        return "领导进程 leader: 无 (none: no engine holds the leader role — AMI link, capture and callbacks stopped)"
    parts = []
    for name, p in h.get("parts", {}).items():
        state = {"running": "运行", "restarting": "重启中", "stopped": "已停"}.get(p["state"], p["state"])
        extra = f", {p['restarts']} 次重启 restarts: {p['last_error']}" if p.get("restarts") else ""
        parts.append(f"{name} {state} {p['state']}{extra}")
    return f"领导进程 leader: {h.get('token', '?')}; 各部分 parts: " + "; ".join(parts)


def cmd_status(args, settings: Settings) -> int:
    from ivr.runtime.status import engine_lines
    from ivr.services import callbacks as callback_service
    from ivr.services import contingency
    from ivr.services import status as status_service

    async def go(redis):
        clock = await status_service.engine_clock(redis)     # the engines' (a drill's simulated one), as the wall
        plan = await contingency.plan(redis, settings.home, settings.timezone, clock.now())
        snap = await status_service.live(redis)
        st = (await contingency.overview(redis)).state
        blocked = await status_service.lines_blocked(redis, status_service.lines(snap)["pbx"])
        for line in render_status(snap, level_line(plan, st.level), settings.timezone, clock.now(), blocked):
            print(line)
        print(callbacks_line(await callback_service.counts(redis),
                             await callback_service.oldest_open_age(redis, clock.now())))
        print(leader_line(await status_service.leader_health(redis)))
        for line in engine_lines(await status_service.engines(redis)):
            print(line)
    run_with_redis(settings, go)
    return 0


def add_commands(sub) -> None:
    s = sub.add_parser("serve", help="run the engine (FastAGI server) in the foreground")
    s.add_argument("--no-console", action="store_true",
                   help="no console beside the engine (as IVR_CONSOLE=no): `ivr console` serves it from another host")
    s.set_defaults(fn=cmd_serve)
    sub.add_parser("console", help="the console and HTTP API on a host of its own, for every engine sharing "
                                   "IVR_REDIS_URL (start the engines with --no-console)").set_defaults(fn=cmd_console)
    sub.add_parser("config", help="list the settings and what is in force").set_defaults(fn=cmd_config)
    sub.add_parser("status", help="live queues, seats, trunk lines and the contingency level").set_defaults(
        fn=cmd_status)
    a = sub.add_parser("agi", help="classic AGI over stdin/stdout (same as ivr-agi FLOW)")
    a.add_argument("flow")
    a.set_defaults(fn=cmd_agi)
