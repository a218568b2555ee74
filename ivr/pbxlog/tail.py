"""Reading Asterisk's ``queue_log`` on the PBX's host, from a kept position.

The position is (inode, offset): where the last complete line read ended, in
which file. Each read takes at most ``max_bytes`` and only whole lines (a line
Asterisk is still writing waits for the next read). Blocking file I/O: the
leader runs ``read`` in a worker thread (``asyncio.to_thread``), never on the
event loop.

- Rotation (Asterisk's ``logger rotate``, or logrotate renaming the file): the
  path names a new inode. The rest of the old file is read first, found by its
  inode among the files beside it whose names start with the log's name
  (``queue_log.0``, ``queue_log.1``, ``queue_log.<epoch>``, ``queue_log-20261206``);
  then the new file from its start. A rotated file that was compressed or
  removed before its rest was read is reported (``rotated_unseen``), not
  guessed at.
- Truncation (``copytruncate``, or someone emptying it): the same inode,
  shorter than the offset: read again from its start.
- No file yet (Asterisk not started, queue_log off): nothing, the position
  kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 1 << 20          # per read: about 10,000 lines


@dataclass(frozen=True, slots=True)
class Position:
    inode: int = 0           # 0: never read
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Chunk:
    lines: list[str]
    position: Position       # after these lines
    note: str = ""           # "rotated" | "rotated_unseen" | "truncated" | "started" | "missing" | ""
    more: bool = False       # more whole lines are waiting: read again at once


def _open_at(path: Path, offset: int, max_bytes: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(max_bytes)


def _rotated(path: Path, inode: int) -> Path | None:
    """The file beside ``path`` that is the inode read before (renamed away)."""
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return None
    for e in entries:
        if e.name != path.name and e.name.startswith(path.name):
            try:
                if e.inode() == inode and e.is_file(follow_symlinks=False):
                    return Path(e.path)
            except OSError:
                continue
    return None


def _whole_lines(data: bytes, max_bytes: int) -> tuple[list[str], int]:
    """The complete lines of ``data`` and how many bytes they take. A chunk
    of ``max_bytes`` with no newline at all (not a queue_log line) is skipped
    whole, so a garbled file cannot stop the reader."""
    end = data.rfind(b"\n")
    if end < 0:
        return ([], len(data)) if len(data) >= max_bytes else ([], 0)
    text = data[:end].decode("utf-8", errors="replace")
    return text.split("\n"), end + 1


def read(path: Path, pos: Position, max_bytes: int = MAX_BYTES) -> Chunk:
    """The next whole lines after ``pos`` (blocking; run it in a thread)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return Chunk([], pos, "missing")
    note = ""
    source, offset = path, pos.offset
    if pos.inode == 0:
        note, offset = "started", 0
    elif st.st_ino != pos.inode:
        old = _rotated(path, pos.inode)
        if old is not None and old.stat().st_size > pos.offset:
            data = _open_at(old, pos.offset, max_bytes)
            lines, used = _whole_lines(data, max_bytes)
            if used:
                return Chunk(lines, Position(pos.inode, pos.offset + used), "rotated", more=True)
            # only a partial last line is left there: Asterisk will not finish it
        note = "rotated" if old is not None else "rotated_unseen"
        offset = 0
    elif st.st_size < pos.offset:
        note, offset = "truncated", 0
    if st.st_size <= offset:
        return Chunk([], Position(st.st_ino, offset), note)
    data = _open_at(source, offset, max_bytes)
    lines, used = _whole_lines(data, max_bytes)
    return Chunk(lines, Position(st.st_ino, offset + used), note, more=offset + used < st.st_size and used > 0)
