"""The API contract, checked by a fuzzer nobody here wrote: schemathesis,
driven by the console's own /api/openapi.json, against a live console (the
real app on a TCP port, a real Redis, a copy of the project), once for each
role and once each with no and with bad credentials.

For every request: no 5xx; the status, media type and body are ones the
document lists; a request the document calls valid is never refused with 400
(422 only where the document says so: content no schema can state); and a
refused change changes nothing — the project's files and every Redis key are
compared before and after (a refused sign-in may count the failure, nothing
else).

Accepted changes stay: later requests meet the project as the earlier ones
left it, so a change that breaks another page (emptying the announcement sets
the contingency plan names made every contingency page a 500: issue 21) is
found too. The run is bounded (``MAX_EXAMPLES`` random examples per operation,
fewer for the routes that start a process, besides the document's examples and
schemathesis's boundary cases) and seeded: about 8,000 requests, two minutes on
two cores. IVR_FUZZ_SEED=N runs another seed, IVR_FUZZ_EXAMPLES=N more examples.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
import redis as sync_redis
import requests
import schemathesis
from aiohttp import web

from ivr.accounts.store import Accounts
from ivr.prompts import audio
from ivr.redisdb import keys
from ivr.redisdb.server import connect
from ivr.settings import load_settings
from ivr.web import login_limit, offload, openapi
from ivr.web.app import make_app, routes
from ivr.web.context import COOKIE, CSRF_HEADER
from tests.conftest import PROJECT_FOLDERS, _dbs, copy_project

PASSWORD = "correct horse battery"
MAX_EXAMPLES = int(os.environ.get("IVR_FUZZ_EXAMPLES", "6"))   # per operation and principal, random ones
SEED = int(os.environ.get("IVR_FUZZ_SEED", "12345"))
# who asks: each role (signed in with a session and its CSRF header, or with an API token), nobody, and
# credentials the server does not know
PRINCIPALS = {"operations": "session", "seat_manager": "token", "auditor": "session", "admin": "session",
              "nobody": None, "bad_token": None, "bad_session": None}
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# the routes that start a process (ffmpeg, espeak-ng) or read every callback of a period: fewer examples
SLOW = [("POST", "/api/prompts"), ("POST", "/api/prompts/draft"), ("GET", "/api/callbacks/report"),
        ("GET", "/api/callbacks/report.csv"), ("GET", "/api/callbacks"), ("GET", "/api/audit/verify")]
CONFIG = {
    "seed": SEED,
    "request-timeout": 60,
    "max-stream-events": 1,                      # /api/events never ends: its first event is enough
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none", "no-shrink": True,
                   "with-security-parameters": False},
    # a request the document calls valid may be refused only for a documented reason, never with 400;
    # 413: a body over the size limit (2 MB of JSON: 262,144 characters escaped as surrogate pairs)
    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "3xx", "401", "403", "404", "409",
                                                                  "413", "422", "429"]},
               "negative_data_rejection": {"expected-statuses": ["400", "401", "403", "404", "405", "409",
                                                                 "413", "415", "422", "429"]}},
    "phases": {"stateful": {"enabled": False}},
    "operations": [{"include-name": f"{m} {p}", "generation": {"max-examples": 2}} for m, p in SLOW],
}

_totals = {"requests": 0, "seconds": 0.0, "principals": 0}


@dataclass
class Who:
    name: str
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    user: str = ""
    role: str = ""


class LiveConsole:
    """The console app served on 127.0.0.1 from an event loop of its own (the
    fuzzer's requests are blocking calls made from the test's thread)."""

    def __init__(self, redis_url: str, home: Path, data_dir: Path) -> None:
        self.redis_url, self.home, self.data_dir = redis_url, home, data_dir
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-console", daemon=True)
        self.requests = 0
        self.url = ""

    def run(self, coro, timeout_s: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def start(self) -> None:
        self.thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        self.redis = connect(self.redis_url)
        self.accounts = Accounts(self.redis)
        app = make_app(redis=self.redis, settings=load_settings({"IVR_HOME": str(self.home),
                                                                 "IVR_DATA_DIR": str(self.data_dir)}))

        async def count(request: web.Request, response: web.StreamResponse) -> None:
            self.requests += 1
        app.on_response_prepare.append(count)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    def stop(self) -> None:
        async def _stop() -> None:
            await self.runner.cleanup()
            await self.redis.aclose()
        self.run(_stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _files(home: Path) -> dict[str, tuple[int, int, int]]:
    """Each file's size, inode and modification time: the server writes by
    replacing a file, so any write shows (hashing 5 MB of prompts twice a
    request cost more than the requests)."""
    return {str(p.relative_to(home)): (st.st_size, st.st_ino, st.st_mtime_ns)
            for p in sorted(home.rglob("*")) if p.is_file() and (st := p.stat())}


def _project_files(home: Path) -> dict[str, str]:
    """The shipped project's files by content, before and after the whole run."""
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for d in PROJECT_FOLDERS for p in sorted((home / d).rglob("*")) if p.is_file()}


def _value(r: sync_redis.Redis, key: bytes) -> object:
    """A key's contents (not DUMP's bytes: Redis rehashes a large hash while it is
    read, and DUMP follows the table's order)."""
    kind = r.type(key)
    read = {b"string": r.get, b"hash": r.hgetall, b"set": r.smembers, b"list": lambda k: r.lrange(k, 0, -1),
            b"zset": lambda k: r.zrange(k, 0, -1, withscores=True), b"stream": r.xrange}
    return (kind, read[kind](key)) if kind in read else (kind, None)


@dataclass
class State:
    """Everything a request could change: the project's files and every Redis key."""
    files: dict[str, tuple[int, int, int]]
    redis: dict[str, object]
    console_audit: list[tuple[bytes, dict]]


class Contract:
    def __init__(self, live: LiveConsole, who: Who) -> None:
        self.live, self.who = live, who
        self.redis = sync_redis.Redis.from_url(live.redis_url)

    def state(self) -> State:
        values = {}
        for k in sorted(self.redis.scan_iter(count=1000)):
            name = k.decode()
            # a session's idle expiry moves on every use; a sign-in block expires by itself (and
            # only sign-ins count failures: ``changed`` checks their audit entries)
            if not name.startswith((keys.SESSION_PREFIX, keys.LOGIN_LIMIT_PREFIX)):
                values[name] = _value(self.redis, k)
        audit = [(i, f) for i, f in self.redis.xrange(keys.CONSOLE_AUDIT)]
        return State(_files(self.live.home), values, audit)

    def changed(self, before: State, after: State, *, sign_in: bool) -> list[str]:
        """What a refused request changed: nothing, or for a refused sign-in only
        a "sign-in blocked" audit entry (its failure counters are not compared)."""
        out = [f"file {f}" for f in sorted(set(before.files) | set(after.files))
               if before.files.get(f) != after.files.get(f)]
        allowed = {keys.CONSOLE_AUDIT, keys.CONSOLE_AUDIT + ":head"} if sign_in else set()
        out += [f"redis {k}" for k in sorted(set(before.redis) | set(after.redis))
                if before.redis.get(k) != after.redis.get(k) and k not in allowed]
        for _, entry in after.console_audit[len(before.console_audit):]:
            if not sign_in or b"sign_in_blocked" not in b"".join(entry.values()):
                out.append(f"console audit entry {entry}")
        return out

    def reopen_session(self) -> None:
        """After an accepted sign-out: the principal signs in again."""
        token, csrf = self.live.run(self.live.accounts.open_session(self.who.user, self.who.role))
        self.who.cookies[COOKIE], self.who.headers[CSRF_HEADER] = token, csrf


def _sign_in(live: LiveConsole, name: str) -> Who:
    how = PRINCIPALS[name]
    if name == "bad_token":
        return Who(name, headers={"Authorization": f"Bearer ivr_{secrets.token_urlsafe(32)}"})
    if name == "bad_session":
        return Who(name, headers={CSRF_HEADER: secrets.token_urlsafe(24)},
                   cookies={COOKIE: secrets.token_urlsafe(32)})
    if how is None:
        return Who(name)
    user = name.replace("_", "-")
    live.run(live.accounts.add(user, name, PASSWORD))
    if how == "token":
        token = live.run(live.accounts.new_token(user, "api-contract"))
        return Who(name, headers={"Authorization": f"Bearer {token}"}, user=user, role=name)
    r = requests.post(f"{live.url}/api/login", json={"user": user, "password": PASSWORD}, timeout=60)
    assert r.status_code == 200, r.text
    return Who(name, headers={CSRF_HEADER: r.json()["csrf"]}, cookies={COOKIE: r.cookies[COOKIE]}, user=user,
               role=name)


async def _offload_in_process(request: dict, timeout_s: float) -> bytes:
    return await asyncio.wait_for(offload._child_main(orjson.loads(orjson.dumps(request))), timeout_s)


@pytest.fixture(scope="module", autouse=True)
def report_totals(request, project_home):
    """The run's size in the test command's output; the project itself untouched
    (every console ran on a copy)."""
    shipped = _project_files(project_home)
    yield
    assert _project_files(project_home) == shipped
    if _totals["principals"]:
        with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
            request.config.pluginmanager.get_plugin("terminalreporter").write_line(
                f"\napi contract: {_totals['requests']} requests in {_totals['seconds']:.0f} s, "
                f"{_totals['principals']} principals, seed {SEED}")


@pytest.fixture(scope="module", params=list(PRINCIPALS))
def contract(request, redis_server, tmp_path_factory, project_home):
    """One live console per principal, for every operation (pytest groups the
    tests by this fixture's parameter)."""
    tmp = tmp_path_factory.mktemp(f"contract-{request.param}")
    redis_url = f"{redis_server.url}?db={next(_dbs) % 16}"
    sync_redis.Redis.from_url(redis_url).flushdb()
    live = LiveConsole(redis_url, copy_project(project_home, tmp / "home"), tmp)
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as mp:
        # a blocked sign-in is held up to a second before its 429: the same answer, without the wait
        mp.setattr(login_limit, "TARPIT_MAX_S", 0.001)
        # the audio converter runs at SCHED_IDLE, which a busy test machine starves (a second a
        # request); the answers do not depend on the priority
        mp.setattr(audio, "low_priority", list)
        # the auditors' views are built by the worker's own code, here in the console's process: a
        # Python process started for each of a hundred requests cost more than the rest of the run
        # (the worker as a process: tests/test_console_security.py)
        mp.setattr(offload, "_run_child", _offload_in_process)
        live.start()
        try:
            yield Contract(live, _sign_in(live, request.param))
        finally:
            _totals["requests"] += live.requests
            _totals["seconds"] += time.monotonic() - started
            _totals["principals"] += 1
            live.stop()


# the document the console serves, built from the same route table (test_openapi.py checks they are equal)
schema = schemathesis.openapi.from_dict(openapi.document(routes()), config=schemathesis.Config.from_dict(CONFIG))


@pytest.mark.slow
@schema.parametrize()
def test_every_route_keeps_the_documented_contract(case, contract):
    who = contract.who
    headers, cookies = dict(who.headers), dict(who.cookies)
    write = case.method.upper() in WRITES
    before = contract.state() if write else None
    response = case.call(base_url=contract.live.url, headers=headers, cookies=cookies)
    try:
        case.validate_response(response, headers=headers,
                               transport_kwargs={"base_url": contract.live.url, "headers": headers,
                                                 "cookies": cookies})
    finally:
        if before is not None and response.status_code >= 400:
            changed = contract.changed(before, contract.state(), sign_in=case.path == "/api/login")
            assert not changed, (f"{case.method} {case.formatted_path} {case.query or ''} {case.body!r:.300} answered "
                                 f"{response.status_code} {response.text[:300]} but changed {changed}")
        if write and response.status_code < 300 and case.path == "/api/logout" and COOKIE in who.cookies:
            contract.reopen_session()
