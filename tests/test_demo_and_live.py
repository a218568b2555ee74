import os
import shutil
import subprocess
import sys

import pytest


def test_demo_runs_every_kind_of_call(project_home, tmp_path):
    env = {**os.environ, "IVR_HOME": str(project_home), "IVR_DATA_DIR": str(tmp_path)}
    env.pop("IVR_REDIS_URL", None)
    res = subprocess.run([sys.executable, "-m", "ivr", "demo", "--walkthrough", "--calls", "10"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    rows = [line for line in res.stdout.splitlines() if "outcome=" in line]
    assert len(rows) == 10
    assert sum("queue=ABANDONED" in r for r in rows) == 1
    assert sum("emergency=yes" in r for r in rows) == 1
    assert "13800130000" not in res.stdout  # numbers are masked


@pytest.mark.live_asterisk
@pytest.mark.skipif(shutil.which("asterisk") is None, reason="no asterisk binary on PATH")
def test_live_asterisk_binary_loads_our_dialplan(project_home, tmp_path):
    """With a real Asterisk: the shipped asterisk/ configuration parses."""
    conf = tmp_path / "etc"
    conf.mkdir()
    for name in ("extensions.conf", "queues.conf", "manager.conf"):
        shutil.copy(project_home / "asterisk" / name, conf / name)
    (conf / "asterisk.conf").write_text(
        f"[directories]\nastetcdir => {conf}\nastrundir => {tmp_path}\nastlogdir => {tmp_path}\n"
        f"astspooldir => {tmp_path}\nastdbdir => {tmp_path}\n")
    cfg = str(conf / "asterisk.conf")
    daemon = subprocess.Popen(["asterisk", "-C", cfg, "-f", "-n"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        out = ""
        for _ in range(60):
            res = subprocess.run(["asterisk", "-C", cfg, "-rx", "dialplan show 12345@ivr-12345"],
                                 capture_output=True, text=True, timeout=10)
            out = res.stdout
            if "AGI(" in out:
                break
            import time
            time.sleep(0.5)
        assert "AGI(${IVR_AGI}/main)" in out
        assert "Queue(general-q,,,,600)" in out
    finally:
        daemon.terminate()
        daemon.wait(30)
