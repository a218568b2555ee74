"""Classic (process-per-call) AGI: ``ivr-agi FLOW`` in the dialplan, e.g.
``AGI(/opt/ivr/.venv/bin/ivr-agi,main)``, for sites that cannot open a FastAGI
port. The same flow and the same ``AgiChannel`` run over stdin/stdout.

pyst2's ``AGI`` reads the environment block and turns SIGHUP (how Asterisk tells
a classic script the caller hung up) into a flag; responses are read by our own
reader because pyst2's ``get_result`` chokes on the ``HANGUP`` line, and the
environment block by the same parser as FastAGI (``SafeAGI``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import select
import sys
import time
from typing import TextIO, cast

from asterisk.agi import AGI

from ivr import logs
from ivr.agi.channel import AgiChannel
from ivr.agi.protocol import parse_header
from ivr.call_channel import CallInfo
from ivr.calls.service import summary_fields
from ivr.errors import AgiClosed, AgiTimeout, ConfigError, FlowInvalid
from ivr.flow.conditions import CallFacts
from ivr.project import Project, check_files, load_calendars, load_number_lists, require_valid
from ivr.settings import load_settings


class SafeAGI(AGI):  # type: ignore[misc]  # pyst2 ships no hints: its AGI is Any
    """pyst2's AGI with the environment block read by ``parse_header``: pyst2's
    own reader lets a later duplicate key win and strips characters a caller
    controls. Give it a stdin that splits lines on "\n" only (``stdin_text``):
    ``sys.stdin`` also splits on a lone "\r" (universal newlines)."""

    duplicate_keys: list[str] = []

    def _get_agi_env(self) -> None:
        lines = []
        while True:
            line = self.stdin.readline()
            if not line.endswith("\n"):
                break  # end of input: no more header
            line = line[:-2] if line.endswith("\r\n") else line[:-1]
            if line == "":
                break
            lines.append(line)
        self.env, self.duplicate_keys = parse_header(lines)


def stdin_text() -> io.TextIOWrapper:
    """Standard input, split on "\n" only, undecodable bytes replaced."""
    return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="\n")


class PipeTransport:
    def __init__(self, agi: AGI) -> None:
        self.agi = agi

    @property
    def hangup_signalled(self) -> bool:
        return cast(bool, self.agi._got_sighup)    # pyst2's SIGHUP flag

    def write_line(self, line: str) -> None:
        try:
            self.agi.stdout.write(line)
            self.agi.stdout.flush()
        except (BrokenPipeError, OSError) as exc:
            raise AgiClosed("Asterisk closed the pipe") from exc

    async def read_line(self, timeout_s: float) -> str:
        stdin = cast(TextIO, self.agi.stdin)        # stdin_text(), or pyst2's sys.stdin
        # One process, one call: blocking here is fine, but never forever.
        ready, _, _ = select.select([stdin], [], [], timeout_s)
        if not ready:
            raise AgiTimeout(f"no answer within {timeout_s:g}s")
        line = stdin.readline()
        if not line.endswith("\n"):
            raise AgiClosed("Asterisk closed the pipe")
        return line[:-1].rstrip("\r")


async def run_classic(flow_name: str, agi: AGI, environ: dict[str, str] | None = None) -> str:
    from ivr.flow.interpreter import FlowInterpreter
    from ivr.runtime.snapshot import load_snapshot, runner_config  # local: keeps start-up light for the common path

    settings = load_settings(environ)
    logs.configure(settings.log_level, "json", stream=sys.stderr)
    call = CallInfo.from_agi_env({**agi.env, "agi_network_script": flow_name})
    log = logs.get("ivr.agi").bind(call_id=call.uniqueid)
    if getattr(agi, "duplicate_keys", None):
        log.warning("agi_header_duplicate_keys", keys=sorted(set(agi.duplicate_keys)))
    project = Project(settings.home)
    flows = require_valid(*check_files(project))
    if flow_name not in flows:
        raise ConfigError(f"no valid flow named '{flow_name}' in {project.flows_dir}")
    channel = AgiChannel(PipeTransport(agi), call, prompt_prefix=settings.prompt_prefix,
                         recordings_dir=settings.recordings_dir)
    started = time.time()
    facts = CallFacts(now=dt.datetime.fromtimestamp(started, settings.timezone), level=0,
                      caller=call.caller_number, lists=load_number_lists(project.flows_dir),
                      calendars=load_calendars(project.flows_dir))
    interpreter = FlowInterpreter(runner_config(load_snapshot(settings.home, settings.timezone), settings))
    log.info("call_start", caller=call.caller_number, flow=flow_name, transport="classic")
    record = await interpreter.run(flows, flow_name, channel, facts, log)
    fields = summary_fields(call, record, started, time.time(), None)
    log.info("call_end", outcome=record.outcome, steps=len(record.steps), commands=channel.commands,
             queue_status=fields["queue_status"] or None)
    return record.outcome


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: ivr-agi FLOW   (run from the Asterisk dialplan: AGI(ivr-agi,FLOW))", file=sys.stderr)
        return 2
    agi = SafeAGI(stdin=stdin_text(), stdout=sys.stdout, stderr=open(os.devnull, "w"))
    try:
        asyncio.run(run_classic(args[0], agi))
    except (ConfigError, FlowInvalid) as exc:
        # Tell the dialplan to route the caller itself; never leave them in silence.
        print(f"ivr-agi: {exc}", file=sys.stderr)
        try:
            agi.stdout.write('SET VARIABLE IVR_RESULT "FALLBACK"\n')
            agi.stdout.flush()
            agi.stdin.readline()
        except OSError:
            pass
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
