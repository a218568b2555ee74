"""The engine's view of published flows: refreshed from Redis in the background,
read without I/O on the call path. A call pins the versions in force when it
starts (its flow and every subflow) and runs to its end on them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ivr.flow import model as m
from ivr.flow.conditions import CalledWithin, walk
from ivr.flow.loader import parse_flow
from ivr.flow.store import FlowStore
from ivr.redisdb import keys
from ivr.redisdb.replies import text_set

if TYPE_CHECKING:
    from ivr.logs import Log


class FlowRegistry:
    def __init__(self, store: FlowStore, log: Log) -> None:
        self.store = store
        self.log = log
        self._current: dict[str, int] = {}
        self._parsed: dict[tuple[str, int], m.Flow] = {}
        self._bundles: dict[str, Mapping[str, m.Flow]] = {}
        self._history: dict[str, bool] = {}
        self._admits: dict[str, bool] = {}

    @property
    def current(self) -> Mapping[str, int]:
        return self._current

    async def refresh(self) -> None:
        names = sorted(text_set(await self.store.redis.smembers(keys.FLOW_NAMES)))
        versions = await self.store.redis.mget([keys.flow_current(n) for n in names]) if names else []
        current = {n: int(v) for n, v in zip(names, versions, strict=True) if v is not None}
        for name, version in current.items():
            if (name, version) not in self._parsed:
                fv = await self.store.get(name, version)
                parsed = parse_flow(fv.source, f"{name}@v{version}", expected_name=name)
                if parsed.flow is None:  # validated at publish; a schema change could still break it
                    self.log.error("published_flow_unreadable", flow=name, version=version,
                                   problems=[str(p) for p in parsed.problems.errors])
                    continue
                self._parsed[(name, version)] = parsed.flow
                self.log.info("flow_loaded", flow=name, version=version)
        if current != self._current:
            self._current = current
            self._bundles = {}
            self._history = {}
            self._admits = {}

    def pinned(self, name: str) -> Mapping[str, m.Flow] | None:
        """The flow and its subflows at their current versions; None if unknown."""
        bundle = self._bundles.get(name)
        if bundle is None:
            bundle = self._bundle(name)
            if bundle is None:
                return None
            self._bundles[name] = bundle
        return bundle

    def needs_history(self, name: str) -> bool:
        """Whether the call's flows ask 'called within N minutes' (cached)."""
        flag = self._history.get(name)
        if flag is None:
            bundle = self.pinned(name)
            flag = self._history[name] = bundle is not None and bool(bundle) and uses_call_history(bundle)
        return flag

    def needs_registration(self, name: str) -> bool:
        """Whether the call's flows have an ``admit`` step (they look up the
        caller's open callback; cached)."""
        flag = self._admits.get(name)
        if flag is None:
            bundle = self.pinned(name)
            flag = self._admits[name] = bundle is not None and any(
                isinstance(step, m.Admit) for flow in bundle.values() for step in flow.steps.values())
        return flag

    def _bundle(self, name: str) -> dict[str, m.Flow] | None:
        out: dict[str, m.Flow] = {}
        todo = [name]
        while todo:
            n = todo.pop()
            if n in out:
                continue
            v = self._current.get(n)
            flow = self._parsed.get((n, v)) if v is not None else None
            if flow is None:
                return None
            out[n] = flow
            todo.extend(flow.subflows)
        return out


def uses_call_history(bundle: Mapping[str, m.Flow]) -> bool:
    """Only flows that ask 'called within N minutes' pay for the look-up."""
    for flow in bundle.values():
        for step in flow.steps.values():
            if isinstance(step, m.Branch):
                for case in step.cases:
                    if any(isinstance(c, CalledWithin) for c in walk(case.when)):
                        return True
    return False
