"""Staff and auditor commands: ``ivr callbacks list|show|cancel|report`` and
``ivr audit verify``. Numbers are masked everywhere here (personal information
law); only the scheduler uses the full number, to dial."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

from ivr import redis_keys as keys
from ivr.errors import ConfigError, IvrError
from ivr.logs import mask_number
from ivr.settings import Settings



def _t(ts, tz) -> str:
    return dt.datetime.fromtimestamp(float(ts), tz).strftime("%m-%d %H:%M") if ts not in (None, "") else "-"


def cmd_callbacks_list(args, settings: Settings) -> int:
    from ivr.callback.labels import KINDS, label
    from ivr.callback.store import CallbackQueries
    from ivr.cli import _run, _with_redis

    tz = settings.timezone

    async def go(redis):
        q = CallbackQueries(redis)
        rows = await q.open_numbers(args.limit)
        recs = {r["number"]: r for r in await q.records([n for n, _, _ in rows])}
        print(f"{'编号 id':<8}{'号码 number':<15}{'状态 state':<11}{'类别 kind':<11}{'来电':>5}{'回拨':>5}  "
              f"{'首次来电 first':<12}{'期限 deadline':<14}{'下次 next':<12}原因 reason")
        for number, where, score in rows:
            r = recs.get(number, {})
            nxt = _t(score, tz) if where == "pending" else ("现在 now" if where == "ready" else "拨打中 dialling")
            print(f"{r.get('id', '?'):<8}{mask_number(number):<15}{where:<11}{label(KINDS, r.get('kind')):<11}"
                  f"{r.get('calls', ''):>5}{r.get('attempts', ''):>5}  {_t(r.get('first_at'), tz):<12}"
                  f"{_t(r.get('deadline'), tz):<14}{nxt:<12}{r.get('reason', '')}")
        from ivr.callback.store import CallbackStore
        c = await CallbackStore(redis).counts()
        print(f"待回拨 open {c['open']}（拨打中 assigned {c['assigned']}，可拨 ready {c['ready']}，"
              f"等待时段 pending {c['pending']}）；已结 closed {c['closed']}")
    _run(_with_redis(settings, go))
    return 0


def cmd_callbacks_show(args, settings: Settings) -> int:
    from ivr.callback.labels import local_time, trail_row
    from ivr.callback.store import CallbackQueries
    from ivr.callback.trail import read_trail
    from ivr.cli import _run, _with_redis

    tz = settings.timezone

    async def go(redis):
        rec = await CallbackQueries(redis).find(args.key)
        if rec is None:
            raise IvrError(f"没有回拨记录 '{args.key}'（请给出编号或完整号码）— no callback '{args.key}' "
                           "(give its id or the full number)")
        for k in ("id", "number", "state", "kind", "reason", "calls", "attempts", "flow", "step", "wait_s", "message",
                  "last_outcome", "last_seat", "closed_reason"):
            v = rec.get(k, "")
            print(f"  {k:<16}{mask_number(v) if k == 'number' else v}")
        for k in ("first_at", "last_at", "deadline", "first_callback_at", "last_attempt_at", "closed_at"):
            print(f"  {k:<16}{local_time(rec.get(k), tz) or '-'}")
        print("审计记录 audit trail:")
        for _, e in await read_trail(redis, rec):
            row = trail_row(e, tz)
            print(f"  {row['time']}  {row['label']}  {row['detail']}")
    _run(_with_redis(settings, go))
    return 0


def cmd_callbacks_cancel(args, settings: Settings) -> int:
    from ivr.callback.states import EntryKind, RecordState
    from ivr.callback.store import CallbackQueries, CallbackStore
    from ivr.cli import _run, _who, _with_redis

    if not args.reason.strip():
        raise ConfigError("请用 --reason 写明取消原因 — --reason is required")

    async def go(redis):
        rec = await CallbackQueries(redis).find(args.key)
        if rec is None or rec.get("state") == RecordState.CLOSED:
            raise IvrError(f"没有待回拨的记录 '{args.key}' — no open callback '{args.key}'")
        store = CallbackStore(redis)
        now = time.time()
        ok, what = await store.close(rec["number"], now=now, reason=f"cancelled: {args.reason}")
        if not ok:
            raise IvrError("正在拨打中，本次拨打结束后将关闭 — it is being dialled right now; it will be closed "
                           "when this attempt ends" if what == RecordState.ASSIGNED else "它已被关闭 — it was closed meanwhile")
        await store.audit.append([{"kind": EntryKind.CLOSED.value, "at": now, "id": rec["id"], "number": mask_number(rec["number"]),
                                   "reason": "cancelled", "note": args.reason, "by": _who()}])
        print(f"回拨 {rec['id']} 已取消 — callback {rec['id']} cancelled")
    _run(_with_redis(settings, go))
    return 0


def cmd_callbacks_report(args, settings: Settings) -> int:
    from ivr.callback.report import month_days, period, records_csv
    from ivr.callback.report_data import gather
    from ivr.cli import _run, _with_redis

    # days in the hotline's time zone; by default today there (not the UTC day)
    today = dt.datetime.now(settings.timezone).date().isoformat()
    try:
        if args.month:
            args.date_from, args.date_to = month_days(args.month)
        args.date_from = args.date_from or today
        args.date_to = args.date_to or args.date_from
        start, end = period(args.date_from, args.date_to, settings.timezone)
    except ValueError as exc:
        raise ConfigError(f"--from/--to 应为 YYYY-MM-DD，且结束不早于开始 — --from/--to: {exc}") from exc

    async def go(redis):
        r, rows = await gather(redis, start, end)
        if args.json:
            print(json.dumps(r, ensure_ascii=False, indent=1))
        else:
            _print_report(r, args.date_from, args.date_to, settings.timezone)
        if args.csv:
            Path(args.csv).write_text(records_csv(rows, settings.timezone), encoding="utf-8", newline="")
            print(f"CSV: {args.csv}（{len(rows)} 行 rows，UTF-8 BOM，Excel 可直接打开）")
    _run(_with_redis(settings, go))
    return 0


def _print_report(r: dict, a: str, b: str, tz) -> None:
    from ivr.callback.report import pct_text

    def s(v):
        return "—" if v is None else f"{v / 60:.0f} 分钟 min"
    h = r["hotline"]
    print(f"漏话回拨报表 callback report {a} .. {b} ({tz.key})")
    print(f"  接通率 live answer rate {pct_text(h['live_answer_rate_pct'])} "
          f"({h['calls_answered_live']}/{h['calls_wanting_person']} calls)  "
          f"广义接通率 broad answer rate {pct_text(h['broad_answer_rate_pct'])} "
          f"({h['citizens_reached']}/{h['citizens_wanting_person']} citizens)")
    print(f"  漏话 missed calls {r['missed_calls']}  (误拨 misdials {r['misdials']}, not called back)")
    print(f"  市民 unique citizens {r['unique_citizens']}  回拨单 callbacks {r['callbacks']}  "
          f"紧急 emergency {r['emergency']}")
    print(f"  已回拨 called back {r['called_back']}  接通 reached {r['reached']}  "
          f"期限内接通 within deadline {r['reached_within_deadline']} ({pct_text(r['reached_within_deadline_pct'])})")
    print(f"  首次回拨用时 time to first callback: 中位 median {s(r['first_callback_p50_s'])}, "
          f"P95 {s(r['first_callback_p95_s'])}")
    print(f"  回拨次数 attempts {r['attempts']}  后续来电已接通 reached on a later call {r['closed_reached_later']}  "
          f"未接通结案 closed unreached {r['closed_unreached']}  取消 cancelled {r['cancelled']}  "
          f"未结 still open {r['still_open']}")
    per = h["callbacks_made_per_seat"]
    if per is not None:
        print(f"  每坐席回拨 callbacks per seat: 拨打 made {per}, 接通 reached {h['callbacks_reached_per_seat']} "
              f"({h['seats_calling_back']} 坐席 seats)")
    for seat, v in r["per_seat"].items():
        print(f"  坐席 {seat}: 回拨 attempts {v['attempts']}, 接通 reached {v['reached']}")


def cmd_audit_verify(args, settings: Settings) -> int:
    from ivr.audit import AuditLog
    from ivr.audit_checkpoints import read_latest
    from ivr.audit_keys import current
    from ivr.cli import _run, _with_redis

    names = [args.log] if args.log else list(keys.AUDIT_LOGS)
    config = current()

    async def go(redis):
        latest, file_problems = read_latest(config.checkpoint_file, config.key)
        for p in file_problems:
            print(f"检查点文件 checkpoint file: {p}")
        bad = len(file_problems)
        for name in names:
            stream = keys.AUDIT_LOGS[name]
            res = await AuditLog(redis, stream, config=config).verify(checkpoint=latest.get(stream))
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
    return 1 if _run(_with_redis(settings, go)) else 0


def cmd_audit_checkpoint(args, settings: Settings) -> int:
    from ivr.audit_checkpoints import Checkpointer
    from ivr.cli import _run, _with_redis

    async def go(redis):
        written, failed = await Checkpointer(redis, always=True).checkpoint()
        names = {v: k for k, v in keys.AUDIT_LOGS.items()}
        for cp in written:
            print(f"{names.get(cp.log, cp.log)}: {cp.n} entries, head {cp.head}, at {cp.when}, "
                  f"signature {cp.mac}")
        for name, problem in failed.items():
            print(f"{name}: 被篡改, 未写检查点 TAMPERED, no checkpoint written: {problem}")
        print("请另行保存以上各行 (keep these lines somewhere else: they are what the log looked like now)",
              file=sys.stderr)
        return len(failed)
    return 1 if _run(_with_redis(settings, go)) else 0


def add_commands(sub) -> None:
    cb = sub.add_parser("callbacks", help="missed calls and callbacks").add_subparsers(dest="sub", required=True)
    ls = cb.add_parser("list", help="open callbacks in calling order")
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(fn=cmd_callbacks_list)
    sh = cb.add_parser("show", help="one callback and its audit trail")
    sh.add_argument("key", help="callback id, or the full number")
    sh.set_defaults(fn=cmd_callbacks_show)
    ca = cb.add_parser("cancel", help="close an open callback without calling")
    ca.add_argument("key")
    ca.add_argument("--reason", required=True)
    ca.set_defaults(fn=cmd_callbacks_cancel)
    rp = cb.add_parser("report", help="completion figures for a period")
    rp.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="default: today in IVR_TIMEZONE")
    rp.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="default: the --from day")
    rp.add_argument("--month", metavar="YYYY-MM", help="a whole month (the monthly report)")
    rp.add_argument("--csv", metavar="FILE")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(fn=cmd_callbacks_report)
    au = sub.add_parser("audit", help="audit logs").add_subparsers(dest="sub", required=True)
    v = au.add_parser("verify", help="check the hash chains; exit 1 if any entry was changed or deleted")
    v.add_argument("log", nargs="?", choices=sorted(keys.AUDIT_LOGS))
    v.set_defaults(fn=cmd_audit_verify)
    c = au.add_parser("checkpoint", help="verify what was added since the last checkpoint, then write a signed "
                                         "checkpoint of every log outside Redis and print it")
    c.set_defaults(fn=cmd_audit_checkpoint)
