"""Auditors' commands: ``ivr audit verify`` (every hash chain, against the
latest signed checkpoint) and ``ivr audit checkpoint``. The callback report is
``ivr callbacks report`` (``ivr.cli.callbacks``)."""

from __future__ import annotations

import sys

from ivr.cli.common import audited, run_with_redis
from ivr.services import audit as audit_service
from ivr.settings import Settings


def cmd_audit_verify(args, settings: Settings) -> int:
    async def go(redis):
        results, file_problems = await audit_service.verify(redis, [args.log] if args.log else None)
        for p in file_problems:
            print(f"检查点文件 checkpoint file: {p}")
        bad = len(file_problems)
        for name, res in results.items():
            cp = res.checkpoint
            against = f"; matches the checkpoint of {cp.when} ({cp.n} entries)" if cp else "; no checkpoint yet"
            legacy = f"; {res.legacy} older entries not authenticated (written before audit keys)" if res.legacy else ""
            if res.ok:
                print(f"{name}: 完整 intact, {res.entries} entries, chain and keys verified{against}{legacy}")
            else:
                bad += 1
                print(f"{name}: 被篡改 TAMPERED after {res.entries} good entries: {res.problem} "
                      f"(stream id {res.entry_id or '-'})")
        return bad
    return 1 if run_with_redis(settings, go) else 0


def cmd_audit_checkpoint(args, settings: Settings) -> int:
    async def go(redis):
        written, failed = await audit_service.checkpoint(redis)
        for name, cp in written.items():
            print(f"{name}: {cp.n} entries, head {cp.head}, at {cp.when}, signature {cp.mac}")
        for name, problem in failed.items():
            print(f"{name}: 被篡改, 未写检查点 TAMPERED, no checkpoint written: {problem}")
        print("请另行保存以上各行 (keep these lines somewhere else: they are what the log looked like now)",
              file=sys.stderr)
        return len(failed)
    return 1 if run_with_redis(settings, go) else 0


def add_commands(sub) -> None:
    au = sub.add_parser("audit", help="audit logs").add_subparsers(dest="sub", required=True)
    v = au.add_parser("verify", help="check the hash chains; exit 1 if any entry was changed or deleted")
    v.add_argument("log", nargs="?", choices=audit_service.LOG_NAMES)
    audited(v).set_defaults(fn=cmd_audit_verify)
    c = au.add_parser("checkpoint", help="verify what was added since the last checkpoint, then write a signed "
                                         "checkpoint of every log outside Redis and print it")
    audited(c).set_defaults(fn=cmd_audit_checkpoint)
