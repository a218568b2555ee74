"""Append-only, hash-chained, keyed audit logs in Redis streams.

Every entry carries its sequence number ``n``, the previous entry's hash
``prev`` and its own hash ``h = HMAC-SHA256(key, log | prev | n | j)`` over the
canonical JSON ``j`` of the record (field ``k = 1`` marks a keyed entry). The
key lives outside Redis (``ivr.audit.signing``): with Redis alone nobody can write
an entry that verifies, so an edited entry -- even with the chain after it
rebuilt -- is found and named. The stream's head (``n:h`` of the last entry)
is kept in a separate key; signed checkpoints of it are kept outside Redis
(``ivr.audit.checkpoints``), so deleting the newest entries and rewriting the
head, or deleting a whole log, is found too. Nothing here trims the stream.

Entries written before keys existed (plain SHA-256, no ``k``) are accepted only
as the start of a log and only when a checkpoint covers them: the first
checkpoint after an upgrade seals them (``accept_unkeyed``, used by the
checkpointer when a log has no checkpoint yet). After that, a log rebuilt
without the key (unkeyed entries) no longer matches its checkpointed head.

HMACs are computed in Python (Redis's Lua only offers SHA-1) from a keyed state
prepared once per log; a Lua script appends a batch only if the head is still
what the writer based it on, so two writers never fork the chain: the loser
re-reads the head and retries. The same script can set other keys in the same
atomic step, so a state change and its audit record are never separated by a
crash.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
import redis.asyncio as aioredis

from ivr.aio import between_pages
from ivr.audit.checkpoints import GENESIS, Checkpoint, latest_for
from ivr.audit.signing import AuditConfig, current
from ivr.errors import AuditContended, StaleState
from ivr.redisdb.replies import stream_entries, text_or_none

# What a writer hands in: any JSON-ready record (its fields depend on its kind).
Record = Mapping[str, object]
# What a reader gets back: the record's JSON, open for the same reason.
Entry = dict[str, Any]


class _Latest(enum.Enum):
    LATEST = "latest"


_LATEST: Final = _Latest.LATEST   # verify(): compare with the latest checkpoint on file
_OPS = {"HSET": 2, "SADD": 1, "SET": 1}   # what ``append(ops=...)`` may do besides setting strings


# KEYS: stream, head, index-from, then the keys of: also_set, expect, ops (in that order)
# ARGV: expected head, count, index prefix ('' = no index), count entries, nset, nset values, nexp,
#       nexp values, nops, then per op its command and arguments (HSET field value | SADD member | SET value)
# With an index prefix, each entry's stream id is also RPUSHed to the list its
# argument starts with: prefix .. its index value (e.g. ivr:cb:trail:<callback
# id>), joined by the writer (a concatenation in Lua cost 0.4 µs per entry).
# Those keys cannot all be declared in KEYS, hence in ARGV (standalone Redis
# only). KEYS[3] keeps the stream id of the first indexed entry (older entries:
# not indexed). Redis keeps a script's writes when a later command fails, so a
# push that fails (a key of another type) makes the script take back what this
# batch wrote before it returns the error: never an entry without its index
# line, nor a line without its entry.
_APPEND = """
local head = redis.call('GET', KEYS[2]) or ''
if head ~= ARGV[1] then return {0, head} end
local count = tonumber(ARGV[2])
local prefix = ARGV[3]
local i = 4 + count
local k = 4
local nset = tonumber(ARGV[i])
local set_i, set_k = i + 1, k
i = i + 1 + nset
k = k + nset
local nexp = tonumber(ARGV[i])
i = i + 1
for _ = 1, nexp do
  -- a guard: the state the caller computed its change from is still there
  if (redis.call('GET', KEYS[k]) or '') ~= ARGV[i] then return {2, head} end
  i = i + 1
  k = k + 1
end
local last = ''
local marked = false
for e = 4, 3 + count do
  -- one argument per entry, "index-key n prev h j" separated by tabs (canonical JSON has none)
  local s = ARGV[e]
  local x = string.find(s, '\t', 1, true)
  local a = string.find(s, '\t', x + 1, true)
  local b = string.find(s, '\t', a + 1, true)
  local c = string.find(s, '\t', b + 1, true)
  local n, h = string.sub(s, x + 1, a - 1), string.sub(s, b + 1, c - 1)
  local rid = redis.call('XADD', KEYS[1], '*', 'n', n, 'prev', string.sub(s, a + 1, b - 1), 'h', h,
                         'j', string.sub(s, c + 1), 'k', '1')
  if prefix ~= '' and x > 1 then
    local pushed = redis.pcall('RPUSH', string.sub(s, 1, x - 1), rid)
    if type(pushed) == 'table' and pushed.err then
      for _, row in ipairs(redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', e - 3)) do
        redis.call('XDEL', KEYS[1], row[1])
      end
      for u = 4, e - 1 do
        local xu = string.find(ARGV[u], '\t', 1, true)
        if xu > 1 then redis.call('RPOP', string.sub(ARGV[u], 1, xu - 1)) end
      end
      if marked == 'set' then redis.call('DEL', KEYS[3]) end
      return redis.error_reply('audit index ' .. string.sub(s, 1, x - 1) .. ': ' .. pushed.err)
    end
    if not marked then marked = redis.call('SET', KEYS[3], rid, 'NX') and 'set' or 'was' end
  end
  last = n .. ':' .. h
end
redis.call('SET', KEYS[2], last)
for x = 0, nset - 1 do
  local v = ARGV[set_i + x]
  if v == '' then redis.call('DEL', KEYS[set_k + x]) else redis.call('SET', KEYS[set_k + x], v) end
end
local nops = tonumber(ARGV[i])
i = i + 1
for _ = 1, nops do
  local cmd = ARGV[i]
  if cmd == 'HSET' then
    redis.call('HSET', KEYS[k], ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  else
    redis.call(cmd, KEYS[k], ARGV[i + 1])
    i = i + 2
  end
  k = k + 1
end
return {1, last}
"""


def canonical(record: Record) -> str:
    """Sorted keys, no spaces, UTF-8 as is: the same text as ``json.dumps(...,
    sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, at a tenth of
    the CPU (orjson) — it runs for every missed call."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()


def chain_hash(prev: str, n: int, j: str) -> str:
    """The hash of an entry written before audit keys (not authenticated)."""
    return hashlib.sha256(f"{prev}|{n}|{j}".encode()).hexdigest()


class _Mac:
    """HMAC-SHA256 of entries of one log: the keyed state is prepared once and
    copied per entry (a few microseconds: callback ingest writes 30,000/s)."""

    __slots__ = ("_base",)

    def __init__(self, key: bytes, stream: str) -> None:
        self._base = hmac.new(key, f"{stream}|".encode(), hashlib.sha256)

    def __call__(self, prev: str, n: int, j: str) -> str:
        m = self._base.copy()
        m.update(f"{prev}|{n}|{j}".encode())
        return m.hexdigest()


def entry_verifies(key: bytes, stream: str, fields: Mapping[str, str]) -> bool:
    """Whether one keyed entry of ``stream`` (its stream fields: n, prev, h, j,
    k) carries its HMAC under ``key``: which key a log was written with, without
    walking it (``ivr.audit.keycheck``)."""
    try:
        n = int(fields.get("n", ""))
    except ValueError:
        return False
    mac = _Mac(key, stream)(fields.get("prev", ""), n, fields.get("j", ""))
    return fields.get("k") == "1" and hmac.compare_digest(mac, fields.get("h", ""))


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    entries: int               # entries verified good, from the first (the first bad one is entries + 1)
    problem: str = ""
    entry_id: str = ""         # stream id of the first bad entry (or of the last good one)
    head: str = GENESIS        # hash of the last good entry
    head_id: str = ""          # its stream id
    legacy: int = 0            # entries written before audit keys (not authenticated by themselves)
    checkpoint: Checkpoint | None = None   # the checkpoint it was compared with


class AuditLog:
    def __init__(self, redis: aioredis.Redis, stream: str, *, config: AuditConfig | None = None,
                 index_by: str = "", index_prefix: str = "", index_from: str = "") -> None:
        """``index_by``: a record field (e.g. ``"id"``); every appended entry's
        stream id is then also pushed, in the same atomic step, to the list
        ``index_prefix + record[index_by]`` (records without it: not indexed),
        and ``index_from`` keeps the stream id of the first indexed entry.
        Nothing signed changes: the index is a lookup aid, the chain is the
        authority."""
        self.redis = redis
        self.stream = stream
        self.index_by = index_by
        self.index_prefix = index_prefix if index_by else ""
        self.index_from = index_from or f"{stream}:index-from"
        self.config = config or current()
        self._mac = _Mac(self.config.key, stream)
        # keys retired by `ivr audit key rotate`: each verifies entries 1..last_n of this log only
        self._retired = [(r.last_n(stream), _Mac(r.key, stream)) for r in self.config.retired if r.last_n(stream)]
        self.head_key = f"{stream}:head"
        self._script = redis.register_script(_APPEND)
        self._lock = asyncio.Lock()
        self._head: str | None = None

    def _args(self, records: Sequence[Record], also: dict[str, str], expect: dict[str, str] | None = None,
              ops: Sequence[tuple[str, ...]] = ()) -> list[str]:
        n, prev = _split(self._head or "")
        args: list[str] = [self._head or "", str(len(records)), self.index_prefix]
        by = self.index_by
        for rec in records:
            n += 1
            j = canonical(rec)
            h = self._mac(prev, n, j)
            idx = _index_value(rec.get(by)) if by else ""
            idx = self.index_prefix + idx if idx else ""
            args.append(f"{idx}\t{n}\t{prev}\t{h}\t{j}")
            prev = h
        args += [str(len(also)), *also.values()]
        args += [str(len(expect or ())), *(expect or {}).values()]
        args.append(str(len(ops)))
        for op in ops:
            args += [op[0], *op[2:]]
        return args

    async def append(self, records: Iterable[Record], *, also_set: dict[str, str] | None = None,
                     expect: dict[str, str] | None = None, ops: Sequence[tuple[str, ...]] = ()) -> str:
        """Append records in order (one atomic step); ``also_set`` keys are set
        (or deleted, for an empty value) in the same step, and ``ops`` run in it
        (``("HSET", key, field, value)``, ``("SADD", key, member)``, ``("SET",
        key, value)``). With ``expect`` (key -> value, '' for absent) nothing is
        written unless those keys still hold those values: ``StaleState``.
        Returns the new head."""
        records = list(records)
        also = also_set or {}
        for op in ops:
            if _OPS.get(op[0]) != len(op) - 2:
                raise ValueError(f"unsupported audit side operation {op!r}")
        keys = [self.stream, self.head_key, self.index_from, *also, *(expect or {}), *(op[1] for op in ops)]
        async with self._lock:
            for _ in range(50):
                if self._head is None:
                    self._head = text_or_none(await self.redis.get(self.head_key)) or ""
                ok, head = await self._script(keys=keys, args=self._args(records, also, expect, ops))
                self._head = head.decode() if isinstance(head, bytes) else head
                if ok == 1:
                    return self._head
                if ok == 2:
                    raise StaleState(f"audit log {self.stream}: the state changed; re-read and try again")
            raise AuditContended(f"audit log {self.stream}: could not append after 50 conflicting writers")

    async def queue_append(self, pipe: aioredis.client.Pipeline,
                           records: Sequence[Record]) -> Callable[[Any], Awaitable[None]]:
        """Put an append into ``pipe`` (sharing a round trip with other work).
        Returns a function to call with the pipeline's result for it; it retries
        with ``append`` if another writer got there first."""
        if self._head is None:
            self._head = text_or_none(await self.redis.get(self.head_key)) or ""
        await self._script(keys=[self.stream, self.head_key, self.index_from], args=self._args(records, {}), client=pipe)

        async def settle(result: Any) -> None:   # the script's reply in the pipeline's results
            ok, head = result
            self._head = head
            if ok != 1:
                await self.append(records)
        return settle

    async def entries(self, start: str = "-", end: str = "+", count: int | None = None,
                      reverse: bool = False) -> list[tuple[str, Entry]]:
        if reverse:
            rows = stream_entries(await self.redis.xrevrange(self.stream, end, start, count=count))
        else:
            rows = stream_entries(await self.redis.xrange(self.stream, start, end, count=count))
        return [(rid, json.loads(f["j"])) for rid, f in rows]

    async def entries_at(self, ids: list[str]) -> list[tuple[str, Entry]]:
        """The entries with these stream ids, in the order given (one round
        trip; ids no longer in the stream are skipped)."""
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for rid in ids:
            pipe.xrange(self.stream, rid, rid, count=1)
        return [(rid, json.loads(f["j"])) for rows in await pipe.execute() for rid, f in rows]

    async def verify(self, batch: int = 1000, checkpoint: Checkpoint | None | Literal[_Latest.LATEST] = _LATEST, *,
                     since: Checkpoint | None = None, accept_unkeyed: bool = False) -> VerifyResult:
        """Walk the chain and name the first entry that was changed, inserted or
        is missing. ``checkpoint`` (default: the latest on file) says how long
        the log was and what its head was at that time: fewer entries now, or
        a different entry at that position, is reported. ``since`` starts the
        walk at a checkpoint's entry instead of the beginning (the checkpointer
        uses it: only what was appended since is read). ``accept_unkeyed``
        accepts entries written before audit keys that no checkpoint covers yet
        (only to seal them with a first checkpoint)."""
        if checkpoint is _LATEST:
            checkpoint = latest_for(self.stream, self.config)
        # The head key is read before the walk: entries appended meanwhile (the
        # engine keeps writing) only make the chain longer than the head says.
        head = text_or_none(await self.redis.get(self.head_key)) or ""
        hn, hh = _split(head)
        w = _Walk(self._mac, checkpoint, accept_unkeyed, head_n=hn, retired=self._retired)
        start = "-"
        if since is not None and since.n > 0:
            rows = stream_entries(await self.redis.xrange(self.stream, since.entry_id, since.entry_id))
            if not rows or rows[0][1].get("h") != since.head or rows[0][1].get("n") != str(since.n):
                return w.result(False, f"检查点记录的第 {since.n} 条已不在或被改动 (entry {since.n}, recorded by "
                                       f"the checkpoint of {since.when}, is gone or changed)", since.entry_id)
            w.restart(since)
            start = "(" + since.entry_id
        while True:
            rows = stream_entries(await self.redis.xrange(self.stream, start, "+", count=batch))
            for rid, f in rows:
                bad = w.step(rid, f)
                if bad:
                    return w.result(False, bad, rid)
            if len(rows) < batch:
                break
            start = "(" + rows[-1][0]
            await between_pages()
        bad = w.against_checkpoint()
        if bad:
            return w.result(False, bad, w.last_id)
        last = w.expect_n - 1
        if not last and head:
            return w.result(False, f"日志为空, 但写过 {hn} 条 (the log is empty but {hn} entries were written)", "")
        if last < hn:
            return w.result(False, f"日志在第 {last} 条结束, 但记录写到第 {hn} 条: 最新的记录被删除 (the log ends at "
                                   f"entry {last} but {hn} entries were written: the newest entries were deleted)",
                            w.last_id)
        if hn and w.hash_at_head != hh:
            return w.result(False, f"头记录与第 {hn} 条不符 (the head key does not match entry {hn}: rewritten)",
                            w.last_id)
        return w.result(True, "", w.last_id)


class _Walk:
    """The state of one verification walk (sans I/O)."""

    def __init__(self, mac: _Mac, checkpoint: Checkpoint | None, accept_unkeyed: bool = False,
                 head_n: int = 0, retired: Sequence[tuple[int, _Mac]] = ()) -> None:
        self.mac = mac
        self.retired = retired
        self.checkpoint = checkpoint
        self.accept_unkeyed = accept_unkeyed
        self.head_n = head_n            # what the head key said before the walk
        self.hash_at_head: str | None = None
        self.prev, self.expect_n, self.last_id = GENESIS, 1, ""
        self.keyed_seen = False
        self.legacy = 0

    def restart(self, cp: Checkpoint) -> None:
        self.prev, self.expect_n, self.last_id, self.keyed_seen = cp.head, cp.n + 1, cp.entry_id, True
        if cp.n == self.head_n:
            self.hash_at_head = cp.head

    def step(self, rid: str, f: dict[str, str]) -> str:
        """'' if entry ``f`` continues the chain, else what is wrong with it."""
        try:
            n = int(f.get("n", -1))
        except ValueError:
            n = -1
        if n != self.expect_n:
            return (f"在应为第 {self.expect_n} 条的位置找到第 {n} 条 (entry {n} found where entry {self.expect_n} "
                    f"was expected: {n - self.expect_n} entr(ies) missing before it)")
        if f.get("prev") != self.prev:
            return f"第 {n} 条与前一条接不上 (entry {n} does not follow the entry before it)"
        j, h = f.get("j", ""), f.get("h", "")
        if f.get("k") == "1":
            ok = hmac.compare_digest(self.mac(self.prev, n, j), h or "") or any(
                n <= last and hmac.compare_digest(mac(self.prev, n, j), h or "") for last, mac in self.retired)
            self.keyed_seen = True
        else:
            # unkeyed entries: only the old start of a log, never after a keyed
            # one, and only where a checkpoint has sealed them
            sealed = self.accept_unkeyed or (self.checkpoint is not None and n <= self.checkpoint.unkeyed)
            if self.keyed_seen or not sealed:
                return (f"第 {n} 条没有密钥签名 (entry {n} is not authenticated: written without the audit key, "
                        "or before audit keys and not sealed by a checkpoint)")
            ok = chain_hash(self.prev, n, j) == h
            self.legacy += ok
        if not ok:
            return f"第 {n} 条在写入后被修改 (entry {n} was changed after it was written)"
        cp = self.checkpoint
        if cp is not None and n == cp.n and h != cp.head:
            return (f"第 {n} 条与 {cp.when} 的检查点不符 (entry {n} differs from the checkpoint of {cp.when}: "
                    "the log was rewritten)")
        if n == self.head_n:
            self.hash_at_head = h
        self.prev, self.expect_n, self.last_id = h, n + 1, rid
        return ""

    def against_checkpoint(self) -> str:
        cp, last = self.checkpoint, self.expect_n - 1
        if cp is None or last >= cp.n:
            return ""
        if last == 0:
            return (f"整个日志被删除: {cp.when} 的检查点记录了 {cp.n} 条 (the whole log was deleted: the checkpoint "
                    f"of {cp.when} recorded {cp.n} entries; entries 1-{cp.n} are missing)")
        return (f"日志在第 {last} 条结束, 但 {cp.when} 的检查点记录了 {cp.n} 条: 第 {last + 1}-{cp.n} 条被删除 "
                f"(the log ends at entry {last} but the checkpoint of {cp.when} recorded {cp.n}: "
                f"entries {last + 1}-{cp.n} are missing)")

    def result(self, ok: bool, problem: str, entry_id: str) -> VerifyResult:
        return VerifyResult(ok, self.expect_n - 1, problem, entry_id, self.prev, self.last_id, self.legacy,
                            self.checkpoint)


def _index_value(v: object) -> str:
    """The index key's suffix for a record field: '' (not indexed) unless a
    plain token (no tab, which would split the entry, nor anything odd)."""
    if v is None:
        return ""
    v = str(v)
    return v if v and len(v) <= 64 and "\t" not in v and v.isprintable() else ""


def _split(head: str) -> tuple[int, str]:
    if not head:
        return 0, GENESIS
    n, _, h = head.partition(":")
    return int(n), h
