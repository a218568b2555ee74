"""The drill report as a picture (SVG, no plotting library needed): arrivals,
callers waiting, seats busy, trunk lines in use (the line total drawn across),
attempts that heard busy and the callback backlog over simulated time, with
the contingency level shaded behind."""

from __future__ import annotations

from html import escape

W, PANEL_H, LEFT, TOP, GAP = 900, 130, 70, 84, 28
LEGEND_Y = 46   # the level legend: its own row, under the title and above the first panel
PANELS = (("arrivals", "来电 calls dialled / interval (busy ones too)", "#1f77b4"), ("waiting", "排队 callers waiting", "#d62728"),
          ("busy", "坐席忙 seats busy", "#2ca02c"),
          ("lines", "线路占用 trunk lines in use (most in the interval)", "#8c564b"),
          ("blocked", "忙音 attempts that heard busy / interval", "#e377c2"),
          ("backlog", "待回拨 callback backlog", "#9467bd"))
LEVEL_FILL = ("#ffffff", "#fff5d6", "#ffe0b3", "#ffc9c9")   # levels 0-3 of the plan (0: no shading)
TICK_STEPS_MIN = (1, 2, 5, 10, 15, 20, 30, 60, 120, 240)       # the time axis: round minutes


def level_legend(levels: int) -> list[str]:
    """A swatch per contingency level above 0 the plan has (``levels``: its highest), on a row of its own."""
    out = [f'<text x="{LEFT}" y="{LEGEND_Y + 10}">背景 shading: 应急级别 contingency level</text>']
    x0 = LEFT + 250
    for lv in range(1, levels + 1):
        out.append(f'<rect x="{x0}" y="{LEGEND_Y}" width="14" height="12" fill="{level_fill(lv)}" stroke="#888"/>')
        out.append(f'<text x="{x0 + 18}" y="{LEGEND_Y + 10}">级别 level {lv}</text>')
        x0 += 100
    return out


def level_fill(level: int) -> str:
    return LEVEL_FILL[max(0, min(level, len(LEVEL_FILL) - 1))]


def level_spans(t: list[float], levels: list[int]) -> list[tuple[float, float, int]]:
    """(from, to, level) for each run of one level above 0: one shape per run, so
    adjacent samples leave no seams (stripes) between them."""
    spans: list[tuple[float, float, int]] = []
    prev = 0.0
    for tt, lv in zip(t, levels, strict=True):
        if lv and spans and spans[-1][2] == lv and spans[-1][1] == prev:
            spans[-1] = (spans[-1][0], tt, lv)
        elif lv:
            spans.append((prev, tt, lv))
        prev = tt
    return spans


def minute_ticks(span_s: float) -> list[int]:
    """Ticks at round minutes (0, 10, 20 ...): the smallest round step giving at most 8 ticks."""
    minutes = span_s / 60
    step = next((m for m in TICK_STEPS_MIN if minutes / m <= 8), TICK_STEPS_MIN[-1])
    return [k * step for k in range(int(minutes // step) + 1)]


def drill_svg(report: dict, levels: int | None = None) -> str:
    """The picture; ``levels``: the plan's highest level (the legend explains
    levels 1 to it); by default the highest the drill reached."""
    s = report["series"]
    t = s["t"]
    height = TOP + len(PANELS) * (PANEL_H + GAP) + 20
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif" '
           f'font-size="12">',
           f'<rect width="{W}" height="{height}" fill="white"/>',
           f'<text x="{LEFT}" y="24" font-size="14">演练 {escape(report["profile"])}: '
           + (f'{report["attempts"]} attempts, {report["blocked_attempts"]} busy, ' if "attempts" in report else "")
           + f'{report["offered"]} offered, {report["answered"]} answered, '
           f'{report["callbacks_made"]} callbacks ({report["callbacks_reached"]} reached)</text>']
    if not t:
        out.append("</svg>")
        return "\n".join(out)
    span = max(t[-1], 1.0)
    plot_w = W - LEFT - 20

    def x(v: float) -> float:
        return LEFT + plot_w * v / span
    total = report.get("lines")
    for i, (key, label, colour) in enumerate(PANELS):
        y0 = TOP + i * (PANEL_H + GAP)
        values = s.get(key) or [0] * len(t)      # a report from before lines existed
        top = max(max(values), 1)
        if key == "lines" and total:
            top = int(max(top, total) * 1.1)     # the total below the frame: a full trunk stays visible
            label += f", of {total} lines"
        elif key == "lines":
            label += ", unlimited"
        out.append(f'<text x="{LEFT}" y="{y0 - 6}">{escape(label)} (max {max(values)})</text>')
        for a, b, lv in level_spans(t, s["level"]):             # contingency level behind each panel
            out.append(f'<rect x="{x(a):.1f}" y="{y0}" width="{max(x(b) - x(a), 0.5):.1f}" '
                       f'height="{PANEL_H}" fill="{level_fill(lv)}" shape-rendering="crispEdges"/>')
        out.append(f'<rect x="{LEFT}" y="{y0}" width="{plot_w}" height="{PANEL_H}" fill="none" stroke="#888"/>')
        pts = " ".join(f"{x(tt):.1f},{y0 + PANEL_H - PANEL_H * v / top:.1f}" for tt, v in zip(t, values, strict=True))
        if key == "lines" and total:          # the trunk's size: where busy tones start
            yt = y0 + PANEL_H - PANEL_H * total / top
            out.append(f'<line x1="{LEFT}" y1="{yt:.1f}" x2="{LEFT + plot_w}" y2="{yt:.1f}" stroke="#555" '
                       f'stroke-dasharray="6,4" stroke-width="1"/>')
            out.append(f'<text x="{LEFT + plot_w - 4}" y="{yt - 4:.1f}" text-anchor="end">{total} lines</text>')
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y0 + 10}" text-anchor="end">{top}</text>')
        out.append(f'<text x="{LEFT - 6}" y="{y0 + PANEL_H}" text-anchor="end">0</text>')
    y_axis = TOP + len(PANELS) * (PANEL_H + GAP) - GAP + 14
    for m in minute_ticks(span):
        out.append(f'<line x1="{x(m * 60):.1f}" y1="{y_axis - 14}" x2="{x(m * 60):.1f}" y2="{y_axis - 9}" '
                   'stroke="#888"/>')
        anchor = "end" if x(m * 60) > LEFT + plot_w - 20 else "middle"      # the last one inside the picture
        out.append(f'<text x="{x(m * 60):.1f}" y="{y_axis}" text-anchor="{anchor}">{m} min</text>')
    out += level_legend(max(s["level"], default=0) if levels is None else levels)
    out.append("</svg>")
    return "\n".join(out)
