"""One dashboard as one self-contained HTML file: plotly's JavaScript is embedded, so the file opens
with no network (a laptop on a train, an air-gapped warehouse host, a file attached to a ticket)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import plotly.graph_objects as go
import plotly.offline
from jinja2 import Environment
from markupsafe import Markup


@dataclass
class Panel:
    """A chart, a table, or - when there is nothing to show yet - a note saying why."""

    title: str
    explanation: str = ""
    figure: go.Figure | None = None
    table: list[dict] | None = None
    empty_because: str = ""

    @property
    def points(self) -> int:
        if self.figure is None:
            return 0
        return sum(_trace_points(trace) for trace in self.figure.data)


@dataclass
class Dashboard:
    name: str  # the file's stem: marketing, ops, content, cost, compliance
    title: str
    summary: str
    figures: dict[str, str] = field(default_factory=dict)  # key figure -> formatted value
    numbers: dict[str, float] = field(default_factory=dict)  # the same, as numbers for asset metadata
    panels: list[Panel] = field(default_factory=list)

    @property
    def charts(self) -> int:
        return sum(1 for panel in self.panels if panel.figure is not None)


def _trace_points(trace) -> int:
    for attribute in ("z", "y", "values", "x"):
        values = getattr(trace, attribute, None)
        if values is not None and len(values):
            return sum(len(row) if isinstance(row, (list, tuple)) else 1 for row in values)
    return 0


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Mailroom - {{ dashboard.title }}</title>
<style>
 body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1f2933; background: #f5f7fa; }
 header { background: #243b53; color: #fff; padding: 18px 28px; }
 header h1 { margin: 0 0 4px; font-size: 22px; } header p { margin: 0; opacity: .85; font-size: 14px; }
 nav a { color: #bcccdc; margin-right: 14px; font-size: 13px; } nav a.current { color: #fff; font-weight: 600; }
 main { padding: 20px 28px; }
 .figures { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 18px; }
 .figure { background: #fff; border-radius: 6px; padding: 12px 16px; min-width: 150px; box-shadow: 0 1px 2px #0002; }
 .figure .value { font-size: 22px; font-weight: 600; } .figure .label { font-size: 12px; color: #52606d; }
 section { background: #fff; border-radius: 6px; padding: 14px 18px; margin-bottom: 18px; box-shadow: 0 1px 2px #0002; }
 section h2 { font-size: 16px; margin: 0 0 4px; } section p.why { font-size: 13px; color: #52606d; margin: 0 0 8px; }
 table { border-collapse: collapse; font-size: 13px; } th, td { padding: 4px 10px; border-bottom: 1px solid #e4e7eb; }
 th { text-align: left; background: #f0f4f8; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
 .empty { color: #7b8794; font-style: italic; }
</style>
<script>{{ plotly_js }}</script>
</head><body>
<header><h1>{{ dashboard.title }}</h1><p>{{ dashboard.summary }} &middot; {{ generated }}</p>
<nav>{% for name, title in links %}<a href="{{ name }}.html"{% if name == dashboard.name %} class="current"{% endif %}>{{ title }}</a>{% endfor %}</nav>
</header>
<main data-charts="{{ dashboard.charts }}">
<div class="figures">{% for label, value in dashboard.figures.items() %}
 <div class="figure"><div class="value">{{ value }}</div><div class="label">{{ label }}</div></div>{% endfor %}
</div>
{% for panel in panels %}<section>
 <h2>{{ panel.title }}</h2>{% if panel.explanation %}<p class="why">{{ panel.explanation }}</p>{% endif %}
 {% if panel.html %}{{ panel.html }}{% elif panel.table %}<table><tr>{% for column in panel.table[0] %}<th>{{ column }}</th>{% endfor %}</tr>
 {% for row in panel.table %}<tr>{% for value in row.values() %}<td{% if value is number %} class="n"{% endif %}>{{ value | cell }}</td>{% endfor %}</tr>{% endfor %}</table>
 {% else %}<p class="empty">{{ panel.empty_because }}</p>{% endif %}
</section>{% endfor %}
</main></body></html>
"""  # noqa: E501 - an HTML template: a line break inside <nav> or a table row would change the page


@cache
def _environment() -> Environment:
    environment = Environment(autoescape=True)
    environment.filters["cell"] = lambda v: "" if v is None else (f"{v:,}" if isinstance(v, int) else
                                                                 f"{v:,.4g}" if isinstance(v, float) else v)
    return environment


def render(dashboard: Dashboard, links: list[tuple[str, str]], generated: str) -> str:
    panels = []
    for index, panel in enumerate(dashboard.panels):
        html = None
        if panel.figure is not None:
            html = Markup(panel.figure.to_html(
                full_html=False, include_plotlyjs=False, div_id=f"{dashboard.name}-chart-{index}",
                config={"displaylogo": False, "responsive": True}))
        panels.append({"title": panel.title, "explanation": panel.explanation, "html": html,
                       "table": panel.table, "empty_because": panel.empty_because})
    return _environment().from_string(TEMPLATE).render(
        dashboard=dashboard, panels=panels, links=links, generated=generated,
        plotly_js=Markup(plotly.offline.get_plotlyjs()))


def write_atomically(path: Path, text: str) -> None:
    """Whole or not at all: a browser open on the old file never reads half of the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
