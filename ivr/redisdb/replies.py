"""What a Redis reply is, for the type checker.

Every client the engine makes decodes replies (``decode_responses=True``, see
``ivr.redisdb.server``), but redis-py annotates replies as ``bytes | str`` whatever
the client. These casts state the decoded shape once, at no cost at run time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

Reply = bytes | str


def text(reply: Reply) -> str:
    return cast(str, reply)


def text_or_none(reply: Reply | None) -> str | None:
    return cast("str | None", reply)


def texts(replies: list[Any]) -> list[str]:
    """A list reply (HKEYS, LRANGE, MGET without gaps ...)."""
    return cast("list[str]", replies)


def text_set(replies: set[Reply]) -> set[str]:
    """A SMEMBERS reply."""
    return cast("set[str]", replies)


def scored(reply: Any) -> list[tuple[str, float]]:
    """A ZRANGE ... WITHSCORES reply: (member, score) in order."""
    return cast("list[tuple[str, float]]", reply)


def read_group(reply: Any) -> list[tuple[str, list[tuple[str, dict[str, str]]]]]:
    """An XREADGROUP reply: (stream, its entries) per stream; [] for none."""
    return cast("list[tuple[str, list[tuple[str, dict[str, str]]]]]", reply or [])


def fields(reply: Mapping[Reply, Reply] | None) -> dict[str, str]:
    """An HGETALL or stream-entry reply; {} for none."""
    return cast("dict[str, str]", reply or {})


def stream_entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """An XRANGE/XREVRANGE reply: (entry id, fields) in order; [] for none."""
    return cast("list[tuple[str, dict[str, str]]]", reply or [])
