"""What every command module shares: running a coroutine (``run``), a Redis
connection for one command (``with_redis``), who acts (``who``), times in the
hotline's zone, and the command line's last word on a failure.

That last word is one line that names the setting or the file and says what to
do, Simplified Chinese first, never a traceback: ``explain`` maps the
exceptions that reach ``ivr.cli.main`` (also from inside a TaskGroup, as an
ExceptionGroup) to that line; ``None`` means the exception is a bug: its
traceback goes to a crash file under the data folder (``crash_report``) and the
staff see one line naming that file.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import errno
import os
import re
import time
import traceback
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import NoReturn

import redis.exceptions

from ivr import logs
from ivr.accounts.changes import actor
from ivr.errors import IvrError
from ivr.settings import Settings


def who() -> str:
    """Who acts, as the audit logs record it: ``IVR_USER``, else ``cli:`` and the
    operating-system user."""
    return actor()


# Set by ``main`` for a command that writes or verifies audit entries
# (``audited``): ``with_redis`` then checks this process's audit key against
# the one the logs are written with before the command runs.
CHECKS_AUDIT_KEY: ContextVar[bool] = ContextVar("CHECKS_AUDIT_KEY", default=False)


def audited(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Mark a command as one that writes (or verifies) audit entries."""
    parser.set_defaults(audit_key=True)
    return parser


def run(coro):
    try:
        import uvloop  # optional: halves the loop's CPU per AGI command
        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


async def with_redis(settings: Settings, fn):
    """``fn(redis)`` with a connection to IVR_REDIS_URL (or the embedded Redis),
    after the audit key check for a command that needs it (``audited``)."""
    from ivr.redisdb.server import RedisHandle, connect

    with RedisHandle(settings.redis_url, settings.data_dir) as url:
        redis = connect(url)
        try:
            if CHECKS_AUDIT_KEY.get():
                from ivr.runtime.audit_key import check_audit_key
                await check_audit_key(redis, by=who())
            return await fn(redis)
        finally:
            await redis.aclose()


def run_with_redis(settings: Settings, fn):
    """``with_redis`` run to completion: what most commands do."""
    return run(with_redis(settings, fn))


def local_iso(at: str, tz) -> str:
    """An ISO time (stored in UTC) in the hotline's time zone."""
    try:
        return dt.datetime.fromisoformat(at).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        return str(at)


def fmt_time(ts: float | None, tz) -> str:
    """A timestamp in the hotline's time zone; ``-`` for none."""
    return dt.datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def level_line(plan, level: int) -> str:
    """A contingency level with its names: ``2 高峰 (surge)``."""
    lv = plan.level(level)
    return f"{level} {lv.name}" + (f" ({lv.name_en})" if lv.name_en else "")

# staff-edited text files: an undecodable one is named, not guessed at
TEXT_GLOBS = ("flows/**/*.yaml", "flows/**/*.txt", "queue/**/*.yaml", "prompts/*.yaml", "callback/*.yaml",
              "config/*.toml")


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, in order."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in leaves(sub)]
    return [exc]


def not_utf8(home: Path, extra: Sequence[Path] = ()) -> list[tuple[Path, UnicodeDecodeError]]:
    """Staff-edited files (and ``extra``) that are not UTF-8 text."""
    bad = []
    files = [p for g in TEXT_GLOBS for p in sorted(home.glob(g))] + [Path(p) for p in extra]
    for p in files:
        try:
            p.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            bad.append((p, exc))
        except OSError:
            continue
    return bad


def _shown(p: Path, home: Path) -> str:
    try:
        return str(p.resolve().relative_to(home.resolve()))
    except ValueError:
        return str(p)


def _listen_setting(exc: OSError, settings: Settings) -> str:
    """Which listen setting a bind error is about: by the port in its text."""
    ports = re.findall(r"\b(\d{1,5})\)", str(exc))
    port = int(ports[-1]) if ports else None
    for name, listen in (("IVR_AGI_LISTEN", settings.agi_listen), ("IVR_HTTP_LISTEN", settings.http_listen)):
        if listen.port and listen.port == port:
            return f"{name}={listen}"
    return "IVR_AGI_LISTEN / IVR_HTTP_LISTEN"


def explain_one(exc: BaseException, settings: Settings | None, command: str, files: list[Path]) -> str | None:
    if isinstance(exc, IvrError):
        cause = exc.__cause__   # a ConfigError over a busy port: say it the staff's way
        if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
            return explain_one(cause, settings, command, files)
        head, _, rest = str(exc).partition("\n")
        if head == "wrong settings:":     # ivr.settings lists one per line: one line here, each named
            wrong = "; ".join(x.strip() for x in rest.splitlines())
            return f"设置有误（环境变量或 config/ivr.toml）— wrong settings: {wrong}"
        return str(exc)
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        where = f"IVR_REDIS_URL={settings.redis_url}" if settings and settings.redis_url else "内置 Redis embedded Redis"
        return (f"无法连接 Redis（{where}）：请确认 redis-server 正在运行、地址和密码正确 — "
                f"cannot reach Redis ({where}): {str(exc).rstrip('.')}; check that it runs and the URL is right")
    if isinstance(exc, UnicodeDecodeError):
        home = settings.home if settings else Path(".")
        bad = not_utf8(home, files)
        names = "、".join(f"{_shown(p, home)}（第 {e.start + 1} 字节 byte {e.start + 1}）" for p, e in bad) or "某个文件 a file"
        return (f"{names} 不是 UTF-8 编码：请用 UTF-8 另存（如 GBK 文件：iconv -f GBK -t UTF-8）— "
                f"not UTF-8 text: save it as UTF-8")
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE and settings is not None:
        setting = _listen_setting(exc, settings)
        return (f"端口已被占用（{setting}）：另一个进程在用这个地址；停止它或换一个地址 — "
                f"address in use ({setting}): stop the other process or choose another address")
    if isinstance(exc, (TimeoutError, ConnectionRefusedError)) and command == "queue" and settings is not None:
        ami = settings.ami
        where = f"{ami.host}:{ami.port}" if ami else "IVR_AMI_URL"
        return (f"无法连接 Asterisk AMI（IVR_AMI_URL → {where}）：请确认 Asterisk 在运行、manager.conf 的用户和密码正确 — "
                f"cannot reach the AMI at {where}: check Asterisk and the credentials in IVR_AMI_URL")
    if isinstance(exc, EOFError) and command == "users":
        return ("没有终端可输入：请用 --password-stdin 从标准输入读入（或设置 IVR_NEW_PASSWORD）— "
                "no terminal to read from: use --password-stdin (or IVR_NEW_PASSWORD)")
    if isinstance(exc, PermissionError):
        return f"没有权限：{exc.filename} — permission denied: {exc.filename}"
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"找不到文件：{exc.filename} — no such file: {exc.filename}"
    return None


def explain(exc: BaseException, settings: Settings | None, command: str, files: Sequence[Path] = ()) -> str | None:
    """One line for the first explainable exception (inside groups too)."""
    for leaf in leaves(exc):
        line = explain_one(leaf, settings, command, list(files))
        if line is not None:
            return line
    return None


def crash_report(exc: BaseException, settings: Settings | None, command: str) -> str:
    """The line for a bug: the traceback is written to ``<data>/crash/`` (0600, in
    a 0700 folder: a traceback may hold a caller's number) for the maintainers."""
    kind = type(exc).__name__
    what = logs.mask_text(str(exc).splitlines()[0] if str(exc) else "")[:200]
    detail = "".join(traceback.format_exception(exc))
    folder = (settings.data_dir if settings else Path(os.environ.get("TMPDIR", "/tmp"))) / "crash"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = folder / f"ivr-{command}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.txt"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(logs.mask_text(detail))
        where = f"详细信息已写入 {path}，请交给维护人员 — details in {path}"
    except OSError as err:
        where = f"详细信息无法写入（{err.strerror}）— details could not be written: {err.strerror}"
    return f"内部错误（程序缺陷）：{kind} {what}；{where} — internal error: {kind} {what}"


def _arg(name: str) -> tuple[str, str]:
    """An argument as argparse names it, as staff read it: the sub-command's
    internal name ('sub', 'command') is no word of theirs."""
    return {"sub": ("子命令", "command"), "command": ("命令", "command"), "level": ("级别", "level")}.get(
        name, (f"参数 {name}", name))


def _choices(text: str) -> str:
    return text.replace("'", "")


def _required(m: re.Match[str]) -> tuple[str, str]:
    names = [n.strip() for n in m[1].split(",")]
    zh = "、".join(_arg(n)[0] for n in names)
    return f"缺少{zh}（必填）", f"{', '.join(_arg(n)[1] for n in names)} is required"


_ARGPARSE_ZH: list[tuple[re.Pattern[str], Callable[[re.Match[str]], tuple[str, str]]]] = [
    # argparse's English errors, as (Chinese, English) said the way staff fix them
    (re.compile(r"the following arguments are required: (.+)"), _required),
    (re.compile(r"argument (\S+): invalid choice: '(.*?)' \(choose from (.+)\)"),
     lambda m: (f"{_arg(m[1])[0]}不能是 '{m[2]}'，可选：{_choices(m[3])}",
                f"{_arg(m[1])[1]}: '{m[2]}' is not one of {_choices(m[3])}")),
    (re.compile(r"argument (\S+): invalid int value: '(.*?)'"),
     lambda m: (f"{_arg(m[1])[0]} 应为整数（如 2），而不是 '{m[2]}'", f"{_arg(m[1])[1]}: a whole number such as 2, "
                f"not '{m[2]}'")),
    (re.compile(r"argument (\S+): invalid float value: '(.*?)'"),
     lambda m: (f"{_arg(m[1])[0]} 应为数字（如 1.5），而不是 '{m[2]}'", f"{_arg(m[1])[1]}: a number such as 1.5, "
                f"not '{m[2]}'")),
    (re.compile(r"argument (\S+): expected one argument"),
     lambda m: (f"{_arg(m[1])[0]} 后面需要一个值", f"{_arg(m[1])[1]} needs a value after it")),
    (re.compile(r"argument (\S+): not allowed with argument (\S+)"),
     lambda m: (f"{_arg(m[1])[0]} 不能与 {m[2]} 同时使用", f"{_arg(m[1])[1]} cannot be used with {m[2]}")),
    (re.compile(r"unrecognized arguments: (.+)"), lambda m: (f"无法识别的参数：{m[1]}", f"unknown argument(s): {m[1]}")),
]


def argparse_zh(message: str) -> str:
    """'中文 — English' for one of argparse's errors; one it has no words for keeps argparse's."""
    for pattern, said in _ARGPARSE_ZH:
        m = pattern.fullmatch(message)
        if m:
            zh, en = said(m)
            return f"{zh} — {en}"
    return f"参数有误 — {message}"


class Parser(argparse.ArgumentParser):
    """argparse with its errors on one line, Chinese first, then English, and
    where the usage is (exit 2, as argparse does). argparse's own usage block
    (English, its internal names) is not printed: ``-h`` shows it."""

    def error(self, message: str) -> NoReturn:
        zh, _, en = argparse_zh(message).partition(" — ")
        self.exit(2, f"{self.prog}: {zh}（用法见 {self.prog} -h）— {en} (see {self.prog} -h)\n")
