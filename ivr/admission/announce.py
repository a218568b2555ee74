"""What a waiting citizen is told: where they stand and about how long the
wait is ("您前面还有12位，预计等待约3分钟"). Pure.

Rounded so that it is not a promise the engine cannot keep: the wait is
taken a little above the estimate (``spread_factor`` standard deviations),
then rounded *up*, to whole minutes up to 10, to 5-minute steps up to 30, and
beyond that only "超过30分钟" is said. The position is the number of callers
ahead, said exactly up to ``exact_position_up_to`` and as "超过N位" beyond.

The answer comes as pieces a prompt player can play from recordings (fixed
phrases by name, and counts to be spoken with number recordings: a count
before a measure word is said 两, not 二, for 2) and as Chinese text for
logs and tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ivr.admission.estimate import WaitEstimate
from ivr.errors import ConfigError

# the fixed phrases, by the prompt name they are played from
PHRASES = {
    "queue-next": "您是下一位",
    "queue-ahead": "您前面还有",
    "queue-ahead-over": "您前面还有超过",
    "queue-callers": "位",
    "queue-wait-about": "预计等待约",
    "queue-wait-over": "预计等待超过",
    "queue-minutes": "分钟",
}


@dataclass(frozen=True, slots=True)
class AnnounceRules:
    exact_position_up_to: int = 100    # beyond: "超过100位"
    whole_minutes_up_to: int = 10      # 1..10 minutes said as they are (rounded up)
    step_minutes: int = 5              # above that, rounded up to steps of 5
    longest_minutes: int = 30          # above that: "超过30分钟"
    spread_factor: float = 1.0         # how many standard deviations above the estimate to round from
    # below this (the estimate plus its spread) no wait is said: "约1分钟" to a caller a seat takes at
    # once is a figure they may hang up on (the drill's citizens do, as real ones would)
    say_wait_from_s: float = 30.0

    def __post_init__(self) -> None:
        if not (0 < self.whole_minutes_up_to <= self.longest_minutes and self.step_minutes > 0
                and self.exact_position_up_to >= 0 and self.spread_factor >= 0 and self.say_wait_from_s >= 0):
            raise ConfigError("announcement rules: need 0 < whole_minutes_up_to <= longest_minutes, "
                              "step_minutes > 0, exact_position_up_to >= 0, spread_factor >= 0, "
                              "say_wait_from_s >= 0")


RULES = AnnounceRules()


@dataclass(frozen=True, slots=True)
class Piece:
    kind: str            # "phrase" (value: a PHRASES name) | "count" (value: a number said before a measure word)
    value: str | int


@dataclass(frozen=True, slots=True)
class Announcement:
    position_kind: str           # "next" (nobody ahead) | "exact" | "over"
    position: int                # callers ahead as said (the cap N for "over")
    wait_kind: str               # "about" | "over" | "none" (too short to say)
    minutes: int                 # minutes as said (the cap for "over"; 0 for "none")
    place: tuple[Piece, ...]     # 您前面还有12位
    wait: tuple[Piece, ...]      # 预计等待约3分钟 (empty for "none")
    text: str                    # 您前面还有12位，预计等待约3分钟

    @property
    def pieces(self) -> tuple[Piece, ...]:
        return self.place + self.wait


def said_minutes(wait_s: float, rules: AnnounceRules = RULES) -> tuple[str, int]:
    """A wait in seconds -> ("about", minutes) or ("over", longest_minutes), rounded up."""
    minutes = max(1, math.ceil(wait_s / 60 - 1e-9))
    if minutes > rules.longest_minutes:
        return "over", rules.longest_minutes
    if minutes > rules.whole_minutes_up_to:
        minutes = min(rules.longest_minutes, math.ceil(minutes / rules.step_minutes) * rules.step_minutes)
    return "about", minutes


def said_position(ahead: int, rules: AnnounceRules = RULES) -> tuple[str, int]:
    if ahead <= 0:
        return "next", 0
    if ahead > rules.exact_position_up_to:
        return "over", rules.exact_position_up_to
    return "exact", ahead


def announce(estimate: WaitEstimate, rules: AnnounceRules = RULES) -> Announcement:
    """The engine's estimate for a waiting caller -> what they are told."""
    return announcement(estimate.position, estimate.wait_s + rules.spread_factor * estimate.spread_s, rules)


def announcement(ahead: int, wait_s: float, rules: AnnounceRules = RULES) -> Announcement:
    position_kind, position = said_position(ahead, rules)
    wait_kind, minutes = said_minutes(wait_s, rules) if wait_s >= rules.say_wait_from_s else ("none", 0)
    place: list[Piece] = []
    if position_kind == "next":
        place.append(Piece("phrase", "queue-next"))
    else:
        place += [Piece("phrase", "queue-ahead" if position_kind == "exact" else "queue-ahead-over"),
                  Piece("count", position), Piece("phrase", "queue-callers")]
    wait: list[Piece] = [] if wait_kind == "none" else [
        Piece("phrase", "queue-wait-about" if wait_kind == "about" else "queue-wait-over"),
        Piece("count", minutes), Piece("phrase", "queue-minutes")]
    return Announcement(position_kind, position, wait_kind, minutes, tuple(place), tuple(wait),
                        _text(place + wait))


def _text(pieces: list[Piece]) -> str:
    out = []
    for p in pieces:
        if p.kind == "count":
            out.append(str(p.value))
        else:
            out.append(PHRASES[str(p.value)])
            if p.value in ("queue-next", "queue-callers"):
                out.append("，")
    return "".join(out).rstrip("，")
