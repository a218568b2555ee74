"""Every data file is hot-reloaded into one consistent snapshot; a file that
fails validation leaves the previous snapshot in force, with the error logged
and visible (/healthz, the status view)."""

import time
from zoneinfo import ZoneInfo

import pytest

from ivr import logs
from ivr.runtime.snapshot import SnapshotSource
from tests.conftest import copy_project

TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def home(project_home, tmp_path):
    return copy_project(project_home, tmp_path)


def touch_edit(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_callback_policy_and_plan_reload_into_one_snapshot(home):
    src = SnapshotSource(home, TZ, logs.get("test"))
    seen = []
    src.on_change(seen.append)
    assert src.current.policy.claim_lease_s == 180 and src.current.version == 1
    touch_edit(home / "callback" / "policy.yaml", "claim_lease_s: 180", "claim_lease_s: 240")
    touch_edit(home / "queue" / "contingency.yaml", "calls_waiting: 20,", "calls_waiting: 25,")
    assert src.refresh()
    snap = src.current
    assert snap.version == 2 and snap.policy.claim_lease_s == 240 and seen == [snap]
    assert snap.plan.levels[1].raise_when.calls_waiting == 25
    assert not src.refresh()                        # nothing changed since


def test_a_bad_file_leaves_the_previous_snapshot_in_force_and_says_why(home):
    src = SnapshotSource(home, TZ, logs.get("test"))
    before = src.current
    touch_edit(home / "callback" / "policy.yaml", "claim_lease_s: 180", "claim_lease_s: soon")
    assert not src.refresh()
    assert src.current is before and "callback/policy.yaml:" in (src.error or "")
    time.sleep(0.01)
    touch_edit(home / "callback" / "policy.yaml", "claim_lease_s: soon", "claim_lease_s: 200")
    assert src.refresh() and src.error is None and src.current.policy.claim_lease_s == 200
