"""Resolve what a flow names — steps, prompts, queues, lists, calendars, other
flows — against what exists, before any call uses the flow."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ivr.admission.speech import spoken_prompts
from ivr.flow import model as m
from ivr.flow.loader import ParsedFlow
from ivr.yamldoc.problems import did_you_mean
from ivr.yamldoc.schema import Reference


@dataclass(frozen=True, slots=True)
class Catalog:
    prompts: frozenset[str]
    queues: Mapping[str, str]                 # logical name -> Asterisk queue
    asterisk_queues: frozenset[str] | None    # None: no queues.conf to check against
    lists: frozenset[str] = frozenset()
    calendars: frozenset[str] = frozenset()
    flows: frozenset[str] = frozenset()
    # prompts whose validity window ends soon or has ended: name -> note
    prompt_notes: Mapping[str, str] = field(default_factory=dict)
    announcement_sets: frozenset[str] | None = None   # None: not checked
    # publishing only: each known PBX -> the prompts its sounds folder holds at the version in force
    pbx_prompts: Mapping[str, frozenset[str]] | None = None


def check(parsed: ParsedFlow, catalog: Catalog) -> None:
    """Add reference problems to ``parsed.problems``."""
    k = _Check(parsed, catalog, set(parsed.step_nodes))
    for ref in parsed.references:
        check_ref = _CHECKS.get(ref.kind)
        if check_ref is not None:
            check_ref(k, ref)
    if parsed.flow is not None and not parsed.problems.errors:
        _warn_unreachable(parsed)
        _warn_emergency_survey(parsed)


@dataclass(frozen=True, slots=True)
class _Check:
    """What one flow's references are checked against."""
    parsed: ParsedFlow
    catalog: Catalog
    step_names: set[str]


# One check per kind of reference, each adding its problems to ``parsed.problems``;
# the table that names them follows.

def _step(k: _Check, ref: Reference) -> None:
    if ref.value not in k.step_names and ref.value not in m.RESERVED_TARGETS:
        k.parsed.problems.at(ref.node, f"{ref.where}: no step named '{ref.value}'"
                                       f"{did_you_mean(ref.value, k.step_names)}")


def _prompt(k: _Check, ref: Reference) -> None:
    probs, catalog = k.parsed.problems, k.catalog
    if ref.value not in catalog.prompts:
        probs.at(ref.node, f"{ref.where}: prompt '{ref.value}' not found in prompts/"
                           f"{did_you_mean(ref.value, catalog.prompts)}")
    else:
        _on_every_pbx(k, ref, [ref.value])
        if ref.value in catalog.prompt_notes:
            probs.at(ref.node, f"{ref.where}: prompt '{ref.value}' {catalog.prompt_notes[ref.value]}", warning=True)


def _on_every_pbx(k: _Check, ref: Reference, prompts: list[str]) -> None:
    """When publishing: one error for each known PBX whose sounds folder lacks
    one of ``prompts`` at the version in force (docs/prompts.md)."""
    for pbx, held in sorted((k.catalog.pbx_prompts or {}).items()):
        lacking = [p for p in prompts if p not in held]
        if not lacking:
            continue
        shown = ", ".join(f"'{p}'" for p in lacking[:5]) + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")
        k.parsed.problems.at(ref.node, f"{ref.where}: PBX '{pbx}' lacks prompt {shown} at the version in force: "
                                       "not published until its prompt sync has it (ivr prompts push, then "
                                       "ivr prompts status)")


def _queue(k: _Check, ref: Reference) -> None:
    probs, catalog = k.parsed.problems, k.catalog
    if ref.value not in catalog.queues:
        probs.at(ref.node, f"{ref.where}: queue '{ref.value}' is not defined in queue/queues.yaml"
                           f"{did_you_mean(ref.value, catalog.queues)}")
    elif catalog.asterisk_queues is not None and catalog.queues[ref.value] not in catalog.asterisk_queues:
        probs.at(ref.node, f"{ref.where}: queue '{ref.value}' maps to Asterisk queue "
                           f"'{catalog.queues[ref.value]}', which asterisk/queues.conf does not define")


def _spoken(k: _Check, ref: Reference) -> None:
    """A step that says a place and a wait needs every phrase and number recording."""
    missing = [p for p in spoken_prompts() if p not in k.catalog.prompts]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        k.parsed.problems.at(ref.node, f"{ref.where}: the recordings for saying a place and a wait are missing "
                                       f"in prompts/: {shown} (ivr prompts draft makes them from prompts/texts.yaml)")
    else:
        _on_every_pbx(k, ref, list(spoken_prompts()))


def _announcement_set(k: _Check, ref: Reference) -> None:
    sets = k.catalog.announcement_sets
    if sets is not None and ref.value not in sets:
        k.parsed.problems.at(ref.node, f"{ref.where}: announcement set '{ref.value}' not found in "
                                       f"prompts/announcements.yaml{did_you_mean(ref.value, sets)}")


def _list(k: _Check, ref: Reference) -> None:
    lists = k.catalog.lists
    if ref.value not in lists:
        k.parsed.problems.at(ref.node, f"{ref.where}: number list '{ref.value}' not found in flows/lists/"
                                       f"{did_you_mean(ref.value, lists)}")


def _calendar(k: _Check, ref: Reference) -> None:
    calendars = k.catalog.calendars
    if ref.value not in calendars:
        k.parsed.problems.at(ref.node, f"{ref.where}: calendar '{ref.value}' not found in flows/calendars/"
                                       f"{did_you_mean(ref.value, calendars)}")


def _flow(k: _Check, ref: Reference) -> None:
    probs, flows = k.parsed.problems, k.catalog.flows
    if ref.value == k.parsed.name:
        probs.at(ref.node, f"{ref.where}: a flow cannot call itself as a subflow")
    elif ref.value not in flows:
        probs.at(ref.node, f"{ref.where}: no flow named '{ref.value}'{did_you_mean(ref.value, flows)}")


_CHECKS: dict[str, Callable[[_Check, Reference], None]] = {
    "step": _step,
    "prompt": _prompt,
    "queue": _queue,
    "announcement_set": _announcement_set,
    "list": _list,
    "calendar": _calendar,
    "flow": _flow,
    "spoken": _spoken,
}


def _warn_unreachable(parsed: ParsedFlow) -> None:
    flow = parsed.flow
    assert flow is not None
    seen: set[str] = set()
    todo = [flow.start] + ([flow.fallback] if flow.fallback else [])
    while todo:
        name = todo.pop()
        if name in seen or name not in flow.steps:
            continue
        seen.add(name)
        todo.extend(m.targets(flow.steps[name]))
    for name, node in parsed.step_nodes.items():
        if name not in seen:
            parsed.problems.at(node, f"step '{name}': no path leads here (unreachable)", warning=True)


def _warn_emergency_survey(parsed: ParsedFlow) -> None:
    """An emergency queue answered straight into a survey: the survey asks nothing
    (an emergency call is never delayed by it), which staff should know."""
    flow = parsed.flow
    assert flow is not None
    for name, step in flow.steps.items():
        if isinstance(step, m.Queue) and step.emergency and isinstance(flow.steps.get(step.on_answered), m.Survey):
            parsed.problems.at(parsed.step_nodes.get(name),
                               f"queue '{name}': an emergency call is never surveyed: "
                               f"survey '{step.on_answered}' asks nothing after it", warning=True)


def subflow_cycles(flows: Mapping[str, m.Flow]) -> list[list[str]]:
    """Cycles in the subflow graph (a -> b -> a): a call would never return."""
    cycles = []
    state: dict[str, int] = {}

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        for sub in sorted(flows[name].subflows) if name in flows else ():
            if state.get(sub) == 1:
                cycles.append(stack[stack.index(sub):] + [sub] if sub in stack else [name, sub])
            elif sub not in state:
                visit(sub, stack + [sub])
        state[name] = 2

    for name in sorted(flows):
        if name not in state:
            visit(name, [name])
    return cycles
