"""The national figures (ivr/callback/figures.py, docs/audit-report.md), every
one against values worked out by hand, and the auditors' report and CSV that
carry them."""

import asyncio
import json
import os
import subprocess
import sys
import time
from zoneinfo import ZoneInfo

from ivr.callback.figures import Figures, figures_csv, figures_of, rate_text
from ivr.redisdb import keys

TZ = ZoneInfo("Asia/Shanghai")
DAY0 = 1796054400.0             # 2026-12-01 00:00 Beijing
HOUR = 3600.0


def call(at, status="ANSWERED", hold="", wanted=True, **kw):
    return {"started": f"{at:.3f}", "ended": f"{at + 60:.3f}", "wanted_person": "1" if wanted else "0",
            "queue_status": status, "hold_s": hold, "member": "Local/101@ivr-seats/n" if status == "ANSWERED" else "",
            **kw}


def day(calls, attempts=(), now=None):
    return figures_of(list(calls), list(attempts), DAY0, DAY0 + 86400, TZ, now)


def test_no_calls_counts_nothing_and_divides_nothing():
    f = day([])
    assert (f["offered"], f["answered"], f["answered_within_15s"], f["abandoned_within_15s"]) == (0, 0, 0, 0)
    assert f["answered_within_15s_rate"] is None and f["answer_rate_24h"] is None
    assert f["average_speed_of_answer_s"] is None and f["satisfaction_rate"] is None
    assert f["survey"] == {"offered": 0, "answered": 0, "satisfied": 0, "basically_satisfied": 0,
                           "dissatisfied": 0, "no_answer": 0}
    assert (f["per_kind"], f["per_seat"], f["per_day"]) == ({}, {}, {})
    assert rate_text(f["satisfaction_rate"]) == "—"


def test_answered_within_15s_rate_counts_exactly_15_s_and_every_call_that_wanted_a_person():
    calls = [call(DAY0 + 10, hold="15"),        # exactly 15 s: within
             call(DAY0 + 20, hold="16"),        # 16 s: not
             call(DAY0 + 30, hold="3"),
             call(DAY0 + 40, "ABANDONED", hold="30"),
             call(DAY0 + 50, "", outcome="lines_full"),     # busy: wanted a person, answered by nobody
             call(DAY0 + 60, "", wanted=False),             # satisfied by the menu: not offered
             call(DAY0 - 10, hold="1")]                     # the day before: not in the period
    f = day(calls)
    assert (f["offered"], f["answered"], f["answered_within_15s"]) == (5, 3, 2)
    assert f["answered_within_15s_rate"] == 0.4                 # 2 / 5
    assert f["average_speed_of_answer_s"] == round((15 + 16 + 3) / 3, 1)   # 11.3
    assert f["answer_rate"] == 0.6


def test_an_answered_call_without_a_hold_time_is_answered_but_not_within_15s_nor_in_the_asa():
    f = day([call(DAY0, hold=""), call(DAY0 + 1, hold="4")])
    assert (f["answered"], f["answered_within_15s"], f["average_speed_of_answer_s"]) == (2, 1, 4.0)


def test_abandons_within_15s_by_the_wait_in_the_queue():
    calls = [call(DAY0, "ABANDONED", hold="15"),                         # exactly 15 s: within
             call(DAY0 + 1, "ABANDONED", hold="", queue_wait_s="7.5"),   # the engine's own measure
             call(DAY0 + 2, "ABANDONED", hold="16"),
             call(DAY0 + 3, "TIMEOUT", hold="5"),                        # the queue gave up, not the caller
             call(DAY0 + 4, "ABANDONED", hold="")]                       # no wait known: not counted
    assert day(calls)["abandoned_within_15s"] == 2


def test_rolling_24_hours_ends_at_now_and_the_lowest_window_of_the_period():
    # day 1: 10 calls, 9 answered; day 2, 01:00-02:00: 4 calls, 1 answered
    calls = [call(DAY0 + 3600 + i, "ANSWERED" if i < 9 else "ABANDONED", hold="5") for i in range(10)]
    calls += [call(DAY0 + 86400 + 3600 + i, "ANSWERED" if i < 1 else "ABANDONED", hold="5") for i in range(4)]
    f = figures_of(calls, [], DAY0, DAY0 + 2 * 86400, TZ, now=DAY0 + 86400 + 2 * HOUR)
    # the 24 hours up to now (day 1 02:00 .. day 2 02:00): day 2's 4 calls only (day 1's were at 01:00)
    assert (f["answer_rate_24h_offered"], f["answer_rate_24h"]) == (4, 0.25)
    # windows of 24 whole hours in the period: the lowest is any holding day 2's calls and not day 1's
    assert f["answer_rate_24h_lowest"] == 0.25
    assert f["answer_rate_24h_lowest_from"] == DAY0 + 2 * HOUR
    assert f["per_day"]["2026-12-01"]["answer_rate_24h"] == 0.9
    assert f["per_day"]["2026-12-02"]["answer_rate_24h"] == 0.25
    # a period of one day: no window of 24 hours but itself
    assert day(calls[:10])["answer_rate_24h_lowest"] == 0.9


def test_satisfaction_rate_over_surveys_offered_no_answer_never_satisfied():
    seat = "Local/101@ivr-seats/n"
    calls = [call(DAY0 + i, hold="5", survey=a, survey_seat=seat) for i, a in enumerate(
        ("satisfied", "satisfied", "basically_satisfied", "dissatisfied", "no_answer"))]
    calls.append(call(DAY0 + 9, hold="5"))               # no survey offered (an emergency call)
    f = day(calls)
    assert f["survey"] == {"offered": 5, "answered": 4, "satisfied": 2, "basically_satisfied": 1,
                           "dissatisfied": 1, "no_answer": 1}
    assert f["satisfaction_rate"] == 0.6                   # (2 + 1) / 5
    s = f["per_seat"][seat]
    assert (s["answered"], s["satisfaction_rate"], s["survey"]["offered"]) == (6, 0.6, 5)
    assert s["answered_within_15s_rate"] is None and s["abandoned_within_15s"] is None   # no seat's denominator


def test_surveys_offered_but_none_answered_is_zero_not_none():
    f = day([call(DAY0, hold="5", survey="no_answer")])
    assert (f["satisfaction_rate"], f["survey"]["offered"], f["survey"]["answered"]) == (0.0, 1, 0)


def test_kinds_live_callback_and_a_kind_the_record_names():
    attempts = [{"kind": "attempt", "at": DAY0 + 100, "seat": "Local/102@ivr-seats/n", "outcome": "reached"},
                {"kind": "attempt", "at": DAY0 + 200, "seat": "Local/102@ivr-seats/n", "outcome": "no_answer"},
                {"kind": "attempt", "at": DAY0 + 300, "seat": "Local/103@ivr-seats/n", "outcome": "seat_no_answer"},
                {"kind": "attempt", "at": DAY0 + 400, "seat": "Local/102@ivr-seats/n", "outcome": "reached",
                 "survey": "basically_satisfied", "survey_seat": "Local/102@ivr-seats/n"}]
    follow = call(DAY0 + 500, "", wanted=False, kind="followup", survey="satisfied")   # as ivr.calls.service writes it
    f = day([call(DAY0, hold="20"), follow], attempts)
    cb = f["per_kind"]["callback"]
    # a seat that did not pick up dialled nobody: 3 attempts, 2 reached
    assert (cb["offered"], cb["answered"], cb["answer_rate"]) == (3, 2, 0.6667)
    assert cb["answered_within_15s_rate"] is None and cb["average_speed_of_answer_s"] is None
    assert cb["satisfaction_rate"] == 1.0
    assert f["per_kind"]["follow_up"]["survey"]["satisfied"] == 1
    # the period's call figures are of citizens' calls in; its survey of every kind
    assert (f["offered"], f["answered"], f["answered_within_15s"]) == (1, 1, 0)
    assert (f["survey"]["offered"], f["satisfaction_rate"]) == (2, 1.0)
    assert f["per_seat"]["Local/102@ivr-seats/n"]["answered"] == 2
    assert "Local/103@ivr-seats/n" not in f["per_seat"]


def test_added_one_at_a_time_equals_the_list():
    calls = [call(DAY0 + i * 600, "ANSWERED" if i % 3 else "ABANDONED", hold=str(i % 30)) for i in range(100)]
    f = Figures(DAY0, DAY0 + 86400, TZ)
    for c in reversed(calls):
        f.add_call(c)
    assert f.result() == day(calls)


def test_figures_csv_reads_in_chinese_with_a_row_per_day_kind_and_seat():
    f = day([call(DAY0, hold="5", survey="satisfied", survey_seat="Local/101@ivr-seats/n")])
    text = figures_csv(f, {"Local/101@ivr-seats/n": "Seat101"})
    lines = text.splitlines()
    assert lines[0].startswith("\ufeff范围 scope,名称 name,需人工来电 offered,接通 answered,15秒内接通,15秒接通率")
    assert lines[1].startswith("合计 period,,1,1,1,100%")
    assert any(x.startswith("日 day,2026-12-01,") for x in lines)
    assert any(x.startswith("类别 kind,人工来电 live,") for x in lines)
    assert any(x.startswith("坐席 seat,Seat101,0,1,1,,") for x in lines)


async def test_cli_report_json_carries_the_national_figures(redis, redis_url, project_home, tmp_path):
    now = time.time()
    seat = "Local/101@ivr-seats/n"
    for i, (status, hold, survey) in enumerate((("ANSWERED", "15", "satisfied"), ("ANSWERED", "40", "no_answer"),
                                                ("ABANDONED", "6", ""), ("ABANDONED", "60", ""))):
        s = {**call(now - 600 + i, status, hold), "number": f"1310000000{i}", "uniqueid": f"u{i}",
             "survey": survey, "survey_seat": seat if survey else ""}
        await redis.xadd(keys.CALLS, {"j": json.dumps(s)})
    env = {**os.environ, "IVR_HOME": str(project_home), "IVR_REDIS_URL": redis_url, "IVR_DATA_DIR": str(tmp_path)}

    def ivr(*args):
        return subprocess.run([sys.executable, "-m", "ivr", *args], env=env, capture_output=True, text=True, timeout=60)
    res = await asyncio.to_thread(ivr, "callbacks", "report", "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert (r["answered_within_15s_rate"], r["answer_rate_24h"]) == (0.25, 0.5)
    assert (r["average_speed_of_answer_s"], r["abandoned_within_15s"], r["satisfaction_rate"]) == (27.5, 1, 0.5)
    assert r["survey"] == {"offered": 2, "answered": 1, "satisfied": 1, "basically_satisfied": 0,
                           "dissatisfied": 0, "no_answer": 1}
    assert r["figures"]["per_seat"][seat]["satisfaction_rate"] == 0.5
    assert len(r["figures"]["per_day"]) == 1 and list(r["figures"]["per_kind"]) == ["live"]
    printed = await asyncio.to_thread(ivr, "callbacks", "report", "--figures-csv", str(tmp_path / "f.csv"))
    assert printed.returncode == 0, printed.stderr
    assert "15秒接通率 answered within 15 s 25%" in printed.stdout and "满意率 satisfaction 50%" in printed.stdout
    assert (tmp_path / "f.csv").read_text(encoding="utf-8").startswith("\ufeff范围 scope")


# -- the wall, /metrics and the auditors' CSV over HTTP -----------------------------------

PASSWORD = "correct horse battery"


async def _client(redis, home, tmp_path, user):
    from aiohttp.test_utils import TestClient, TestServer

    from ivr.accounts.store import Accounts
    from ivr.settings import load_settings
    from ivr.web.app import make_app

    settings = load_settings({"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path)})
    await Accounts(redis).add(user, {"boss": "seat_manager", "audit": "auditor"}[user], PASSWORD)
    c = TestClient(TestServer(make_app(redis=redis, settings=settings)))
    await c.start_server()
    r = await c.post("/api/login", json={"user": user, "password": PASSWORD})
    assert r.status == 200
    return c


async def _calls_of_the_last_hours(redis, now):
    seat = "Local/101@ivr-seats/n"
    rows = [("ANSWERED", "15", "satisfied"), ("ANSWERED", "15", "basically_satisfied"), ("ANSWERED", "40", "dissatisfied"),
            ("ABANDONED", "6", ""), ("ABANDONED", "60", "")]
    for i, (status, hold, survey) in enumerate(rows):
        s = {**call(now - 3600 - i, status, hold), "number": f"1320000000{i}", "uniqueid": f"w{i}",
             "survey": survey, "survey_seat": seat if survey else ""}
        await redis.xadd(keys.CALLS, {"j": json.dumps(s)})
    # older than 24 hours: not on the wall
    old = {**call(now - 90000, "ABANDONED", "3"), "number": "13200000099", "uniqueid": "old"}
    await redis.xadd(keys.CALLS, {"j": json.dumps(old)})


async def test_metrics_carry_the_last_24_hours_and_the_targets(redis, project_home, tmp_path):
    from tests.conftest import copy_project

    home = copy_project(project_home, tmp_path / "home")
    await _calls_of_the_last_hours(redis, time.time())
    c = await _client(redis, home, tmp_path, "boss")
    try:
        text = await (await c.get("/metrics")).text()
        # 2 of 5 within 15 s; 3 of 5 answered; ASA (15 + 15 + 40) / 3; one abandon within 15 s; 2 of 3 satisfied
        for line in ("ivr_answered_within_15s_ratio 0.4", "ivr_answer_rate_24h_ratio 0.6",
                     "ivr_average_speed_of_answer_seconds 23.3", "ivr_abandoned_within_15s 1",
                     "ivr_satisfaction_ratio 0.6667", 'ivr_survey_answers{answer="no_answer"} 0',
                     'ivr_national_target{figure="answer_rate_24h"} 0.95',
                     'ivr_national_colour{figure="answered_within_15s_rate"} 2',
                     'ivr_national_colour{figure="satisfaction_rate"} 2'):
            assert line + "\n" in text, line
        board = await (await c.get("/api/status")).json()
        n = board["national"]
        assert (n["answered_within_15s_rate"], n["satisfaction_rate"], n["window_s"]) == (0.4, 0.6667, 86400)
        assert n["colours"]["answer_rate_24h"] == "red" and n["targets"]["satisfaction_rate"] == 0.9
        assert n["survey"]["offered"] == 3 and n["complete"] is True
    finally:
        await c.close()


async def test_the_wall_colours_against_the_targets_seat_managers_set(redis, project_home, tmp_path):
    from tests.conftest import copy_project

    home = copy_project(project_home, tmp_path / "home")
    (home / "queue/targets.yaml").write_text("targets:\n  answered_within_15s_pct: 40\n  answer_rate_24h_pct: 62\n"
                                             "  satisfaction_pct: 60\n", encoding="utf-8")
    await _calls_of_the_last_hours(redis, time.time())
    c = await _client(redis, home, tmp_path, "boss")
    try:
        n = (await (await c.get("/api/status")).json())["national"]
        assert n["colours"]["answered_within_15s_rate"] == "green"      # 40 % of a 40 % target
        assert n["colours"]["answer_rate_24h"] == "amber"               # 60 %: 2 points below 62
        assert n["colours"]["satisfaction_rate"] == "green"
        assert n["colours"]["average_speed_of_answer_s"] == ""          # no target set
    finally:
        await c.close()


async def test_the_auditors_csv_of_the_figures(redis, project_home, tmp_path):
    from tests.conftest import copy_project

    home = copy_project(project_home, tmp_path / "home")
    await _calls_of_the_last_hours(redis, time.time())
    c = await _client(redis, home, tmp_path, "audit")
    try:
        day_ = (await (await c.get("/api/callbacks/report")).json())
        assert "answered_within_15s_rate" in day_ and "satisfaction_rate" in day_["figures"]["per_kind"].get(
            "live", {"satisfaction_rate": None}) and isinstance(day_["figures_seats"], list)
        r = await c.get("/api/callbacks/report.csv?part=figures")
        assert r.status == 200 and 'filename="figures-' in r.headers["Content-Disposition"]
        assert (await r.text()).startswith("\ufeff范围 scope,名称 name")
        bad = await c.get("/api/callbacks/report.csv?part=everything")
        assert bad.status in (400, 422)
    finally:
        await c.close()


def test_the_drill_reports_the_same_figures_by_the_same_module():
    from ivr.rehearsal.sim import scores
    calls = [scores.Call("1", 10, False, "answered", 15.0, True, "1"),     # exactly 15 s, 满意
             scores.Call("2", 20, False, "answered", 30.0, True, "2"),     # 基本满意
             scores.Call("3", 30, False, "answered", 3.0, True, ""),       # hung up on the survey
             scores.Call("4", 40, False, "abandoned", 9.0, True),          # gave up within 15 s
             scores.Call("5", 50, False, "abandoned", 40.0, True),
             scores.Call("6", 60, False, "satisfied", None, False),        # the announcement answered them
             scores.Call("7", 70, False, "in_progress", None, True)]       # still going: not counted
    n = scores.national(calls, blocked_attempts=1, duration_s=3600)
    # 2 of 6 (5 that wanted a person and ended, 1 busy) within 15 s, as the drill's own answered_within
    assert n["answered_within_15s_rate"] == scores.answered_within(calls, 1)[1] == 0.3333
    assert (n["answer_rate_24h"], n["average_speed_of_answer_s"], n["abandoned_within_15s"]) == (0.5, 16.0, 1)
    assert n["satisfaction_rate"] == 0.6667
    assert n["survey"] == {"offered": 3, "answered": 2, "satisfied": 1, "basically_satisfied": 1,
                           "dissatisfied": 0, "no_answer": 1}


def test_the_identity_checker_finds_figures_that_do_not_add_up():
    from ivr.services import identities
    good = {"survey": {"offered": 5, "answered": 4, "satisfied": 2, "basically_satisfied": 1, "dissatisfied": 1,
                       "no_answer": 1}, "satisfaction_rate": 0.6, "answered_within_15s_rate": 0.4,
            "answer_rate_24h": 0.6}
    assert identities.check({"national": good}) == []
    assert identities.check({"national": {**good, "satisfaction_rate": None,
                                          "survey": dict.fromkeys(good["survey"], 0)}}) == []
    for bad in ({**good, "satisfaction_rate": 0.8},                          # no answer counted as satisfied
                {**good, "survey": {**good["survey"], "no_answer": 2}},     # answered + no answer != offered
                {**good, "answered_within_15s_rate": 0.7},                  # more within 15 s than answered
                {**good, "answer_rate_24h": 1.2}):
        assert [v["identity"] for v in identities.check({"national": bad})] == ["national_adds_up"]


async def test_a_caller_who_leaves_the_queue_without_a_seat_has_the_engines_measure_of_the_wait():
    """app_queue sets QEHOLDTIME only on connecting: a caller who hung up waiting has none, so
    the channel times Queue() on the engine's clock (queue_wait_s), and 15秒内放弃 counts them."""
    from ivr.agi.channel import AgiChannel
    from ivr.call_channel import CallInfo, CallLog, QueueResult, QueueStatus
    from ivr.calls.service import summary_fields
    from ivr.rehearsal.sim.agi_peer import Caller, InMemoryTransport, QueueOutcome, SimChannel

    times = iter((1000.0, 1012.0))
    sim = SimChannel(Caller(queue=QueueOutcome(kind="abandon")))
    ch = AgiChannel(InMemoryTransport(sim), CallInfo("1.1", "13800138000"), now=lambda: next(times))
    res = await ch.queue("general-q", 0, 300)
    assert (res.status, res.hold_s, res.wait_s) == (QueueStatus.ABANDONED, None, 12.0)
    s = summary_fields(CallInfo("1.1", "13800138000", flow="main"),
                       CallLog(wanted_person=True, queue_result=res), 990.0, 1013.0, 1)
    assert (s["hold_s"], s["queue_wait_s"]) == ("", "12.0")
    assert day([{**s, "started": f"{DAY0 + 5:.3f}"}])["abandoned_within_15s"] == 1
    # answered: QEHOLDTIME is the wait, and the time in Queue() (wait and talk) is not kept
    times = iter((1000.0, 1400.0))
    sim = SimChannel(Caller(queue=QueueOutcome(hold_s=7)))
    ch = AgiChannel(InMemoryTransport(sim), CallInfo("1.2", "13800138000"), now=lambda: next(times))
    assert await ch.queue("general-q", 0, 300, continue_after=True) == QueueResult(
        QueueStatus.ANSWERED, "Local/101@ivr-seats/n", 7)


async def test_the_walls_rolling_24_hours_read_each_summary_once_and_forget_the_old(redis, monkeypatch):
    from ivr.services import figures as rolling_figures

    monkeypatch.setattr(rolling_figures, "PAGE", 2)          # several pages a refresh
    now = time.time()
    rolling = rolling_figures.RollingFigures()

    async def add(at, status, hold, survey=""):
        await redis.xadd(keys.CALLS, {"j": json.dumps({**call(at, status, hold), "survey": survey})})
    for i in range(3):
        await add(now - 600 + i, "ANSWERED", "10", "satisfied")
    await rolling.refresh(redis, now)
    assert rolling.figures(now)["survey"]["offered"] == 3
    await add(now - 60, "ABANDONED", "4")
    await add(now - 30, "ANSWERED", "20", "dissatisfied")
    await rolling.refresh(redis, now)
    await rolling.refresh(redis, now)                         # nothing new: nothing counted twice
    f = rolling.figures(now)
    assert (f["answered_within_15s_rate"], f["answer_rate_24h"], f["abandoned_within_15s"]) == (0.6, 0.8, 1)
    assert (f["average_speed_of_answer_s"], f["satisfaction_rate"], f["complete"]) == (12.5, 0.75, True)
    later = now + 86400 - 300                                  # the first three are more than 24 hours old
    await rolling.refresh(redis, later)
    f = rolling.figures(later)
    assert (f["survey"]["offered"], f["answer_rate_24h"], f["abandoned_within_15s"]) == (1, 0.5, 1)


def test_the_citizens_leg_after_a_callback_is_a_callback_survey_not_a_call_in():
    # ivr.calls.service: the leg Dial's F() sends to the survey after a callback carries kind "callback";
    # a follow-up call "followup"; a citizen's call in "". Only calls in are the period's calls.
    leg = call(DAY0 + 100, "", wanted=False, kind="callback", survey="dissatisfied")
    follow = call(DAY0 + 200, "", wanted=False, kind="followup", survey="satisfied")
    f = day([call(DAY0, hold="3", kind=""), leg, follow])
    assert (f["offered"], f["answered"]) == (1, 1)
    assert f["per_kind"]["callback"]["survey"]["dissatisfied"] == 1
    assert f["per_kind"]["follow_up"]["survey"]["satisfied"] == 1
    assert "live" in f["per_kind"] and f["per_kind"]["live"]["survey"]["offered"] == 0
    assert (f["survey"]["offered"], f["satisfaction_rate"]) == (2, 0.5)


def test_a_registered_citizen_dialling_again_is_not_a_new_call_asking_for_a_seat():
    # the demo's wall divided by 1,049 calls, the drill by 884: 183 redials of citizens already registered
    # for a callback, told their place in the callback order (not queued), counted as wanting a seat
    redial = call(DAY0 + 50, "", wanted=True, already_registered="1")
    f = day([call(DAY0, hold="3"), redial])
    assert (f["offered"], f["answered"], f["answered_within_15s_rate"]) == (1, 1, 1.0)


def test_the_drill_counts_an_answer_within_15_s_in_whole_seconds_as_the_engine_does():
    # Asterisk's QEHOLDTIME is whole seconds: the engine's 15秒接通率 counts a 15.4-s wait as 15; the drill's
    # float wait did not, and its rate sat below the wall's (0.641 against 0.6667 on a smoke drill)
    from ivr.rehearsal.sim import scores
    calls = [scores.Call("1", 0.0, False, "answered", 15.4, True), scores.Call("2", 1.0, False, "answered", 16.0, True)]
    assert scores.answered_within(calls, 0) == (1, 0.5)
    assert scores.national(calls, 0, 60.0)["answered_within_15s_rate"] == 0.5


def test_a_drill_citizen_who_hangs_up_at_the_survey_does_not_press_the_menus_next_digit_into_it():
    # a citizen drawn to hang up at the survey who had been drawn to leave after a policy announcement
    # they never heard kept that plan: the survey then read the menu's next digit ("1", 满意) while the
    # drill counted "no answer"
    import random

    from ivr.rehearsal.sim.agi_peer import Caller, SimChannel
    from ivr.rehearsal.sim.drill import SURVEY_HANG_UP, Drill

    class Always:
        rng = random.Random(0)

    Always.rng.random = lambda: SURVEY_HANG_UP / 2          # type: ignore[method-assign]
    ch = SimChannel(Caller(digits=["2", "1"], hangup_on="policy/"), flow="main")
    assert Drill._survey_answer(Always(), ch, 0.0) == ""      # type: ignore[arg-type]
    assert ch.caller.hangup_on == "/survey "


async def test_a_period_older_than_the_kept_calls_says_from_when_its_call_figures_count(redis, capsys, monkeypatch):
    """The calls stream keeps 2 million summaries (CALLS_STREAM_MAXLEN): a
    month of Beijing's 3 million has lost its first days by the month's end,
    and the month's 接通率, 15秒接通率 and 满意率 counted only the rest without a
    word. The report now says from when the kept summaries begin, Chinese
    first, in the CLI and on the auditors' page (``calls_from_local``), for
    the hours not summed before the stream lost them (here none were)."""
    import datetime as dt

    from ivr.calls import service
    monkeypatch.setattr(service, "CALLS_STREAM_MAXLEN", 3)     # a full stream: it was trimmed at its cap

    from ivr.callback.report_data import gather
    from ivr.cli.callbacks import print_report

    start = DAY0
    kept_ms = int((DAY0 + 3 * 86400) * 1000)           # trimmed up to the fourth day
    for i in range(3):
        await redis.xadd(keys.CALLS, {"j": json.dumps(call(DAY0 + 3 * 86400 + 60 * i, "ANSWERED", "5"))},
                         id=f"{kept_ms + 60_000 * i}-0")
    r = await gather(redis, start, start + 30 * 86400, TZ, now=start + 30 * 86400)
    assert r["calls_from"] == kept_ms / 1000 and r["calls_from_local"] == dt.datetime.fromtimestamp(
        kept_ms / 1000, TZ).strftime("%Y-%m-%d %H:%M")
    assert r["figures"]["answered"] == 3
    print_report(r, "2026-12-01", "2026-12-30", TZ)
    out = capsys.readouterr().out
    assert f"注意：通话记录自 {r['calls_from_local']} 起保留" in out
    # a period that begins after the first kept summary: complete, nothing said
    r = await gather(redis, kept_ms / 1000, kept_ms / 1000 + 86400, TZ)
    assert r["calls_from"] is None and r["calls_from_local"] is None
    print_report(r, "2026-12-04", "2026-12-04", TZ)
    assert "注意" not in capsys.readouterr().out
