"""The comparison report of a finished sweep: what each search cost and what it found.

Pure functions over :mod:`sweeps.results` data (no Ray, no MLflow): a cost table (rows, Markdown,
CSV), a best-so-far curve of validation score against compute spent, and the GradNorm weights of
one trial. Selection is always on the validation ``"score"`` (lower is better); test numbers are
only ever read off the trial and epoch that validation chose.

Plots draw on a :class:`matplotlib.figure.Figure` with the Agg canvas attached explicitly, so no
pyplot state and no interactive backend are involved (safe in threads and on headless machines).
"""

from __future__ import annotations

import csv
import math
import os
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from sweeps.configs import ConfigResult, best_config, label_of, within_noise
from sweeps.results import SearchSummary, TrialSummary

FINISHED = "FINISHED"
SCORE_FIELDS = ("best_val_score", "best_test_score", "best_trial", "best_config")


def reads_metric(key: str) -> bool:
    """Whether the report reads this metric of a trial's history (the rest need not be fetched);
    of the validation metrics only ``val/<task>/normalized_error`` (the Pareto view's)."""
    return (key in ("score", "compute_seconds") or key.startswith(("test/", "weight/", "mean_weight/"))
            or (key.startswith("val/") and key.endswith("/normalized_error")))


# ----------------------------------------------------------------------------- selection


def best_trial(search: SearchSummary) -> TrialSummary | None:
    """The best FINISHED trial of the search's best configuration (see
    :func:`sweeps.configs.best_config`: the lowest mean best-epoch validation ``"score"`` over
    its seeds; without repeats, simply the trial with the lowest one).

    Trials that did not finish, or have no history, are ignored. Ties go to the trial listed
    first. ``None`` when no trial qualifies.
    """
    best = best_config(search)
    return None if best is None else best.best_trial


def config_label(config: dict[str, Any]) -> str:
    """A trial's varied parameters as its search type labelled them (``"alpha=0.12"``,
    ``"weights=[1, 0.5]"``, ``"-"``): the ``label`` key of its config."""
    return str(config.get("label", "-"))


# ----------------------------------------------------------------------------- cost table


def cost_rows(searches: Sequence[SearchSummary], task_metrics: Sequence[str],
              fronts: Mapping[str, str | None] | None = None) -> list[dict]:
    """One row per search, in the order given.

    Keys: ``search``, ``kind``, ``trials`` (all statuses), ``finished`` (status FINISHED),
    ``stopped_early`` (trials its early stopping ended before their last epoch: FINISHED, and
    counted in ``finished``), ``compute_seconds`` (sum over all trials, failed ones included),
    ``stopped_compute_seconds`` (the part of it spent on the trials stopped early), ``wall_seconds``,
    ``best_val_score`` (the best configuration's mean over its seeds of the best-epoch
    ``"score"``; see :func:`best_trial`), ``best_test_score`` (the mean of ``"test/score"`` at
    those epochs), ``best_trial`` (the configuration's best trial_id), ``best_config`` (see
    :func:`config_label`), then ``"test/<name>"`` for each name in ``task_metrics`` (means at
    those epochs; ``None`` when missing), then ``grid_size`` and ``sampled`` when the search has a
    grid size. When the best configuration ran with several seeds, also ``seeds``,
    ``best_val_std`` and ``best_test_std`` (sample std), and ``vs_best``: ``"best"`` for the row
    with the lowest mean, ``"within noise"`` when its mean differs from the best row's by less
    than their seeds' spread (:func:`sweeps.configs.within_noise`), else ``"worse"``. Score
    fields are ``None`` without a finished trial. With ``fronts`` (``{search name: status}``, see
    :func:`sweeps.pareto.front_statuses`), every row ends with ``front`` (``None`` when absent).
    """
    configs = [best_config(search) for search in searches]
    rows = [_cost_row(search, config, task_metrics) for search, config in zip(searches, configs)]
    ranked = [(config.mean, i) for i, config in enumerate(configs) if config is not None]
    if ranked:
        leader = configs[min(ranked)[1]]
        for row, config in zip(rows, configs):
            if config is not None and len(config.trials) > 1:
                noise = within_noise(config, leader)
                row["vs_best"] = ("best" if config is leader else
                                  None if noise is None else "within noise" if noise else "worse")
    if fronts is not None:
        for row in rows:
            row["front"] = fronts.get(row["search"])
    return rows


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _cost_row(search: SearchSummary, config: ConfigResult | None, task_metrics: Sequence[str]) -> dict:
    row: dict[str, Any] = {
        "search": search.name,
        "kind": search.kind,
        "trials": len(search.trials),
        "finished": sum(t.status == FINISHED for t in search.trials),
        "stopped_early": sum(t.stopped_early for t in search.trials),
        "compute_seconds": float(sum(t.compute_seconds for t in search.trials)),
        "stopped_compute_seconds": float(sum(t.compute_seconds for t in search.trials if t.stopped_early)),
        "wall_seconds": search.wall_seconds,
    }
    best = config.best_trial if config is not None else None
    row["best_val_score"] = config.mean if config is not None else None
    row["best_test_score"] = _mean(config.values("test/score")) if config is not None else None
    row["best_trial"] = best.trial_id if best is not None else None
    row["best_config"] = config_label(best.config) if best is not None else None
    for name in task_metrics:
        row[f"test/{name}"] = _mean(config.values(f"test/{name}")) if config is not None else None
    if search.grid_size is not None:
        row["grid_size"] = search.grid_size
        row["sampled"] = search.sampled
    if config is not None and len(config.trials) > 1:
        tests = config.values("test/score")
        row["seeds"] = len(config.trials)
        row["best_val_std"] = config.std
        row["best_test_std"] = statistics.stdev(tests) if len(tests) > 1 else None
    return row


def trials_cell(row: dict) -> str:
    """The trials column: ``"10 of 27 (sampled)"`` for a sampled grid, ``"27 of 27"`` for a full
    one, the bare count otherwise; with several seeds per configuration ``"81 = 27 of 27 x 3
    seeds"``; then ``" (12 stopped early)"`` when early stopping ended some."""
    stopped = f" ({row['stopped_early']} stopped early)" if row.get("stopped_early") else ""
    seeds = row.get("seeds") or 1
    if row.get("grid_size") is None:
        return f"{row['trials']}{stopped}"
    points = row["trials"] // seeds
    text = f"{points} of {row['grid_size']}" + (" (sampled)" if row.get("sampled") else "")
    if seeds > 1:
        text = f"{row['trials']} = {text} x {seeds} seeds"
    return text + stopped


def format_table(rows: Sequence[dict], task_metrics: Sequence[str]) -> str:
    """A GitHub-style Markdown table, padded so it also reads as plain text in a terminal.

    Columns: search | trials | compute s | wall s | best val score | test score |
    <each task metric> | best config, and ``vs best`` when some search ran several seeds (then
    the scores read ``mean ± std``), and ``grid front`` last when the rows carry ``front`` (see
    :func:`cost_rows`). Scores and metrics show 4 decimals (scientific below 1e-3),
    seconds 1 decimal with thousands separators, missing values ``-``.
    """
    seeds = any("vs_best" in row for row in rows)
    front = any("front" in row for row in rows)
    header = ["search", "trials", "compute s", "wall s", "best val score", "test score",
              *task_metrics, "best config", *(["vs best"] if seeds else []), *(["grid front"] if front else [])]
    right = [False, True, True, True, True, True, *[True] * len(task_metrics), False, *([False] if seeds else []),
             *([False] if front else [])]
    body = [
        [str(row["search"]), trials_cell(row), _seconds(row["compute_seconds"]),
         _seconds(row["wall_seconds"]), _spread(row["best_val_score"], row.get("best_val_std")),
         _spread(row["best_test_score"], row.get("best_test_std")),
         *[_number(row.get(f"test/{name}")) for name in task_metrics],
         row["best_config"] or "-", *([row.get("vs_best") or "-"] if seeds else []),
         *([row.get("front") or "-"] if front else [])]
        for row in rows
    ]
    cells = [[c.replace("|", "\\|") for c in line] for line in [header, *body]]
    widths = [max(3, *(len(line[i]) for line in cells)) for i in range(len(header))]

    def render(line: list[str]) -> str:
        padded = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(line, widths, right)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2))
                          for w, r in zip(widths, right)) + "|"
    return "\n".join([render(cells[0]), rule, *(render(line) for line in cells[1:])])


def _spread(value: float | None, std: float | None) -> str:
    return _number(value) if std is None or value is None else f"{_number(value)} ± {_number(std)}"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.3e}"
    return f"{value:.4f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{float(value):,.1f}"


def write_csv(rows: Sequence[dict], path: str | os.PathLike) -> None:
    """Write ``rows`` as CSV with a header: the union of their keys in first-seen order, raw
    values (no rounding), ``None`` as an empty cell. Creates the parent directory."""
    fields: list[str] = []
    for row in rows:
        fields.extend(key for key in row if key not in fields)
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


# ----------------------------------------------------------------------------- cost curve


def best_so_far(search: SearchSummary) -> list[tuple[float, float]]:
    """Points ``(cumulative compute seconds, best validation score so far)``.

    Trials are taken in order of ``end_time`` (stable for ties). Every trial adds its
    ``compute_seconds`` to the running total (failed ones too: the compute was spent); only
    FINISHED trials with a history contribute their best-epoch ``"score"``, to their
    configuration's mean over the seeds that have ended so far (without repeats, the trial's
    own score). One point per trial, starting at the first trial that gives a score (before that
    there is nothing to plot); the value is the lowest configuration mean so far (with repeats it
    can rise, when a later seed pulls the leading configuration's mean up).
    """
    points: list[tuple[float, float]] = []
    compute = 0.0
    scores: dict[str, list[float]] = {}
    for trial in sorted(search.trials, key=lambda t: t.end_time):
        compute += trial.compute_seconds
        if trial.status == FINISHED and trial.best_epoch is not None:
            scores.setdefault(label_of(trial), []).append(trial.best_epoch["score"])
        if scores:
            points.append((compute, min(sum(v) / len(v) for v in scores.values())))
    return points


def new_figure(width: float = 7.0, height: float = 4.5):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path: str | os.PathLike) -> None:
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, format="png")


def log_x(xs: Sequence[float]) -> bool:
    """Whether the positive values of ``xs`` span more than two decades (max / min > 100)."""
    positive = [x for x in xs if x > 0]
    return bool(positive) and max(positive) / min(positive) > 100


def plot_best_so_far(searches: Sequence[SearchSummary], path: str | os.PathLike) -> None:
    """Save a PNG with one step line per search of :func:`best_so_far` (validation score
    against cumulative compute seconds). The x axis is logarithmic when the positive x values
    span more than two decades. Searches without a finished trial are left out of the plot."""
    figure = new_figure()
    axes = figure.add_subplot(1, 1, 1)
    xs: list[float] = []
    for search in searches:
        points = best_so_far(search)
        if not points:
            continue
        x, y = zip(*points)
        xs.extend(x)
        axes.step(x, y, where="post", marker="o", markersize=3, label=search.name)
    if log_x(xs):
        axes.set_xscale("log")
    if xs:
        axes.legend(loc="best")
    else:
        axes.text(0.5, 0.5, "no finished trial", ha="center", va="center",
                  transform=axes.transAxes)
    axes.set_xlabel("cumulative compute (s)")
    axes.set_ylabel("best validation score so far (lower is better)")
    axes.set_title("Best validation score vs compute spent")
    axes.grid(True, alpha=0.3)
    save_figure(figure, path)
