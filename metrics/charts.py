"""Charts for the dashboard, drawn on the server as inline SVG.

No JavaScript and nothing fetched at run time: the page renders the same on a closed network, in
a PDF print, or for a screen reader (every chart has a title and a table or labels next to it).
Every piece of text is escaped before it enters the markup.
"""

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

LINE_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
BAR_COLOUR = "#1f77b4"
NPS_COLOURS = {"promoters": "#2ca02c", "passives": "#bbbbbb", "detractors": "#d62728"}
HEAT_RGB = (31, 119, 180)


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # None leaves a gap


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def line_chart(
    *, title: str, days: Sequence[dt.date], series: Sequence[Series], width: int = 760, height: int = 260
) -> SafeString:
    """Rates (0..1) over days, one polyline per series, with a legend and y gridlines."""
    left, right, top, bottom = 44, 12, 28, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = max([1e-9, *(v for s in series for v in s.values if v is not None)])
    top_value = min(1.0, max(0.1, (int(top_value * 10) + 1) / 10))  # round up to a tenth, at most 100 %

    def x(i: int) -> float:
        return left + (plot_w * i / (len(days) - 1) if len(days) > 1 else plot_w / 2)

    def y(value: float) -> float:
        return top + plot_h * (1 - value / top_value)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for step in range(0, 6):
        level = top_value * step / 5
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(level):.1f}" y2="{y(level):.1f}" stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y(level) + 4:.1f}" font-size="11" text-anchor="end">{_percent(level)}</text>'
        )
    if days:
        for i in sorted({0, len(days) // 2, len(days) - 1}):
            # The end labels hang inwards so they stay inside the picture.
            anchor = "start" if i == 0 and len(days) > 1 else "end" if i == len(days) - 1 and i else "middle"
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - 8}" font-size="11" text-anchor="{anchor}">{days[i]:%Y-%m-%d}</text>'
            )
    for n, line in enumerate(series):
        colour = LINE_COLOURS[n % len(LINE_COLOURS)]
        runs: list[list[str]] = [[]]
        for i, value in enumerate(line.values):
            if value is None:
                runs.append([])
            else:
                runs[-1].append(f"{x(i):.1f},{y(value):.1f}")
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
            elif run:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(run)}" '
                    f'data-series="{escape(line.name)}"/>'
                )
        parts.append(
            f'<rect x="{left + 10 + 120 * n}" y="8" width="12" height="12" fill="{colour}"/>'
            f'<text x="{left + 26 + 120 * n}" y="18" font-size="12">{escape(line.name)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def bar_chart(*, title: str, labels: Sequence[str], values: Sequence[int], width: int = 520) -> SafeString:
    """Horizontal bars with the count at the end of each, largest scale = the largest value."""
    row, label_w, gap = 26, 130, 60
    height = row * len(labels) + 10
    biggest = max([1, *values])
    plot_w = width - label_w - gap
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 5 + i * row
        bar = plot_w * value / biggest
        parts.append(
            f'<g data-label="{escape(label)}"><text x="{label_w - 8}" y="{y + 16}" font-size="12" text-anchor="end">'
            f'{escape(label)}</text><rect x="{label_w}" y="{y + 4}" width="{bar:.1f}" height="16" fill="{BAR_COLOUR}"/>'
            f'<text x="{label_w + bar + 6:.1f}" y="{y + 16}" font-size="12">{value:,}</text></g>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def rate_bars(*, title: str, labels: Sequence[str], rates: Sequence[float | None], width: int = 520) -> SafeString:
    """Horizontal bars for shares (0..1) on a common 0-100 % scale, the percentage at the end."""
    row, label_w, gap = 26, 130, 70
    height = row * len(labels) + 10
    plot_w = width - label_w - gap
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for i, (label, rate) in enumerate(zip(labels, rates, strict=True)):
        y = 5 + i * row
        bar = plot_w * (rate or 0)
        shown = "—" if rate is None else _percent(rate)
        parts.append(
            f'<g data-label="{escape(label)}"><text x="{label_w - 8}" y="{y + 16}" font-size="12" text-anchor="end">'
            f'{escape(label)}</text><rect x="{label_w}" y="{y + 4}" width="{bar:.1f}" height="16" fill="{BAR_COLOUR}"/>'
            f'<text x="{label_w + bar + 6:.1f}" y="{y + 16}" font-size="12">{shown}</text></g>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def nps_bar(*, promoters: int, passives: int, detractors: int, width: int = 520) -> SafeString:
    """One stacked bar: promoters, passives, detractors, as shares of the answers."""
    total = promoters + passives + detractors
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} 48" width="{width}" height="48" role="img" '
        f'aria-label="NPS answers"><title>NPS answers</title>'
    ]
    x = 0.0
    for name, count in (("promoters", promoters), ("passives", passives), ("detractors", detractors)):
        share = count / total if total else 0
        if share:
            parts.append(
                f'<rect x="{x:.1f}" y="0" width="{width * share:.1f}" height="24" fill="{NPS_COLOURS[name]}" '
                f'data-part="{name}"/>'
            )
        x += width * share
    parts.append(
        f'<text x="0" y="42" font-size="12">promoters {promoters:,} · passives {passives:,} · '
        f"detractors {detractors:,}</text></svg>"
    )
    return mark_safe("".join(parts))


def heat_style(share: float | None) -> str:
    """The background of a cohort cell: darker blue for a higher share, white text when dark."""
    if share is None:
        return ""
    red, green, blue = HEAT_RGB
    alpha = 0.08 + 0.92 * max(0.0, min(1.0, share))
    colour = "#fff" if alpha > 0.55 else "#000"
    return f"background: rgba({red}, {green}, {blue}, {alpha:.2f}); color: {colour};"


def flow_heatmap(
    *,
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    counts: dict[str, dict[str, int]],
    link: Callable[[str, str], str] | None = None,
    width: int = 860,
) -> SafeString:
    """A matrix of counts, rows = where customers came from, columns = where they went; a cell's
    shade is its share of its row (so a small segment's movement shows as clearly as a big one's)
    and, with ``link``, the cell links to ``link(row, column)`` (the customers in it)."""
    label_w, head_h, row_h = 130, 64, 28
    cell_w = (width - label_w - 70) / max(1, len(columns))
    height = head_h + row_h * len(rows) + 8
    red, green, blue = HEAT_RGB
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>',
        # The page's font when inline; its own when the chart is a document of its own (embedded).
        "<style>svg { font-family: var(--font-family-primary, sans-serif); } "
        "a:hover rect { stroke: #333; stroke-width: 2; }</style>",
        f'<text x="{width - 8}" y="14" font-size="11" text-anchor="end">total</text>',
    ]
    for j, column in enumerate(columns):
        x = label_w + cell_w * (j + 0.5)
        # Slanted headers: eight segment names do not fit side by side at this width.
        parts.append(
            f'<text x="{x:.1f}" y="{head_h - 8}" font-size="11" transform="rotate(-30 {x:.1f} {head_h - 8})">'
            f"{escape(column)}</text>"
        )
    for i, row in enumerate(rows):
        y = head_h + i * row_h
        cells = counts.get(row, {})
        total = sum(cells.get(column, 0) for column in columns)
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 18}" font-size="12" text-anchor="end">{escape(row)}</text>'
            f'<text x="{width - 8}" y="{y + 18}" font-size="12" text-anchor="end">{total:,}</text>'
        )
        for j, column in enumerate(columns):
            n = cells.get(column, 0)
            share = n / total if total else 0.0
            alpha = 0.04 + 0.96 * share if n else 0.0
            fill = f"rgba({red}, {green}, {blue}, {alpha:.2f})" if n else "none"
            ink = "#fff" if alpha > 0.55 else "var(--body-fg, #333)"
            x = label_w + cell_w * j
            cell = (
                f'<g data-from="{escape(row)}" data-to="{escape(column)}" data-count="{n}">'
                f'<rect x="{x + 1:.1f}" y="{y + 1}" width="{cell_w - 2:.1f}" height="{row_h - 2}" fill="{fill}" '
                f'stroke="#ddd"/><text x="{x + cell_w / 2:.1f}" y="{y + 18}" font-size="12" text-anchor="middle" '
                f'style="fill: {ink}">{n:,}</text>'
                f"<title>{escape(row)} → {escape(column)}: {n:,}</title></g>"
            )
            if link is not None and n:
                # _top: the chart is also embedded as a document of its own; the list opens in the page.
                cell = f'<a href="{escape(link(row, column))}" target="_top">{cell}</a>'
            parts.append(cell)
    parts.append("</svg>")
    return mark_safe("".join(parts))


def flow_computing(*, width: int = 860) -> SafeString:
    """What the flow's chart shows while a worker scores the two dates."""
    return mark_safe(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="60" viewBox="0 0 {width} 60"'
        ' role="img" aria-label="Segment flow being computed">'
        '<text x="8" y="34" font-family="sans-serif" font-size="14">'
        "The segment flow is being computed; reload in a few seconds.</text></svg>"
    )
