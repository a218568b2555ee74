"""The audit key and the checkpoint file: the two things that keep the audit
trail honest, and that live OUTSIDE Redis on purpose (docs/security.md).

- The key (``IVR_AUDIT_KEY_FILE``, default ``IVR_DATA_DIR/audit.key``): 32
  random bytes, hex, created 0600 on first use. Every audit entry carries an
  HMAC-SHA256 under it, so whoever can write Redis but not read this file can
  delete entries but cannot write or rewrite one that verifies. Every engine
  process, the console and the CLI that share a Redis must use the same key
  file (copy it to each host; back it up: without it nothing verifies).
- The checkpoint file (``IVR_AUDIT_CHECKPOINT_FILE``, default
  ``IVR_DATA_DIR/audit-checkpoints.jsonl``): see ``ivr.audit.checkpoints``.
- The retired keys (``<key file>.retired``, 0600, written only by ``ivr audit
  key rotate``): one JSON line per key the logs were written with before,
  with how far each log was signed with it (``until``: the entry number of the
  rotation record, signed by that key). An entry verifies under a retired key
  only up to that number, so a retired key that leaks cannot add entries after
  the rotation. Every host that verifies (the leader checkpoints) needs the
  file too.

``current()`` is the process-wide configuration, read from the settings on
first use; ``configure`` sets it explicitly (tests, embedding).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from ivr.errors import ConfigError

KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class RetiredKey:
    """A key the logs were signed with before a rotation, and how far."""

    key: bytes = field(repr=False)
    retired_at: float
    until: tuple[tuple[str, int], ...]     # (stream, last entry number signed with it)

    def last_n(self, stream: str) -> int:
        """Entries 1..this of ``stream`` may be signed with this key (0: none)."""
        return next((n for s, n in self.until if s == stream), 0)


@dataclass(frozen=True, slots=True)
class AuditConfig:
    key: bytes = b""
    key_file: Path = Path()
    checkpoint_file: Path = Path()
    retired: tuple[RetiredKey, ...] = ()

    def __repr__(self) -> str:        # never print the key
        return f"AuditConfig(key_file={str(self.key_file)!r}, checkpoint_file={str(self.checkpoint_file)!r})"


_current: AuditConfig | None = None


def configure(key_file: Path, checkpoint_file: Path) -> AuditConfig:
    global _current
    key_file = Path(key_file)
    _current = AuditConfig(load_or_create_key(key_file), key_file, Path(checkpoint_file),
                           load_retired(retired_file(key_file)))
    return _current


def retired_file(key_file: Path) -> Path:
    return key_file.with_name(key_file.name + ".retired")


def _private_text(path: Path, what: str) -> str:
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: 无法读取{what} (cannot read it): {exc}") from exc
    if st.st_mode & 0o077:
        raise ConfigError(f"{path}: {what}文件其他用户可读 (readable by others): chmod 600 {path}")
    return text


def load_retired(path: Path) -> tuple[RetiredKey, ...]:
    """The retired keys in ``path`` (none when there is no such file)."""
    if not path.exists():
        return ()
    out = []
    for i, line in enumerate(_private_text(path, "停用的审计密钥").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            out.append(RetiredKey(bytes.fromhex(d["key"]), float(d["retired_at"]),
                                  tuple(sorted((str(s), int(n)) for s, n in d["until"].items()))))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path}:{i}: 不是停用密钥记录 (not a retired key line): {exc}") from exc
    return tuple(out)


def append_retired(path: Path, retired: RetiredKey) -> None:
    """One more line in the retired keys' file (created 0600), synced to disk."""
    private_dir(path.parent)
    line = json.dumps({"key": retired.key.hex(), "retired_at": retired.retired_at, "until": dict(retired.until)},
                      sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def write_key(path: Path, key: bytes) -> None:
    """``key`` into ``path`` (0600), replacing what is there in one rename."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def current() -> AuditConfig:
    if _current is None:
        from ivr.settings import load_settings
        s = load_settings()
        return configure(s.audit_key_file, s.audit_checkpoint_file)
    return _current


def retired_for(key: bytes) -> tuple[RetiredKey, ...]:
    """The retired keys that go with ``key`` in this process's configuration."""
    c = _current
    return c.retired if c is not None and c.key == key else ()


def private_dir(path: Path) -> None:
    """Create ``path`` (and parents) for files only this user may read: 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def load_or_create_key(path: Path) -> bytes:
    """The key in ``path``; a new random one, written 0600, if there is none.
    Refuses a key file that others may read or that does not hold a key."""
    if not path.exists():
        private_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(KEY_BYTES) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)        # atomic, and never replaces a key another process just made
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    try:
        st = path.stat()
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: 无法读取审计密钥 (cannot read the audit key): {exc}") from exc
    if st.st_mode & 0o077:
        raise ConfigError(f"{path}: 审计密钥文件其他用户可读 (the audit key file is readable by others): "
                          f"chmod 600 {path}")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise ConfigError(f"{path}: 不是审计密钥 (not an audit key: expected at least 32 hex digits)")
    return key
