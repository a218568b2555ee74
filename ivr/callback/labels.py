"""What auditors read instead of codes: Chinese (and English) labels for the
callback record's fields and its audit trail, and local time. Pure.

The codes stay in Redis and in the JSON (machines read those); every page, CSV
and command line that a person reads goes through here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from ivr.callback.states import EntryKind as E
from ivr.callback.states import Outcome as O
from ivr.callback.states import RecordState as S

# audit entry kind -> (zh, en)
ENTRY_KINDS: dict[str, tuple[str, str]] = {
    E.RECORDED: ("已记录漏话", "missed call recorded"),
    E.RECORDED_MISDIAL: ("误拨（不回拨）", "misdial (not called back)"),
    E.MERGED: ("合并（同一号码再次漏话）", "merged (same number missed again)"),
    E.REPLAYED: ("重复记录（已忽略）", "replayed (ignored)"),
    E.ASSIGNED: ("已分配坐席", "assigned to a seat"),
    E.ADOPTED: ("通话中由新主进程接管", "taken over by a new leader during the call"),
    E.ATTEMPT: ("回拨结果", "callback attempt"),
    E.SCHEDULED: ("已安排下次回拨", "next attempt scheduled"),
    E.CLOSED: ("已办结", "closed"),
    E.SUPPRESSED: ("未记漏话（交换机记录已接通）", "not recorded: the PBX saw it answered"),
    E.SURVEY: ("回拨后满意度评价", "survey after the callback"),
}
OUTCOMES: dict[str, tuple[str, str]] = {
    O.REACHED: ("已接通", "reached"),
    O.NO_ANSWER: ("无人接听", "no answer"),
    O.BUSY: ("占线", "busy"),
    O.FAILED: ("呼叫失败", "call failed"),
    O.SEAT_HUNG_UP: ("坐席挂断", "seat hung up"),
    O.SEAT_NO_ANSWER: ("坐席未接（不计次）", "seat did not answer (not counted)"),
}
CLOSED_REASONS: dict[str, tuple[str, str]] = {
    "reached": ("回拨接通", "reached by callback"),
    "reached_later": ("市民再次来电已接通", "reached on a later call"),
    "unreached": ("多次回拨未接通", "unreached after the last attempt"),
    "misdial": ("误拨", "misdial"),
    "cancelled": ("已取消", "cancelled"),
    "pbx_answered": ("交换机记录显示已接通", "answered, by the PBX's queue_log"),
}
KINDS: dict[str, tuple[str, str]] = {
    "emergency": ("紧急", "emergency"), "courtesy": ("预约回拨", "courtesy"), "ordinary": ("普通", "ordinary")}
STATES: dict[str, tuple[str, str]] = {
    S.OPEN: ("待回拨", "open"), S.ASSIGNED: ("拨打中", "being dialled"), S.CLOSED: ("已结", "closed")}
MISS_REASONS: dict[str, tuple[str, str]] = {
    "abandoned": ("排队中挂断", "hung up while waiting"),
    "queue_timeout": ("排队超时", "queue timeout"),
    "callback_accepted": ("选择回拨", "accepted a callback"),
    "message_left": ("已留言", "left a message"),
    "sent_to_message": ("转留言", "sent to a message"),
    "hung_up_in_flow": ("菜单中挂断", "hung up in the menu"),
    "queue_failed": ("排队失败", "queue failed"),
    "lines_full": ("线路忙未接通", "lines full: heard busy"),
}

# the reconciliation of a PBX's queue_log (ivr.callback.pbx_record): how the caller
# left the queue, and what was found
PBX_OUTCOMES: dict[str, tuple[str, str]] = {
    "waiting": ("排队中", "waiting"), "answered": ("已接通", "answered"), "abandoned": ("排队中挂断", "abandoned"),
    "timeout": ("排队超时", "timed out"), "key": ("按键离开", "left with a key"),
    "withdrawn": ("选择回拨离队", "withdrawn for a callback"),
}
PBX_VERDICTS: dict[str, tuple[str, str]] = {
    "pending": ("待核对", "not settled yet"),
    "agreed": ("一致", "matched: the engine's record agrees"),
    "callback_closed": ("已接通，回拨已撤销", "answered: the open callback was closed"),
    "callback_dialling": ("已接通，回拨拨打中（本次后撤销）", "answered: the callback being dialled closes after it"),
    "engine_blind": ("已接通，引擎未见（未记漏话）", "answered while its engine was dead: no missed call recorded"),
    "recorded": ("漏话已补记", "left without a seat, no engine saw it: missed call recorded"),
    "engine_holds": ("引擎长时间未结", "a living engine held the call too long to judge"),
    "too_old": ("过久未补记", "left too long ago: not recorded"),
    "no_number": ("无主叫号码", "no caller number: nobody to call back"),
}


def label(table: Mapping[str, tuple[str, str]], code: str | None, lang: str = "zh") -> str:
    """The label of ``code`` (``cancelled: note`` counts as ``cancelled``);
    an unknown code is shown as it is."""
    code = code or ""
    pair = table.get(code) or table.get(code.split(":", 1)[0])
    if pair is None:
        return code
    return pair[0] if lang == "zh" else pair[1]


def local_time(ts: float | str | None, tz: dt.tzinfo | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """Epoch seconds -> the hotline's local time; '' for nothing."""
    if ts in (None, ""):
        return ""
    return dt.datetime.fromtimestamp(float(ts), tz).strftime(fmt)


def seat_name(seat: str | None, names: Mapping[str, str] | None = None) -> str:
    """A seat as staff know it: its name (queue/seats.yaml, or the queue
    member's name), not the interface Asterisk dials (``Local/101@ivr-seats/n``);
    an unknown seat is shown as it is."""
    seat = seat or ""
    return (names or {}).get(seat) or seat


def entry_summary(e: Mapping[str, Any], names: Mapping[str, str] | None = None) -> tuple[str, str]:
    """One audit entry's details in (zh, en); seats by their names."""
    k = e.get("kind")
    seat = e.get("seat_name") or seat_name(e.get("seat"), names)
    if k == "attempt":
        o = e.get("outcome")
        return (f"第 {e.get('attempt', '?')} 次 · {label(OUTCOMES, o)} · 坐席 {seat}",
                f"attempt {e.get('attempt', '?')} · {label(OUTCOMES, o, 'en')} · seat {seat}")
    if k == "closed":
        r = e.get("reason")
        note = f" · {e['note']}" if e.get("note") else ""
        by = f" · {e['by']}" if e.get("by") else ""
        return label(CLOSED_REASONS, r) + note + by, label(CLOSED_REASONS, r, "en") + note + by
    if k in ("recorded", "recorded_misdial", "merged"):
        return (f"{label(KINDS, e.get('type'))} · {label(MISS_REASONS, e.get('reason'))} · 第 {e.get('calls', 1)} 次来电",
                f"{label(KINDS, e.get('type'), 'en')} · {label(MISS_REASONS, e.get('reason'), 'en')} · "
                f"call {e.get('calls', 1)}")
    if k in ("assigned", "adopted"):
        return f"坐席 {seat}", f"seat {seat}"
    if k == "scheduled":
        return "", ""
    return "", ""


def trail_row(e: Mapping[str, Any], tz: dt.tzinfo | None, names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An audit entry as the auditors' timeline shows it."""
    zh, en = entry_summary(e, names)
    if e.get("kind") == "scheduled" and e.get("next_at"):
        zh, en = f"下次 {local_time(e['next_at'], tz)}", f"next {local_time(e['next_at'], tz)}"
    return {"at": e.get("at"), "time": local_time(e.get("at"), tz), "kind": e.get("kind"),
            "label": label(ENTRY_KINDS, e.get("kind")), "label_en": label(ENTRY_KINDS, e.get("kind"), "en"),
            "detail": zh, "detail_en": en}
