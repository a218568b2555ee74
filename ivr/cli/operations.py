"""Operations staff's commands: ``ivr flows check|publish|history|rollback``
and ``ivr prompts draft|push|sync|status|forget``."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from ivr.cli.common import audited, fmt_time, local_iso, run_with_redis, who
from ivr.errors import FlowNotFound
from ivr.services import flows as flow_service
from ivr.services import prompts as prompt_service
from ivr.settings import Settings


def cmd_flows_check(args, settings: Settings) -> int:
    paths = [Path(p) for p in args.files] or None
    res = flow_service.check_project(settings.home, settings.timezone, paths)
    for p in res.problems:
        print(p)
    errors, warnings = len(res.errors), len(res.problems) - len(res.errors)
    print(f"检查了 {res.checked} 个流程文件：{errors} 个错误，{warnings} 个警告 — "
          f"{res.checked} flow file(s) checked: {errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return 1 if errors else 0


def cmd_flows_publish(args, settings: Settings) -> int:
    async def go(redis):
        # checked against what every known PBX holds, so read from Redis first
        todo = await flow_service.publishable_now(redis, settings.home, args.names)
        for p in todo.problems:
            print(p)
        todo.require_valid()
        for n in todo.names:
            res = await flow_service.publish(redis, n, todo.flows[n].source, by=who(), note=args.note or "")
            state = "已发布为 published as" if res.changed else "未改动，仍为 unchanged, still"
            print(f"{n}: {state} v{res.version}")
    run_with_redis(settings, go)
    return 0


def cmd_flows_history(args, settings: Settings) -> int:
    async def go(redis):
        current, entries = await flow_service.history(redis, args.name)
        if current is None:
            raise FlowNotFound(f"流程 '{args.name}' 从未发布 — flow '{args.name}' has never been published")
        print(f"{args.name}: 在用 v{current} in force")
        actions = {"publish": "发布 publish", "rollback": "回滚 rollback"}
        for e in entries:
            frm = f"（自 from v{e['from_version']}）" if e.get("from_version") else ""
            note = f"  — {e['note']}" if e.get("note") else ""
            print(f"  {local_iso(e['at'], settings.timezone)}  {actions.get(e['action'], e['action'])} "
                  f"v{e['version']}{frm}  {e['by']}{note}")
    run_with_redis(settings, go)
    return 0


def cmd_flows_rollback(args, settings: Settings) -> int:
    async def go(redis):
        fv = await flow_service.rollback(redis, settings.home, args.name, args.version, by=who(),
                                         note=args.note or "")
        print(f"{args.name}: 在用 v{fv.version} in force")
    run_with_redis(settings, go)
    return 0


def cmd_prompts_draft(args, settings: Settings) -> int:
    for name, text in prompt_service.texts_to_draft(settings.home, args.name, args.text).items():
        seconds = prompt_service.speak(settings.home, name, text)
        print(f"prompts/{name}.wav: {seconds:.1f} s")
    return 0


def cmd_prompts_push(args, settings: Settings) -> int:
    async def go(redis):
        res = await prompt_service.push(redis, settings.home, by=who(), only=args.names or None)
        for v in res.versions:
            if v.changed or args.names:
                state = "新版本 new version" if v.changed else "未改动 unchanged"
                print(f"{v.name}: {state} v{v.version} ({v.sha256[:12]})")
        for why in res.skipped:
            print(f"未上传 not pushed: {why}", file=sys.stderr)
        changed = sum(v.changed for v in res.versions)
        print(f"共享存储中 {len(res.versions)} 个录音，其中 {changed} 个为新版本 — {len(res.versions)} prompt(s) in "
              f"the shared store, {changed} new version(s)", file=sys.stderr)
        return 1 if res.skipped else 0
    return run_with_redis(settings, go)


def cmd_prompts_sync(args, settings: Settings) -> int:
    from ivr import logs
    from ivr.runtime import prompt_sync

    messages = Path(args.messages_dir) if args.messages_dir else Path(settings.recordings_dir)

    async def go(redis):
        sync = prompt_sync.build(redis, pbx=args.pbx, sounds_dir=Path(args.sounds_dir).resolve(),
                                 messages_dir=None if args.no_messages else messages.resolve(),
                                 log=logs.get("ivr.prompt_sync"), keep_s=args.keep_days * 86400)
        if args.every is not None:
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)   # systemd's stop
            await prompt_sync.loop(sync, every_s=max(args.every, 1.0), stop=stop)
            return 0
        res = await sync.once()
        if res.skipped:
            print("另一个同步正在使用该目录 — another sync holds this folder", file=sys.stderr)
            return 1
        print(f"{res.pbx}: 持有 {res.held} 个录音，写入 {len(res.written)} 个，上传留言 {len(res.messages_sent)} 条 — "
              f"holds {res.held} prompt(s), wrote {len(res.written)}, sent {len(res.messages_sent)} voice message(s)")
        for e in res.errors:
            print(f"  {e}", file=sys.stderr)
        return 1 if res.missing else 0
    return run_with_redis(settings, go)


def cmd_prompts_status(args, settings: Settings) -> int:
    async def go(redis):
        rows = await prompt_service.pbx_status(redis)
        if not rows:
            print("还没有交换机同步过录音：发布流程时不检查交换机 — no PBX has synced prompts yet: publishing "
                  "checks no PBX")
            return 0
        for r in rows:
            lacking = f"，缺 lacks {len(r['lacking'])}: {', '.join(r['lacking'][:8])}" if r["lacking"] else ""
            print(f"{r['pbx']}（{r['host']}）: 持有 holds {r['prompts']}{lacking}；上次同步 last sync "
                  f"{fmt_time(r['at'], settings.timezone)}")
        return 1 if any(r["lacking"] for r in rows) else 0
    return run_with_redis(settings, go)


def cmd_prompts_forget(args, settings: Settings) -> int:
    async def go(redis):
        await prompt_service.forget_pbx(redis, args.pbx, by=who())
        print(f"{args.pbx}: 已移除，发布流程时不再检查 — forgotten: publishing no longer checks it")
    run_with_redis(settings, go)
    return 0


def add_commands(sub) -> None:
    flows = sub.add_parser("flows", help="check, publish and roll back call flows").add_subparsers(dest="sub", required=True)
    c = flows.add_parser("check", help="validate flows; every error at once, file:line:col")
    c.add_argument("files", nargs="*")
    c.set_defaults(fn=cmd_flows_check)
    pub = flows.add_parser("publish", help="validate and publish flows (all by default)")
    pub.add_argument("names", nargs="*")
    pub.add_argument("--note", default="")
    audited(pub).set_defaults(fn=cmd_flows_publish)
    h = flows.add_parser("history", help="publishes and rollbacks of one flow")
    h.add_argument("name")
    h.set_defaults(fn=cmd_flows_history)
    rb = flows.add_parser("rollback", help="put an earlier version back in force (default: the previous one)")
    rb.add_argument("name")
    rb.add_argument("version", nargs="?", type=int)
    rb.add_argument("--note", default="")
    audited(rb).set_defaults(fn=cmd_flows_rollback)

    pr = sub.add_parser("prompts", help="prompt tools").add_subparsers(dest="sub", required=True)
    dr = pr.add_parser("draft", help="speak prompts/texts.yaml (or TEXT) into prompts/NAME.wav with espeak-ng")
    dr.add_argument("name", nargs="?")
    dr.add_argument("text", nargs="?")
    dr.set_defaults(fn=cmd_prompts_draft)
    pu = pr.add_parser("push", help="the WAV files of prompts/ (all, or NAMEs) as versions in the shared store")
    pu.add_argument("names", nargs="*")
    audited(pu).set_defaults(fn=cmd_prompts_push)
    sy = pr.add_parser("sync", help="on a PBX host: write every prompt in force into its sounds folder, report "
                                    "what it holds, send up its voice messages (docs/prompts.md)")
    sy.add_argument("--sounds-dir", required=True, help="the PBX's sounds folder for prompts "
                                                        "(e.g. /var/lib/asterisk/sounds/12345)")
    sy.add_argument("--pbx", required=True, help="this PBX's name (as in queue/lines.yaml)")
    sy.add_argument("--messages-dir", help="where Asterisk writes voice messages (default: IVR_RECORDINGS_DIR)")
    sy.add_argument("--no-messages", action="store_true", help="do not send up voice messages")
    sy.add_argument("--keep-days", type=float, default=7.0, help="how long Redis keeps a voice message (default 7)")
    sy.add_argument("--every", type=float, metavar="SECONDS", help="run until stopped, a pass every SECONDS")
    sy.set_defaults(fn=cmd_prompts_sync)
    st = pr.add_parser("status", help="each PBX that has synced: when, and the prompts in force it lacks")
    st.set_defaults(fn=cmd_prompts_status)
    fg = pr.add_parser("forget", help="a PBX taken out of service: publishing no longer waits for it")
    fg.add_argument("pbx")
    audited(fg).set_defaults(fn=cmd_prompts_forget)
