"""One PBX host's sounds folder kept equal to the prompts in the shared store,
and its voice messages sent up: one pass of the sync role (``ivr prompts
sync``, or the engine on that host with IVR_SOUNDS_DIR).

A pass, under an exclusive lock on the folder (two syncs of one folder never
interleave):

1. leftovers of an interrupted pass (``.tmp-*`` files: a pass killed between
   writing and renaming) are removed; no prompt file is ever partly written,
   since each is written to a temporary file in its own folder and renamed
   (``ivr.prompts.audio.write_prompt``);
2. every prompt in force whose file is missing or differs (SHA-256) is
   written from its blob, checked against its hash first;
3. what the folder holds (the hashes) is reported for this PBX, replacing
   the previous report;
4. each finished voice message in the recordings folder (not written for
   ``settle_s``) that the store does not hold yet is uploaded.

Files the store does not name are left alone: the folder may hold the site's
own sounds. Every file operation runs in a thread: the engine runs passes on
its calls' event loop."""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis

from ivr import names
from ivr.errors import InvalidInput
from ivr.logs import Log
from ivr.prompts.audio import write_prompt
from ivr.prompts.messages import MESSAGE_KEEP_S, MessageStore
from ivr.prompts.store import PromptStore, check_pbx, sha256_of

LOCK_NAME = ".ivr-sync.lock"
TEMP_PREFIX = ".tmp-"
SETTLE_S = 5.0           # Asterisk writes a message as it records; untouched this long, it is finished


@dataclass(slots=True)
class SyncResult:
    pbx: str
    held: int = 0                                   # prompts in force the folder holds (by name)
    written: list[str] = field(default_factory=list)     # prompt names written this pass
    missing: list[str] = field(default_factory=list)     # prompts it could not write
    errors: list[str] = field(default_factory=list)
    messages_sent: list[str] = field(default_factory=list)
    leftovers_removed: int = 0
    skipped: bool = False                           # another pass held the folder's lock


@contextmanager
def _folder_lock(folder: Path) -> Iterator[bool]:
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)        # releases the lock


def remove_leftovers(folder: Path) -> int:
    """Temporary files of a pass that was killed between write and rename."""
    n = 0
    for p in folder.rglob(f"{TEMP_PREFIX}*"):
        if p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


class PromptSync:
    """The sync of one PBX host: its sounds folder and its recordings folder."""

    def __init__(self, redis: aioredis.Redis, *, pbx: str, sounds_dir: Path, messages_dir: Path | None,
                 log: Log, settle_s: float = SETTLE_S, clock: Callable[[], float] = time.time,
                 host: str | None = None, keep_s: float = MESSAGE_KEEP_S) -> None:
        self.pbx = check_pbx(pbx)
        self.prompts = PromptStore(redis)
        self.messages = MessageStore(redis, keep_s)
        self.sounds_dir = sounds_dir
        self.messages_dir = messages_dir
        self.log = log
        self.settle_s = settle_s
        self.clock = clock
        self.host = host or socket.gethostname()
        self._hashes: dict[Path, tuple[int, int, str]] = {}     # path -> (size, mtime_ns, sha256) seen
        self._sent: dict[str, tuple[int, int]] = {}              # message -> (size, mtime_ns) uploaded

    async def once(self) -> SyncResult:
        res = SyncResult(self.pbx)
        with _folder_lock(self.sounds_dir) as mine:
            if not mine:
                res.skipped = True
                self.log.warning("prompt_sync_busy", pbx=self.pbx, folder=str(self.sounds_dir))
                return res
            res.leftovers_removed = await asyncio.to_thread(remove_leftovers, self.sounds_dir)
            held = await self._prompts(res)
        if self.messages_dir is not None:
            await self._send_messages(res)
        await self.prompts.report(self.pbx, held, at=self.clock(), host=self.host, missing=res.missing,
                                  errors=res.errors, messages=len(self._sent))
        return res

    # -- prompts -------------------------------------------------------------------------

    def _local_sha(self, path: Path) -> str | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        seen = self._hashes.get(path)
        if seen and seen[:2] == (st.st_size, st.st_mtime_ns):
            return seen[2]
        sha = sha256_of(path.read_bytes())
        self._hashes[path] = (st.st_size, st.st_mtime_ns, sha)
        return sha

    async def _prompts(self, res: SyncResult) -> set[str]:
        held: set[str] = set()
        for name, sha in sorted((await self.prompts.current()).items()):
            if not names.PROMPT.ok(name):             # never a path outside the folder
                res.errors.append(f"invalid prompt name {name[:80]!r}")
                continue
            path = self.sounds_dir / f"{name}.wav"
            if await asyncio.to_thread(self._local_sha, path) == sha:
                held.add(sha)
                res.held += 1
                continue
            data = await self.prompts.blob(sha)
            if data is None or sha256_of(data) != sha:
                res.missing.append(name)
                res.errors.append(f"{name}: the store's audio {sha[:12]} is missing or damaged")
                continue
            try:
                await asyncio.to_thread(write_prompt, path, data)
            except OSError as exc:
                res.missing.append(name)
                res.errors.append(f"{name}: {exc.strerror or exc}")
                continue
            held.add(sha)
            res.held += 1
            res.written.append(name)
        if res.written or res.missing:
            self.log.info("prompts_synced", pbx=self.pbx, written=len(res.written), missing=res.missing)
        return held

    # -- voice messages ------------------------------------------------------------------

    def _finished_messages(self, now: float) -> list[tuple[str, Path, int, int]]:
        assert self.messages_dir is not None
        out: list[tuple[str, Path, int, int]] = []
        if not self.messages_dir.is_dir():
            return out
        for p in self.messages_dir.glob("msg-*.wav"):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            name = p.stem
            age = now - st.st_mtime
            if not names.MESSAGE.ok(name) or age < self.settle_s or age > self.messages.keep_s:
                continue
            if self._sent.get(name) != (st.st_size, st.st_mtime_ns):
                out.append((name, p, st.st_size, st.st_mtime_ns))
        return sorted(out)

    async def _send_messages(self, res: SyncResult) -> None:
        for name, path, size, mtime_ns in await asyncio.to_thread(self._finished_messages, self.clock()):
            try:
                audio = await asyncio.to_thread(path.read_bytes)
                if await self.messages.put(name, audio, pbx=self.pbx, at=mtime_ns / 1e9):
                    res.messages_sent.append(name)
            except InvalidInput as exc:       # too large: it will not shrink, said once
                res.errors.append(f"{name}: {exc}")
                self.log.error("voice_message_refused", pbx=self.pbx, message=name, error=str(exc))
            except OSError as exc:            # tried again next pass
                res.errors.append(f"{name}: {exc.strerror or exc}")
                self.log.warning("voice_message_not_sent", pbx=self.pbx, message=name, error=str(exc))
                continue
            self._sent[name] = (size, mtime_ns)
        if res.messages_sent:
            self.log.info("voice_messages_sent", pbx=self.pbx, count=len(res.messages_sent))
