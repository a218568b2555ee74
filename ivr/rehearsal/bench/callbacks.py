"""`ivr bench callbacks`: a backlog of missed calls from repeat dialers, on a
fresh embedded redis-server.

- Ingest: call summaries through the real capture path (classify, the record
  script with merging, the hash-chained audit entries), in batches as the
  capture loop reads them. Baseline in the same run: the cheapest possible
  write of the same entries (one pipelined XADD each).
- Claim: one callback at a time, as the scheduler claims for a free seat
  (moving due entries, recovering dead claims, popping the best one). Baseline:
  a bare ZPOPMIN on the same ready line.
- Memory: Redis used_memory per open callback (its hash and its place in the
  lines), and, separately, the audit log and its per-callback trail index per
  missed call.
- Trail: reading one callback's audit trail (``ivr callbacks show``, the
  auditors' page) for random callbacks, through the trail index; baseline: a
  few reads the way it was done before the index, scanning the whole log.

What the trail index costs at ingest: ``ivr bench callbacks --redis-cpu 3``
(200,000 missed calls) measures Redis CPU per missed call
(utime + stime of the redis-server process from /proc, before and after the
ingest) with the index and without it, alternating on fresh servers, and
quotes medians and the ratio: wall-clock rates on a shared machine move more
than the index costs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis

from ivr import logs
from ivr.audit.chain import AuditLog
from ivr.callback.capture import MissedCallCapture
from ivr.callback.policy import Policy
from ivr.callback.store import AUDIT, CallbackQueries, CallbackStore
from ivr.callback.trail import read_trail, scan_log
from ivr.redisdb import keys
from ivr.redisdb.server import EmbeddedRedis, connect
from ivr.rehearsal.bench.servers import cpu_s

BATCH = 2000


def summaries(calls: int, numbers: int, t0: float, rng: random.Random) -> list[tuple[str, dict]]:
    out = []
    statuses = ["ABANDONED"] * 6 + ["TIMEOUT"] * 3 + ["FULL"]
    for i in range(calls):
        n = rng.randrange(numbers)
        status = rng.choice(statuses)
        out.append((f"{i}-0", {
            "uniqueid": f"{t0 + i:.3f}", "number": f"13{n:09d}", "flow": "main", "started": f"{t0 + i * 0.05:.3f}",
            "ended": f"{t0 + i * 0.05 + 60:.3f}", "wanted_person": "1", "queue_status": status,
            "hold_s": str(rng.randint(8, 600)), "emergency": "1" if rng.random() < 0.02 else "0",
            "callback_accepted": "0", "sent_to_message": "0", "message": "", "last_step": "general_queue"}))
    return out


async def _trail_memory(redis, ids: list[str]) -> float:
    """Bytes of trail index per callback, from a sample of its lists."""
    sample = [await redis.memory_usage(keys.callback_trail(i), samples=0) or 0 for i in ids]
    return statistics.fmean(sample) if sample else 0.0


async def _trails(redis, ids: list[str], scans: int) -> tuple[list[float], list[float], int]:
    """Seconds per trail read through the index, and per read by scanning the
    log (the way before the index: only ``scans`` of them, each reads it all)."""
    queries, lat, scan_lat, entries = CallbackQueries(redis), [], [], 0
    recs = [rec for i in ids if (rec := await queries.find(i)) is not None]
    for rec in recs:
        t = time.perf_counter()
        entries += len(await read_trail(redis, rec))
        lat.append(time.perf_counter() - t)
    log = AuditLog(redis, AUDIT)
    for rec in recs[:scans]:
        t = time.perf_counter()
        await scan_log(log, rec["id"], "+")
        scan_lat.append(time.perf_counter() - t)
    return lat, scan_lat, entries


async def _run(calls: int, numbers: int, seats: int, claims: int, trails: int = 200, trail_scans: int = 3) -> dict:
    rng = random.Random(12345)
    policy = Policy(calling_hours=(dt.time(0), dt.time(23, 59, 59)))   # every callback due at once
    with tempfile.TemporaryDirectory(prefix="ivr-bench-cb-") as tmp:
        server = EmbeddedRedis(Path(tmp), persist=False)
        url = server.start()
        redis = connect(url)
        try:
            t0 = time.time() - calls * 0.05 - 3600
            entries = summaries(calls, numbers, t0, rng)
            base_mem = (await redis.info("memory"))["used_memory"]

            # baseline: one pipelined XADD per entry, same batches
            start = time.perf_counter()
            for i in range(0, calls, BATCH):
                pipe = redis.pipeline(transaction=False)
                for _eid, s in entries[i:i + BATCH]:
                    pipe.xadd("bench:baseline", {"number": s["number"], "status": s["queue_status"]})
                await pipe.execute()
            baseline_s = time.perf_counter() - start
            await redis.delete("bench:baseline")

            store = CallbackStore(redis)
            cap = MissedCallCapture(redis, store, policy, ZoneInfo("Asia/Shanghai"), logs.get("bench"))
            cap.redis = cast(aioredis.Redis, NoAck(redis))    # a proxy: everything but XACK goes to redis
            start = time.perf_counter()
            for i in range(0, calls, BATCH):
                await cap.handle(entries[i:i + BATCH], now=time.time())
            ingest_s = time.perf_counter() - start

            counts = await store.counts()
            mem = (await redis.info("memory"))["used_memory"]
            audit_bytes = await redis.memory_usage(AUDIT, samples=0) or 0
            last_id = int(await redis.get(keys.CALLBACK_SEQ) or 0)
            trail_ids = [str(rng.randint(1, last_id)) for _ in range(trails)]
            trail_bytes = await _trail_memory(redis, trail_ids) * last_id
            per_open = (mem - base_mem - audit_bytes - trail_bytes) / max(1, counts["open"])

            # claims: one at a time, as for a seat that has just become free
            lat, base_lat = [], []
            now = time.time()
            for i in range(claims):
                t = time.perf_counter()
                await store.claim(now=now, lease_s=180, owner=f"bench-{i % seats}", count=1)
                lat.append(time.perf_counter() - t)
            for _ in range(claims):
                t = time.perf_counter()
                await redis.zpopmin(keys.CALLBACK_READY, 1)
                base_lat.append(time.perf_counter() - t)
            trail_lat, scan_lat, trail_entries = await _trails(redis, trail_ids, trail_scans)
            verify_start = time.perf_counter()
            verified = await store.audit.verify()
            verify_s = time.perf_counter() - verify_start
            return {
                "calls": calls, "numbers": numbers, "seats": seats, "open": counts["open"],
                "closed": counts["closed"], "merged": cap.merged, "misdials": cap.misdials,
                "ingest_per_s": calls / ingest_s, "baseline_per_s": calls / baseline_s,
                "claim_p50_ms": statistics.median(lat) * 1000,
                "claim_p99_ms": statistics.quantiles(lat, n=100)[98] * 1000,
                "zpopmin_p99_ms": statistics.quantiles(base_lat, n=100)[98] * 1000,
                "bytes_per_open": per_open, "audit_bytes_per_call": audit_bytes / calls,
                "trail_bytes_per_call": trail_bytes / calls, "trails": trails,
                "trail_entries": trail_entries / max(1, trails),
                "trail_p50_ms": statistics.median(trail_lat) * 1000 if trail_lat else 0.0,
                "trail_p99_ms": statistics.quantiles(trail_lat, n=100)[98] * 1000 if len(trail_lat) > 1 else 0.0,
                "trail_scans": len(scan_lat),
                "trail_scan_p50_ms": statistics.median(scan_lat) * 1000 if scan_lat else 0.0,
                "audit_entries": verified.entries, "audit_ok": verified.ok, "verify_s": verify_s,
            }
        finally:
            await redis.aclose()
            server.stop()


async def _ingest_cpu(calls: int, numbers: int, indexed: bool) -> tuple[float, float]:
    """Redis and engine CPU microseconds per missed call for one ingest of
    ``calls`` on a fresh server, with or without the trail index."""
    rng = random.Random(12345)
    policy = Policy(calling_hours=(dt.time(0), dt.time(23, 59, 59)))
    with tempfile.TemporaryDirectory(prefix="ivr-bench-cpu-") as tmp:
        server = EmbeddedRedis(Path(tmp), persist=False)
        redis = connect(server.start())
        try:
            entries = summaries(calls, numbers, time.time() - calls * 0.05 - 3600, rng)
            store = CallbackStore(redis)
            if not indexed:
                store.audit = AuditLog(redis, AUDIT)
            cap = MissedCallCapture(redis, store, policy, ZoneInfo("Asia/Shanghai"), logs.get("bench"))
            cap.redis = cast(aioredis.Redis, NoAck(redis))    # a proxy: everything but XACK goes to redis
            await redis.ping()
            assert server.proc is not None
            redis_s, engine_s = cpu_s(server.proc.pid), time.process_time()
            for i in range(0, calls, BATCH):
                await cap.handle(entries[i:i + BATCH], now=time.time())
            redis_s, engine_s = cpu_s(server.proc.pid) - redis_s, time.process_time() - engine_s
            return redis_s / calls * 1e6, engine_s / calls * 1e6
        finally:
            await redis.aclose()
            server.stop()


async def _index_cpu(calls: int, numbers: int, rounds: int) -> dict:
    """Runs without and with the index, alternating (which goes first swaps
    every round)."""
    runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for r in range(rounds):
        for indexed in ((False, True) if r % 2 == 0 else (True, False)):
            runs[indexed].append(await _ingest_cpu(calls, numbers, indexed))
    return runs


def cpu_main(calls: int, numbers: int, rounds: int) -> int:
    runs = asyncio.run(_index_cpu(calls, numbers, rounds))
    med = {k: statistics.median(us for us, _ in v) for k, v in runs.items()}
    print(f"ivr bench callbacks --redis-cpu: {calls:,} missed calls from {numbers:,} numbers, {rounds} rounds")
    for indexed, label in ((False, "no trail index"), (True, "trail index   ")):
        print(f"  {label}: Redis {med[indexed]:.1f} µs per missed call (median; runs "
              f"{', '.join(f'{us:.1f}' for us, _ in runs[indexed])}); engine "
              f"{statistics.median(e for _, e in runs[indexed]):.1f} µs")
    paired = [a[0] / b[0] for a, b in zip(runs[True], runs[False], strict=True)]
    print(f"  index / none: {med[True] / med[False]:.3f} (paired by round: {', '.join(f'{x:.3f}' for x in paired)}; "
          f"target <= 1.05)")
    return 0


class NoAck:
    """The bench feeds ``handle`` directly (no consumer group): skip the XACK."""

    def __init__(self, redis) -> None:
        self._redis = redis

    async def xack(self, *a, **kw) -> int:
        return 0

    def __getattr__(self, name):
        return getattr(self._redis, name)


def main(args) -> int:
    r = asyncio.run(_run(args.calls, args.numbers, args.seats, args.claims, args.trails, args.trail_scans))
    print(f"ivr bench callbacks: {r['calls']:,} missed calls from {r['numbers']:,} numbers, {r['seats']:,} seats")
    print(f"  open callbacks {r['open']:,} (merged {r['merged']:,} repeat calls; misdials {r['misdials']:,} recorded, "
          f"not called back)")
    print(f"  ingest: {r['ingest_per_s']:,.0f} missed calls/s (classify + record/merge script + hash-chained "
          f"audit); baseline pipelined XADD {r['baseline_per_s']:,.0f}/s; ratio {r['baseline_per_s'] / r['ingest_per_s']:.1f}x"
          f" (target >= 20,000/s)")
    print(f"  claim next callback: p50 {r['claim_p50_ms']:.3f} ms, p99 {r['claim_p99_ms']:.3f} ms "
          f"(bare ZPOPMIN p99 {r['zpopmin_p99_ms']:.3f} ms; target p99 < 5 ms)")
    print(f"  Redis memory per open callback: {r['bytes_per_open']:,.0f} bytes (target < 1024); "
          f"audit log {r['audit_bytes_per_call']:,.0f} bytes per missed call, kept apart")
    print(f"  audit trail index: {r['trail_bytes_per_call']:,.0f} bytes per missed call")
    print(f"  one callback's trail ({r['trail_entries']:.1f} entries on average): p50 {r['trail_p50_ms']:.3f} ms, "
          f"p99 {r['trail_p99_ms']:.3f} ms over {r['trails']} random callbacks; by scanning the whole log "
          f"(before the index) p50 {r['trail_scan_p50_ms']:,.0f} ms over {r['trail_scans']}")
    print(f"  audit chain: {r['audit_entries']:,} entries verified {'OK' if r['audit_ok'] else 'BROKEN'} "
          f"in {r['verify_s']:.1f} s")
    return 0



# -- the month report over the call summaries: ivr bench callbacks --report N --------------------

def _month_summaries(n: int, start: float, span_s: float, rng: random.Random) -> list[str]:
    """``n`` call summaries as the engine writes them (JSON), spread over ``span_s``:
    a third miss (abandon, time out), the rest are answered, most rated after the conversation."""
    out = []
    step = span_s / max(n, 1)
    surveys = ["satisfied"] * 6 + ["basically_satisfied"] * 2 + ["dissatisfied", "no_answer", "no_answer"]
    for i in range(n):
        t = start + i * step
        missed = rng.random() < 1 / 3
        s = {"uniqueid": f"{t:.3f}.{i}", "number": f"13{rng.randrange(n):09d}", "flow": "main", "version": "3",
             "started": f"{t:.3f}", "ended": f"{t + 180:.3f}", "outcome": "completed", "last_step": "general_queue",
             "steps": "welcome,main_menu,general_queue,survey", "wanted_person": "1", "emergency": "0",
             "queue": "general", "queue_status": rng.choice(("ABANDONED", "ABANDONED", "TIMEOUT")) if missed
             else "ANSWERED", "member": "" if missed else f"Local/{100 + rng.randrange(200)}@ivr-seats/n",
             "hold_s": str(rng.randint(0, 120)), "message": "", "callback_accepted": "0", "sent_to_message": "0",
             "level": "0", "digits": "2", "failures": "", "admission_offered": "0", "already_registered": "0",
             "wait_estimate_s": "30.0", "position_at_join": "3", "survey": "" if missed else rng.choice(surveys),
             "survey_seat": "", "survey_at": ""}
        out.append(json.dumps(s))
    return out


async def seed_summaries(redis, n: int, start: float, span: float, rng: random.Random) -> None:
    """``n`` call summaries spread over [start, start + span), with the stream
    ids the engine's XADD gives them (when each call ended)."""
    for i in range(0, n, 100_000):
        chunk = _month_summaries(min(100_000, n - i), start + span * i / n, span * min(100_000, n - i) / n, rng)
        pipe = redis.pipeline(transaction=False)
        for k, j in enumerate(chunk):
            ended = float(json.loads(j)["ended"])
            pipe.xadd(keys.CALLS, {"j": j}, id=f"{int(ended * 1000)}-{i + k}")
        await pipe.execute()


async def backdate_audit(redis) -> int:
    """Give the callbacks' audit entries the stream ids a month of capture
    would have given them (when each was written: its ``at``), as the bench
    writes a month's missed calls in minutes. Only the report's reads depend
    on them here (the chain and the trail index are not used after)."""
    rows: list[tuple[float, str]] = []
    lo = "-"
    while True:
        page = await redis.xrange(keys.CALLBACK_AUDIT, lo, "+", count=10_000)
        for _, fields in page:
            rows.append((float(json.loads(fields["j"]).get("at") or 0), fields["j"]))
        if len(page) < 10_000:
            break
        lo = "(" + page[-1][0]
    rows.sort(key=lambda r: r[0])
    await redis.delete(keys.CALLBACK_AUDIT)
    for i in range(0, len(rows), 10_000):
        pipe = redis.pipeline(transaction=False)
        for k, (at, j) in enumerate(rows[i:i + 10_000]):
            pipe.xadd(keys.CALLBACK_AUDIT, {"j": j}, id=f"{int(at * 1000)}-{i + k}")
        await pipe.execute()
    return len(rows)


async def close_most(redis, store: CallbackStore, before: float) -> int:
    """Close the callbacks first missed before ``before`` as a month leaves them
    (most reached half an hour later): the report reads a month of closed
    callbacks and the open backlog of its last day."""
    from ivr.redisdb.replies import texts

    numbers = texts(await redis.zrangebyscore(keys.CALLBACK_OPEN_BY_FIRST, "-inf", f"({before}"))
    firsts = await redis.zmscore(keys.CALLBACK_OPEN_BY_FIRST, numbers) if numbers else []
    for i in range(0, len(numbers), 2000):
        pipe = redis.pipeline(transaction=False)
        for number, first in zip(numbers[i:i + 2000], firsts[i:i + 2000], strict=True):
            await store._close(keys=[keys.CALLBACK_PENDING, keys.CALLBACK_READY, keys.CALLBACK_CLAIMS,
                                     keys.CALLBACK_CLOSED, keys.CALLBACK_IDS, keys.CALLBACK_OPEN_BY_FIRST,
                                     keys.CALLBACK_CLOSED_BY_FIRST],
                               args=[number, float(first) + 1800, "reached", keys.CALLBACK_OPEN_PREFIX,
                                     keys.CALLBACK_CLOSED_PREFIX], client=pipe)
        await pipe.execute()
    return len(numbers)


async def _report_run(n: int, missed: int, recount: bool) -> dict:
    import resource

    from ivr.callback.rollup import seal
    from ivr.services.callbacks import differences, report

    tz = ZoneInfo("Asia/Shanghai")
    # a month of 31 days in progress: 30 of them over, and the calls of the last hour still being
    # written (stream ids are write times, so the month is the one ending now)
    now = time.time()
    start = (now // 3600 - 30 * 24) * 3600
    end = start + 31 * 86400
    rng = random.Random(12345)
    span = now - 3600 - start
    out: dict = {"summaries": n, "missed": missed}
    with tempfile.TemporaryDirectory(prefix="ivr-bench-report-") as tmp:
        server = EmbeddedRedis(Path(tmp), persist=False)
        redis = connect(server.start())
        try:
            t = time.perf_counter()
            store = CallbackStore(redis)
            if missed:                # missed calls through the capture path (records, audit entries)
                cap = MissedCallCapture(redis, store, Policy(calling_hours=(dt.time(0), dt.time(23, 59, 59))), tz,
                                        logs.get("bench"))
                cap.redis = cast(aioredis.Redis, NoAck(redis))
                entries = summaries(missed, max(missed // 3, 1), start, rng)
                for i, (_, s) in enumerate(entries):
                    at = start + 3600 + i * (span - 3600) / missed
                    s["started"], s["ended"] = f"{at:.3f}", f"{at + 60:.3f}"
                for i in range(0, missed, BATCH):     # captured as they happened: the audit entries' times
                    batch = entries[i:i + BATCH]
                    await cap.handle(batch, now=float(batch[-1][1]["ended"]) + 5)
                del entries
                out["closed"] = await close_most(redis, store, now - 86400)
                await backdate_audit(redis)
            await seed_summaries(redis, n, start, span, rng)
            out["seed_s"] = time.perf_counter() - t
            assert server.proc is not None
            pid = server.proc.pid

            async def timed(name: str, work):
                redis_s, cpu, wall = cpu_s(pid), time.process_time(), time.perf_counter()
                res = await work
                out[name] = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                             "redis_cpu_s": cpu_s(pid) - redis_s}
                return res
            # the leader's work, an hour at a time as each hour ends; here the whole month at once
            out["sealed"] = await timed("seal", seal(redis, tz, now, days=32))
            r = await timed("report", report(redis, start, end, tz, now))
            out["read"] = r["read"]
            out.update({"calls_counted": r["figures"]["offered"], "callbacks": r["callbacks"],
                        "answered_within_15s_rate": r["answered_within_15s_rate"],
                        "satisfaction_rate": r["satisfaction_rate"],
                        "broad_answer_rate_pct": r["hotline"]["broad_answer_rate_pct"]})
            if recount:
                from ivr.callback.report_data import gather_full
                full, _ = await timed("full", gather_full(redis, start, end, tz, now))
                out["differences"] = differences(r, full)
            out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            return out
        finally:
            await redis.aclose()
            server.stop()


def report_main(summaries_n: int, missed: int, recount: bool = True) -> int:
    r = asyncio.run(_report_run(summaries_n, missed, recount))
    print(f"ivr bench callbacks --report: the month's report over {r['summaries']:,} call summaries and "
          f"{r['missed']:,} missed calls ({r.get('closed', 0):,} of their callbacks closed; seeded in "
          f"{r['seed_s']:.0f} s)")

    def line(name: str, what: str) -> None:
        m = r[name]
        print(f"  {what}: {m['wall_s']:.1f} s (this process {m['cpu_s']:.1f} s CPU, Redis {m['redis_cpu_s']:.1f} s)")
    line("seal", f"the leader sums the month's hours once ({r['sealed']})")
    line("report", "the month's report from the hours' parts (target < 10 s on 2 cores)")
    print(f"    read: {r['read']}")
    if "full" in r:
        line("full", "the same report read item by item (the reference; before: the only way)")
        diff = r["differences"]
        print(f"    recount: {'the same figures' if not diff else f'{len(diff)} differences: ' + '; '.join(diff[:5])}")
        print(f"    full / summed: {r['full']['wall_s'] / r['report']['wall_s']:.1f}x")
    print(f"  counted {r['calls_counted']:,} calls that wanted a person, {r['callbacks']:,} callbacks; 15秒接通率 "
          f"{r['answered_within_15s_rate']}, 满意率 {r['satisfaction_rate']}, 广义接通率 {r['broad_answer_rate_pct']} %; "
          f"peak RSS {r['max_rss_mb']:,.0f} MB")
    return 0 if not r.get("differences") else 1
