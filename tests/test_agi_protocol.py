import json

import pytest

from ivr.agi.protocol import (
    AgiParseError,
    AgiResponse,
    UnsafeCommand,
    parse_args,
    parse_env_line,
    parse_response,
    quote,
)
from tests.conftest import TRANSCRIPTS


@pytest.mark.parametrize("line, expected", [
    ("200 result=0", AgiResponse(200, "0")),
    ("200 result=0 endpos=48603", AgiResponse(200, "0", None, 48603)),
    ("200 result=-1 endpos=0", AgiResponse(200, "-1", None, 0)),
    ("200 result=1 (2)", AgiResponse(200, "1", "2")),
    ("200 result=1 (13800138000-2)", AgiResponse(200, "1", "13800138000-2")),
    ("200 result=1 (timeout) endpos=0", AgiResponse(200, "1", "timeout", 0)),
    ("200 result= (timeout)", AgiResponse(200, "", "timeout")),
    ("200 result=12 (timeout)", AgiResponse(200, "12", "timeout")),
    ("200 result=-1 (hangup) endpos=8000", AgiResponse(200, "-1", "hangup", 8000)),
    ("200 result=1 (Local/101@seats/n)", AgiResponse(200, "1", "Local/101@seats/n")),
    ("200 result=1 (a (nested) value)", AgiResponse(200, "1", "a (nested) value")),
    ("511 Command Not Permitted on a dead channel or intercept routine",
     AgiResponse(511, text="Command Not Permitted on a dead channel or intercept routine")),
    ("510 Invalid or unknown command", AgiResponse(510, text="Invalid or unknown command")),
])
def test_parse_response(line, expected):
    assert parse_response(line) == expected


@pytest.mark.parametrize("line", ["", "hello", "200 nonsense", "20 result=1"])
def test_parse_response_rejects_garbage(line):
    with pytest.raises(AgiParseError):
        parse_response(line)


def test_every_real_response_line_parses():
    """Every line real Asterisk 22 sent after the header parses (or is the HANGUP notice). An entry
    without a sender marks an event of the capture (``{"event": "closed"}``: the socket closed)."""
    seen = 0
    for path in sorted(TRANSCRIPTS.glob("*.json")):
        lines = [e["raw"].rstrip("\n") for e in json.loads(path.read_text())["exchange"]
                 if e.get("from") == "asterisk" and not e["raw"].startswith("agi_") and e["raw"] != "\n"]
        for line in lines:
            if line != "HANGUP":
                assert parse_response(line).code in (200, 511), line
                seen += 1
    assert seen > 60


def test_env_line():
    assert parse_env_line("agi_callerid: 13800138000") == ("agi_callerid", "13800138000")
    assert parse_env_line("agi_accountcode: ") == ("agi_accountcode", "")
    assert parse_env_line("agi_request: agi://127.0.0.1:4573/main") == ("agi_request", "agi://127.0.0.1:4573/main")
    assert parse_env_line("garbage") is None


def test_parse_args_matches_asterisk_on_real_commands():
    assert parse_args('STREAM FILE ivr/welcome ""') == ["STREAM", "FILE", "ivr/welcome", ""]
    assert parse_args('GET FULL VARIABLE "${CALLERID(num)}-${IVR_LEVEL}"') == [
        "GET", "FULL", "VARIABLE", "${CALLERID(num)}-${IVR_LEVEL}"]
    assert parse_args('RECORD FILE ivr-msg-test wav "#" 3000 0 s=2') == [
        "RECORD", "FILE", "ivr-msg-test", "wav", "#", "3000", "0", "s=2"]
    assert parse_args('SET VARIABLE X "a"b"c"') == ["SET", "VARIABLE", "X", "abc"]


@pytest.mark.parametrize("value", [
    'plain', 'two words', 'say "hi"', 'back\\slash', 'trailing\\', '\\"', '"', '',
    'tab\there', '王小明 "老王"', 'x" ; EXEC Dial "Local/110@x', "  lead and trail  ",
])
def test_quote_round_trips_through_asterisk_parser(value):
    argv = parse_args(f"SET VARIABLE NAME {quote(value)}")
    assert argv == ["SET", "VARIABLE", "NAME", value]


@pytest.mark.parametrize("value", ["line1\nHANGUP", "a\r\nEXEC Dial Local/110", "end\n"])
def test_quote_cannot_carry_a_second_command(value):
    with pytest.raises(UnsafeCommand):     # refused, never silently altered
        quote(value)
