"""What a spoken place and wait is played from: the fixed phrases of
``announce.PHRASES`` as ``prompts/queue/<name>.wav`` and the counts as
``prompts/numbers/<n>.wav`` (each recorded as said before a measure word:
``numbers/2`` is 两). ``ivr prompts draft`` makes drafts of them from
``prompts/texts.yaml``."""

from __future__ import annotations

from collections.abc import Iterable

from ivr.admission.announce import PHRASES, RULES, Piece

PHRASE_DIR, NUMBER_DIR = "queue", "numbers"


def spoken(pieces: Iterable[Piece]) -> list[str]:
    """The prompts that say ``pieces``, in order."""
    return [f"{PHRASE_DIR}/{p.value}" if p.kind == "phrase" else f"{NUMBER_DIR}/{p.value}" for p in pieces]


def spoken_prompts() -> list[str]:
    """Every recording a place and a wait can need: the phrases, and the counts
    up to the longest exact position (minutes never go beyond it)."""
    top = max(RULES.exact_position_up_to, RULES.longest_minutes)
    return [f"{PHRASE_DIR}/{name}" for name in PHRASES] + [f"{NUMBER_DIR}/{n}" for n in range(1, top + 1)]
