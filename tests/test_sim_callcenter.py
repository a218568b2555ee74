"""The simulated hotline's queue agrees with queueing theory: in a steady state
its waiting and abandonment figures match Erlang C (no abandonment) and Erlang
A (exponential patience) within a stated tolerance."""

import random

import pytest

from ivr.rehearsal.sim.callcenter import CallCenter, erlang_a
from ivr.rehearsal.sim.pbx import SimPbx

TOLERANCE = 0.10      # relative, on probabilities (and on the mean wait with abandonment); 15 % on the Erlang C mean wait


def simulate(*, seats, per_s, service_s, patience_s, calls, seed=7):
    rng = random.Random(seed)
    cc = None
    pbx = SimPbx(lambda: cc.now, chan_vars=())
    cc = CallCenter(pbx)
    pbx.add_queue("q")
    for i in range(seats):
        pbx.add_member("q", f"Local/{i}@s/n", f"S{i}", f"Custom:s{i}")
    t, uids = 0.0, []
    for i in range(calls):
        t += rng.expovariate(per_s)
        cc.run_until(t)
        pbx.drain()
        e = cc.join("q", f"1380000{i:05d}", handle_s=rng.expovariate(1 / service_s),
                    patience_s=rng.expovariate(1 / patience_s) if patience_s else float("inf"))
        uids.append(e.uniqueid)
    cc.run_until(t + 10 * service_s)
    warm = uids[len(uids) // 10:]                  # leave out the filling of an empty system
    outs = [cc.outcomes[u] for u in warm]
    return {"p_wait": sum(o.wait_s > 0 for o in outs) / len(outs),
            "mean_wait_s": sum(o.wait_s for o in outs) / len(outs),
            "p_abandon": sum(o.kind == "abandoned" for o in outs) / len(outs)}


def close(a, b, tol=TOLERANCE):
    return abs(a - b) <= tol * max(b, 1e-9)


def test_erlang_c_without_abandonment():
    # Waits in a queue without abandonment are strongly correlated: pool four
    # independent runs (100,000 calls) to get the sampling error under the tolerance.
    per_s = 10 * 0.7 / 180
    runs = [simulate(seats=10, per_s=per_s, service_s=180, patience_s=None, calls=25_000, seed=s) for s in range(4)]
    got = {k: sum(r[k] for r in runs) / len(runs) for k in runs[0]}
    want = erlang_a(per_s, 180, 10)
    assert close(got["p_wait"], want["p_wait"]), (got, want)
    assert close(got["mean_wait_s"], want["mean_wait_s"], 0.15), (got, want)
    assert got["p_abandon"] == 0


def test_erlang_a_with_exponential_patience():
    # overloaded (offered 24 Erlang on 20 seats): only abandonment keeps it stable, as at a 12345 peak
    got = simulate(seats=20, per_s=0.133, service_s=180, patience_s=120, calls=28_000)
    want = erlang_a(0.133, 180, 20, patience_s=120)
    assert close(got["p_abandon"], want["p_abandon"]), (got, want)
    assert close(got["mean_wait_s"], want["mean_wait_s"]), (got, want)
    assert close(got["p_wait"], want["p_wait"]), (got, want)


def test_erlang_formula_sanity():
    # one seat, Poisson arrivals: M/M/1 waits with probability rho, mean wait rho/(mu - lambda)
    r = erlang_a(0.5, 1.0, 1)
    assert r["p_wait"] == pytest.approx(0.5, rel=1e-6) and r["mean_wait_s"] == pytest.approx(1.0, rel=1e-6)
