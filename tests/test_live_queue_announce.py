"""Position announcements inside Queue() on a real Asterisk 22 (skipped when no
`asterisk` binary is on PATH), with the shipped asterisk/ files: two citizens
go through flows/main.yaml into general-q with every seat paused; Asterisk
tells the second one their place in Mandarin — 12345/queue/queue-place, the
number from sounds/zh/digits (prompts/lang-zh/digits), queue-callers,
queue-hold-on — as they join and again at intervals, while the engine's own
prompts still play on the zh channel. The PBX's verbose log (level 3) is the
observation: app_queue and the file player write what they played."""

import re

import pytest

from tests.live_pbx import ASTERISK, asterisk_tree, booted, cli, free_port, start_pbx, stop_pbx, until_cli
from tests.test_live_lines import _start_engine, _until

pytestmark = [pytest.mark.live_asterisk,
              pytest.mark.skipif(ASTERISK is None, reason="no asterisk binary on PATH")]

INTERVAL_S = 5     # the test's copy of queues.conf, as a site may set it; shipped: 90 s, or 60 s once the place moves


def _played(log: str, channel: str) -> list[str]:
    """The sounds played to ``channel`` in order, with the language asked for."""
    return [f"{m[1]} ({m[2]})" for m in re.finditer(
        rf"<{re.escape(channel)}> Playing '([^']+?)\.\w+'.*?\(language '([^']*)'\)", log)]


async def test_a_waiting_citizen_hears_their_place_in_mandarin_on_joining_and_at_intervals(
        redis, redis_url, project_home, tmp_path):
    agi_port, ami_port = free_port(), free_port()
    conf = asterisk_tree(project_home, tmp_path, agi_port, ami_port)
    queues = tmp_path / "etc" / "queues.conf"
    general, emergency = queues.read_text().split("[emergency-q]")
    general, changed = re.subn(r"^((?:min-)?announce-frequency) = \d+$", rf"\1 = {INTERVAL_S}", general, flags=re.M)
    assert changed, "general-q has no announce-frequency to shorten"   # only the figures changed, as a site may
    queues.write_text(general + "[emergency-q]" + emergency)
    logger = tmp_path / "etc" / "logger.conf"
    logger.write_text(logger.read_text() + "full => notice,warning,error,verbose(3)\n")
    ext = tmp_path / "etc" / "extensions.conf"      # citizens who wait long enough to hear it twice
    ext.write_text(ext.read_text() + "\n[test-patient]\nexten => s,1,Answer()\n same => n,Wait(240)\n"
                                     " same => n,Hangup()\n")
    daemon = start_pbx(conf)
    full = tmp_path / "log" / "full"
    stop_engine = None
    try:
        await booted(conf)
        for seat in ("101", "102", "109"):
            cli(conf, f"queue pause member Local/{seat}@ivr-seats/n")
        engine, stop_engine = await _start_engine(redis, redis_url, project_home, tmp_path / "ivr", agi_port,
                                                  ami_port)
        for n in ("1", "2"):
            res = await engine.controller.originate({
                "Channel": f"Local/{n}@test-citizen", "Context": "test-patient", "Exten": "s", "Priority": "1",
                "ActionID": f"pos-{n}"})
            assert res.ok, res.message
            await until_cli(conf, "queue show general-q", lambda out, n=n: f"has {n} call" in out, 120)

        async def told_twice():
            log = full.read_text(errors="replace") if full.exists() else ""
            return log if len(re.findall(r"Told (\S+) in general-q their queue position \(which was 2\)", log)) >= 2 \
                else None
        log = await _until(told_twice, 120, "Asterisk never told the second citizen their place twice")
    finally:
        if stop_engine is not None:
            cli(conf, "channel request hangup all")
            await stop_engine()
        stop_pbx(daemon)
    channel = re.search(r"Told (\S+) in general-q their queue position \(which was 2\)", log)[1]
    played = _played(log, channel)
    place = ["12345/queue/queue-place (zh)", "digits/2 (zh)", "12345/queue/queue-callers (zh)",
             "12345/queue/queue-hold-on (zh)"]                  # 您现在排在第 二 位，请稍候
    starts = _starts(played, place)
    assert len(starts) >= 2, played                      # on joining, and again after the interval
    # the engine's own prompts, before the queue, still play on the zh channel (no zh/ copy: the 12345/ one)
    assert {"12345/welcome (zh)", "12345/menu (zh)"} <= set(played[:starts[0]]), played
    missing = re.findall(r"Unable to (?:open|play message) (?:12345/|digits/)\S*", log)   # file.c, say.c
    assert not missing, missing
    # the first citizen is next: 您是下一位，请稍候
    first = re.search(r"Told (\S+) in general-q their queue position \(which was 1\)", log)[1]
    assert _starts(_played(log, first), ["12345/queue/queue-next (zh)", "12345/queue/queue-hold-on (zh)"]), \
        _played(log, first)


def _starts(played: list[str], run: list[str]) -> list[int]:
    return [i for i in range(len(played)) if played[i:i + len(run)] == run]
