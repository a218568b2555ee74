"""The HTTP API on a real Redis: authentication, roles, CSRF, API tokens, bad
input refused with clear errors and nothing stored, and each role's work."""

import io
import shutil
import subprocess
import sys

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ivr.accounts.store import Accounts
from ivr.redisdb import keys
from ivr.settings import load_settings
from ivr.web.app import make_app
from tests.conftest import copy_project

PASSWORD = "correct horse battery"


@pytest.fixture
def home(project_home, tmp_path):
    """A copy of the project: the API writes flows and prompts."""
    return copy_project(project_home, tmp_path / "home")


@pytest.fixture
async def web(redis, home, tmp_path):
    settings = load_settings({"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path)})
    accounts = Accounts(redis)
    for user, role in (("ops", "operations"), ("boss", "seat_manager"), ("audit", "auditor")):
        await accounts.add(user, role, PASSWORD)
    clients = []

    async def client(user=None):
        c = TestClient(TestServer(make_app(redis=redis, settings=settings)))
        await c.start_server()
        clients.append(c)
        csrf = None
        if user:
            r = await c.post("/api/login", json={"user": user, "password": PASSWORD})
            assert r.status == 200
            csrf = (await r.json())["csrf"]
        return c, csrf
    yield client
    for c in clients:
        await c.close()


async def test_health_openapi_and_metrics_need_no_sign_in(web):
    c, _ = await web()
    assert (await (await c.get("/healthz")).json())["redis"] is True
    doc = await (await c.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.") and "/api/contingency" in doc["paths"]
    assert doc["paths"]["/api/contingency"]["post"]["x-roles"] == ["seat_manager"]
    assert doc["paths"]["/api/flows/{name}/publish"]["post"]["requestBody"]["content"]["application/json"]
    text = await (await c.get("/metrics")).text()
    assert "ivr_contingency_level 0" in text and 'ivr_agi_command_seconds_bucket{le="+Inf"}' in text
    assert 'ivr_callback_backlog{state="ready"} 0' in text


async def test_sign_in(web):
    c, _ = await web()
    r = await c.post("/api/login", json={"user": "boss", "password": "wrong password!"})
    assert r.status == 401 and "wrong user name or password" in (await r.json())["error"]
    assert (await c.get("/api/me")).status == 401
    r = await c.post("/api/login", json={"user": "boss", "password": PASSWORD, "remember": True})
    assert r.status == 400 and (await r.json())["error"] == "unknown field(s): remember"
    c2, csrf = await web("boss")
    me = await (await c2.get("/api/me")).json()
    assert me["role"] == "seat_manager" and me["csrf"] == csrf
    assert (await c2.post("/api/logout", headers={"X-CSRF-Token": csrf})).status == 200
    assert (await c2.get("/api/me")).status == 401


@pytest.mark.parametrize("user, method, path, status", [
    ("ops", "GET", "/api/contingency", 403),
    ("ops", "GET", "/api/callbacks/report?from=2026-11-01&to=2026-11-30", 403),
    ("boss", "GET", "/api/flows", 403),
    ("boss", "GET", "/api/audit/verify", 403),
    ("audit", "POST", "/api/contingency", 403),
    ("audit", "GET", "/api/prompts", 403),
    ("ops", "GET", "/console/seats", 403),
    ("boss", "GET", "/console/audit", 403),
    ("audit", "GET", "/console/ops", 403),
    (None, "GET", "/api/status", 401),
    ("ops", "GET", "/api/flows", 200),
    ("boss", "GET", "/api/contingency", 200),
    ("audit", "GET", "/api/audit/verify", 200),
    ("audit", "GET", "/api/status", 200),
])
async def test_each_role_reaches_only_its_own_things(web, user, method, path, status):
    c, csrf = await web(user)
    r = await c.request(method, path, json={}, headers={"X-CSRF-Token": csrf or ""}, allow_redirects=False)
    assert r.status == status


async def test_console_pages_and_login_redirect(web):
    c, _ = await web()
    r = await c.get("/console/", allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == "/console/login"
    c, _ = await web("boss")
    r = await c.get("/console/", allow_redirects=False)
    assert r.headers["Location"] == "/console/seats"
    assert "实时看板" in await (await c.get("/console/seats")).text()


async def test_contingency_switch_needs_csrf_reason_and_confirmation(web, redis):
    c, csrf = await web("boss")
    body = {"level": 2, "reason": "供暖政策发布", "confirm": True}
    r = await c.post("/api/contingency", json=body)
    assert r.status == 403 and "X-CSRF-Token" in (await r.json())["error"]
    for bad, status, message in (({**body, "level": 9}, 422, "level must be a whole number from 0 to 3"),
                                 ({**body, "reason": " "}, 400, "a reason is required"),
                                 ({**body, "reason": "\u3000"}, 400, "a reason is required"),
                                 ({**body, "confirm": False}, 400, "confirm must be true"),
                                 ({**body, "confirm": 1}, 400, "confirm must be true"),
                                 ({**body, "colour": "red"}, 400, "unknown field(s): colour")):
        r = await c.post("/api/contingency", json=bad, headers={"X-CSRF-Token": csrf})
        assert r.status == status and message in (await r.json())["error"], bad
    r = await c.post("/api/contingency", data=b"{not json", headers={"X-CSRF-Token": csrf,
                                                                       "Content-Type": "application/json"})
    assert r.status == 400 and (await r.json())["error"].endswith("the body is not JSON")
    assert await redis.get(keys.CONTINGENCY_LEVEL) is None            # nothing stored so far
    r = await c.post("/api/contingency", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status == 200 and (await r.json())["state"]["level"] == 2
    assert await redis.get(keys.CONTINGENCY_LEVEL) == "2"
    hist = (await (await c.get("/api/contingency")).json())["history"]
    assert hist[0]["by"] == "web:boss" and hist[0]["reason"] == "供暖政策发布"


async def test_api_token_works_without_cookie_or_csrf(web, redis):
    token = await Accounts(redis).new_token("boss", "wallboard-script")
    c, _ = await web()
    r = await c.post("/api/contingency", json={"level": 1, "reason": "scripted", "confirm": True},
                     headers={"Authorization": f"Bearer {token}"})
    assert r.status == 200
    r = await c.get("/api/status", headers={"Authorization": "Bearer ivr_not-a-token"})
    assert r.status == 401


async def test_flow_with_an_error_is_not_published_then_fixed(web, redis, home):
    c, csrf = await web("ops")
    h = {"X-CSRF-Token": csrf}
    source = (home / "flows" / "main.yaml").read_text()
    bad = source.replace("timeout_s: 5", "timout: 5")
    r = await c.post("/api/flows/main/check", json={"source": bad}, headers=h)
    probs = (await r.json())["problems"]
    line = bad.splitlines().index("    timout: 5") + 1
    assert [(p["line"], p["col"]) for p in probs if not p["warning"]] == [(line, 5)]
    r = await c.post("/api/flows/main/publish", json={"source": bad, "note": "x"}, headers=h)
    assert r.status == 422 and (await r.json())["error"].startswith("the flow has errors")
    assert await redis.get(keys.flow_current("main")) is None and (home / "flows" / "main.yaml").read_text() == source
    fixed = source.replace("timeout_s: 5", "timeout_s: 4")
    r = await c.post("/api/flows/main/publish", json={"source": fixed, "note": "shorter menu wait"}, headers=h)
    assert r.status == 200 and (await r.json())["version"] == 1
    assert (home / "flows" / "main.yaml").read_text() == fixed
    hist = (await (await c.get("/api/flows/main/history")).json())["history"]
    assert hist[-1]["by"] == "web:ops" and "+    timeout_s: 4" in hist[-1]["diff"]


async def test_malformed_yaml_is_refused_with_its_position(web, redis):
    c, csrf = await web("ops")
    r = await c.post("/api/flows/main/publish", json={"source": "start: a\nsteps:\n  a: [unclosed\n"},
                     headers={"X-CSRF-Token": csrf})
    body = await r.json()
    assert r.status == 422 and body["problems"][0]["text"].startswith("flows/main.yaml:")
    assert "YAML" in body["problems"][0]["message"] or "yaml" in body["problems"][0]["message"].lower()
    assert await redis.get(keys.flow_current("main")) is None
    r = await c.put("/api/announcements", json={"yaml": "sets: [", "extra": 1}, headers={"X-CSRF-Token": csrf})
    assert r.status == 400 and (await r.json())["error"] == "unknown field(s): extra"


def _tone(fmt: str) -> bytes:
    from pydub.generators import Sine
    buf = io.BytesIO()
    Sine(440).to_audio_segment(duration=1500).set_frame_rate(44100).export(buf, format=fmt)
    return buf.getvalue()


def _form(name: str, filename: str, data: bytes):
    import aiohttp
    f = aiohttp.FormData()
    f.add_field("name", name)
    f.add_field("file", io.BytesIO(data), filename=filename)
    return f


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="MP3 needs ffmpeg (./run test installs it)")
async def test_mp3_upload_is_converted_for_asterisk(web, home):
    import wave
    c, csrf = await web("ops")
    r = await c.post("/api/prompts", data=_form("policy/heating", "heating.mp3", _tone("mp3")),
                     headers={"X-CSRF-Token": csrf})
    body = await r.json()
    assert r.status == 200, body
    assert 1.4 <= body["duration_s"] <= 1.6
    with wave.open(str(home / "prompts" / "policy" / "heating.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
    listed = {p["name"]: p for p in (await (await c.get("/api/prompts")).json())["prompts"]}
    assert listed["policy/heating"]["duration_s"] == pytest.approx(1.5, abs=0.1)
    assert (await c.get("/api/prompts/policy/heating.wav")).headers["Content-Type"] == "audio/wav"


async def test_bad_uploads_store_nothing(web, home):
    c, csrf = await web("ops")
    h = {"X-CSRF-Token": csrf}
    r = await c.post("/api/prompts", data=_form("notes", "notes.wav", b"this is not audio at all"), headers=h)
    assert r.status == 422 and "unsupported audio format" in (await r.json())["error"]
    r = await c.post("/api/prompts", data=_form("../../etc/x", "a.wav", _tone("wav")), headers=h)
    assert r.status == 400
    r = await c.post("/api/prompts", data=_form("huge", "huge.wav", b"\0" * (21 * 1024 * 1024)), headers=h)
    assert r.status == 413
    assert not (home / "prompts" / "notes.wav").exists() and not (home / "prompts" / "huge.wav").exists()


async def test_announcement_windows_are_validated_before_saving(web, home):
    c, csrf = await web("ops")
    h = {"X-CSRF-Token": csrf}
    before = (home / "prompts" / "announcements.yaml").read_text()
    bad = "sets:\n  peak:\n    - {prompt: policy/nope, valid_from: 2026-12-01, valid_until: 2026-11-01}\n"
    r = await c.put("/api/announcements", json={"yaml": bad}, headers=h)
    msgs = [p["message"] for p in (await r.json())["problems"]]
    assert r.status == 422 and any("has no audio file" in m for m in msgs) and any("ends before" in m for m in msgs)
    assert (home / "prompts" / "announcements.yaml").read_text() == before
    good = "sets:\n  peak:\n    - {prompt: policy/current, valid_from: 2026-11-01, valid_until: 2030-01-01}\n"
    r = await c.put("/api/announcements", json={"yaml": good}, headers=h)
    assert r.status == 200 and (home / "prompts" / "announcements.yaml").read_text() == good


async def test_auditor_report_csv_and_verification(web, redis):
    import time

    from ivr.callback.store import CallbackStore
    store = CallbackStore(redis)
    now = time.time()
    await store.record(store.record_args(number="13812345678", now=now, started=now - 60, kind="ordinary",
                                         reason="abandoned", flow="main", step="general_queue", wait_s=40.0,
                                         message="", not_before=now, deadlines={"emergency": 7200,
                                                                                "courtesy": 14400,
                                                                                "ordinary": 86400},
                                         misdial=False))
    await store.audit.append([{"kind": "recorded", "at": now, "id": "1", "number": "138******78",
                               "type": "ordinary", "reason": "abandoned", "calls": 1}])
    c, _ = await web("audit")
    import datetime as dt
    from zoneinfo import ZoneInfo
    day = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    r = await (await c.get(f"/api/callbacks/report?from={day}&to={day}")).json()
    assert r["callbacks"] == 1 and r["still_open"] == 1 and r["callbacks_list"][0]["number"] == "138******78"
    csv_resp = await c.get(f"/api/callbacks/report.csv?from={day}&to={day}")
    text = await csv_resp.text()
    assert "attachment" in csv_resp.headers["Content-Disposition"] and "138******78" in text
    assert "13812345678" not in text
    # for Excel: a byte-order mark, Chinese headers, the local time and labels, no epoch seconds
    assert text.startswith("\ufeff编号,号码（已脱敏）,类别")
    local = dt.datetime.fromtimestamp(now - 60, ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
    assert local in text and "普通" in text and str(int(now)) not in text
    # no period given: today in Beijing (the UTC day would open empty before 08:00)
    default = await (await c.get("/api/callbacks/report")).json()
    assert default["period"] == {"from": day, "to": day, "timezone": "Asia/Shanghai"} and default["callbacks"] == 1
    month = await (await c.get(f"/api/callbacks/report?month={day[:7]}")).json()
    assert month["period"]["from"] == day[:7] + "-01" and month["callbacks"] == 1
    assert "live_answer_rate_pct" in month["hotline"] and "broad_answer_rate_pct" in month["hotline"]
    # the list to pick a callback from, filtered by state and kind
    picked = await (await c.get(f"/api/callbacks?from={day}&to={day}&state=open&kind=ordinary")).json()
    assert [(x["id"], x["number"], x["state_label"]) for x in picked["callbacks"]] == [("1", "138******78", "待回拨")]
    assert (await (await c.get(f"/api/callbacks?from={day}&to={day}&state=closed")).json())["callbacks"] == []
    assert (await c.get("/api/callbacks/report?from=2026-13-01&to=x")).status == 400
    rec = await (await c.get("/api/callbacks/1")).json()
    assert rec["record"]["number"] == "138******78"
    assert [(e["label"], e["time"]) for e in rec["trail"]] == [
        ("已记录漏话", dt.datetime.fromtimestamp(now, ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S"))]
    assert rec["trail"][0]["detail"].startswith("普通 · 排队中挂断")
    heads = await (await c.get("/api/audit/checkpoint")).json()
    assert heads["signed"] is None and heads["heads"]["callbacks"]["entries"] == 1 and "CST" in heads["time"]
    from ivr.services.audit import Checkpointer
    await Checkpointer(redis, always=True).checkpoint()        # what `ivr audit checkpoint` writes
    signed = (await (await c.get("/api/audit/checkpoint")).json())["signed"]
    assert signed["logs"]["callbacks"]["entries"] == 1 and len(signed["logs"]["callbacks"]["mac"]) == 64
    assert "file" not in signed                     # the server's path means nothing on a printed report
    v = await (await c.get("/api/audit/verify")).json()
    assert v["console"]["ok"] and v["callbacks"]["ok"]
    board = await (await c.get("/api/status")).json()
    assert board["callbacks"]["open"] == 1 and 55 <= board["callback_oldest_age_s"] <= 120


def test_users_command(project_home, redis_url, tmp_path):
    import os
    env = {**os.environ, "IVR_HOME": str(project_home), "IVR_REDIS_URL": redis_url, "IVR_DATA_DIR": str(tmp_path),
           "IVR_NEW_PASSWORD": PASSWORD}
    run = lambda *a: subprocess.run([sys.executable, "-m", "ivr", "users", *a], env=env,  # noqa: E731
                                    capture_output=True, text=True, timeout=60)
    assert run("add", "wang", "--role", "auditor").returncode == 0
    dup = run("add", "wang", "--role", "auditor")
    assert dup.returncode == 1 and "exists already" in dup.stderr
    short = subprocess.run([sys.executable, "-m", "ivr", "users", "add", "li", "--role", "operations",
                            "--password-stdin"], input="short\n", env=env, capture_output=True, text=True)
    assert short.returncode == 1 and "at least 10 characters" in short.stderr
    assert "wang" in run("list").stdout and "审计员 auditor" in run("list").stdout
    assert run("token", "wang").stdout.startswith("ivr_")


async def test_the_callback_list_comes_a_page_at_a_time(web, redis):
    """Issue 18: every callback of the period on one page (13,663 px). Pages
    of 20 by default, at most 200, newest first; the guard refuses a page
    size or number the document does not allow."""
    import datetime as dt
    import time
    from zoneinfo import ZoneInfo

    from ivr.callback.store import CallbackStore
    store = CallbackStore(redis)
    beijing = ZoneInfo("Asia/Shanghai")
    midnight = dt.datetime.now(beijing).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    now = max(time.time(), midnight + 3600)
    for i in range(45):
        at = now - 3000 + i * 60
        await store.record(store.record_args(number=f"1381234{i:04d}", now=at, started=at - 60, kind="ordinary",
                                             reason="abandoned", flow="main", step="general_queue", wait_s=40.0,
                                             message="", not_before=at, deadlines={"emergency": 7200,
                                                                                   "courtesy": 14400,
                                                                                   "ordinary": 86400},
                                             misdial=False))
    c, _ = await web("audit")
    day = dt.datetime.fromtimestamp(now, beijing).date().isoformat()
    first = await (await c.get(f"/api/callbacks?from={day}&to={day}")).json()
    assert (first["total"], first["page"], first["per_page"], first["pages"]) == (45, 1, 20, 3)
    assert [x["id"] for x in first["callbacks"]] == [str(n) for n in range(45, 25, -1)]
    last = await (await c.get(f"/api/callbacks?from={day}&to={day}&page=3")).json()
    assert [x["id"] for x in last["callbacks"]] == ["5", "4", "3", "2", "1"]
    beyond = await (await c.get(f"/api/callbacks?from={day}&to={day}&page=4")).json()
    assert beyond["callbacks"] == [] and beyond["total"] == 45
    big = await (await c.get(f"/api/callbacks?from={day}&to={day}&per_page=50&state=open&kind=ordinary")).json()
    assert (len(big["callbacks"]), big["pages"]) == (45, 1)
    for bad in ("page=0", "page=-1", "page=x", "per_page=1000", "per_page=7"):
        r = await c.get(f"/api/callbacks?from={day}&to={day}&{bad}")
        assert r.status == 400, bad
        assert (await r.json())["error"][0] >= "\u4e00", bad          # told in Chinese first
