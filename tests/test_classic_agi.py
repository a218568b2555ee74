"""Classic (process-per-call) AGI: ivr-agi over stdin/stdout, driven by the
simulated Asterisk."""

import json
import os
import signal
import subprocess
import sys

from ivr.rehearsal.sim.agi_peer import Caller, QueueOutcome, SimChannel


async def drive(sim: SimChannel, env_extra=None, project_home=None, sighup_on=None):
    env = {**os.environ, "IVR_HOME": str(project_home), **(env_extra or {})}
    with subprocess.Popen([sys.executable, "-m", "ivr.agi.classic", "main"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        return await _dialogue(proc, sim, sighup_on)


async def _dialogue(proc, sim, sighup_on):
    proc.stdin.write("".join(sim.env()))
    proc.stdin.flush()
    sent = []
    while True:
        line = proc.stdout.readline()
        if not line:
            break
        sent.append(line)
        if sighup_on and sighup_on in line:
            # classic AGI: Asterisk signals the hang-up, and answers -1 / 511
            sim.hang_up()
            sim.notified = True
            proc.send_signal(signal.SIGHUP)
        for out in await sim.respond(line.rstrip("\n")):
            proc.stdin.write(out)
        proc.stdin.flush()
    proc.stdin.close()
    err = proc.stderr.read()
    return proc.wait(10), sent, err


async def test_classic_agi_runs_the_same_flow(project_home, tmp_path):
    sim = SimChannel(Caller(digits=["2", "1"], queue=QueueOutcome("timeout")))
    code, sent, err = await drive(sim, {"IVR_DATA_DIR": str(tmp_path)}, project_home)
    assert code == 0, err
    assert sent[0] == "ANSWER\n" and sent[-1] == "HANGUP\n"
    assert 'EXEC Queue "general-q,c,,,300"\n' in sent
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    end = next(e for e in lines if e["event"] == "call_end")
    assert end["outcome"] == "completed"
    assert all(e["call_id"] == sim.uniqueid for e in lines)       # the call's id on every line


async def test_classic_agi_hangup_by_sighup(project_home, tmp_path):
    sim = SimChannel(Caller(digits=["2"]))
    code, sent, err = await drive(sim, {"IVR_DATA_DIR": str(tmp_path)}, project_home, sighup_on="GET DATA")
    assert code == 0, err
    assert not any(s.startswith("EXEC") for s in sent)
    assert '"outcome":"caller_hung_up"' in err
