"""The carrier's trunk of the simulated Asterisk: a fixed number of lines.

Every citizen's call holds a line from the moment it arrives until it hangs up
(in the flow, waiting, talking), and so does every outbound leg the PBX dials
over the same trunk (a callback's citizen leg). An arrival that finds every
line busy hears busy from the carrier: the PBX never sees it, so nothing here
but a counter knows it happened.

What the engine can see of it is what a real Asterisk 22 shows (checked in
``tests/fixtures/asterisk-22/ami/session-line-count.json``): the shipped
dialplan puts every trunk channel in ``GROUP(ivr)=trunk`` (the incoming
context, and Dial's ``b()`` pre-dial handler on outbound legs), and AMI
``Getvar`` of ``GROUP_COUNT(trunk@ivr)`` answers how many channels are in that
group; ``Getvar`` of the global ``IVR_LINES`` answers the line total the site
wrote in ``[globals]``. Groups are kept per channel, as app.c does: a channel
is in at most one group per category and leaves every group when it hangs up.

Sans-I/O: the clock is passed in; line-seconds are integrated on it.
"""

from __future__ import annotations

from collections.abc import Callable


class Trunk:
    def __init__(self, clock: Callable[[], float], lines: int | None = None) -> None:
        self.clock = clock
        self.total = lines                       # None: unlimited (a profile without lines:)
        self.held: dict[str, float] = {}         # channel -> since when it holds a line
        self.blocked = 0                         # arrivals and outbound legs refused: every line busy
        self.peak = 0                            # most lines in use at once, over the run
        self.interval_peak = 0                   # the same since the last take_interval_peak()
        self.closed_line_s = 0.0                 # line-seconds of lines already given back
        self.seized = 0                          # lines taken over the run
        self._groups: dict[tuple[str, str], set[str]] = {}    # (group, category), lower case -> channels
        self._of_channel: dict[str, dict[str, str]] = {}      # channel -> category -> group

    @property
    def in_use(self) -> int:
        return len(self.held)

    def full(self) -> bool:
        return self.total is not None and len(self.held) >= self.total

    def seize(self, channel: str) -> bool:
        """Take a line for ``channel``; False (and counted as blocked) when
        every line is busy."""
        if self.full():
            self.blocked += 1
            return False
        self.held[channel] = self.clock()
        self.seized += 1
        n = len(self.held)
        if n > self.peak:
            self.peak = n
        if n > self.interval_peak:
            self.interval_peak = n
        return True

    def release(self, channel: str) -> float:
        """The channel hangs up: its line is free again and it leaves every
        group. Returns the seconds it held the line (0 if it held none)."""
        for category, group in self._of_channel.pop(channel, {}).items():
            members = self._groups.get((group, category))
            if members is not None:
                members.discard(channel)
        since = self.held.pop(channel, None)
        if since is None:
            return 0.0
        held_s = max(self.clock() - since, 0.0)
        self.closed_line_s += held_s
        return held_s

    def line_seconds(self) -> float:
        """Line-seconds held so far, the lines still held counted up to now."""
        now = self.clock()
        return self.closed_line_s + sum(max(now - t, 0.0) for t in self.held.values())

    def take_interval_peak(self) -> int:
        """Most lines in use since the last call (for a chart's interval)."""
        peak, self.interval_peak = self.interval_peak, len(self.held)
        return peak

    # -- GROUP() and GROUP_COUNT() as app.c keeps them --------------------------

    def set_group(self, channel: str, category: str, group: str) -> None:
        """``Set(GROUP(category)=group)`` run on ``channel``."""
        category, group = category.lower(), group.lower()
        cats = self._of_channel.setdefault(channel, {})
        old = cats.get(category)
        if old is not None:
            self._groups.get((old, category), set()).discard(channel)
        if group:
            cats[category] = group
            self._groups.setdefault((group, category), set()).add(channel)
        else:
            cats.pop(category, None)

    def group_count(self, group: str, category: str = "") -> int:
        """``GROUP_COUNT(group@category)``: channels in that group (any
        category when none is given, as ast_app_group_get_count does)."""
        group, category = group.lower(), category.lower()
        if category:
            return len(self._groups.get((group, category), ()))
        return sum(len(chans) for (g, _), chans in self._groups.items() if g == group)
