"""The cost table of a comparison: what each search cost and what it found, as rows, as a
Markdown table and as CSV.

Pure functions over :mod:`.summaries` data: the best configuration, the compute to the grid's
best and a derived search's cost with its source's come from :mod:`.selection`, Delta m% from
:mod:`.delta`, a search's place against the grid's front from :mod:`.fronts`.
"""

from __future__ import annotations

import csv
import math
import os
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from .delta import delta_ms, reference_search, single_task_reference
from .hypervolume import hypervolumes
from .selection import ConfigResult, best_config, config_label, grid_reach, grid_search, with_source, within_noise
from .summaries import OUTCOMES, RESULT_OUTCOMES, STOPPED, PrimaryMetric, SearchSummary

OUTCOME_FIELDS = tuple(f"outcome/{outcome}" for outcome in OUTCOMES)  # one count column per outcome
NO_RESULT = tuple(outcome for outcome in OUTCOMES if outcome not in RESULT_OUTCOMES)  # failed, diverged, killed


def cost_rows(searches: Sequence[SearchSummary], task_metrics: Sequence[str],
              fronts: Mapping[str, str | None] | None = None,
              primaries: Sequence[PrimaryMetric] | None = None) -> list[dict]:
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
    without a trial with a result.

    A search derived from another (``source``: the recommended static) also has ``source`` and
    ``compute_with_source_seconds`` (its compute and its source's: :func:`.selection.with_source`).
    With a grid (:func:`.selection.grid_search`), every row has ``grid_compute_fraction`` (its
    compute, a derived search's with its source's, over the grid's) and ``to_grid_best`` (the
    fraction of the grid's compute at which it first came within noise of the grid's best:
    :func:`.selection.grid_reach`; ``None``: never). With a single-task reference search and
    ``primaries``, every row has ``delta_m`` (:func:`.delta.delta_ms`); the reference's own row
    has no scores (its trials each train one task) and its ``test/<name>`` are the reference
    values M_stl. A search whose weights change as it trains (``pbt``:
    :attr:`SearchSummary.schedules_weights`) has ``final_weights``, its best trial's weights at its
    last epoch. When some trial has every task's normalized validation error, every row has
    ``hypervolume`` and ``hypervolume_per_compute_second`` (the front the search found against the
    sweep's reference point, and that over its compute with its source's:
    :func:`.hypervolume.hypervolumes`; ``None`` for the reference and a search without a point). With ``fronts`` (``{search name: status}``, see :func:`.fronts.front_statuses`),
    every row ends with ``front`` (``None`` when absent).
    """
    searches = list(searches)
    configs = [None if search.reference else best_config(search) for search in searches]
    rows = [_cost_row(search, config, task_metrics) for search, config in zip(searches, configs)]
    ranked = [(config.mean, i) for i, config in enumerate(configs) if config is not None]
    if ranked:
        leader = configs[min(ranked)[1]]
        for row, config in zip(rows, configs):
            if config is not None and len(config.trials) > 1:
                noise = within_noise(config, leader)
                row["vs_best"] = ("best" if config is leader else
                                  None if noise is None else "within noise" if noise else "worse")
    reference = reference_search(searches)
    for search, row in zip(searches, rows):
        if search.reference and primaries:
            row["best_config"] = "each task alone"
            for name, value in single_task_reference(search, primaries).items():
                if name in task_metrics:
                    row[f"test/{name}"] = value
        if search.source is not None:
            row["source"] = search.source
            row["compute_with_source_seconds"] = with_source(search, searches)
    grid, reach = grid_search(searches), grid_reach(searches)
    if grid is not None and reach:
        for search, row in zip(searches, rows):
            row["grid_compute_fraction"] = with_source(search, searches) / grid.compute_seconds
            if search.name in reach:  # (not the single-task reference: no competitor)
                row["to_grid_best"] = reach[search.name]
    deltas = delta_ms(searches, primaries or []) if reference is not None else {}
    for row in rows if deltas else ():
        row["delta_m"] = deltas.get(row["search"])
    for search, row, config in zip(searches, rows, configs):
        last = config.best_trial.history[-1] if search.schedules_weights and config is not None else {}
        if any(key.startswith("weight/") for key in last):  # a schedule's end: the weights it trained to
            row["final_weights"] = [last[key] for key in last if key.startswith("weight/")]
    volumes = hypervolumes(searches)
    for row in rows if any(volumes.values()) else ():
        volume, per_second = volumes.get(row["search"]) or (None, None)
        row["hypervolume"], row["hypervolume_per_compute_second"] = volume, per_second
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

    Columns: search | trials | compute s | wall s | val score | test score | Δm% | to grid's best |
    test <each task metric> | best config, ``hypervolume (per s)`` when the rows carry
    ``hypervolume`` (``0.0421 (1.3e-04/s)``: the volume, and per second of compute), and ``vs best`` when some search ran several seeds
    (then the scores read ``mean ± std``), and ``grid front`` last when the rows carry ``front``
    (see :func:`cost_rows`). ``Δm%`` only when the rows carry ``delta_m`` (a single-task reference
    ran), ``to grid's best`` (a fraction of the grid's compute, or ``never``) only when they carry
    ``to_grid_best``. A derived search's compute reads ``23.5 (251.2 with gradnorm)``. The val
    score names the best configuration's trials without a result (``0.1520 ± 0.0040 (1 of 3
    diverged)``). Scores and metrics show 4 decimals (scientific below 1e-3), Δm% 2, fractions
    of the grid 3, seconds 1 decimal with thousands separators, missing values ``-``.
    """
    seeds = any("vs_best" in row for row in rows)
    front = any("front" in row for row in rows)
    delta = any("delta_m" in row for row in rows)
    reach = any("to_grid_best" in row for row in rows)
    volume = any("hypervolume" in row for row in rows)
    columns: list[tuple[str, bool, Any]] = [  # (header, right-aligned, cell of a row)
        ("search", False, lambda row: str(row["search"])),
        ("trials", True, trials_cell),
        ("compute s", True, _compute_cell),
        ("wall s", True, lambda row: _seconds(row["wall_seconds"])),
        ("val score", True, _val_cell),
        ("test score", True, lambda row: _spread(row["best_test_score"], row.get("best_test_std"))),
        *([("Δm%", True, lambda row: _fixed(row.get("delta_m"), 2))] if delta else []),
        *([("to grid's best", True, _reach_cell)] if reach else []),
        *[(f"test {name}", True, lambda row, name=name: _number(row.get(f"test/{name}"))) for name in task_metrics],
        ("best config", False, lambda row: row["best_config"] or "-"),
        *([("hypervolume (per s)", True, _volume_cell)] if volume else []),
        *([("vs best", False, lambda row: row.get("vs_best") or "-")] if seeds else []),
        *([("grid front", False, lambda row: row.get("front") or "-")] if front else []),
    ]
    header = [title for title, _, _ in columns]
    right = [aligned for _, aligned, _ in columns]
    body = [[cell(row) for _, _, cell in columns] for row in rows]
    cells = [[c.replace("|", "\\|") for c in line] for line in [header, *body]]
    widths = [max(3, *(len(line[i]) for line in cells)) for i in range(len(header))]

    def render(line: list[str]) -> str:
        padded = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(line, widths, right)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2))
                          for w, r in zip(widths, right)) + "|"
    return "\n".join([render(cells[0]), rule, *(render(line) for line in cells[1:])])


def _compute_cell(row: dict) -> str:
    own = _seconds(row["compute_seconds"])
    if row.get("source") is None:
        return own
    return f"{own} ({_seconds(row.get('compute_with_source_seconds'))} with {row['source']})"


def _volume_cell(row: dict) -> str:
    if row.get("hypervolume") is None:
        return "-"
    per_second = row.get("hypervolume_per_compute_second")
    return _number(row["hypervolume"]) + ("" if per_second is None else f" ({_number(per_second)}/s)")


def _reach_cell(row: dict) -> str:
    if "to_grid_best" not in row:
        return "-"
    return "never" if row["to_grid_best"] is None else _fixed(row["to_grid_best"], 3)


def _fixed(value: float | None, decimals: int) -> str:
    return "-" if value is None else f"{float(value):.{decimals}f}"


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
