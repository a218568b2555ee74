"""structlog set-up: one JSON event per line in production, the call's unique id
bound to every line of a call, phone numbers masked, secrets never written
(fields named like a secret, passwords in URLs)."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import FilteringBoundLogger

# What every ``log`` parameter is: the level-filtering bound logger configure() sets up.
Log = FilteringBoundLogger

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_PHONE_KEYS = frozenset({"caller", "number", "callerid", "phone", "citizen"})
_LONG_DIGITS = re.compile(r"(?<!\d)(\d{3})\d{4,}(\d{2})(?!\d)")
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@\s]*@")


def mask_number(number: str) -> str:
    """138******00: enough for staff to tell calls apart, not enough to dial
    (personal information protection law)."""
    digits = str(number)
    if len(digits) <= 5:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 5) + digits[-2:]


def mask_text(text: str) -> str:
    """Free text with every phone number in it masked, and URL passwords hidden."""
    return _URL_PASSWORD.sub(r"\1:***@", _LONG_DIGITS.sub(lambda mm: mask_number(mm.group(0)), text))


def _mask_phone_fields(_: object, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in _PHONE_KEYS.intersection(event):
        event[key] = mask_number(event[key])
    msg = event.get("event")
    # one scan in C for the usual event name without a number (a generator over
    # its characters was a tenth of a log line's CPU, two lines per call)
    if isinstance(msg, str) and _LONG_DIGITS.search(msg):
        event["event"] = _LONG_DIGITS.sub(lambda mm: mask_number(mm.group(0)), msg)
    return event


_SECRET_KEYS = frozenset({"secret", "password", "passwd", "token", "key", "authorization", "ami_secret"})


def _mask_secrets(_: object, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """No secret in a log line: fields named like one, and URL passwords."""
    for k, v in event.items():
        if k in _SECRET_KEYS:
            event[k] = "***"
        elif type(v) is str and "://" in v and "@" in v:
            event[k] = _URL_PASSWORD.sub(r"\1:***@", v)
    return event



def _orjson_line(event: MutableMapping[str, Any], **_: Any) -> str:
    return orjson.dumps(event, default=repr).decode()


_configured: dict[str, str] = {}       # level and format of the last configure(): child processes log alike


def configured() -> dict[str, str]:
    """How this process logs (``level``, ``format``), for the processes it
    starts on the same stderr: a drill that shows only errors among its
    Chinese lines gets no info line in JSON from its console. Empty before
    ``configure``."""
    return dict(_configured)


class _Stderr:
    """``sys.stderr`` as it is when a line is written, not when the logs were
    configured: a stream swapped in and closed since (a test's capture, a
    caller that redirected it for a while) must not make every later log
    line raise, and with it whatever handler was logging an error."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    # orjson renders a line in a fraction of json's time: two lines per call on the hot path
    _configured.update(level=level, format=fmt)
    renderer = (structlog.processors.JSONRenderer(serializer=_orjson_line) if fmt == "json"
                else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask_phone_fields,
            _mask_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        # Filtering by level in the bound logger makes a disabled debug line cost
        # one method call: the AGI hot path logs at debug.
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(stream or _Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )


def get(name: str = "ivr") -> Log:
    log: Log = structlog.get_logger(name)
    return log
