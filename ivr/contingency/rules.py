"""When the load says the level should change. Pure: the observation and the
clock are passed in; the state between evaluations is a small object the caller
keeps.

- Raise to level L when any of L's ``raise_when`` figures has been met at every
  evaluation for ``for_s`` seconds; the highest such level wins (a surge is
  recognised in one step, not three).
- Stand down one level when all of the current level's ``stand_down_when``
  figures have held for its ``for_s`` — and only if the level was set
  automatically: a seat manager's decision stands until a person changes it
  (or its expiry runs out).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ivr.ami.model import Observation
from ivr.contingency.plan import Plan, Thresholds


@dataclass
class RuleState:
    raise_since: dict[int, float] = field(default_factory=dict)   # level -> first time its thresholds were met
    calm_since: float | None = None
    calm_level: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    target: int
    reason: str


def _exceeded(t: Thresholds, obs: Observation, min_calls: int) -> list[str]:
    hits = []
    if t.calls_waiting is not None and obs.calls_waiting >= t.calls_waiting:
        hits.append(f"排队人数 {obs.calls_waiting} ≥ {t.calls_waiting}")
    if t.longest_wait_s is not None and obs.longest_wait_s >= t.longest_wait_s:
        hits.append(f"最长等待 {obs.longest_wait_s:.0f} 秒 ≥ {t.longest_wait_s:g} 秒")
    if t.abandon_rate is not None and obs.offered >= min_calls and obs.abandon_rate >= t.abandon_rate:
        hits.append(f"放弃率 {obs.abandon_rate:.0%} ≥ {t.abandon_rate:.0%}")
    return hits


def _calm(t: Thresholds, obs: Observation) -> bool:
    return ((t.calls_waiting is None or obs.calls_waiting <= t.calls_waiting)
            and (t.longest_wait_s is None or obs.longest_wait_s <= t.longest_wait_s)
            and (t.abandon_rate is None or obs.abandon_rate <= t.abandon_rate))


def evaluate(plan: Plan, level: int, set_automatically: bool, obs: Observation, now: float,
             state: RuleState) -> Decision | None:
    best: Decision | None = None
    for lv in plan.levels:
        if lv.raise_when is None:
            continue
        hits = _exceeded(lv.raise_when, obs, plan.abandon_min_calls)
        if not hits:
            state.raise_since.pop(lv.level, None)
            continue
        since = state.raise_since.setdefault(lv.level, now)
        if lv.level > level and now - since >= lv.raise_when.for_s:
            best = Decision(lv.level, f"{'；'.join(hits)}，已持续 {now - since:.0f} 秒")
    if best is not None:
        state.calm_since = None
        return best

    current = plan.level(level)
    down = current.stand_down_when
    if level == 0 or down is None or not set_automatically:
        state.calm_since = None
        return None
    if state.calm_level != level:
        state.calm_level, state.calm_since = level, None
    if not _calm(down, obs):
        state.calm_since = None
        return None
    if state.calm_since is None:
        state.calm_since = now
    if now - state.calm_since >= down.for_s:
        state.calm_since = None
        return Decision(level - 1, f"已平稳 {down.for_s:g} 秒：排队人数 {obs.calls_waiting}，"
                                   f"最长等待 {obs.longest_wait_s:.0f} 秒，放弃率 {obs.abandon_rate:.0%}")
    return None
