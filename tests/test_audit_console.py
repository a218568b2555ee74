"""The auditors' page as auditors use it, in a real browser (Debian's
Chromium, as tests/test_console_browser.py drives it): seats by the names staff
know, the callback list a page at a time with verification at the top, the
chain heads as a table checked against the signed checkpoint, dates in Chinese
form whatever the browser's locale, and the printed month rendered to a PDF
and read back."""

import datetime as dt
import json
import os
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ivr.callback.store import CallbackStore
from ivr.redisdb import keys
from ivr.services import audit as audit_service
from tests.test_console_browser import CHROMIUM, browser, sign_in, site  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="needs Debian's chromium (./run test installs it)")
BEIJING = ZoneInfo("Asia/Shanghai")
DEADLINES = {"emergency": 7200, "courtesy": 14400, "ordinary": 86400}
CALLBACKS = 45
# an attempt's seat: configured in queue/seats.yaml (Seat101), named by the attempt itself (a drill's
# Seat10001), named only by the live model (Seat555), and unknown anywhere (shown as it is)
SEATS = [("Local/101@ivr-seats/n", ""), ("Local/10001@ivr-seats/n", "Seat10001"),
         ("Local/555@ivr-seats/n", ""), ("Local/777@ivr-seats/n", "")]


async def seed(redis) -> float:
    """45 open callbacks from the last 45 minutes (none before today in Beijing), attempts by four seats."""
    store = CallbackStore(redis)
    midnight = dt.datetime.now(BEIJING).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    now = max(time.time(), midnight + CALLBACKS * 60 + 60)
    for i in range(CALLBACKS):
        number, at = f"1381234{i:04d}", now - (CALLBACKS - i) * 60
        await store.record(store.record_args(number=number, now=at, started=at - 60, kind="ordinary",
                                             reason="abandoned", flow="main", step="general_queue", wait_s=40.0,
                                             message="", not_before=at, deadlines=DEADLINES, misdial=False))
        seat = SEATS[i % len(SEATS)][0]
        await redis.hset(keys.callback_open(number), mapping={"last_seat": seat})
    await store.audit.append([{"kind": "attempt", "at": now - 30, "id": str(i + 1), "number": "138******00",
                               "seat": seat, **({"seat_name": name} if name else {}), "outcome": "reached",
                               "detail": "", "attempt": 1, "result": "closed"} for i, (seat, name) in enumerate(SEATS)])
    live = {"at": now, "ami_connected": True, "queues": {}, "emergency": {"waiting": 0},
            "seats": [{"interface": "Local/555@ivr-seats/n", "name": "Seat555", "state": "idle", "reserved": False,
                       "queues": {"general-q": 0}}]}
    await redis.set(keys.LIVE, json.dumps(live))
    return now


async def test_auditor_sees_named_seats_pages_of_callbacks_and_verification_on_top(site, browser, redis):
    await seed(redis)
    base, _ = site
    page = await sign_in(browser, base, "audit")
    await page.set_viewport_size({"width": 1400, "height": 900})
    await page.wait_for_selector("#seats >> text=Seat10001")
    await page.wait_for_selector("#listinfo >> text=共 45 条")
    if os.environ.get("IVR_SCREENSHOTS"):
        await page.screenshot(path=os.path.join(os.environ["IVR_SCREENSHOTS"], "audit-top.png"))
    seats = await page.inner_text("#seats")
    assert all(name in seats for name in ("Seat101", "Seat10001", "Seat555")), seats
    # a seat nobody named is shown as it is; the named ones never by their interface
    assert "Local/777@ivr-seats/n" in seats and "Local/101@" not in seats and "Local/10001@" not in seats
    # verification first, above the report, in the first screen
    verify_box, report_box = await page.locator("#verify").bounding_box(), await page.locator("#report").bounding_box()
    assert verify_box["y"] < report_box["y"] and verify_box["y"] < 900
    await page.click("#verify")
    await page.wait_for_selector(f"#verifyline >> text=全部 {len(audit_service.LOG_NAMES)} 个日志完整")
    # the list: 20 a page, newest first, three pages; the seat by its name
    await page.wait_for_selector("#listinfo >> text=共 45 条")
    assert "第 1 / 3 页" in await page.inner_text("#listinfo")
    assert await page.locator("#cblist tr[data-id]").count() == 20
    assert await page.locator("#cblist tr[data-id]").first.get_attribute("data-id") == str(CALLBACKS)
    assert "Local/" not in (await page.inner_text("#cblist")).replace("Local/777@ivr-seats/n", "")
    assert await page.is_disabled("#prev")
    await page.click("#next")
    await page.wait_for_selector("#listinfo >> text=第 2 / 3 页")
    await page.click("#next")
    await page.wait_for_selector("#listinfo >> text=第 3 / 3 页")
    assert await page.locator("#cblist tr[data-id]").count() == 5 and await page.is_disabled("#next")
    await page.select_option("#perpage", "50")
    await page.select_option("#fstate", "closed")
    await page.click("#listbtn")
    await page.wait_for_selector("#listinfo >> text=没有回拨记录")
    await page.select_option("#fstate", "")
    await page.click("#listbtn")
    await page.wait_for_selector("#listinfo >> text=第 1 / 1 页")
    # picking a callback from the list (no inline handler: the page's policy would refuse one)
    await page.click('#cblist a >> text="1"')
    await page.wait_for_selector("#record >> text=最后坐席 last seat Seat101")
    if os.environ.get("IVR_SCREENSHOTS"):
        await page.screenshot(path=os.path.join(os.environ["IVR_SCREENSHOTS"], "audit-record.png"))
        await page.screenshot(path=os.path.join(os.environ["IVR_SCREENSHOTS"], "audit-full.png"), full_page=True)


async def test_chain_heads_are_a_table_checked_against_the_signed_checkpoint(site, browser, redis):
    from ivr.services.audit import Checkpointer

    await seed(redis)
    base, _ = site
    page = await sign_in(browser, base, "audit")
    await page.wait_for_selector("#chains tr[data-log='callbacks']")
    row = await page.inner_text("#chains tr[data-log='callbacks']")
    assert "回拨" in row and "尚无签名检查点" in row
    await Checkpointer(redis, always=True).checkpoint()       # what `ivr audit checkpoint` writes
    await page.reload()
    await page.wait_for_selector("#chains tr[data-log='callbacks'] >> text=与签名检查点一致")
    text = await page.inner_text("#signature")
    # no raw JSON, no server path, no all-zero head of an empty log
    assert "{" not in text and "/tmp" not in text and "checkpoints" not in text and "0" * 64 not in text
    assert "空日志" in await page.inner_text("#chains tr[data-log='flows']")
    assert await page.locator("#chains tr[data-log]").count() == len(audit_service.LOG_NAMES)
    await CallbackStore(redis).audit.append([{"kind": "recorded", "at": time.time(), "id": "99",
                                              "number": "138******99", "type": "ordinary", "reason": "abandoned",
                                              "calls": 1}])
    await page.reload()
    await page.wait_for_selector("#chains tr[data-log='callbacks'] >> text=检查点后新增 1 条")


async def test_dates_are_in_chinese_form_whatever_the_browsers_locale(site, browser, redis):
    await seed(redis)
    base, _ = site
    page = await sign_in(browser, base, "audit")       # Chromium's locale here is en-US
    await page.wait_for_selector("#periodline >> text=统计期间")
    today = dt.datetime.now(BEIJING).date()
    zh = f"{today.year}年{today.month}月{today.day}日"
    assert await page.input_value("#from") == zh and await page.input_value("#to") == zh
    assert await page.locator("input[type=date], input[type=month]").count() == 0
    assert zh in await page.inner_text("#periodline") and zh in await page.inner_text("#title")
    assert await page.inner_text("#year option:checked") == f"{today.year}年"
    assert await page.inner_text("#month option:checked") == f"{today.month}月"
    first = await page.inner_text("#cblist tr[data-id] td:nth-child(4)")
    assert first.startswith(f"{today.year}年{today.month}月"), first
    # a date that does not exist, and one in the browser's locale: one Chinese line, no request
    for typed in ("2026-02-31", "12/06/2026", "2026年13月1日"):
        await page.fill("#from", typed)
        await page.click("#run")
        assert (await page.inner_text("#dateerr")).startswith("日期应写成 2026年12月6日"), typed
    await page.fill("#from", f"{today.year}-{today.month}-{today.day}")
    await page.fill("#to", zh)
    await page.click("#run")
    await page.wait_for_function("() => document.getElementById('dateerr').textContent === ''")
    await page.fill("#from", "2026年12月6日")
    await page.fill("#to", "2026年12月1日")
    await page.click("#run")
    assert (await page.inner_text("#dateerr")).startswith("结束日期早于开始日期")


async def test_the_printed_month_is_a_pdf_with_its_chinese_title(site, browser, redis, tmp_path):
    import pypdfium2

    now = await seed(redis)
    # two conversations today with Seat101, rated: the national figures print with the seat's name
    for i, (hold, survey) in enumerate((("9", "satisfied"), ("30", "no_answer"))):
        await redis.xadd(keys.CALLS, {"j": json.dumps({
            "uniqueid": f"n{i}", "number": f"1391234000{i}", "started": f"{now - 600 + i:.3f}",
            "ended": f"{now - 300:.3f}", "wanted_person": "1", "queue_status": "ANSWERED", "hold_s": hold,
            "member": "Local/101@ivr-seats/n", "survey": survey, "survey_seat": "Local/101@ivr-seats/n"})})
    base, _ = site
    page = await sign_in(browser, base, "audit")
    await page.wait_for_selector("#chains tr[data-log='callbacks']")
    today = dt.datetime.now(BEIJING).date()
    await page.select_option("#year", str(today.year))
    await page.select_option("#month", f"{today.month:02d}")
    await page.click("#runmonth")
    title = f"12345 热线漏话回拨月报 · {today.year}年{today.month}月"
    await page.wait_for_selector(f"#title >> text={title}")
    await page.wait_for_selector("#seats >> text=Seat10001")
    pdf = tmp_path / "month.pdf"
    await page.pdf(path=str(pdf), format="A4", print_background=True)       # as "打印月报" prints it
    doc = pypdfium2.PdfDocument(str(pdf))
    pages = len(doc)
    text = "".join(doc[i].get_textpage().get_text_range() for i in range(pages))
    assert pages > 0
    assert title in text, text[:300]
    assert "审计员签字" in text and "Seat10001" in text and "Local/10001" not in text
    # the national figures (docs/audit-report.md): 1 of 2 within 15 s, 满意率 1 of 2 surveys, by seat
    assert "考核指标" in text and "15秒接通率" in text and "50%" in text and "满意率" in text
    assert "各坐席考核指标" in text and "Seat101" in text
    assert "回拨记录" not in text and "校验哈希链" not in text      # the screen's tools are not printed
    if os.environ.get("IVR_SCREENSHOTS"):
        pdf.rename(Path(os.environ["IVR_SCREENSHOTS"]) / "audit-month.pdf")


async def test_the_auditor_sees_a_follow_up_batch_and_what_each_citizen_said(site, browser, redis):
    """智能回访 on the auditors' page: each batch (when in Chinese form, by whom,
    the share of what, how many) and, the newest opened, its figures and each
    follow-up's outcome: reached or not, heard, rating; numbers masked."""
    from ivr.callback.followup import Candidate, FollowupStore

    store = FollowupStore(redis)
    at = dt.datetime(2026, 12, 6, 9, 40, tzinfo=BEIJING).timestamp()
    chosen = [Candidate(f"c{i}", f"1390000{i:04d}", "Local/101@ivr-seats/n", "ordinary", at - 600) for i in range(4)]
    bid, ids = await store.create(chosen, now=at, by="drill:值班长 seat manager", share=0.2,
                                  of="reached-callbacks", day="2026-12-06", kind="")
    assert await store.claim(now=at, lease_s=900, owner="t", count=4) == (0, ids)
    for fid, (outcome, reason) in zip(ids[:3], (("reached", "reached"), ("reached", "reached"),
                                                ("no_answer", "unreached")), strict=True):
        assert (await store.finish(fid, "t", outcome=outcome, now=at + 60, next_at=None, close_reason=reason))[0] \
            == "closed"
    await store.record_answer(ids[0], heard="yes", rating="satisfied", comment="", at=at + 90, call="u1", seat="")
    await store.record_answer(ids[1], heard="no", rating="dissatisfied", comment="", at=at + 95, call="u2", seat="")
    base, _ = site
    page = await sign_in(browser, base, "audit")
    await page.set_viewport_size({"width": 1400, "height": 900})
    row = page.locator(f"#fubatches tr[data-batch='{bid}']")
    await row.wait_for()
    text = await row.inner_text()
    for shown in ("2026年12月6日 09:40:00", "drill:值班长 seat manager", "已接通的回拨 reached callbacks",
                  "2026年12月6日", "20%", "4"):
        assert shown in text, text
    await page.wait_for_selector("#fuitems tr[data-fu]")
    figures = await page.inner_text("#fubatch")
    assert f"回访批次 {bid}" in figures and "回访满意率" in figures and "50%" in figures, figures
    for figure, value in (("fu_chosen", "4"), ("fu_called", "3"), ("fu_reached", "2"), ("fu_unreached", "1"),
                          ("fu_open", "1"), ("fu_heard", "1 / 1"), ("fu_survey", "1 / 0 / 1 / 0")):
        assert await page.inner_text(f"[data-figure='{figure}']") == value, figure
    items = {await r.get_attribute("data-fu"): await r.inner_text() for r in
             await page.locator("#fuitems tr[data-fu]").all()}
    assert "接通 reached" in items[ids[0]] and "是 yes" in items[ids[0]] and "满意 satisfied" in items[ids[0]]
    assert "2026年12月6日 09:41:30" in items[ids[0]]
    assert "否 no" in items[ids[1]] and "不满意 dissatisfied" in items[ids[1]]
    assert "未接通 unreached" in items[ids[2]] and "拨打中 calling" in items[ids[3]]
    assert "Seat101" in items[ids[0]] and "普通 ordinary" in items[ids[0]] and "Local/" not in items[ids[0]]
    assert "13900000000" not in await page.inner_text("#fuitems")          # numbers masked
    if os.environ.get("IVR_SCREENSHOTS"):
        await page.locator("#followups").screenshot(path=os.path.join(os.environ["IVR_SCREENSHOTS"],
                                                                      "audit-followups.png"))


async def test_the_page_says_from_when_the_kept_call_summaries_begin(site, browser, redis, monkeypatch):
    """The calls stream is capped (2 million; 1,000 here): once it is full, its
    first kept summary is later than the period's start, the figures counted
    from calls of the hours not summed before cover only the calls since, and
    the page says so under the period, Chinese first."""
    monkeypatch.setenv("IVR_CALLS_KEPT", "1000")        # the report's child reads it
    monkeypatch.setenv("IVR_REPORT_HOURS_S", "0")
    now = await seed(redis)
    kept_from = now - 600                       # this morning, after the period's start (today, from midnight)
    pipe = redis.pipeline(transaction=False)
    for i in range(1000):                       # a full stream: trimmed at its cap
        at = kept_from + i * 0.3
        summary = {"uniqueid": f"1.{i}", "number": "13812340000", "started": f"{at:.3f}",
                   "ended": f"{at + 60:.3f}", "wanted_person": "1", "queue_status": "ANSWERED", "hold_s": "5"}
        pipe.xadd(keys.CALLS, {"j": json.dumps(summary)}, id=f"{int(at * 1000)}-{i}")
    await pipe.execute()
    base, _ = site
    page = await sign_in(browser, base, "audit")
    await page.set_viewport_size({"width": 1400, "height": 900})
    await page.wait_for_selector("#callsfrom >> text=通话记录自")
    local = dt.datetime.fromtimestamp(kept_from, BEIJING)
    text = await page.inner_text("#callsfrom")
    assert text.startswith(f"注意：通话记录自 {local.year}年{local.month}月{local.day}日") and "15秒接通率" in text, text
    assert f"call summaries are kept from {local:%Y-%m-%d %H:%M}" in text, text
    if os.environ.get("IVR_SCREENSHOTS"):
        await page.screenshot(path=os.path.join(os.environ["IVR_SCREENSHOTS"], "audit-calls-from.png"))
