"""The engine's read-only status: what the web console (``/healthz``,
``/metrics``, the wallboard) and ``ivr status`` may know about a running
engine, and nothing it could change."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ivr.engine import Engine


class EngineStatus:
    def __init__(self, engine: "Engine") -> None:
        self._engine = engine
        self.http_port: int | None = None

    def now(self) -> float:
        """The engine's clock (simulated in a drill)."""
        return self._engine.clock.now()

    @property
    def calls_in_progress(self) -> int:
        return self._engine.calls.active

    @property
    def calls_handled(self) -> int:
        return self._engine.calls.finished

    @property
    def is_leader(self) -> bool:
        return self._engine.leader.is_leader

    @property
    def ami_connected(self) -> bool:
        c = self._engine.controller
        return bool(c is not None and c.ready.is_set())

    @property
    def config_version(self) -> int:
        return self._engine.config.current.version

    @property
    def config_error(self) -> str | None:
        return self._engine.config.error

    def leader_health(self) -> dict:
        return self._engine.leader.health()

    def as_dict(self) -> dict:
        """For /healthz and the status line."""
        leader = self.leader_health()
        parts = leader["parts"]
        return {"calls_in_progress": self.calls_in_progress, "calls_handled": self.calls_handled,
                "leader": self.is_leader, "ami_connected": self.ami_connected,
                "parts": parts, "parts_ok": all(p["state"] == "running" for p in parts.values()),
                "config_version": self.config_version, "config_error": self.config_error,
                "clock": self._engine.clock.describe()}
