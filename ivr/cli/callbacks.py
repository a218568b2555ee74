"""Commands on missed calls and callbacks, for staff and auditors:
``ivr callbacks list|show|cancel|report``. Numbers are masked everywhere here
(personal information law); only the scheduler uses the full number, to dial."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from ivr.cli.common import audited, run_with_redis, who
from ivr.logs import mask_number
from ivr.services import callbacks as callback_service
from ivr.services import status as status_service
from ivr.settings import Settings


def _t(ts, tz) -> str:
    return dt.datetime.fromtimestamp(float(ts), tz).strftime("%m-%d %H:%M") if ts not in (None, "") else "-"


def cmd_callbacks_list(args, settings: Settings) -> int:
    from ivr.callback.labels import KINDS, MISS_REASONS, label

    tz = settings.timezone

    async def go(redis):
        rows, c = await callback_service.open_line(redis, args.limit)
        print(f"{'编号 id':<8}{'号码 number':<15}{'状态 state':<11}{'类别 kind':<11}{'来电':>5}{'回拨':>5}  "
              f"{'首次来电 first':<12}{'期限 deadline':<14}{'下次 next':<12}原因 reason")
        for number, where, score, r in rows:
            nxt = _t(score, tz) if where == "pending" else ("现在 now" if where == "ready" else "拨打中 dialling")
            print(f"{r.get('id', '?'):<8}{mask_number(number):<15}{where:<11}{label(KINDS, r.get('kind')):<11}"
                  f"{r.get('calls', ''):>5}{r.get('attempts', ''):>5}  {_t(r.get('first_at'), tz):<12}"
                  f"{_t(r.get('deadline'), tz):<14}{nxt:<12}{r.get('reason', '')} {label(MISS_REASONS, r.get('reason'))}")
        print(f"待回拨 open {c['open']}（拨打中 assigned {c['assigned']}，可拨 ready {c['ready']}，"
              f"等待时段 pending {c['pending']}）；已结 closed {c['closed']}")
    run_with_redis(settings, go)
    return 0


def cmd_callbacks_show(args, settings: Settings) -> int:
    from ivr.callback.labels import local_time, seat_name, trail_row

    tz = settings.timezone

    async def go(redis):
        rec, trail = await callback_service.find(redis, args.key)
        names = {**await callback_service.seat_names(redis, settings.queue_dir),
                 **{e["seat"]: e["seat_name"] for _, e in trail if e.get("seat") and e.get("seat_name")}}
        for k in ("id", "number", "state", "kind", "reason", "calls", "attempts", "flow", "step", "wait_s", "message",
                  "last_outcome", "last_seat", "closed_reason"):
            v = rec.get(k, "")
            print(f"  {k:<16}{mask_number(v) if k == 'number' else seat_name(v, names) if k == 'last_seat' else v}")
        for k in ("first_at", "last_at", "deadline", "first_callback_at", "last_attempt_at", "closed_at"):
            print(f"  {k:<16}{local_time(rec.get(k), tz) or '-'}")
        print("审计记录 audit trail:")
        for _, e in trail:
            row = trail_row(e, tz, names)
            print(f"  {row['time']}  {row['label']}  {row['detail']}")
    run_with_redis(settings, go)
    return 0


def cmd_callbacks_cancel(args, settings: Settings) -> int:
    async def go(redis):
        rec = await callback_service.cancel(redis, args.key, reason=args.reason, by=who())
        print(f"回拨 {rec['id']} 已取消 — callback {rec['id']} cancelled")
    run_with_redis(settings, go)
    return 0


def cmd_callbacks_report(args, settings: Settings) -> int:
    from ivr.callback.figures import figures_csv
    from ivr.callback.report import records_csv

    tz = settings.timezone
    span = callback_service.report_period(tz, args.date_from, args.date_to, args.month)

    async def go(redis):
        now = (await status_service.engine_clock(redis)).now()     # a drill's simulated clock, as its calls carry
        r = await callback_service.report(redis, span.start, span.end, tz, now)
        if args.recount:
            diff = (await callback_service.recount(redis, span.start, span.end, tz, now))["differences"]
            r["recount_differences"] = diff
        if args.json:
            print(json.dumps(r, ensure_ascii=False, indent=1))
        else:
            names = {**await callback_service.seat_names(redis, settings.queue_dir), **r.get("seat_names", {})}
            print_report(r, span.date_from, span.date_to, tz, names)
        if "recount_differences" in r and not args.json:
            diff = r["recount_differences"]
            print("  逐条重算 recount (every callback, attempt and call read again): "
                  + ("一致 the same" if not diff else f"{len(diff)} 处不同 differences: " + "; ".join(diff[:10])))
        if args.csv:
            rows = await callback_service.period_records(redis, span.start, span.end)
            Path(args.csv).write_text(records_csv(rows, tz), encoding="utf-8", newline="")
            print(f"CSV: {args.csv}（{len(rows)} 行 rows，UTF-8 BOM，Excel 可直接打开）")
        if args.figures_csv:
            names = {**await callback_service.seat_names(redis, settings.queue_dir), **r.get("seat_names", {})}
            Path(args.figures_csv).write_text(figures_csv(r["figures"], names), encoding="utf-8", newline="")
            print(f"CSV: {args.figures_csv}（考核指标：合计、每日、各类别、各坐席 national figures: the period, "
                  "each day, each kind, each seat）")
    run_with_redis(settings, go)
    return 0


def print_report(r: dict, a: str, b: str, tz, names: dict[str, str] | None = None) -> None:
    from ivr.callback.labels import seat_name
    from ivr.callback.report import pct_text

    def s(v):
        return "—" if v is None else f"{v / 60:.0f} 分钟 min"
    h = r["hotline"]
    print(f"漏话回拨报表 callback report {a} .. {b} ({tz.key})")
    if r.get("calls_from_local"):
        since = r["calls_from_local"]
        print(f"  注意：通话记录自 {since} 起保留，更早的已按上限删除；按通话统计的指标（接通率、15秒接通率、满意率等）"
              f"只含此后的通话 — note: call summaries are kept from {since} on (older ones were trimmed at the "
              "stream's cap): the figures counted from calls cover only the calls since")
    print(f"  接通率 live answer rate {pct_text(h['live_answer_rate_pct'])} "
          f"({h['calls_answered_live']}/{h['calls_wanting_person']} calls)  "
          f"广义接通率 broad answer rate {pct_text(h['broad_answer_rate_pct'])} "
          f"({h['citizens_reached']}/{h['citizens_wanting_person']} citizens)")
    print(f"  线路忙未接通 blocked attempts {h.get('blocked_attempts', 0)} "
          "(busy: every line in use; recorded for a callback)")
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
    for seat, v in r["per_seat"].items():        # by the seat's name (the interface when it has none)
        print(f"  坐席 {seat_name(seat, names)}: 回拨 attempts {v['attempts']}, 接通 reached {v['reached']}")
    print_national(r.get("figures"), names)


def print_national(f: dict | None, names: dict[str, str] | None = None) -> None:
    """The national figures (docs/audit-report.md), Chinese first: the period's, then each kind's and seat's."""
    from ivr.callback.figures import KIND_LABELS, rate_text
    from ivr.callback.labels import seat_name

    if not f:
        return

    def line(v: dict) -> str:
        sv = v["survey"]
        asa = "—" if v["average_speed_of_answer_s"] is None else f"{v['average_speed_of_answer_s']:g} 秒 s"
        return (f"15秒接通率 answered within 15 s {rate_text(v['answered_within_15s_rate'])}  "
                f"24小时接通率 24-hour answer rate {rate_text(v['answer_rate_24h'])}  "
                f"平均应答时长 ASA {asa}  "
                f"15秒内放弃 abandoned within 15 s {'—' if v['abandoned_within_15s'] is None else v['abandoned_within_15s']}"
                f"  满意率 satisfaction {rate_text(v['satisfaction_rate'])} "
                f"(满意 {sv['satisfied']} / 基本满意 {sv['basically_satisfied']} / 不满意 {sv['dissatisfied']} / "
                f"未评价 no answer {sv['no_answer']}; 调查 offered {sv['offered']})")
    print("考核指标 national figures (GB/T 33358-2016; docs/audit-report.md)")
    print(f"  合计 period: {line(f)}")
    if f.get("answer_rate_24h_lowest") is not None:
        print(f"  任意24小时最低接通率 lowest over any 24 hours {rate_text(f['answer_rate_24h_lowest'])}")
    for k, v in f["per_kind"].items():
        print(f"  {KIND_LABELS.get(k, k)}: {line(v)}")
    for seat, v in f["per_seat"].items():     # a call nobody answered is no seat's: counts, not the rates of calls
        sv = v["survey"]
        asa = "—" if v["average_speed_of_answer_s"] is None else f"{v['average_speed_of_answer_s']:g} 秒 s"
        within = "—" if v["answered_within_15s"] is None else v["answered_within_15s"]
        print(f"  坐席 {seat_name(seat, names)}: 接通 answered {v['answered']}  15秒内接通 within 15 s {within}  "
              f"平均应答时长 ASA {asa}  满意率 satisfaction {rate_text(v['satisfaction_rate'])} "
              f"(满意 {sv['satisfied']} / 基本满意 {sv['basically_satisfied']} / 不满意 {sv['dissatisfied']} / "
              f"未评价 no answer {sv['no_answer']})")


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
    audited(ca).set_defaults(fn=cmd_callbacks_cancel)
    rp = cb.add_parser("report", help="completion figures for a period")
    rp.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="default: today in IVR_TIMEZONE")
    rp.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="default: the --from day")
    rp.add_argument("--month", metavar="YYYY-MM", help="a whole month (the monthly report)")
    rp.add_argument("--csv", metavar="FILE")
    rp.add_argument("--figures-csv", metavar="FILE", help="the national figures: the period, each day, kind and seat")
    rp.add_argument("--json", action="store_true")
    rp.add_argument("--recount", action="store_true",
                    help="read every callback, attempt and call again and compare (the figures are summed from "
                         "each hour's part; this checks them)")
    rp.set_defaults(fn=cmd_callbacks_report)
