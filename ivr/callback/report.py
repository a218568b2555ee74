"""Callback completion figures for auditors. Pure: records and audit entries in,
figures out (the Redis reads that feed it are in ``ivr.callback.report_data``)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from ivr.callback import labels as L
from ivr.callback.policy import LINES_FULL, reached_a_person
from ivr.callback.states import Outcome, RecordState
from ivr.logs import mask_number
from ivr.stats import percentile

# A callback as its Redis hash holds it (``ivr.callback.store.Record``).
CallbackRecord = Mapping[str, str]
# An audit entry's JSON (``ivr.audit.chain.Entry``); its fields depend on its kind.
AuditEntry = Mapping[str, Any]


def report(records: Sequence[CallbackRecord], attempts: Sequence[AuditEntry], start: float,
           end: float) -> dict[str, Any]:
    """``records``: callback hashes (open and closed); only those whose first
    missed call falls in [start, end) count. ``attempts``: audit entries of kind
    'attempt' in the same period (for the per-seat figures). Returns the
    report's JSON, as the console and the CLI read it."""
    rows = [r for r in records if start <= float(r.get("first_at", 0)) < end]
    counted = [r for r in rows if r.get("closed_reason") != "misdial"]
    called = [r for r in counted if r.get("first_callback_at")]
    reached = [r for r in counted if r.get("closed_reason") == "reached"]
    in_time = [r for r in reached if float(r.get("closed_at", 0)) <= float(r.get("deadline", 0))]
    delays = [float(r["first_callback_at"]) - float(r["first_at"]) for r in called]
    seats: dict[str, dict[str, int]] = defaultdict(lambda: {"attempts": 0, "reached": 0})
    names: dict[str, str] = {}           # interface -> the name the attempt recorded (newer entries have it)
    for a in attempts:
        if a.get("seat_name"):
            names[a.get("seat", "?")] = a["seat_name"]
        if a.get("outcome") == Outcome.SEAT_NO_ANSWER:
            continue
        seats[a.get("seat", "?")]["attempts"] += 1
        seats[a.get("seat", "?")]["reached"] += a.get("outcome") == Outcome.REACHED
    return {
        "missed_calls": sum(int(r.get("calls", 1)) for r in rows),
        "misdials": len(rows) - len(counted),
        "unique_citizens": len({r.get("number") for r in counted}),
        "callbacks": len(counted),
        "called_back": len(called),
        "reached": len(reached),
        "reached_within_deadline": len(in_time),
        "reached_within_deadline_pct": pct(len(in_time), len(counted)),
        "first_callback_p50_s": percentile(delays, 50),
        "first_callback_p95_s": percentile(delays, 95),
        "attempts": sum(int(r.get("attempts", 0)) for r in counted),
        "closed_reached_later": sum(1 for r in counted if r.get("closed_reason") == "reached_later"),
        "closed_unreached": sum(1 for r in counted if r.get("closed_reason") == "unreached"),
        "cancelled": sum(1 for r in counted if str(r.get("closed_reason", "")).startswith("cancelled")),
        "still_open": sum(1 for r in counted if r.get("state") != RecordState.CLOSED),
        "emergency": sum(1 for r in counted if r.get("kind") == "emergency"),
        "per_seat": {k: dict(v) for k, v in sorted(seats.items())},
        "seat_names": {k: v for k, v in sorted(names.items()) if k in seats},
    }


# time to the first callback, the auditors' chart: the bins' upper edges (the last bin: beyond)
DELAY_EDGES_S = (600, 1800, 3600, 7200, 14400, 86400)


# (field, Chinese header) in the CSV's column order
def hotline_figures(calls: Sequence[Mapping[str, str]], records: Sequence[CallbackRecord],
                    per_seat: Mapping[str, Mapping[str, int]]) -> dict[str, int | float | None]:
    """The monthly figures a 12345 centre is assessed on (docs/audit-report.md).

    ``calls``: call summaries (``ivr.calls.service.summary_fields``) that started in the
    period; ``records``: the callbacks whose first missed call is in it.

    - 接通率 live answer rate: calls that wanted a person and reached one /
      calls that wanted a person.
    - 广义接通率 broad answer rate: citizens (numbers) who wanted a person and
      were reached live, by a callback or on a later call within the callback's
      deadline / citizens who wanted a person. Citizens whose only miss was a
      misdial (hung up within seconds; not called back by policy) are left out.
    - 线路忙 blocked attempts: calls the dialplan answered busy because every
      line was in use, recorded for a callback (``ivr.callback.blocked``);
      they count as calls that wanted a person and did not reach one.
    """
    wanted = [c for c in calls if c.get("wanted_person") == "1"]
    live = [c for c in wanted if reached_a_person(c)]
    blocked = sum(1 for c in wanted if c.get("outcome") == LINES_FULL)
    citizens = {c.get("number") for c in wanted if c.get("number")}
    reached = {c.get("number") for c in live}
    reached |= {r.get("number") for r in records if r.get("closed_reason") in ("reached", "reached_later")
                and float(r.get("closed_at", 0)) <= float(r.get("deadline", 0))}
    real_miss = {r.get("number") for r in records if r.get("closed_reason") != "misdial"}
    misdial_only = {r.get("number") for r in records if r.get("closed_reason") == "misdial"} - real_miss - reached
    citizens -= misdial_only
    seats = len(per_seat)
    return {
        # a call moved to another PBX's emergency queue is one call, counted on the PBX that took it
        "calls": sum(1 for c in calls if not c.get("moved_to")),
        "calls_wanting_person": len(wanted),
        "calls_answered_live": len(live),
        "blocked_attempts": blocked,
        "live_answer_rate_pct": pct(len(live), len(wanted)),
        "citizens_wanting_person": len(citizens),
        "citizens_reached": len(citizens & reached),
        "broad_answer_rate_pct": pct(len(citizens & reached), len(citizens)),
        "seats_calling_back": seats,
        "callbacks_made_per_seat": round(sum(v["attempts"] for v in per_seat.values()) / seats, 1) if seats else None,
        "callbacks_reached_per_seat": round(sum(v["reached"] for v in per_seat.values()) / seats, 1) if seats else None,
    }


def pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


CSV_COLUMNS = (("id", "编号"), ("number", "号码（已脱敏）"), ("kind", "类别"), ("reason", "漏话原因"),
               ("calls", "来电次数"), ("first_at", "首次来电时间"), ("deadline", "回拨期限"),
               ("first_callback_at", "首次回拨时间"), ("attempts", "回拨次数"), ("last_outcome", "最近回拨结果"),
               ("last_seat", "最近回拨坐席"), ("state", "状态"), ("closed_at", "办结时间"),
               ("closed_reason", "办结原因"))
CSV_FIELDS = tuple(f for f, _ in CSV_COLUMNS)
_TIMES = ("first_at", "deadline", "first_callback_at", "closed_at")
_LABELS = {"kind": L.KINDS, "reason": L.MISS_REASONS, "last_outcome": L.OUTCOMES, "state": L.STATES,
           "closed_reason": L.CLOSED_REASONS}


def records_csv(records: Sequence[CallbackRecord], tz: dt.tzinfo) -> str:
    """One row per callback for Excel: a UTF-8 byte-order mark (or Excel reads
    the Chinese as mojibake), Chinese headers and labels, local times; numbers
    masked (the CSV leaves the system)."""
    buf = io.StringIO()
    buf.write("\ufeff")
    w = csv.writer(buf)
    w.writerow([h for _, h in CSV_COLUMNS])
    for r in sorted(records, key=lambda r: float(r.get("first_at", 0))):
        row = []
        for f in CSV_FIELDS:
            v = r.get(f, "")
            if f == "number":
                v = mask_number(v)
            elif f in _TIMES:
                v = L.local_time(v, tz)
            elif f in _LABELS:
                v = L.label(_LABELS[f], v)
            row.append(v)
        w.writerow(row)
    return buf.getvalue()


def pct_text(v: float | None) -> str:
    """A percentage as staff read it: '—' when there is nothing to divide."""
    return "—" if v is None else f"{v:g}%"


def period(date_from: str, date_to: str, tz: dt.tzinfo) -> tuple[float, float]:
    """[start of date_from, end of date_to) in the hotline's time zone."""
    start_d, end_d = dt.date.fromisoformat(date_from), dt.date.fromisoformat(date_to)
    for d in (start_d, end_d):
        if not 2000 <= d.year <= 2100:        # 0001 or 9999 overflowed the timestamp arithmetic (a 500)
            raise ValueError(f"日期须在 2000 至 2100 年之间 {d.isoformat()}: dates from 2000 to 2100")
    start = dt.datetime.combine(start_d, dt.time(), tz)
    end = dt.datetime.combine(end_d, dt.time(), tz) + dt.timedelta(days=1)
    if end <= start:
        raise ValueError("the period ends before it starts")
    return start.timestamp(), end.timestamp()


def month_days(month: str) -> tuple[str, str]:
    """'2026-11' -> ('2026-11-01', '2026-11-30')."""
    import calendar

    first = dt.date.fromisoformat(month + "-01")
    last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
    return first.isoformat(), last.isoformat()
