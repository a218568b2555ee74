"""The hash-chained audit log on a real Redis: appends from competing writers
stay one chain; an edited, a deleted or a truncated entry is found and named."""

import asyncio

from ivr.audit.chain import AuditLog


async def test_competing_writers_keep_one_chain(redis):
    a, b = AuditLog(redis, "ivr:audit:test"), AuditLog(redis, "ivr:audit:test")

    async def write(log, who):
        for i in range(40):
            await log.append([{"who": who, "i": i}], also_set={"ivr:test:last": who})
    await asyncio.gather(write(a, "a"), write(b, "b"))
    res = await a.verify()
    assert res.ok and res.entries == 80
    assert sorted(e["who"] for _, e in await a.entries()).count("a") == 40
    assert await redis.get("ivr:test:last") in ("a", "b")


async def test_batch_append_and_verify_in_pages(redis):
    log = AuditLog(redis, "ivr:audit:test")
    await log.append([{"i": i, "text": "回拨"} for i in range(250)])
    assert (await log.verify(batch=100)).entries == 250


async def test_edited_entry_is_found(redis):
    log = AuditLog(redis, "ivr:audit:test")
    await log.append([{"i": i, "outcome": "no_answer"} for i in range(5)])
    rows = await redis.xrange("ivr:audit:test")
    # Rewrite the stream with entry 3's outcome changed, keeping every id and hash
    await redis.delete("ivr:audit:test")
    for rid, f in rows:
        if f["n"] == "3":
            f = {**f, "j": f["j"].replace("no_answer", "reached")}
        await redis.xadd("ivr:audit:test", f, id=rid)
    res = await log.verify()
    assert not res.ok and res.entries == 2 and res.entry_id == rows[2][0]
    assert res.problem.endswith("(entry 3 was changed after it was written)")


async def test_deleted_entry_is_found(redis):
    log = AuditLog(redis, "ivr:audit:test")
    await log.append([{"i": i} for i in range(5)])
    rows = await redis.xrange("ivr:audit:test")
    await redis.xdel("ivr:audit:test", rows[1][0])
    res = await log.verify()
    assert not res.ok and res.entry_id == rows[2][0]
    assert "entry 3 found where entry 2 was expected" in res.problem


async def test_deleted_newest_entries_are_found(redis):
    log = AuditLog(redis, "ivr:audit:test")
    await log.append([{"i": i} for i in range(5)])
    rows = await redis.xrange("ivr:audit:test")
    await redis.xdel("ivr:audit:test", rows[-1][0], rows[-2][0])
    res = await log.verify()
    assert not res.ok and "ends at entry 3 but 5 entries were written" in res.problem


async def test_the_chain_heads_table_reads_against_the_signed_checkpoint_on_the_engines_clock(redis):
    """The printed report's table: a checkpoint the leader wrote carries the
    engine's time (in a drill the simulated one: it read 18:10 of the wall
    clock beside heads read at 09:50 simulated), an empty log is said to be
    empty (no all-zero hash), a grown log says by how much, a shrunk one that
    it differs."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from ivr.redisdb import keys
    from ivr.services.audit import Checkpointer, chain_heads, chain_rows, signed_checkpoint

    tz = ZoneInfo("Asia/Shanghai")
    log = AuditLog(redis, keys.CALLBACK_AUDIT)
    await log.append([{"kind": "recorded", "at": 1, "id": "1"}, {"kind": "recorded", "at": 2, "id": "2"}])
    at = dt.datetime(2026, 12, 6, 9, 30, tzinfo=tz).timestamp()
    await Checkpointer(redis, clock=lambda: at).checkpoint()
    signed = await signed_checkpoint(redis, tz)
    assert signed is not None and "file" not in signed
    assert signed["logs"]["callbacks"]["at"] == "2026-12-06 09:30:00"
    rows = {r["log"]: r for r in chain_rows(await chain_heads(redis, tz, at + 60), signed)}
    assert (rows["callbacks"]["check"], rows["callbacks"]["entries"], rows["callbacks"]["label"]) == ("same", 2, "回拨")
    assert rows["flows"]["check"] == "empty" and rows["flows"]["head"] == ""
    await log.append([{"kind": "recorded", "at": 3, "id": "3"}])
    grown = {r["log"]: r for r in chain_rows(await chain_heads(redis, tz, at + 120), signed)}["callbacks"]
    assert grown["check"] == "grown" and grown["check_label"].startswith("检查点后新增 1 条")
    behind = {**signed, "logs": {**signed["logs"], "callbacks": {**signed["logs"]["callbacks"], "entries": 5}}}
    assert {r["log"]: r for r in chain_rows(await chain_heads(redis, tz), behind)}["callbacks"]["check"] == "differs"
