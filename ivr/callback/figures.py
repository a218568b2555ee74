"""The national figures a 12345 centre is assessed on, per period, per day, per
seat and per kind of call (definitions in docs/audit-report.md). Pure: call
summaries and callback attempts are added one at a time (a month's millions are
never held), the figures come out at the end.

- ``answered_within_15s_rate`` 15秒接通率 (GB/T 33358-2016): calls answered
  within 15 s of joining the queue ÷ calls that wanted a person;
- ``answer_rate_24h`` 24小时接通率 (GB/T 33358-2016: at least 95 % over any 24
  hours): answered ÷ offered over the 24 hours ending at the period's end (or
  now), and the lowest of any 24 whole hours inside the period;
- ``average_speed_of_answer_s`` 平均应答时长: the mean wait of the calls answered;
- ``abandoned_within_15s`` 15秒内放弃: calls that left the queue unanswered
  within 15 s (a quick hang-up, not counted against the seats by many centres);
- ``satisfaction_rate`` 满意率: (满意 + 基本满意) ÷ surveys offered, with the
  split by answer in ``survey``; no answer is its own outcome.

Kinds: ``live`` (a citizen's call in), ``callback`` (an attempt of the
missed-call callback), and whatever a summary or an attempt names in its
``kind`` field (``ivr.calls.service``: "" a call in, ``callback`` the
citizen's leg after a callback conversation, ``followup`` a follow-up call);
the kind comes from the record, never from this module.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Mapping, Sequence
from typing import Any

from ivr.callback.labels import seat_name
from ivr.callback.policy import LINES_FULL, reached_a_person
from ivr.callback.states import Outcome

WITHIN_S = 15.0                 # GB/T 33358-2016: answered within 15 seconds
HOUR_S, DAY_S = 3600, 86400
LIVE, CALLBACK, FOLLOW_UP = "live", "callback", "follow_up"
KIND_FIELD = "call_kind"        # a callback attempt of another kind names its kind here
SUMMARY_KIND = "kind"           # a call summary's kind (ivr.calls.service: "" called in, "callback", "followup")
_SUMMARY_KINDS = {"": LIVE, "callback": CALLBACK, "followup": FOLLOW_UP}


def summary_kind(s: Mapping[str, str]) -> str:
    """The kind of a call summary: a citizen's call in (``live``), the
    citizen's leg after a callback conversation (its survey: ``callback``), or
    a follow-up call (``follow_up``)."""
    raw = str(s.get(SUMMARY_KIND) or "")
    if not raw:
        return str(s.get(KIND_FIELD) or LIVE)
    return _SUMMARY_KINDS.get(raw, raw)
SURVEY_ANSWERS = ("satisfied", "basically_satisfied", "dissatisfied", "no_answer")
# the names staff read, Chinese first (the CLI, the printed month, the CSV)
LABELS = {
    "answered_within_15s_rate": "15秒接通率",
    "answer_rate_24h": "24小时接通率",
    "answer_rate_24h_lowest": "任意24小时最低接通率",
    "average_speed_of_answer_s": "平均应答时长（秒）",
    "abandoned_within_15s": "15秒内放弃",
    "satisfaction_rate": "满意率",
    "offered": "呼入（需人工）",
    "answered": "接通",
    "answered_within_15s": "15秒内接通",
    "surveys_offered": "满意度调查",
    "satisfied": "满意", "basically_satisfied": "基本满意", "dissatisfied": "不满意", "no_answer": "未评价",
}
KIND_LABELS = {LIVE: "人工来电 live", CALLBACK: "漏话回拨 callback", FOLLOW_UP: "智能回访 follow-up"}


def asks_for_a_seat(s: Mapping[str, str]) -> bool:
    """A call in that asked for a person, as the figures count it: not the
    redial of a citizen already registered for a callback, who was told their
    place in the callback order instead of queueing again (issue 23). Their
    request is the callback's, counted once, under callbacks."""
    return s.get("wanted_person") == "1" and s.get("already_registered") != "1"


def _float(v: object) -> float | None:
    try:
        return float(v) if v not in (None, "") else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


class Tally:
    """The counts behind the figures of one period, seat or kind. ``offered``
    counts calls that wanted a person (or callback attempts); a seat's tally
    has none (a call nobody answered is no seat's), so its rates are None."""

    __slots__ = ("offered", "answered", "within_15s", "wait_sum_ms", "waits", "abandoned_within_15s",
                 "inbound", "outbound", "survey", "hours")

    # the counts, in the order ``dump`` writes them
    COUNTS = ("offered", "answered", "within_15s", "wait_sum_ms", "waits", "abandoned_within_15s")

    def __init__(self) -> None:
        self.offered = self.answered = self.within_15s = self.waits = self.abandoned_within_15s = 0
        # whole milliseconds: a sum of floats depends on the order of the adds, and the
        # month's figures are summed from its hours' (ivr.callback.rollup) in another order
        self.wait_sum_ms = 0
        self.inbound = False            # any call in: the wait figures mean something
        self.outbound = False           # any attempt out (a callback): without calls in, no wait figures
        self.survey = dict.fromkeys(SURVEY_ANSWERS, 0)
        self.hours: dict[int, list[int]] = {}   # epoch hour -> [offered, answered], for the 24-hour rate

    def offer(self, answered: bool) -> None:
        """Offered (and answered): its hour is the cell's (``Figures``) or the minute's (the wall)."""
        self.offered += 1
        if answered:
            self.answered += 1

    def answer(self, wait_s: float | None, inbound: bool, count: bool = True) -> None:
        """An answer: its wait; ``count`` False when ``offer`` counted it already."""
        if count:
            self.answered += 1
        if not inbound:
            self.outbound = True
        else:
            self.inbound = True
            if wait_s is not None:
                self.waits += 1
                self.wait_sum_ms += round(wait_s * 1000)
                self.within_15s += wait_s <= WITHIN_S

    def call_in(self, answered: bool, wait_s: float | None, abandoned: bool) -> None:
        """A citizen's call that wanted a person."""
        self.inbound = True
        self.offer(answered)
        if answered:
            self.answer(wait_s, True, count=False)
        elif abandoned and wait_s is not None and wait_s <= WITHIN_S:
            self.abandoned_within_15s += 1

    def merge(self, other: Tally, hour: int | None = None, calls: bool = True) -> None:
        """Add ``other``'s counts: those of one hour (a cell of ``Figures``, a
        minute of the wall) when ``hour`` is given; ``calls`` False: its
        survey only (a kind that is not counted with the calls in)."""
        for a, n in other.survey.items():
            self.survey[a] += n
        if not calls:
            return
        for k in self.COUNTS:
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.inbound |= other.inbound
        self.outbound |= other.outbound
        hours = other.hours.items() if hour is None else ((hour, (other.offered, other.answered)),)
        for h, (o, a2) in hours:
            mine = self.hours.setdefault(h, [0, 0])
            mine[0] += o
            mine[1] += a2

    def dump(self) -> list[Any]:
        """The counts as JSON (``load`` reads them back): an hour's part of the month."""
        return [*(getattr(self, k) for k in self.COUNTS), self.inbound, self.outbound,
                [self.survey[a] for a in SURVEY_ANSWERS], [[h, o, a] for h, (o, a) in self.hours.items()]]

    def add_row(self, row: Sequence[Any]) -> None:
        """Add the counts ``dump`` wrote (a month adds some 150,000 seat-hours:
        no Tally is made for each)."""
        offered, answered, within, wait_ms, waits, abandoned, inbound, outbound, survey, hours = row
        self.offered += offered
        self.answered += answered
        self.within_15s += within
        self.wait_sum_ms += wait_ms
        self.waits += waits
        self.abandoned_within_15s += abandoned
        self.inbound |= bool(inbound)
        self.outbound |= bool(outbound)
        s = self.survey
        for a, n in zip(SURVEY_ANSWERS, survey, strict=True):
            s[a] += n
        for h, o, a2 in hours:
            mine = self.hours.setdefault(int(h), [0, 0])
            mine[0] += o
            mine[1] += a2

    def rated(self, answer: str) -> None:
        if answer in self.survey:
            self.survey[answer] += 1

    def figures(self, last_24h: tuple[float, float], period: tuple[float, float]) -> dict[str, Any]:
        """``last_24h``: [from, to) of the rolling 24-hour rate; ``period``: the
        report's [start, end), whose 24-hour windows give the lowest."""
        s = self.survey
        offered_surveys = sum(s.values())
        waits = self.inbound or not self.outbound       # no call at all: counts 0, rates None
        off24, ans24 = self._between(*last_24h)
        lowest, lowest_from = self._lowest(*period)
        return {
            "offered": self.offered, "answered": self.answered,
            "answered_within_15s": self.within_15s if waits else None,
            "answered_within_15s_rate": _rate(self.within_15s, self.offered) if waits else None,
            "answer_rate": _rate(self.answered, self.offered),
            "answer_rate_24h": _rate(ans24, off24),
            "answer_rate_24h_offered": off24,
            "answer_rate_24h_lowest": lowest, "answer_rate_24h_lowest_from": lowest_from,
            "average_speed_of_answer_s": round(self.wait_sum_ms / self.waits / 1000, 1) if self.waits else None,
            "abandoned_within_15s": self.abandoned_within_15s if waits else None,
            "satisfaction_rate": _rate(s["satisfied"] + s["basically_satisfied"], offered_surveys),
            "survey": {"offered": offered_surveys, "answered": offered_surveys - s["no_answer"], **s},
        }

    def _between(self, lo: float, hi: float) -> tuple[int, int]:
        off = ans = 0
        for h in range(int(lo // HOUR_S), int(-(-hi // HOUR_S))):
            o, a = self.hours.get(h, (0, 0))
            off, ans = off + o, ans + a
        return off, ans

    def _lowest(self, start: float, end: float) -> tuple[float | None, float | None]:
        """The lowest 接通率 of any 24 whole hours inside [start, end) that had
        calls (None when the period is shorter than 24 hours)."""
        first, last = int(-(-start // HOUR_S)), int(end // HOUR_S)     # whole hours inside
        if last - first < 24 or not self.hours:
            return None, None
        counts = [self.hours.get(h, (0, 0)) for h in range(first, last)]
        off = sum(c[0] for c in counts[:24])
        ans = sum(c[1] for c in counts[:24])
        best: tuple[float, int] | None = (ans / off, 0) if off else None
        for i in range(24, len(counts)):
            off += counts[i][0] - counts[i - 24][0]
            ans += counts[i][1] - counts[i - 24][1]
            if off and (best is None or ans / off < best[0]):
                best = (ans / off, i - 23)
        if best is None:
            return None, None
        return round(best[0], 4), float((first + best[1]) * HOUR_S)


class Figures:
    """The figures of [start, end): add each call summary (``add_call``) and
    each callback attempt (``add_attempt``) once, in any order, then ``result``.
    ``now``: the engine's clock, for the rolling 24 hours of a period not
    over yet. ``tz``: the hotline's, for the days."""

    def __init__(self, start: float, end: float, tz: dt.tzinfo, now: float | None = None) -> None:
        self.start, self.end, self.tz = start, end, tz
        self.now = now
        # one tally per (kind, epoch hour): a call touches one, the period's, kinds' and days' are summed at the end
        self._cells: dict[tuple[str, int], Tally] = {}
        self.seats: dict[str, Tally] = {}

    def _cell(self, kind: str, at: float) -> Tally:
        key = (kind, int(at // HOUR_S))
        t = self._cells.get(key)
        if t is None:
            t = self._cells[key] = Tally()
        return t

    def _seat(self, seat: str) -> Tally:
        t = self.seats.get(seat)
        if t is None:
            t = self.seats[seat] = Tally()
        return t

    def add_call(self, s: Mapping[str, str]) -> None:
        """A call summary (``ivr.calls.service.summary_fields``): counted when it
        started in the period. Only calls that wanted a person are offered; a
        survey counts whatever the call was. The period's and the days'
        figures are of live calls (another kind's, the follow-up calls out,
        count under their kind only); surveys of every kind."""
        at = _float(s.get("started"))
        if at is None or not self.start <= at < self.end:
            return
        cell = self._cell(summary_kind(s), at)
        if asks_for_a_seat(s):
            answered = s.get("queue_status") == "ANSWERED"        # policy.reached_a_person
            wait = _wait(s)
            cell.call_in(answered, wait, s.get("queue_status") == "ABANDONED")
            if answered and s.get("member"):
                self._seat(s["member"]).answer(wait, True)
        answer = s.get("survey")
        if answer:
            cell.rated(answer)
            seat = s.get("survey_seat") or s.get("member")
            if seat:
                self._seat(seat).rated(answer)

    def add_attempt(self, e: Mapping[str, Any]) -> None:
        """A callback attempt's audit entry (kind 'attempt'): offered once the
        seat answered (a seat that did not pick up dialled nobody), answered
        when the citizen was reached. Its survey, once callbacks record one
        with the attempt (``survey``, ``survey_seat``), counts like a call's."""
        at = _float(e.get("at"))
        if at is None or not self.start <= at < self.end or e.get("outcome") == Outcome.SEAT_NO_ANSWER:
            return
        cell = self._cell(str(e.get(KIND_FIELD) or CALLBACK), at)
        reached = e.get("outcome") == Outcome.REACHED
        cell.outbound = True
        cell.offer(reached)
        seat = str(e.get("seat") or "")
        if reached and seat:
            self._seat(seat).answer(None, False)
        answer = e.get("survey")
        if answer:
            cell.rated(str(answer))
            rated_seat = str(e.get("survey_seat") or seat)
            if rated_seat:
                self._seat(rated_seat).rated(str(answer))

    def merge(self, other: Figures) -> None:
        """Add ``other``'s calls and attempts (another hour of the same period)."""
        for key, t in other._cells.items():
            self._cells.setdefault(key, Tally()).merge(t)
        for seat, t in other.seats.items():
            self._seat(seat).merge(t)

    def dump(self) -> dict[str, Any]:
        """The tallies as JSON (``load`` reads them back)."""
        return {"cells": [[k, h, t.dump()] for (k, h), t in self._cells.items()],
                "seats": {s: t.dump() for s, t in self.seats.items()}}

    def load(self, d: Mapping[str, Any]) -> None:
        """Add the tallies ``dump`` wrote (as ``merge`` adds another's)."""
        for k, h, row in d.get("cells", ()):
            key = (str(k), int(h))
            t = self._cells.get(key)
            if t is None:
                t = self._cells[key] = Tally()
            t.add_row(row)
        for s, row in d.get("seats", {}).items():
            self._seat(str(s)).add_row(row)

    def result(self) -> dict[str, Any]:
        """The period's figures, ``per_kind``, ``per_seat`` and ``per_day`` (each
        day's rolling 24 hours is the day itself)."""
        total, kinds, days = Tally(), dict[str, Tally](), dict[str, Tally]()
        day_of: dict[int, str] = {}
        for (kind, hour), cell in self._cells.items():
            kinds.setdefault(kind, Tally()).merge(cell, hour)
            day = day_of.get(hour)
            if day is None:
                day = day_of[hour] = dt.datetime.fromtimestamp(hour * HOUR_S, self.tz).date().isoformat()
            total.merge(cell, hour, calls=kind == LIVE)
            days.setdefault(day, Tally()).merge(cell, hour, calls=kind == LIVE)
        upto = min(self.end, self.now) if self.now is not None else self.end
        last = (max(self.start, upto - DAY_S), upto)
        period = (self.start, self.end)
        out = total.figures(last, period)
        out["per_kind"] = {k: t.figures(last, period) for k, t in sorted(kinds.items())}
        # a call nobody answered is no seat's: a seat has no abandons, and no denominator for the rates of calls
        out["per_seat"] = {k: {**t.figures(last, period), "abandoned_within_15s": None}
                           for k, t in sorted(self.seats.items())}
        per_day = {}
        for day, t in sorted(days.items()):
            d0 = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), self.tz).timestamp()
            per_day[day] = t.figures((d0, d0 + DAY_S), (d0, d0 + DAY_S))
        out["per_day"] = per_day
        out["answer_rate_24h_from"], out["answer_rate_24h_to"] = last
        return out


def count_live_call(t: Tally, s: Mapping[str, str]) -> None:
    """One call summary into one tally, as ``Figures.add_call`` counts it in the
    period's figures (a call of another kind is not counted: the wall's
    figures are of citizens' calls in)."""
    at = _float(s.get("started"))
    if at is None or summary_kind(s) != LIVE:
        return
    if asks_for_a_seat(s):
        t.call_in(reached_a_person(s), _wait(s), s.get("queue_status") == "ABANDONED")
    if s.get("survey"):
        t.rated(s["survey"])


def _wait(s: Mapping[str, str]) -> float | None:
    """How long the caller waited in the queue: Asterisk's QEHOLDTIME
    (``hold_s``; for a caller who hung up waiting, the reconciler's and the
    PBX record's wait), else the engine's own measure of the time in
    ``Queue()`` (``queue_wait_s``). A call refused busy (lines full) waited
    for nobody: None."""
    if s.get("outcome") == LINES_FULL:
        return None
    hold = _float(s.get("hold_s"))
    return hold if hold is not None else _float(s.get("queue_wait_s"))


def figures_of(calls: Sequence[Mapping[str, str]], attempts: Sequence[Mapping[str, Any]], start: float, end: float,
               tz: dt.tzinfo, now: float | None = None) -> dict[str, Any]:
    """The figures of a few calls and attempts held in memory (the drill, tests)."""
    f = Figures(start, end, tz, now)
    for c in calls:
        f.add_call(c)
    for a in attempts:
        f.add_attempt(a)
    return f.result()


def rate_text(v: float | None) -> str:
    """A rate (0..1) as staff read it: '—' when there was nothing to divide."""
    return "—" if v is None else f"{round(100 * v, 2):g}%"


# (field, Chinese header) of the figures' CSV, in its column order
CSV_COLUMNS = (("offered", "需人工来电 offered"), ("answered", "接通 answered"),
               ("answered_within_15s", "15秒内接通"), ("answered_within_15s_rate", "15秒接通率"),
               ("answer_rate_24h", "24小时接通率"), ("answer_rate_24h_lowest", "任意24小时最低接通率"),
               ("average_speed_of_answer_s", "平均应答时长（秒）"), ("abandoned_within_15s", "15秒内放弃"),
               ("satisfaction_rate", "满意率"))
SURVEY_COLUMNS = (("offered", "满意度调查"), ("satisfied", "满意"), ("basically_satisfied", "基本满意"),
                  ("dissatisfied", "不满意"), ("no_answer", "未评价"))
_RATES = {"answered_within_15s_rate", "answer_rate_24h", "answer_rate_24h_lowest", "satisfaction_rate"}


def figures_csv(fig: Mapping[str, Any], names: Mapping[str, str] | None = None) -> str:
    """The national figures for Excel: one row for the period, one per day,
    per kind and per seat (by the seat's name), Chinese headers, rates as
    percentages, UTF-8 with a byte-order mark."""
    buf = io.StringIO()
    buf.write("\ufeff")
    w = csv.writer(buf)
    w.writerow(["范围 scope", "名称 name", *(h for _, h in CSV_COLUMNS), *(h for _, h in SURVEY_COLUMNS)])

    def row(scope: str, name: str, v: Mapping[str, Any]) -> None:
        cells = [("" if v.get(f) is None else rate_text(v[f]) if f in _RATES else v[f]) for f, _ in CSV_COLUMNS]
        w.writerow([scope, name, *cells, *(v["survey"][f] for f, _ in SURVEY_COLUMNS)])
    row("合计 period", "", fig)
    for day, v in fig.get("per_day", {}).items():
        row("日 day", day, v)
    for kind, v in fig.get("per_kind", {}).items():
        row("类别 kind", KIND_LABELS.get(kind, kind), v)
    for seat, v in fig.get("per_seat", {}).items():
        row("坐席 seat", seat_name(seat, dict(names or {})), v)
    return buf.getvalue()
