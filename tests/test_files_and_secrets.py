"""Files and secrets: the embedded Redis's data is the engine's alone (0700 /
0600), `ivr config` and the logs never show a secret, and `ivr serve` says
loudly when the AMI secret is still the one shipped in asterisk/manager.conf."""

import io
import json
import os
import stat
import subprocess
import sys

from ivr import logs
from ivr.redisdb.server import EmbeddedRedis
from ivr.runtime.engine import warn_shipped_secret
from ivr.settings import load_settings
from tests.conftest import copy_project

SECRET = "s3cret-Ami-pw"


def test_embedded_redis_files_are_private(tmp_path):
    data = tmp_path / "data"
    (data / "redis").mkdir(parents=True)
    old = data / "redis" / "appendonly.aof"
    old.write_text("*1\r\n")                     # left world-readable by an earlier version
    os.chmod(old, 0o644)
    os.chmod(data / "redis", 0o755)
    server = EmbeddedRedis(data, persist=True)
    server.start()
    try:
        import redis
        r = redis.Redis(unix_socket_path=server.socket_path)
        r.set("x", "13800138000")
        r.close()
    finally:
        server.stop()
    folder = data / "redis"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in files), \
        {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}


def test_ivr_config_masks_secrets(project_home, tmp_path):
    env = {**os.environ, "IVR_HOME": str(project_home), "IVR_DATA_DIR": str(tmp_path),
           "IVR_AMI_URL": f"ami://ivr:{SECRET}@10.0.0.5:5038", "IVR_REDIS_URL": f"redis://default:{SECRET}@h:6379/0"}
    out = subprocess.run([sys.executable, "-m", "ivr", "config"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert SECRET not in out.stdout + out.stderr
    assert "ami = ami://ivr:***@10.0.0.5:5038" in out.stdout and "redis://default:***@h:6379/0" in out.stdout


def test_logs_never_carry_a_secret():
    buf = io.StringIO()
    logs.configure("info", "json", stream=buf)
    try:
        settings = load_settings({"IVR_AMI_URL": f"ami://ivr:{SECRET}@10.0.0.5:5038"})
        logs.get().info("started", settings=repr(settings), ami=str(settings.ami), secret=SECRET,
                        url=f"ami://ivr:{SECRET}@10.0.0.5:5038", note=f"using redis://:{SECRET}@h:6379 now")
    finally:
        logs.configure("warning", "console")
    line = json.loads(buf.getvalue())
    assert SECRET not in buf.getvalue()
    assert line["secret"] == "***" and line["url"] == "ami://ivr:***@10.0.0.5:5038"


def test_logs_mask_phone_numbers_in_fields_and_in_the_event_itself():
    buf = io.StringIO()
    logs.configure("info", "json", stream=buf)
    try:
        log = logs.get()
        log.info("call_start", caller="13800138000", flow="main")
        log.info("callback for 13800138000 and 01012345678 failed")
        log.info("level 2 set at 12:00 by 12345")          # short numbers: not phone numbers
    finally:
        logs.configure("warning", "console")
    first, second, third = (json.loads(x) for x in buf.getvalue().splitlines())
    assert (first["event"], first["caller"], first["flow"]) == ("call_start", "138******00", "main")
    assert second["event"] == "callback for 138******00 and 010******78 failed"
    assert third["event"] == "level 2 set at 12:00 by 12345"
    assert "13800138000" not in buf.getvalue()


def test_serve_warns_when_the_ami_secret_is_the_shipped_one(project_home, tmp_path):
    home = copy_project(project_home, tmp_path / "home", ("flows", "asterisk"))
    settings = load_settings({"IVR_HOME": str(home), "IVR_AMI_URL": "ami://ivr:change-this-secret@127.0.0.1:5038"})
    buf, err = io.StringIO(), io.StringIO()
    logs.configure("info", "json", stream=buf)
    try:
        assert warn_shipped_secret(settings, logs.get("test"), stderr=err)
    finally:
        logs.configure("warning", "console")
    event = json.loads(buf.getvalue())
    assert event["level"] == "error" and event["event"] == "ami_secret_is_the_shipped_one"
    assert event["where"] == "IVR_AMI_URL"
    assert err.getvalue().startswith("警告: AMI 密码仍是随附的") and err.getvalue().count("\n") == 1
    assert not warn_shipped_secret(load_settings({"IVR_HOME": str(home)}), logs.get("test"), stderr=err)  # no AMI
    settings = load_settings({"IVR_HOME": str(home), "IVR_AMI_URL": "ami://ivr:a-site-secret@127.0.0.1:5038"})
    assert not warn_shipped_secret(settings, logs.get("test"), stderr=err)


def test_logs_follow_stderr_as_it_is_when_a_line_is_written(monkeypatch):
    """A stream swapped in and closed since the logs were configured (a test's
    capture) made every later log line raise, and the console's error handler
    with it: a plain-text 500 instead of its JSON one."""
    import io
    import sys

    from ivr import logs
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logs.configure("warning", "console")
    logs.get("test").warning("one_line")
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    logs.get("test").warning("another_line")          # raised ValueError: I/O operation on closed file
    assert "another_line" in second.getvalue()
    monkeypatch.undo()
    logs.configure("warning", "console")
