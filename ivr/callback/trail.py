"""One callback's audit trail: its entries in ``ivr:audit:callbacks``.

The audit script pushes every entry's stream id to ``ivr:cb:trail:<id>`` in
the same atomic step as the entry (``ivr.callback.store.callback_audit``), so a
trail costs one list read and one XRANGE per entry, however long the log.
Entries written before that index existed (``ivr:cb:trail-from`` says where
it starts) are found the old way, by scanning the log up to there, and only
for callbacks whose first call came before it.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as aioredis

from ivr.audit.chain import AuditLog, Entry
from ivr.redisdb import keys
from ivr.redisdb.replies import text_or_none, texts

SCAN_BATCH = 5000


def _ms(stream_id: str) -> int:
    return int(stream_id.partition("-")[0])


async def read_trail(redis: aioredis.Redis, rec: Mapping[str, str]) -> list[tuple[str, Entry]]:
    """(stream id, entry) of callback ``rec`` (a record with ``id`` and
    ``first_at``), oldest first."""
    cid = str(rec["id"])
    log = AuditLog(redis, keys.CALLBACK_AUDIT)
    pipe = redis.pipeline(transaction=False)
    pipe.lrange(keys.callback_trail(cid), 0, -1)
    pipe.get(keys.CALLBACK_TRAIL_FROM)
    ids_reply, from_reply = await pipe.execute()
    ids, index_from = texts(ids_reply), text_or_none(from_reply)
    older: list[tuple[str, Entry]] = []
    if index_from is None or float(rec.get("first_at") or 0) * 1000 < _ms(index_from):
        older = await scan_log(log, cid, "(" + index_from if index_from else "+")
    return older + await log.entries_at(ids)


async def scan_log(log: AuditLog, cid: str, end: str) -> list[tuple[str, Entry]]:
    """The entries of ``cid`` up to ``end`` by reading the log (unindexed)."""
    out: list[tuple[str, Entry]] = []
    start = "-"
    while True:
        rows = await log.entries(start, end, count=SCAN_BATCH)
        out += [(rid, e) for rid, e in rows if str(e.get("id")) == cid]
        if len(rows) < SCAN_BATCH:
            return out
        start = "(" + rows[-1][0]
