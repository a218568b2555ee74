"""The auditors' report of a period summed from its hours (issue 19: a month of
3 million call summaries and a million callbacks in under 10 s).

Reading a month item by item took 142 s at that size (docs/benchmarks.md).
Here each hour of the period is summed once into a part kept in Redis, and a
report adds up the parts; only what can still change is read item by item:

- **flow part** of an hour: the call summaries that started in it and the
  callback attempts made in it. Final once every call that started in it
  has ended (a summary is written by the same script that takes the call off
  the live calls, ``ivr:calls:live``, which carries each call's start) and
  a few minutes have passed (``END_MARGIN_S``): usually the hour before the
  current one. Younger hours are read from the streams at each report. A part is kept only for an hour the calls
  stream still held from its start: a month's figures then outlive the
  stream's cap.
- **closed part** of an hour: the closed callbacks whose first missed call
  was in it (``ivr:cb:closed-by-first``, kept by the store's scripts). A
  closed callback never changes what the report reads of it, so a part holds
  while the index counts as many callbacks in its hour as the part did; a
  callback closed since makes the count differ and the hour is read again.
- **open callbacks** are read at each report: the backlog, not the month.
  They are read before the closed parts; one that closed in between is in a
  closed part by then and counted there only (each part keeps its ids).

Each part is a ``Sums``: the counts of the report, the hotline figures and
the national ones (``ivr.callback.figures``), and the sets behind its counts
of citizens (numbers kept as 64-bit hashes, never as numbers) and the delays
behind its percentiles, so that the period's figures are exactly those of
reading every item (``gather_full``; ``ivr bench callbacks --report`` and the
tests compare the two).
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import hashlib
import time
from array import array
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
import redis.asyncio as aioredis

from ivr.aio import between_pages
from ivr.callback.figures import Figures
from ivr.callback.policy import LINES_FULL, reached_a_person
from ivr.callback.report import pct
from ivr.callback.states import Outcome, RecordState
from ivr.redisdb import keys
from ivr.stats import percentile_of_sorted

HOUR_S = 3600
SEAL_AFTER_S = 6 * HOUR_S          # as read_calls' margin past a period: a summary is written when its call ends
ATTEMPT_MARGIN_S = 600.0           # an attempt's audit entry is written after its ``at`` (retried a while)
END_MARGIN_S = 300.0               # a call's summary is written as it leaves the live calls (and clocks differ)
PART_TTL_S = 400 * 86400           # a year's months and their comparison with last year's
PART_VERSION = 1                   # bumped when a part's meaning changes: older parts are summed again
# what the report reads of a callback record
RECORD_FIELDS = ("id", "number", "kind", "state", "calls", "first_at", "deadline", "first_callback_at",
                 "attempts", "closed_at", "closed_reason")
REC_COUNTS = ("rows", "missed_calls", "counted", "called_back", "reached", "reached_within_deadline", "attempts",
              "closed_reached_later", "closed_unreached", "cancelled", "still_open", "emergency")
CALL_COUNTS = ("calls", "wanted", "live", "blocked")
_SETS = ("counted_n", "reached_n", "misdial_n", "wanted_n", "live_n")


def number_key(number: str) -> int:
    """A citizen's number as the parts keep it: 64 bits of BLAKE2b (a month's
    citizens collide with odds below one in ten million)."""
    return int.from_bytes(hashlib.blake2b(number.encode("utf-8", "replace"), digest_size=8).digest(), "little")


def _f(v: object, default: float = 0.0) -> float:
    try:
        return float(v) if v not in (None, "") else default      # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


class Sums:
    """The report's counts of [start, end): add callback records, call
    summaries and attempts' audit entries (each counted only when its own time
    is in the period), or another ``Sums`` of the same period (``merge``)."""

    def __init__(self, start: float, end: float, tz: dt.tzinfo, now: float | None = None) -> None:
        self.start, self.end = start, end
        self.rec = dict.fromkeys(REC_COUNTS, 0)
        self.calls = dict.fromkeys(CALL_COUNTS, 0)
        self.counted_n: set[int] = set()      # numbers of the callbacks counted (not misdials)
        self.reached_n: set[int] = set()      # ... reached (or on a later call) within the deadline
        self.misdial_n: set[int] = set()      # ... of misdials
        self.wanted_n: set[int] = set()       # numbers of calls that wanted a person
        self.live_n: set[int] = set()         # ... and reached one
        self.delays = array("d")              # first callback - first missed call, of each called back
        self.ids = array("q")                 # the callbacks' ids (a closed part's: see the module's docstring)
        self.seats: dict[str, list[int]] = {}     # seat -> [attempts, reached]
        self.names: dict[str, str] = {}           # seat -> the name its attempts recorded
        self.figures = Figures(start, end, tz, now)

    # -- adding ------------------------------------------------------------------------

    def add_record(self, r: Mapping[str, str]) -> None:
        first = _f(r.get("first_at"))
        if not self.start <= first < self.end:
            return
        c = self.rec
        c["rows"] += 1
        c["missed_calls"] += int(_f(r.get("calls"), 1))
        rid = r.get("id")
        if rid and str(rid).isdigit():
            self.ids.append(int(rid))
        reason = str(r.get("closed_reason") or "")
        number = number_key(r.get("number") or "")
        if reason == "misdial":
            self.misdial_n.add(number)
            return
        c["counted"] += 1
        self.counted_n.add(number)
        if r.get("first_callback_at"):
            c["called_back"] += 1
            self.delays.append(float(r["first_callback_at"]) - first)
        in_time = _f(r.get("closed_at")) <= _f(r.get("deadline"))
        if reason == "reached":
            c["reached"] += 1
            c["reached_within_deadline"] += in_time
        if reason in ("reached", "reached_later") and in_time:
            self.reached_n.add(number)
        c["attempts"] += int(_f(r.get("attempts")))
        c["closed_reached_later"] += reason == "reached_later"
        c["closed_unreached"] += reason == "unreached"
        c["cancelled"] += reason.startswith("cancelled")
        c["still_open"] += r.get("state") != RecordState.CLOSED
        c["emergency"] += r.get("kind") == "emergency"

    def add_call(self, s: Mapping[str, str]) -> None:
        """A call summary (``ivr.calls.service.summary_fields``)."""
        if not self.start <= _f(s.get("started"), -1.0) < self.end:
            return
        self.figures.add_call(s)
        c = self.calls
        # a call moved to another PBX's emergency queue is one call, counted on the PBX that took it
        c["calls"] += not s.get("moved_to")
        if s.get("wanted_person") != "1":
            return
        c["wanted"] += 1
        number = s.get("number") or ""
        if number:
            self.wanted_n.add(number_key(number))
        if reached_a_person(s):
            c["live"] += 1
            if number:
                self.live_n.add(number_key(number))
        c["blocked"] += s.get("outcome") == LINES_FULL

    def add_attempt(self, e: Mapping[str, Any]) -> None:
        """A callback attempt's audit entry (kind 'attempt')."""
        if not self.start <= _f(e.get("at"), -1.0) < self.end:
            return
        self.figures.add_attempt(e)
        seat = str(e.get("seat") or "?")
        if e.get("seat_name"):
            self.names[seat] = str(e["seat_name"])
        if e.get("outcome") == Outcome.SEAT_NO_ANSWER:
            return
        t = self.seats.setdefault(seat, [0, 0])
        t[0] += 1
        t[1] += e.get("outcome") == Outcome.REACHED

    def merge(self, o: Sums) -> None:
        """Add another part (a later hour: its seats' names win)."""
        for k, v in o.rec.items():
            self.rec[k] += v
        for k, v in o.calls.items():
            self.calls[k] += v
        for name in _SETS:
            getattr(self, name).update(getattr(o, name))
        self.delays.extend(o.delays)
        self.ids.extend(o.ids)
        for seat, (a, r) in o.seats.items():
            t = self.seats.setdefault(seat, [0, 0])
            t[0] += a
            t[1] += r
        self.names.update(o.names)
        self.figures.merge(o.figures)

    # -- kept in Redis --------------------------------------------------------------------

    def dump(self) -> dict[str, str]:
        """As a Redis hash: the counts as JSON, the sets and delays as packed
        arrays in base64 (every client of the engine decodes replies as text)."""
        meta = {"v": PART_VERSION, "rec": self.rec, "calls": self.calls, "seats": self.seats, "names": self.names,
                "figures": self.figures.dump()}
        out = {"meta": orjson.dumps(meta).decode(), "delays": _b64(self.delays), "ids": _b64(self.ids)}
        for name in _SETS:
            out[name] = _b64(array("Q", getattr(self, name)))
        return out

    def load(self, d: Mapping[str, str]) -> bool:
        """Add a part ``dump`` wrote, straight into these sums (a month adds
        some 1,500 parts: no object per part); False (nothing added) for a
        part of another version."""
        meta = orjson.loads(d["meta"])
        if meta.get("v") != PART_VERSION:
            return False
        for k, v in meta["rec"].items():
            self.rec[k] += v
        for k, v in meta["calls"].items():
            self.calls[k] += v
        for seat, (a, r) in meta["seats"].items():
            t = self.seats.setdefault(seat, [0, 0])
            t[0] += a
            t[1] += r
        self.names.update(meta["names"])
        self.figures.load(meta["figures"])
        self.delays.frombytes(base64.b64decode(d.get("delays", "")))
        self.ids.frombytes(base64.b64decode(d.get("ids", "")))
        for name in _SETS:
            got = array("Q")
            got.frombytes(base64.b64decode(d.get(name, "")))
            getattr(self, name).update(got)
        return True

    # -- the figures ----------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """The report's callback figures (``ivr.callback.report.report``)."""
        c = self.rec
        delays = sorted(self.delays)
        per_seat = {k: {"attempts": v[0], "reached": v[1]} for k, v in sorted(self.seats.items())}
        return {
            "missed_calls": c["missed_calls"],
            "misdials": c["rows"] - c["counted"],
            "unique_citizens": len(self.counted_n),
            "callbacks": c["counted"],
            "called_back": c["called_back"],
            "reached": c["reached"],
            "reached_within_deadline": c["reached_within_deadline"],
            "reached_within_deadline_pct": pct(c["reached_within_deadline"], c["counted"]),
            "first_callback_p50_s": percentile_of_sorted(list(delays), 50),
            "first_callback_p95_s": percentile_of_sorted(list(delays), 95),
            "attempts": c["attempts"],
            "closed_reached_later": c["closed_reached_later"],
            "closed_unreached": c["closed_unreached"],
            "cancelled": c["cancelled"],
            "still_open": c["still_open"],
            "emergency": c["emergency"],
            "per_seat": per_seat,
            "seat_names": {k: v for k, v in sorted(self.names.items()) if k in per_seat},
        }

    def hotline(self) -> dict[str, int | float | None]:
        """The hotline's figures (``ivr.callback.report.hotline_figures``)."""
        c = self.calls
        reached = self.live_n | self.reached_n
        misdial_only = self.misdial_n - self.counted_n - reached
        citizens = self.wanted_n - misdial_only
        got = len(citizens & reached)
        seats = len(self.seats)
        made = sum(v[0] for v in self.seats.values())
        hit = sum(v[1] for v in self.seats.values())
        return {
            "calls": c["calls"],
            "calls_wanting_person": c["wanted"],
            "calls_answered_live": c["live"],
            "blocked_attempts": c["blocked"],
            "live_answer_rate_pct": pct(c["live"], c["wanted"]),
            "citizens_wanting_person": len(citizens),
            "citizens_reached": got,
            "broad_answer_rate_pct": pct(got, len(citizens)),
            "seats_calling_back": seats,
            "callbacks_made_per_seat": round(made / seats, 1) if seats else None,
            "callbacks_reached_per_seat": round(hit / seats, 1) if seats else None,
        }


def _b64(a: array[Any]) -> str:
    return base64.b64encode(a.tobytes()).decode("ascii")


# -- the hours of a period ---------------------------------------------------------------------


def pieces(start: float, end: float) -> list[tuple[float, float]]:
    """[start, end) cut at the whole hours: whole hours, and at its ends the
    parts of an hour a period in a time zone of half hours leaves."""
    out: list[tuple[float, float]] = []
    a = start
    while a < end:
        b = min(end, (a // HOUR_S + 1) * HOUR_S)
        out.append((a, b))
        a = b
    return out


def whole(piece: tuple[float, float]) -> bool:
    a, b = piece
    return a % HOUR_S == 0 and b - a == HOUR_S


def _key(kind: str, piece: tuple[float, float]) -> str:
    return f"{keys.REPORT_PART_PREFIX}{kind}:{int(piece[0] // HOUR_S)}"


class _Sorter:
    """Sends each item to the piece its time falls in."""

    def __init__(self, ps: list[tuple[float, float]], sums: list[Sums]) -> None:
        self.starts = [a for a, _ in ps]
        self.sums = sums

    def of(self, at: float) -> Sums | None:
        i = bisect.bisect_right(self.starts, at) - 1
        return self.sums[i] if i >= 0 else None


def _runs(ps: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """Consecutive pieces together: one read of the stream each."""
    out: list[list[tuple[float, float]]] = []
    for p in ps:
        if out and out[-1][-1][1] == p[0]:
            out[-1].append(p)
        else:
            out.append([p])
    return out


async def _flow_sums(redis: aioredis.Redis, ps: list[tuple[float, float]], tz: dt.tzinfo,
                     lead_s: float = 0.0) -> list[Sums]:
    """The calls and attempts of each piece, read from the streams: one read per
    run of pieces. ``lead_s``: how far the engines' clock runs ahead of the
    Redis host's (``clock_lead``; negative: behind, as a drill started at 09:00
    in the afternoon): stream ids are that host's time, so the read starts or
    ends that much earlier or later."""
    from ivr.audit.chain import AuditLog
    from ivr.callback.streams import audit_entries, read_calls

    out: dict[tuple[float, float], Sums] = {}
    for run in _runs(ps):
        sums = [Sums(a, b, tz) for a, b in run]
        sorter = _Sorter(run, sums)
        lo, hi = run[0][0], run[-1][1]
        hours = sorted({int(a // HOUR_S) for a, _ in run})
        pipe = redis.pipeline(transaction=False)
        for h in hours:
            pipe.lrange(f"{keys.REPORT_LATE_PREFIX}{h}", 0, -1)
        late = [orjson.loads(j) for got in await pipe.execute() for j in got]
        seen: set[str] | None = set() if late else None      # the uniqueids read, when there is a late one

        def add_call(s: Mapping[str, str], sorter: _Sorter = sorter, seen: set[str] | None = seen) -> None:
            part = sorter.of(_f(s.get("started"), -1.0))
            if part is not None:
                part.add_call(s)
                if seen is not None:
                    seen.add(s.get("uniqueid") or "")
        await read_calls(redis, lo, hi, add_call, collect=False, ids_from=lo - max(lead_s, 0.0),
                         ids_past=max(-lead_s, 0.0))
        for s in late:          # written long after their call: beyond the read's reach, unless it found them
            if str(s.get("uniqueid") or "") not in (seen or set()):
                add_call(s)
        async for e in audit_entries(AuditLog(redis, keys.CALLBACK_AUDIT),
                                     f"{int((lo - max(lead_s, 0.0) - ATTEMPT_MARGIN_S) * 1000)}-0",
                                     f"{int((hi + max(-lead_s, 0.0) + ATTEMPT_MARGIN_S) * 1000)}-0"):
            if e.get("kind") == "attempt":
                part = sorter.of(_f(e.get("at"), -1.0))
                if part is not None:
                    part.add_attempt(e)
        out.update(zip(run, sums, strict=True))
    return [out[p] for p in ps]


async def _closed_sums(redis: aioredis.Redis, p: tuple[float, float], tz: dt.tzinfo) -> tuple[Sums, int]:
    from ivr.callback.store import CallbackQueries

    q = CallbackQueries(redis)
    ids = await q.by_first(keys.CALLBACK_CLOSED_BY_FIRST, p[0], p[1])
    s = Sums(p[0], p[1], tz)
    for r in await q.closed_records(ids, RECORD_FIELDS):
        s.add_record(r)
    return s, len(ids)


async def _parts(redis: aioredis.Redis, names: list[str], page: int = 48) -> AsyncIterator[dict[str, str]]:
    """The kept parts at ``names`` in order (an empty dict: none), a page at a
    time: a month's parts are tens of megabytes."""
    for at in range(0, len(names), page):
        pipe = redis.pipeline(transaction=False)
        for n in names[at:at + page]:
            pipe.hgetall(n)
        for d in await pipe.execute():
            yield d


async def _store(redis: aioredis.Redis, name: str, s: Sums, extra: Mapping[str, str] | None = None) -> None:
    pipe = redis.pipeline(transaction=True)
    pipe.delete(name)
    fields: dict[Any, Any] = {**s.dump(), **(extra or {})}     # redis-py's mapping: its key type is invariant
    pipe.hset(name, mapping=fields)
    pipe.expire(name, PART_TTL_S)
    await pipe.execute()


async def final_before(redis: aioredis.Redis, now: float) -> float:
    """Until when the flow parts are final: the start of the oldest call still
    under way (``ivr:calls:live`` holds ``engine|started|number`` for each;
    calls older than ``SEAL_AFTER_S`` are not waited for), and a few minutes
    ago. A summary written for an hour after its part was kept (a call out,
    which is not among the live calls; one the PBX's record settles) counts
    in ``ivr:report:written``, and the part is summed again."""
    until = now - max(END_MARGIN_S, ATTEMPT_MARGIN_S)
    for v in await redis.hvals(keys.CALLS_LIVE):
        parts = str(v).split("|")
        started = _f(parts[1], now - SEAL_AFTER_S) if len(parts) > 1 else now - SEAL_AFTER_S
        # an entry older than any call (a dead engine's, not swept: no AMI) must not stop every
        # hour after it being kept; a summary written for it later is counted in its hour anyway
        if started >= now - SEAL_AFTER_S:
            until = min(until, started)
    return until


def clock_lead(now: float) -> float:
    """How far ``now`` (the engines' clock) runs ahead of this host's (a
    drill's; negative: behind it)."""
    return now - time.time()


async def complete_from(redis: aioredis.Redis) -> float | None:
    """From when the calls stream holds every summary: None when it was never
    trimmed (trimming at its cap keeps at least the cap's entries, so a stream
    shorter than its cap has lost none), else its first entry's time (an hour
    is complete if it starts after it, by ``clock_lead`` more)."""
    from ivr.calls.service import CALLS_STREAM_MAXLEN  # lazily: it brings in the call engine

    if await redis.xlen(keys.CALLS) < CALLS_STREAM_MAXLEN:
        return None
    first = await redis.xrange(keys.CALLS, "-", "+", count=1)
    return int(str(first[0][0]).split("-", 1)[0]) / 1000 if first else None


async def sum_period(redis: aioredis.Redis, start: float, end: float, tz: dt.tzinfo,
                     now: float, *, with_open: bool = True, keep: bool = True) -> tuple[Sums, dict[str, Any]]:
    """The period's ``Sums`` from its hours' parts, computing the parts that
    are missing or stale, and keeping them unless ``keep`` is False (a
    caller that does not know the engines' clock); and how it was read
    (``how``: parts used, parts computed, items read)."""
    from ivr.callback.store import CallbackQueries

    total = Sums(start, end, tz, now)
    how: dict[str, Any] = dict.fromkeys(("flow_parts_kept", "flow_parts_summed", "flow_pieces_read",
                                         "closed_parts_kept", "closed_parts_summed", "open_callbacks"), 0)
    ps = pieces(start, end)
    # 1. the open callbacks, before the closed parts (the module's docstring)
    opened: list[dict[str, str]] = []
    if with_open:
        q = CallbackQueries(redis)
        opened = await q.open_records(await q.by_first(keys.CALLBACK_OPEN_BY_FIRST, start, end), RECORD_FIELDS)
    # 2. the closed parts, each checked against the index's count of its hour
    await _add_closed_parts(redis, total, ps, tz, how, keep)
    closed_ids = set(total.ids)     # the closed callbacks' ids (no open one is added yet)
    for r in opened:
        if str(r.get("id", "")).isdigit() and int(r["id"]) in closed_ids:
            continue        # closed while the parts were read: counted there
        total.add_record(r)
        how["open_callbacks"] += 1
    # 3. the flow parts: kept for sealed hours, read from the streams for the others
    await _add_flow_parts(redis, total, ps, tz, now, how, keep)
    return total, how


async def _add_closed_parts(redis: aioredis.Redis, total: Sums, ps: list[tuple[float, float]], tz: dt.tzinfo,
                            how: dict[str, Any], keep: bool = True) -> None:
    pipe = redis.pipeline(transaction=False)
    for a, b in ps:
        pipe.zcount(keys.CALLBACK_CLOSED_BY_FIRST, a, f"({b}")
    counts = await pipe.execute()
    names = [_key("closed", p) for p in ps]
    stale: list[tuple[tuple[float, float], str]] = []
    i = 0
    async for d in _parts(redis, names):
        p, name, n = ps[i], names[i], counts[i]
        i += 1
        if not n and not d:
            continue                # no callback first missed in this hour (an hour to come)
        if whole(p) and d and int(d.get("n", "-1")) == int(n) and total.load(d):
            how["closed_parts_kept"] += 1
        else:
            stale.append((p, name))
    for p, name in stale:
        part, n = await _closed_sums(redis, p, tz)
        if whole(p) and keep:
            await _store(redis, name, part, {"n": str(n)})
        how["closed_parts_summed"] += 1
        total.merge(part)
        await between_pages()


async def _written(redis: aioredis.Redis, ps: list[tuple[float, float]]) -> list[str]:
    """How many summaries were written for each piece's hour (``ivr:report:written``)."""
    got = await redis.hmget(keys.REPORT_WRITTEN, [str(int(a // HOUR_S)) for a, _ in ps]) if ps else []
    return [str(x or "0") for x in got]


async def _add_flow_parts(redis: aioredis.Redis, total: Sums, ps: list[tuple[float, float]], tz: dt.tzinfo,
                          now: float, how: dict[str, Any], keep: bool = True) -> None:
    lead = clock_lead(now)
    kept_from = await complete_from(redis)
    final = await final_before(redis, now)
    written = await _written(redis, ps)
    todo: list[tuple[float, float]] = []
    i = 0
    async for d in _parts(redis, [_key("flow", p) for p in ps]):
        p, w = ps[i], written[i]
        i += 1
        if whole(p) and d and d.get("w") == w and total.load(d):
            how["flow_parts_kept"] += 1
        else:
            todo.append(p)
    w_before = dict(zip(ps, written, strict=True))       # read before the streams, as a part must be
    parts = await _flow_sums(redis, todo, tz, lead)
    kept_from = max(kept_from or 0.0, await complete_from(redis) or 0.0) or None    # trimmed while read
    for p, part in zip(todo, parts, strict=True):
        sealed = keep and whole(p) and p[1] <= final
        if sealed and (kept_from is None or kept_from <= p[0] - max(lead, 0.0)):
            await _store(redis, _key("flow", p), part, {"w": w_before[p]})
            how["flow_parts_summed"] += 1
        else:
            how["flow_pieces_read"] += 1
        total.merge(part)
    # a piece read from a stream that had lost its start: its calls are missing
    how["calls_from"] = kept_from if kept_from is not None and any(p[0] - max(lead, 0.0) < kept_from
                                                                  for p in todo) else None


async def seal(redis: aioredis.Redis, tz: dt.tzinfo, now: float, days: int = 35,
               lead_s: float | None = None) -> dict[str, int]:
    """Compute the parts of the last ``days`` days that are missing or stale
    (the leader, every few minutes): a report then reads only its last hour
    and the backlog. Only whole hours whose calls are over (``final_before``).
    ``lead_s``: ``clock_lead`` as the caller saw it (a child starts later)."""
    from ivr.callback.store import CallbackStore

    await CallbackStore(redis).index_closed()     # callbacks closed by engines of an older version
    end = await final_before(redis, now) // HOUR_S * HOUR_S
    ps = pieces(end - days * 86400, end)
    kept_from = await complete_from(redis)
    lead = clock_lead(now) if lead_s is None else lead_s
    written = await _written(redis, ps)
    pipe = redis.pipeline(transaction=False)
    for p in ps:
        pipe.zcount(keys.CALLBACK_CLOSED_BY_FIRST, p[0], f"({p[1]}")
        pipe.hget(_key("closed", p), "n")
        pipe.hget(_key("flow", p), "w")
    got = await pipe.execute()
    done = {"closed_parts_summed": 0, "flow_parts_summed": 0}
    flows: list[tuple[float, float]] = []
    for i, p in enumerate(ps):
        n, have, w = got[3 * i:3 * i + 3]
        if have is None or int(have) != int(n):
            part, count = await _closed_sums(redis, p, tz)
            await _store(redis, _key("closed", p), part, {"n": str(count)})
            done["closed_parts_summed"] += 1
            await between_pages()
        if w != written[i] and (kept_from is None or kept_from <= p[0] - max(lead, 0.0)):
            flows.append(p)
    w_before = dict(zip(ps, written, strict=True))
    for run in _runs(flows):
        for at in range(0, len(run), 24):         # a day of hours at a time: one read of the streams each
            chunk = run[at:at + 24]
            parts = await _flow_sums(redis, chunk, tz, lead)
            trimmed = await complete_from(redis)
            for p, part in zip(chunk, parts, strict=True):
                if trimmed is None or trimmed <= p[0] - max(lead, 0.0):     # not trimmed while it was read
                    await _store(redis, _key("flow", p), part, {"w": w_before[p]})
                    done["flow_parts_summed"] += 1
    return done


# -- the leader's part: the hours summed in a child process ------------------------------------

SEAL_TIMEOUT_S = 1800.0


async def seal_in_child(redis: aioredis.Redis, tz: str, now: float, timeout_s: float = SEAL_TIMEOUT_S,
                        days: int = 35) -> dict[str, int]:
    """``seal`` in ``python -m ivr.callback.rollup`` at the lowest CPU priority:
    a Beijing peak hour is 200,000 summaries, seconds of CPU the leader's loop
    (AMI, the lines, the callbacks) must not spend. The request, the Redis URL
    with its password included, goes on stdin, never argv."""
    from ivr.child_process import run_module
    from ivr.errors import OffloadError
    from ivr.prompts.audio import low_priority
    from ivr.redisdb.server import url_of

    request = orjson.dumps({"url": url_of(redis), "tz": tz, "now": now, "lead": clock_lead(now), "days": days})
    code, out, err = await run_module("ivr.callback.rollup", request, timeout_s, low_priority())
    if code != 0:
        raise OffloadError(f"报表小时汇总失败 summing the report's hours failed: "
                           f"{err.decode(errors='replace').strip().splitlines()[-1:] or ['?']}")
    done: dict[str, int] = orjson.loads(out)
    return done


def main() -> None:
    import asyncio
    import sys
    from zoneinfo import ZoneInfo

    from ivr.redisdb.server import connect

    request = orjson.loads(sys.stdin.buffer.read())

    async def go() -> dict[str, int]:
        redis = connect(request["url"], socket_timeout=120)
        try:
            return await seal(redis, ZoneInfo(request["tz"]), float(request["now"]), days=int(request["days"]),
                              lead_s=float(request["lead"]))
        finally:
            await redis.aclose()
    sys.stdout.buffer.write(orjson.dumps(asyncio.run(go())))


if __name__ == "__main__":
    main()
