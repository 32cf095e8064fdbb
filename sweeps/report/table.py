"""The cost table of a comparison: what each search cost and what it found, as rows, as a
Markdown table and as CSV.

Pure functions over :mod:`.summaries` data: the best configuration comes from
:mod:`.selection`, a search's place against the grid's front from :mod:`.fronts`.
"""

from __future__ import annotations

import csv
import math
import os
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from .selection import ConfigResult, best_config, config_label, within_noise
from .summaries import OUTCOMES, RESULT_OUTCOMES, STOPPED, SearchSummary

OUTCOME_FIELDS = tuple(f"outcome/{outcome}" for outcome in OUTCOMES)  # one count column per outcome
NO_RESULT = tuple(outcome for outcome in OUTCOMES if outcome not in RESULT_OUTCOMES)  # failed, diverged, killed


def cost_rows(searches: Sequence[SearchSummary], task_metrics: Sequence[str],
              fronts: Mapping[str, str | None] | None = None) -> list[dict]:
    """One row per search, in the order given.

    Keys: ``search``, ``kind``, ``trials`` (every trial, whatever its outcome), ``finished``
    (trials that ended as planned: outcome finished or stopped), ``stopped_early`` (trials its
    early stopping ended before their last epoch, counted in ``finished`` too), then
    ``outcome/<outcome>`` for each of :data:`.summaries.OUTCOMES` (the trials that ended so),
    ``compute_seconds`` (sum over all trials, failed, diverged and killed ones included),
    ``stopped_compute_seconds`` (the part of it spent on the trials stopped early),
    ``wall_seconds``, ``best_val_score`` (the best configuration's mean over its seeds of the
    best-epoch ``"score"``; see :func:`.selection.best_config`), ``best_test_score`` (the mean of
    ``"test/score"`` at those epochs), ``best_trial`` (the configuration's best trial_id),
    ``best_config`` (its label), ``best_left_out`` (``"1 of 3 diverged"``: the best configuration's
    trials without a result, which its means leave out; ``None`` when there are none), then
    ``"test/<name>"`` for each name in ``task_metrics`` (means at those epochs; ``None`` when
    missing), then ``grid_size`` and ``sampled`` when the search has a grid size. When the best
    configuration ran with several seeds, also ``seeds``, ``best_val_std`` and ``best_test_std``
    (sample std over the seeds with a result), and ``vs_best``: ``"best"`` for the row with the
    lowest mean, ``"within noise"`` when its mean differs from the best row's by less than their
    seeds' spread (:func:`.selection.within_noise`), else ``"worse"``. Score fields are ``None``
    without a trial with a result. With ``fronts`` (``{search name: status}``, see
    :func:`.fronts.front_statuses`), every row ends with ``front`` (``None`` when absent).
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
    return statistics.fmean(values) if values else None


def _left_out(config: ConfigResult | None) -> str | None:
    if config is None or not config.others:
        return None
    return ", ".join(f"{count} of {config.seeds} {outcome}" for outcome, count in config.left_out().items())


def _cost_row(search: SearchSummary, config: ConfigResult | None, task_metrics: Sequence[str]) -> dict:
    outcomes = [trial.outcome for trial in search.trials]
    row: dict[str, Any] = {
        "search": search.name,
        "kind": search.kind,
        "trials": len(search.trials),
        "finished": sum(outcome in RESULT_OUTCOMES for outcome in outcomes),
        "stopped_early": outcomes.count(STOPPED),
        **{field: outcomes.count(outcome) for field, outcome in zip(OUTCOME_FIELDS, OUTCOMES)},
        "compute_seconds": float(sum(t.compute_seconds for t in search.trials)),
        "stopped_compute_seconds": float(sum(t.compute_seconds for t in search.trials if t.outcome == STOPPED)),
        "wall_seconds": search.wall_seconds,
    }
    best = config.best_trial if config is not None else None
    row["best_val_score"] = config.mean if config is not None else None
    row["best_test_score"] = _mean(config.values("test/score")) if config is not None else None
    row["best_trial"] = best.trial_id if best is not None else None
    row["best_config"] = (config_label(best.config) or "-") if best is not None else None
    row["best_left_out"] = _left_out(config)
    for name in task_metrics:
        row[f"test/{name}"] = _mean(config.values(f"test/{name}")) if config is not None else None
    if search.grid_size is not None:
        row["grid_size"] = search.grid_size
        row["sampled"] = search.sampled
    if config is not None and config.seeds > 1:
        tests = config.values("test/score")
        row["seeds"] = config.seeds
        row["best_val_std"] = config.std
        row["best_test_std"] = statistics.stdev(tests) if len(tests) > 1 else None
    return row


def trials_cell(row: dict) -> str:
    """The trials column: ``"10 of 27 (sampled)"`` for a sampled grid, ``"27 of 27"`` for a full
    one, the bare count otherwise; with several seeds per configuration ``"81 = 27 of 27 x 3
    seeds"``; then the trials that did not finish as planned, e.g. ``" (12 stopped early, 2
    failed)"``."""
    ended = [f"{row['stopped_early']} stopped early"] if row.get("stopped_early") else []
    ended += [f"{row[f'outcome/{outcome}']} {outcome}" for outcome in NO_RESULT if row.get(f"outcome/{outcome}")]
    suffix = f" ({', '.join(ended)})" if ended else ""
    seeds = row.get("seeds") or 1
    if row.get("grid_size") is None:
        return f"{row['trials']}{suffix}"
    points = row["trials"] // seeds
    text = f"{points} of {row['grid_size']}" + (" (sampled)" if row.get("sampled") else "")
    if seeds > 1:
        text = f"{row['trials']} = {text} x {seeds} seeds"
    return text + suffix


def format_table(rows: Sequence[dict], task_metrics: Sequence[str]) -> str:
    """A GitHub-style Markdown table, padded so it also reads as plain text in a terminal.

    Columns: search | trials | compute s | wall s | val score | test score | test <each task
    metric> | best config, and ``vs best`` when some search ran several seeds (then the scores
    read ``mean ± std``), and ``grid front`` last when the rows carry ``front`` (see
    :func:`cost_rows`). The val score names the best configuration's trials without a result
    (``0.1520 ± 0.0040 (1 of 3 diverged)``). Scores and metrics show 4 decimals (scientific
    below 1e-3), seconds 1 decimal with thousands separators, missing values ``-``.
    """
    seeds = any("vs_best" in row for row in rows)
    front = any("front" in row for row in rows)
    header = ["search", "trials", "compute s", "wall s", "val score", "test score",
              *[f"test {name}" for name in task_metrics], "best config", *(["vs best"] if seeds else []),
              *(["grid front"] if front else [])]
    right = [False, True, True, True, True, True, *[True] * len(task_metrics), False, *([False] if seeds else []),
             *([False] if front else [])]
    body = [
        [str(row["search"]), trials_cell(row), _seconds(row["compute_seconds"]),
         _seconds(row["wall_seconds"]), _val_cell(row),
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


def _val_cell(row: dict) -> str:
    text = _spread(row["best_val_score"], row.get("best_val_std"))
    return f"{text} ({row['best_left_out']})" if row.get("best_left_out") else text


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
