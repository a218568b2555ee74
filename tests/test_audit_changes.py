"""Flow publish/rollback and console-account changes are in chained, keyed
audit logs that `ivr audit verify` walks, like callbacks and the contingency
level: an edited record is found and named."""

import json

from ivr.accounts.store import Accounts
from ivr.audit.chain import AuditLog
from ivr.flow.store import FlowStore
from ivr.redisdb import keys

SRC1 = "start: a\nsteps:\n  a: {type: hangup}\n"
SRC2 = SRC1 + "# v2\n"
PASSWORD = "correct horse battery"


async def test_publish_and_rollback_are_in_the_chained_log(redis):
    store = FlowStore(redis)
    await store.publish("main", SRC1, by="alice")
    await store.publish("main", SRC2, by="bob", note="新政策")
    await store.rollback("main", 1, by="carol", note="回退")
    log = AuditLog(redis, keys.AUDIT_LOGS["flows"])
    res = await log.verify()
    assert res.ok and res.entries == 3
    recs = [e for _, e in await log.entries()]
    assert [(e["action"], e["version"], e["from_version"], e["by"]) for e in recs] == [
        ("publish", 1, None, "alice"), ("publish", 2, 1, "bob"), ("rollback", 1, 2, "carol")]
    assert recs[1]["sha256"] == (await store.get("main", 2)).sha256
    # someone with Redis access rewrites who published version 2
    rows = await redis.xrange(keys.FLOW_AUDIT)
    await redis.delete(keys.FLOW_AUDIT)
    for rid, f in rows:
        await redis.xadd(keys.FLOW_AUDIT, {**f, "j": f["j"].replace('"bob"', '"alice"')}, id=rid)
    res = await log.verify()
    assert not res.ok and res.entries == 1 and "entry 2 was changed" in res.problem


async def test_history_still_shows_records_from_before_the_chained_log(redis):
    await redis.xadd(keys.FLOW_AUDIT_LEGACY, {"action": "publish", "flow": "main", "version": "1",
                                              "from_version": "", "by": "old", "at": "2026-01-01T00:00:00+00:00",
                                              "note": ""})
    store = FlowStore(redis)
    await redis.hset(keys.flow_versions("main"), "1", json.dumps({"sha256": "x", "source": "", "by": "old",
                                                                  "at": "", "note": ""}))
    await redis.set(keys.flow_current("main"), "1")
    await redis.set(keys.flow_seq("main"), "1")
    assert (await store.publish("main", SRC1, by="alice")).version == 2
    hist = await store.history("main")
    assert [(h["action"], h["version"], h["by"], h["from_version"]) for h in hist] == [
        ("publish", "1", "old", ""), ("publish", "2", "alice", "1")]


async def test_account_changes_are_in_the_chained_log(redis, monkeypatch):
    monkeypatch.setenv("IVR_USER", "cli:root")
    accounts = Accounts(redis)
    await accounts.add("wang", "auditor", PASSWORD)
    await accounts.passwd("wang", PASSWORD + "!")
    token = await accounts.new_token("wang", "wallboard")
    log = AuditLog(redis, keys.AUDIT_LOGS["users"])
    assert (await log.verify()).ok
    recs = [e for _, e in await log.entries()]
    assert [(e["kind"], e["user"], e["by"]) for e in recs] == [
        ("user_added", "wang", "cli:root"), ("password_changed", "wang", "cli:root"),
        ("token_issued", "wang", "cli:root")]
    assert recs[0]["role"] == "auditor" and recs[2]["label"] == "wallboard"
    text = json.dumps(recs)
    assert PASSWORD not in text and token not in text


async def test_role_changes_and_removals_are_audited_and_end_sessions_and_tokens(redis):
    from ivr.services import users

    await users.add(redis, "li", "operations", PASSWORD, by="cli:root")
    token = await users.issue_token(redis, "li", "ci", by="cli:root")
    accounts = Accounts(redis)
    session, _ = await accounts.open_session("li", "operations")
    await users.change_role(redis, "li", "auditor", by="cli:root")
    assert await accounts.session(session) is None                  # the session carried the old role
    assert (await accounts.token(token)).role == "auditor"          # a token follows the account's role
    await users.remove(redis, "li", by="cli:admin")
    assert await accounts.token(token) is None and await accounts.check("li", PASSWORD) is None
    log = AuditLog(redis, keys.AUDIT_LOGS["users"])
    assert (await log.verify()).ok
    assert [(e["kind"], e["by"]) for _, e in await log.entries()] == [
        ("user_added", "cli:root"), ("token_issued", "cli:root"), ("role_changed", "cli:root"),
        ("user_removed", "cli:admin")]
