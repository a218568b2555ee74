"""Every CLI failure a member of staff can cause ends in ONE line that names the
setting or file and says what to do (Chinese first), exit code 1, no traceback.
Run as a subprocess, the way staff meet it."""

import os
import re
import socket
import subprocess
import sys

import pytest

from tests.conftest import copy_project


def ivr(*args, env, stdin=subprocess.DEVNULL, timeout=90):
    r = subprocess.run([sys.executable, "-m", "ivr", *args], env={**os.environ, "IVR_LOG_LEVEL": "error", **env},
                       stdin=stdin, capture_output=True, text=True, timeout=timeout)
    return r


def one_line(r) -> str:
    assert r.returncode in (1, 2), r.stderr
    assert "Traceback" not in r.stderr and "Exception Group" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.fixture
def home(project_home, tmp_path):
    return copy_project(project_home, tmp_path / "home")


@pytest.fixture
def busy_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_redis(home, tmp_path):
    line = one_line(ivr("callbacks", "list", env={"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path),
                                                  "IVR_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}))
    assert line.startswith("ivr: 无法连接 Redis") and "IVR_REDIS_URL=" in line


def test_wrong_settings_in_one_line(home, tmp_path):
    line = one_line(ivr("config", env={"IVR_HOME": str(home), "IVR_TIMEZONE": "Mars/Olympus",
                                       "IVR_AGI_LISTEN": "nowhere"}))
    assert line.startswith("ivr: 设置有误") and "IVR_TIMEZONE='Mars/Olympus'" in line and "IVR_AGI_LISTEN=" in line


def test_gbk_flow_file_is_named(home, tmp_path):
    main = home / "flows" / "main.yaml"
    main.write_bytes(main.read_text(encoding="utf-8").encode("gbk"))
    line = one_line(ivr("flows", "check", env={"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path)}))
    assert "flows/main.yaml" in line and "UTF-8" in line and "不是 UTF-8" in line


@pytest.mark.parametrize("texts, named", [("welcome: 12345\n", "welcome"), ("- a\n- b\n", "name: text")])
def test_draft_texts_that_are_not_name_text_lines(home, tmp_path, texts, named):
    (home / "prompts" / "texts.yaml").write_text(texts, encoding="utf-8")
    line = one_line(ivr("prompts", "draft", env={"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path)}))
    assert "prompts/texts.yaml" in line and named in line


def test_users_add_without_a_terminal_says_password_stdin(home, redis_url, tmp_path):
    env = {"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path), "IVR_REDIS_URL": redis_url}
    os_env = {k: v for k, v in os.environ.items() if k != "IVR_NEW_PASSWORD"}
    r = subprocess.run([sys.executable, "-m", "ivr", "users", "add", "zhang", "--role", "auditor"],
                       env={**os_env, "IVR_LOG_LEVEL": "error", **env}, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    line = one_line(r)
    assert "--password-stdin" in line and line.startswith("ivr: 没有终端")


@pytest.mark.parametrize("setting", ["IVR_AGI_LISTEN", "IVR_HTTP_LISTEN"])
def test_serve_on_a_busy_port(home, tmp_path, redis_url, busy_port, setting):
    env = {"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path), "IVR_REDIS_URL": redis_url,
           "IVR_AGI_LISTEN": "127.0.0.1:0", "IVR_HTTP_LISTEN": "127.0.0.1:0", setting: f"127.0.0.1:{busy_port}"}
    line = one_line(ivr("serve", env=env))
    assert line.startswith("ivr: 端口已被占用") and f"{setting}=127.0.0.1:{busy_port}" in line


def test_unreachable_ami(home, tmp_path, redis_url):
    import json

    import redis as sync_redis
    snap = {"at": 0, "queues": {"general": {"callers": [{"uniqueid": "1700000000.1", "number": "138******78"}]}}}
    sync_redis.Redis.from_url(redis_url).set("ivr:live", json.dumps(snap))
    env = {"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path), "IVR_REDIS_URL": redis_url,
           "IVR_AMI_URL": f"ami://u:p@127.0.0.1:{free_port()}"}
    line = one_line(ivr("queue", "promote", "1700000000.1", env=env))
    assert line.startswith("ivr: 无法连接 Asterisk AMI") and "IVR_AMI_URL" in line


def test_a_bug_ends_in_one_line_that_names_its_crash_file(home, tmp_path, monkeypatch, capsys):
    """An exception nobody explains (a bug, like the simulator's KeyError in the
    demo) still ends in one line; its traceback goes to a crash file, numbers masked."""
    from ivr import cli
    from ivr.cli import engine

    def broken(args, settings):
        raise KeyError("Local/13812345678@seat-7")

    monkeypatch.setattr(engine, "cmd_config", broken)
    # cli.main configures logging onto this test's captured stderr: keep the suite's
    monkeypatch.setattr(cli.logs, "configure", lambda *a, **k: None)
    monkeypatch.setenv("IVR_HOME", str(home))
    monkeypatch.setenv("IVR_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["config"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("ivr: 内部错误") and "KeyError" in err and "13812345678" not in err
    (crash,) = (tmp_path / "data" / "crash").iterdir()
    assert crash.stat().st_mode & 0o777 == 0o600 and str(crash) in err
    text = crash.read_text()
    assert "Traceback" in text and "broken" in text and "138******78" in text and "13812345678" not in text


# -- the mistakes staff make most, each told in one line, Chinese first, in words staff know ---------------

# what no member of staff should have to read: argparse's and PyYAML's and Python's own words
PARSER_TEXT = ("usage:", "invalid int value", "invalid float value", "invalid choice", "the following arguments",
               "Invalid isoformat", "isoformat", "<block end>", "<block mapping start>", "cannot start any token",
               "could not find expected", "mapping values are not allowed", "(YAML:", "argument sub", "参数 sub",
               "Traceback", "ValueError")
_CJK = re.compile(r"[\u4e00-\u9fff]")


def told_once(text: str, prefix: str) -> str:
    """The one line that starts with ``prefix`` (the command, or the file's
    name), its message Chinese first: the first word after the prefix is
    Chinese, and nothing is a parser's own text."""
    lines = [ln for ln in text.splitlines() if ln.startswith(prefix)]
    assert len(lines) == 1, text
    line = lines[0]
    message = line.split(": ", 1)[1] if line.startswith("ivr") else re.sub(r"^\S+?:[0-9]+:[0-9]+: ", "", line)
    first_letter = next(ch for ch in message if ch.isalpha())
    assert _CJK.match(first_letter), line
    zh = message.split("— ")[0]
    assert _CJK.search(zh) and "— " in message, line          # Chinese, then the English
    assert not [p for p in PARSER_TEXT if p in line], line
    return line


CLI_MISTAKES = [
    # (what staff typed, how the line starts)
    (("contingency", "set", "2"), "ivr contingency set: 缺少参数 --reason"),
    (("callbacks", "cancel", "7"), "ivr callbacks cancel: 缺少参数 --reason"),
    (("contingency", "set", "high", "--reason", "surge"), "ivr contingency set: 级别 应为整数"),
    (("contingency", "set", "2", "--reason", "surge", "--expires-in", "two"), "ivr contingency set: 参数 --expires-in"),
    (("contingency",), "ivr contingency: 缺少子命令"),
    (("flows", "chek"), "ivr flows: 子命令不能是 'chek'"),
    (("callbacks", "report", "--from"), "ivr callbacks report: 参数 --from 后面需要一个值"),
    (("callbacks", "report", "--month", "2026-1"), "ivr: 月份应写成 YYYY-MM，如 2026-01，而不是 '2026-1'"),
    (("callbacks", "report", "--month", "2026-13"), "ivr: 没有这个月份：'2026-13'"),
    (("callbacks", "report", "--from", "2026-02-31"), "ivr: 没有这一天：'2026-02-31'"),
    (("callbacks", "report", "--from", "2026/12/06"), "ivr: 日期应写成 YYYY-MM-DD，如 2026-12-06，而不是 '2026/12/06'"),
    (("callbacks", "report", "--from", "6.12.2026"), "ivr: 日期应写成 YYYY-MM-DD"),
    (("callbacks", "report", "--from", "2026-12-06", "--to", "2026-12-01"), "ivr: 结束日期 2026-12-01 早于开始日期"),
]


@pytest.mark.parametrize("args, starts", CLI_MISTAKES, ids=[" ".join(a) for a, _ in CLI_MISTAKES])
def test_a_staff_mistake_on_the_command_line_is_one_chinese_line(home, tmp_path, redis_url, args, starts):
    """Issue 18: argparse's English usage block, "Invalid isoformat string"."""
    r = ivr(*args, env={"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path), "IVR_REDIS_URL": redis_url})
    assert r.returncode in (1, 2) and r.stdout == "", r.stdout
    line = told_once(r.stderr, "ivr")
    assert r.stderr.strip() == line and line.startswith(starts), line


def _edit(path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


FILE_MISTAKES = [
    # (file, text there, the mistake, the command that checks it, where, how the message starts)
    ("queue/seats.yaml", "  front-line:\n", "   front-line:\n", ("files", "check"), "9:4", "缩进有误"),
    ("queue/seats.yaml", "  front-line:\n", "\tfront-line:\n", ("files", "check"), "9:1", "不能用制表符"),
    ("queue/seats.yaml", "reserved:\n", "reserved\n", ("files", "check"), "13:1", "缺少冒号 ':'"),
    ("flows/main.yaml", "    prompts: [welcome]\n", "\tprompts: [welcome]\n", ("flows", "check"), "{n}:1", "不能用制表符"),
    ("flows/main.yaml", "    prompts: [welcome]\n", "    prompts [welcome]\n", ("flows", "check"), "{n}:5", "缺少冒号 ':'"),
    ("flows/main.yaml", "    prompts: [welcome]\n", "     prompts: [welcome]\n", ("flows", "check"), "{n}:",
     "这里不能再有“键: 值”：可能缩进有误"),
    ("flows/calendars/holidays.txt", "2026-10-01\n", "2026-02-30\n", ("files", "check"), "3:1", "没有这一天：'2026-02-30'"),
    ("flows/calendars/holidays.txt", "2026-10-01\n", "2026/10/01\n", ("files", "check"), "3:1",
     "'2026/10/01' 不是日期：日期应写成 YYYY-MM-DD"),
]


@pytest.mark.parametrize("path, old, new, command, where, starts", FILE_MISTAKES,
                         ids=[f"{p} {n.strip()!r}" for p, _, n, *_ in FILE_MISTAKES])
def test_a_staff_mistake_in_a_file_is_one_chinese_line_at_its_place(home, tmp_path, path, old, new, command, where,
                                                                     starts):
    """Issue 18: "expected <block end>, but found '<block mapping start>'",
    with nothing about indentation; a key without its colon was placed on
    the line after it. ``{n}`` in ``where`` is the line the mistake is on."""
    text = (home / path).read_text(encoding="utf-8")
    where = where.format(n=text[:text.index(old)].count("\n") + 1)
    _edit(home / path, old, new)
    r = ivr(*command, env={"IVR_HOME": str(home), "IVR_DATA_DIR": str(tmp_path)})
    assert r.returncode == 1, r.stdout + r.stderr
    line = told_once(r.stdout + "\n" + r.stderr, path)
    assert line.startswith(f"{path}:{where}") and line.split(": ", 1)[1].startswith(starts), line
