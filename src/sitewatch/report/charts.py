"""The report's charts: the timeline of detections per category in each pass, and the matplotlib
figure helpers the charts and the site map share (Agg canvas, no pyplot: no global state, no display)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime, timedelta

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sitewatch.report.model import PassSummary
from sitewatch.types import CATEGORIES

#: One colour per category (matplotlib tab10), fixed so every report reads the same.
CATEGORY_COLOURS: dict[str, str] = dict(
    zip(CATEGORIES, ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"), strict=True)
)


def new_figure(width_in: float, height_in: float) -> Figure:
    """A figure bound to the Agg canvas."""
    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """Render a figure to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def timeline_png(passes: Sequence[PassSummary]) -> bytes:
    """Counts per category per pass as lines over acquisition time (PNG bytes).

    Undated passes are placed in store order after the dated ones; simulated passes are marked "SIM".
    """
    fig = new_figure(7.0, 3.0)
    ax = fig.add_subplot()
    dates = [p.acquired for p in passes if p.acquired is not None]
    dated = len(dates) == len(passes)
    positions = list(range(len(passes)))
    xs: list[datetime] | list[int] = dates if dated else positions
    shown = [c for c in CATEGORIES if any(p.counts.get(c, 0) for p in passes)] or list(CATEGORIES[:1])
    for cat in shown:
        # matplotlib converts datetimes (its units machinery); its type hints only take numbers
        ax.plot(
            xs,  # type: ignore[arg-type]
            [p.counts.get(cat, 0) for p in passes],
            marker="o",
            label=cat,
            color=CATEGORY_COLOURS[cat],
        )
    top = max([p.counts.get(c, 0) for p in passes for c in shown] + [1])
    for x, p in zip(xs, passes, strict=True):
        ax.annotate(
            p.label + (" SIM" if p.simulated else ""),
            (x, top),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=7,
            color="#b00" if p.simulated else "#333",
        )
    ax.set_ylim(0, top * 1.25 + 0.5)
    ax.set_ylabel("detections")
    if dated:
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        locator = AutoDateLocator(maxticks=8)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        if len(passes) == 1:
            day = timedelta(days=1)
            ax.set_xlim(dates[0] - day, dates[0] + day)  # type: ignore[arg-type]
    else:
        ax.set_xticks(positions, [p.label for p in passes])
        ax.set_xlabel("pass (undated)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncols=min(len(shown), 5))
    return figure_png(fig)
