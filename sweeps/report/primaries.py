"""Delta m%'s primary metrics of a finished sweep, read the way its trials read the problem.

Each trial records, at its first report, its problem's primary metric of each task and its
direction (:attr:`.summaries.TrialSummary.primary`, the run's tag
``gradnorm_tune.primary_metrics``): the comparison reads them there (:func:`recorded_primary_metrics`)
and never imports the problem for them, so a problem shipped with the sweep
(``runtime_env.working_dir``) needs no copy on the driver's path. Only a record written before
trials recorded them falls back to the problem itself, imported as a Ray worker imports it (the
spec's shipped code first, :func:`sweeps.spec.runtime_env.code_on_path`; no data is read):
:func:`spec_primary_metrics`. Sits on :mod:`.summaries` alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .summaries import PrimaryMetric, SearchSummary, primary_metrics

if TYPE_CHECKING:
    from ..spec import SweepSpec

__all__ = ["recorded_primary_metrics", "spec_primary_metrics", "sweep_primary_metrics"]


def spec_primary_metrics(spec: SweepSpec) -> list[PrimaryMetric]:
    """:func:`primary_metrics` of the spec's problem, built from its name and options (no data),
    imported as the trials import it: the spec's shipped code first
    (:func:`sweeps.spec.runtime_env.code_on_path`)."""
    from gradnorm_core import make_problem

    from ..spec.runtime_env import code_on_path

    with code_on_path(spec.runtime_env):
        return primary_metrics(make_problem(spec.problem.name, **spec.problem.options), spec.task_names)


def recorded_primary_metrics(summaries: list[SearchSummary], task_names: list[str]) -> list[PrimaryMetric] | None:
    """Each task's primary metric as a trial recorded it (:attr:`TrialSummary.primary`), the
    reference search's trials first; None when no trial recorded one (a record written before the
    trials did). A task that the record leaves out raises a one-line ValueError."""
    for summary in sorted(summaries, key=lambda summary: not summary.reference):
        for trial in summary.trials:
            if trial.primary is None:
                continue
            missing = [task for task in task_names if task not in trial.primary]
            if missing:
                raise ValueError(f"the trials' problem gives no primary metric (with a direction) for task "
                                 f"{missing[0]!r}; override Problem.primary_metrics() to name one per task, of a "
                                 "Metric that declares its direction")
            return [PrimaryMetric(task, str(trial.primary[task]["metric"]),
                                  bool(trial.primary[task]["higher_is_better"])) for task in task_names]
    return None


def sweep_primary_metrics(summaries: list[SearchSummary], spec: SweepSpec) -> list[PrimaryMetric] | None:
    """Delta m%'s primary metrics: as the trials recorded them (:func:`recorded_primary_metrics`),
    else (an older record) from the problem imported as the trials import it
    (:func:`spec_primary_metrics`). When neither says, ``None`` (the comparison has no Delta m%),
    and one line printed says what is missing."""
    try:
        found = recorded_primary_metrics(summaries, spec.task_names)
        return found if found is not None else spec_primary_metrics(spec)
    except Exception as error:  # noqa: BLE001 - the user's problem: said in one line, the rest goes on
        from trainables import error_line

        print(f"Delta m% left out: no primary metric of every task ({error_line(error)})", flush=True)
        return None
