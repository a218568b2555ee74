"""``queue/pbxs.yaml``: the PBXs of one hotline (seat managers own this file;
docs/deploy.md). Pure: the text in, the PBXs and every problem at its
``file:line:col`` out.

Each PBX has a name, its AMI address, its queues (as ``asterisk/queues.conf``
names them) and its seats (queue member interfaces). The AMI secret is never
in the file: either the PBX is the engine's own link (``ami: IVR_AMI_URL``,
the setting that holds address and secret today), or the file gives
``ami://USER@HOST:PORT`` and names the environment variable holding the
secret (``secret_env``, set from the unit's ``EnvironmentFile``).

Lines stay in ``queue/lines.yaml``, keyed by the same PBX names (one file per
owner's question: how many lines the carrier gives a PBX is asked and answered
there, issue 23). Without this file the hotline has one PBX, ``main``, on
``IVR_AMI_URL``: today's single-PBX deployments run unchanged.

What is wired (issue 20): the leader holds one AMI link per PBX
(``runtime/leader_work.py``; the others' secrets from the environment), the
city's live figures sum them (``ami/city.py``), and each PBX's state is
shown (``ivr config``, ``/healthz``, ``/metrics``, ``ivr status``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

from ivr import names
from ivr.admission.lines import LINK_PBX as LINES_FALLBACK_PBX  # the lines the engine's link takes first
from ivr.yamldoc.problems import Problem, Problems, mapping_items, scalar
from ivr.yamldoc.schema import MISSING, Reader, compose_mapping, read_text

PBXS_FILE = "queue/pbxs.yaml"
LINK = "IVR_AMI_URL"              # ``ami: IVR_AMI_URL``: the engine's own AMI link (address and secret in settings)
DEFAULT_PBX = "main"              # the one PBX when the file is absent (queue/lines.yaml names it too)
DEFAULT_AMI_PORT = 5038
ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


@dataclass(frozen=True, slots=True)
class AmiAddress:
    """Where a PBX's manager interface listens; the secret is named, never held."""

    host: str
    port: int
    username: str
    secret_env: str

    def __str__(self) -> str:
        return f"ami://{self.username}@{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Pbx:
    name: str
    ami: AmiAddress | None         # None: the engine's own link, IVR_AMI_URL
    queues: tuple[str, ...] = ()   # Asterisk queue names; empty: every queue of queue/queues.yaml
    seats: tuple[str, ...] = ()    # queue member interfaces on this PBX; empty: not stated
    queue_log: str | None = None   # where the leader's host reads this PBX's queue_log (docs/pbx-record.md)
    # HOST:PORT where the other PBXs reach this one over IAX2 (asterisk/iax.conf): an emergency
    # caller with no free emergency seat on their own PBX may be moved to this PBX's emergency queue
    peer_address: str | None = None

    @property
    def is_link(self) -> bool:
        return self.ami is None

    @property
    def address(self) -> str:
        return LINK if self.ami is None else str(self.ami)


@dataclass(frozen=True, slots=True)
class PbxConfig:
    pbxs: dict[str, Pbx]
    from_file: bool = True          # False: the default (no queue/pbxs.yaml)

    @property
    def link(self) -> Pbx | None:
        """The PBX of the engine's one AMI link."""
        return next((p for p in self.pbxs.values() if p.is_link), None)

    def pbx_of_seat(self, interface: str) -> str | None:
        return next((p.name for p in self.pbxs.values() if interface in p.seats), None)


def default_pbxs() -> PbxConfig:
    """Without ``queue/pbxs.yaml``: one PBX, ``main``, on ``IVR_AMI_URL``."""
    return PbxConfig({DEFAULT_PBX: Pbx(DEFAULT_PBX, None)}, from_file=False)


@dataclass(frozen=True, slots=True)
class Known:
    """What the other files name, to check this one against (None: not known)."""

    queues: frozenset[str] | None = None       # Asterisk names of queue/queues.yaml
    lines: frozenset[str] | None = None        # PBX names of queue/lines.yaml
    seats: frozenset[str] | None = None        # interfaces of queue/seats.yaml


def parse_pbxs(text: str, path: str = PBXS_FILE, known: Known | None = None) -> tuple[PbxConfig | None, list[Problem]]:
    """``pbxs:`` name -> ``{ami, secret_env, queues, seats, queue_log, peer_address}``; every problem at
    its ``file:line:col``, all at once."""
    known = known or Known()
    problems = Problems(path)
    root = compose_mapping(text, problems, "'pbxs:'")
    if root is None:
        return None, problems.items
    top = Reader(root, problems, "pbxs", [])
    node = top.take("pbxs", lambda r, n: n, required=True)
    top.finish()
    pbxs: dict[str, Pbx] = {}
    if isinstance(node, yaml.MappingNode):
        for name, knode, vnode in mapping_items(node, problems, "pbxs"):
            pbx = _pbx(name, knode, vnode, problems, known)
            if pbx is not None:
                pbxs[name] = pbx
        if not node.value:
            problems.at(node, "至少需要一个 PBX — pbxs: name at least one PBX")
        _across(node, pbxs, problems, known)
    elif node is not MISSING:
        problems.at(node, "pbxs 应为“PBX 名: {ami: ...}”映射 — pbxs: expected a mapping of PBX name: {ami: ...}")
    if problems.errors:
        return None, problems.items
    return PbxConfig(pbxs), problems.items


def parse_ami(value: str) -> tuple[AmiAddress | None, str]:
    """``ami://USER@HOST[:PORT]`` -> the address, or None and why (Chinese first)."""
    u = urlsplit(value)
    try:
        port = u.port or DEFAULT_AMI_PORT
    except ValueError:
        return None, f"AMI 地址端口无效 — the AMI address '{value}' has no valid port (1-65535)"
    if u.password is not None:
        return None, ("AMI 密钥不得写在文件中，请用 secret_env 指定环境变量 — the AMI secret must not be in the file: "
                      "write ami://USER@HOST:PORT and name the environment variable holding it in 'secret_env'")
    if u.scheme != "ami" or not u.hostname or not u.username or u.path not in ("", "/") or u.query or u.fragment:
        return None, (f"无法解析 AMI 地址 '{value}' — cannot parse the AMI address '{value}': expected "
                      f"ami://USER@HOST:PORT (or '{LINK}' for the engine's own link)")
    if not 0 < port <= 65535:
        return None, f"AMI 地址端口无效 — the AMI address '{value}' has no valid port (1-65535)"
    return AmiAddress(u.hostname, port, u.username, ""), ""


def _pbx(name: str, knode: yaml.Node, vnode: yaml.Node, problems: Problems, known: Known) -> Pbx | None:
    if not names.NAME.ok(name):
        problems.at(knode, f"PBX '{name}': 名称无效 (invalid name): {names.NAME.what}")
        return None
    if not isinstance(vnode, yaml.MappingNode):
        problems.at(vnode, f"PBX '{name}' 应为映射 — PBX '{name}': expected a mapping with 'ami:'")
        return None
    r = Reader(vnode, problems, f"PBX '{name}'", [])
    ami_text = r.take("ami", read_text, required=True)
    secret_env = r.take("secret_env", read_text, default=None)
    queues = r.take("queues", _tokens("queue", "Asterisk queue names"), default=())
    seats = r.take("seats", _tokens("seat", "queue member interfaces"), default=())
    queue_log = r.take("queue_log", read_text, default=None)
    peer_address = r.take("peer_address", read_text, default=None)
    r.finish()
    if MISSING in (ami_text, secret_env, queues, seats, queue_log, peer_address):
        return None
    ok = True
    if peer_address is not None and not _host_port(peer_address):
        problems.at(r.items["peer_address"][1], f"PBX '{name}'：peer_address 应为 主机:端口（其他 PBX 经 IAX2 中继到达本机的"
                                                f"地址）— peer_address must be HOST:PORT, where the other PBXs reach "
                                                f"this one over IAX2: {peer_address!r}")
        ok = False
    if queue_log is not None and (not queue_log.startswith("/") or "\0" in queue_log):
        problems.at(r.items["queue_log"][1], f"PBX '{name}'：queue_log 应为绝对路径 — queue_log must be an absolute "
                                             f"path on the leader's host: {queue_log!r}")
        ok = False
    ami: AmiAddress | None = None
    if ami_text != LINK:
        ami, why = parse_ami(ami_text)
        if ami is None:
            problems.at(r.items["ami"][1], f"PBX '{name}'：{why}")
            ok = False
        elif secret_env is None:
            problems.at(r.items["ami"][1], f"PBX '{name}'：缺少 secret_env（存放 AMI 密钥的环境变量名） — PBX "
                                           f"'{name}': missing 'secret_env', the environment variable holding the "
                                           "AMI secret")
            ok = False
        elif not ENV_NAME.fullmatch(secret_env):
            problems.at(r.items["secret_env"][1], f"PBX '{name}'：secret_env '{secret_env}' 不是环境变量名 — "
                                                  f"'{secret_env}' is not an environment variable name (A-Z, 0-9, _)")
            ok = False
        else:
            ami = AmiAddress(ami.host, ami.port, ami.username, secret_env)
    elif secret_env is not None:
        problems.at(r.items["secret_env"][1], f"PBX '{name}'：ami: {LINK} 的密钥已在该设置中，不需要 secret_env — "
                                              f"the secret of ami: {LINK} is in that setting: remove 'secret_env'")
        ok = False
    ok = _known_queues(name, r, queues, problems, known) and ok
    return Pbx(name, ami, tuple(queues), tuple(seats), queue_log, peer_address) if ok else None


PEER_ADDRESS = re.compile(r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?):(?P<port>[0-9]{1,5})")


def _host_port(text: str) -> bool:
    """``10.0.0.12:4569`` or ``pbx-b.example:4569``: what an IAX2 dial string takes after its '@'."""
    m = PEER_ADDRESS.fullmatch(text)
    return m is not None and 0 < int(m["port"]) <= 65535


def _tokens(what: str, expected: str) -> Callable[[Reader, yaml.Node], Any]:
    def conv(r: Reader, n: yaml.Node) -> Any:
        if not isinstance(n, yaml.SequenceNode):
            return r.bad(n, f"a list of {expected}")
        out: list[str] = []
        for item in n.value:
            v = scalar(item)
            if v is None or not names.PBX_TOKEN.ok(v):
                r.problems.at(item, f"{r.where}：{what} '{v}' 无效 — {what} '{v}': expected {names.PBX_TOKEN.what}")
                return MISSING
            if v in out:
                r.problems.at(item, f"{r.where}：{what} '{v}' 重复 — {what} '{v}' is listed twice")
                return MISSING
            out.append(v)
        return out
    return conv


def _known_queues(name: str, r: Reader, queues: list[str], problems: Problems, known: Known) -> bool:
    if known.queues is None or not queues:
        return True
    node = r.items["queues"][1]
    ok = True
    for item, q in zip(node.value, queues, strict=True):
        if q not in known.queues:
            problems.at(item, f"PBX '{name}'：队列 '{q}' 不在 queue/queues.yaml 中 — queue '{q}' is not the "
                              f"Asterisk name of a queue in queue/queues.yaml ({', '.join(sorted(known.queues))})")
            ok = False
    return ok


def _once(name: str, field: str, value: str | None, once: dict[str, dict[str, str]], vnode: yaml.Node,
          problems: Problems, why: str) -> None:
    """A value no two PBXs may share (a queue_log file, a peer address)."""
    if value is None:
        return
    seen = once[field]
    if value in seen:
        problems.at(_value(vnode, field), f"PBX '{name}' 与 PBX '{seen[value]}' 的 {field} 相同 — PBX '{name}' has "
                                          f"the {field} of PBX '{seen[value]}': {why}")
    seen.setdefault(value, name)


def _across(node: yaml.MappingNode, pbxs: dict[str, Pbx], problems: Problems, known: Known) -> None:
    """What no single PBX shows: a seat on two PBXs, two PBXs on one AMI
    address, one queue_log or one peer address, more than one engine link,
    the PBXs of queue/lines.yaml."""
    entries: dict[str | None, tuple[yaml.Node, yaml.Node]] = {}
    for k, v in node.value:
        entries.setdefault(scalar(k), (k, v))     # a name given twice: the first is the PBX (the second is reported)
    seat_of: dict[str, str] = {}
    address_of: dict[tuple[str, int], str] = {}
    once: dict[str, dict[str, str]] = {"queue_log": {}, "peer_address": {}}
    links: list[str] = []
    for pbx in pbxs.values():
        knode, vnode = entries[pbx.name]
        _once(pbx.name, "queue_log", pbx.queue_log, once, vnode, problems, "each PBX writes its own")
        _once(pbx.name, "peer_address", pbx.peer_address and pbx.peer_address.lower(), once, vnode, problems,
              "each PBX listens on its own")
        for seat, item in zip(pbx.seats, _items(vnode, "seats"), strict=True):
            if seat in seat_of:
                problems.at(item, f"坐席 '{seat}' 同时属于 PBX '{seat_of[seat]}' 和 '{pbx.name}'，一个坐席只能在一台 "
                                  f"PBX 上 — seat '{seat}' is on PBX '{seat_of[seat]}' and on PBX '{pbx.name}': a "
                                  "seat registers with one PBX")
            seat_of.setdefault(seat, pbx.name)
        if pbx.ami is None:
            links.append(pbx.name)
            continue
        where = (pbx.ami.host.lower(), pbx.ami.port)
        if where in address_of:
            problems.at(_value(vnode, "ami"), f"PBX '{pbx.name}' 与 PBX '{address_of[where]}' 的 AMI 地址相同 — PBX "
                                              f"'{pbx.name}' has the AMI address of PBX '{address_of[where]}'")
        address_of.setdefault(where, pbx.name)
    if len(links) > 1:
        problems.at(_value(entries[links[1]][1], "ami"), (
            f"只有一台 PBX 可以使用 ami: {LINK}（已用于 '{links[0]}'） — only one PBX can be the engine's own link "
            f"(ami: {LINK} is already PBX '{links[0]}'): give this one ami://USER@HOST:PORT and secret_env"))
    if known.lines is not None:
        _lines(node, pbxs, known.lines, problems)
    if known.seats is not None and seat_of:
        if nowhere := sorted(known.seats - set(seat_of)):
            listed = ", ".join(nowhere)
            problems.at(node, f"queue/seats.yaml 中的坐席不在任何 PBX 上：{listed} — seats of queue/seats.yaml on no "
                              f"PBX: {listed}; the contingency plan could not move them", warning=True)


def _lines(node: yaml.MappingNode, pbxs: dict[str, Pbx], lines: frozenset[str], problems: Problems) -> None:
    """Warnings only: a single-PBX site whose lines.yaml names its one PBX
    otherwise ran on those lines before this file existed
    (``LinesConfig.for_link``: ``main``, or the only one) and still does."""
    link = next((p.name for p in pbxs.values() if p.is_link), None)
    fallback = LINES_FALLBACK_PBX not in lines and len(lines) == 1 and link is not None and link not in lines
    for k, _ in node.value:
        name = scalar(k)
        if name in pbxs and name not in lines and not (fallback and name == link):
            problems.at(k, f"PBX '{name}' 在 queue/lines.yaml 中没有线路数，对它不按线路分流 — PBX '{name}' has no "
                           "lines in queue/lines.yaml: no line-based admission on it", warning=True)
    named = {scalar(k) for k, _ in node.value}
    for name in sorted(lines - named):
        used = (f"引擎连接的 PBX '{link}' 仍使用这些线路；" if fallback else "")
        used_en = (f": the engine's link (PBX '{link}') uses them, as before;" if fallback else ":")
        problems.at(node, f"queue/lines.yaml 中的 PBX '{name}' 不在本文件中，{used}请两个文件使用相同的 PBX 名 — "
                          f"queue/lines.yaml has lines for PBX '{name}', which is not one of the PBXs here{used_en} "
                          "name each PBX alike in both files", warning=True)


def _value(vnode: yaml.Node, key: str) -> yaml.Node:
    if isinstance(vnode, yaml.MappingNode):
        for k, v in vnode.value:
            if scalar(k) == key and isinstance(v, yaml.Node):
                return v
    return vnode


def _items(vnode: yaml.Node, key: str) -> Iterable[yaml.Node]:
    v = _value(vnode, key)
    return v.value if isinstance(v, yaml.SequenceNode) else []
