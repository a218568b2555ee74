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
LEVEL_FILL = ("#ffffff", "#fff5d6", "#ffe0b3", "#ffc9c9", "#f4b6ff")


def level_legend() -> list[str]:
    """A swatch per contingency level, on a row of its own."""
    out = [f'<text x="{LEFT}" y="{LEGEND_Y + 10}">背景 shading: 应急级别 contingency level</text>']
    x0 = LEFT + 250
    for lv in range(1, len(LEVEL_FILL)):
        out.append(f'<rect x="{x0}" y="{LEGEND_Y}" width="14" height="12" fill="{LEVEL_FILL[lv]}" stroke="#888"/>')
        out.append(f'<text x="{x0 + 18}" y="{LEGEND_Y + 10}">级别 level {lv}</text>')
        x0 += 100
    return out


def drill_svg(report: dict) -> str:
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
        prev = 0.0
        for tt, lv in zip(t, s["level"], strict=True):          # contingency level behind each panel
            if lv:
                out.append(f'<rect x="{x(prev):.1f}" y="{y0}" width="{max(x(tt) - x(prev), 0.5):.1f}" '
                           f'height="{PANEL_H}" fill="{LEVEL_FILL[min(lv, len(LEVEL_FILL) - 1)]}"/>')
            prev = tt
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
    for k in range(5):
        v = span * k / 4 if k < 4 else span * 0.98
        out.append(f'<text x="{x(v):.1f}" y="{y_axis}" text-anchor="middle">{int(v // 60)} min</text>')
    out += level_legend()
    out.append("</svg>")
    return "\n".join(out)
