"""A smoke drill runs the whole engine against the simulated Asterisk in
seconds; the report's figures must add up, and every citizen who wanted a person
and did not get one must have a missed-call record."""

import json
import os
import subprocess
import sys

import pytest

from ivr.errors import ConfigError
from ivr.rehearsal.sim.profiles import load_profile, parse_profile


def test_smoke_drill_report_is_consistent(project_home, tmp_path):
    env = {**os.environ, "IVR_HOME": str(project_home), "IVR_DATA_DIR": str(tmp_path)}
    env.pop("IVR_REDIS_URL", None)
    report = tmp_path / "smoke.json"
    res = subprocess.run([sys.executable, "-m", "ivr", "drill", "--profile", "smoke", "--report", str(report)],
                         capture_output=True, text=True, env=env, timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    r = json.loads(report.read_text())
    assert r["offered"] >= 30 and r["failed"] == 0
    assert r["offered"] == r["answered"] + r["not_answered"] + r["in_progress"]
    assert r["not_answered"] == (r["abandoned_in_queue"] + r["left_in_flow"] + r["satisfied_by_announcement"]
                                 + r["callback_accepted"] + r["left_message"])
    assert r["every_missed_caller_recorded"] and r["missed_callers_without_record"] == 0
    assert r["missed_call_records"] + r["misdials"] + r["repeat_dialers_merged"] >= r["abandoned_in_queue"]
    assert r["answered_within_20s"] <= r["answered_within_60s"] <= r["answered"]
    assert len(r["series"]["t"]) >= 50 and sum(r["series"]["arrivals"]) <= r["offered"]
    svg = report.with_suffix(".svg").read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") == 4
    assert "演练报告 drill report: smoke" in res.stdout and "checks: offered = answered" in res.stdout


def test_shipped_profiles_read(project_home):
    beijing = load_profile(project_home, "beijing-peak-hour")
    assert beijing.seats == 1800 and 195_000 < beijing.expected_calls < 205_000
    ordos = load_profile(project_home, "ordos-day")
    assert 2_000 < ordos.expected_calls < 2_600
    assert beijing.rate_per_s(1800) == pytest.approx(203000 / 3600)


def test_profile_errors_point_at_the_line():
    with pytest.raises(ConfigError) as err:
        parse_profile("duration_s: 60\nseats: 3\narrivals:\n  - {at_s: 0, per_huor: 10}\n", "queue/drills/x.yaml", "x")
    assert "queue/drills/x.yaml:4:15: drill 'x' arrivals：未知的键 'per_huor'（是否应为 'per_hour'？） — " \
        "drill 'x' arrivals: unknown key 'per_huor' (did you mean 'per_hour'?)" in str(err.value)


@pytest.mark.slow
def test_chaos_drill_loses_nobody(project_home, tmp_path):
    """Two engine processes on a Sentinel-managed Redis: the leader engine is
    SIGKILLed, an engine with citizens in its flows is SIGKILLed, Redis fails
    over, the AMI link drops. Every caller still reaches a seat, a message or
    a recorded missed call; nobody is dialled twice at once; every audit chain
    verifies; every fault is recovered from."""
    env = {**os.environ, "IVR_HOME": str(project_home), "IVR_DATA_DIR": str(tmp_path)}
    env.pop("IVR_REDIS_URL", None)
    report = tmp_path / "chaos.json"
    res = subprocess.run([sys.executable, "-m", "ivr", "drill", "--profile", "chaos-smoke", "--chaos",
                          "--report", str(report)], capture_output=True, text=True, env=env, timeout=400)
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    r = json.loads(report.read_text())
    assert r["engines"] >= 2 and r["offered"] >= 40
    assert [f["kind"] for f in r["faults"]] == ["kill_leader_engine", "kill_engine_in_flow", "redis_failover",
                                                 "ami_link_drop"]
    assert all(f["recovered_after_s"] is not None for f in r["faults"]), r["faults"]
    leader = r["faults"][0]
    assert leader["recovered_after_wall_s"] < 15          # a new leader holds the AMI link within seconds
    assert r["lost_callers"] == 0 and r["callbacks_doubled"] == 0 and r["failed"] == 0
    assert r["every_missed_caller_recorded"] and r["audit_chains_verify"], r["audit"]
    assert r["offered"] == r["answered"] + r["not_answered"] + r["in_progress"]
    assert "故障 faults (2 engines)" in res.stdout


def test_drill_picture_has_a_level_legend_clear_of_the_title():
    from ivr.rehearsal.sim.chart import LEGEND_Y, TOP, drill_svg

    r = {"profile": "x" * 40, "offered": 123456, "answered": 1, "not_answered": 1, "callbacks_made": 1,
         "callbacks_reached": 1, "series": {"t": [60.0, 120.0], "arrivals": [1, 2], "waiting": [1, 2], "busy": [1, 2],
                                            "backlog": [1, 2], "level": [0, 2]}}
    svg = drill_svg(r)
    assert "级别 level 1" in svg and "级别 level 4" in svg            # each shade explained
    assert 24 + 6 < LEGEND_Y and LEGEND_Y + 12 < TOP - 18            # title, legend, first panel label: own rows
