"""The AGI wire protocol, sans I/O.

Facts from real Asterisk 22 (see ../shared/asterisk-22/README.md and
res/res_agi.c) that this module encodes:

- Asterisk splits a command line the way ``parse_args`` below does: spaces and
  tabs separate words, ``"`` toggles quoting, ``\\`` makes the next character
  literal. A newline always ends the command, so no value may carry one.
- A response is ``200 result=<r> [(<data>)] [endpos=<n>]``, or ``510 ...``,
  ``511 ...`` (dead channel), or a ``520-`` block closed by a ``520 `` line.
- ``HANGUP`` on a line of its own is a notice, not a response: FastAGI sends it
  once, before the response to whatever command comes next.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ivr.errors import AgiParseError, UnsafeCommand

HANGUP_NOTICE = "HANGUP"
DEAD_CHANNEL = 511

_RESPONSE_200 = re.compile(
    r"200 result=(?P<result>\S*)(?: \((?P<data>.*)\))?(?: endpos=(?P<endpos>-?\d+))?"
)


@dataclass(frozen=True, slots=True)
class AgiResponse:
    code: int
    result: str = ""
    data: str | None = None
    endpos: int | None = None
    text: str = ""  # the rest of a non-200 line (e.g. the 511 reason)

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def result_int(self) -> int:
        try:
            return int(self.result)
        except ValueError:
            return 0


def parse_response(line: str) -> AgiResponse:
    """Parse one response line (without its newline). ``520-`` blocks are
    collapsed by the reader before they reach here (see ``is_usage_start``)."""
    if line.startswith("200 "):
        m = _RESPONSE_200.fullmatch(line)
        if m is None:
            raise AgiParseError(f"malformed AGI response {line!r}")
        endpos = m.group("endpos")
        return AgiResponse(
            200, m.group("result"), m.group("data"), int(endpos) if endpos is not None else None
        )
    code, _, text = line.partition(" ")
    if len(code) == 3 and code.isdigit():
        return AgiResponse(int(code), text=text)
    raise AgiParseError(f"malformed AGI response {line!r}")


def is_usage_start(line: str) -> bool:
    """``520-Invalid command syntax.  Proper usage follows:`` opens a block that
    ends with a line starting ``520 ``."""
    return line.startswith("520-")


MAX_HEADER_LINES = 200


# What a held call keeps of its header (issue 20: memory per held caller). The
# keys Asterisk writes, and the values that are the same on every call of a
# deployment, are shared between calls instead of one copy per call: about
# 1.4 KB per call. Shared values come only from keys the dialplan and the
# endpoints' configuration set (never the caller's number, name, dialled or
# redirecting number, or the extension a pattern matched), only up to
# ``SHARED_VALUE_MAX`` characters, and at most ``SHARED_VALUES_MAX`` of them.
ENV_KEYS = ("agi_network", "agi_network_script", "agi_request", "agi_channel", "agi_language", "agi_type",
            "agi_uniqueid", "agi_version", "agi_callerid", "agi_calleridname", "agi_callingpres",
            "agi_callingani2", "agi_callington", "agi_callingtns", "agi_dnid", "agi_rdnis", "agi_context",
            "agi_extension", "agi_priority", "agi_enhanced", "agi_accountcode", "agi_threadid",
            *(f"agi_arg_{i}" for i in range(1, 21)))
_KEYS = {k: k for k in ENV_KEYS}
_SHARED_VALUE_KEYS = frozenset(("agi_network", "agi_network_script", "agi_request", "agi_language", "agi_type",
                                "agi_version", "agi_context", "agi_priority", "agi_enhanced", "agi_accountcode"))
_SHARED_VALUES: dict[str, str] = {}
SHARED_VALUES_MAX = 1024
SHARED_VALUE_MAX = 64


def parse_env_line(line: str) -> tuple[str, str] | None:
    """``agi_callerid: 13800138000`` -> (key, value). None for a malformed line."""
    key, sep, value = line.partition(":")
    if not sep or not key.startswith("agi_"):
        return None
    key = _KEYS.get(key, key)
    if value.startswith(" "):
        value = value[1:]
    if key in _SHARED_VALUE_KEYS and len(value) <= SHARED_VALUE_MAX:
        shared = _SHARED_VALUES.get(value)
        if shared is not None:
            value = shared
        elif len(_SHARED_VALUES) < SHARED_VALUES_MAX:
            _SHARED_VALUES[value] = value
    return key, value


def split_header_lines(block: str) -> list[str]:
    """The lines of an AGI environment block, split the way Asterisk writes it:
    on "\n" only, one trailing "\r" removed.

    Never ``str.splitlines``: it also splits on "\r", "\x0b", "\x0c", "\x1c"-"\x1e",
    "\x85", U+2028 and U+2029, all of which a caller controls inside the caller-ID
    name, and would let them start a line of their own (a forged ``agi_callerid``)."""
    return [line[:-1] if line.endswith("\r") else line for line in block.split("\n")]


def parse_header(lines: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """The AGI environment from its lines (without their "\n"; see
    ``split_header_lines``), and the keys that appeared more than once.

    The first occurrence of a key wins: Asterisk writes each key once, so a later
    one can only have been smuggled in. At most ``MAX_HEADER_LINES`` are read."""
    env: dict[str, str] = {}
    duplicates: list[str] = []
    for i, line in enumerate(lines):
        if i >= MAX_HEADER_LINES:
            break
        kv = parse_env_line(line)
        if kv is None:
            continue
        if kv[0] in env:
            duplicates.append(kv[0])
            continue
        env[kv[0]] = kv[1]
    return env, duplicates


def checked_command(line: str) -> str:
    """``line`` if it is exactly one command line: one "\n", at the end, and no
    "\r" anywhere (Asterisk ends a command at either). Raises ``UnsafeCommand``."""
    if not line.endswith("\n") or "\n" in line[:-1] or "\r" in line:
        raise UnsafeCommand(f"refused to send an AGI command with a line break: {line!r}")
    return line


def quote(value: object) -> str:
    """Quote one argument so Asterisk's parse_args reads it back unchanged.

    Newlines cannot be carried (they end the command line): an argument with
    "\r" or "\n" is refused (``UnsafeCommand``), so a caller-ID name or flow
    value can never smuggle in a second command.
    """
    text = str(value)
    if "\r" in text or "\n" in text:
        raise UnsafeCommand(f"refused an AGI argument with a line break: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def command(*words: object) -> str:
    """Build a command line: the words are the command's fixed keywords and
    already-safe tokens; use ``quote`` for anything that came from outside."""
    return " ".join(str(w) for w in words) + "\n"


def parse_args(line: str) -> list[str]:
    """A port of res_agi.c ``parse_args``: how Asterisk splits a command line.

    Used by the simulated Asterisk and by the tests that prove ``quote`` cannot
    be escaped from.
    """
    argv: list[str] = []
    cur: list[str] | None = None
    quoted = escaped = False
    whitespace = True
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                cur = []
                argv.append("")  # placeholder, filled below
                whitespace = False
            escaped = False
            continue
        if ch in " \t" and not quoted and not escaped:
            if cur is not None:
                argv[-1] = "".join(cur)
            cur = None
            whitespace = True
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if whitespace:
            cur = []
            argv.append("")
            whitespace = False
        assert cur is not None
        cur.append(ch)
        escaped = False
    if cur is not None:
        argv[-1] = "".join(cur)
    return argv
