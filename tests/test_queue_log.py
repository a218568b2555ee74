"""Asterisk's queue_log, read: the line format (lines as Asterisk 22 wrote them,
and as apps/app_queue.c writes the rest), and the tail that follows the file
through rotation and truncation."""

import os

import pytest

from ivr.errors import QueueLogLineInvalid
from ivr.pbxlog import tail
from ivr.pbxlog.queue_log import Outcome, caller_line_fields, parse_line

# Written by Asterisk 22.11 under the shipped logger.conf (tests/test_live_queue_log.py):
# the engine killed in the greeting, the dialplan queued the citizen, seat 101 answered.
REAL = """\
1796550372|NONE|NONE|NONE|QUEUESTART|
1796550376|1796550373.1|general-q|NONE|ENTERQUEUE||13900000001|1
1796550376|1796550373.1|general-q|Seat101|CONNECT|0|1796550376.4|0
1796550378|1796550373.1|general-q|Seat101|COMPLETEAGENT|0|2|1
"""

# line -> (is a caller's line, event, number, outcome, wait_s)
TABLE = [
    ("1796550372|NONE|NONE|NONE|QUEUESTART|", (False, "QUEUESTART", "", None, None)),
    ("1796550376|1796550373.1|general-q|NONE|ENTERQUEUE||13900000001|1", (True, "ENTERQUEUE", "13900000001", None,
                                                                          None)),
    ("1796550376|1796550373.1|general-q|Seat101|CONNECT|0|1796550376.4|0", (True, "CONNECT", "", Outcome.ANSWERED, 0)),
    ("1796550378|1796550373.1|general-q|Seat101|COMPLETEAGENT|0|2|1", (True, "COMPLETEAGENT", "", None, None)),
    # the formats of apps/app_queue.c (Asterisk 22): ABANDON|pos|origpos|waittime ...
    ("1796550400|1796550390.7|general-q|NONE|ABANDON|1|1|42", (True, "ABANDON", "", Outcome.ABANDONED, 42)),
    ("1796550400|1796550390.8|general-q|NONE|EXITWITHTIMEOUT|2|2|600", (True, "EXITWITHTIMEOUT", "", Outcome.TIMEOUT,
                                                                        600)),
    ("1796550400|1796550390.9|general-q|NONE|EXITEMPTY|1|1|3", (True, "EXITEMPTY", "", Outcome.TIMEOUT, 3)),
    ("1796550400|1796550391.0|general-q|NONE|EXITWITHKEY|5|1|1|9", (True, "EXITWITHKEY", "", Outcome.KEY, 9)),
    ("1796550400|1796550391.1|general-q|NONE|WITHDRAW|2|3|30|callback-offered",
     (True, "WITHDRAW", "", Outcome.WITHDRAWN, 30)),
    # ENTERQUEUE with log_caller_id_name: url|number|position|name
    ("1796550400|1796550391.2|emergency-q|NONE|ENTERQUEUE||13800138000|1|Citizen",
     (True, "ENTERQUEUE", "13800138000", None, None)),
    # a withheld number
    ("1796550400|1796550391.3|general-q|NONE|ENTERQUEUE|||1", (True, "ENTERQUEUE", "", None, None)),
    ("1796550400|1796550391.4|general-q|Seat102|RINGNOANSWER|15000", (True, "RINGNOANSWER", "", None, None)),
    ("1796550400|MANAGER|general-q|Seat201|ADDMEMBER|", (False, "ADDMEMBER", "", None, None)),
    ("1796550400|NONE|general-q|Seat101|PAUSE|contingency", (False, "PAUSE", "", None, None)),
    ("1796550400|NONE|NONE|NONE|CONFIGRELOAD|", (False, "CONFIGRELOAD", "", None, None)),
]


@pytest.mark.parametrize(("line", "expected"), TABLE)
def test_lines_as_asterisk_writes_them(line, expected):
    e = parse_line(line)
    assert (e.is_call, e.event, e.number, e.outcome, e.wait_s) == expected


def test_the_real_file_parses_whole():
    entries = [parse_line(x) for x in REAL.splitlines()]
    assert [e.event for e in entries] == ["QUEUESTART", "ENTERQUEUE", "CONNECT", "COMPLETEAGENT"]
    assert entries[2].agent == "Seat101" and entries[2].data[1] == "1796550376.4"
    assert entries[1].at == 1796550376 and entries[1].uniqueid == "1796550373.1"


@pytest.mark.parametrize("line", [
    "", "garbage", "1796550376|1796550373.1|general-q|NONE", "notanumber|1.1|q|NONE|ENTERQUEUE||1|1",
    "1796550376|1.1|q|NONE|enter queue||1|1", "1796550376|1.1|q|NONE|||1|1", "1" * 9000,
])
def test_what_asterisk_does_not_write_is_refused(line):
    with pytest.raises(QueueLogLineInvalid):
        parse_line(line)


def test_only_callers_lines_reach_the_reconciliation():
    got = [caller_line_fields(parse_line(x)) for x in REAL.splitlines()]
    assert got == [None,
                   ("1796550373.1", "1796550376", "enter", "general-q", "13900000001", "NONE", ""),
                   ("1796550373.1", "1796550376", "answered", "general-q", "", "Seat101", "0"),
                   ("1796550373.1", "1796550378", "complete", "general-q", "", "Seat101", "2")]


# -- the tail ---------------------------------------------------------------------------


def _append(path, text):
    with path.open("a") as f:
        f.write(text)


def test_the_tail_reads_whole_lines_from_its_position(tmp_path):
    path = tmp_path / "queue_log"
    assert tail.read(path, tail.Position()) == tail.Chunk([], tail.Position(), "missing")     # no file yet
    _append(path, "1|NONE|NONE|NONE|QUEUESTART|\n2|a.1|q|NONE|ENTERQUEUE||1|1\n3|a.1|q|S|CONN")
    c = tail.read(path, tail.Position())
    assert c.lines == ["1|NONE|NONE|NONE|QUEUESTART|", "2|a.1|q|NONE|ENTERQUEUE||1|1"] and c.note == "started"
    assert tail.read(path, c.position).lines == []          # the line being written waits
    _append(path, "ECT|0|b.2|0\n")
    c2 = tail.read(path, c.position)
    assert c2.lines == ["3|a.1|q|S|CONNECT|0|b.2|0"] and c2.position.offset == path.stat().st_size


def test_the_tail_reads_in_bounded_chunks(tmp_path):
    path = tmp_path / "queue_log"
    _append(path, "".join(f"{i}|u.{i}|q|NONE|ENTERQUEUE||1|1\n" for i in range(100)))
    pos, lines, reads = tail.Position(), [], 0
    while True:
        c = tail.read(path, pos, max_bytes=256)
        reads += 1
        lines += c.lines
        pos = c.position
        if not c.more:
            break
    assert len(lines) == 100 and reads > 10 and lines[-1].startswith("99|")


def test_the_tail_finishes_a_rotated_file_then_reads_the_new_one(tmp_path):
    path = tmp_path / "queue_log"
    _append(path, "1|a.1|q|NONE|ENTERQUEUE||1|1\n")
    pos = tail.read(path, tail.Position()).position
    _append(path, "2|a.1|q|NONE|ABANDON|1|1|5\n")           # written before the rotation, not yet read
    os.rename(path, tmp_path / "queue_log.0")               # Asterisk's `logger rotate`
    _append(path, "3|b.1|q|NONE|ENTERQUEUE||2|1\n")
    c = tail.read(path, pos)
    assert c.lines == ["2|a.1|q|NONE|ABANDON|1|1|5"] and c.note == "rotated" and c.more
    c = tail.read(path, c.position)
    assert c.lines == ["3|b.1|q|NONE|ENTERQUEUE||2|1"] and c.position.inode == path.stat().st_ino


def test_the_tail_says_when_the_rotated_file_is_gone(tmp_path):
    path = tmp_path / "queue_log"
    _append(path, "1|a.1|q|NONE|ENTERQUEUE||1|1\n")
    pos = tail.read(path, tail.Position()).position
    os.rename(path, tmp_path / "elsewhere")
    _append(path, "3|b.1|q|NONE|ENTERQUEUE||2|1\n")
    c = tail.read(path, pos)
    assert c.note == "rotated_unseen" and c.lines == ["3|b.1|q|NONE|ENTERQUEUE||2|1"]


def test_the_tail_starts_again_after_truncation(tmp_path):
    path = tmp_path / "queue_log"
    _append(path, "1|a.1|q|NONE|ENTERQUEUE||1|1\n2|a.1|q|NONE|ABANDON|1|1|5\n")
    pos = tail.read(path, tail.Position()).position
    path.write_text("")                                     # copytruncate
    _append(path, "3|b.1|q|NONE|ENTERQUEUE||2|1\n")
    c = tail.read(path, pos)
    assert c.note == "truncated" and c.lines == ["3|b.1|q|NONE|ENTERQUEUE||2|1"]


def test_a_huge_line_without_a_newline_cannot_stop_the_tail(tmp_path):
    path = tmp_path / "queue_log"
    _append(path, "x" * 1000)
    c = tail.read(path, tail.Position(), max_bytes=256)
    assert c.lines == [] and c.position.offset == 256
