"""The auditors' report bodies, built from the period's figures and callback
records (``callback.report.gather``). Pure; run in the offload child
(``web/offload.py``) so a month's worth never holds the calls' event loop."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from ivr.callback import labels as L
from ivr.callback.report import records_csv
from ivr.logs import mask_number

LIST_LIMIT = 500
EDGES_S = [600, 1800, 3600, 7200, 14400, 86400]     # time to first callback, for the chart


def row(x: dict, tz: ZoneInfo) -> dict:
    """One callback in the list auditors pick from (number masked)."""
    return {"id": x.get("id"), "number": mask_number(x.get("number", "")), "kind": x.get("kind"),
            "kind_label": L.label(L.KINDS, x.get("kind")), "state": x.get("state"),
            "state_label": L.label(L.STATES, x.get("state")), "first_at": L.local_time(x.get("first_at"), tz),
            "attempts": x.get("attempts", "0"), "closed_reason": x.get("closed_reason", ""),
            "closed_label": L.label(L.CLOSED_REASONS, x.get("closed_reason"))}


def report(r: dict, rows: list[dict], a: str, b: str, tz: ZoneInfo) -> dict:
    delays = sorted(float(x["first_callback_at"]) - float(x["first_at"]) for x in rows if x.get("first_callback_at"))
    hist = [sum(1 for d in delays if (EDGES_S[i - 1] if i else 0) <= d < e) for i, e in enumerate(EDGES_S)]
    hist.append(sum(1 for d in delays if d >= EDGES_S[-1]))
    return {**r, "period": {"from": a, "to": b, "timezone": str(tz.key)},
            "time_to_callback_histogram": {"edges_s": EDGES_S, "counts": hist},
            "callbacks_list": [row(x, tz) for x in sorted(rows, key=lambda x: float(x.get("first_at", 0)))][:LIST_LIMIT]}


def callbacks(rows: list[dict], a: str, b: str, tz: ZoneInfo, state: str | None, kind: str | None) -> dict:
    if state == "open":
        rows = [x for x in rows if x.get("state") != "closed"]
    elif state == "closed":
        rows = [x for x in rows if x.get("state") == "closed"]
    if kind:
        rows = [x for x in rows if x.get("kind") == kind]
    rows = sorted(rows, key=lambda x: float(x.get("first_at", 0)), reverse=True)
    return {"period": {"from": a, "to": b}, "total": len(rows), "callbacks": [row(x, tz) for x in rows[:LIST_LIMIT]]}


def csv(rows: list[dict], tz: ZoneInfo) -> str:
    return records_csv(rows, tz)
