"""Commands on follow-up calls (智能回访), for seat managers and auditors:
``ivr followup sample|show|list``. Numbers are masked; only the leader's
follow-up caller dials the full number."""

from __future__ import annotations

import datetime as dt
import json

from ivr.cli.common import audited, run_with_redis, who
from ivr.services import followups as followup_service
from ivr.settings import Settings

RATINGS = (("satisfied", "满意"), ("basically_satisfied", "基本满意"), ("dissatisfied", "不满意"),
           ("no_answer", "未评价 no answer"))


def cmd_followup_sample(args, settings: Settings) -> int:
    async def go(redis):
        r = await followup_service.choose(redis, settings.timezone, share=args.share, of=args.of, day=args.day,
                                          kind=args.kind or "", by=who())
        if args.json:
            print(json.dumps(r, ensure_ascii=False, indent=1))
            return
        print(f"回访批次 {r['batch']} 已建立 — follow-up batch {r['batch']} created: {r['day']} {r['of']}"
              f"{' ' + r['kind'] if r['kind'] else ''}，抽取 {r['chosen']}/{r['candidates']} 位市民 citizens "
              f"({r['share'] * 100:g}%)；在呼叫时段内、排队平稳且线路空闲时自动拨打 — called within calling hours "
              f"while the queues are calm and lines are free")
    run_with_redis(settings, go)
    return 0


def cmd_followup_show(args, settings: Settings) -> int:
    tz = settings.timezone

    async def go(redis):
        r = await followup_service.batch(redis, args.batch)
        if args.json:
            print(json.dumps(r, ensure_ascii=False, indent=1))
            return
        b, f = r["batch"], r["figures"]
        made = dt.datetime.fromtimestamp(float(b.get("created_at") or 0), tz).strftime("%Y-%m-%d %H:%M")
        print(f"回访批次 batch {b['id']}: {b.get('day')} {b.get('of')} {b.get('kind') or ''} "
              f"({float(b.get('share') or 0) * 100:g}%), {b.get('by')} @ {made}")
        print(f"  抽取 chosen {f['chosen']}  待拨 open {f['open']}  接通 reached {f['reached']}  "
              f"未接通 unreached {f['unreached']}")
        print(f"  问题已有回音 heard: 是 yes {f['heard_yes']}  否 no {f['heard_no']}  留言 comments {f['comments']}")
        print("  评价 ratings: " + "  ".join(f"{zh} {f['survey'][k]}" for k, zh in RATINGS))
        for i in r["items"]:
            print(f"  F{i['id']:<6}{i['number']:<15}{i['state']:<10}{i['closed_reason'] or '-':<11}"
                  f"heard={i['heard'] or '-':<4}survey={i['survey'] or '-'}")
    run_with_redis(settings, go)
    return 0


def cmd_followup_list(args, settings: Settings) -> int:
    async def go(redis):
        for b in await followup_service.batches(redis, args.limit):
            print(f"{b.get('id'):<6}{b.get('day')}  {b.get('of'):<18}{b.get('kind') or '-':<10}"
                  f"{float(b.get('share') or 0) * 100:>6g}%  {b.get('count'):>5}  {b.get('by')}")
    run_with_redis(settings, go)
    return 0


def add_commands(sub) -> None:
    fu = sub.add_parser("followup", help="智能回访 automated follow-up calls").add_subparsers(dest="sub",
                                                                                           required=True)
    sa = fu.add_parser("sample", help="choose a sample of citizens to call back for a follow-up")
    sa.add_argument("--share", required=True, help="e.g. 10%% (above 0, at most 100%%)")
    sa.add_argument("--of", required=True, choices=None, help="reached-callbacks | answered-calls")
    sa.add_argument("--day", metavar="YYYY-MM-DD", help="default: today in IVR_TIMEZONE")
    sa.add_argument("--kind", help="only this kind: the callback's (emergency, courtesy, ordinary) or the "
                                   "call's queue (general, emergency)")
    sa.add_argument("--json", action="store_true")
    audited(sa).set_defaults(fn=cmd_followup_sample)
    sh = fu.add_parser("show", help="one batch: its follow-ups and what the citizens said")
    sh.add_argument("batch")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(fn=cmd_followup_show)
    ls = fu.add_parser("list", help="the latest batches")
    ls.add_argument("--limit", type=int, default=20)
    ls.set_defaults(fn=cmd_followup_list)
