"""The few chart shapes the dashboards use, in one look (plotly)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date

import plotly.graph_objects as go

LAYOUT = dict(template="plotly_white", height=360, margin=dict(l=60, r=20, t=30, b=60),
              legend=dict(orientation="h", y=-0.2), font=dict(size=12))


def bars(categories: Sequence, series: dict[str, Sequence], stacked: bool = False, horizontal: bool = False,
         y_title: str = "", percent: bool = False, colors: dict[str, str] | None = None) -> go.Figure:
    figure = go.Figure()
    for name, values in series.items():
        marker = {"color": colors[name]} if colors and name in colors else None
        if horizontal:
            figure.add_bar(name=name, y=_labels(categories), x=list(values), orientation="h", marker=marker)
        else:
            figure.add_bar(name=name, x=_labels(categories), y=list(values), marker=marker)
    figure.update_layout(**LAYOUT, barmode="stack" if stacked else "group")
    (figure.update_yaxes if horizontal else figure.update_xaxes)(type="category")
    axis = figure.update_xaxes if horizontal else figure.update_yaxes
    axis(title_text=y_title, tickformat=".1%" if percent else ",")
    if horizontal:
        figure.update_layout(height=max(260, 28 * len(categories) + 80))
    return figure


def lines(series: dict[str, tuple[Sequence, Sequence]], y_title: str = "", percent: bool = False,
          x_title: str = "") -> go.Figure:
    figure = go.Figure()
    for name, (x, y) in series.items():
        figure.add_scatter(name=name, x=_labels(x), y=list(y), mode="lines+markers")
    figure.update_layout(**LAYOUT)
    figure.update_yaxes(title_text=y_title, tickformat=".1%" if percent else ",")
    figure.update_xaxes(title_text=x_title, type="category")
    return figure


def heatmap(x: Sequence, y: Sequence, z: Sequence[Sequence], title: str = "", percent: bool = False) -> go.Figure:
    figure = go.Figure(go.Heatmap(x=_labels(x), y=_labels(y), z=[list(row) for row in z], colorscale="Blues",
                                  colorbar=dict(title=title, tickformat=".0%" if percent else ",")))
    figure.update_layout(**LAYOUT)
    figure.update_layout(height=max(260, 26 * len(y) + 120))
    figure.update_xaxes(type="category")
    figure.update_yaxes(type="category")
    return figure


def _labels(values: Iterable) -> list:
    """Days as plain labels: a date axis would spread one or two days over hours of empty time."""
    return [value.isoformat() if isinstance(value, date) else value for value in values]


def pivot(rows: Iterable[dict], x: str, y: str, value: str) -> tuple[list, list, list[list]]:
    """Rows of (x, y, value) as a grid: sorted x and y labels, and z[y][x] (0 where no row)."""
    cells: dict = defaultdict(float)
    for row in rows:
        cells[(row[y], row[x])] += row[value] or 0
    xs = sorted({key[1] for key in cells}, key=str)
    ys = sorted({key[0] for key in cells}, key=str)
    return xs, ys, [[cells.get((label, column), 0) for column in xs] for label in ys]


def grouped_sums(rows: Iterable[dict], by: Sequence[str], values: Sequence[str]) -> dict[tuple, dict]:
    """Sum `values` per combination of `by` columns, in first-seen order."""
    sums: dict[tuple, dict] = {}
    for row in rows:
        key = tuple(row[name] for name in by)
        total = sums.setdefault(key, dict.fromkeys(values, 0))
        for name in values:
            total[name] += row[name] or 0
    return sums


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None
