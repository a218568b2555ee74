"""The live model keeps its waiting callers and its window of outcomes as
events arrive (so that a reading does not rescan thousands of callers): every
reading must equal what a plain scan of ``waiting`` and ``outcomes`` gives,
whatever the events, in whatever order."""

import random

import pytest

from ivr.ami.model import LiveModel, Waiting
from ivr.logs import mask_number
from ivr.stats import percentile, percentile_of_sorted

QUEUES = ("general-q", "other-q", "emergency")
EMERGENCY_PRIORITY = 10


def _scan(model: LiveModel, now: float) -> dict:
    """The figures as the model computed them before it kept them: plain scans."""
    def emergency(w: Waiting) -> bool:
        return w.queue in model.emergency_queues or w.priority >= model.emergency_priority

    out: dict = {"queues": {}}
    for q in sorted(model.queue_names):
        line = sorted((w for w in model.waiting.values() if w.queue == q), key=lambda w: (-w.priority, w.seq))
        done = [o for o in model.outcomes if o.queue == q]
        answered = [o for o in done if o.kind == "answered"]
        abandoned = [o for o in done if o.kind == "abandoned"]
        offered = len(answered) + len(abandoned)
        within = sum(1 for o in answered if o.wait_s <= model.service_level_s)
        out["queues"][q] = {
            "waiting": len(line),
            "emergency_waiting": sum(1 for w in line if emergency(w)),
            "longest_wait_s": round(max((now - w.joined_at for w in line), default=0.0), 1),
            "answered": len(answered), "abandoned": len(abandoned),
            "withdrawn": sum(1 for o in done if o.kind == "withdrawn"),
            "abandon_rate": round(len(abandoned) / offered, 4) if offered else 0.0,
            "service_level": round(within / offered, 4) if offered else None,
            "callers": [{"position": i + 1, "uniqueid": w.uniqueid, "number": mask_number(w.number),
                         "priority": w.priority, "wait_s": round(now - w.joined_at, 1), "emergency": emergency(w)}
                        for i, w in enumerate(line)],
        }
    em = [o.wait_s for o in model.outcomes if o.emergency and o.kind == "answered"]
    od = [o.wait_s for o in model.outcomes if not o.emergency and o.kind == "answered"]
    out["emergency"] = {"waiting": sum(1 for w in model.waiting.values() if emergency(w)),
                        "wait_p50_s": percentile(em, 50), "wait_p95_s": percentile(em, 95), "answered": len(em)}
    out["ordinary"] = {"wait_p50_s": percentile(od, 50), "wait_p95_s": percentile(od, 95), "answered": len(od)}
    out["emergency_waiting"] = [w.uniqueid for w in model.waiting.values() if emergency(w)]
    out["ordered"] = {q: [w.uniqueid for w in sorted((w for w in model.waiting.values() if w.queue == q),
                                                     key=lambda w: (-w.priority, w.seq))] for q in QUEUES}
    for name, names in (("observation_all", model.queue_names), ("observation_two", {"general-q", "other-q"})):
        waiting = [w for w in model.waiting.values() if w.queue in names]
        done = [o for o in model.outcomes if o.queue in names and o.kind != "withdrawn"]
        gave_up = sum(1 for o in done if o.kind == "abandoned")
        out[name] = (len(waiting), max((now - w.joined_at for w in waiting), default=0.0),
                     gave_up / len(done) if done else 0.0, len(done))
    return out


def _read(model: LiveModel, now: float) -> dict:
    snap = model.snapshot(now)           # (it moves the window on: read it before the scan)
    keep = ("waiting", "emergency_waiting", "longest_wait_s", "answered", "abandoned", "withdrawn", "abandon_rate",
            "service_level", "callers")
    out: dict = {"queues": {q: {k: f[k] for k in keep} for q, f in snap["queues"].items()},
                 "emergency": snap["emergency"], "ordinary": snap["ordinary"],
                 "emergency_waiting": [w.uniqueid for w in model.emergency_waiting()],
                 "ordered": {q: [w.uniqueid for w in model.ordered(q)] for q in QUEUES}}
    for name, names in (("observation_all", None), ("observation_two", ["general-q", "other-q"])):
        o = model.observation(now, names)
        out[name] = (o.calls_waiting, o.longest_wait_s, o.abandon_rate, o.offered)
    return out


def _entry(w: Waiting, now: float) -> dict:
    return {"Event": "QueueEntry", "Queue": w.queue, "Uniqueid": w.uniqueid, "Channel": w.channel,
            "CallerIDNum": w.number, "Wait": str(int(now - w.joined_at)), "Priority": str(w.priority)}


class _Script:
    """Random AMI traffic: joins (some twice, some at a queue priority), a seat
    answering any caller (leave, then connect), abandons, withdrawals, timeouts,
    priority changes, resyncs, and a clock that now and then steps back."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.model = LiveModel(emergency_queues=["emergency"], emergency_priority=EMERGENCY_PRIORITY, window_s=120)
        self.now = 1000.0
        self.n = 0
        self.longest_line = 0

    def waiting(self) -> str | None:
        return self.rng.choice(list(self.model.waiting)) if self.model.waiting else None

    def step(self, growing: bool) -> None:
        rng, m = self.rng, self.model
        self.longest_line = max(self.longest_line, len(m.waiting))
        self.now += rng.choice([0.0, 0.0, 0.4, 1.0, 2.5, 7.0]) - (1.5 if rng.random() < 0.03 else 0.0)
        uid = self.waiting()
        if uid is None or rng.random() < (0.6 if growing else 0.3):
            self.join(uid)
            return
        r = rng.random()
        if r < 0.3:
            self.answer(uid)
        elif r < 0.55:
            self.give_up(uid)
        elif r < 0.68:                   # a timeout: no AgentConnect follows
            m.apply({"Event": "QueueCallerLeave", "Uniqueid": uid, "Queue": m.waiting[uid].queue}, self.now)
        elif r < 0.85:
            m.note_priority(uid, rng.choice([0, 1, 5, EMERGENCY_PRIORITY, 15]))
        elif r < 0.89:
            m.apply({"Event": "QueueCallerAbandon", "Uniqueid": "gone.1", "Queue": "general-q", "HoldTime": "3"},
                    self.now)
        elif r < 0.93:
            self.resync()
        else:
            m.apply({"Event": "AgentComplete", "Uniqueid": uid, "Queue": "general-q", "Interface": "S1"}, self.now)

    def join(self, waiting: str | None) -> None:
        rng = self.rng
        uid = waiting                    # now and then a caller already waiting joins again
        if uid is None or rng.random() < 0.95:
            self.n += 1
            uid = f"{self.n}.1"
        prio = rng.choice([0, 0, 0, 0, 2, EMERGENCY_PRIORITY, 12])
        ev = {"Event": "QueueCallerJoin", "Uniqueid": uid, "Queue": rng.choice(QUEUES),
              "CallerIDNum": f"138{self.n:08d}", "Channel": f"PJSIP/t-{self.n}"}
        if prio:
            ev["ChanVariable"] = ["IVR_X=1", f"QUEUE_PRIO={prio}"]
        self.model.apply(ev, self.now)

    def answer(self, uid: str) -> None:
        q = self.model.waiting[uid].queue
        self.model.apply({"Event": "QueueCallerLeave", "Uniqueid": uid, "Queue": q}, self.now)
        ev = {"Event": "AgentConnect", "Uniqueid": uid, "Queue": q, "Interface": "S1"}
        if self.rng.random() < 0.8:
            ev["HoldTime"] = str(self.rng.randrange(0, 90))
        self.model.apply(ev, self.now)

    def give_up(self, uid: str) -> None:
        if self.rng.random() < 0.3:
            self.model.note_withdraw(uid)
        q = self.model.waiting[uid].queue
        ev = {"Event": "QueueCallerAbandon", "Uniqueid": uid, "Queue": q}
        if self.rng.random() < 0.5:
            ev["HoldTime"] = str(self.rng.randrange(0, 90))
        self.model.apply(ev, self.now)
        self.model.apply({"Event": "QueueCallerLeave", "Uniqueid": uid, "Queue": q}, self.now)

    def resync(self) -> None:
        """Asterisk's list (priority, then arrival), less a caller it no longer has, plus one the model missed."""
        m = self.model
        listing: list[dict] = [{"Event": "QueueParams", "Queue": q} for q in QUEUES]
        for q in QUEUES:
            listing += [_entry(w, self.now) for w in m.ordered(q) if self.rng.random() < 0.9]
        self.n += 1
        listing.append({"Event": "QueueEntry", "Queue": "other-q", "Uniqueid": f"{self.n}.1", "Channel": "c",
                        "CallerIDNum": "13900000000", "Wait": "12", "Priority": "0"})
        m.rebuild(listing, self.now)


@pytest.mark.parametrize("seed", range(6))
def test_every_reading_equals_a_plain_scan(seed):
    script = _Script(seed)
    for i in range(1500):
        script.step(growing=i < 700)
        if i % 7 == 0:
            at = script.now + script.rng.choice([0.0, 0.3, 30.0])
            assert _read(script.model, at) == _scan(script.model, at), f"seed {seed}, step {i}"
    assert script.model.outcomes and script.longest_line > 50     # the script did make a line and a window


def test_the_longest_wait_forgets_callers_who_left_however_many():
    """The join times are a heap whose entries of callers gone are dropped
    lazily: it must not grow with every caller who ever waited."""
    model = LiveModel()
    model.apply({"Event": "QueueCallerJoin", "Uniqueid": "first", "Queue": "q", "CallerIDNum": "1", "Channel": "c"}, 0)
    for i in range(5000):
        model.apply({"Event": "QueueCallerJoin", "Uniqueid": f"u{i}", "Queue": "q", "CallerIDNum": "1",
                     "Channel": "c"}, i)
        model.apply({"Event": "QueueCallerAbandon", "Uniqueid": f"u{i}", "Queue": "q", "HoldTime": "0"}, i)
    assert model.observation(6000).longest_wait_s == 6000
    assert len(model._lines["q"].joins) < 200


@pytest.mark.parametrize("seed", range(20))
def test_a_percentile_of_sorted_values_is_the_percentile(seed):
    rng = random.Random(seed)
    values = [rng.choice([rng.randrange(0, 300), rng.uniform(0, 300)]) for _ in range(rng.randrange(0, 400))]
    for q in (1, 5, 50, 95, 99):
        assert percentile_of_sorted(sorted(values), q) == percentile(values, q)
