"""What a real Asterisk 22 tells the engine about its trunk lines, captured.

Runs the shipped asterisk/ configuration (only paths, ports, secrets, the
trunk and IVR_LINES changed, as tests/test_live_asterisk.py does) with no
engine listening, so citizens' calls reach general-q through the dialplan's
own fallback; all seats paused, so they wait. Over raw AMI it reads
``Getvar GROUP_COUNT(trunk@ivr)`` and ``Getvar IVR_LINES`` with nobody on the
line, with two citizens waiting, with a callback's citizen leg dialled as
well (Dial's ``b(ivr-trunk-line^s^1)``), and after everyone hung up; also the
errors Getvar answers, and ``CoreStatus`` (whose CoreCurrentCalls counts every
channel pair, seat legs included: not the trunk).

    python -m tests.capture_line_count tests/fixtures/asterisk-22/ami/session-line-count.json

writes the session in the format of the other captured sessions: the banner,
then ``{t, msg, raw}`` per message, plus ``action`` (what was sent).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from tests.live_pbx import ASTERISK, asterisk_tree, booted, cli, free_port, start_pbx, stop_pbx, write_capture

ROOT = Path(__file__).resolve().parent.parent
LINES = 3000
FAR_END = """
[test-far]
; the far end of the trunk: a citizen's phone that answers and stays on the line
exten => _X.,1,Answer()
 same => n,Wait(60)
 same => n,Hangup()
"""


class RawAmi:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: list[dict]) -> None:
        self.reader, self.writer, self.log = reader, writer, log
        self.n = 0

    async def act(self, **fields: str) -> dict[str, str]:
        self.n += 1
        fields["ActionID"] = f"cap-{self.n}"
        self.writer.write(("".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n").encode())
        while True:
            raw = (await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 20)).decode()
            msg = dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "")
                       for line in raw.split("\r\n") if line)
            if msg.get("ActionID") == fields["ActionID"] and "Response" in msg:
                self.log.append({"t": time.time(), "action": fields, "msg": msg, "raw": raw})
                return msg


async def _until(conf: Path, command: str, text: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in await asyncio.to_thread(cli, conf, command):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{command!r} never showed {text!r}")
        await asyncio.sleep(0.5)


async def capture(tmp: Path, project_home: Path = ROOT) -> list[dict]:
    assert ASTERISK is not None, "no asterisk binary on PATH"
    ami_port = free_port()
    conf = asterisk_tree(project_home, tmp, free_port(), ami_port)   # nobody listens on the AGI port
    ext = tmp / "etc" / "extensions.conf"
    text = ext.read_text().replace("IVR_TRUNK = PJSIP/trunk", "IVR_TRUNK = Local")
    text = text.replace("IVR_LINES = 0", f"IVR_LINES = {LINES}")
    text = text.replace("Dial(${IVR_TRUNK}/${EXTEN},${IVR_CB_RING_S}", "Dial(${IVR_TRUNK}/${EXTEN}@test-far,${IVR_CB_RING_S}")
    ext.write_text(text + FAR_END)
    daemon = start_pbx(conf)
    log: list[dict] = [{"banner": ""}]
    try:
        await booted(conf)
        reader, writer = await asyncio.open_connection("127.0.0.1", ami_port)
        log[0]["banner"] = (await reader.readline()).decode()
        ami = RawAmi(reader, writer, log)
        await ami.act(Action="Login", Username="ivr", Secret="live-test-secret", Events="off")
        for seat in ("101", "102", "109"):                          # nobody answers: the citizens wait
            await asyncio.to_thread(cli, conf, f"queue pause member Local/{seat}@ivr-seats/n")
        await ami.act(Action="Getvar", Variable="GROUP_COUNT(trunk@ivr)")          # 0: nobody on a line
        await ami.act(Action="Getvar", Variable="IVR_LINES")                        # the [globals] total
        for n in ("1", "2"):
            await ami.act(Action="Originate", Channel=f"Local/{n}@test-citizen", Context="test-caller", Exten="s",
                          Priority="1", Async="true")
        await _until(conf, "queue show general-q", "has 2 calls")
        await ami.act(Action="Getvar", Variable="GROUP_COUNT(trunk@ivr)")          # 2: two citizens waiting
        # a callback: the seat's leg runs [ivr-callback], which dials the citizen over the trunk
        await ami.act(Action="Originate", Channel="Local/s@test-caller", Context="ivr-callback", Exten="13800138000",
                      Priority="1", Variable="IVR_CB_ID=7", Async="true")
        await _until(conf, "group show channels", "3 active channels", 30)
        await ami.act(Action="Getvar", Variable="GROUP_COUNT(trunk@ivr)")          # 3: and the callback's leg
        await ami.act(Action="CoreStatus")
        await ami.act(Action="Getvar", Variable="GROUP_COUNT(nosuchgroup@ivr)")
        await ami.act(Action="Getvar", Variable="NOSUCHVARIABLE")
        await ami.act(Action="Getvar", Channel="Local/nosuchchannel", Variable="IVR_LINES")
        await ami.act(Action="Getvar")
        await asyncio.to_thread(cli, conf, "channel request hangup all")
        await _until(conf, "group show channels", "0 active channels", 30)
        await ami.act(Action="Getvar", Variable="GROUP_COUNT(trunk@ivr)")          # 0 again
        await ami.act(Action="Logoff")
        writer.close()
    finally:
        stop_pbx(daemon)
    return log


if __name__ == "__main__":
    write_capture(capture, sys.argv[1])
