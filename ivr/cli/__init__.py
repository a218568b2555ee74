"""``ivr``: the engine's command line.

One module per audience, each registering its commands with ``add_commands``:

    engine.py         serve, config, status, agi       (whoever runs the engine)
    operations.py     flows, prompts                   (operations staff)
    seat_managers.py  contingency, queue               (seat managers)
    callbacks.py      callbacks                        (staff and auditors)
    auditors.py       audit                            (auditors)
    users.py          users                            (administrators)
    drill.py          drill, demo, bench               (rehearsals and benchmarks)
    common.py         run, with_redis, who, explain    (shared by all of them)

The commands parse their arguments, call ``ivr.services`` and print.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ivr import logs
from ivr.cli import auditors, callbacks, drill, engine, operations, seat_managers, users
from ivr.cli.common import crash_report, explain
from ivr.settings import load_settings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ivr", description="12345 hotline IVR and overflow-call engine")
    sub = p.add_subparsers(dest="command", required=True)
    for module in (engine, operations, drill, users, seat_managers, callbacks, auditors):
        module.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = None
    try:
        settings = load_settings()
        logs.configure(settings.log_level, settings.log_format)
        return args.fn(args, settings)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the boundary: one line for the staff, not a traceback (ExceptionGroups too)
        files = [Path(f) for f in getattr(args, "files", None) or []]
        line = explain(exc, settings, args.command, files) or crash_report(exc, settings, args.command)
        print(f"ivr: {line}", file=sys.stderr)
        return 1
