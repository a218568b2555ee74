"""`ivr bench model` on a small line: the scenario keeps its standing line in
Asterisk 22's event order, and a baseline copy of the model, loaded beside
it, gives the same figures."""

import argparse
from pathlib import Path

import ivr.ami.model
from ivr.rehearsal.bench import model as bench_model


def test_the_scenario_keeps_its_line_in_asterisks_order():
    sched = bench_model.scenario(seats=20, standing=150, calls=400, rate=20, warmup_s=400, publish_s=0.25)
    m = ivr.ami.model.LiveModel()
    events = sched.warmup + [e for _, batch in sched.batches for e in batch]
    for t, ev in events:
        m.apply(ev, t)
    assert len(m.waiting) == 150
    names = [ev["Event"] for _, ev in events]
    for i, name in enumerate(names):
        if name == "AgentConnect":
            assert names[i - 1] == "QueueCallerLeave"
        if name == "QueueCallerAbandon":
            assert names[i + 1] == "QueueCallerLeave"
    assert {"QueueCallerJoin", "QueueCallerLeave", "AgentConnect", "AgentComplete", "QueueCallerAbandon"} <= set(names)


def test_a_baseline_copy_gives_the_same_figures(tmp_path):
    copy = tmp_path / "model_copy.py"
    copy.write_text(Path(ivr.ami.model.__file__).read_text())
    args = argparse.Namespace(seats=20, callers=150, calls=300, rate=20.0, warmup_s=60.0, publish_s=0.25, seed=3,
                              rounds=1, baseline=str(copy), json=None)
    r = bench_model.run(args)
    assert r["figures_agree"] is True and set(r["models"]) == {"baseline", "model"}
    est = r["general_q_estimated_wait_s"]
    assert est["baseline"] == est["model"] > 0
