"""What every plot of the report shares: a figure without pyplot, axis scales, a title that fits,
a legend beside the axes, and marker styles.

Figures are :class:`matplotlib.figure.Figure` objects with the Agg canvas attached explicitly, so
no pyplot state and no interactive backend are involved (safe in threads and on headless
machines), laid out by matplotlib's constrained layout so that labels, titles and legends take
their room instead of overlapping the axes. A caller saves one with :func:`save_figure` or hands
it to MLflow's ``log_figure``.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence

MARKERS = ("*", "D", "^", "v", "P", "X", "s", "p", "h", "<", ">", "8")
#: an axis' label for a cost in each unit (:data:`..summaries.COST_UNITS`)
UNIT_AXES = {"compute": "compute (wall-clock s)", "cpu": "CPU time (s)", "gpu": "GPU time (s)",
             "samples": "samples processed"}
LEGEND_FONT = 8
TITLE_FONT = 11
DPI = 100


def new_figure(width: float = 7.0, height: float = 4.5):
    """An empty ``width`` x ``height`` inch figure on an Agg canvas, with constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path: str | os.PathLike) -> None:
    """Write ``figure`` as a PNG at ``path``, creating its directory."""
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    figure.savefig(path, format="png")


def spans_decades(values: Sequence[float]) -> bool:
    """Whether the positive ``values`` span more than two decades (max / min > 100)."""
    positive = [v for v in values if v > 0]
    return bool(positive) and max(positive) / min(positive) > 100


def set_scale(axes, axis: str, values: Sequence[float], *, log: bool | None = None) -> None:
    """Make the ``"x"`` or ``"y"`` axis logarithmic when ``log`` is true, or, with ``log`` left
    ``None``, when ``values`` span more than two decades. Where a value is 0 or below (a task
    classified perfectly, a weight that reached 0), symlog instead, linear below the smallest
    positive value, so that the point stays on the plot."""
    if not (spans_decades(values) if log is None else log):
        return
    setter = getattr(axes, f"set_{axis}scale")
    positive = [v for v in values if v > 0]
    if not positive:
        return
    if min(values) <= 0:
        setter("symlog", linthresh=min(positive))
    else:
        setter("log")
        ticks = getattr(axes, f"{axis}axis")
        ticks.set_major_formatter(plain_log_formatter())
        ticks.set_minor_formatter(plain_log_formatter(labelOnlyBase=False))


def plain_log_formatter(**options):
    """A log axis' tick labels as plain numbers (``0.01``, ``0.5``, ``2``), on the ticks that
    matplotlib's :class:`~matplotlib.ticker.LogFormatter` labels (minor ones only where the axis
    spans few decades)."""
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        def __call__(self, x, pos=None):
            return f"{x:.3g}" if super().__call__(x, pos) else ""

    return PlainLogFormatter(**options)


def set_title(figure, text: str, fontsize: float = TITLE_FONT) -> None:
    """The figure's title, centred left of a legend beside the axes (:func:`legend_beside`; set
    the legend first), wrapped at word boundaries until it fits there."""
    renderer = figure.canvas.get_renderer()
    right = figure.bbox.width
    if figure.legends:
        figure.draw_without_rendering()  # lays the figure out, so the legend has its place
        right = min(legend.get_window_extent(renderer).x0 for legend in figure.legends)
    title = figure.suptitle(text, fontsize=fontsize, x=right / 2 / figure.bbox.width)
    limit = 0.96 * right
    width = len(text)
    while title.get_window_extent(renderer).width > limit and width > 12:
        width -= 4
        title.set_text(textwrap.fill(text, width, break_long_words=False, break_on_hyphens=False))


def legend_beside(figure, handles: list, labels: list[str]) -> None:
    """One legend for the whole figure, right of the axes (constrained layout makes room),
    in as many columns as it needs to stay within the figure's height."""
    if not handles:
        return
    rows = max(1, int(figure.get_figheight() * 72 / (LEGEND_FONT * 2.2)) - 2)
    figure.legend(handles, labels, loc="outside right upper", fontsize=LEGEND_FONT,
                  ncols=-(-len(handles) // rows))


def unique_handles(*axes) -> tuple[list, list[str]]:
    """The legend entries of ``axes``, each label once, in order of first appearance."""
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    return handles, labels


def style(k: int) -> dict:
    """The marker and color of the ``k``-th search in a plot."""
    return {"marker": MARKERS[k % len(MARKERS)], "color": f"C{k % 10}"}


def note(axes, text: str) -> None:
    """A centred note in place of data (``"no trial with a result"``)."""
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes)
