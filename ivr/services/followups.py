"""Follow-up calls (智能回访) as seat managers and auditors use them: choose a
sample (a share of one day's reached callbacks or answered calls, of one kind
or all), see a batch and what the citizens said. The calls themselves are made
by the leader's follow-up caller (``ivr.callback.followup_caller``). Numbers
are masked here: only the caller dials the full number."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from ivr.callback.followup import (
    SOURCES,
    FollowupStore,
    audit_id,
    candidates_of_callbacks,
    candidates_of_calls,
    checked_source,
    outcome_counts,
    parse_share,
    sample,
)
from ivr.callback.store import CallbackQueries
from ivr.callback.streams import read_calls
from ivr.errors import InvalidInput, NotFound
from ivr.logs import mask_number
from ivr.services.callbacks import report_period

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    import redis.asyncio as aioredis

ITEM_FIELDS = ("id", "state", "attempts", "last_outcome", "closed_reason", "heard", "survey", "survey_seat",
               "comment", "answered_at", "source", "source_seat", "source_kind")


async def choose(redis: aioredis.Redis, tz: ZoneInfo, *, share: str, of: str, day: str | None, kind: str = "",
                 by: str, now: float | None = None) -> dict[str, Any]:
    """A sample chosen and queued for calling (``day`` by default the day of
    ``now`` in the hotline's time zone); every follow-up in it gets an
    audit entry ``followup_chosen`` with who chose it. Refused (``InvalidInput``,
    Chinese first): a share above 100 % or not above 0, an unknown source, a
    wrong day, or a sample with nobody in it."""
    fraction = parse_share(share)
    checked_source(of)
    now = time.time() if now is None else now
    # no day given: the day of ``now`` (the engine's clock, a drill's simulated one), not the wall clock's
    day = day or dt.datetime.fromtimestamp(now, tz).date().isoformat()
    p = report_period(tz, day, day)
    if of == "reached-callbacks":
        found = candidates_of_callbacks(await CallbackQueries(redis).all_records(closed_since=p.start), p.start,
                                        p.end, kind)
    else:
        found = candidates_of_calls(await read_calls(redis, p.start, p.end), kind)
    chosen = sample(found, fraction, salt=f"{p.date_from}|{of}|{kind}|{now:.3f}")
    if not chosen:
        what = SOURCES[of]
        raise InvalidInput(f"样本为空：{p.date_from} 没有{what[0]}{f'（{kind}）' if kind else ''} — the sample is "
                           f"empty: no {what[1]}{f' of kind {kind}' if kind else ''} on {p.date_from}")
    store = FollowupStore(redis)
    bid, ids = await store.create(chosen, now=now, by=by, share=fraction, of=of, day=p.date_from, kind=kind)
    await store.audit.append([{"kind": "followup_chosen", "at": now, "id": audit_id(fid), "batch": bid,
                               "number": mask_number(c.number), "source": c.source, "of": of, "by": by}
                              for fid, c in zip(ids, chosen, strict=True)])
    return {"batch": bid, "of": of, "day": p.date_from, "kind": kind, "share": fraction, "candidates": len(found),
            "chosen": len(chosen), "by": by, "created_at": now}


async def batch(redis: aioredis.Redis, bid: str) -> dict[str, Any]:
    """One batch: who chose it, its follow-ups (numbers masked) and its figures."""
    head, items = await FollowupStore(redis).batch(bid)
    if head is None:
        raise NotFound(f"没有回访批次 {bid} — no follow-up batch {bid}")
    return {"batch": head, "figures": outcome_counts(items),
            "items": [{"number": mask_number(i.get("number", "")), "kind": "followup",
                       **{k: i.get(k, "") for k in ITEM_FIELDS}} for i in items]}


async def batches(redis: aioredis.Redis, limit: int = 50) -> list[dict[str, str]]:
    return await FollowupStore(redis).batches(limit)
