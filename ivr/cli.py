"""``ivr``: the engine's command line."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path

from ivr import logs
from ivr.errors import ConfigError, FlowInvalid, FlowNotFound
from ivr.settings import SETTINGS_HELP, Settings, load_settings, shown


def _who() -> str:
    return os.environ.get("IVR_USER") or f"cli:{getpass.getuser()}"


async def _with_redis(settings: Settings, fn):
    from ivr.redis_server import RedisHandle, connect

    with RedisHandle(settings.redis_url, settings.data_dir) as url:
        redis = connect(url)
        try:
            return await fn(redis)
        finally:
            await redis.aclose()


def cmd_serve(args, settings: Settings) -> int:
    from ivr.engine import serve

    _run(serve(settings))
    return 0


def cmd_config(args, settings: Settings) -> int:
    for name, (_, help_text) in SETTINGS_HELP.items():
        print(f"{name}\n    {help_text}")
    print("\nIn force:")
    for name, value in shown(settings):           # passwords and secrets masked
        print(f"  {name} = {value}")
    return 0


def cmd_flows_check(args, settings: Settings) -> int:
    import datetime as dt

    from ivr.project import Project, check_files, load_operations

    project = Project(settings.home)
    paths = [Path(p) for p in args.files] or None
    # The plan, seat groups and announcement sets are checked with the flows: a
    # flow may name an announcement set, and an expiring announcement is news.
    ops = load_operations(project, settings.timezone, dt.datetime.now(settings.timezone))
    flows, problems = check_files(project, paths, frozenset(ops.announcements))
    problems = ops.problems + problems
    for p in problems:
        print(p)
    errors = [p for p in problems if not p.warning]
    checked = len(paths) if paths else len(project.flow_files())
    warnings = len(problems) - len(errors)
    print(f"检查了 {checked} 个流程文件：{len(errors)} 个错误，{warnings} 个警告 — "
          f"{checked} flow file(s) checked: {len(errors)} error(s), {warnings} warning(s)", file=sys.stderr)
    return 1 if errors else 0


def cmd_flows_publish(args, settings: Settings) -> int:
    from ivr.flow.store import FlowStore
    from ivr.project import Project, check_files

    project = Project(settings.home)
    flows, problems = check_files(project)
    for p in problems:
        print(p)
    names = args.names or sorted(p.stem for p in project.flow_files())
    bad = [n for n in names if n not in flows]
    if bad:
        print(f"未发布 {', '.join(bad)}：请先改正上面的错误 — not published: {', '.join(bad)} "
              "(fix the errors above first)", file=sys.stderr)
        return 1

    async def go(redis):
        store = FlowStore(redis)
        for n in names:
            res = await store.publish(n, flows[n].source, by=_who(), note=args.note or "")
            state = "已发布为 published as" if res.changed else "未改动，仍为 unchanged, still"
            print(f"{n}: {state} v{res.version}")
    _run(_with_redis(settings, go))
    return 0


def cmd_flows_history(args, settings: Settings) -> int:
    from ivr.flow.store import FlowStore

    async def go(redis):
        store = FlowStore(redis)
        current = await store.current_version(args.name)
        if current is None:
            raise FlowNotFound(f"流程 '{args.name}' 从未发布 — flow '{args.name}' has never been published")
        print(f"{args.name}: 在用 v{current} in force")
        actions = {"publish": "发布 publish", "rollback": "回滚 rollback"}
        for e in await store.history(args.name):
            frm = f"（自 from v{e['from_version']}）" if e.get("from_version") else ""
            note = f"  — {e['note']}" if e.get("note") else ""
            print(f"  {_local_iso(e['at'], settings.timezone)}  {actions.get(e['action'], e['action'])} "
                  f"v{e['version']}{frm}  {e['by']}{note}")
    _run(_with_redis(settings, go))
    return 0


def cmd_flows_rollback(args, settings: Settings) -> int:
    from ivr.flow.store import FlowStore
    from ivr.project import Project, check_flow_texts

    project = Project(settings.home)

    async def go(redis):
        store = FlowStore(redis)
        target = args.version
        if target is None:
            current = await store.current_version(args.name)
            older = [v for v in await store.versions(args.name) if current and v < current]
            target = max(older) if older else None
        if target is not None:
            fv = await store.get(args.name, target)
            # The old version must still resolve: a prompt or queue may be gone since.
            _, problems = check_flow_texts({args.name: (f"{args.name}@v{target}", fv.source)},
                                           project.catalog(frozenset(await store.names())))
            errors = [p for p in problems if not p.warning]
            if errors:
                raise FlowInvalid(errors)
        v = await store.rollback(args.name, target, by=_who(), note=args.note or "")
        print(f"{args.name}: 在用 v{v} in force")
    _run(_with_redis(settings, go))
    return 0


def _local_iso(at: str, tz) -> str:
    """An ISO time (stored in UTC) in the hotline's time zone."""
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(at).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        return str(at)


def cmd_agi(args, settings: Settings) -> int:
    from ivr.agi.classic import main as classic_main

    return classic_main([args.flow])


def cmd_prompts_draft(args, settings: Settings) -> int:
    from ivr import yamlfile
    from ivr.prompts_tts import synthesize

    texts = yamlfile.load(yamlfile.read(settings.prompts_dir / "texts.yaml"), "prompts/texts.yaml") or {}
    if args.text:
        texts = {args.name: args.text}
    elif args.name:
        if args.name not in texts:
            raise ConfigError(f"prompts/texts.yaml 中没有 '{args.name}' 的文字；请直接给出：ivr prompts draft NAME TEXT — "
                              f"no text for '{args.name}' in prompts/texts.yaml; give one: ivr prompts draft NAME TEXT")
        texts = {args.name: texts[args.name]}
    for name, text in texts.items():
        seconds = synthesize(text, settings.prompts_dir / f"{name}.wav")
        print(f"prompts/{name}.wav: {seconds:.1f} s")
    return 0


def cmd_bench(args, settings: Settings) -> int:
    from ivr.bench import agi as bench_agi

    return bench_agi.main(args)


def cmd_bench_callbacks(args, settings: Settings) -> int:
    from ivr.bench import callbacks as bench_callbacks

    return bench_callbacks.main(args)


def _run(coro):
    try:
        import uvloop  # optional: halves the loop's CPU per AGI command
        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ivr", description="12345 hotline IVR and overflow-call engine")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the engine (FastAGI server) in the foreground").set_defaults(fn=cmd_serve)
    sub.add_parser("config", help="list the settings and what is in force").set_defaults(fn=cmd_config)

    flows = sub.add_parser("flows", help="check, publish and roll back call flows").add_subparsers(dest="sub", required=True)
    c = flows.add_parser("check", help="validate flows; every error at once, file:line:col")
    c.add_argument("files", nargs="*")
    c.set_defaults(fn=cmd_flows_check)
    pub = flows.add_parser("publish", help="validate and publish flows (all by default)")
    pub.add_argument("names", nargs="*")
    pub.add_argument("--note", default="")
    pub.set_defaults(fn=cmd_flows_publish)
    h = flows.add_parser("history", help="publishes and rollbacks of one flow")
    h.add_argument("name")
    h.set_defaults(fn=cmd_flows_history)
    rb = flows.add_parser("rollback", help="put an earlier version back in force (default: the previous one)")
    rb.add_argument("name")
    rb.add_argument("version", nargs="?", type=int)
    rb.add_argument("--note", default="")
    rb.set_defaults(fn=cmd_flows_rollback)

    a = sub.add_parser("agi", help="classic AGI over stdin/stdout (same as ivr-agi FLOW)")
    a.add_argument("flow")
    a.set_defaults(fn=cmd_agi)

    pr = sub.add_parser("prompts", help="prompt tools").add_subparsers(dest="sub", required=True)
    dr = pr.add_parser("draft", help="speak prompts/texts.yaml (or TEXT) into prompts/NAME.wav with espeak-ng")
    dr.add_argument("name", nargs="?")
    dr.add_argument("text", nargs="?")
    dr.set_defaults(fn=cmd_prompts_draft)

    from ivr import cli_callbacks, cli_drill, cli_ops, cli_users

    cli_drill.add_commands(sub)
    cli_users.add_commands(sub)
    cli_ops.add_commands(sub)
    cli_callbacks.add_commands(sub)
    b = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="sub", required=True)
    ba = b.add_parser("agi", help="FastAGI: CPU per call vs a bare asyncio responder; calls held at once")
    ba.add_argument("--calls", type=int, default=3000, help="calls for the CPU comparison")
    ba.add_argument("--concurrency", type=int, default=200)
    ba.add_argument("--hold", type=int, default=15000, help="calls to hold inside Queue at once (0: skip)")
    ba.add_argument("--clients", type=int, default=4, help="load-generator processes")
    ba.add_argument("--rounds", type=int, default=3, help="repeat the CPU comparison; medians are quoted")
    ba.add_argument("--console-load", action="store_true",
                    help="instead: AGI latency alone and while the console is flooded and busy (see --flood ...)")
    ba.add_argument("--rate", type=float, default=100.0, help="--console-load: calls arriving per second")
    ba.add_argument("--flood", type=int, default=8, help="--console-load: clients posting wrong passwords")
    ba.add_argument("--wallboards", type=int, default=20, help="--console-load: open wallboard streams")
    ba.add_argument("--backlog", type=int, default=100_000,
                    help="--console-load: missed calls behind the month report (1000000 as in bench callbacks)")
    ba.set_defaults(fn=cmd_bench)
    bc = b.add_parser("callbacks", help="missed-call ingest rate, claim latency, Redis memory per open callback")
    bc.add_argument("--calls", type=int, default=1_000_000)
    bc.add_argument("--numbers", type=int, default=300_000)
    bc.add_argument("--seats", type=int, default=1800)
    bc.add_argument("--claims", type=int, default=20_000)
    bc.add_argument("--trails", type=int, default=200, help="random callbacks whose audit trail is read")
    bc.add_argument("--trail-scans", type=int, default=3,
                    help="trail reads by scanning the whole audit log (the way before the index)")
    bc.set_defaults(fn=cmd_bench_callbacks)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = None
    try:
        settings = load_settings()
        logs.configure(settings.log_level, settings.log_format)
        return args.fn(args, settings)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the boundary: one line for the staff, not a traceback (ExceptionGroups too)
        from ivr.cli_errors import explain

        files = [Path(f) for f in getattr(args, "files", None) or []]
        line = explain(exc, settings, args.command, files)
        if line is None:
            raise
        print(f"ivr: {line}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
