"""The real AMI sessions captured from Asterisk 22 (tests/fixtures/asterisk-22/ami)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

AMI = Path(__file__).parent / "fixtures" / "asterisk-22" / "ami"
SESSIONS = sorted(p.stem for p in AMI.glob("*.json"))


def load(name: str) -> list[dict]:
    """Messages after the banner: {t, msg, raw}."""
    return json.loads((AMI / f"{name}.json").read_text())[1:]


def keys_of(raw: str) -> tuple[str, ...]:
    return tuple(line.split(":", 1)[0] for line in raw.split("\r\n") if line)


def real_shapes() -> dict[str, set[tuple[str, ...]]]:
    """Event name (or 'Response') -> every key sequence Asterisk sent for it."""
    out: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for s in SESSIONS:
        for m in load(s):
            out[m["msg"].get("Event") or "Response"].add(keys_of(m["raw"]))
    return out


def real_messages() -> set[tuple[str, str]]:
    """(Response, Message) pairs Asterisk answered actions with."""
    return {(m["msg"]["Response"], m["msg"].get("Message", ""))
            for s in SESSIONS for m in load(s) if "Response" in m["msg"] and "Event" not in m["msg"]}
