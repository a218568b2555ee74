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

``current()`` is the process-wide configuration, read from the settings on
first use; ``configure`` sets it explicitly (tests, embedding).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ivr.errors import ConfigError

KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class AuditConfig:
    key: bytes = b""
    key_file: Path = Path()
    checkpoint_file: Path = Path()

    def __repr__(self) -> str:        # never print the key
        return f"AuditConfig(key_file={str(self.key_file)!r}, checkpoint_file={str(self.checkpoint_file)!r})"


_current: AuditConfig | None = None


def configure(key_file: Path, checkpoint_file: Path) -> AuditConfig:
    global _current
    _current = AuditConfig(load_or_create_key(Path(key_file)), Path(key_file), Path(checkpoint_file))
    return _current


def current() -> AuditConfig:
    if _current is None:
        from ivr.settings import load_settings
        s = load_settings()
        return configure(s.audit_key_file, s.audit_checkpoint_file)
    return _current


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
