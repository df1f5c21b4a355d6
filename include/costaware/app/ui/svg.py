"""Server-side SVG charts for the Costaware page: no JavaScript library, no CDN, works offline.

Two shapes cover what the page shows: a line chart (one or more series over run order, gaps
where a value is unknown) and a stacked bar chart (spend per month by tag). Every label is
escaped: tag values and column names come from configs and data.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# A colour-blind-safe palette (Okabe & Ito, 2008), cycled when there are more series.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000")
W, H, LEFT, RIGHT, TOP, BOTTOM = 640, 220, 56, 130, 14, 40


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # None: unknown at that point (drawn as a gap)
    dashed: bool = False


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _scale(lo: float, hi: float) -> tuple[float, float]:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 1.0
    if hi == lo:
        pad = abs(hi) * 0.1 or 1.0
        return lo - pad, hi + pad
    return lo, hi


def _frame(
    title: str, lo: float, hi: float, labels: Sequence[str], y: Callable[[float], float]
) -> list[str]:
    out = [
        f"<figure><figcaption>{_e(title)}</figcaption>",
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {W} {H}' width='{W}' "
        f"height='{H}' role='img' aria-label='{_e(title)}'><title>{_e(title)}</title>",
        f"<rect x='{LEFT}' y='{TOP}' width='{W - LEFT - RIGHT}' height='{H - TOP - BOTTOM}' "
        "fill='none' stroke='#ccc'/>",
    ]
    for frac in (0.0, 0.5, 1.0):
        v = lo + (hi - lo) * frac
        yy = y(v)
        out.append(
            f"<text x='{LEFT - 4}' y='{yy + 4:.1f}' font-size='10' text-anchor='end'>"
            f"{_e(_fmt(v))}</text>"
        )
    n = len(labels)
    step = max(1, math.ceil(n / 6))  # at most ~6 x labels so they never overlap
    for i in range(0, n, step):
        xx = _x(i, n)
        out.append(
            f"<text x='{xx:.1f}' y='{H - BOTTOM + 14}' font-size='10' text-anchor='middle'>"
            f"{_e(labels[i])}</text>"
        )
    return out


def _x(i: int, n: int) -> float:
    span = W - LEFT - RIGHT
    return LEFT + (span / 2 if n <= 1 else span * i / (n - 1))


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series]) -> str:
    """Lines over ``labels`` (x, in order); a ``None`` value breaks its line."""
    known = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    if not known or not labels:
        return f"<p class='empty'>{_e(title)}: no data yet.</p>"
    lo, hi = _scale(min(known), max(known))

    def y(v: float) -> float:
        return TOP + (H - TOP - BOTTOM) * (1 - (v - lo) / (hi - lo))

    out = _frame(title, lo, hi, labels, y)
    n = len(labels)
    for k, s in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        dash = " stroke-dasharray='5 3'" if s.dashed else ""
        runs: list[list[str]] = [[]]
        for i, v in enumerate(s.values):
            if v is None or not math.isfinite(v):
                runs.append([])
                continue
            runs[-1].append(f"{_x(i, n):.1f},{y(v):.1f}")
            out.append(
                f"<circle cx='{_x(i, n):.1f}' cy='{y(v):.1f}' r='2.5' fill='{colour}'>"
                f"<title>{_e(s.name)} {_e(labels[i])}: {_e(_fmt(v))}</title></circle>"
            )
        for pts in runs:
            if len(pts) > 1:
                out.append(
                    f"<polyline fill='none' stroke='{colour}' stroke-width='1.5'{dash} "
                    f"points='{' '.join(pts)}'/>"
                )
        out.append(
            f"<text x='{W - RIGHT + 8}' y='{TOP + 12 + 14 * k}' font-size='11' "
            f"fill='{colour}'>{_e(s.name)}</text>"
        )
    out.append("</svg></figure>")
    return "".join(out)


def stacked_bars(title: str, labels: Sequence[str], stacks: dict[str, Sequence[float]]) -> str:
    """One bar per label, stacked by key (e.g. spend per month stacked by tag value)."""
    totals = [sum(vals[i] for vals in stacks.values()) for i in range(len(labels))]
    if not labels or not any(t > 0 for t in totals):
        return f"<p class='empty'>{_e(title)}: no data yet.</p>"
    lo, hi = 0.0, max(totals)

    def y(v: float) -> float:
        return TOP + (H - TOP - BOTTOM) * (1 - (v - lo) / (hi - lo))

    out = _frame(title, lo, hi, labels, y)
    n = len(labels)
    span = (W - LEFT - RIGHT) / max(n, 1)
    width = min(40.0, span * 0.6)
    for i in range(n):
        base = 0.0
        cx = _x(i, n)
        for k, (name, vals) in enumerate(stacks.items()):
            v = vals[i]
            if v <= 0:
                continue
            top, bottom = y(base + v), y(base)
            out.append(
                f"<rect x='{cx - width / 2:.1f}' y='{top:.1f}' width='{width:.1f}' "
                f"height='{bottom - top:.1f}' fill='{PALETTE[k % len(PALETTE)]}'>"
                f"<title>{_e(name)} {_e(labels[i])}: ${v:.4f}</title></rect>"
            )
            base += v
    for k, name in enumerate(stacks):
        out.append(
            f"<text x='{W - RIGHT + 8}' y='{TOP + 12 + 14 * k}' font-size='11' "
            f"fill='{PALETTE[k % len(PALETTE)]}'>{_e(name)}</text>"
        )
    out.append("</svg></figure>")
    return "".join(out)
