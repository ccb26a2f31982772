"""Charts for reports, guides and the console: matplotlib on the Agg backend (no display, no I/O),
rendered to PNG bytes and embedded in pages as `data:` URIs, so a page is one self-contained file.

A chart's title is the page's to print (the figure's caption): it is never drawn into the image, so
it is read once. A bar chart is at most `MAX_WIDTH` inches wide, and pages scale it down to fit."""

from __future__ import annotations

import base64
import io
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.ticker import Formatter

# Colours that stay apart for the common forms of colour blindness (Okabe-Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
# 900 pixels at 100 dpi: a page's column, so the labels stay legible when the page fits it.
MAX_WIDTH = 9.0
# The sign for an amount in a currency that is not named (ISO 4217's "¤"): prices are set in
# "currency units" per million tokens, and nothing says which currency.
CURRENCY = "\u00a4"


def money_labels(values: Sequence[float], sign: str = CURRENCY) -> list[str]:
    """Amounts of money as an axis shows them: the sign, thousands separated, and as many
    decimals (at least 2) as tell these values apart; never scientific notation."""
    finite = sorted(v for v in values if math.isfinite(v))
    steps = [b - a for a, b in itertools.pairwise(finite) if b > a]
    tolerance = (min(steps) if steps else max(map(abs, finite), default=1.0) or 1.0) / 1000
    decimals = next(
        (d for d in range(2, 12) if all(abs(round(v, d) - v) <= tolerance for v in finite)), 12
    )
    return [("-" if v < 0 else "") + f"{sign}{abs(v):,.{decimals}f}" for v in values]


def _money_formatter(sign: str) -> Formatter:
    from matplotlib.ticker import Formatter

    class Money(Formatter):
        def format_ticks(self, values: Sequence[float]) -> list[str]:  # the axis's labels
            return money_labels(list(values), sign)

        def __call__(self, x: float, pos: int | None = None) -> str:
            return money_labels([x], sign)[0]

    return Money()


@dataclass(frozen=True)
class Chart:
    """One rendered figure: its title, a text alternative, and the PNG."""

    title: str
    alt: str
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    # A Figure, not pyplot: no global figure state, safe in threads and servers.
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    axes: Axes = figure.subplots()
    return figure, axes


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # Fixed metadata keeps the bytes the same for the same data.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def bar_chart(
    title: str,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    ylabel: str = "",
    ylim: tuple[float, float] | None = None,
    alt: str | None = None,
    money: str | None = None,
    whole: bool = False,
) -> Chart:
    """Grouped vertical bars: one group per label in `groups`, one bar per series in each.
    `money`: the values are amounts, shown with this sign; `whole`: they are counts (whole-number
    ticks)."""
    for name, values in series.items():
        if len(values) != len(groups):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(groups)} groups")
    rows = -(-len(series) // 3) if len(series) > 1 else 0
    figure, axes = _figure(min(MAX_WIDTH, max(5.0, 1.1 * len(groups) + 2.0)), 3.2 + 0.25 * rows)
    count = max(1, len(series))
    width = 0.8 / count
    for index, (name, values) in enumerate(series.items()):
        offsets = [g + (index - (count - 1) / 2) * width for g in range(len(groups))]
        axes.bar(offsets, list(values), width, label=name, color=PALETTE[index % len(PALETTE)])
    axes.set_xticks(list(range(len(groups))), list(groups))
    axes.set_ylabel(ylabel)
    if money is not None:
        axes.yaxis.set_major_formatter(_money_formatter(money))
    if whole:
        from matplotlib.ticker import MaxNLocator

        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    if ylim is not None:
        axes.set_ylim(*ylim)
    axes.axhline(0, color="#444444", linewidth=0.6)
    axes.spines[["top", "right"]].set_visible(False)
    if len(series) > 1:  # below the plot, where it hides no bar
        figure.legend(fontsize=8, frameon=False, loc="outside lower center", ncols=min(count, 3))
    summary = "; ".join(
        f"{name}: " + ", ".join(f"{g} {v:.2f}" for g, v in zip(groups, values, strict=True))
        for name, values in series.items()
    )
    return Chart(title, alt or f"{title}. {summary}", _png(figure))


def interval_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    intervals: Sequence[tuple[float, float] | None],
    colours: Sequence[str],
    *,
    xlabel: str = "",
    legend: Mapping[str, str] | None = None,
    alt: str | None = None,
) -> Chart:
    """Horizontal bars, one per label, each with its interval as an error bar (none where the
    interval is None), coloured per bar; `legend` maps a name to a colour."""
    if not len(labels) == len(values) == len(intervals) == len(colours):
        raise ValueError("an interval chart needs a value, an interval and a colour per label")
    figure, axes = _figure(7.0, 1.0 + 0.38 * max(1, len(labels)))
    positions = list(range(len(labels)))[::-1]  # the first label at the top
    axes.barh(positions, list(values), color=list(colours), height=0.6)
    for y, value, interval in zip(positions, values, intervals, strict=True):
        if interval is not None:
            low, high = interval
            axes.errorbar(
                value,
                y,
                xerr=[[max(0.0, value - low)], [max(0.0, high - value)]],
                color="#222222",
                capsize=3,
                linewidth=1,
            )
    axes.set_yticks(positions, list(labels), fontsize=8)
    axes.set_xlim(0.0, 1.0)
    axes.set_xlabel(xlabel)
    axes.spines[["top", "right"]].set_visible(False)
    if legend:
        from matplotlib.patches import Patch

        handles = [Patch(color=colour, label=name) for name, colour in legend.items()]
        figure.legend(
            handles=handles, fontsize=8, frameon=False, loc="outside lower center", ncols=4
        )
    summary = "; ".join(f"{label} {value:.2f}" for label, value in zip(labels, values, strict=True))
    return Chart(title, alt or f"{title}. {summary}", _png(figure))
