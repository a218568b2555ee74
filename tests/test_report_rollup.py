"""The auditors' report summed from its hours' parts (issue 19: a month of
3 million summaries in under 10 s) gives exactly the figures of reading every
callback, attempt and call summary of the period, cold and warm, when a
callback closes after its hour was summed, when one closes while the report
reads, and after the calls stream lost the hours it summed."""

import json
import random
import time
from zoneinfo import ZoneInfo

import pytest

from ivr.audit.chain import AuditLog
from ivr.callback import rollup
from ivr.callback.figures import Figures
from ivr.callback.report_data import gather_full
from ivr.callback.store import CallbackQueries, CallbackStore
from ivr.redisdb import keys
from ivr.redisdb.report_hours import summary_written
from ivr.services.callbacks import differences, report

TZ = ZoneInfo("Asia/Shanghai")
DEADLINES = {"emergency": 1800.0, "courtesy": 7200.0, "ordinary": 86400.0}
SEATS = [f"Local/10{i}@ivr-seats/n" for i in range(3)]


def _summary(rng: random.Random, started: float, i: int) -> dict:
    answered = rng.random() < 0.6
    wanted = rng.random() < 0.9
    return {"uniqueid": f"{started:.3f}.{i}", "number": f"1390000{rng.randrange(400):04d}", "flow": "main",
            "started": f"{started:.3f}", "ended": f"{started + 90:.3f}", "wanted_person": "1" if wanted else "0",
            "queue_status": ("ANSWERED" if answered else rng.choice(("ABANDONED", "TIMEOUT"))) if wanted else "",
            "member": rng.choice(SEATS) if wanted and answered else "", "hold_s": str(rng.randint(0, 60)),
            "outcome": "lines_full" if wanted and not answered and rng.random() < 0.1 else "completed",
            "survey": rng.choice(("satisfied", "basically_satisfied", "dissatisfied", "no_answer", ""))
            if answered else "", "kind": rng.choice(("", "", "", "callback")), "moved_to": ""}


async def _seed(redis, now: float, days: int = 6, calls: int = 1500, missed: int = 300, seed: int = 7,
                id_shift: float = 0.0) -> None:
    """Calls (stream ids: when each ended, as the engine's XADD gives them),
    missed calls through the store's scripts, attempts through the audit log;
    most callbacks closed (reached, unreached, misdials), some still open.
    ``id_shift``: the Redis host's clock ahead of the engines' (stream ids are its)."""
    rng = random.Random(seed)
    start = now - days * 86400
    rows = sorted((_summary(rng, start + rng.random() * (days * 86400 - 3600), i) for i in range(calls)),
                  key=lambda s: float(s["ended"]))
    pipe = redis.pipeline(transaction=False)
    for i, s in enumerate(rows):
        pipe.xadd(keys.CALLS, {"j": json.dumps(s)}, id=f"{int((float(s['ended']) + id_shift) * 1000)}-{i}")
    await pipe.execute()
    store = CallbackStore(redis)
    batch = []
    for i in range(missed):
        started = start + rng.random() * (days * 86400 - 7200)
        batch.append(store.record_args(number=f"1380000{rng.randrange(200):04d}", now=started + 60, started=started,
                                       kind=rng.choice(("ordinary", "ordinary", "courtesy", "emergency")),
                                       reason="abandoned", flow="main", step="queue", wait_s=30.0, message="",
                                       not_before=started, deadlines=DEADLINES, misdial=i % 17 == 0))
    await store.record_many(batch)
    _, numbers = await store.claim(now=now, lease_s=600, owner="t", count=10_000)
    log = AuditLog(redis, keys.CALLBACK_AUDIT)
    entries = []
    for number in numbers:
        rec = await CallbackQueries(redis).records([number])
        first = float(rec[0]["first_at"])
        seat = rng.choice(SEATS)
        at = min(now - 60, first + rng.uniform(60, 30000))
        outcome, close = rng.choice((("reached", "reached"), ("reached", "reached"), ("no_answer", "unreached"),
                                     ("no_answer", None), ("seat_no_answer", None)))
        entries.append({"kind": "attempt", "at": at, "seat": seat, "seat_name": seat[6:9], "outcome": outcome,
                        "id": rec[0]["id"], **({"survey": "satisfied"} if outcome == "reached" else {})})
        await store.finish(number, "t", outcome=outcome, seat=seat, now=at,
                           next_at=None if close else now + 3600, close_reason=close or "")
    entries.sort(key=lambda e: e["at"])
    for i, e in enumerate(entries):     # stream ids: when each attempt was written, as the scheduler's append gives
        await redis.xadd(log.stream, {"j": json.dumps(e)}, id=f"{int((e['at'] + id_shift) * 1000)}-{i}")


def _month(now: float) -> tuple[float, float]:
    start = (now // 3600 - 7 * 24) * 3600
    return start, start + 8 * 86400


async def test_the_month_summed_from_hours_equals_the_month_read_item_by_item(redis):
    now = time.time()
    await _seed(redis, now)
    start, end = _month(now)
    full, _ = await gather_full(redis, start, end, TZ, now)
    assert full["callbacks"] > 100 and full["figures"]["offered"] > 1000 and full["per_seat"]    # the data is there
    cold = await report(redis, start, end, TZ, now)
    assert differences(cold, full) == []
    assert cold["read"]["flow_parts_summed"] > 100 and cold["read"]["closed_parts_summed"] > 50
    warm = await report(redis, start, end, TZ, now)
    assert differences(warm, full) == []
    assert warm["read"]["flow_parts_summed"] == 0 and warm["read"]["flow_parts_kept"] > 100
    assert warm["read"]["closed_parts_summed"] == 0 and warm["read"]["closed_parts_kept"] > 50
    # a period of other bounds (one day, half hours of another zone) from the same parts
    day0, day1 = start + 3 * 86400 + 1800, start + 5 * 86400 - 1800
    assert differences(await report(redis, day0, day1, TZ, now), (await gather_full(redis, day0, day1, TZ, now))[0]) == []


async def test_a_callback_closed_after_its_hour_was_summed_is_counted_closed(redis):
    now = time.time()
    await _seed(redis, now, missed=120)
    start, end = _month(now)
    before = await report(redis, start, end, TZ, now)
    assert before["still_open"] > 0
    first = await redis.zrange(keys.CALLBACK_OPEN_BY_FIRST, 0, 0)
    ok, _ = await CallbackStore(redis).close(first[0], now=now, reason="unreached")
    assert ok
    after = await report(redis, start, end, TZ, now)
    assert after["still_open"] == before["still_open"] - 1
    assert after["closed_unreached"] == before["closed_unreached"] + 1
    assert after["callbacks"] == before["callbacks"]
    assert differences(after, (await gather_full(redis, start, end, TZ, now))[0]) == []


async def test_a_callback_closed_while_the_report_reads_is_counted_once(redis, monkeypatch):
    now = time.time()
    await _seed(redis, now, missed=120)
    start, end = _month(now)
    before = await report(redis, start, end, TZ, now)
    read_open = CallbackQueries.open_records

    async def then_closed(self, numbers, fields=None):
        got = await read_open(self, numbers, fields)
        for number in numbers[:3]:           # closed once the report has read them open
            await CallbackStore(redis).close(number, now=now, reason="reached")
        return got
    monkeypatch.setattr(CallbackQueries, "open_records", then_closed)
    during = await report(redis, start, end, TZ, now)
    assert during["callbacks"] == before["callbacks"]
    assert during["still_open"] == before["still_open"] - 3


async def test_sealed_hours_keep_their_calls_after_the_stream_lost_them(redis, monkeypatch):
    from ivr.calls import service
    now = time.time()
    await _seed(redis, now, missed=60)
    start, end = _month(now)
    done = await rollup.seal(redis, TZ, now, days=8)
    assert done["flow_parts_summed"] > 100
    whole = await report(redis, start, end, TZ, now)
    await redis.xtrim(keys.CALLS, minid=f"{int((now - 2 * 86400) * 1000)}-0", approximate=False)  # the cap's work
    monkeypatch.setattr(service, "CALLS_STREAM_MAXLEN", await redis.xlen(keys.CALLS))     # full: it was trimmed
    trimmed_full, _ = await gather_full(redis, start, end, TZ, now)
    assert trimmed_full["figures"]["offered"] < whole["figures"]["offered"]
    assert trimmed_full["calls_from"] is not None                 # the read item by item says what it lost
    kept = await report(redis, start, end, TZ, now)
    assert kept["figures"]["offered"] == whole["figures"]["offered"] and kept["calls_from"] is None
    assert kept["hotline"] == whole["hotline"]


async def test_closed_callbacks_from_before_the_index_are_indexed_at_start(redis):
    now = time.time()
    await _seed(redis, now, missed=80)
    n = await redis.zcard(keys.CALLBACK_CLOSED_BY_FIRST)
    assert n == await redis.zcard(keys.CALLBACK_CLOSED) > 0            # the scripts keep it
    await redis.delete(keys.CALLBACK_CLOSED_BY_FIRST)                  # as data written before it existed
    assert await CallbackStore(redis).index_closed() == n
    assert await CallbackStore(redis).index_closed() == 0
    ids = await redis.zrange(keys.CALLBACK_CLOSED_BY_FIRST, 0, -1, withscores=True)
    rec = await CallbackQueries(redis).closed_records([ids[0][0]])
    assert float(rec[0]["first_at"]) == ids[0][1]


def test_figures_dumped_and_merged_by_hour_equal_the_figures_of_the_whole():
    rng = random.Random(3)
    now = 1796054400.0 + 5 * 86400
    start = now - 5 * 86400
    calls = [_summary(rng, start + rng.random() * 4 * 86400, i) for i in range(800)]
    whole = Figures(start, now, TZ, now)
    for c in calls:
        whole.add_call(c)
    merged = Figures(start, now, TZ, now)
    for a, b in rollup.pieces(start, now):
        part = Figures(a, b, TZ)
        for c in calls:
            part.add_call(c)
        again = Figures(a, b, TZ)
        again.load(json.loads(json.dumps(part.dump())))
        merged.merge(again)
    assert merged.result() == whole.result()


@pytest.mark.parametrize("start,end", [(0.0, 7200.0), (1800.0, 9000.0), (100.0, 200.0)])
def test_pieces_cover_the_period_at_whole_hours(start, end):
    ps = rollup.pieces(start, end)
    assert ps[0][0] == start and ps[-1][1] == end
    assert all(a < b and (b % 3600 == 0 or b == end) for a, b in ps)
    assert all(p[1] == q[0] for p, q in zip(ps, ps[1:], strict=False))


async def test_the_leader_sums_the_hours_in_a_child_process(redis):
    now = time.time()
    await _seed(redis, now, days=2, calls=300, missed=40)
    done = await rollup.seal_in_child(redis, "Asia/Shanghai", now, days=9)
    assert done["flow_parts_summed"] >= 9 * 24 - 1 and done["closed_parts_summed"] >= 9 * 24 - 1
    again = await rollup.seal_in_child(redis, "Asia/Shanghai", now, days=9)
    assert again == {"closed_parts_summed": 0, "flow_parts_summed": 0}
    start, end = _month(now)
    r = await report(redis, start, end, TZ, now)
    assert r["read"]["flow_parts_summed"] == 0 and r["read"]["flow_parts_kept"] > 100


async def test_a_summary_written_late_for_a_kept_hour_is_counted(redis):
    """The PBX's record, the reconciler and refused attempts write summaries
    for calls their engine did not: an hour's kept part is dropped then."""
    now = time.time()
    await _seed(redis, now, days=2, calls=200, missed=20)
    start, end = _month(now)
    before = await report(redis, start, end, TZ, now)
    started = (now // 3600 - 30) * 3600 + 600
    late = _summary(random.Random(1), started, 9999) | {"wanted_person": "1", "queue_status": "ANSWERED", "kind": ""}
    await redis.xadd(keys.CALLS, {"j": json.dumps(late)})          # written now, for an hour kept long ago
    await summary_written(redis, late)
    after = await report(redis, start, end, TZ, now)
    assert after["figures"]["offered"] == before["figures"]["offered"] + 1
    assert differences(after, (await gather_full(redis, start, end, TZ, now))[0]) == []



@pytest.mark.parametrize("shift_h", [8.0, -2.0], ids=["engines-behind-redis", "engines-ahead-of-redis"])
async def test_a_drills_clock_ahead_or_behind_redis_gives_the_same_figures(redis, shift_h):
    """A drill's clock starts at 09:00 (behind the Redis host's in the
    afternoon) and runs faster (ahead of it later): stream ids are the Redis
    host's time, the calls' times the engines'."""
    shift = shift_h * 3600
    now = time.time() - shift                 # the engines' clock
    await _seed(redis, now, days=3, calls=600, missed=80, id_shift=shift)
    start, end = _month(now)
    full, _ = await gather_full(redis, start, end, TZ, now)
    assert full["figures"]["offered"] > 400 and full["per_seat"]
    assert differences(await report(redis, start, end, TZ, now), full) == []
    await rollup.seal(redis, TZ, now, days=8)
    warm = await report(redis, start, end, TZ, now)
    assert warm["read"]["flow_parts_kept"] > 24
    assert differences(warm, full) == []


async def test_the_engines_summaries_count_in_their_hour_and_a_late_one_is_summed_again(redis):
    """A call out (a follow-up, a callback's survey) is not among the live
    calls: its summary can come after its hour was kept."""
    from ivr import logs
    from ivr.calls.service import CallSummaries

    now = time.time()
    await _seed(redis, now, days=2, calls=200, missed=10)
    start, end = _month(now)
    before = await report(redis, start, end, TZ, now)
    started = (now // 3600 - 3) * 3600 + 60
    w = CallSummaries(redis, logs.get("test"))
    w.add(_summary(random.Random(2), started, 1) | {"wanted_person": "1", "queue_status": "ANSWERED", "kind": ""})
    await w.flush()
    assert await redis.hget(keys.REPORT_WRITTEN, str(int(started // 3600))) == "1"
    after = await report(redis, start, end, TZ, now)
    assert after["figures"]["offered"] == before["figures"]["offered"] + 1
    assert differences(after, (await gather_full(redis, start, end, TZ, now))[0]) == []
