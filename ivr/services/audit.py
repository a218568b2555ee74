"""The hash-chained audit logs as auditors check them: every chain verified
against the latest signed checkpoint, checkpoints written outside Redis, the
chains' heads as printed under a monthly report."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from ivr.audit.chain import AuditLog, VerifyResult
from ivr.audit.checkpoints import GENESIS, Checkpoint, append, read_latest, sign
from ivr.audit.signing import AuditConfig, current
from ivr.redisdb import keys
from ivr.redisdb.replies import text_or_none

if TYPE_CHECKING:
    from collections.abc import Callable
    from zoneinfo import ZoneInfo

    import redis.asyncio as aioredis

    from ivr.logs import Log


LOG_NAMES = tuple(sorted(keys.AUDIT_LOGS))     # what ``ivr audit verify LOG`` accepts


async def verify(redis: aioredis.Redis, names: list[str] | None = None) -> tuple[dict[str, VerifyResult], list[str]]:
    """Each log of ``names`` (default: all, ``keys.AUDIT_LOGS``) verified
    against its latest checkpoint; and what is wrong with the checkpoint file
    itself (an unsigned or altered line)."""
    config = current()
    latest, file_problems = read_latest(config.checkpoint_file, config.key)
    out = {}
    for name in names or list(keys.AUDIT_LOGS):
        stream = keys.AUDIT_LOGS[name]
        out[name] = await AuditLog(redis, stream, config=config).verify(checkpoint=latest.get(stream))
    return out, file_problems


async def checkpoint(redis: aioredis.Redis) -> tuple[dict[str, Checkpoint], dict[str, str]]:
    """A signed checkpoint of every intact log, appended to the file outside
    Redis: (log name -> checkpoint written, log name -> why none was written)."""
    written, failed = await Checkpointer(redis, always=True).checkpoint()
    names = {v: k for k, v in keys.AUDIT_LOGS.items()}
    return {names.get(cp.log, cp.log): cp for cp in written}, failed


LOG_LABELS = {"callbacks": "回拨", "contingency": "应急预案", "console": "控制台", "flows": "呼叫流程",
              "users": "用户", "config": "配置文件"}
# how a chain's head now compares with its latest signed checkpoint
CHECKS = {"same": "与签名检查点一致 same as the signed checkpoint",
          "grown": "检查点后新增 {n} 条 {n} entries since the signed checkpoint",
          "none": "尚无签名检查点 no signed checkpoint yet",
          "empty": "空日志 empty log",
          "differs": "与签名检查点不符 DIFFERS from the signed checkpoint"}


def _local(ts: float, tz: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S")


async def signed_checkpoint(redis: aioredis.Redis, tz: ZoneInfo) -> dict[str, Any] | None:
    """The latest signed checkpoint of every audit log (``ivr audit
    checkpoint`` and the leader's schedule write them to a file outside Redis,
    each line with its HMAC): printed under the monthly report, so whoever
    keeps the paper can later prove the log was not rewritten since. The
    file's place on the server is not shown: it means nothing to a reader."""
    config = current()
    latest, problems = await asyncio.to_thread(read_latest, config.checkpoint_file, config.key)
    if not latest:
        return None
    names = {stream: name for name, stream in keys.AUDIT_LOGS.items()}
    return {"problems": problems,
            "logs": {names.get(log, log): {"entries": cp.n, "head": cp.head, "entry_id": cp.entry_id,
                                           "at": _local(cp.at, tz), "mac": cp.mac}
                     for log, cp in sorted(latest.items())}}


async def chain_heads(redis: aioredis.Redis, tz: ZoneInfo, now: float | None = None) -> dict[str, Any]:
    """The head (entry count and hash) of every audit chain at ``now`` (the
    engine's clock): printed on the monthly report so a later reader can
    check the log still matches."""
    at = dt.datetime.fromtimestamp(time.time() if now is None else now, tz)
    heads = {}
    for name, stream in keys.AUDIT_LOGS.items():
        head = text_or_none(await redis.get(AuditLog(redis, stream).head_key)) or ""
        n, _, h = head.partition(":") if ":" in head else ("0", "", head)
        heads[name] = {"head": head, "entries": int(n) if n.isdigit() else None, "hash": h}
    return {"at": at.timestamp(), "time": at.strftime("%Y-%m-%d %H:%M:%S %Z"), "heads": heads}


def chain_rows(heads: dict[str, Any], signed: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The chain heads as the printed table reads them: one row per log, its
    entries and head now, and how they compare with the latest signed
    checkpoint (an empty log's all-zero head is shown as empty, not as a
    hash). Whether the entries since the checkpoint are intact is what
    ``verify`` answers; this says only where the chain stands."""
    logs = (signed or {}).get("logs", {})
    rows = []
    for name in sorted(heads["heads"], key=lambda n: list(LOG_LABELS).index(n) if n in LOG_LABELS else 99):
        h = heads["heads"][name]
        n = h["entries"] or 0
        cp = logs.get(name)
        if cp is None:
            check = "empty" if n == 0 else "none"
        elif cp["entries"] == n and (n == 0 or cp["head"] == h["hash"]):
            check = "empty" if n == 0 else "same"
        elif cp["entries"] < n:
            check = "grown"
        else:
            check = "differs"
        rows.append({"log": name, "label": LOG_LABELS.get(name, name), "entries": n,
                     "head": h["hash"] if n and h["hash"] != GENESIS else "",
                     "checkpoint_entries": cp["entries"] if cp else None,
                     "checkpoint_time": cp["at"] if cp else "",
                     "check": check, "check_label": CHECKS[check].format(n=n - (cp["entries"] if cp else 0))})
    return rows


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

    def __init__(self, redis: aioredis.Redis, *, logs: dict[str, str] | None = None,
                 config: AuditConfig | None = None, log: Log | None = None, always: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.clock = clock          # the engine's (a drill's simulated one): the checkpoint's time beside the heads
        self.logs = dict(keys.AUDIT_LOGS if logs is None else logs)
        self.config = config
        self.log = log
        self.always = always

    async def checkpoint(self, now: float | None = None) -> tuple[list[Checkpoint], dict[str, str]]:
        """One checkpoint of every log. Returns the lines written and, per log
        name, the problem that kept a log from being checkpointed."""
        config = self.config or current()
        now = self.clock() if now is None else now
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
            except TimeoutError:
                pass
