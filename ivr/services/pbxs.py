"""The PBXs of the hotline as staff see them (``queue/pbxs.yaml``): each
PBX, its AMI address (never a secret) and its state, for ``ivr config``,
``/healthz`` and ``/metrics``; and the reachability probe an engine runs at
start.

The leader holds one AMI link per PBX (``runtime/leader_work.py``) and, with
several, publishes each PBX's state in the live figures' ``pbxs``
(``ivr.ami.city``): a PBX reads connected or disconnected from its own link.
With one PBX the live figures are today's and its state is ``ami_connected``.
A PBX the leader does not link to (its ``secret_env`` unset in the engine's
environment, or ``IVR_AMI_URL`` unset for the link PBX) reads "not linked".
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict

from ivr.configset.pbxs import LINK, PBXS_FILE, Pbx, PbxConfig, default_pbxs, parse_pbxs
from ivr.errors import ConfigError
from ivr.settings import Settings
from ivr.yamldoc import bounded

LIVE_STALE_S = 10.0        # live figures older than this say nothing of the link now
PROBE_TIMEOUT_S = 2.0

CONNECTED, DISCONNECTED, NO_LEADER, NOT_LINKED = "connected", "disconnected", "no_leader", "not_linked"
STATE_TEXT = {
    CONNECTED: "已连接 — the engine's AMI link is up",
    DISCONNECTED: "未连接 — the engine's AMI link to this PBX is down (PBX down or unreachable; the others carry on)",
    NO_LEADER: ("状态未知：没有进程持有 AMI 连接 — unknown: no engine holds the AMI link (no leader, or IVR_AMI_URL "
                "unset)"),
    NOT_LINKED: ("未建立连接：引擎没有此 PBX 的 AMI 连接（secret_env 指定的环境变量未设置？见引擎日志） — not linked: "
                 "the leader holds no AMI link to this PBX (is its secret_env set in the engine's environment? "
                 "the engine's log says)"),
}


class PbxState(TypedDict):
    name: str
    address: str          # ami://user@host:port, or IVR_AMI_URL: never a secret
    linked: bool          # True: the leader holds an AMI link to it (up or down)
    state: str            # connected | disconnected | no_leader | not_linked
    state_text: str
    queues: list[str]
    seats: int
    peer_address: str | None   # where the other PBXs reach it over IAX2 (moved emergency callers); None: not a peer
    peer_text: str             # whether it takes them (its trunk secret, read by the leader)


def configured(home: Path) -> tuple[PbxConfig | None, str]:
    """The PBXs of ``queue/pbxs.yaml`` on this host's project folder (one PBX
    on ``IVR_AMI_URL`` when there is none), or None and the file's first
    error. The file against the others is ``ivr files check``'s job."""
    path = home / PBXS_FILE
    if not path.exists():
        return default_pbxs(), ""
    try:
        cfg, problems = parse_pbxs(bounded.read(path, PBXS_FILE))
    except ConfigError as exc:
        return None, str(exc)
    errors = [str(p) for p in problems if not p.warning]
    return cfg, (errors[0] + (f" (+{len(errors) - 1})" if len(errors) > 1 else "")) if errors else ""


def state_of(pbx: Pbx, snap: Mapping[str, Any] | None, now: float, only: bool = False) -> str:
    """``only``: the file's one PBX (its state is the live figures' own, whatever its address)."""
    if snap is not None and now - float(snap.get("at", 0)) <= LIVE_STALE_S:
        per_pbx = snap.get("pbxs")
        if isinstance(per_pbx, Mapping):           # several PBXs: each one's own link
            mine = per_pbx.get(pbx.name)
            if not isinstance(mine, Mapping):
                return NOT_LINKED
            return CONNECTED if mine.get("connected") else DISCONNECTED
        if pbx.is_link or only:
            return CONNECTED if snap.get("ami_connected") else DISCONNECTED
        return NOT_LINKED
    return NO_LEADER


def linked(pbx: Pbx, snap: Mapping[str, Any] | None, only: bool = False) -> bool:
    """Whether the leader holds an AMI link to this PBX (up or not)."""
    per_pbx = snap.get("pbxs") if snap is not None else None
    if isinstance(per_pbx, Mapping):
        return pbx.name in per_pbx
    return pbx.is_link or only


def states(cfg: PbxConfig, snap: Mapping[str, Any] | None, now: float) -> list[PbxState]:
    """Each PBX and its state; ``snap``: the leader's live figures (None: none published)."""
    out: list[PbxState] = []
    only = len(cfg.pbxs) == 1
    for pbx in cfg.pbxs.values():
        state = state_of(pbx, snap, now, only)
        out.append({"name": pbx.name, "address": pbx.address, "linked": linked(pbx, snap, only), "state": state,
                    "state_text": STATE_TEXT[state], "queues": list(pbx.queues), "seats": len(pbx.seats),
                    "peer_address": pbx.peer_address, "peer_text": peer_text(pbx, snap)})
    return out


PEER_TEXT = {
    "ok": "接收他台转来的紧急来电 takes emergency callers moved from the other PBXs",
    "shipped": "不接收：IVR_PEER_SECRET 仍为默认值 — takes none: IVR_PEER_SECRET is still the shipped one",
    "unset": "不接收：未设置 IVR_PEER_SECRET — takes none: IVR_PEER_SECRET is not set",
}


def peer_text(pbx: Pbx, snap: Mapping[str, Any] | None) -> str:
    """Whether ``pbx`` takes emergency callers moved from the others, as the leader last read it."""
    if pbx.peer_address is None:
        return "未配置 peer_address：不接收他台转来的来电 — no peer_address: not a peer"
    per_pbx = snap.get("pbxs") if snap is not None else None
    mine = per_pbx.get(pbx.name) if isinstance(per_pbx, Mapping) else None
    trunk = mine.get("peer_trunk") if isinstance(mine, Mapping) else None
    return PEER_TEXT.get(str(trunk), "尚未读取 not read yet (no leader linked to it)")


def health(home: Path, snap: Mapping[str, Any] | None, now: float) -> dict[str, Any]:
    """What ``/healthz`` says of the PBXs: each with its state, and the file's error if it is wrong."""
    cfg, error = configured(home)
    return {"pbxs": states(cfg, snap, now) if cfg is not None else [], "pbxs_error": error or None}


def metric_samples(home: Path, snap: Mapping[str, Any] | None,
                   now: float) -> tuple[list[tuple[dict[str, str], float]], list[tuple[dict[str, str], float]]]:
    """(``ivr_pbx_up``, ``ivr_pbx_linked``) samples: 1 when the engine's link
    to the PBX is up; 1 when an engine has a link to it at all."""
    cfg, _ = configured(home)
    got = states(cfg, snap, now) if cfg is not None else []
    return ([({"pbx": s["name"]}, float(s["state"] == CONNECTED)) for s in got],
            [({"pbx": s["name"]}, float(s["linked"])) for s in got])


# -- can the engine reach each PBX's AMI port? ------------------------------------------

def address_of(pbx: Pbx, settings: Settings) -> tuple[str, int] | None:
    """Host and port of a PBX's AMI; the link's from IVR_AMI_URL (None: unset)."""
    if pbx.ami is not None:
        return pbx.ami.host, pbx.ami.port
    return (settings.ami.host, settings.ami.port) if settings.ami is not None else None


async def _reach(host: str, port: int, timeout_s: float) -> str:
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return f"no answer in {timeout_s:g} s"
    except OSError as exc:
        return exc.strerror or repr(exc)
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return ""


async def probe(cfg: PbxConfig, settings: Settings, timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, str]:
    """PBX name -> '' when its AMI port accepts a connection, else why not
    (Chinese first). A TCP connection only: no login, so no secret is needed
    and nothing is changed on the PBX. All at once: one dead PBX costs one
    timeout, whatever the number."""
    pbxs = list(cfg.pbxs.values())
    where = [address_of(p, settings) for p in pbxs]
    answers = await asyncio.gather(*(_reach(w[0], w[1], timeout_s) if w else _unset() for w in where))
    out: dict[str, str] = {}
    for pbx, w, why in zip(pbxs, where, answers, strict=True):
        if w is None:
            out[pbx.name] = f"未配置 {LINK} — {LINK} is unset: no AMI address"
        elif why:
            out[pbx.name] = (f"PBX '{pbx.name}' 的 AMI 地址 {w[0]}:{w[1]} 无法连接 — PBX '{pbx.name}': the AMI address "
                             f"{w[0]}:{w[1]} is unreachable ({why}); the other PBXs and the calls carry on")
        else:
            out[pbx.name] = ""
    return out


async def _unset() -> str:
    return ""
