"""A weighted method's task weights over training: their time average (the recommended static
weights) and their trajectories. Pure functions over :mod:`sweeps.results` data, like
:mod:`sweeps.report`."""

from __future__ import annotations

import os

from sweeps.report import config_label, new_figure, save_figure
from sweeps.results import TrialSummary


def _prefixed_keys(trial: TrialSummary, prefix: str) -> list[str]:
    """Keys of the first history record that start with ``prefix``, in record order; a one-line
    ValueError when there are none."""
    keys = [k for k in trial.history[0] if k.startswith(prefix)] if trial.history else []
    if not keys:
        raise ValueError(
            f"trial {trial.trial_id!r} of search {trial.search!r} has no weight history "
            f"(no '{prefix}<task>' entries); pass a trial of a weighted method that ran an epoch")
    return keys


def time_averaged_weights(trial: TrialSummary) -> list[float]:
    """The task weights averaged over training: for each ``"mean_weight/<task>"`` key (tasks in
    the order of the first history record's keys), the plain mean over epochs. Every epoch has
    the same number of steps, so this is also the mean over all steps.

    Raises ValueError (one line) when the trial has no such entries, or an epoch lacks one.
    """
    keys = _prefixed_keys(trial, "mean_weight/")
    for record in trial.history:
        missing = [k for k in keys if k not in record]
        if missing:
            raise ValueError(f"trial {trial.trial_id!r}: epoch {record.get('epoch')} lacks "
                             f"{missing[0]!r}; every epoch must log the same tasks' weights")
    return [sum(r[k] for r in trial.history) / len(trial.history) for k in keys]


def plot_weight_trajectories(trial: TrialSummary, path: str | os.PathLike) -> None:
    """Save a PNG of the end-of-epoch ``"weight/<task>"`` values of one trial: one line per task
    (tasks in the order of the first history record), x = ``"epoch"``, with the trial's varied
    config (e.g. ``alpha=0.12``) in the title. Raises ValueError (one line) when the trial has
    no weight history."""
    keys = _prefixed_keys(trial, "weight/")
    figure = new_figure()
    axes = figure.add_subplot(1, 1, 1)
    for key in keys:
        records = [r for r in trial.history if key in r]
        axes.plot([r["epoch"] for r in records], [r[key] for r in records],
                  marker="o", markersize=3, label=key.removeprefix("weight/"))
    axes.set_xlabel("epoch")
    axes.set_ylabel("task weight (end of epoch)")
    axes.set_title(f"Task weights: {trial.search} / {trial.trial_id} ({config_label(trial.config)})")
    axes.legend(loc="best")
    axes.grid(True, alpha=0.3)
    save_figure(figure, path)
