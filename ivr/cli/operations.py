"""Operations staff's commands: ``ivr flows check|publish|history|rollback``
and ``ivr prompts draft``."""

from __future__ import annotations

import sys
from pathlib import Path

from ivr.cli.common import audited, local_iso, run_with_redis, who
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
    todo = flow_service.publishable(settings.home, args.names)
    for p in todo.problems:
        print(p)
    todo.require_valid()

    async def go(redis):
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
