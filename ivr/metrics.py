"""Process-wide counters for /metrics (Prometheus text format, written by hand:
a histogram and a few gauges do not need a client library)."""

from __future__ import annotations

import bisect


class Histogram:
    __slots__ = ("name", "help", "bounds", "counts", "total", "n")

    def __init__(self, name: str, help_text: str, bounds: tuple[float, ...]) -> None:
        self.name, self.help, self.bounds = name, help_text, bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, v: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, v)] += 1
        self.total += v
        self.n += 1

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        acc = 0
        for b, c in zip(self.bounds, self.counts, strict=False):  # counts has one more: +Inf
            acc += c
            out.append(f'{self.name}_bucket{{le="{b:g}"}} {acc}')
        out.append(f'{self.name}_bucket{{le="+Inf"}} {self.n}')
        out += [f"{self.name}_sum {self.total:.6f}", f"{self.name}_count {self.n}"]
        return out


# AGI commands that answer at once (not EXEC Queue, RECORD, Dial: those last as long as the caller)
AGI_COMMAND_SECONDS = Histogram("ivr_agi_command_seconds", "Time from sending an AGI command to its answer",
                                (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))


def gauge(name: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> list[str]:
    out = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        lab = ",".join(f'{k}="{v}"' for k, v in labels.items())
        out.append(f"{name}{{{lab}}} {value:g}" if lab else f"{name} {value:g}")
    return out


def counter(name: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> list[str]:
    """A counter kept elsewhere (in Redis, so it survives a leader change): it only grows."""
    out = gauge(name, help_text, samples)
    out[1] = f"# TYPE {name} counter"
    return out
