"""Hostile input to the console never reaches the server's files, the call
path's event loop or a 500 with a traceback: uploads identified by content and
decoded in a limited child process, draft text never an espeak-ng option,
login rate limits with an audited lockout, hashed session keys, the wallboard
stream closed at sign-out, JSON-only bodies, security headers everywhere."""

import asyncio
import hashlib
import io
import os
import resource
import shutil
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest

from ivr.accounts.store import Accounts
from ivr.audit.chain import AuditLog
from ivr.redisdb import keys
from tests.conftest import LoopGaps
from tests.test_console_browser import browser, site  # noqa: F401  (fixtures)
from tests.test_web_api import PASSWORD, _form, home, web  # noqa: F401  (fixtures)

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (./run test installs it)")


def _ffmpeg(tmp_path: Path, name: str, *args: str) -> bytes:
    """An audio file made by ffmpeg from a generated source (lavfi)."""
    out = tmp_path / name
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", *args, str(out)], check=True, timeout=120)
    return out.read_bytes()


def _wav(seconds: float, rate: int = 8000, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = int(seconds * rate)
        w.writeframes((b"\x10\x20" * channels) * frames)
    return buf.getvalue()


def _tmp_files(home: Path) -> list[Path]:
    return [p for p in (home / "prompts").rglob("*") if p.name.startswith(".tmp")]


# -- 1. operations staff cannot read the server's files -------------------------------------

async def test_draft_text_starting_with_a_dash_is_spoken_not_taken_as_an_option(web, home, tmp_path, monkeypatch):
    """A fake espeak-ng records how it was called: the text must come on stdin,
    never among the arguments (``-f/path`` used to speak the file)."""
    log = tmp_path / "espeak.log"
    fake = tmp_path / "bin" / "espeak-ng"
    fake.parent.mkdir()
    fake.write_text(f"""#!{sys.executable}
import json, sys, wave
args = sys.argv[1:]
stdin = sys.stdin.read() if "--stdin" in args else ""
open({str(log)!r}, "w").write(json.dumps({{"args": args, "stdin": stdin}}))
with wave.open(args[args.index("-w") + 1], "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(22050); w.writeframes(b"\\x10\\x00" * 22050)
""")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    secret = tmp_path / "secret.txt"
    secret.write_text("a citizen's private matter")
    c, csrf = await web("ops")
    text = f"-f{secret}"
    r = await c.post("/api/prompts/draft", json={"name": "draft/x", "text": text}, headers={"X-CSRF-Token": csrf})
    assert r.status == 200, await r.text()
    import json
    called = json.loads(log.read_text())
    assert not any(text in a or str(secret) in a for a in called["args"])
    assert "--stdin" in called["args"] and called["stdin"] == text
    assert (home / "prompts" / "draft" / "x.wav").stat().st_mode & 0o777 == 0o644


@needs_ffmpeg
async def test_a_concat_recording_cannot_copy_another_file_into_a_prompt(web, home, tmp_path):
    voice_message = tmp_path / "message-13812345678.wav"
    voice_message.write_bytes(_wav(2.0))
    concat = f"ffconcat version 1.0\nfile '{voice_message}'\n".encode()
    c, csrf = await web("ops")
    for filename in ("stolen.concat", "stolen.wav", "stolen.mp3"):
        r = await c.post("/api/prompts", data=_form("stolen", filename, concat), headers={"X-CSRF-Token": csrf})
        body = await r.json()
        assert r.status == 422 and "不支持" in body["error"], body
    assert not (home / "prompts" / "stolen.wav").exists() and not _tmp_files(home)


# -- 2. audio is untrusted ----------------------------------------------------------------

@needs_ffmpeg
async def test_uploads_are_identified_by_content_not_by_name(web, home, tmp_path):
    c, csrf = await web("ops")
    mp3 = _ffmpeg(tmp_path, "tone.mp3", "-i", "sine=frequency=440:duration=1.5", "-ar", "44100")
    r = await c.post("/api/prompts", data=_form("policy/a", "recording.wav", mp3), headers={"X-CSRF-Token": csrf})
    assert r.status == 200, await r.text()
    path = home / "prompts" / "policy" / "a.wav"
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert 1.4 <= w.getnframes() / 8000 <= 1.6
    assert path.stat().st_mode & 0o777 == 0o644          # Asterisk runs as another user
    for name, args in (("o.ogg", ("-i", "sine=duration=1", "-c:a", "libopus")),
                       ("a.m4a", ("-i", "sine=duration=1", "-c:a", "aac")),
                       ("a.aac", ("-i", "sine=duration=1", "-c:a", "aac", "-f", "adts")),
                       ("a.amr", ("-i", "sine=duration=1", "-ar", "8000", "-ac", "1", "-c:a", "libopencore_amrnb",
                                  "-b:a", "12.2k"))):
        try:
            data = _ffmpeg(tmp_path, name, *args)
        except subprocess.CalledProcessError:
            continue                     # this ffmpeg build lacks the encoder
        r = await c.post("/api/prompts", data=_form("policy/b", "upload.bin", data), headers={"X-CSRF-Token": csrf})
        assert r.status == 200, (name, await r.text())


@needs_ffmpeg
async def test_flac_and_absurd_audio_are_refused_in_the_child_not_the_engine(web, home, tmp_path):
    c, csrf = await web("ops")
    h = {"X-CSRF-Token": csrf}
    flac = _ffmpeg(tmp_path, "bomb.flac", "-i", "anullsrc=r=192000:cl=7.1", "-t", "1")
    r = await c.post("/api/prompts", data=_form("bomb", "bomb.wav", flac), headers=h)
    body = await r.json()
    assert r.status == 422 and body["error"].startswith("不支持") and "FLAC" in body["error"], body
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    wide = _wav(0.3, rate=192000, channels=8)
    r = await c.post("/api/prompts", data=_form("wide", "wide.wav", wide), headers=h)
    body = await r.json()
    assert r.status == 422 and ("声道" in body["error"] or "采样率" in body["error"]), body
    long = _ffmpeg(tmp_path, "long.ogg", "-i", "anullsrc=r=48000:cl=mono", "-t", "660", "-c:a", "libopus",
                   "-b:a", "6k")
    r = await c.post("/api/prompts", data=_form("long", "long.ogg", long), headers=h)
    body = await r.json()
    assert r.status == 422 and "10" in body["error"] and "分钟" in body["error"], body
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_kb) / 1024
    assert grown_mb < 60, f"the engine's peak memory grew by {grown_mb:.0f} MB"
    assert not any((home / "prompts" / f"{n}.wav").exists() for n in ("bomb", "wide", "long"))
    assert not _tmp_files(home)


@needs_ffmpeg
def test_the_decoder_child_is_killed_at_its_wall_timeout(tmp_path):
    from ivr.errors import AudioRefused
    from ivr.prompts.audio import convert

    data = _ffmpeg(tmp_path, "t.mp3", "-i", "sine=duration=5")
    with pytest.raises(AudioRefused) as exc:
        convert(data, wall_timeout_s=0.001)
    assert "超时" in str(exc.value)


# -- 3. the console cannot slow calls ---------------------------------------------------------

async def test_password_hashing_does_not_block_the_event_loop(web):
    c, _ = await web()
    one = time.perf_counter()
    hashlib.scrypt(b"x" * 12, salt=b"s" * 16, n=2 ** 14, r=8, p=1, dklen=32)
    one = time.perf_counter() - one
    async with LoopGaps() as loop:
        await asyncio.gather(*(c.post("/api/login", json={"user": f"u{i}", "password": "wrong password"})
                               for i in range(4)))
    gap = max(loop.seen)
    assert gap < max(one * 0.8, 0.025), f"loop stalled {gap * 1000:.0f} ms (one hash {one * 1000:.0f} ms)"


async def test_login_is_rate_limited_per_account_with_an_audited_lockout(web, redis):
    c, _ = await web()
    statuses = []
    for _ in range(8):
        r = await c.post("/api/login", json={"user": "boss", "password": "wrong password!"})
        statuses.append(r.status)
    assert statuses[:5] == [401] * 5 and 429 in statuses
    r = await c.post("/api/login", json={"user": "boss", "password": PASSWORD})
    body = await r.json()
    assert r.status == 429 and int(r.headers["Retry-After"]) >= 1 and body["error"].startswith("登录尝试过多")
    entries = [e for _, e in await AuditLog(redis, keys.CONSOLE_AUDIT).entries()]
    locks = [e for e in entries if e["kind"] == "sign_in_blocked"]
    assert locks and locks[0]["user"] == "boss" and locks[0]["scope"] == "account"
    # another account from the same address is not locked out by it
    r = await c.post("/api/login", json={"user": "ops", "password": PASSWORD})
    assert r.status == 200


async def test_login_is_rate_limited_per_client_address(web, redis):
    c, _ = await web()
    statuses = []
    for i in range(25):
        r = await c.post("/api/login", json={"user": f"guess{i}", "password": "wrong password!"})
        statuses.append(r.status)
    assert statuses[0] == 401 and statuses[-1] == 429
    entries = [e for _, e in await AuditLog(redis, keys.CONSOLE_AUDIT).entries()]
    assert any(e["kind"] == "sign_in_blocked" and e["scope"] == "address" for e in entries)


# -- 4. sessions ---------------------------------------------------------------------------

async def test_session_tokens_are_stored_hashed(web, redis):
    c, _ = await web("boss")
    token = next(m.value for m in c.session.cookie_jar if m.key == "ivr_session")
    names = [k async for k in redis.scan_iter(match="*")]
    assert not any(token in k for k in names)
    assert any(hashlib.sha256(token.encode()).hexdigest() in k for k in names)
    assert (await c.get("/api/me")).status == 200


@pytest.mark.parametrize("how", ["logout", "password"])
async def test_the_wallboard_stream_closes_after_logout_or_password_change(web, redis, how):
    c, csrf = await web("boss")
    resp = await c.get("/api/events")
    assert resp.status == 200
    first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)
    assert first.startswith(b"event: board")
    if how == "logout":
        c2, _ = await web()
        token = next(m.value for m in c.session.cookie_jar if m.key == "ivr_session")
        c2.session.cookie_jar.update_cookies({"ivr_session": token})
        assert (await c2.post("/api/logout", headers={"X-CSRF-Token": csrf})).status == 200
    else:
        await Accounts(redis).passwd("boss", "another long password")

    async def drain():
        while await resp.content.readany():
            pass
    await asyncio.wait_for(drain(), 5)          # the server ended the stream


# -- 5. HTTP hardening ---------------------------------------------------------------------

@pytest.mark.parametrize("content_type, body", [
    ("text/plain", '{"user": "boss", "password": "correct horse battery"}'),
    ("application/x-www-form-urlencoded", "user=boss&password=correct+horse+battery"),
])
async def test_login_takes_json_only(web, content_type, body):
    c, _ = await web()
    r = await c.post("/api/login", data=body, headers={"Content-Type": content_type})
    assert r.status == 415 and (await r.json())["error"].startswith("请求体须为 JSON")
    assert "ivr_session" not in {m.key for m in c.session.cookie_jar}


async def test_every_json_route_refuses_other_content_types(web):
    c, csrf = await web("boss")
    r = await c.post("/api/contingency", data='{"level": 1, "reason": "x", "confirm": true}',
                     headers={"X-CSRF-Token": csrf, "Content-Type": "text/plain"})
    assert r.status == 415


@pytest.mark.parametrize("path", ["/healthz", "/api/me", "/console/login", "/api/nothing-here", "/static/style.css"])
async def test_security_headers_on_every_response(web, path):
    c, _ = await web()
    r = await c.get(path, allow_redirects=False)
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert "default-src" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"


async def test_console_page_csp_allows_its_own_inline_code_only(web):
    c, _ = await web()
    r = await c.get("/console/login")
    csp = r.headers["Content-Security-Policy"]
    script_src = csp.split("script-src")[1].split(";")[0]
    assert script_src.startswith(" 'self'") and "'sha256-" in script_src and "'unsafe-inline'" not in script_src
    assert "unsafe-eval" not in csp


async def test_hostile_inputs_get_clear_4xx_json_not_500(web, home):
    c, csrf = await web("ops")
    h = {"X-CSRF-Token": csrf}
    deep = "[" * 100_000 + "]" * 100_000
    r = await c.post("/api/flows/main/check", data=deep, headers={**h, "Content-Type": "application/json"})
    assert r.status == 400 and (await r.json())["error"].startswith("请求体")
    r = await c.post("/api/flows/main/rollback", json={"version": 999}, headers=h)
    assert r.status == 404 and "999" in (await r.json())["error"]
    long_name = "a" * 300
    r = await c.post("/api/prompts", data=_form(long_name, "a.wav", _wav(1.0)), headers=h)
    assert r.status == 400 and (await r.json())["error"].startswith("录音名")
    r = await c.post("/api/prompts/draft", json={"name": long_name, "text": "您好"}, headers=h)
    assert r.status == 400
    assert not _tmp_files(home)
    r = await c.post("/api/prompts", data=b"--xx\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc",
                     headers={**h, "Content-Type": "multipart/form-data; boundary=xx"})
    assert r.status == 400 and "error" in await r.json()
    r = await c.post("/api/prompts", data=b"garbage", headers={**h, "Content-Type": "multipart/form-data"})
    assert r.status == 400 and "error" in await r.json()
    a, _ = await web("audit")
    for q in ("from=0001-01-01&to=9999-12-31", "from=9999-12-31&to=9999-12-31", "from=0001-01-01&to=0001-01-01"):
        r = await a.get(f"/api/callbacks/report?{q}")
        assert r.status == 400 and "error" in await r.json(), q


async def test_a_nested_multipart_upload_is_a_400_not_a_500(web):
    # a part that is itself multipart/* comes out of aiohttp's reader as a
    # nested reader, with no name or filename: it was an AttributeError (a 500)
    c, csrf = await web("ops")
    body = (b"--xx\r\nContent-Disposition: form-data; name=\"file\"\r\n"
            b"Content-Type: multipart/mixed; boundary=yy\r\n\r\n"
            b"--yy\r\nContent-Type: text/plain\r\n\r\nabc\r\n--yy--\r\n--xx--\r\n")
    r = await c.post("/api/prompts", data=body,
                     headers={"X-CSRF-Token": csrf, "Content-Type": "multipart/form-data; boundary=xx"})
    assert r.status == 400 and "multipart" in (await r.json())["error"]


async def test_an_unexpected_error_is_a_generic_500_never_a_traceback(web, monkeypatch):
    import ivr.services.status as status_mod

    async def broken(redis):
        raise RuntimeError("secret internals /etc/ivr")
    monkeypatch.setattr(status_mod, "live", broken)
    c, _ = await web()
    r = await c.get("/metrics")
    text = await r.text()
    assert r.status == 500 and (await r.json())["error"].startswith("服务器内部错误")
    assert "secret internals" not in text and "Traceback" not in text


async def test_favicon(web):
    c, _ = await web()
    r = await c.get("/favicon.ico")
    assert r.status == 200 and r.headers["Content-Type"].startswith("image/svg+xml")


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium")
async def test_console_pages_run_under_their_content_security_policy(site, browser):
    """Without bypassing the policy: every role signs in (the login page's inline
    script), its page renders (its inline script) and the header's buttons work
    (inline handlers allowed by hash); no violation is reported."""
    base, _ = site
    for user, path, rendered in (("ops", "/console/ops", "#flow option"), ("boss", "/console/seats", "#t-level .big"),
                                 ("audit", "/console/audit", "#run")):
        page = await (await browser.new_context()).new_page()
        violations: list[str] = []
        page.on("console", lambda m, violations=violations: violations.append(m.text) if "Content Security Policy" in m.text else None)
        await page.goto(f"{base}/console/login")
        await page.fill("#user", user)
        await page.fill("#password", PASSWORD)
        await page.click("#signin")
        await page.wait_for_url(base + path)
        await page.wait_for_selector(rendered, state="attached")
        await page.click("#lang")
        await page.click("button:has-text('Sign out')")
        await page.wait_for_url(f"{base}/console/login")
        assert not violations, violations


async def test_a_month_report_over_a_large_backlog_does_not_hold_the_event_loop(web, redis):
    """The report is built in a child process: the loop that answers calls keeps
    ticking while an auditor asks for the month."""
    import datetime as dt
    import random
    from zoneinfo import ZoneInfo

    from ivr import logs
    from ivr.callback.capture import MissedCallCapture
    from ivr.callback.policy import Policy
    from ivr.callback.store import CallbackStore
    from ivr.rehearsal.bench.callbacks import NoAck, summaries

    store = CallbackStore(redis)
    cap = MissedCallCapture(redis, store, Policy(calling_hours=(dt.time(0), dt.time(23, 59, 59))),
                            ZoneInfo("Asia/Shanghai"), logs.get("test"))
    cap.redis = NoAck(redis)
    entries = summaries(20_000, 15_000, time.time() - 3 * 3600, random.Random(1))
    for i in range(0, len(entries), 2000):
        await cap.handle(entries[i:i + 2000], now=time.time())
    c, _ = await web("audit")
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    async with LoopGaps() as loop:
        r = await c.get(f"/api/callbacks/report?from={(today - dt.timedelta(days=30)).isoformat()}&to={today}")
        body = await r.json()
    assert r.status == 200 and body["callbacks"] > 10_000
    assert max(loop.seen) < 0.1, f"the loop stalled {max(loop.seen) * 1000:.0f} ms"
