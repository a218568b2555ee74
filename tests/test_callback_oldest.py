"""The oldest open callback as staff see it (issue 18): every open callback
counts, whatever its state — waiting to be dialled, being dialled, waiting for
its next attempt — from an index by first call (``ivr:cb:open-by-first``) the
store's scripts keep in the same step as the state change, filled on start for
callbacks opened before it existed. The wall, ``ivr status`` and ``/metrics``
read it."""

import time

from ivr.callback.policy import DEFAULT_DEADLINES
from ivr.callback.store import CallbackStore
from ivr.cli.engine import callbacks_line
from ivr.redisdb import keys
from ivr.services import callbacks as callback_service
from tests.test_web_api import home, web  # noqa: F401  (fixtures)

OLDEST = "13800000001"


async def _record(store: CallbackStore, number: str, started: float, not_before: float) -> None:
    await store.record(store.record_args(number=number, now=started + 60, started=started, kind="ordinary",
                                         reason="abandoned", flow="main", step="q", wait_s=30, message="",
                                         not_before=not_before, deadlines=DEFAULT_DEADLINES, misdial=False))


async def _first_ats(redis) -> dict[str, float]:
    """The truth, from the records: number -> first call of every open callback."""
    out = {}
    async for k in redis.scan_iter(match=keys.CALLBACK_OPEN_PREFIX + "*"):
        out[k.removeprefix(keys.CALLBACK_OPEN_PREFIX)] = float(await redis.hget(k, "first_at"))
    return out


async def _index(redis) -> dict[str, float]:
    return dict(await redis.zrange(keys.CALLBACK_OPEN_BY_FIRST, 0, -1, withscores=True))


async def _dialled_then_waiting_again(redis, now: float) -> CallbackStore:
    """The oldest callback claimed (being dialled); four newer ones ready; then
    the oldest's attempt fails and it waits an hour for the next one, behind
    three newer callbacks due sooner."""
    store = CallbackStore(redis)
    await _record(store, OLDEST, now - 3960, now - 3900)            # 1.1 hours ago
    for i in range(4):
        await _record(store, f"1390000000{i}", now - 1800 + i, now - 1700)
    assert await store.claim(now=now, lease_s=180, owner="me", count=1) == (0, [OLDEST])
    return store


async def test_the_oldest_is_the_one_being_dialled(redis):
    now = time.time()
    await _dialled_then_waiting_again(redis, now)
    # being dialled: not in the ready or pending lines, still the oldest open one
    assert await callback_service.oldest_open_age(redis, now) == 3960.0
    assert await _index(redis) == await _first_ats(redis)


async def test_the_oldest_waits_for_its_next_attempt_behind_newer_ones(redis):
    now = time.time()
    store = await _dialled_then_waiting_again(redis, now)
    for i in range(3):
        await _record(store, f"1370000000{i}", now - 600 + i, now + 60)         # pending, due in a minute
    assert await store.finish(OLDEST, "me", outcome="no_answer", seat="s1", now=now,
                              next_at=now + 3600) == "rescheduled"
    assert (await redis.zrange(keys.CALLBACK_PENDING, 0, -1))[-1] == OLDEST     # the fourth of the line
    assert await callback_service.oldest_open_age(redis, now) == 3960.0
    # closed after its next attempt: the next oldest
    await store.claim(now=now + 3600, lease_s=180, owner="me", count=10)
    assert await store.finish(OLDEST, "me", outcome="answered", seat="s1", now=now + 3700, next_at=None) == "closed"
    assert await callback_service.oldest_open_age(redis, now + 3700) == 1800.0 + 3700
    assert await _index(redis) == await _first_ats(redis)


async def test_closing_and_merging_keep_the_index(redis):
    now = time.time()
    store = CallbackStore(redis)
    await _record(store, OLDEST, now - 900, now)
    await _record(store, "13900000002", now - 600, now + 600)
    await _record(store, "13900000003", now - 300, now)
    await _record(store, OLDEST, now - 100, now)                   # merged: the first call stays
    assert await callback_service.oldest_open_age(redis, now) == 900.0
    assert (await store.close(OLDEST, now=now, reason="cancelled: test"))[0]
    assert await callback_service.oldest_open_age(redis, now) == 600.0
    assert (await store.close_answered("13900000002", answered_at=now, now=now, reason="answered"))[0] == "closed"
    assert await _index(redis) == await _first_ats(redis) == {"13900000003": now - 300}
    assert (await store.close("13900000003", now=now, reason="cancelled: test"))[0]
    assert await callback_service.oldest_open_age(redis, now) is None


async def test_the_index_is_filled_on_start_for_older_data(redis):
    """An older deployment's open callbacks (no index), in every state; a
    closed one is not added."""
    now = time.time()
    store = await _dialled_then_waiting_again(redis, now)
    await _record(store, "13700000000", now - 4000, now)
    await store.close("13700000000", now=now, reason="cancelled: test")
    truth = await _first_ats(redis)
    await redis.delete(keys.CALLBACK_OPEN_BY_FIRST)                 # as written before the index existed
    assert await callback_service.oldest_open_age(redis, now) is None
    assert await store.index_open() == len(truth) == 5
    assert await _index(redis) == truth
    assert await store.index_open() == 0                            # every start: nothing twice
    assert await callback_service.oldest_open_age(redis, now) == 3960.0


async def test_the_wall_metrics_and_status_show_the_one_being_dialled(web, redis):
    now = time.time()
    await _dialled_then_waiting_again(redis, now)
    c, _ = await web("boss")
    board = await (await c.get("/api/status")).json()
    assert 3960 <= board["callback_oldest_age_s"] <= 3960 + (time.time() - now) + 1
    assert board["wall"]["callback_oldest_age_s"] == board["callback_oldest_age_s"]
    text = await (await c.get("/metrics")).text()
    gauge = next(x for x in text.splitlines() if x.startswith("ivr_callback_oldest_open_seconds "))
    assert 3960 <= float(gauge.split()[1]) <= 3960 + (time.time() - now) + 1
    counts = await callback_service.counts(redis)
    line = callbacks_line(counts, await callback_service.oldest_open_age(redis, now))
    assert line == ("待回拨 open callbacks 5 (待拨 pending 0, 就绪 ready 4, 拨打中 dialling 1); "
                    "最久待回拨 oldest 1.1 小时 h")


async def test_every_record_is_read_while_a_claim_moves_one_between_lines(redis, monkeypatch):
    """The report's and the drill's read of every record: a callback that a
    claim moved from the pending line to the head of the ready line while the
    lines were read, page by page, was in neither read (a Beijing drill:
    "every unanswered caller who wanted a person has a missed-call record:
    FAILED (1 without)")."""
    from ivr.callback import store as store_module
    from ivr.callback.store import CallbackQueries

    now = time.time()
    store = CallbackStore(redis)
    await _record(store, "13900000001", now - 300, now - 200)                # ready
    await _record(store, "13900000002", now - 290, now - 200)                # ready
    await _record(store, OLDEST, now - 900, now + 5)                         # pending, the earliest deadline
    moved = []

    async def claim_meanwhile():
        if not moved:
            moved.append(await store.claim(now=now + 10, lease_s=180, owner="me", count=0))
    monkeypatch.setattr(store_module, "READ_PAGE", 1)
    monkeypatch.setattr(store_module, "between_pages", claim_meanwhile)
    recs = await CallbackQueries(redis).all_records(closed_since=0)
    assert await redis.zrank(keys.CALLBACK_READY, OLDEST) == 0                 # it did move
    assert sorted(r["number"] for r in recs) == [OLDEST, "13900000001", "13900000002"]
