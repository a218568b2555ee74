"""Published flows in a real Redis: versions, rollback, audit, races."""

import asyncio
import os
import re
import subprocess
import sys

import pytest

from ivr.errors import FlowNotFound, PublishError
from ivr.flow.store import FlowStore

SRC1 = "start: a\nsteps:\n  a: {type: hangup}\n"
SRC2 = SRC1 + "# v2\n"


async def test_publish_rollback_history(redis):
    store = FlowStore(redis)
    assert (await store.publish("main", SRC1, by="alice")).version == 1
    same = await store.publish("main", SRC1, by="alice")
    assert (same.version, same.changed) == (1, False)
    assert (await store.publish("main", SRC2, by="bob", note="新政策")).version == 2
    assert await store.rollback("main", None, by="carol") == 1
    assert (await store.get("main")).source == SRC1
    assert (await store.get("main", 2)).note == "新政策"
    hist = await store.history("main")
    assert [(h["action"], h["version"], h["by"]) for h in hist] == [
        ("publish", "1", "alice"), ("publish", "2", "bob"), ("rollback", "1", "carol")]
    assert hist[2]["from_version"] == "2" and hist[0]["at"].endswith("+00:00")
    with pytest.raises(PublishError):
        await store.rollback("main", 7, by="x")
    with pytest.raises(PublishError):
        await store.rollback("main", 1, by="x")
    with pytest.raises(FlowNotFound):
        await store.get("nope")


async def test_concurrent_publishes_get_distinct_versions(redis):
    store = FlowStore(redis)
    results = await asyncio.gather(*(store.publish("main", SRC1 + f"# {i}\n", by=f"u{i}") for i in range(20)))
    assert sorted(r.version for r in results) == list(range(1, 21))
    assert len(await store.history("main")) == 20


def _ivr(args, env):
    return subprocess.run([sys.executable, "-m", "ivr", *args], capture_output=True, text=True, env=env, timeout=60)


def test_cli_check_publish_history_rollback(redis_url, project_home, tmp_path):
    env = {**os.environ, "IVR_REDIS_URL": redis_url, "IVR_HOME": str(project_home),
           "IVR_DATA_DIR": str(tmp_path), "IVR_USER": "ops:wang", "IVR_LOG_FORMAT": "json"}
    ok = _ivr(["flows", "check"], env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    pub = _ivr(["flows", "publish"], env)
    assert pub.returncode == 0 and "main: 已发布为 published as v1" in pub.stdout
    again = _ivr(["flows", "publish", "main", "--note", "no change"], env)
    assert "main: 未改动，仍为 unchanged, still v1" in again.stdout
    hist = _ivr(["flows", "history", "main"], env)
    assert "发布 publish v1  ops:wang" in hist.stdout
    # the time is Beijing's, not the stored UTC ISO text
    import datetime as dt
    from zoneinfo import ZoneInfo
    assert dt.datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d ") in hist.stdout
    assert "+00:00" not in hist.stdout
    assert re.search(r"^  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  发布 publish v1", hist.stdout, re.M)
    rb = _ivr(["flows", "rollback", "main"], env)
    assert rb.returncode == 1 and "no version before 1" in rb.stderr


def test_cli_check_reports_errors_and_fails(project_home, tmp_path):
    bad = tmp_path / "main.yaml"
    text = (project_home / "flows" / "main.yaml").read_text().replace("timeout_s: 5", "timout: 5")
    bad.write_text(text)
    line = text.splitlines().index("    timout: 5") + 1
    env = {**os.environ, "IVR_HOME": str(project_home), "IVR_DATA_DIR": str(tmp_path)}
    res = _ivr(["flows", "check", str(bad)], env)
    assert res.returncode == 1
    assert (f"{bad}:{line}:5: 菜单 'main_menu'：未知的键 'timout'（是否应为 'timeout_s'？） — "
            "menu 'main_menu': unknown key 'timout' (did you mean 'timeout_s'?)") in res.stdout
