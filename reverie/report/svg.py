"""Hand-written SVG charts: lines over nights, stacked bars, a scatter map.

    from reverie.report.svg import Series, line_chart
    svg = line_chart("chart-vendi", "probe Vendi", [Series("candidate", [(1, 6.1), (2, 5.2)], "#1f77b4")])

Each chart is a function from plain numbers to one `<svg class="chart" id=...>` string. Every mark
carries a `<title>`, so hovering shows its value; there is no JavaScript and nothing is fetched.
Sizes are in a fixed viewBox and the page scales them with CSS.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79")
GREY = "#8c8c8c"
RED = "#d62728"  # rejected nights, and the gate's bounds
W, H = 640, 270
LEFT, RIGHT, TOP, BOTTOM = 60, 18, 40, 36


def number(v: float) -> str:
    """A short label for a value of any size."""
    if v == 0 or 0.01 <= abs(v) < 10_000:
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return f"{v:.2e}"


def percent(v: float) -> str:
    return f"{v:.0%}" if abs(v - round(v, 2)) < 1e-9 else f"{v:.1%}"


@dataclass
class Series:
    label: str
    points: list[tuple[float, float | None]]  # (x, y); y None: not measured, the line breaks there
    color: str
    dashed: bool = False  # a bound or a reference line
    dots: bool = True
    hollow: frozenset = field(default_factory=frozenset)  # x values drawn as open red circles (rejected)


def _finite(y) -> bool:
    return isinstance(y, (int, float)) and not isinstance(y, bool) and math.isfinite(y)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About `n` round values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / n
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(lo / step) * step
    ticks = [start]
    while ticks[-1] < hi - 1e-12 * step:
        ticks.append(start + len(ticks) * step)
    return ticks


def _open(chart_id: str, title: str, width: int, height: int) -> str:
    return (f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">'
            f'<title>{escape(title)}</title>')


def _legend(items: list[tuple[str, str]], x0: int = LEFT, width: int = W) -> tuple[str, int]:
    """(svg, rows): (label, swatch svg at the origin) items, wrapped into rows of 16 px."""
    out, x, row = [], x0, 0
    for label, swatch in items:
        size = 24 + 6.5 * len(label)  # about 6.5 px a character at 11 px
        if x > x0 and x + size > width - RIGHT:
            x, row = x0, row + 1
        out.append(f'<g transform="translate({x:.0f},{14 + 16 * row})">{swatch}'
                   f'<text x="14" y="4">{escape(label)}</text></g>')
        x += size
    return "".join(out), row + 1


def _swatch(s: Series) -> str:
    dash = ' stroke-dasharray="5 3"' if s.dashed else ""
    dot = f'<circle cx="5" r="3.5" fill="{s.color}"/>' if s.dots else ""
    return f'<line x1="-3" x2="12" stroke="{s.color}" stroke-width="2"{dash}/>{dot}'


def empty_chart(chart_id: str, title: str, note: str, width: int = W, height: int = 120) -> str:
    return (_open(chart_id, title, width, height)
            + f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="note">{escape(note)}</text></svg>')


def line_chart(
    chart_id: str, title: str, series: Sequence[Series], fmt: Callable[[float], str] = number,
    y_range: tuple[float, float] | None = None, cap: float | None = None, x_label: str = "night",
) -> str:
    """Lines over x (nights); the first series is drawn on top. `y_range` fixes the axis (0-1 for
    accuracy); values above `cap` (a diverged night's perplexity) are drawn at the top edge as
    triangles, so one outlier does not flatten every other night. A dashed series (a bound) far
    outside the measured values is left out and its legend says where it is."""
    ys = [y for s in series if not s.dashed for _, y in s.points if _finite(y)]
    if not ys:
        return empty_chart(chart_id, title, "not measured on any night")
    xs = [x for s in series for x, _ in s.points]
    lo, hi = y_range or (min(ys), min(max(ys), cap) if cap is not None else max(ys))
    if not y_range:
        near = max(hi - lo, abs(hi) * 0.1)  # bounds within this of the values widen the axis
        bounds = [y for s in series if s.dashed for _, y in s.points if _finite(y) and lo - near <= y <= hi + near]
        lo, hi = min([lo, *bounds]), max([hi, *bounds])
        mid, least = (lo + hi) / 2, abs(lo + hi) * 0.02 or 1.0  # equal values: an axis 4% wide around them
        if hi - lo < least:
            lo, hi = mid - least / 2, mid + least / 2
    ticks = nice_ticks(lo, hi)
    lo, hi = ticks[0], ticks[-1]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    series = [_within(s, lo, hi) if s.dashed else s for s in series]

    items = [(s.label, _swatch(s)) for s in series]
    if any(s.hollow for s in series):
        items.append(("rejected", f'<circle cx="5" r="4" class="hollow" stroke="{RED}"/>'))
    legend, rows = _legend(items)
    top, height = TOP + 16 * (rows - 1), H + 16 * (rows - 1)

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT)

    def py(y: float) -> float:
        return top + (hi - min(max(y, lo), hi)) / (hi - lo) * (height - top - BOTTOM)

    out = [_open(chart_id, title, W, height), legend]
    for t in ticks:  # horizontal grid with the value labels
        out.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{py(t):.1f}" y2="{py(t):.1f}"/>'
                   f'<text class="tick" x="{LEFT - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{escape(fmt(t))}</text>')
    whole = sorted({round(x) for x in xs if x == round(x)})
    step = max(1, math.ceil(len(whole) / 12))
    for x in whole[::step]:
        out.append(f'<text class="tick" x="{px(x):.1f}" y="{height - BOTTOM + 16}" text-anchor="middle">{x}</text>')
    out.append(f'<text class="tick" x="{W - RIGHT}" y="{height - 4}" text-anchor="end">{escape(x_label)}</text>')
    for s in reversed(series):  # the first series (the candidate) on top of the base model
        out.append(_line(s, px, py, fmt, hi, x_label, (x0, x1)))
    return "".join(out) + "</svg>"


def _within(s: Series, lo: float, hi: float) -> Series:
    """A bound without its points outside [lo, hi], its label saying so."""
    kept = [(x, y if y is None or lo <= y <= hi else None) for x, y in s.points]
    outside = [y for _, y in s.points if y is not None and not lo <= y <= hi]
    if not outside:
        return s
    where = "above" if outside[0] > hi else "below"
    return Series(f"{s.label} ({where} the chart: {number(outside[0])})", kept, s.color, s.dashed, s.dots, s.hollow)


def _line(s: Series, px, py, fmt, hi: float, x_label: str, span: tuple[float, float]) -> str:
    dash = ' stroke-dasharray="6 4"' if s.dashed else ""
    runs: list[list[str]] = [[]]  # polylines, broken where a value is missing
    marks = []
    lone = not s.dots and sum(y is not None for _, y in s.points) == 1  # a bound on one night: across the chart
    for x, y in s.points:
        if y is None or (isinstance(y, float) and math.isnan(y)):
            runs.append([])
            continue
        runs[-1] += [f"{px(span[0]):.1f},{py(y):.1f}", f"{px(span[1]):.1f},{py(y):.1f}"] if lone \
            else [f"{px(x):.1f},{py(y):.1f}"]
        if not s.dots:
            continue
        tip = f"<title>{escape(s.label)}, {escape(x_label)} {x:g}: {escape(fmt(y) if _finite(y) else str(y))}</title>"
        if not _finite(y) or y > hi:  # off the chart: a triangle at the top edge
            cx, cy = px(x), py(hi)
            marks.append(f'<path class="off" d="M{cx - 5:.1f},{cy + 6:.1f} L{cx + 5:.1f},{cy + 6:.1f} '
                         f'L{cx:.1f},{cy - 3:.1f} Z" fill="{RED}">{tip}</path>')
        elif x in s.hollow:
            marks.append(f'<circle class="hollow" cx="{px(x):.1f}" cy="{py(y):.1f}" r="4.5" stroke="{RED}">{tip}</circle>')
        else:
            marks.append(f'<circle class="dot" cx="{px(x):.1f}" cy="{py(y):.1f}" r="4" fill="{s.color}">{tip}</circle>')
    lines = [f'<polyline points="{" ".join(r)}" fill="none" stroke="{s.color}" stroke-width="2"{dash}/>'
             for r in runs if len(r) > 1]
    return f'<g class="series" data-label="{escape(s.label)}">' + "".join(lines + marks) + "</g>"


def stacked_bars(chart_id: str, title: str, rows: list[tuple[str, list[float]]], parts: list[tuple[str, str]]) -> str:
    """One horizontal bar per row (label, a value per part), the parts (label, colour) side by side."""
    label_w, bar_h, width = 110, 18, W
    height = TOP + len(rows) * (bar_h + 6) + 8
    longest = max((sum(v) for _, v in rows), default=0) or 1
    scale = (width - label_w - 60) / longest
    out = [_open(chart_id, title, width, height)]
    for i, (label, values) in enumerate(rows):
        y = TOP + i * (bar_h + 6)
        out.append(f'<text class="tick" x="{label_w - 6}" y="{y + 13}" text-anchor="end">{escape(label)}</text>')
        x = float(label_w)
        for (part, color), v in zip(parts, values, strict=True):
            if v:
                out.append(f'<rect x="{x:.1f}" y="{y}" width="{v * scale:.1f}" height="{bar_h}" fill="{color}">'
                           f"<title>{escape(label)}: {v:g} {escape(part)}</title></rect>")
                x += v * scale
        out.append(f'<text class="tick" x="{x + 5:.1f}" y="{y + 13}">{sum(values):g}</text>')
    out.append(_legend([(p, f'<rect x="-2" y="-6" width="12" height="10" fill="{c}"/>') for p, c in parts], label_w)[0])
    return "".join(out) + "</svg>"


@dataclass
class Group:
    label: str
    color: str
    points: list[tuple[float, float, str]]  # (x, y, hover text)
    square: bool = False  # source chunks: squares, dreams: dots


def scatter(chart_id: str, title: str, groups: Sequence[Group], width: int = W, height: int = 460) -> str:
    """A map of points without axes (the projection's axes mean nothing on their own)."""
    pts = [(x, y) for g in groups for x, y, _ in g.points]
    if not pts:
        return empty_chart(chart_id, title, "nothing to map")
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx, sy = (x1 - x0) or 1.0, (y1 - y0) or 1.0
    legend, rows = _legend([(g.label, f'<rect x="-1" y="-5" width="9" height="9" fill="{g.color}"/>' if g.square
                             else f'<circle cx="4" r="4" fill="{g.color}"/>') for g in groups], 16, width)
    top = TOP + 16 * (rows - 1)

    def place(x: float, y: float) -> tuple[float, float]:
        return (16 + (x - x0) / sx * (width - 32), top + (y1 - y) / sy * (height - top - 16))

    out = [_open(chart_id, title, width, height), legend,
           f'<rect class="frame" x="4" y="{top - 10}" width="{width - 8}" height="{height - top + 6}"/>']
    for g in groups:
        for x, y, text in g.points:
            cx, cy = place(x, y)
            tip = f"<title>{escape(text)}</title>"
            if g.square:
                out.append(f'<rect class="chunk" x="{cx - 4:.1f}" y="{cy - 4:.1f}" width="8" height="8" '
                           f'fill="{g.color}">{tip}</rect>')
            else:
                out.append(f'<circle class="point" cx="{cx:.1f}" cy="{cy:.1f}" r="3.2" fill="{g.color}" '
                           f'fill-opacity="0.75">{tip}</circle>')
    return "".join(out) + "</svg>"
