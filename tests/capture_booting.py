"""What a real Asterisk 22 answers an AMI client that logs in while it is
still starting, captured (the engine reconnecting while its PBX restarts).

The manager interface loads with the core modules (load priority 40) and takes
logins long before app_queue (150, loaded last) and before the dialplan is
fully booted. This logs in as soon as the port accepts, asks for QueueStatus
and an Originate at once, waits for the FullyBooted event, then asks
QueueStatus again, and CoreSettings (its SystemName, empty when
asterisk.conf sets none):

    python -m tests.capture_booting tests/fixtures/asterisk-22/ami/session-booting.json

writes the banner, then ``{t, msg, raw}`` per message received, plus ``action``
(what was sent) on the answers.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from tests.live_pbx import asterisk_tree, free_port, start_pbx, stop_pbx, write_capture

ROOT = Path(__file__).resolve().parent.parent


def _parse(raw: str) -> dict[str, str]:
    return dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "") for line in raw.split("\r\n") if line)


async def capture(tmp: Path, project_home: Path = ROOT) -> list[dict]:
    ami_port = free_port()
    conf = asterisk_tree(project_home, tmp, free_port(), ami_port)
    daemon = start_pbx(conf)
    log: list[dict] = [{"banner": ""}]
    sent: dict[str, dict[str, str]] = {}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", ami_port)
                break
            except OSError:
                assert time.monotonic() < deadline, "the AMI port never accepted"
                await asyncio.sleep(0.002)
        log[0]["banner"] = (await reader.readline()).decode()

        def send(**fields: str) -> None:
            fields["ActionID"] = f"boot-{len(sent) + 1}"
            sent[fields["ActionID"]] = fields
            writer.write(("".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n").encode())

        send(Action="Login", Username="ivr", Secret="live-test-secret")
        send(Action="QueueStatus", Queue="general-q")
        send(Action="Originate", Channel="Local/s@test-caller", Context="test-caller", Exten="s", Priority="1")
        booted_again = False
        while True:
            raw = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)).decode()
            msg = _parse(raw)
            entry: dict = {"t": time.time(), "msg": msg, "raw": raw}
            if "Response" in msg and msg.get("ActionID") in sent:
                entry["action"] = sent[msg["ActionID"]]
            log.append(entry)
            if msg.get("Event") == "FullyBooted" and not booted_again:
                booted_again = True
                send(Action="QueueStatus", Queue="general-q")
            if msg.get("Event") == "QueueStatusComplete":
                send(Action="CoreSettings")        # SystemName: the prefix of this PBX's uniqueids
            if msg.get("Response") and "SystemName" in msg:
                break
        send(Action="Logoff")
        writer.close()
    finally:
        stop_pbx(daemon)
    return log


if __name__ == "__main__":
    write_capture(capture, sys.argv[1])
