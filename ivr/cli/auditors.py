"""Auditors' commands: ``ivr audit verify`` (every hash chain, against the
latest signed checkpoint), ``ivr audit checkpoint`` and ``ivr audit
reconcile`` (the PBX's queue_log against the engine's record). The callback
report is ``ivr callbacks report`` (``ivr.cli.callbacks``)."""

from __future__ import annotations

import json
import sys

from ivr.callback import labels as L
from ivr.cli.common import run_with_redis
from ivr.services import audit as audit_service
from ivr.services import callbacks as callback_service
from ivr.services import pbx_record as pbx_record_service
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


def cmd_audit_reconcile(args, settings: Settings) -> int:
    tz = settings.timezone
    span = callback_service.report_period(tz, args.date_from, args.date_to, args.month)

    async def go(redis):
        r = await pbx_record_service.reconciliation(redis, span.start, span.end, pbx=args.pbx,
                                                    unmatched_only=not args.all)
        if args.json:
            print(json.dumps(r, ensure_ascii=False, indent=1))
            return sum(p["counts"]["unmatched"] for p in r["pbxs"])
        print(f"交换机记录核对 PBX record reconciliation {span.date_from} .. {span.date_to} ({tz.key})")
        if not r["pbxs"]:
            print("  尚未读取任何交换机的 queue_log (no PBX's queue_log read yet: set IVR_QUEUE_LOG on the leader)")
        unmatched = 0
        for p in r["pbxs"]:
            c, read = p["counts"], p["read"]
            unmatched += c["unmatched"]
            print(f"{p['pbx']}: 来电 {c['calls']} calls, 一致 matched {c['matched']}, "
                  f"不一致 unmatched {c['unmatched']}, 待核对 pending {c['pending']}"
                  f"{'（仅列前 ' + str(len(p['calls'])) + ' 条 list cut）' if c['truncated'] else ''}")
            print(f"  已读 read {read['lines']} 行 lines (跳过 skipped {read['skipped']}), "
                  f"最后读取 last read {L.local_time(read['read_at'], tz) or '—'}")
            for verdict, n in sorted(c["by_verdict"].items()):
                print(f"  {L.label(L.PBX_VERDICTS, verdict)} {L.label(L.PBX_VERDICTS, verdict, 'en')}: {n}")
            for row in p["calls"]:
                print(f"  {L.local_time(row['entered'], tz)}  {row['uniqueid']}  {row['number'] or '—'}  "
                      f"{row['queue']}  {row['outcome_label']} {row['agent'] if row['outcome'] == 'answered' else ''}"
                      f"  → {row['verdict_label']} ({row['verdict']})")
        return unmatched
    run_with_redis(settings, go)
    return 0


def add_commands(sub) -> None:
    au = sub.add_parser("audit", help="audit logs").add_subparsers(dest="sub", required=True)
    v = au.add_parser("verify", help="check the hash chains; exit 1 if any entry was changed or deleted")
    v.add_argument("log", nargs="?", choices=audit_service.LOG_NAMES)
    v.set_defaults(fn=cmd_audit_verify)
    c = au.add_parser("checkpoint", help="verify what was added since the last checkpoint, then write a signed "
                                         "checkpoint of every log outside Redis and print it")
    c.set_defaults(fn=cmd_audit_checkpoint)
    r = au.add_parser("reconcile", help="核对交换机记录 the PBX's queue_log against the engine's record, per PBX and "
                                        "period: what matched and what did not (default: today, unmatched listed)")
    r.add_argument("--pbx", help="one PBX (default: every PBX whose queue_log was read)")
    r.add_argument("--from", dest="date_from", help="YYYY-MM-DD")
    r.add_argument("--to", dest="date_to", help="YYYY-MM-DD")
    r.add_argument("--month", help="YYYY-MM")
    r.add_argument("--all", action="store_true", help="list every caller, matched ones too")
    r.add_argument("--json", action="store_true")
    r.set_defaults(fn=cmd_audit_reconcile)
