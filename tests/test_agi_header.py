"""The AGI environment block: a caller controls the caller-ID name, and nothing
in it may change the number, the flow or any other key (FastAGI and classic AGI
read the block with the same parser)."""

import asyncio
import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr import logs
from ivr.agi.fastagi import FastAgiServer
from ivr.agi.protocol import parse_header, split_header_lines
from ivr.call_channel import CallInfo

# Every character str.splitlines() treats as a line end, except "\n" itself.
LINE_BREAKERS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def header(name: str, extra: str = "") -> str:
    return ("agi_network: yes\n"
            "agi_network_script: main\n"
            "agi_request: agi://127.0.0.1:4573/main\n"
            "agi_channel: PJSIP/trunk-00000001\n"
            "agi_uniqueid: 1700000000.1\n"
            "agi_callerid: 13800138000\n"
            f"agi_calleridname: {name}\n"
            f"{extra}\n")


def forged_name(breaker: str) -> str:
    return f"Zhang{breaker}agi_callerid: 19900000000{breaker}agi_network_script: admin{breaker}agi_arg_1: x"


@pytest.mark.parametrize("breaker", LINE_BREAKERS, ids=[hex(ord(c)) for c in LINE_BREAKERS])
def test_caller_id_name_cannot_forge_number_or_flow(breaker):
    env, _ = parse_header(split_header_lines(header(forged_name(breaker))))
    call = CallInfo.from_agi_env(env)
    assert call.caller_number == "13800138000"
    assert call.flow == "main"
    assert call.args == ()
    assert call.caller_name == forged_name(breaker)


def test_a_later_duplicate_key_never_wins():
    env, dups = parse_header(split_header_lines(header("Li", "agi_callerid: 19900000000\nagi_network_script: admin\n")))
    assert env["agi_callerid"] == "13800138000" and env["agi_network_script"] == "main"
    assert dups == ["agi_callerid", "agi_network_script"]


def test_crlf_lines_lose_one_cr_only():
    env, _ = parse_header(split_header_lines("agi_callerid: 123\r\nagi_calleridname: a\r\r\n"))
    assert env == {"agi_callerid": "123", "agi_calleridname": "a\r"}


_values = st.text(st.characters(blacklist_characters="\n"), max_size=40)


@settings(max_examples=300, deadline=None)
@given(name=_values, keys=st.lists(st.sampled_from(["agi_callerid", "agi_network_script", "agi_arg_1",
                                                   "agi_uniqueid", "agi_request"]), max_size=4),
       glue=st.lists(st.sampled_from(LINE_BREAKERS + [":", " ", ""]), min_size=1, max_size=4))
def test_property_name_never_changes_other_keys(name, keys, glue):
    """Whatever a caller-ID name holds (anything but "\\n", which no SIP header can
    carry), the other keys keep the values Asterisk wrote."""
    smuggled = name + "".join(f"{glue[i % len(glue)]}{k}: 666" for i, k in enumerate(keys))
    env, _ = parse_header(split_header_lines(header(smuggled)))
    assert env["agi_calleridname"] == smuggled.removesuffix("\r")   # "\r\n" ends a line: one "\r" goes
    assert env["agi_callerid"] == "13800138000"
    assert env["agi_network_script"] == "main"
    assert env["agi_uniqueid"] == "1700000000.1"
    assert "agi_arg_1" not in env


@pytest.mark.parametrize("breaker", ["\r", "\x85", "\u2028", "\x0b"], ids=["cr", "nel", "ls", "vt"])
async def test_fastagi_server_reads_the_real_number_and_flow(breaker):
    got: asyncio.Queue = asyncio.Queue()

    async def handler(env, transport):
        await got.put(env)

    server = FastAgiServer(handler, "127.0.0.1", 0, logs.get("test"))
    await server.start()
    try:
        r, w = await asyncio.open_connection("127.0.0.1", server.port)
        w.write(header(forged_name(breaker)).encode("utf-8"))
        await w.drain()
        env = await asyncio.wait_for(got.get(), 5)
        w.close()
        await w.wait_closed()
    finally:
        await server.stop(0)
    call = CallInfo.from_agi_env(env)
    assert (call.caller_number, call.flow, call.args) == ("13800138000", "main", ())


@pytest.mark.parametrize("breaker", ["\r", "\u2028"], ids=["cr", "ls"])
def test_classic_agi_reads_the_real_number(project_home, tmp_path, breaker):
    """ivr-agi: the header comes through stdin; the flow is ivr-agi's argument.
    A flow that does not exist makes ivr-agi fall back at once, after logging
    nothing but the refusal: so run the real flow and read call_start."""
    env = {**os.environ, "IVR_HOME": str(project_home), "IVR_DATA_DIR": str(tmp_path)}
    block = header(forged_name(breaker)).encode("utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "ivr.agi.classic", "main"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdin.write(block)
    proc.stdin.flush()
    first = proc.stdout.readline()          # ANSWER
    proc.stdin.close()                      # then Asterisk goes away
    proc.stdout.read()
    err = proc.stderr.read().decode()
    proc.wait(20)
    proc.stdout.close()
    proc.stderr.close()
    assert first == b"ANSWER\n", err
    start = next(json.loads(line) for line in err.splitlines() if '"call_start"' in line)
    assert start["caller"].startswith("138") and "199" not in start["caller"]


def _fresh(text: str) -> str:
    """``text`` as a new string object, as each call's header arrives."""
    return "".join(list(text))


def test_held_calls_share_the_header_keys_and_the_deployment_values_but_never_a_callers_value():
    """Memory per held caller (issue 20): two calls' headers share their keys
    and the values every call of a deployment repeats; the number and the
    caller-ID name each call keeps for itself."""
    a, _ = parse_header(split_header_lines(_fresh(header("Zhang"))))
    b, _ = parse_header(split_header_lines(_fresh(header("Zhang"))))
    ka, kb = {k: k for k in a}, {k: k for k in b}
    assert all(ka[k] is kb[k] for k in a)
    for key in ("agi_network", "agi_network_script", "agi_request"):
        assert a[key] is b[key]
    for key in ("agi_callerid", "agi_calleridname", "agi_uniqueid", "agi_channel"):
        assert a[key] == b[key] and a[key] is not b[key]


def test_the_shared_values_stay_bounded_whatever_the_pbx_sends(monkeypatch):
    from ivr.agi import protocol
    monkeypatch.setattr(protocol, "_SHARED_VALUES", {})     # the other tests' calls keep theirs
    for i in range(protocol.SHARED_VALUES_MAX + 500):
        parse_header(split_header_lines(f"agi_context: ctx-{i}\nagi_callerid: {i}\n"))
    assert len(protocol._SHARED_VALUES) <= protocol.SHARED_VALUES_MAX
    env, _ = parse_header(split_header_lines(f"agi_context: ctx-{protocol.SHARED_VALUES_MAX + 600}\n"))
    assert env["agi_context"] == f"ctx-{protocol.SHARED_VALUES_MAX + 600}"



def test_a_long_value_or_a_callers_routing_number_is_never_shared():
    long_ctx = "c" * 65
    a, _ = parse_header(split_header_lines(_fresh(f"agi_context: {long_ctx}\nagi_rdnis: 13800000000\n"
                                                  "agi_dnid: 12345\nagi_extension: 12345\n")))
    b, _ = parse_header(split_header_lines(_fresh(f"agi_context: {long_ctx}\nagi_rdnis: 13800000000\n"
                                                  "agi_dnid: 12345\nagi_extension: 12345\n")))
    for key in ("agi_context", "agi_rdnis", "agi_dnid", "agi_extension"):
        assert a[key] == b[key] and a[key] is not b[key], key
