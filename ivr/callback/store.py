"""Missed calls and callbacks in Redis. Every change is one Lua script, so two
scheduler processes, or a crash and a restart, never dial one citizen twice at
the same time and never lose one.

Keys (all in ``ivr.redisdb.keys``; standalone Redis: the scripts in
``ivr.callback.scripts`` build record keys from prefixes):
- ``ivr:cb:n:<number>`` hash: the one open callback of a number (repeated
  attempts merge into it); on close it is renamed ``ivr:cb:id:<id>``.
- ``ivr:cb:pending`` zset number -> when it may next be dialled;
  ``ivr:cb:ready`` zset number -> rank (emergency first, then deadline);
  ``ivr:cb:claims`` zset number -> lease expiry of the process dialling it.
- ``ivr:cb:closed`` zset id -> closed at (reports); ``ivr:cb:seq`` ids;
  ``ivr:cb:ids`` hash id -> number of the open ones (find by id).
- ``ivr:cb:open-by-first`` zset number -> first call of every open callback,
  in any state (the oldest open one is its first member), kept by the scripts
  that open and close callbacks; ``index_open`` fills it for older data.
Every state change is also appended to the hash-chained ``ivr:audit:callbacks``,
indexed per callback (``ivr:cb:trail:<id>``, read by ``ivr.callback.trail``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import redis.asyncio as aioredis

from ivr.aio import between_pages
from ivr.audit.chain import AuditLog
from ivr.callback import scripts
from ivr.redisdb import keys
from ivr.redisdb.replies import fields, scored, text_or_none, texts

PENDING, READY, CLAIMS = keys.CALLBACK_PENDING, keys.CALLBACK_READY, keys.CALLBACK_CLAIMS
CLOSED, SEQ, IDS = keys.CALLBACK_CLOSED, keys.CALLBACK_SEQ, keys.CALLBACK_IDS
BY_FIRST = keys.CALLBACK_OPEN_BY_FIRST
CLOSED_BY_FIRST = keys.CALLBACK_CLOSED_BY_FIRST
READ_PAGE = 1000        # members per read of a whole line: Redis answers others between pages
INDEX_PASSES = 3        # passes of ``index_open`` at most
OPEN_PREFIX, CLOSED_PREFIX = keys.CALLBACK_OPEN_PREFIX, keys.CALLBACK_CLOSED_PREFIX
AUDIT = keys.CALLBACK_AUDIT

# One callback as its Redis hash holds it: field -> text (numbers as text too).
Record = dict[str, str]


def callback_audit(redis: aioredis.Redis) -> AuditLog:
    """The callbacks' audit log, indexed by callback id (``ivr.callback.trail``)."""
    return AuditLog(redis, AUDIT, index_by="id", index_prefix=keys.CALLBACK_TRAIL_PREFIX,
                    index_from=keys.CALLBACK_TRAIL_FROM)


class CallbackStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.audit = callback_audit(redis)
        self._record = redis.register_script(scripts.RECORD)
        self._claim = redis.register_script(scripts.CLAIM)
        self._finish = redis.register_script(scripts.FINISH)
        self._renew = redis.register_script(scripts.RENEW)
        self._in_call = redis.register_script(scripts.IN_CALL)
        self._close = redis.register_script(scripts.CLOSE)
        self._close_answered = redis.register_script(scripts.CLOSE_ANSWERED)
        self._index_open = redis.register_script(scripts.INDEX_OPEN)
        self._survey = redis.register_script(scripts.SURVEY)

    def record_args(self, *, number: str, now: float, started: float, kind: str, reason: str, flow: str,
                    step: str, wait_s: float | None, message: str, not_before: float,
                    deadlines: dict[str, float], misdial: bool) -> str:
        """One missed call as the record script reads it: fields joined by tabs
        (one argument per call: redis-py's packer costs per argument)."""
        text = "\t".join((flow, step, message))
        if "\t" in text:
            flow, step, message = (x.replace("\t", " ") for x in (flow, step, message))
        return (f"{number}\t{now}\t{started}\t{kind}\t{reason}\t{flow}\t{step}\t"
                f"{'' if wait_s is None else round(wait_s, 1)}\t{message}\t{not_before}\t{deadlines['emergency']}\t"
                f"{deadlines['courtesy']}\t{deadlines['ordinary']}\t{'1' if misdial else '0'}")

    async def record(self, args: str) -> tuple[str, str, int]:
        return (await self.record_many([args]))[0]

    async def queue_records(self, pipe: aioredis.client.Pipeline, batch: list[str], chunk: int = 250) -> int:
        """Queue the record script for ``batch`` in ``pipe``; returns how many
        results it will add (one per chunk; see ``parse_records``)."""
        calls = 0
        for i in range(0, len(batch), chunk):
            await self._record(keys=[PENDING, READY, CLAIMS, SEQ, CLOSED, IDS, BY_FIRST, CLOSED_BY_FIRST],
                               args=[OPEN_PREFIX, CLOSED_PREFIX, *batch[i:i + chunk]], client=pipe)
            calls += 1
        return calls

    @staticmethod
    def parse_records(results: list[Any]) -> list[tuple[str, str, int]]:
        return [(flat[j], str(flat[j + 1]), int(flat[j + 2])) for flat in results for j in range(0, len(flat), 3)]

    async def record_many(self, batch: list[str], chunk: int = 250) -> list[tuple[str, str, int]]:
        """Many missed calls per script call: the per-command cost of the client
        (packing, parsing) was most of the ingest time."""
        pipe = self.redis.pipeline(transaction=False)
        await self.queue_records(pipe, batch, chunk)
        return self.parse_records(await pipe.execute())

    async def claim(self, *, now: float, lease_s: float, owner: str, count: int) -> tuple[int, list[str]]:
        """Move due callbacks to the ready line, give back claims whose holder
        died, and claim up to ``count``. Returns (recovered, numbers claimed)."""
        out = await self._claim(keys=[PENDING, READY, CLAIMS], args=[now, now + lease_s, owner, count, OPEN_PREFIX])
        return int(out[0]), [str(x) for x in out[1:]]

    async def renew(self, numbers: list[str], *, owner: str, lease_until: float) -> int:
        """Keep the claims of attempts still under way: a conversation may last
        longer than the lease, and a lapsed lease would hand the citizen to
        another dialler."""
        if not numbers:
            return 0
        return int(await self._renew(keys=[CLAIMS], args=[lease_until, owner, OPEN_PREFIX, *numbers]))

    async def mark_in_call(self, number: str, *, owner: str, channel: str, seat: str) -> bool:
        """The seat answered: the attempt's channel, until its outcome is written."""
        return bool(await self._in_call(keys=[], args=[number, owner, channel, seat, OPEN_PREFIX]))

    async def finish(self, number: str, owner: str, *, outcome: str, seat: str, now: float,
                     next_at: float | None, close_reason: str = "") -> str:
        ok, what = await self._finish(keys=[PENDING, CLAIMS, CLOSED, IDS, BY_FIRST, CLOSED_BY_FIRST],
                                      args=[number, owner, outcome, seat, now, "" if next_at is None else next_at,
                                            close_reason, OPEN_PREFIX, CLOSED_PREFIX])
        return what if ok else "not_owner"

    async def close(self, number: str, *, now: float, reason: str) -> tuple[bool, str]:
        ok, what = await self._close(keys=[PENDING, READY, CLAIMS, CLOSED, IDS, BY_FIRST, CLOSED_BY_FIRST],
                                     args=[number, now, reason, OPEN_PREFIX, CLOSED_PREFIX])
        return bool(ok), str(what)

    async def close_answered(self, number: str, *, answered_at: float, now: float,
                             reason: str) -> tuple[str, str]:
        """The PBX saw ``number`` answered at ``answered_at``: close its open
        callback if every missed call in it came before (one step against the
        scheduler's claim). Returns (what, id): ``closed``, ``assigned`` (being
        dialled: closed after that attempt), ``later`` (a missed call after the
        answer keeps it open) or ``none``."""
        out = await self._close_answered(keys=[PENDING, READY, CLAIMS, CLOSED, IDS, BY_FIRST, CLOSED_BY_FIRST],
                                         args=[number, answered_at, now, reason, OPEN_PREFIX, CLOSED_PREFIX])
        if int(out[0]) == 1:
            return "closed", str(out[1])
        return (str(out[1]) or "none"), (str(out[2]) if len(out) > 2 else "")

    async def index_open(self) -> int:
        """Add every open callback to ``ivr:cb:open-by-first`` (callbacks
        opened before the index existed), a page of each line at a time, each
        page one step; run on every engine's start. Returns how many were
        missing. Idempotent: a callback already indexed keeps its entry.
        A callback that moves from one line to another while they are read
        can be missed by a pass: passes are repeated while the index holds
        fewer than the lines (a few at most; the next start completes it)."""
        added = 0
        for _ in range(INDEX_PASSES):
            for key in (CLAIMS, READY, PENDING):
                async for page in self._pages(key):
                    added += int(await self._index_open(keys=[BY_FIRST], args=[OPEN_PREFIX, *page]))
            if await self.redis.zcard(BY_FIRST) >= (await self.counts())["open"]:
                break
        return added

    async def index_closed(self) -> int:
        """Add every closed callback to ``ivr:cb:closed-by-first`` (callbacks
        closed before the scripts kept it), a page at a time; run on every
        engine's start, a no-op once the index holds every closed callback.
        Returns how many were missing."""
        if await self.redis.zcard(CLOSED_BY_FIRST) >= await self.redis.zcard(CLOSED):
            return 0
        added = 0
        async for page in self._pages(CLOSED):
            known = await self.redis.zmscore(CLOSED_BY_FIRST, page)
            missing = [cid for cid, score in zip(page, known, strict=True) if score is None]
            if not missing:
                continue
            pipe = self.redis.pipeline(transaction=False)
            for cid in missing:
                pipe.hget(keys.callback_closed(cid), "first_at")
            firsts = await pipe.execute()
            found = {cid: float(f) for cid, f in zip(missing, firsts, strict=True) if f is not None}
            if found:
                added += int(await self.redis.zadd(CLOSED_BY_FIRST, found, nx=True) or 0)
        return added

    async def _pages(self, key: str) -> AsyncIterator[list[str]]:
        at = 0
        while True:
            page = texts(await self.redis.zrange(key, at, at + READ_PAGE - 1))
            if page:
                yield page
            if len(page) < READ_PAGE:
                return
            at += READ_PAGE
            await between_pages()

    async def oldest_open_first_at(self) -> float | None:
        """The first call of the oldest open callback, whatever its state
        (waiting, being dialled, waiting for its next attempt)."""
        head = scored(await self.redis.zrange(BY_FIRST, 0, 0, withscores=True))
        return head[0][1] if head else None
    async def record_survey(self, cid: str, *, rating: str, seat: str, at: float, call: str) -> tuple[str, str]:
        """The citizen's answer to the survey after callback ``cid``'s
        conversation (``no_answer`` included), with the seat and the time.
        Returns (what, number): ``recorded``, ``duplicate`` (this call's answer
        is there already) or ``unknown`` (no such callback)."""
        out = await self._survey(keys=[IDS], args=[cid, rating, seat, f"{at:.3f}", call, OPEN_PREFIX, CLOSED_PREFIX])
        if int(out[0]) == 1:
            return "recorded", str(out[1])
        return (str(out[1]) or "unknown"), ""

    async def open_record(self, number: str) -> Record | None:
        h = fields(await self.redis.hgetall(keys.callback_open(number)))
        return h or None

    async def closed_record(self, cid: str) -> Record | None:
        h = fields(await self.redis.hgetall(keys.callback_closed(cid)))
        return h or None

    async def counts(self) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        for k in (PENDING, READY, CLAIMS, CLOSED):
            pipe.zcard(k)
        p, r, c, d = await pipe.execute()
        return {"pending": p, "ready": r, "assigned": c, "closed": d, "open": p + r + c}


class CallbackQueries:
    """Reads for staff and auditors (lists, one record, reports)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def open_numbers(self, limit: int = 50) -> list[tuple[str, str, float]]:
        """(number, where, score): assigned first, then ready in calling order, then pending by time."""
        out: list[tuple[str, str, float]] = []
        for key, where in ((CLAIMS, "assigned"), (READY, "ready"), (PENDING, "pending")):
            for number, score in scored(await self.redis.zrange(key, 0, limit - 1, withscores=True)):
                out.append((number, where, score))
        return out[:limit]

    async def records(self, numbers: list[str]) -> list[Record]:
        pipe = self.redis.pipeline(transaction=False)
        for n in numbers:
            pipe.hgetall(keys.callback_open(n))
        return [r for r in await pipe.execute() if r]

    async def find(self, key: str) -> Record | None:
        """An open callback by number, or any callback by id."""
        rec = fields(await self.redis.hgetall(keys.callback_open(key))) if not key.isdigit() or len(key) > 8 else {}
        if rec:
            return rec
        rec = fields(await self.redis.hgetall(keys.callback_closed(key)))
        if rec:
            return rec
        if not key.isdigit():
            return None
        number = text_or_none(await self.redis.hget(IDS, key))          # an open one by id
        if number is not None:
            rec = fields(await self.redis.hgetall(keys.callback_open(number)))
            return rec if rec.get("id") == key else None
        return await self._find_unindexed(key)

    async def _find_unindexed(self, cid: str) -> Record | None:
        """Open callbacks recorded before ``ivr:cb:ids`` existed: scan the
        lines once and add the one found to the index."""
        if int(cid) > int(await self.redis.get(SEQ) or 0):
            return None
        for k in (CLAIMS, READY, PENDING):
            async for member, _ in self.redis.zscan_iter(k):
                number = cast(str, member)         # a decoded client's reply
                r = fields(await self.redis.hgetall(keys.callback_open(number)))
                if r.get("id") == cid:
                    await self.redis.hsetnx(IDS, cid, number)
                    return r
        return None

    async def all_records(self, closed_since: float, fields: tuple[str, ...] | None = None) -> list[Record]:
        # Every read in pages of READ_PAGE: one ZRANGE of 29,000 numbers held
        # Redis (and every call's command queued behind it) for milliseconds.
        # The open ones first: their numbers from the index by first call,
        # scanned (a callback never moves within it, and a scan returns every
        # member present throughout), then their records. Then the closed ones,
        # index and records: a callback closed at any moment of the open reads
        # is among them (closing moves it in one script). Read before the open
        # reads were done, the closed index missed one that closed after it
        # was read but before its open record was (the Beijing day's report
        # lacked 5 callbacks reached as it read). One read open and then seen
        # closed is counted once, as closed.
        want = None if fields is None else tuple(dict.fromkeys((*fields, "id")))
        numbers = list(dict.fromkeys([cast(str, n) async for n, _ in self.redis.zscan_iter(BY_FIRST,
                                                                                             count=READ_PAGE)]))
        open_ = await self._read([keys.callback_open(n) for n in numbers], want)
        ids = list(dict.fromkeys([i async for i in self._paged(CLOSED, closed_since)]))
        closed = await self._read([keys.callback_closed(i) for i in ids], want)
        seen = {r.get("id") for r in closed}
        return closed + [r for r in open_ if r.get("id") is None or r.get("id") not in seen]

    async def by_first(self, key: str, start: float, end: float, limit: int | None = None) -> list[str]:
        """Members of an index by first call (``open-by-first``, ``closed-by-first``)
        scored in [start, end), READ_PAGE at a time (a month's million in one
        reply held Redis); ``limit``: the earliest only."""
        out: list[str] = []
        while limit is None or len(out) < limit:
            want = READ_PAGE if limit is None else min(READ_PAGE, limit - len(out))
            page = texts(await self.redis.zrangebyscore(key, start, f"({end}", len(out), want))
            out += page
            if len(page) < want:
                break
            await between_pages()
        return out

    async def open_records(self, numbers: list[str], fields: tuple[str, ...] | None = None) -> list[Record]:
        """The open callbacks of ``numbers`` (those still open)."""
        return await self._read([keys.callback_open(n) for n in numbers], fields)

    async def closed_records(self, ids: list[str], fields: tuple[str, ...] | None = None) -> list[Record]:
        """The closed callbacks ``ids``."""
        return await self._read([keys.callback_closed(i) for i in ids], fields)

    async def _read(self, names: list[str], fields: tuple[str, ...] | None) -> list[Record]:
        """The records at ``names`` (all their fields, or only ``fields``), those that exist."""
        out: list[Record] = []
        for at in range(0, len(names), 250):       # in slices: one huge pipeline holds Redis for everyone
            pipe = self.redis.pipeline(transaction=False)
            for k in names[at:at + 250]:
                if fields is None:
                    pipe.hgetall(k)
                else:                   # only these fields (a million whole records took gigabytes)
                    pipe.hmget(k, fields)
            got = await pipe.execute()
            if fields is not None:
                got = [{f: v for f, v in zip(fields, row, strict=True) if v is not None} for row in got]
            out += [r for r in got if r]
            await between_pages()
        return out

    async def _paged(self, key: str, min_score: float | None = None) -> AsyncIterator[str]:
        """Members of a sorted set (those scored >= ``min_score``), READ_PAGE at a time."""
        at = 0
        while True:
            if min_score is None:
                page = texts(await self.redis.zrange(key, at, at + READ_PAGE - 1))
            else:
                page = texts(await self.redis.zrangebyscore(key, min_score, "+inf", start=at, num=READ_PAGE))
            for m in page:
                yield m
            if len(page) < READ_PAGE:
                return
            at += READ_PAGE
            await between_pages()
