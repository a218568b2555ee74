"""Signed checkpoints of the audit chains' heads, kept outside Redis.

An append-only file (``IVR_AUDIT_CHECKPOINT_FILE``, 0600), one JSON line per
log per checkpoint: the log, how many entries it had (``n``), the hash of entry
``n`` (``head``), that entry's stream id, the time, and an HMAC over all of
these under the audit key. The leader writes one for every log every few
minutes (``ivr.services.audit.Checkpointer``); ``ivr audit checkpoint`` writes one by hand and
prints it for auditors to keep elsewhere (paper, mail, a ticket).

``AuditLog.verify`` compares the chain with the latest checkpoint: entries
deleted from the end (even with the head key rewritten), or a whole log
deleted, show as entries the checkpoint saw and Redis no longer has.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import orjson

from ivr.audit.signing import AuditConfig, RetiredKey, current, private_dir, retired_for

GENESIS = "0" * 64


class CheckpointFields(TypedDict):
    """What the HMAC covers (a checkpoint line is these and ``mac``)."""

    log: str
    n: int
    head: str
    id: str
    at: float
    unkeyed: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    log: str          # the stream key, e.g. ivr:audit:callbacks
    n: int            # entries in the chain
    head: str         # hash of entry n (GENESIS when n == 0)
    entry_id: str     # stream id of entry n ("" when n == 0)
    at: float
    mac: str = ""
    unkeyed: int = 0  # entries 1..unkeyed were written before audit keys (sealed by this checkpoint)

    def fields(self) -> CheckpointFields:
        return {"log": self.log, "n": self.n, "head": self.head, "id": self.entry_id, "at": self.at,
                "unkeyed": self.unkeyed}

    def body(self) -> bytes:
        return orjson.dumps(self.fields(), option=orjson.OPT_SORT_KEYS)

    def line(self) -> str:
        return json.dumps({**self.fields(), "mac": self.mac}, sort_keys=True) + "\n"

    @property
    def when(self) -> str:
        return dt.datetime.fromtimestamp(self.at).astimezone().isoformat(timespec="seconds")


def sign(key: bytes, log: str, n: int, head: str, entry_id: str, at: float, unkeyed: int = 0) -> Checkpoint:
    cp = Checkpoint(log, n, head, entry_id, at, "", unkeyed)
    return Checkpoint(log, n, head, entry_id, at, hmac.new(key, cp.body(), hashlib.sha256).hexdigest(), unkeyed)


def authentic(key: bytes, cp: Checkpoint, retired: tuple[RetiredKey, ...] = ()) -> bool:
    """Signed with ``key``, or with a retired key while it was in force."""
    if hmac.compare_digest(hmac.new(key, cp.body(), hashlib.sha256).hexdigest(), cp.mac):
        return True
    return any(cp.at <= r.retired_at and hmac.compare_digest(hmac.new(r.key, cp.body(), hashlib.sha256).hexdigest(),
                                                              cp.mac) for r in retired)


def append(path: Path, checkpoints: list[Checkpoint]) -> None:
    """Append lines to the checkpoint file (created 0600), and sync them to disk."""
    if not checkpoints:
        return
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, "".join(cp.line() for cp in checkpoints).encode())
        os.fsync(fd)
    finally:
        os.close(fd)


# (path, inode, size, mtime_ns, sha256 of the key) -> the answer for that file and key
_cache: dict[tuple[str, int, int, int, bytes], tuple[dict[str, Checkpoint], list[str]]] = {}


def read_latest(path: Path, key: bytes) -> tuple[dict[str, Checkpoint], list[str]]:
    """The latest authentic checkpoint of each log, and the problems found
    (lines that are not JSON or whose HMAC does not verify: edited, or written
    without the key; lines written before a key rotation verify under the
    retired key that goes with ``key``, ``signing.retired_for``). The last answer is kept while the file is unchanged: the
    auditors' page verifies every log at once."""
    try:
        fh = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return {}, []
    with fh:
        st = os.fstat(fh.fileno())
        retired = retired_for(key)
        tag = (str(path), st.st_ino, st.st_size, st.st_mtime_ns,
               hashlib.sha256(key + b"".join(r.key for r in retired)).digest())
        if tag in _cache:
            latest, problems = _cache[tag]
            return dict(latest), list(problems)
        latest, problems = _read(fh, path, key, retired)
    _cache.clear()
    _cache[tag] = (latest, problems)
    return dict(latest), list(problems)


def _read(fh: Iterable[str], path: Path, key: bytes,
          retired: tuple[RetiredKey, ...]) -> tuple[dict[str, Checkpoint], list[str]]:
    latest: dict[str, Checkpoint] = {}
    problems: list[str] = []
    for i, raw in enumerate(fh, 1):
        if not raw.strip():
            continue
        try:
            d = json.loads(raw)
            cp = Checkpoint(str(d["log"]), int(d["n"]), str(d["head"]), str(d["id"]), float(d["at"]),
                            str(d["mac"]), int(d.get("unkeyed", 0)))
        except (ValueError, KeyError, TypeError):
            problems.append(f"{path}:{i}: 不是检查点 (not a checkpoint line)")
            continue
        if not authentic(key, cp, retired):
            problems.append(f"{path}:{i}: 检查点签名不符 (checkpoint signature does not verify: edited, "
                            "or written with another key)")
            continue
        latest[cp.log] = cp
    return latest, problems


def latest_for(log: str, config: AuditConfig | None = None) -> Checkpoint | None:
    config = config or current()
    return read_latest(config.checkpoint_file, config.key)[0].get(log)
