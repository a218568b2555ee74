"""The configuration files as a set: ``ivr files status|check|publish|history|
rollback`` (seat managers' and operations staff's files outside the flows:
queue/, callback/policy.yaml, prompts/announcements.yaml, flows/lists and
flows/calendars). A change is checked with every file and flow it touches
before anything is written (``ivr.services.config``)."""

from __future__ import annotations

import sys
import time

from ivr.cli.common import audited, local_iso, run_with_redis, who
from ivr.errors import ConfigInvalid
from ivr.services import config as config_service
from ivr.settings import Settings

ON_DISK = {"same": "与磁盘相同 same on disk", "differs": "磁盘上已修改，未发布 edited on disk, not published",
           "missing": "磁盘上缺失 missing on disk", "unrecorded": "尚未记录 not recorded yet"}


def cmd_files_status(args, settings: Settings) -> int:
    async def go(redis):
        o = await config_service.overview(redis, settings.home, settings.timezone, time.time)
        source = "Redis 中最近一次正确的配置 the last good set in Redis" if o.source == "redis" else \
            "磁盘文件（尚无记录） the files on disk (nothing recorded yet)"
        print(f"在用配置 in force: {source}; 第 {o.generation} 次变更 generation {o.generation}")
        for f in o.files:
            v = f"v{f.version}" if f.version else "-"
            print(f"  {f.path:<32} {v:>5}  {ON_DISK[f.on_disk]}")
        for p in o.disk_problems:
            print(f"  磁盘文件有问题 on disk: {p}")
    run_with_redis(settings, go)
    return 0


def cmd_files_check(args, settings: Settings) -> int:
    async def go(redis):
        o = await config_service.overview(redis, settings.home, settings.timezone, time.time)
        for p in o.disk_problems:
            print(p)
        errors = sum(1 for p in o.disk_problems if not p.warning)
        print(f"磁盘上的配置文件：{errors} 个错误 — the files on disk: {errors} error(s)", file=sys.stderr)
        return 1 if errors else 0
    return int(run_with_redis(settings, go))


def cmd_files_publish(args, settings: Settings) -> int:
    async def go(redis):
        try:
            saved = await config_service.publish_files(redis, settings.home, settings.timezone, by=who(),
                                                       note=args.note or "", clock=time.time)
        except ConfigInvalid as exc:
            for p in exc.problems:
                print(p)
            print("未发布：请先修正以上错误 — nothing published: fix the errors above", file=sys.stderr)
            return 1
        for p in saved.warnings:
            print(p)
        if not saved.versions:
            print("磁盘文件与在用配置相同，未改动 — the files on disk are the ones in force: nothing to publish")
        for path, v in sorted(saved.versions.items()):
            print(f"{path}: 已发布为 published as v{v}")
        return 0
    return int(run_with_redis(settings, go))


def cmd_files_history(args, settings: Settings) -> int:
    async def go(redis):
        versions = await config_service.history(redis, args.path)
        if not versions:
            print(f"{args.path}: 尚无版本 no versions yet")
        hows = {"save": "保存 save", "publish": "发布 publish", "rollback": "回滚 rollback", "start": "启动载入 start",
                "reload": "重新载入 reload"}
        for v, diff in versions:
            note = f"  — {v.note}" if v.note else ""
            print(f"v{v.version}  {local_iso(v.at, settings.timezone)}  {hows.get(v.how, v.how)}  {v.by}{note}")
            if args.diff and diff:
                print("\n".join("    " + line for line in diff.splitlines()))
    run_with_redis(settings, go)
    return 0


def cmd_files_rollback(args, settings: Settings) -> int:
    async def go(redis):
        saved = await config_service.rollback(redis, settings.home, settings.timezone, args.path, args.version,
                                              by=who(), note=args.note or "", clock=time.time)
        for path, v in saved.versions.items():
            print(f"{path}: 已回滚，新版本 rolled back as v{v}")
    run_with_redis(settings, go)
    return 0


def add_commands(sub) -> None:
    f = sub.add_parser("files", help="configuration files outside the flows: status, check, publish, history, "
                                     "rollback").add_subparsers(dest="sub", required=True)
    f.add_parser("status", help="the set in force and how the files on disk compare").set_defaults(
        fn=cmd_files_status)
    f.add_parser("check", help="check the files on disk as a set (with the flows in force)").set_defaults(
        fn=cmd_files_check)
    p = f.add_parser("publish", help="the files edited on disk, checked as a set, recorded as new versions")
    p.add_argument("--note", default="")
    audited(p).set_defaults(fn=cmd_files_publish)
    h = f.add_parser("history", help="one file's versions, newest first")
    h.add_argument("path", help="e.g. queue/contingency.yaml")
    h.add_argument("--diff", action="store_true", help="show each version's diff")
    h.set_defaults(fn=cmd_files_history)
    r = f.add_parser("rollback", help="put an earlier version back (checked like any change)")
    r.add_argument("path")
    r.add_argument("version", nargs="?", type=int)
    r.add_argument("--note", default="")
    audited(r).set_defaults(fn=cmd_files_rollback)
