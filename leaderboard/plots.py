"""SVG plots, drawn as text: the forget-versus-retain trade-off of a task and the sweep curves of a method.
No plotting library, no script: each plot is a standalone `<svg>` element the page embeds.

    >>> svg = tradeoff_svg(points, x_axis=Axis("forget_test FID: distance to reference", "lower"),
    ...                    y_axis=Axis("retain_test FID", "lower"))
    >>> svg = sweep_svg(curves, parameter="k", metric=Axis("retain_test FID", "lower"), lines=[...])

Every point carries its 95% CI as error bars. On the trade-off plot the Pareto front joins the points that no
other point beats on both axes (the better direction of each axis counts, so "lower is better" needs no
flipping of the picture), and the axis titles say which way is better. A task has dozens of runs, so the
trade-off plot carries a legend of the methods and names only the points whose labels fit without covering
another label or point (the reference and the front first); every point keeps its name as a tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Literal

PALETTE: tuple[str, ...] = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
)
"""Method colours (tab10), assigned by method name in sorted order so a method keeps its colour site-wide."""

REFERENCE_COLOUR = "#222222"


@dataclass(frozen=True)
class Frame:
    """A plot's canvas in pixels: its size and the margins around the plot area (a legend goes in the right
    margin)."""

    width: int
    height: int
    left: int = 72
    right: int = 20
    top: int = 16
    bottom: int = 58

    @property
    def area(self) -> Box:
        return Box(self.left, self.top, self.width - self.right, self.height - self.bottom)


@dataclass(frozen=True)
class Box:
    """A rectangle in pixels, y growing downwards as in SVG."""

    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: Box) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1

    def inside(self, other: Box) -> bool:
        return other.x0 <= self.x0 and self.x1 <= other.x1 and other.y0 <= self.y0 and self.y1 <= other.y1


SWEEP_FRAME = Frame(520, 380)
TRADEOFF_FRAME = Frame(820, 440, right=200)
"""The trade-off plot is wider: a task has dozens of runs, and its legend names the methods."""

LABEL_CHAR_WIDTH = 6.3
"""Pixels per character of a 10.5 px point label: a generous average, so that estimated boxes err wide."""
LABEL_HEIGHT = 12.0


@dataclass(frozen=True)
class Axis:
    """An axis: its title and which way is better."""

    title: str
    better: Literal["lower", "higher"] | None
    """None: no better direction (values of a metric judged by distance to a reference)."""

    @property
    def label(self) -> str:
        if self.better is None:
            return self.title
        return f"{self.title} ({'lower' if self.better == 'lower' else 'higher'} is better)"


@dataclass(frozen=True)
class Point:
    """One run on a trade-off plot."""

    label: str
    """The row's name (sweep point)."""
    colour: str
    x: float
    y: float
    x_ci: float | None
    y_ci: float | None
    kind: Literal["method", "reference"] = "method"
    """Reference points are drawn as diamonds and never join the front."""
    method: str = ""
    """The legend entry the point's colour stands for (its method); empty: the label."""


@dataclass(frozen=True)
class Curve:
    """One method's sweep on one seed: (parameter value, metric value, CI) points."""

    label: str
    colour: str
    points: tuple[tuple[float, float, float | None], ...]


@dataclass(frozen=True)
class Line:
    """A horizontal line across a sweep plot (the reference's or the original model's value)."""

    label: str
    y: float
    dash: str = "6 4"
    colour: str = REFERENCE_COLOUR


@dataclass(frozen=True)
class Scale:
    """Maps a data interval onto a pixel interval, linearly or in log2."""

    low: float
    high: float
    start: float
    end: float
    log: bool = False
    ticks: tuple[float, ...] = field(default=())
    nice: bool = True
    """The ticks are `nice_ticks` (evenly spaced); False: data values, labelled as they are."""

    @classmethod
    def fit(cls, values: Sequence[float], start: float, end: float, log: bool = False) -> Scale:
        """A scale over `values` with some padding and round ticks."""
        finite = [v for v in values if math.isfinite(v) and (v > 0 or not log)]
        if not finite:
            finite = [1.0] if log else [0.0]
        low, high = min(finite), max(finite)
        if log:
            low, high = math.log2(low), math.log2(high)
            if high - low < 1e-12:
                low, high = low - 1, high + 1
            pad = (high - low) * 0.08
            ticks = tuple(
                float(2**e)
                for e in range(math.floor(low - pad), math.ceil(high + pad) + 1)
                if low - pad <= e <= high + pad
            )
            return cls(low - pad, high + pad, start, end, True, ticks)
        if high - low < 1e-12:
            spread = abs(high) * 0.1 or 1.0
            low, high = low - spread, high + spread
        pad = (high - low) * 0.08
        low, high = low - pad, high + pad
        return cls(low, high, start, end, False, nice_ticks(low, high))

    def tick_label(self, tick: float) -> str:
        """A tick as text, with as many decimals as the tick spacing needs (no two ticks read alike)."""
        if self.log or len(self.ticks) < 2 or not self.nice:
            return f"{tick:g}"
        step = min(b - a for a, b in zip(self.ticks[:-1], self.ticks[1:], strict=True))
        decimals = max(0, math.ceil(-math.log10(step) - 1e-9)) if step > 0 else 0
        return f"{tick:.{decimals}f}"

    def __call__(self, value: float) -> float:
        data = math.log2(value) if self.log else value
        return self.start + (data - self.low) / (self.high - self.low) * (self.end - self.start)


def nice_ticks(low: float, high: float, count: int = 5) -> tuple[float, ...]:
    """Round tick values (1, 2, 5 times a power of ten) inside [low, high]."""
    span = high - low
    raw = span / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(power * m for m in (1, 2, 5, 10) if power * m >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return tuple(ticks)


def fmt(value: float) -> str:
    """A number as a plot or table shows it: 3-4 significant digits."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000 or magnitude < 0.001:
        return f"{value:.3g}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def pareto_front(points: Sequence[Point], x_better: str, y_better: str) -> list[Point]:
    """The method points no other method point beats on both axes (ties count as not beaten), sorted by x."""
    methods = [p for p in points if p.kind == "method"]

    def better(a: float, b: float, direction: str) -> bool:
        return a < b if direction == "lower" else a > b

    def at_least(a: float, b: float, direction: str) -> bool:
        return a <= b if direction == "lower" else a >= b

    front = []
    for p in methods:
        dominated = any(
            at_least(q.x, p.x, x_better)
            and at_least(q.y, p.y, y_better)
            and (better(q.x, p.x, x_better) or better(q.y, p.y, y_better))
            for q in methods
        )
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: (p.x, p.y))


def _frame(frame: Frame, x: Scale, y: Scale, x_title: str, y_title: str) -> list[str]:
    area = frame.area
    parts = [
        f'<rect class="plot-area" x="{area.x0}" y="{area.y0}" width="{area.x1 - area.x0}" '
        f'height="{area.y1 - area.y0}"/>'
    ]
    for tick in x.ticks:
        px = x(tick)
        if area.x0 - 0.5 <= px <= area.x1 + 0.5:
            parts.append(f'<line class="grid" x1="{px:.1f}" y1="{area.y0}" x2="{px:.1f}" y2="{area.y1}"/>')
            parts.append(
                f'<text class="tick" x="{px:.1f}" y="{area.y1 + 16}" text-anchor="middle">'
                f"{x.tick_label(tick)}</text>"
            )
    for tick in y.ticks:
        py = y(tick)
        if area.y0 - 0.5 <= py <= area.y1 + 0.5:
            parts.append(f'<line class="grid" x1="{area.x0}" y1="{py:.1f}" x2="{area.x1}" y2="{py:.1f}"/>')
            parts.append(
                f'<text class="tick" x="{area.x0 - 6}" y="{py + 4:.1f}" text-anchor="end">'
                f"{y.tick_label(tick)}</text>"
            )
    parts.append(
        f'<text class="axis-title" x="{(area.x0 + area.x1) / 2:.0f}" y="{frame.height - 14}" '
        f'text-anchor="middle">{escape(x_title)}</text>'
    )
    parts.append(
        f'<text class="axis-title" transform="translate(16 {(area.y0 + area.y1) / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_title)}</text>'
    )
    return parts


def _svg(frame: Frame, parts: list[str], title: str) -> str:
    return (
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {frame.width} {frame.height}" '
        f'width="{frame.width}" height="{frame.height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{''.join(parts)}</svg>"
    )


def _error_bars(cx: float, cy: float, x0: float, x1: float, y0: float, y1: float, colour: str) -> str:
    cap = 4
    return (
        f'<g class="ci" stroke="{colour}">'
        f'<line x1="{x0:.1f}" y1="{cy:.1f}" x2="{x1:.1f}" y2="{cy:.1f}"/>'
        f'<line x1="{x0:.1f}" y1="{cy - cap:.1f}" x2="{x0:.1f}" y2="{cy + cap:.1f}"/>'
        f'<line x1="{x1:.1f}" y1="{cy - cap:.1f}" x2="{x1:.1f}" y2="{cy + cap:.1f}"/>'
        f'<line x1="{cx:.1f}" y1="{y0:.1f}" x2="{cx:.1f}" y2="{y1:.1f}"/>'
        f'<line x1="{cx - cap:.1f}" y1="{y0:.1f}" x2="{cx + cap:.1f}" y2="{y0:.1f}"/>'
        f'<line x1="{cx - cap:.1f}" y1="{y1:.1f}" x2="{cx + cap:.1f}" y2="{y1:.1f}"/></g>'
    )


_LABEL_SLOTS: tuple[tuple[float, float, Literal["start", "middle", "end"]], ...] = (
    (8, -6, "start"),
    (8, 14, "start"),
    (-8, -6, "end"),
    (-8, 14, "end"),
    (0, -10, "middle"),
    (0, 20, "middle"),
)
"""Where a label may sit around its point: (dx, dy of the text baseline, anchor), tried in this order."""


def place_labels(
    anchors: Sequence[tuple[str, float, float]], area: Box, markers: Sequence[Box]
) -> list[tuple[str, float, float, str, Box]]:
    """Labels for (text, x, y) points in priority order, each in the first slot around its point that stays in
    `area` and covers no marker and no label placed before it; a point with no free slot goes unlabelled (its
    marker keeps its tooltip). Returns (text, x, y, anchor, estimated box) per placed label."""
    placed: list[tuple[str, float, float, str, Box]] = []
    for text, cx, cy in anchors:
        width = len(text) * LABEL_CHAR_WIDTH
        for dx, dy, anchor in _LABEL_SLOTS:
            x, y = cx + dx, cy + dy
            x0 = {"start": x, "middle": x - width / 2, "end": x - width}[anchor]
            box = Box(x0, y - LABEL_HEIGHT + 2, x0 + width, y + 3)
            if (
                box.inside(area)
                and not any(box.overlaps(marker) for marker in markers)
                and not any(box.overlaps(other[4]) for other in placed)
            ):
                placed.append((text, x, y, anchor, box))
                break
    return placed


def _diamond(cx: float, cy: float, radius: float, colour: str) -> str:
    """The reference's marker: a diamond `radius` pixels from its centre to each corner."""
    return (
        f'<path class="marker reference" d="M{cx:.1f},{cy - radius:.1f} L{cx + radius:.1f},{cy:.1f} '
        f'L{cx:.1f},{cy + radius:.1f} L{cx - radius:.1f},{cy:.1f} Z" fill="{colour}"/>'
    )


def _legend(frame: Frame, points: Sequence[Point], with_front: bool) -> list[str]:
    """The right margin's key: one entry per method colour, the reference diamond and the front's line."""
    x = frame.width - frame.right + 18
    y = float(frame.top + 8)
    parts = ['<g class="legend">']
    seen: set[tuple[str, str]] = set()
    for p in sorted(points, key=lambda p: (p.kind == "reference", p.method or p.label)):
        name = p.label if p.kind == "reference" else (p.method or p.label)
        if (name, p.colour) in seen:
            continue
        seen.add((name, p.colour))
        if p.kind == "reference":
            parts.append(_diamond(x, y, 6, p.colour))
            name = f"{name} (reference)"
        else:
            parts.append(f'<circle class="marker" cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{p.colour}"/>')
        parts.append(f'<text class="legend-label" x="{x + 12:.1f}" y="{y + 4:.1f}">{escape(name)}</text>')
        y += 18
    if with_front:
        parts.append(f'<line class="front" x1="{x - 6:.1f}" y1="{y:.1f}" x2="{x + 6:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="legend-label" x="{x + 12:.1f}" y="{y + 4:.1f}">Pareto front</text>')
    parts.append("</g>")
    return parts


def tradeoff_svg(
    points: Sequence[Point], x_axis: Axis, y_axis: Axis, title: str, frame: Frame = TRADEOFF_FRAME
) -> str:
    """Forget (x) against retain (y): each run a point with CI bars, the Pareto front drawn, a legend of the
    methods, and as many point labels as fit without overlapping (the reference and the front first)."""
    area = frame.area
    xs = [v for p in points for v in (p.x - (p.x_ci or 0), p.x + (p.x_ci or 0))]
    ys = [v for p in points for v in (p.y - (p.y_ci or 0), p.y + (p.y_ci or 0))]
    x = Scale.fit(xs, area.x0, area.x1)
    y = Scale.fit(ys, area.y1, area.y0)
    parts = _frame(frame, x, y, x_axis.label, y_axis.label)
    front = pareto_front(points, x_axis.better or "lower", y_axis.better or "lower")
    if len(front) >= 2:
        path = " ".join(f"{x(p.x):.1f},{y(p.y):.1f}" for p in front)
        parts.append(f'<polyline class="front" points="{path}"/>')
    for p in points:
        cx, cy = x(p.x), y(p.y)
        x0, x1 = x(p.x - (p.x_ci or 0)), x(p.x + (p.x_ci or 0))
        y0, y1 = y(p.y - (p.y_ci or 0)), y(p.y + (p.y_ci or 0))
        parts.append(_error_bars(cx, cy, x0, x1, y0, y1, p.colour))
        tip = f"{p.label}: x {fmt(p.x)}" + (f" ± {fmt(p.x_ci)}" if p.x_ci else "")
        tip += f", y {fmt(p.y)}" + (f" ± {fmt(p.y_ci)}" if p.y_ci else "")
        on_front = " on-front" if p in front else ""
        if p.kind == "reference":
            marker = _diamond(cx, cy, 7, p.colour)
        else:
            marker = f'<circle class="marker{on_front}" cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{p.colour}"/>'
        parts.append(f'<g class="point"><title>{escape(tip)}</title>{marker}</g>')
    ordered = sorted(points, key=lambda p: (p.kind != "reference", p not in front))
    markers = [Box(x(p.x) - 6, y(p.y) - 6, x(p.x) + 6, y(p.y) + 6) for p in points]
    for text, lx, ly, anchor, _ in place_labels([(p.label, x(p.x), y(p.y)) for p in ordered], area, markers):
        parts.append(
            f'<text class="point-label" x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}">'
            f"{escape(text)}</text>"
        )
    parts += _legend(frame, points, with_front=len(front) >= 2)
    return _svg(frame, parts, title)


def sweep_svg(
    curves: Sequence[Curve], parameter: str, metric: Axis, lines: Sequence[Line], title: str
) -> str:
    """A metric against a swept parameter: one curve per method and seed with CI bars, and horizontal lines
    for the reference's and the original model's values."""
    values = [p[0] for c in curves for p in c.points]
    log = all(v > 0 for v in values) and bool(values) and max(values) / min(values) >= 8
    frame = SWEEP_FRAME
    area = frame.area
    x = Scale.fit(values, area.x0, area.x1, log=log)
    if not log:
        x = Scale(x.low, x.high, x.start, x.end, False, tuple(sorted(set(values))) or x.ticks, nice=False)
    ys = [v for c in curves for _, m, ci in c.points for v in (m - (ci or 0), m + (ci or 0))]
    ys += [line.y for line in lines]
    y = Scale.fit(ys, area.y1, area.y0)
    x_title = f"{parameter}" + (" (log scale)" if log else "")
    parts = _frame(frame, x, y, x_title, metric.label)
    left, right = area.x0, area.x1
    for index, line in enumerate(lines):
        py = y(line.y)
        x_text, anchor = (right - 4, "end") if index % 2 == 0 else (left + 4, "start")
        parts.append(
            f'<line class="hline" x1="{left}" y1="{py:.1f}" x2="{right}" y2="{py:.1f}" '
            f'stroke="{line.colour}" stroke-dasharray="{line.dash}"/>'
            f'<text class="line-label" x="{x_text}" y="{py - 5:.1f}" text-anchor="{anchor}">'
            f"{escape(line.label)} {fmt(line.y)}</text>"
        )
    for curve in curves:
        ordered = sorted(curve.points)
        path = " ".join(f"{x(px):.1f},{y(py):.1f}" for px, py, _ in ordered)
        parts.append(f'<polyline class="curve" points="{path}" stroke="{curve.colour}"/>')
        for px, py, ci in ordered:
            cx, cy = x(px), y(py)
            y0, y1 = y(py - (ci or 0)), y(py + (ci or 0))
            parts.append(_error_bars(cx, cy, cx, cx, y0, y1, curve.colour))
            tip = f"{curve.label} {parameter}={px:g}: {fmt(py)}" + (f" ± {fmt(ci)}" if ci else "")
            parts.append(
                f'<g class="point"><title>{escape(tip)}</title>'
                f'<circle class="marker" cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{curve.colour}"/></g>'
            )
    return _svg(frame, parts, title)
