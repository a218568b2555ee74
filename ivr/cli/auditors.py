"""Auditors' commands: ``ivr audit verify`` (every hash chain, against the
latest signed checkpoint), ``ivr audit checkpoint``, ``ivr audit key
show|rotate`` (the audit key's fingerprint; a new key, docs/deploy.md) and
``ivr audit reconcile`` (the PBX's queue_log against the engine's record). The
callback report is ``ivr callbacks report`` (``ivr.cli.callbacks``)."""

from __future__ import annotations

import json
import sys

from ivr.callback import labels as L
from ivr.cli.common import audited, run_with_redis, who
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


def cmd_audit_key_show(args, settings: Settings) -> int:
    from ivr.audit.keycheck import short
    from ivr.runtime.audit_key import key_state

    async def go(redis):
        st = await key_state(redis)
        print(f"本机审计密钥 this host's audit key: {st.key_file}")
        print(f"  指纹 fingerprint {short(st.mine)} ({st.mine})")
        if st.recorded is None:
            print("Redis 记录 recorded: 无 none yet (the first engine, console or audit command records it)")
        else:
            print(f"Redis 记录 recorded: {short(st.recorded)} ({st.recorded})")
        print(f"已停用的密钥 retired keys on this host: {st.retired}")
        same = st.recorded in (None, st.mine)
        print("一致 match" if same else "不一致 MISMATCH: copy the key file from a host that holds the recorded key")
        return 0 if same else 1
    return int(run_with_redis(settings, go))


def cmd_audit_key_rotate(args, settings: Settings) -> int:
    from ivr.audit.keycheck import short
    from ivr.runtime.audit_key import rotate_audit_key

    async def go(redis):
        done, lines = await rotate_audit_key(redis, by=who())
        if done.resumed:
            print(f"已完成上次中断的密钥更换 finished the interrupted rotation: key {short(done.new)}")
        else:
            print(f"审计密钥已更换 audit key rotated: {short(done.previous)} -> {short(done.new)}; the rotation is "
                  f"recorded in the keys log, signed by the old key")
            print("旧密钥签到 the old key signed up to: " + ", ".join(f"{n} #{k}" for n, k in done.until.items()))
        print(f"已用新密钥写检查点 checkpoints signed with the new key: {lines}")
        print(f"请把 {settings.audit_key_file} 和 {settings.audit_key_file}.retired 复制到每台主机（权限 600）后再启动引擎和控制台"
              f" — copy both files to every host (mode 600), then start the engines and consoles", file=sys.stderr)
        return 0
    return int(run_with_redis(settings, go))


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
    audited(v).set_defaults(fn=cmd_audit_verify)
    c = au.add_parser("checkpoint", help="verify what was added since the last checkpoint, then write a signed "
                                         "checkpoint of every log outside Redis and print it")
    audited(c).set_defaults(fn=cmd_audit_checkpoint)
    k = au.add_parser("key", help="the audit key: its fingerprint, or a new key").add_subparsers(dest="key_sub",
                                                                                                  required=True)
    k.add_parser("show", help="this host's key fingerprint and the one Redis records; exit 1 if they differ"
                 ).set_defaults(fn=cmd_audit_key_show)
    k.add_parser("rotate", help="a new audit key (every engine and console stopped): the old one signs the change "
                               "and is kept, retired, to verify what it signed").set_defaults(fn=cmd_audit_key_rotate)
    r = au.add_parser("reconcile", help="核对交换机记录 the PBX's queue_log against the engine's record, per PBX and "
                                        "period: what matched and what did not (default: today, unmatched listed)")
    r.add_argument("--pbx", help="one PBX (default: every PBX whose queue_log was read)")
    r.add_argument("--from", dest="date_from", help="YYYY-MM-DD")
    r.add_argument("--to", dest="date_to", help="YYYY-MM-DD")
    r.add_argument("--month", help="YYYY-MM")
    r.add_argument("--all", action="store_true", help="list every caller, matched ones too")
    r.add_argument("--json", action="store_true")
    r.set_defaults(fn=cmd_audit_reconcile)
