"""The console in a real browser: Playwright drives Debian's Chromium (headless)
against the real app on loopback with a real Redis. Each role signs in and does
its work; a role cannot open another role's page."""

import io
import shutil
from pathlib import Path

import pytest
from aiohttp import web

from ivr import redis_keys as keys
from ivr.settings import load_settings
from ivr.web.accounts import Accounts
from ivr.web.app import make_app

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="needs Debian's chromium (./run test installs it)")


@pytest.fixture
async def site(redis, project_home, tmp_path):
    home = tmp_path / "home"
    for d in ("flows", "prompts", "queue", "callback", "asterisk", "config"):
        shutil.copytree(project_home / d, home / d)
    settings = load_settings({"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path)})
    for user, role in (("ops", "operations"), ("boss", "seat_manager"), ("audit", "auditor")):
        await Accounts(redis).add(user, role, PASSWORD)
    runner = web.AppRunner(make_app(redis=redis, settings=settings), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield base, home
    await runner.cleanup()


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield b
        await b.close()


async def sign_in(browser, base, user):
    # bypass_csp: Playwright's wait_for_function evaluates strings, which the console's policy
    # forbids; tests/test_console_security.py checks the pages run under the policy
    page = await (await browser.new_context(accept_downloads=True, bypass_csp=True)).new_page()
    await page.goto(f"{base}/console/")
    assert page.url.endswith("/console/login")
    await page.fill("#user", user)
    await page.fill("#password", PASSWORD)
    await page.click("#signin")
    await page.wait_for_url(lambda url: "/console/login" not in url)
    await page.wait_for_load_state()
    return page


async def test_each_role_lands_on_its_page_and_cannot_open_another(site, browser):
    base, _ = site
    for user, path, heading in (("ops", "/console/ops", "呼叫流程"), ("boss", "/console/seats", "实时看板"),
                                ("audit", "/console/audit", "漏话回拨报表")):
        page = await sign_in(browser, base, user)
        assert page.url == base + path
        await page.wait_for_selector(f"text={heading}")
        other = "/console/audit" if user != "audit" else "/console/ops"
        resp = await page.goto(base + other)
        assert resp.status == 403 and "may not use" in await page.content()


async def test_bad_password_is_told(site, browser):
    base, _ = site
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{base}/console/login")
    await page.fill("#user", "ops")
    await page.fill("#password", "not the password")
    await page.click("#signin")
    await page.wait_for_selector("text=wrong user name or password")


async def test_operations_edit_a_flow_with_an_error_then_fix_and_publish(site, browser, redis):
    base, home = site
    page = await sign_in(browser, base, "ops")
    await page.wait_for_selector("#flow option[value='main'], #flow option:text('main')", state="attached")
    await page.select_option("#flow", "main")
    await page.wait_for_function("document.getElementById('src').value.includes('main_menu')")
    source = await page.input_value("#src")
    await page.fill("#src", source.replace("timeout_s: 5", "timout: 5"))
    await page.click("#publish")
    await page.wait_for_selector("#problems .err >> text=unknown key 'timout'")
    line = source.replace("timeout_s: 5", "timout: 5").splitlines().index("    timout: 5") + 1
    await page.wait_for_selector(f"#srcview .line-err[data-line='{line}']")     # the error at its line
    assert await redis.get(keys.flow_current("main")) is None
    await page.fill("#src", source.replace("timeout_s: 5", "timeout_s: 4"))
    await page.click("#check")
    await page.wait_for_selector("text=没有错误 no errors")
    await page.fill("#note", "菜单等待缩短为4秒")
    await page.click("#publish")
    await page.wait_for_selector("#published")
    assert await redis.get(keys.flow_current("main")) == "1"
    assert "timeout_s: 4" in (home / "flows" / "main.yaml").read_text()
    await page.wait_for_selector("#history >> text=web:ops")


async def test_operations_upload_an_mp3_announcement(site, browser, tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.skip("MP3 needs ffmpeg (./run test installs it)")
    from pydub.generators import Sine
    mp3 = tmp_path / "policy.mp3"
    buf = io.BytesIO()
    Sine(523).to_audio_segment(duration=2000).export(buf, format="mp3")
    mp3.write_bytes(buf.getvalue())
    base, home = site
    page = await sign_in(browser, base, "ops")
    await page.fill("#pname", "policy/heating")
    await page.set_input_files("#pfile", str(mp3))
    await page.click("#upload")
    await page.wait_for_selector("#pmsg.ok >> text=8 kHz mono 16-bit WAV")
    assert (home / "prompts" / "policy" / "heating.wav").exists()
    await page.wait_for_selector("#prompts >> text=policy/heating")


async def test_seat_manager_switches_the_level_with_a_reason_and_confirmation(site, browser, redis):
    base, _ = site
    page = await sign_in(browser, base, "boss")
    await page.wait_for_selector("#newlevel option", state="attached")
    await page.click("#switch")
    await page.wait_for_selector("#cmsg.err >> text=a reason is required")
    await page.select_option("#newlevel", "2")
    await page.fill("#reason", "供暖政策发布")
    dialogs = []

    async def accept(dialog):
        dialogs.append(dialog.message)
        await dialog.accept()
    page.on("dialog", accept)
    await page.click("#switch")
    await page.wait_for_selector("#cmsg.ok")
    assert await redis.get(keys.CONTINGENCY_LEVEL) == "2" and "级别 2" in dialogs[0]
    # the wallboard is pushed: the level tile changes without a reload
    await page.wait_for_function("document.querySelector('#t-level .big').textContent === '2'")
    await page.wait_for_selector("#history >> text=供暖政策发布")


async def test_auditor_opens_a_report_and_exports_csv(site, browser, redis):
    import time

    from ivr.callback.store import CallbackStore
    store = CallbackStore(redis)
    now = time.time()
    await store.record(store.record_args(number="13812345678", now=now, started=now - 60, kind="ordinary",
                                         reason="abandoned", flow="main", step="general_queue", wait_s=40.0,
                                         message="", not_before=now, deadlines={"emergency": 7200, "courtesy": 14400,
                                                                                "ordinary": 86400}, misdial=False))
    base, _ = site
    page = await sign_in(browser, base, "audit")
    await page.evaluate("""() => { const d = new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);
                                   document.getElementById('from').value = d; document.getElementById('to').value = d; }""")
    await page.click("#run")
    await page.wait_for_selector("[data-figure='missed calls'] >> text=1")
    assert await page.locator("#charts svg").count() == 2
    async with page.expect_download() as dl:
        await page.click("#csv")
    path = await (await dl.value).path()
    text = Path(path).read_text()
    assert text.startswith("id,number,kind") and "138******78" in text and "13812345678" not in text
    await page.click("#verify")
    await page.wait_for_selector("#verified >> text=callbacks: 完整 intact")
