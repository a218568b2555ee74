"""Automated follow-up calls (智能回访, issue 19): a seat manager or auditor
chooses a sample — a share of one day's reached callbacks or of the calls a
seat answered, of one kind or all — and the engine calls those citizens
without a seat (``ivr.callback.followup_caller``), runs flow ``followup``
(was the matter heard, a rating, an optional voice comment) and keeps the
answer with the follow-up, ``kind: followup``.

The sample is chosen without a random generator: items are ordered by a hash
of the batch's salt and their id, and the first ``ceil(share × n)`` taken, so
one choice can be repeated and checked. One citizen is called once per batch.

Redis (``ivr.redisdb.keys``, ``FOLLOWUP_*``): one hash per follow-up and per
batch, pending / claims / closed lines as for callbacks; every step is an
entry of the callbacks' audit log with the id ``F<id>`` (``AUDIT_ID``).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from ivr.callback import scripts
from ivr.callback.store import callback_audit
from ivr.errors import InvalidInput
from ivr.redisdb import keys
from ivr.redisdb.replies import fields, texts

SOURCES = {"reached-callbacks": ("已接通的回拨", "reached callbacks"),
           "answered-calls": ("坐席接听的来电", "calls a seat answered")}
_SHARE = re.compile(r"^\s*(-?[0-9]+(?:\.[0-9]+)?)\s*(%?)\s*$")
OPEN_CALLBACK_POSTPONE_S = 1800     # a citizen with a callback owed is followed up later, never both at once
HEARD_VAR = "FU_HEARD"              # the flow's `set` of it: yes | no (flows/followup.yaml)

# One follow-up as its Redis hash holds it: field -> text.
Followup = dict[str, str]


def audit_id(fid: str | int) -> str:
    """A follow-up's id in the callbacks' audit log (its trail: ``F<id>``)."""
    return f"F{fid}"


def parse_share(text: str) -> float:
    """``10%``, ``10`` or ``0.5%`` -> a fraction in (0, 1]. Anything else, above
    100 % or not above 0, is refused with one clear line."""
    m = _SHARE.match(str(text))
    if m is None:
        raise InvalidInput(f"抽样比例应写成百分数，如 10%，而不是 '{text}' — a sample share is a percentage, "
                           f"such as 10%, not '{text}'")
    value = float(m.group(1))
    if value > 100:
        raise InvalidInput(f"抽样比例不能超过 100%：'{text}' — a sample share cannot be above 100%: '{text}'")
    if value <= 0:
        raise InvalidInput(f"抽样比例须大于 0%：'{text}' — a sample share must be above 0%: '{text}'")
    return value / 100


def checked_source(of: str) -> str:
    if of not in SOURCES:
        names = "、".join(SOURCES)
        raise InvalidInput(f"没有这种抽样对象：'{of}'，可选 {names} — no such sample source: '{of}' "
                           f"(one of {', '.join(SOURCES)})")
    return of


@dataclass(frozen=True, slots=True)
class Candidate:
    """A citizen who may be followed up, and the call or callback it is about."""
    source: str          # the callback id, or the call's uniqueid
    number: str
    seat: str            # the seat that talked with them
    kind: str            # the callback's kind, or the queue of the call
    at: float            # when it was closed / answered


def sample(candidates: list[Candidate], share: float, salt: str) -> list[Candidate]:
    """``ceil(share × n)`` of ``candidates`` (at least one when there are any),
    one per number, chosen by the hash of ``salt`` and each source: the same
    choice for the same salt, and no order of the input favoured."""
    by_number: dict[str, Candidate] = {}
    for c in sorted(candidates, key=lambda c: (c.at, c.source)):
        by_number.setdefault(c.number, c)          # the first call of a number that day
    pool = sorted(by_number.values(),
                  key=lambda c: hashlib.sha256(f"{salt}|{c.source}".encode()).hexdigest())
    n = math.ceil(share * len(pool) - 1e-9)
    return pool[:max(1, n) if pool else 0]


def candidates_of_callbacks(records: list[dict[str, str]], start: float, end: float,
                            kind: str = "") -> list[Candidate]:
    """Callbacks closed ``reached`` in [start, end) (of ``kind``, if given)."""
    out = []
    for r in records:
        at = float(r.get("closed_at") or 0)
        if r.get("closed_reason") != "reached" or not start <= at < end or (kind and r.get("kind") != kind):
            continue
        out.append(Candidate(r.get("id", ""), r.get("number", ""), r.get("last_seat", ""), r.get("kind", ""), at))
    return [c for c in out if c.number.isdigit()]


def candidates_of_calls(summaries: list[dict[str, str]], kind: str = "") -> list[Candidate]:
    """Calls in that a seat answered (of queue ``kind``, if given); never the
    hotline's own calls (a callback's survey, a follow-up)."""
    out = []
    for s in summaries:
        if s.get("kind") or s.get("queue_status") != "ANSWERED" or (kind and s.get("queue") != kind):
            continue
        number = s.get("number", "")
        if number.isdigit():
            out.append(Candidate(s.get("uniqueid", ""), number, s.get("member", ""), s.get("queue", ""),
                                 float(s.get("started") or 0)))
    return out


class FollowupStore:
    """Follow-ups in Redis, each change one Lua script (``ivr.callback.scripts``)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.audit = callback_audit(redis)
        self._create = redis.register_script(scripts.FOLLOWUP_CREATE)
        self._claim = redis.register_script(scripts.FOLLOWUP_CLAIM)
        self._finish = redis.register_script(scripts.FOLLOWUP_FINISH)
        self._answer = redis.register_script(scripts.FOLLOWUP_ANSWER)

    async def create(self, chosen: list[Candidate], *, now: float, by: str, share: float, of: str, day: str,
                     kind: str) -> tuple[str, list[str]]:
        """A batch of ``chosen``, each due at once; returns (batch id, follow-up ids)."""
        rows = ["\t".join(x.replace("\t", " ") for x in (c.number, c.source, c.seat, c.kind, f"{c.at:.3f}"))
                for c in chosen]
        bid, first, n = await self._create(
            keys=[keys.FOLLOWUP_BATCH_SEQ, keys.FOLLOWUP_SEQ, keys.FOLLOWUP_PENDING, keys.FOLLOWUP_BATCHES],
            args=[now, by, f"{share:.4f}", of, day, kind, keys.FOLLOWUP_ITEM_PREFIX, keys.FOLLOWUP_BATCH_PREFIX,
                  *rows])
        return str(bid), [str(int(first) + i) for i in range(int(n))]

    async def claim(self, *, now: float, lease_s: float, owner: str, count: int) -> tuple[int, list[str]]:
        out = await self._claim(keys=[keys.FOLLOWUP_PENDING, keys.FOLLOWUP_CLAIMS],
                                args=[now, now + lease_s, owner, count, keys.FOLLOWUP_ITEM_PREFIX,
                                      keys.CALLBACK_OPEN_PREFIX, OPEN_CALLBACK_POSTPONE_S])
        return int(out[0]), [str(x) for x in out[1:]]

    async def finish(self, fid: str, owner: str, *, outcome: str, now: float, next_at: float | None,
                     close_reason: str = "") -> tuple[str, int]:
        """Returns (``closed`` | ``rescheduled`` | ``not_owner``, attempts)."""
        ok, what, attempts = await self._finish(
            keys=[keys.FOLLOWUP_PENDING, keys.FOLLOWUP_CLAIMS, keys.FOLLOWUP_CLOSED],
            args=[fid, owner, outcome, now, "" if next_at is None else next_at, close_reason,
                  keys.FOLLOWUP_ITEM_PREFIX])
        return (str(what) if int(ok) else "not_owner"), int(attempts)

    async def record_answer(self, fid: str, *, heard: str, rating: str, comment: str, at: float, call: str,
                            seat: str) -> tuple[str, str]:
        """What the citizen said (``heard`` yes | no | "" not answered; the
        rating or no_answer; the voice comment's file). Returns (``recorded`` |
        ``duplicate`` | ``unknown``, number)."""
        out = await self._answer(keys=[], args=[fid, heard, rating, comment, f"{at:.3f}", call, seat,
                                                keys.FOLLOWUP_ITEM_PREFIX])
        if int(out[0]) == 1:
            return "recorded", str(out[1])
        return (str(out[1]) or "unknown"), ""

    async def item(self, fid: str) -> Followup | None:
        return fields(await self.redis.hgetall(keys.followup_item(fid))) or None

    async def batch(self, bid: str) -> tuple[dict[str, str] | None, list[Followup]]:
        head = fields(await self.redis.hgetall(keys.followup_batch(bid)))
        if not head:
            return None, []
        ids = texts(await self.redis.lrange(keys.followup_batch_items(bid), 0, -1))
        pipe = self.redis.pipeline(transaction=False)
        for fid in ids:
            pipe.hgetall(keys.followup_item(fid))
        return head, [fields(r) for r in await pipe.execute() if r]

    async def batches(self, limit: int = 50) -> list[dict[str, str]]:
        ids = texts(await self.redis.zrevrange(keys.FOLLOWUP_BATCHES, 0, limit - 1))
        pipe = self.redis.pipeline(transaction=False)
        for bid in ids:
            pipe.hgetall(keys.followup_batch(bid))
        return [fields(r) for r in await pipe.execute() if r]


def outcome_counts(items: list[Followup]) -> dict[str, Any]:
    """A batch's figures: called (dialled at least once), reached, heard yes /
    no, the ratings (no_answer its own) and the follow-ups' 满意率: (满意 +
    基本满意) ÷ citizens reached (each reached one is offered the rating; no
    answer is never counted as satisfied)."""
    reached = [i for i in items if i.get("closed_reason") == "reached"]
    ratings = ("satisfied", "basically_satisfied", "dissatisfied", "no_answer")
    survey = {r: sum(1 for i in items if i.get("survey") == r) for r in ratings}
    rated = survey["satisfied"] + survey["basically_satisfied"]
    return {"chosen": len(items), "open": sum(1 for i in items if i.get("state") != "closed"),
            "called": sum(1 for i in items if int(i.get("attempts") or 0) > 0),
            "attempts": sum(int(i.get("attempts") or 0) for i in items),
            "reached": len(reached), "unreached": sum(1 for i in items if i.get("closed_reason") == "unreached"),
            "heard_yes": sum(1 for i in items if i.get("heard") == "yes"),
            "heard_no": sum(1 for i in items if i.get("heard") == "no"),
            "survey": survey, "satisfaction_rate": round(rated / len(reached), 4) if reached else None,
            "comments": sum(1 for i in items if i.get("comment"))}
