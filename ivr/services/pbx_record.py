"""The PBX's own record against the engine's, as auditors see it: per PBX and
period, every caller of the PBX's queue_log, how they left the queue, and
whether the engine's record matched (``ivr.callback.pbx_record``). Numbers
are masked here: auditors never need the full number."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ivr.callback import labels as L
from ivr.callback.pbx_record import MATCHED, Verdict, calls_in, pbx_names, read_position
from ivr.errors import InvalidInput, NotFound
from ivr.logs import mask_number

if TYPE_CHECKING:
    import redis.asyncio as aioredis

MAX_CALLS = 10_000          # callers listed per PBX and period (the counts cover them all)


def _num(v: str | None) -> float | None:
    try:
        return float(v) if v not in (None, "") else None
    except ValueError:
        return None


def _row(call: dict[str, str]) -> dict[str, Any]:
    verdict = call.get("verdict") or Verdict.PENDING
    return {
        "uniqueid": call.get("uniqueid", ""), "number": mask_number(call.get("number", "")),
        "queue": call.get("queue", ""), "entered": _num(call.get("entered")), "left_at": _num(call.get("left_at")),
        "outcome": call.get("outcome", ""), "outcome_label": L.label(L.PBX_OUTCOMES, call.get("outcome")),
        "wait_s": _num(call.get("wait_s")), "talk_s": _num(call.get("talk_s")), "agent": call.get("agent", ""),
        "verdict": verdict, "verdict_label": L.label(L.PBX_VERDICTS, verdict),
        "matched": verdict in MATCHED, "settled_at": _num(call.get("settled_at")),
    }


async def reconciliation(redis: aioredis.Redis, start: float, end: float, pbx: str | None = None,
                         unmatched_only: bool = False) -> dict[str, Any]:
    """What matched and what did not, per PBX, for callers who entered a queue
    in [start, end). Raises NotFound for a PBX whose record was never read."""
    if end <= start:
        raise InvalidInput("期间无效：结束须晚于开始 (the period must end after it starts)")
    names = await pbx_names(redis)
    if pbx is not None:
        if pbx not in names:
            raise NotFound(f"没有该交换机的记录 (no queue_log read for PBX {pbx!r})")
        names = [pbx]
    out = []
    for name in names:
        calls, cut = await calls_in(redis, name, start, end, MAX_CALLS)
        rows = [_row(c) for c in calls]
        by_verdict: dict[str, int] = {}
        for r in rows:
            by_verdict[r["verdict"]] = by_verdict.get(r["verdict"], 0) + 1
        pending = by_verdict.get(Verdict.PENDING, 0)
        matched = sum(1 for r in rows if r["matched"])
        pos = await read_position(redis, name)
        out.append({
            "pbx": name,
            "read": {"offset": int(pos.get("offset") or 0), "lines": int(pos.get("lines") or 0),
                     "skipped": int(pos.get("skipped") or 0), "read_at": _num(pos.get("read_at")),
                     "note": pos.get("note", "")},
            "counts": {"calls": len(rows), "matched": matched, "unmatched": len(rows) - matched - pending,
                       "pending": pending, "by_verdict": by_verdict, "truncated": cut},
            "calls": [r for r in rows if not (unmatched_only and (r["matched"] or r["verdict"] == Verdict.PENDING))],
        })
    return {"start": start, "end": end, "pbxs": out}
