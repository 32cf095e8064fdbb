"""The cost table of a comparison: what each search cost and what it found, as rows and as CSV
(the Markdown tables are :mod:`.markdown`'s).

Pure functions over :mod:`.summaries` data: the best configuration and a derived search's cost
with its source's come from :mod:`.selection`, the fractions of the grid's cost and the full
grid's projection from :mod:`.costs`, Delta m% from :mod:`.delta`, a search's place against the
grid's front from :mod:`.fronts`.
"""

from __future__ import annotations

import csv
import os
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from .costs import full_grid_cost, grid_fractions, points_ran, projected
from .delta import delta_ms, reference_search, single_task_reference
from .hypervolume import hypervolumes
from .selection import ConfigResult, best_config, config_label, with_source, within_noise
from .summaries import COST_UNITS, OUTCOMES, RESULT_OUTCOMES, STOPPED, PrimaryMetric, SearchSummary

OUTCOME_FIELDS = tuple(f"outcome/{outcome}" for outcome in OUTCOMES)  # one count column per outcome
NO_RESULT = tuple(outcome for outcome in OUTCOMES if outcome not in RESULT_OUTCOMES)  # failed, diverged, killed


def cost_key(unit: str) -> str:
    """A row's key of a search's own cost in ``unit``: ``compute_seconds``, ``cpu_seconds``, ..."""
    return COST_UNITS[unit]


def with_source_key(unit: str) -> str:
    """A derived search's row key of its cost in ``unit`` with its source's:
    ``compute_with_source_seconds``, ``cpu_with_source_seconds``, ..., ``samples_with_source``."""
    return "samples_with_source" if unit == "samples" else f"{unit}_with_source_seconds"


def full_grid_key(unit: str) -> str:
    """A grid's row key of the full grid's cost in ``unit``: ``full_grid_compute_seconds``, ..."""
    return f"full_grid_{COST_UNITS[unit]}"


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
    missing), then ``grid_size`` and ``sampled`` when the search has a grid size, with
    ``points_ran`` (its configurations that ran), ``full_grid_projected`` (fewer ran than it has)
    and the full grid's cost in every known unit (``full_grid_compute_seconds``,
    ``full_grid_cpu_seconds``, ``full_grid_samples``, ...: :func:`.costs.full_grid_cost`). Besides
    ``compute_seconds`` (wall-clock), a search's cost in every other unit its trials all have:
    ``cpu_seconds``, ``gpu_seconds``, ``samples`` (:data:`.summaries.COST_UNITS`). When the best
    configuration ran with several seeds, also ``seeds``, ``best_val_std`` and ``best_test_std``
    (sample std over the seeds with a result), and ``vs_best``: ``"best"`` for the row with the
    lowest mean, ``"within noise"`` when its mean differs from the best row's by less than their
    seeds' spread (:func:`.selection.within_noise`), else ``"worse"``. Score fields are ``None``
    without a trial with a result.

    A search derived from another (``source``: the recommended static) also has ``source`` and
    ``compute_with_source_seconds`` (its compute and its source's: :func:`.selection.with_source`),
    and the same in every other known unit (:func:`with_source_key`). With a grid
    (:func:`.selection.grid_search`), every row has, in every unit both costs are known in,
    ``grid_<unit>_fraction`` (its cost, a derived search's with its source's, over the grid's),
    ``full_grid_<unit>_fraction`` (over the full grid's) and ``to_grid_best`` / ``to_grid_best_<unit>``
    (the fraction of the grid's cost at which it first came within noise of the grid's best;
    ``None``: never): :func:`.costs.grid_fractions`. With a single-task reference search and
    ``primaries``, every row has ``delta_m`` (:func:`.delta.delta_ms`); the reference's own row
    has no scores (its trials each train one task) and its ``test/<name>`` are the reference
    values M_stl; it has ``reference`` (true). A search whose weights change as it trains (``pbt``:
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
        if search.reference:
            row["reference"] = True
        if search.reference and primaries:
            row["best_config"] = "each task alone"
            for name, value in single_task_reference(search, primaries).items():
                if name in task_metrics:
                    row[f"test/{name}"] = value
        if search.source is not None:
            row["source"] = search.source
            for unit in COST_UNITS:
                cost = with_source(search, searches, unit)
                if cost is not None:
                    row[with_source_key(unit)] = cost
    fractions = grid_fractions(searches)
    for search, row in zip(searches, rows):
        row.update(fractions.get(search.name, {}))
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
        **{cost_key(unit): search.cost(unit) for unit in COST_UNITS
           if unit != "compute" and search.trials and search.cost(unit) is not None},
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
        row["points_ran"] = points_ran(search)
        row["full_grid_projected"] = projected(search)
        for unit in COST_UNITS:
            full = full_grid_cost(search, unit)
            if full is not None:
                row[full_grid_key(unit)] = full
    if config is not None and config.seeds > 1:
        tests = config.values("test/score")
        row["seeds"] = config.seeds
        row["best_val_std"] = config.std
        row["best_test_std"] = statistics.stdev(tests) if len(tests) > 1 else None
    return row


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
