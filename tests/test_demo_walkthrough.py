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


def test_the_status_command_the_demo_prints_works_as_copied(redis_url, tmp_path):
    """The demo prints a command for another terminal; pasted into a shell
    whose PATH has no .venv/bin (as after ``./run demo``), in another folder,
    it runs (it said ``ivr status``: "ivr: not found")."""
    from ivr.rehearsal.commands import status_hint

    hint = status_hint(redis_url)
    res = subprocess.run(["sh", "-c", hint], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"})
    assert res.returncode == 0, (hint, res.stderr)
    assert "not found" not in res.stderr
    assert "级别" in res.stdout or "队列" in res.stdout, res.stdout
