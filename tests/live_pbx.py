"""A real Asterisk for the live tests: the shipped asterisk/ configuration in
a tree of its own (only paths, ports, secrets and the seats' technology
changed, plus a few test-only contexts), started, driven over its CLI, and
stopped.

Ready means fully booted, not merely answering: Asterisk answers the CLI, and
`queue show` once app_queue has loaded (it loads last), before it is fully
booted, and until then it starts no dialplan for a new channel ("PBX requires
Asterisk to be fully booted", main/pbx.c). A test that originated in that gap
saw its caller vanish (CI, session 8: 2 live tests of 13).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path

ASTERISK = shutil.which("asterisk")

TEST_CONTEXTS = """
; -- test only: a seat that answers, and a caller who waits --
[default]
exten => _1XX,1,Answer()
 same => n,Wait(2)
 same => n,Hangup()

[test-caller]
exten => s,1,Answer()
 same => n,Wait(90)
 same => n,Hangup()

[test-citizen]
; Local/N@test-citizen: the ;2 side is a citizen 1390000000N dialling 12345
exten => _X,1,Set(CALLERID(num)=1390000000${EXTEN})
 same => n,Goto(ivr-12345,12345,1)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def asterisk_tree(project_home: Path, tmp: Path, agi_port: int, ami_port: int) -> Path:
    assert ASTERISK is not None, "no asterisk binary on PATH"
    prefix = Path(os.path.realpath(ASTERISK)).parent.parent
    etc = tmp / "etc"
    etc.mkdir()
    for name in ("queues.conf", "musiconhold.conf"):
        shutil.copy(project_home / "asterisk" / name, etc / name)
    ext = (project_home / "asterisk" / "extensions.conf").read_text()
    ext = ext.replace("IVR_ENGINES = agi://127.0.0.1:4573", f"IVR_ENGINES = agi://127.0.0.1:{agi_port}")
    ext = ext.replace("IVR_SEAT_TECH = PJSIP", "IVR_SEAT_TECH = Local")
    (etc / "extensions.conf").write_text(ext + TEST_CONTEXTS)
    mgr = (project_home / "asterisk" / "manager.conf").read_text()
    (etc / "manager.conf").write_text(mgr.replace("port = 5038", f"port = {ami_port}")
                                      .replace("change-this-secret", "live-test-secret"))
    (etc / "modules.conf").write_text("[modules]\nautoload = yes\nnoload = chan_sip.so\n")
    (etc / "logger.conf").write_text("[logfiles]\nmessages => notice,warning,error\n")
    data = tmp / "data"
    (data / "sounds").mkdir(parents=True)
    (data / "sounds" / "12345").symlink_to(project_home / "prompts")
    (data / "sounds" / "zh").mkdir()             # README's installation: Asterisk's Mandarin number words
    (data / "sounds" / "zh" / "digits").symlink_to(project_home / "prompts" / "lang-zh" / "digits")
    # documentation and the rest of the data dir: under the prefix, or /var/lib for a /usr install
    installed = next((d for d in (prefix / "var" / "lib" / "asterisk", Path("/var/lib/asterisk")) if d.is_dir()),
                     prefix / "var" / "lib" / "asterisk")
    for entry in installed.iterdir() if installed.is_dir() else ():
        if entry.name != "sounds":
            (data / entry.name).symlink_to(entry)
    for d in ("run", "log", "spool", "lib", "db", "keys", "agi"):
        (tmp / d).mkdir()
    conf = etc / "asterisk.conf"
    conf.write_text(
        "[directories]\n"
        f"astetcdir => {etc}\nastmoddir => {prefix}/lib/asterisk/modules\nastvarlibdir => {tmp}/lib\n"
        f"astdbdir => {tmp}/db\nastkeydir => {tmp}/keys\nastdatadir => {data}\nastagidir => {tmp}/agi\n"
        f"astspooldir => {tmp}/spool\nastrundir => {tmp}/run\nastlogdir => {tmp}/log\n"
        f"astsbindir => {prefix}/sbin\n[options]\nnofork = yes\n")
    return conf


def cli(conf: Path, command: str) -> str:
    assert ASTERISK is not None, "no asterisk binary on PATH"
    return subprocess.run([ASTERISK, "-C", str(conf), "-rx", command], capture_output=True, text=True,
                          timeout=20).stdout


def diagnostics(conf: Path) -> str:
    """What the PBX itself says, for a failed wait: its channels and the end of
    its messages log (notices, warnings and errors)."""
    try:
        channels = cli(conf, "core show channels concise")
    except (subprocess.SubprocessError, OSError) as exc:
        channels = f"(no answer: {exc!r})"
    log = conf.parent.parent / "log" / "messages"
    lines = log.read_text(errors="replace").splitlines()[-40:] if log.exists() else ["(no messages log)"]
    return "channels:\n" + channels + "\nmessages (last 40 lines):\n" + "\n".join(lines)


async def until_cli(conf: Path, command: str, pred: Callable[[str], bool], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        out = await asyncio.to_thread(cli, conf, command)
        if pred(out):
            return out
        assert time.monotonic() < deadline, f"{command!r} never matched: {out}\n{diagnostics(conf)}"
        await asyncio.sleep(0.5)


def start_pbx(conf: Path) -> subprocess.Popen[bytes]:
    assert ASTERISK is not None, "no asterisk binary on PATH"
    return subprocess.Popen([ASTERISK, "-C", str(conf), "-f", "-n", "-q"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


async def booted(conf: Path, timeout_s: float = 60) -> None:
    """Until the PBX is fully booted and its general-q is loaded."""
    await until_cli(conf, "core waitfullybooted", lambda out: "fully booted" in out, timeout_s)
    await until_cli(conf, "queue show general-q", lambda out: "general-q has" in out, timeout_s)


async def started_pbx(conf: Path, timeout_s: float = 60) -> subprocess.Popen[bytes]:
    daemon = start_pbx(conf)
    try:
        await booted(conf, timeout_s)
    except BaseException:
        stop_pbx(daemon)
        raise
    return daemon


def stop_pbx(daemon: subprocess.Popen[bytes] | None) -> None:
    if daemon is None:
        return
    daemon.terminate()
    try:
        daemon.wait(30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait(10)


def write_capture(capture: Callable[[Path], Coroutine[object, object, list[dict]]], out: str) -> None:
    """A capture program's main: run ``capture`` in a scratch folder, write its
    session as a fixture (``tests/fixtures/asterisk-22/ami``)."""
    with tempfile.TemporaryDirectory(prefix="ivr-capture-") as tmp:
        log = asyncio.run(capture(Path(tmp)))
    Path(out).write_text(json.dumps(log, ensure_ascii=False, indent=1))
    print(f"{len(log) - 1} messages -> {out}")
