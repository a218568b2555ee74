"""The auditors' report bodies, built from the period's figures and callback
records (``callback.report.gather``). Pure; run in the offload child
(``web/offload.py``) so a month's worth never holds the calls' event loop."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from ivr.callback import figures as national
from ivr.callback import labels as L
from ivr.callback.report import records_csv
from ivr.logs import mask_number

LIST_LIMIT = 500          # the report's own list (the CSV has every row)
PAGE_SIZES = (20, 50, 100, 200)   # callbacks per page in the auditors' list


def row(x: dict, tz: ZoneInfo, names: dict[str, str] | None = None) -> dict:
    """One callback in the list auditors pick from (number masked, the last
    seat by its name)."""
    return {"id": x.get("id"), "last_seat": L.seat_name(x.get("last_seat"), names), "number": mask_number(x.get("number", "")), "kind": x.get("kind"),
            "kind_label": L.label(L.KINDS, x.get("kind")), "state": x.get("state"),
            "state_label": L.label(L.STATES, x.get("state")), "first_at": L.local_time(x.get("first_at"), tz),
            "attempts": x.get("attempts", "0"), "closed_reason": x.get("closed_reason", ""),
            "closed_label": L.label(L.CLOSED_REASONS, x.get("closed_reason"))}


def seats(r: dict, names: dict[str, str] | None) -> list[dict]:
    """The per-seat figures by the seats' names: the name an attempt recorded,
    else the configured or live name, else the interface."""
    known = {**(names or {}), **r.get("seat_names", {})}
    out = [{"seat": L.seat_name(k, known), "interface": k, **v} for k, v in r["per_seat"].items()]
    return sorted(out, key=lambda x: (x["seat"], x["interface"]))


def figures_seats(r: dict, names: dict[str, str] | None) -> list[dict]:
    """The national figures of each seat (answered, within 15 s, ASA, the
    survey of its conversations) by the seat's name."""
    known = {**(names or {}), **r.get("seat_names", {})}
    per = r.get("figures", {}).get("per_seat", {})
    out = [{"seat": L.seat_name(k, known), "interface": k, **v} for k, v in per.items()]
    return sorted(out, key=lambda x: (x["seat"], x["interface"]))


def report(r: dict, first_rows: list[dict], a: str, b: str, tz: ZoneInfo, names: dict[str, str] | None = None) -> dict:
    """The report's page: ``r`` (``callback.report_data.gather``) and the
    period's earliest callbacks (at most ``LIST_LIMIT``) for its list."""
    return {**r, "period": {"from": a, "to": b, "timezone": str(tz.key)}, "seats": seats(r, names),
            "figures_seats": figures_seats(r, names),
            "callbacks_list": [row(x, tz, names) for x in first_rows[:LIST_LIMIT]]}


def callbacks(rows: list[dict], a: str, b: str, tz: ZoneInfo, state: str | None, kind: str | None,
              page: int = 1, per_page: int = PAGE_SIZES[0], names: dict[str, str] | None = None) -> dict:
    """One page of the period's callbacks, newest first, filtered by state and
    kind; ``pages`` says how many there are (a page past the last is empty)."""
    if state == "open":
        rows = [x for x in rows if x.get("state") != "closed"]
    elif state == "closed":
        rows = [x for x in rows if x.get("state") == "closed"]
    if kind:
        rows = [x for x in rows if x.get("kind") == kind]
    rows = sorted(rows, key=lambda x: (float(x.get("first_at", 0)), str(x.get("id", "")).zfill(20)), reverse=True)
    first = (page - 1) * per_page
    return {"period": {"from": a, "to": b}, "total": len(rows), "page": page, "per_page": per_page,
            "pages": max(1, -(-len(rows) // per_page)),
            "callbacks": [row(x, tz, names) for x in rows[first:first + per_page]]}


def csv(rows: list[dict], tz: ZoneInfo) -> str:
    return records_csv(rows, tz)


def figures_csv(fig: dict, names: dict[str, str] | None = None) -> str:
    return national.figures_csv(fig, names)
