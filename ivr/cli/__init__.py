"""``ivr``: the engine's command line.

One module per audience, each registering its commands with ``add_commands``:

    engine.py         serve, config, status, agi       (whoever runs the engine)
    operations.py     flows, prompts                   (operations staff)
    files.py          files                            (configuration files: status, publish, history, rollback)
    seat_managers.py  contingency, queue               (seat managers)
    callbacks.py      callbacks                        (staff and auditors)
    auditors.py       audit                            (auditors)
    users.py          users                            (administrators)
    common.py         run, with_redis, who, explain    (shared by all of them)

The commands parse their arguments, call ``ivr.services`` and print.

``ivr drill``, ``ivr demo`` and ``ivr bench`` live in ``ivr.rehearsal.commands``
(the simulated Asterisk, drills, benchmarks): loaded only when one of them is
asked for, so the production commands never import the simulator.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ivr import logs
from ivr.cli import auditors, callbacks, engine, files, followups, operations, seat_managers, users
from ivr.cli.common import CHECKS_AUDIT_KEY, Parser, crash_report, explain
from ivr.settings import load_settings

REHEARSALS = {"drill": "rehearse a load profile: the engine against the simulated Asterisk",
              "demo": "a short drill on embedded defaults (a few minutes), report and picture",
              "bench": "benchmarks"}


def _command_of(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line. The rehearsal commands are only named (for
    ``ivr --help``) unless ``argv`` asks for one of them."""
    p = Parser(prog="ivr", description="12345 热线 IVR 与溢出呼叫引擎 — 12345 hotline IVR and overflow-call engine")
    sub = p.add_subparsers(dest="command", required=True)
    for module in (engine, operations, files, users, seat_managers, callbacks, followups, auditors):
        module.add_commands(sub)
    if _command_of(sys.argv[1:] if argv is None else argv) in REHEARSALS:
        from ivr.rehearsal import commands  # the simulator and benches: only for these commands
        commands.add_commands(sub)
    else:
        for name, text in REHEARSALS.items():
            sub.add_parser(name, help=text)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    settings = None
    try:
        settings = load_settings()
        logs.configure(settings.log_level, settings.log_format)
        CHECKS_AUDIT_KEY.set(bool(getattr(args, "audit_key", False)))
        return args.fn(args, settings)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the boundary: one line for the staff, not a traceback (ExceptionGroups too)
        files = [Path(f) for f in getattr(args, "files", None) or []]
        line = explain(exc, settings, args.command, files) or crash_report(exc, settings, args.command)
        print(f"ivr: {line}", file=sys.stderr)
        return 1
