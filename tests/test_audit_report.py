"""The auditors' figures, pure: the hotline's answer rates from call summaries
and callback records, and what a person reads instead of codes."""

from zoneinfo import ZoneInfo

from ivr.callback.labels import trail_row
from ivr.callback.report import hotline_figures, month_days, pct_text, period, report

TZ = ZoneInfo("Asia/Shanghai")


def call(number, answered, wanted=True, started=100.0):
    return {"number": number, "wanted_person": "1" if wanted else "0", "started": str(started),
            "queue_status": "ANSWERED" if answered else ("ABANDONED" if wanted else "")}


def test_live_and_broad_answer_rates():
    calls = [call("1", True), call("2", False), call("2", True),   # 2 reached on a later call in the queue
             call("3", False), call("4", False), call("5", False), call("6", False, wanted=False)]
    records = [  # 3 reached by callback in time; 4 after its deadline; 5 only a misdial
        {"number": "3", "closed_reason": "reached", "closed_at": "500", "deadline": "1000", "first_at": "100"},
        {"number": "4", "closed_reason": "reached", "closed_at": "2000", "deadline": "1000", "first_at": "100"},
        {"number": "5", "closed_reason": "misdial", "closed_at": "100", "deadline": "100", "first_at": "100"}]
    h = hotline_figures(calls, records, {"Local/101": {"attempts": 3, "reached": 1},
                                         "Local/102": {"attempts": 1, "reached": 1}})
    assert (h["calls_wanting_person"], h["calls_answered_live"], h["live_answer_rate_pct"]) == (6, 2, 33.3)
    # citizens 1, 2, 3, 4 (5 was only a misdial): 1, 2, 3 reached
    assert (h["citizens_wanting_person"], h["citizens_reached"], h["broad_answer_rate_pct"]) == (4, 3, 75.0)
    assert (h["callbacks_made_per_seat"], h["callbacks_reached_per_seat"]) == (2.0, 1.0)


def test_nothing_to_divide_reads_as_a_dash():
    r = report([], [], 0, 1)
    assert r["reached_within_deadline_pct"] is None and pct_text(r["reached_within_deadline_pct"]) == "—"
    assert hotline_figures([], [], {})["broad_answer_rate_pct"] is None
    assert pct_text(87.5) == "87.5%"


def test_periods_are_days_in_beijing():
    start, end = period("2026-12-01", "2026-12-01", TZ)
    assert start == 1796054400.0 and end - start == 86400   # 2026-11-30 16:00 UTC
    assert month_days("2026-02") == ("2026-02-01", "2026-02-28")


def test_trail_rows_read_in_chinese_and_local_time():
    e = {"kind": "attempt", "at": 1796054400.0, "seat": "Local/101@ivr-seats/n", "outcome": "no_answer", "attempt": 2}
    row = trail_row(e, TZ)
    assert (row["time"], row["label"], row["detail"]) == ("2026-12-01 00:00:00", "回拨结果",
                                                         "第 2 次 · 无人接听 · 坐席 Local/101@ivr-seats/n")
    closed = trail_row({"kind": "closed", "at": 0, "reason": "cancelled: 市民已来访", "note": "市民已来访"}, TZ)
    assert closed["label"] == "已办结" and closed["detail"].startswith("已取消")


def test_cli_report_of_an_empty_day_has_no_none(capsys):
    from ivr.callback.report import hotline_figures
    from ivr.cli.callbacks import print_report
    r = report([], [], 0, 1)
    r["hotline"] = hotline_figures([], [], {})
    print_report(r, "2026-12-01", "2026-12-01", TZ)
    out = capsys.readouterr().out
    assert "None" not in out and "期限内接通 within deadline 0 (—)" in out and "接通率 live answer rate —" in out


def test_wallboard_colours_follow_the_shipped_plan(project_home):
    from ivr.project import Project, require_operations
    from ivr.web import wallboard as wall
    ops = require_operations(Project(project_home), TZ)
    th = wall.plan_thresholds(ops.plan)
    assert th["abandon_rate"] == (0.15, 0.30) and th["calls_waiting"] == (20, 60)
    c = wall.colours({"waiting": 5, "abandon_rate": 0.62, "service_level_pct": 0.0, "idle_seats": 3,
                      "emergency_waiting": 0, "longest_wait_s": 130, "callback_oldest_age_s": None}, th)
    assert (c["abandon_rate"], c["service_level"], c["waiting"], c["longest_wait_s"]) == \
        ("red", "red", "green", "amber")
    assert c["callback_oldest_age_s"] == ""
    added = wall.added_by_plan(ops.plan, ops.seats, {"general": "general-q"}, 2)
    assert added == {"Local/201@ivr-seats/n", "Local/202@ivr-seats/n"}
