"""The console in a real browser: Playwright drives Debian's Chromium (headless)
against the real app on loopback with a real Redis. Each role signs in and does
its work; a role cannot open another role's page."""

import io
import re
import shutil
from pathlib import Path

import pytest
from aiohttp import web

from ivr.accounts.store import Accounts
from ivr.redisdb import keys
from ivr.settings import load_settings
from ivr.web.app import make_app
from tests.conftest import copy_project

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="needs Debian's chromium (./run test installs it)")


@pytest.fixture
async def site(redis, project_home, tmp_path):
    home = copy_project(project_home, tmp_path / "home")
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
    # two errors, the later line found first (a reference is checked after the keys): shown in line order
    first_next = next(i for i, line in enumerate(source.splitlines(), 1) if line.strip().startswith("next: "))
    bad2 = source.replace("timeout_s: 5", "timout: 5")
    lines = bad2.splitlines()
    lines[first_next - 1] = lines[first_next - 1].replace("next: ", "next: nowhere_", 1)
    await page.fill("#src", "\n".join(lines) + "\n")
    await page.click("#check")
    await page.wait_for_selector("#problems li >> nth=1")
    shown = [int(t.split(" ")[1]) for t in await page.locator("#problems li.err").all_inner_texts()]
    assert shown == sorted(shown) and shown[0] == first_next and line in shown
    assert "未知的键 'timout'" in await page.inner_text("#problems")        # Chinese first
    # fixed and published straight away: no old error marks stay beside the source
    await page.fill("#src", source.replace("timeout_s: 5", "timeout_s: 4"))
    await page.fill("#note", "菜单等待缩短为4秒")
    await page.click("#publish")
    await page.wait_for_selector("#published")
    assert await page.locator("#srcview .line-err").count() == 0
    await page.click("#check")
    await page.wait_for_selector("text=没有错误 no errors")
    assert await redis.get(keys.flow_current("main")) == "1"
    assert "timeout_s: 4" in (home / "flows" / "main.yaml").read_text()
    await page.wait_for_selector("#history >> text=web:ops")
    import datetime as dt
    from zoneinfo import ZoneInfo
    shown_at = await page.inner_text("#history time")
    assert shown_at.startswith(dt.datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d"))   # local, not UTC ISO
    assert "T" not in shown_at and "+00:00" not in shown_at


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
    # the drop-down keeps the level just switched to (it jumped back to 0), the history reads in Chinese
    assert await page.input_value("#newlevel") == "2"
    await page.wait_for_selector("#history >> text=切换级别")
    assert "boss（控制台）" in await page.inner_text("#history") and "level_set" not in await page.inner_text("#history")


async def test_the_level_history_shows_a_level_the_rules_raised_while_the_page_is_open(site, browser, redis):
    """The demo's seats page said 当前级别 1 while its history, read once when
    the page opened, stayed empty: a level raised by the rules (not by this
    page) is in the history and the drop-down without a reload."""
    import time

    from ivr.contingency.store import ContingencyStore
    base, _ = site
    page = await sign_in(browser, base, "boss")
    await page.wait_for_selector("#history >> text=时间 time")
    await page.wait_for_function("document.getElementById('level').textContent === '0'")
    await ContingencyStore(redis).set_level(1, by="system:auto", how="auto", reason="排队人数 24 ≥ 20，已持续 62 秒",
                                            now=time.time())
    await page.wait_for_function("document.getElementById('level').textContent === '1'")
    await page.wait_for_selector("#history >> text=排队人数 24 ≥ 20")
    assert "系统（自动规则）" in await page.inner_text("#history")
    assert await page.input_value("#newlevel") == "1"


async def test_auditor_opens_a_report_and_exports_csv(site, browser, redis):
    import time

    from ivr.callback.store import CallbackStore
    store = CallbackStore(redis)
    now = time.time()
    await store.record(store.record_args(number="13812345678", now=now, started=now - 60, kind="ordinary",
                                         reason="abandoned", flow="main", step="general_queue", wait_s=40.0,
                                         message="", not_before=now, deadlines={"emergency": 7200, "courtesy": 14400,
                                                                                "ordinary": 86400}, misdial=False))
    await store.audit.append([{"kind": "recorded", "at": now, "id": "1", "number": "138******78",
                               "type": "ordinary", "reason": "abandoned", "calls": 1}])
    base, _ = site
    page = await sign_in(browser, base, "audit")
    # no dates typed: the report opens on today in Beijing (the UTC day would be empty before 08:00)
    await page.wait_for_selector("[data-figure='missed calls'] >> text=1")
    assert await page.locator("#charts svg").count() == 2
    assert await page.inner_text("[data-figure='within deadline']") == "0 (0%)"
    # the chart's title has its own band: no bar or value label reaches into it
    overlap = await page.evaluate("""() => [...document.querySelectorAll('#charts svg')].some(svg => {
        const t = svg.querySelector('text').getBBox();
        return [...svg.querySelectorAll('rect, text')].slice(1).some(el => el.getBBox().y < t.y + t.height)
               || t.x + t.width > svg.width.baseVal.value; })""")
    assert not overlap
    async with page.expect_download() as dl:
        await page.click("#csv")
    path = await (await dl.value).path()
    text = Path(path).read_text(encoding="utf-8")
    assert text.startswith("\ufeff编号,") and "138******78" in text and "13812345678" not in text
    # pick the callback from the list: its trail is a timeline in local time, in Chinese
    await page.click("#cblist a >> text=1")
    await page.wait_for_selector(".timeline >> text=已记录漏话")
    assert "普通 · 排队中挂断" in await page.inner_text(".timeline")
    assert "{" not in await page.inner_text("#record")            # no raw JSON
    await page.wait_for_selector("#signature >> text=callbacks")
    await page.click("#verify")
    await page.wait_for_selector("#verified >> text=callbacks: 完整 intact")
    import os
    if os.environ.get("IVR_SCREENSHOTS"):
        await page.set_viewport_size({"width": 1400, "height": 900})
        await page.screenshot(path=os.path.join(os.environ["IVR_SCREENSHOTS"], "audit.png"), full_page=True)
    # printed: the month's figures, charts and chain heads with a signature line; no buttons, no pickers
    await page.emulate_media(media="print")
    assert not await page.is_visible("header") and not await page.is_visible("#cblist")
    assert await page.is_visible("#signature") and await page.is_visible("[data-figure='broad_answer_rate']")
    import os
    if os.environ.get("IVR_SCREENSHOTS"):
        await page.screenshot(path=os.path.join(os.environ["IVR_SCREENSHOTS"], "audit-print.png"), full_page=True)


def wall_snapshot(now):
    """A surge: 71 waiting, nobody answered within 20 s, 62 % abandoned; the
    plan's level 2 added the two back-office seats."""
    seats = [{"interface": f"Local/{n}@ivr-seats/n", "name": f"Seat{n}", "state": "busy", "reserved": False,
              "queues": {"general-q": 0}} for n in (101, 102)]
    seats += [{"interface": f"Local/{n}@ivr-seats/n", "name": f"Seat{n}", "state": "busy", "reserved": False,
               "queues": {"general-q": 5}} for n in (201, 202)]
    seats.append({"interface": "Local/109@ivr-seats/n", "name": "Seat109", "state": "idle", "reserved": True,
                  "queues": {"emergency-q": 0}})
    q = {"emergency": False, "waiting": 71, "emergency_waiting": 0, "longest_wait_s": 412.0, "estimated_wait_s": 600.0,
         "answered": 19, "abandoned": 31, "withdrawn": 0, "abandon_rate": 0.62, "service_level": 0.0, "callers": []}
    e = {**q, "emergency": True, "waiting": 0, "longest_wait_s": 0.0, "answered": 2, "abandoned": 0,
         "abandon_rate": 0.0, "service_level": 1.0}
    return {"at": now, "window_s": 900.0, "ami_connected": True, "queues": {"general-q": q, "emergency-q": e},
            "seats": seats,
            "seat_states": {"busy": 4, "wrapup": 0, "idle": 0, "paused": 0, "reserved": 1, "offline": 0},
            "emergency": {"waiting": 0},
            "lines": {"pbx": "main", "known": True, "reason": "", "warning": "", "in_use": 2950, "total": 3000,
                      "limit": 2990, "free": 40, "emergency_reserve": 60, "callback_below_free": 300,
                      "in_flows": 100, "waiting": 71, "talking": 2779, "callbacks": 0, "read_at": now}}


async def test_wallboard_full_screen_at_1920x1080(site, browser, redis, tmp_path):
    import json
    import time

    from ivr.contingency.store import Applied, ContingencyStore
    store = ContingencyStore(redis)
    await store.set_level(2, by="system:auto", how="auto", reason="排队人数 71 ≥ 60，已持续 120 秒",
                          expires_at=time.time() + 8 * 3600)
    await store.record_actions(Applied(2, time.time()), [], now=time.time())
    await redis.set(keys.LIVE, json.dumps(wall_snapshot(time.time())))
    base, _ = site
    page = await sign_in(browser, base, "boss")
    await page.set_viewport_size({"width": 1920, "height": 1080})
    await page.goto(f"{base}/console/seats?wall=1")
    await page.wait_for_selector("#t-waiting .big >> text=71")
    for tile, colour in (("t-service", "c-red"), ("t-abandon", "c-red"), ("t-waiting", "c-red"),
                         ("t-longest", "c-red"), ("t-level", "c-red"), ("t-idle", "c-red"), ("t-lines", "c-red")):
        assert colour in await page.get_attribute(f"#{tile}", "class"), tile
    assert await page.inner_text("#t-service .big") == "0%" and await page.inner_text("#t-abandon .big") == "62%"
    # 5 on shift: 3 of the hotline's own (the reserved emergency seat one of them) + 2 the plan added;
    # = 4 talking + 1 reserved, each seat counted once
    assert [await page.inner_text(f"#seats-{k}") for k in ("total", "base", "added", "busy", "wrapup", "idle",
                                                            "paused", "reserved")] == \
        ["5", "3", "2", "4", "0", "0", "0", "1"]
    assert await page.inner_text("#seatline") == "在岗坐席 5 = 3 本班 + 2 预案增援 = 4 通话 + 0 话后整理 + 0 空闲 + 0 暂停 + 1 紧急预留"
    assert "近15分钟" in await page.inner_text("#t-abandon .label")
    assert await page.inner_text("#t-idle .big") == "0"        # the idle seat is reserved for emergencies
    assert await page.inner_text("#t-lines .big") == "在用 2950 / 共 3000"   # 40 free: into the emergency reserve
    head = await page.inner_text("#wallhead")
    assert "系统（自动规则）" in head and "排队人数 71 ≥ 60" in head and "有效至" in head
    # readable from five metres: the numbers are large, and the whole board fits the screen
    size = await page.evaluate("parseFloat(getComputedStyle(document.querySelector('#t-waiting .big')).fontSize)")
    assert size >= 100
    assert await page.evaluate("document.documentElement.scrollHeight") <= 1080
    assert not await page.is_visible("header") and not await page.is_visible("#switch")
    await page.screenshot(path=str(tmp_path / "wall.png"))
    import os
    if os.environ.get("IVR_SCREENSHOTS"):
        await page.screenshot(path=os.path.join(os.environ["IVR_SCREENSHOTS"], "wall.png"))
    # at the wall's width the seat line takes one line; the lines tile breaks only between its parts
    assert await _lines_of(page, "#seatline") == 1 and await _parts_on_lines(page, "#t-lines .big") == [1, 1]
    # the button leaves the wall again
    await page.click("#wallbtn")
    await page.wait_for_selector("#switch", state="visible")
    assert "wall=1" not in page.url
    # the page says when its figures are from, as the wall's corner clock does (the engine's clock): the demo's
    # seats page had no time on it at all
    assert await page.is_visible("#asof")
    clock, asof = await page.evaluate(
        "[document.querySelector('#wallhead .clock').textContent, document.getElementById('asof').textContent]")
    assert re.fullmatch(r"\d\d:\d\d:\d\d", asof) and asof == clock
    if os.environ.get("IVR_SCREENSHOTS"):
        await page.screenshot(path=os.path.join(os.environ["IVR_SCREENSHOTS"], "seats.png"), full_page=True)


async def _lines_of(page, selector):
    """How many lines the element's text takes (its height over its line height)."""
    return await page.evaluate(f"""(() => {{ const e = document.querySelector({selector!r}), s = getComputedStyle(e);
        const lh = parseFloat(s.lineHeight) || parseFloat(s.fontSize) * 1.2;
        return Math.round(e.getBoundingClientRect().height / lh); }})()""")


async def _parts_on_lines(page, selector):
    """How many lines each part of a tile's value takes (1 each: no part broken)."""
    return await page.evaluate(f"""[...document.querySelectorAll({selector!r} + ' .nowrap')].map(e =>
        e.getClientRects().length)""")


async def test_the_wall_says_the_seats_once_when_the_plan_added_none(site, browser, redis, tmp_path):
    """The early wall read "在岗坐席 44 = 44 = 通话 …": the hotline's own and the
    plan's seats are said only when the plan added some."""
    import json
    import os
    import time

    snap = wall_snapshot(time.time())
    snap["seats"] = [s for s in snap["seats"] if "general-q" not in s["queues"] or s["queues"]["general-q"] == 0]
    snap["seat_states"] = {"busy": 2, "wrapup": 0, "idle": 0, "paused": 0, "reserved": 1, "offline": 0}
    await redis.set(keys.LIVE, json.dumps(snap))
    base, _ = site
    page = await sign_in(browser, base, "boss")
    await page.set_viewport_size({"width": 1920, "height": 1080})
    await page.goto(f"{base}/console/seats?wall=1")
    await page.wait_for_selector("#t-waiting .big >> text=71")
    assert await page.inner_text("#seatline") == "在岗坐席 3 = 2 通话 + 0 话后整理 + 0 空闲 + 0 暂停 + 1 紧急预留"
    assert await page.query_selector("#seats-base") is None and await page.query_selector("#seats-added") is None
    assert await _lines_of(page, "#seatline") == 1 and await _parts_on_lines(page, "#t-lines .big") == [1, 1]
    await page.screenshot(path=str(tmp_path / "wall-no-plan.png"))
    if os.environ.get("IVR_SCREENSHOTS"):
        await page.screenshot(path=os.path.join(os.environ["IVR_SCREENSHOTS"], "wall-no-plan.png"))


async def test_a_seat_manager_sees_a_broken_file_and_rolls_back_a_version_with_one_click(site, browser, redis):
    """Issue 21: the console reads the configuration in force, shows a file
    broken on disk as a warning, and rolls a file back from its history."""
    import time

    from ivr.services import config as config_service
    base, home = site
    tz = load_settings({"IVR_HOME": str(home)}).timezone
    await config_service.publish_files(redis, home, tz, by="setup", clock=time.time)
    plan = home / "queue" / "contingency.yaml"
    original = plan.read_text(encoding="utf-8")
    await config_service.save(redis, home, tz, "queue/contingency.yaml", original.replace("levels:", "# v2\nlevels:", 1),
                              by="boss", note="v2", clock=time.time)
    (home / "queue" / "seats.yaml").write_text("groups: [\n", encoding="utf-8")      # broken by hand on disk
    page = await sign_in(browser, base, "boss")
    await page.goto(f"{base}/console/config")
    await page.wait_for_selector("text=磁盘上的文件有错误")
    assert "queue/seats.yaml" in await page.inner_text("#diskproblems")
    await page.click("a.pick[data-path='queue/contingency.yaml']")
    await page.wait_for_selector("button.rb")
    page.on("dialog", lambda d: d.accept())
    await page.click("button.rb[data-version='1']")
    await page.wait_for_selector("#saved")
    assert plan.read_text(encoding="utf-8") == original
    assert [v.how for v in await config_service.ConfigStore(redis).versions("queue/contingency.yaml")][-1] == "rollback"


def national_board(n):
    """The national figures as the demo's end showed them (docs/console/seats-end.png)."""
    return {"offered": 1054, "answered": 478, "answered_within_15s": 252, "answered_within_15s_rate": 0.2391,
            "answer_rate_24h": 0.4535, "average_speed_of_answer_s": 32.8, "abandoned_within_15s": 271,
            "satisfaction_rate": 0.6915, "survey": {"offered": n, "answered": 352, "satisfied": 263,
                                                    "basically_satisfied": 53, "dissatisfied": 36, "no_answer": 105},
            "colours": {"answered_within_15s_rate": "red", "answer_rate_24h": "red", "satisfaction_rate": "red",
                        "average_speed_of_answer_s": "", "abandoned_within_15s": ""},
            "targets": {"answered_within_15s_rate": 0.8, "answer_rate_24h": 0.95, "satisfaction_rate": 0.9,
                        "average_speed_of_answer_s": None, "abandoned_within_15s": None, "amber_within_pct": 5.0},
            "window_s": 86400, "complete": True}


async def test_the_seats_page_shows_the_national_figures_in_one_row_at_1280(site, browser):
    """The demo's seats page at 1280 px put 满意率 "69.2% (317/458)" on a row of
    its own under the other four national figures."""
    import json

    base, _ = site
    page = await sign_in(browser, base, "boss")
    await page.set_viewport_size({"width": 1280, "height": 800})

    async def with_national(route):
        response = await route.fetch()
        board = await response.json()
        board["national"] = national_board(4580)       # "69.2% (3160/4580)": wider than the picture's
        await route.fulfill(response=response, body=json.dumps(board))

    await page.route("**/api/status", with_national)
    await page.route("**/api/events", lambda route: route.abort())     # the board above stays on the page
    await page.goto(f"{base}/console/seats")
    await page.wait_for_selector("#t-satisfaction .big >> text=(316/4580)")
    tops = await page.evaluate("[...document.querySelectorAll('#national .tile')].map(t => t.getBoundingClientRect().top)")
    assert len(tops) == 5 and len(set(tops)) == 1, tops
    # each value on one line
    assert await _lines_of(page, "#t-satisfaction .big") == 1
    import os
    if os.environ.get("IVR_SCREENSHOTS"):
        await page.screenshot(path=os.path.join(os.environ["IVR_SCREENSHOTS"], "seats-national.png"))


async def _breaks(page, selector):
    """Where the element's text starts a new line: each break as the two characters around it."""
    return await page.evaluate(f"""(() => {{ const node = document.querySelector({selector!r}).firstChild;
        const text = node.textContent, out = []; let top = null, prev = "";
        for (let i = 0; i < text.length; i++) {{
          const r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + 1);
          const box = r.getClientRects()[0];
          if (!box || box.width === 0) {{ prev = text[i]; continue; }}
          if (top !== null && box.top > top + 1) out.push(prev + "|" + text[i]);
          top = box.top; prev = text[i];
        }}
        return out; }})()""")


async def test_the_walls_labels_break_only_between_their_parts(site, browser):
    """The demo's wall at 1280 px read "满意率(近24小时·目" / "标≥90%)" and
    "服务水平(20秒·近" / "15分钟)": a label breaks only before its "(…)" and
    after "·"."""
    import json

    base, _ = site
    page = await sign_in(browser, base, "boss")
    await page.set_viewport_size({"width": 1280, "height": 800})

    async def with_national(route):
        response = await route.fetch()
        board = await response.json()
        board["national"] = national_board(130)
        await route.fulfill(response=response, body=json.dumps(board))

    await page.route("**/api/status", with_national)
    await page.route("**/api/events", lambda route: route.abort())
    await page.goto(f"{base}/console/seats?wall=1")
    await page.wait_for_selector("#t-satisfaction .big >> text=(316/130)")
    allowed = {"\u200b|(", "\u200b|目"}         # a zero-width space marks each place a label may break
    for tile in ("t-answered15", "t-answer24", "t-asa", "t-abandon15", "t-satisfaction"):
        breaks = await _breaks(page, f"#{tile} .label")
        assert set(breaks) <= allowed, (tile, breaks)
    assert await _breaks(page, "#t-satisfaction .label")       # it does break, at 1280 px: where it may
    # the big tiles' labels too: "服务水平(20秒·近" / "15分钟)" on every picture of the demo's wall
    assert set(await _breaks(page, "#t-service .label")) <= {"\u200b|(", "\u200b|近"}
    import os
    if os.environ.get("IVR_SCREENSHOTS"):
        await page.screenshot(path=os.path.join(os.environ["IVR_SCREENSHOTS"], "wall-national.png"))
