import os
import subprocess
import sys


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
