"""A contingency level is a whole number, never a bool: ``True == 1`` in Python,
and a level of ``true`` once reached Redis and made /metrics answer 500. Refused
where a level is written and where it is read back."""

import json

import pytest

from ivr.contingency.plan import check_level, is_level, level_from_text
from ivr.contingency.store import ContingencyStore, Proposal
from ivr.errors import LevelInvalid
from ivr.redisdb import keys
from tests.test_web_api import home, web  # noqa: F401  (fixtures)


@pytest.mark.parametrize("value", [True, False, 1.0, "1", None, -1, 100])
def test_only_whole_numbers_are_levels(value):
    assert not is_level(value)
    with pytest.raises(LevelInvalid, match="应急级别"):
        check_level(value)


def test_levels_read_back_as_text():
    assert level_from_text(None) == 0 and level_from_text("2") == 2 and level_from_text(b"3") == 2 + 1
    for raw in ("True", "true", "1.0", "-1", " 1", "１"):
        with pytest.raises(LevelInvalid):
            level_from_text(raw)


async def test_the_store_refuses_a_bool_level(redis):
    store = ContingencyStore(redis)
    with pytest.raises(LevelInvalid):
        await store.set_level(True, by="test", reason="x")
    with pytest.raises(LevelInvalid):
        await store.propose(Proposal(True, "x", 0.0, 0))
    assert await redis.get(keys.CONTINGENCY_LEVEL) is None
    assert await redis.get(keys.CONTINGENCY_STATE) is None


async def test_a_bool_level_stored_in_redis_is_refused_when_read(redis):
    await redis.set(keys.CONTINGENCY_STATE, json.dumps({"level": True, "since": 0.0}))
    with pytest.raises(LevelInvalid):
        await ContingencyStore(redis).state()
    await redis.set(keys.CONTINGENCY_PROPOSAL, json.dumps({"level": True, "reason": "", "at": 0.0, "from_level": 0}))
    with pytest.raises(LevelInvalid):
        await ContingencyStore(redis).proposal()


async def test_web_refuses_level_true_and_metrics_stay_up(web, redis):  # noqa: F811
    c, csrf = await web("boss")
    r = await c.post("/api/contingency", json={"level": True, "reason": "x", "confirm": True},
                     headers={"X-CSRF-Token": csrf})
    assert r.status == 400 and "whole number" in (await r.json())["error"]
    assert await redis.get(keys.CONTINGENCY_LEVEL) is None
    await redis.set(keys.CONTINGENCY_LEVEL, "True")          # written by an older version, or by hand
    r = await c.get("/metrics")
    assert r.status == 200 and "ivr_contingency_level -1" in await r.text()
