"""Signed checkpoints of the audit chains' heads, kept outside Redis.

An append-only file (``IVR_AUDIT_CHECKPOINT_FILE``, 0600), one JSON line per
log per checkpoint: the log, how many entries it had (``n``), the hash of entry
``n`` (``head``), that entry's stream id, the time, and an HMAC over all of
these under the audit key. The leader writes one for every log every few
minutes (``Checkpointer.run``); ``ivr audit checkpoint`` writes one by hand and
prints it for auditors to keep elsewhere (paper, mail, a ticket).

``AuditLog.verify`` compares the chain with the latest checkpoint: entries
deleted from the end (even with the head key rewritten), or a whole log
deleted, show as entries the checkpoint saw and Redis no longer has.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from ivr import redis_keys as keys
from ivr.audit_keys import AuditConfig, current, private_dir

if TYPE_CHECKING:
    from ivr.logs import Log

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Checkpoint:
    log: str          # the stream key, e.g. ivr:audit:callbacks
    n: int            # entries in the chain
    head: str         # hash of entry n (GENESIS when n == 0)
    entry_id: str     # stream id of entry n ("" when n == 0)
    at: float
    mac: str = ""
    unkeyed: int = 0  # entries 1..unkeyed were written before audit keys (sealed by this checkpoint)

    def fields(self) -> dict:
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


def authentic(key: bytes, cp: Checkpoint) -> bool:
    return hmac.compare_digest(hmac.new(key, cp.body(), hashlib.sha256).hexdigest(), cp.mac)


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


_cache: dict[tuple, tuple[dict[str, Checkpoint], list[str]]] = {}


def read_latest(path: Path, key: bytes) -> tuple[dict[str, Checkpoint], list[str]]:
    """The latest authentic checkpoint of each log, and the problems found
    (lines that are not JSON or whose HMAC does not verify: edited, or written
    without the key). The last answer is kept while the file is unchanged: the
    auditors' page verifies every log at once."""
    try:
        fh = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return {}, []
    with fh:
        st = os.fstat(fh.fileno())
        tag = (str(path), st.st_ino, st.st_size, st.st_mtime_ns, hashlib.sha256(key).digest())
        if tag in _cache:
            latest, problems = _cache[tag]
            return dict(latest), list(problems)
        latest, problems = _read(fh, path, key)
    _cache.clear()
    _cache[tag] = (latest, problems)
    return dict(latest), list(problems)


def _read(fh, path: Path, key: bytes) -> tuple[dict[str, Checkpoint], list[str]]:
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
        if not authentic(key, cp):
            problems.append(f"{path}:{i}: 检查点签名不符 (checkpoint signature does not verify: edited, "
                            "or written with another key)")
            continue
        latest[cp.log] = cp
    return latest, problems


def latest_for(log: str, config: AuditConfig | None = None) -> Checkpoint | None:
    config = config or current()
    return read_latest(config.checkpoint_file, config.key)[0].get(log)


class Checkpointer:
    """Checkpoints every audit log: verifies what was appended since the
    previous checkpoint (incremental: cheap even for millions of entries), then
    appends a signed line per log. A log that fails verification gets no new
    checkpoint (its tampering is logged at error level), so a forged head is
    never blessed.

    The engine's leader runs ``await Checkpointer(redis, log=log).run(stop, every_s=300)``.
    A log unchanged since its last checkpoint gets no new line (the file grows
    with activity, not with time) unless ``always`` (``ivr audit checkpoint``).
    """

    def __init__(self, redis, *, logs: dict[str, str] | None = None, config: AuditConfig | None = None,
                 log: Log | None = None, always: bool = False) -> None:
        self.redis = redis
        self.logs = dict(keys.AUDIT_LOGS if logs is None else logs)
        self.config = config
        self.log = log
        self.always = always

    async def checkpoint(self, now: float | None = None) -> tuple[list[Checkpoint], dict[str, str]]:
        """One checkpoint of every log. Returns the lines written and, per log
        name, the problem that kept a log from being checkpointed."""
        from ivr.audit import AuditLog

        config = self.config or current()
        now = time.time() if now is None else now
        # file work off the event loop: the leader's loop also runs the AMI link
        latest, _ = await asyncio.to_thread(read_latest, config.checkpoint_file, config.key)
        written: list[Checkpoint] = []
        failed: dict[str, str] = {}
        for name, stream in self.logs.items():
            cp = latest.get(stream)
            # a log's first checkpoint seals what was written before audit keys
            res = await AuditLog(self.redis, stream, config=config).verify(checkpoint=cp, since=cp,
                                                                            accept_unkeyed=cp is None)
            if not res.ok:
                failed[name] = res.problem
                if self.log is not None:
                    self.log.error("audit_log_tampered", audit_log=name, problem=res.problem, entry_id=res.entry_id)
                continue
            if cp is not None and not self.always and (cp.n, cp.head) == (res.entries, res.head):
                continue
            unkeyed = cp.unkeyed if cp is not None else res.legacy
            written.append(sign(config.key, stream, res.entries, res.head, res.head_id, now, unkeyed))
        await asyncio.to_thread(append, config.checkpoint_file, written)
        return written, failed

    async def run(self, stop: asyncio.Event, every_s: float = 300.0) -> None:
        """Checkpoint now, then every ``every_s`` seconds until ``stop`` is set.
        A failure (Redis away, disk full) is logged and retried next time."""
        while not stop.is_set():
            try:
                await self.checkpoint()
            except asyncio.CancelledError:
                raise
            except Exception:  # a checkpoint missed is retried; the leader must go on
                if self.log is not None:
                    self.log.exception("audit_checkpoint_failed")
            try:
                await asyncio.wait_for(stop.wait(), every_s)
            except asyncio.TimeoutError:
                pass
