"""The pictures' harness (tests/wall_shots.py): its checks of a board's seat
line, the report's sample it sets beside a shot, the moments it is given."""

import pytest

from tests.wall_shots import moments, nearest, seat_line_adds_up


def board(**seats):
    s = {"on_shift": 44, "base": 44, "added_by_plan": 0, "busy": 41, "wrapup": 1, "idle": 0, "paused": 0,
         "reserved": 2, **seats}
    return {"wall": {"seats": s, "idle_seats": s["idle"]}}


def test_a_seat_line_that_adds_up_passes():
    assert seat_line_adds_up(board()) == []
    assert seat_line_adds_up(board(on_shift=46, added_by_plan=2, busy=43)) == []


def test_a_seat_line_that_does_not_add_up_is_told():
    # the early wall: "在岗坐席 42 = 42 · 通话 43 · 空闲 1"
    early = board(on_shift=42, base=42, busy=43, wrapup=0, idle=1, reserved=0)
    assert seat_line_adds_up(early) == ["on shift 42 != 44 (talking + wrap-up + idle + paused + reserved)"]
    assert seat_line_adds_up(board(base=42)) == ["on shift 44 != own 42 + added 0"]
    b = board()
    b["wall"]["idle_seats"] = 4
    assert seat_line_adds_up(b) == ["idle tile 4 != seat line's idle 0"]


def test_the_report_sample_nearest_a_shot():
    series = {"t": [630.0, 700.0, 770.0], "backlog": [150, 166, 200], "level": [1, 1, 1]}
    n = nearest(series, 716.0)
    assert (n["t"], n["backlog"]) == (700.0, 166)
    assert n["around"]["backlog"] == [(630.0, 150), (700.0, 166), (770.0, 200)]
    assert nearest(series, 760.0)["t"] == 770.0


def test_moments_given_are_taken_in_time_order_with_their_pages():
    assert moments(["end:4080:seats", "early:720"]) == [("early", 720.0, ("wall", "seats")),
                                                        ("end", 4080.0, ("seats",))]
    # docs/console.md's four pictures by default
    assert [(name, pages) for name, _, pages in moments(None)] == [
        ("early", ("wall",)), ("late", ("wall",)), ("end", ("wall", "seats"))]


def test_a_page_that_is_not_one_is_refused():
    with pytest.raises(SystemExit, match="NAME:SECONDS"):
        moments(["end:4080:audit"])
