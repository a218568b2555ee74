"""One rule for every name that staff, flows or callers can supply: flows, steps,
prompts, queues, announcement sets, seat groups, users, channel variables...

Every check is a full match (``re.fullmatch``). Never ``re.match`` with ``$``:
``$`` also matches before a trailing "\\n", so ``welcome\\n`` would pass and carry
a line break into an AGI command, a file name or a Redis key. The patterns
below have no anchors at all; ``Rule`` only offers full matching, so no call
site can get it wrong.
"""

from __future__ import annotations

import re


class Rule:
    """A named pattern that only ever matches a whole string."""

    __slots__ = ("pattern", "what")

    def __init__(self, pattern: str, what: str) -> None:
        self.pattern = re.compile(pattern)
        self.what = what  # how an error message describes a valid value

    def ok(self, value: object) -> bool:
        return isinstance(value, str) and self.pattern.fullmatch(value) is not None

    # Drop-in for the ``re.Pattern`` methods the call sites used; both full matches.
    def fullmatch(self, value: object) -> bool:
        return self.ok(value)

    match = fullmatch

    def __repr__(self) -> str:
        return f"Rule({self.pattern.pattern!r})"


# Flows, steps, queues (the flows' names for them), announcement sets, seat groups, drills.
NAME = Rule(r"[A-Za-z][A-Za-z0-9_-]{0,63}", "a letter, then up to 63 letters, digits, '-' or '_'")
FLOW = NAME
# Prompts: a relative path under prompts/ without extension, no "..", no leading "/".
PROMPT = Rule(r"[A-Za-z0-9_-]{1,64}(?:/[A-Za-z0-9_-]{1,64}){0,7}",
              "letters, digits, '-' or '_', folders separated by '/'")
# PBXs (as named in queue/lines.yaml and by `ivr prompts sync --pbx`), as the API's PBX_NAME states them.
PBX = Rule(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", "a letter or digit, then up to 63 letters, digits, '.', '_' or '-'")
# Voice messages, as the record step names them (``msg-<uniqueid>-<n>``).
MESSAGE = Rule(r"msg-[A-Za-z0-9_.-]{1,120}", "msg- then letters, digits, '.', '_' or '-'")
# Console users.
USER = Rule(r"[A-Za-z0-9_.-]{2,32}", "2 to 32 letters, digits, '.', '_' or '-'")
# Flow variables (upper case) and any channel variable the engine sets or reads.
FLOW_VARIABLE = Rule(r"[A-Z][A-Z0-9_]{0,63}", "an upper-case letter, then upper-case letters, digits or '_'")
CHANNEL_VARIABLE = Rule(r"[A-Za-z_][A-Za-z0-9_]{0,79}", "letters, digits or '_', not starting with a digit")
# Values, not names, but they reach the PBX the same way.
DIGITS = Rule(r"[0-9*#]+", "digits, '*' or '#'")
PHONE_NUMBER = Rule(r"\+?[0-9]{3,20}", "3 to 20 digits, optionally after '+'")
# Asterisk queue names, music classes, dial strings, recording paths: the last
# line of defence before an AGI command (the validators restrict them first).
PBX_TOKEN = Rule(r"[A-Za-z0-9_./@:+-]{1,255}", "letters, digits and _./@:+-")
