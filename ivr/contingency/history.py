"""The contingency audit trail as seat managers read it: Chinese labels for
the entry kinds and for who acted (``system:ami`` is the engine's AMI link, not
a person), local time. Pure; the codes stay in the log."""

from __future__ import annotations

import datetime as dt
from typing import Any

KINDS = {
    "level_set": ("切换级别", "level set"),
    "expiry_renewed": ("延长有效期", "expiry renewed"),
    "proposed": ("自动建议", "proposed"),
    "proposal_rejected": ("拒绝建议", "proposal rejected"),
    "seat_action": ("坐席调整", "seat action"),
    "level_applied": ("坐席调整完成", "seat actions done"),
}
HOW = {"manual": ("人工", "by hand"), "auto": ("自动", "automatic"), "expiry": ("到期", "expiry"),
       "accepted": ("接受建议", "proposal accepted")}
SYSTEM = {"system:ami": ("系统（AMI 坐席控制）", "system (AMI seat control)"),
          "system:auto": ("系统（自动规则）", "system (automatic rules)"),
          "system:expiry": ("系统（到期恢复）", "system (expiry)"),
          "system:default": ("系统默认", "system default"),
          "system:bootstrap": ("系统（首次启动）", "system (first start)")}
SEAT_ACTIONS = {"add": ("加入队列", "added to queue"), "remove": ("移出队列", "removed from queue"),
                "pause": ("暂停", "paused"), "unpause": ("召回", "unpaused")}


def who_label(by: str | None, lang: str = "zh") -> str:
    """``web:wang`` -> ``wang（控制台）``; ``cli:li`` -> ``li（命令行）``; system names in words."""
    by = by or ""
    if by in SYSTEM:
        return SYSTEM[by][0 if lang == "zh" else 1]
    kind, _, user = by.partition(":")
    where = {"web": ("控制台", "console"), "cli": ("命令行", "command line")}.get(kind)
    if where and user:
        return f"{user}（{where[0]}）" if lang == "zh" else f"{user} ({where[1]})"
    return by


def _detail(e: dict[str, Any], lang: str) -> str:
    zh = lang == "zh"
    k = e.get("kind")
    if k == "level_set":
        how = HOW.get(e.get("how", ""), (e.get("how", ""),) * 2)[0 if zh else 1]
        return f"{e.get('from')} → {e.get('to')}（{how}）" if zh else f"{e.get('from')} → {e.get('to')} ({how})"
    if k == "proposed":
        return f"{e.get('from')} → {e.get('to')}"
    if k == "proposal_rejected":
        return f"→ {e.get('to')}"
    if k == "seat_action":
        act = SEAT_ACTIONS.get(e.get("action", ""), (e.get("action", ""),) * 2)[0 if zh else 1]
        res = e.get("result") or {}
        ok = ("成功" if zh else "ok") if res.get("ok") else ("失败" if zh else "failed") + f": {res.get('message', '')}"
        queue = f" {e['queue']}" if e.get("queue") else ""
        return f"{e.get('name') or e.get('interface', '')} {act}{queue} · {ok}"
    if k == "level_applied":
        failed = e.get("failed", 0)
        return (f"级别 {e.get('level')}" + (f"，{failed} 项待重试" if failed else "")) if zh else \
            (f"level {e.get('level')}" + (f", {failed} to retry" if failed else ""))
    if k == "expiry_renewed":
        return f"级别 {e.get('level')}" if zh else f"level {e.get('level')}"
    return ""


def history_row(e: dict[str, Any], tz: dt.tzinfo) -> dict[str, Any]:
    """One audit entry (its JSON) for the history table (codes kept alongside the labels)."""
    pair = KINDS.get(e.get("kind", ""), (e.get("kind", ""),) * 2)
    exp = e.get("expires_at")
    return {**e, "time": dt.datetime.fromtimestamp(float(e.get("at", 0)), tz).strftime("%Y-%m-%d %H:%M:%S"),
            "label": pair[0], "label_en": pair[1], "by_label": who_label(e.get("by")),
            "by_label_en": who_label(e.get("by"), "en"), "detail": _detail(e, "zh"), "detail_en": _detail(e, "en"),
            "expires": dt.datetime.fromtimestamp(float(exp), tz).strftime("%m-%d %H:%M") if exp else ""}
