"""Several PBXs, one hotline (issue 20): the live figures of each PBX and
the city's, summed.

Each PBX has its own ``AmiController`` and ``LiveModel`` (``runtime/
leader_work.py``), each reconnecting on its own. With more than one, the
controllers publish nothing themselves: ``CityPublisher`` writes one live
snapshot, the summed figures where a single PBX's stand today (every
reader goes on as before) plus ``pbxs``: each PBX's own figures and whether
its link is up. With one PBX nothing of this runs: its controller publishes
its snapshot as it always has.

How the figures add up (``city_snapshot``, pure):
- only PBXs whose link is up count in the sums: a PBX that is down or
  unreachable has figures nobody can vouch for (its callers may be gone);
  its last figures stay under ``pbxs`` with ``connected: false``;
- counts add (callers waiting, answered, abandoned, seats in each state);
  the rates are taken again from the summed counts (the abandon rate), or
  weighted by the calls offered (the service level);
- the longest wait, the estimated wait of a queue and the wait percentiles
  are the worst PBX's: the city's p95 cannot be above the highest of the
  PBXs' p95s, so the figure shown is an upper bound, never a flattering one;
- seats and callers are listed together, each with its ``pbx``;
- ``lines``: the lines of the engine's own link PBX (``IVR_AMI_URL``), what
  the flows' line admission reads today; each PBX's are under ``pbxs``.

The outlook engines read to tell a caller the wait (``city_outlook``) is,
per queue and priority, the longest of the PBXs' (the caller's own PBX is
not known to the reader yet: issue 20), and ``lines_low`` if any PBX's
lines are low; each PBX's outlook is kept under ``pbxs``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import redis.asyncio as aioredis

from ivr.admission.lines import LineFigures
from ivr.aio import cancelling
from ivr.ami.controller import PUBLISH_S, AmiController
from ivr.ami.model import (
    SEAT_PARTITION,
    CallerFigures,
    EmergencyFigures,
    LiveSnapshot,
    Observation,
    OrdinaryFigures,
    QueueFigures,
    SeatFigures,
)
from ivr.call_channel import pbx_system
from ivr.clock import Every, every
from ivr.logs import Log
from ivr.redisdb.live import write_live


class PbxQueueFigures(TypedDict):
    waiting: int
    emergency_waiting: int
    longest_wait_s: float
    estimated_wait_s: float
    answered: int
    abandoned: int


class PbxFigures(TypedDict):
    """One PBX under the live snapshot's ``pbxs``."""

    connected: bool
    at: float
    resynced_at: float | None
    waiting: int
    emergency_waiting: int
    seat_states: dict[str, int]
    queues: dict[str, PbxQueueFigures]
    lines: NotRequired[LineFigures]
    # its trunk to the other PBXs (IVR_PEER_SECRET read at login): ok | shipped | unset; None not read yet
    peer_trunk: NotRequired[str | None]


def pbx_figures(snap: LiveSnapshot, connected: bool) -> PbxFigures:
    out: PbxFigures = {
        "connected": connected, "at": snap["at"], "resynced_at": snap["resynced_at"],
        "waiting": sum(q["waiting"] for q in snap["queues"].values()),
        "emergency_waiting": snap["emergency"]["waiting"],
        "seat_states": dict(snap["seat_states"]),
        "queues": {name: {"waiting": q["waiting"], "emergency_waiting": q["emergency_waiting"],
                          "longest_wait_s": q["longest_wait_s"], "estimated_wait_s": q["estimated_wait_s"],
                          "answered": q["answered"], "abandoned": q["abandoned"]}
                   for name, q in snap["queues"].items()},
    }
    if "lines" in snap:
        out["lines"] = snap["lines"]
    return out


def _worst(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _sum_states(parts: list[dict[str, int]]) -> dict[str, int]:
    out = dict.fromkeys(SEAT_PARTITION, 0)
    for p in parts:
        for k, v in p.items():
            out[k] = out.get(k, 0) + v
    return out


def _sum_queue(name: str, parts: list[tuple[str, QueueFigures]]) -> QueueFigures:
    answered = sum(q["answered"] for _, q in parts)
    abandoned = sum(q["abandoned"] for _, q in parts)
    offered = answered + abandoned
    within = sum((q["service_level"] or 0.0) * (q["answered"] + q["abandoned"]) for _, q in parts)
    callers: list[CallerFigures] = [{**c, "pbx": pbx} for pbx, q in parts for c in q["callers"]]
    callers.sort(key=lambda c: (-c["priority"], -c["wait_s"]))     # the city's line: by class, longest first
    return {
        "emergency": any(q["emergency"] for _, q in parts),
        "waiting": sum(q["waiting"] for _, q in parts),
        "emergency_waiting": sum(q["emergency_waiting"] for _, q in parts),
        "longest_wait_s": max((q["longest_wait_s"] for _, q in parts), default=0.0),
        "estimated_wait_s": max((q["estimated_wait_s"] for _, q in parts), default=0.0),
        "answered": answered,
        "abandoned": abandoned,
        "withdrawn": sum(q["withdrawn"] for _, q in parts),
        "abandon_rate": round(abandoned / offered, 4) if offered else 0.0,
        "service_level": round(within / offered, 4) if offered else None,
        "seats": _sum_states([q["seats"] for _, q in parts]),
        "callers": callers,
    }


def city_snapshot(parts: Mapping[str, tuple[LiveSnapshot, bool]], now: float,
                  link: str | None = None) -> LiveSnapshot:
    """PBX name -> (its snapshot, whether its link is up): the city's
    snapshot (see the module's text for how each figure adds up)."""
    up = {name: snap for name, (snap, connected) in parts.items() if connected}
    queue_names = sorted({q for snap in up.values() for q in snap["queues"]})
    queues = {q: _sum_queue(q, [(name, snap["queues"][q]) for name, snap in up.items() if q in snap["queues"]])
              for q in queue_names}
    seats: list[SeatFigures] = [{**s, "pbx": name} for name, snap in up.items() for s in snap["seats"]]
    ems, ords = [s["emergency"] for s in up.values()], [s["ordinary"] for s in up.values()]
    emergency: EmergencyFigures = {
        "waiting": sum(e["waiting"] for e in ems), "answered": sum(e["answered"] for e in ems),
        "wait_p50_s": _worst([e["wait_p50_s"] for e in ems]), "wait_p95_s": _worst([e["wait_p95_s"] for e in ems])}
    ordinary: OrdinaryFigures = {
        "answered": sum(o["answered"] for o in ords),
        "wait_p50_s": _worst([o["wait_p50_s"] for o in ords]), "wait_p95_s": _worst([o["wait_p95_s"] for o in ords])}
    resyncs = [s["resynced_at"] for s in up.values() if s["resynced_at"] is not None]
    windows = [s["window_s"] for s, _ in parts.values()]
    out: LiveSnapshot = {
        "at": now,
        "resynced_at": min(resyncs) if resyncs else None,
        "window_s": windows[0] if windows else 0.0,
        "queues": queues,
        "seats": sorted(seats, key=lambda s: s["interface"]),
        "seat_states": _sum_states([s["seat_states"] for s in up.values()]),
        "emergency": emergency,
        "ordinary": ordinary,
        "ami_connected": bool(parts) and len(up) == len(parts),
    }
    lines_of = link if link in parts else next(iter(parts), None)
    if lines_of is not None and "lines" in parts[lines_of][0]:
        out["lines"] = parts[lines_of][0]["lines"]
    out["pbxs"] = {name: pbx_figures(snap, connected) for name, (snap, connected) in parts.items()}
    return out


def city_outlook(outlooks: Mapping[str, dict[str, Any]],
                 systems: Mapping[str, str | None] | None = None,
                 peers: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """PBX name -> its ``LiveModel.outlook`` (connected PBXs only): per queue
    and priority the longest expected wait of the PBXs; lines low on any.
    Each PBX's own outlook stays under ``pbxs``, and ``systems`` (PBX name ->
    its systemname) lets an engine read a call's own PBX from its uniqueid
    (``ivr.calls.service.LiveState.queues_now``): a caller waits in their own
    PBX's queue and holds one of its lines. ``peers`` (PBX name -> where the
    others reach it over IAX2): an emergency caller with no free emergency
    seat on their own PBX may be moved to such a PBX's emergency queue
    (``LiveState.sooner_elsewhere``)."""
    queues: dict[str, dict[str, list[float]]] = {}
    for o in outlooks.values():
        for q, by_prio in o["queues"].items():
            mine = queues.setdefault(q, {})
            for prio, entry in by_prio.items():
                if prio not in mine or entry[1] > mine[prio][1]:
                    mine[prio] = list(entry)
    return {"queues": queues, "lines_low": any(o.get("lines_low") for o in outlooks.values()),
            "pbxs": dict(outlooks), "systems": dict(systems or {}),
            "peers": {pbx: address for pbx, address in (peers or {}).items() if address}}


def city_observation(parts: list[Observation]) -> Observation:
    """What the contingency rules look at, over the PBXs whose link is up:
    callers waiting and calls offered add up, the longest wait is the
    longest, the abandon rate is the abandoned over the offered."""
    offered = sum(o.offered for o in parts)
    abandoned = sum(o.abandon_rate * o.offered for o in parts)
    return Observation(calls_waiting=sum(o.calls_waiting for o in parts),
                       longest_wait_s=max((o.longest_wait_s for o in parts), default=0.0),
                       abandon_rate=abandoned / offered if offered else 0.0, offered=offered)


@dataclass
class PbxLink:
    """One PBX's part of the leader's work."""

    name: str
    controller: AmiController
    systemname: str | None = None      # the prefix of its uniqueids, once an event showed one ("": none set)
    peer_address: str | None = None    # where the other PBXs reach it over IAX2 (queue/pbxs.yaml)

    @property
    def connected(self) -> bool:
        return self.controller.ready.is_set()

    @property
    def known_systemname(self) -> str | None:
        """Its systemname as its calls showed it, else as CoreSettings said it
        at login; None while neither did."""
        return self.systemname if self.systemname is not None else self.controller.system_name

    def on_event(self, event: Mapping[str, str]) -> None:
        """Learns the PBX's ``systemname`` (asterisk.conf) from the uniqueids
        of its events: ``pbx-a-1733480000.12`` -> ``pbx-a``."""
        uid = event.get("Uniqueid", "")
        if "." in uid:
            self.systemname = pbx_system(uid)


def waiting_callers(links: list[PbxLink]) -> set[str] | None:
    """Uniqueids waiting in a queue on a PBX whose link is up; None when
    no link is up (nobody can tell who waits)."""
    up = [p for p in links if p.connected]
    if not up:
        return None
    return {uid for p in up for uid in p.controller.model.waiting}


def out_of_sync(links: list[PbxLink]) -> Callable[[str], bool]:
    """uniqueid -> whether its call may be on a PBX whose link is down (its
    caller may be waiting there unseen). A call whose uniqueid names another
    PBX's ``systemname`` is judged on that PBX's link: a PBX that is down
    stops nobody else's reconciliation. While a PBX that is down never
    showed its systemname (no call seen, and no CoreSettings answered since
    the engine started), every call is treated as possibly on it."""
    def blind(uniqueid: str) -> bool:
        name = pbx_system(uniqueid)
        return any(p.known_systemname is None or p.known_systemname == name for p in links if not p.connected)
    return blind


class CityPublisher:
    """With several PBXs: the city's snapshot and outlook into Redis when any
    PBX's model changed (or its link went up or down), at most every
    ``publish_s``."""

    def __init__(self, links: list[PbxLink], *, redis: aioredis.Redis, clock: Callable[[], float], log: Log,
                 link: str | None = None, publish_s: Every = PUBLISH_S) -> None:
        self.links = links
        self.redis = redis
        self.clock = clock
        self.log = log
        self.link = link
        self.publish_s = publish_s
        self.published = 0
        self._seen: tuple[bool, ...] = ()
        self._peer_said: dict[str, str] = {}     # PBX -> the trunk state last logged for it

    def figures(self, now: float) -> tuple[LiveSnapshot, dict[str, Any]]:
        parts = {p.name: (p.controller.model.snapshot(now), p.connected) for p in self.links}
        outlooks = {p.name: p.controller.model.outlook(now, parts[p.name][0].get("lines"))
                    for p in self.links if p.connected}
        snap = city_snapshot(parts, now, self.link)
        for p in self.links:
            snap["pbxs"][p.name]["peer_trunk"] = p.controller.peer_trunk
        return snap, city_outlook(
            outlooks, {p.name: p.known_systemname for p in self.links}, self.peers())

    def peers(self) -> dict[str, str]:
        """The PBXs an emergency caller may be moved to: a ``peer_address`` in
        queue/pbxs.yaml and a trunk secret of their own in the dialplan (one
        still on the shipped secret, or without one, is named no peer, and an
        error says why, once per change)."""
        out: dict[str, str] = {}
        for p in self.links:
            if p.peer_address is None:
                continue
            state = p.controller.peer_trunk
            if state == "ok":
                out[p.name] = p.peer_address
            elif state is not None and self._peer_said.get(p.name) != state:
                self.log.error("pbx_peer_trunk_unusable", pbx=p.name, state=state, message=(
                    f"PBX '{p.name}' 不接收其他 PBX 转来的紧急来电：extensions.conf 的 IVR_PEER_SECRET "
                    f"{'仍是随项目发布的默认值' if state == 'shipped' else '未设置'}，请与 iax.conf 一并修改 — "
                    f"PBX '{p.name}' takes no emergency callers from the other PBXs: its IVR_PEER_SECRET is "
                    f"{'still the shipped one' if state == 'shipped' else 'not set'}; change it with iax.conf's"))
            self._peer_said[p.name] = state or ""
        return out

    async def publish(self) -> None:
        snap, outlook = self.figures(self.clock())
        await write_live(self.redis, snap, outlook)
        self.published += 1

    async def run(self) -> None:
        last = 0.0
        while not cancelling():
            await asyncio.sleep(every(self.publish_s))
            seen = tuple(p.connected for p in self.links)
            changed = [p.controller.take_changed() for p in self.links]   # every flag taken, not the first
            # every few seconds even when idle: the snapshot's TTL, and the waits grow
            if not any(changed) and seen == self._seen and time.monotonic() - last < 5.0:
                continue
            if seen != self._seen:
                self.log.info("pbx_links", up=[p.name for p in self.links if p.connected],
                              down=[p.name for p in self.links if not p.connected])
            try:
                await self.publish()
            except Exception as exc:  # noqa: BLE001 - Redis restarting: the next round tries again
                self.log.warning("live_model_not_published", error=repr(exc))
                continue
            self._seen, last = seen, time.monotonic()
