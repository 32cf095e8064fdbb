"""What a finished sweep is made of, as plain data (trials and searches), and reading it back
from the MLflow record.

The bottom layer of the report: the dataclasses here are all that the other report modules
(:mod:`.selection`, :mod:`.fronts`, :mod:`.table`, :mod:`.figures`) read. Only
:func:`search_summary` and :func:`sweep_summaries` touch MLflow, and only through the functions
``trainables`` exports (imported when called, so that importing the report stays cheap).

Every trial ends as one *outcome*:

- ``finished``: it ran its epochs;
- ``stopped``: its search's early stopping (ASHA) ended it before its last epoch;
- ``failed``: it raised;
- ``diverged``: a loss or score turned NaN or infinite;
- ``killed``: the sweep was interrupted while it ran.

Only ``finished`` and ``stopped`` trials have a result (:attr:`TrialSummary.has_result`): they
alone feed selection, means, fronts, the best-so-far curve and the recommended weights. Every
trial's compute counts in its search's cost.

Each task's primary metric and its direction (:class:`PrimaryMetric`, for Delta m%) are what
each trial recorded at its first report (:attr:`TrialSummary.primary`); :mod:`.primaries` reads
them for the comparison.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from ..spec import SweepSpec
    from ..state import SweepState

from trainables import Outcome, metric_names, run_names

# the outcome words are trainables.Outcome's
FINISHED, STOPPED, FAILED, DIVERGED, KILLED = (outcome.value for outcome in Outcome)
OUTCOMES = tuple(outcome.value for outcome in Outcome)
GRID_KIND = "static_grid"  # the kind of the searches that make the static grid (its front, its best)
RESULT_OUTCOMES = tuple(outcome.value for outcome in Outcome if outcome.selectable)  # whose epochs are results
short_label = run_names.short_label  # a configuration's label shortened for reading (the trial runs' names)
WEIGHT, MEAN_WEIGHT = metric_names.WEIGHT, metric_names.MEAN_WEIGHT  # "weight/<task>", "mean_weight/<task>"
ALPHA_KIND = "gradnorm"  # the kind of the alpha searches (GradNorm's): what the answer weighs against the grid
#: what a trial's cost is counted in: {unit: its TrialSummary attribute (and its record's key)}. Wall-clock
#: ``compute`` moves with whatever else loads the machine; the trial's own ``cpu`` time (``gpu`` on a GPU)
#: far less, and ``samples`` (training items processed) not at all (see :mod:`.costs`)
COST_UNITS = {"compute": metric_names.COMPUTE_SECONDS, "cpu": metric_names.CPU_SECONDS,
              "gpu": metric_names.GPU_SECONDS, "samples": metric_names.SAMPLES}


def outcome_from_status(status: str, stopped_early: bool = False) -> str:
    """A trial's outcome from its MLflow run status alone (records written before the outcome
    tag): FINISHED is ``stopped`` when its early stopping ended it, else ``finished``; KILLED,
    and a run left RUNNING or SCHEDULED (its sweep stopped under it), ``killed``; any other
    status (FAILED) ``failed``."""
    if status == "FINISHED":
        return STOPPED if stopped_early else FINISHED
    return KILLED if status in ("KILLED", "RUNNING", "SCHEDULED") else FAILED


def diverges(key: str, value: Any) -> bool:
    """Whether ``key: value`` of an epoch record makes a trial ``diverged``: a loss or a score
    (``score``, ``test/score``, ``<split>/<task>/loss``, ...) that is NaN or infinite."""
    return (key.endswith(("score", "loss")) and isinstance(value, (int, float))
            and not math.isfinite(value))


@dataclass
class TrialSummary:
    """One trial of one search, with its per-epoch history.

    ``history`` holds one dict per epoch, in order, with at least ``"epoch"``, ``"score"`` (the
    validation score, lower is better; only on epochs that validated), ``"test/score"`` and
    ``"test/<task>/<metric>"`` (at least at the best and the last epoch),
    ``"weight/<task>"`` (weights at the end of the epoch) and ``"mean_weight/<task>"`` (weights
    averaged over the epoch's steps), and ``"compute_seconds"`` (cumulative); the keys of
    :mod:`trainables.metric_names`.

    Its cost, in each of :data:`COST_UNITS`: ``compute_seconds`` (wall-clock), ``cpu_seconds`` (its
    own CPU time), ``gpu_seconds`` (on a GPU) and ``samples`` (training items processed); ``None``
    where its record does not have the unit (a trial logged before it was counted; no GPU).

    ``outcome`` is one of :data:`OUTCOMES`; left empty, it is derived from ``status``
    (:func:`outcome_from_status`). A trial said to be finished or stopped whose history holds a
    NaN or infinite loss or score is ``diverged`` (:func:`diverges`): such a value is never
    averaged.
    """

    search: str
    trial_id: str
    config: dict[str, Any]
    status: str  # the MLflow run status: "FINISHED", "FAILED", "KILLED", ...
    compute_seconds: float
    device: str
    end_time: float  # unix seconds when the trial finished (orders trials on the cost axis)
    history: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    start_time: float = 0.0  # unix seconds when the trial started
    outcome: str = ""
    cpu_seconds: float | None = None
    gpu_seconds: float | None = None
    samples: float | None = None
    #: its problem's primary metric of each task, as it recorded it at its first report
    #: (``{task: {"metric": name, "higher_is_better": bool}}``); None in records written before
    primary: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.outcome and self.outcome not in OUTCOMES:
            raise ValueError(f"trial {self.trial_id!r}: outcome {self.outcome!r} is not one of "
                             f"{', '.join(OUTCOMES)}; pass one of them or leave it empty")
        self.outcome = self.outcome or outcome_from_status(self.status)
        if self.outcome in RESULT_OUTCOMES and any(diverges(key, value) for record in self.history
                                                   for key, value in record.items()):
            self.outcome = DIVERGED

    def cost(self, unit: str) -> float | None:
        """What the trial cost in ``unit`` (one of :data:`COST_UNITS`), ``None`` when unknown."""
        value = getattr(self, COST_UNITS[unit])
        return None if value is None else float(value)

    @property
    def has_result(self) -> bool:
        """Whether the trial ended as planned (``finished`` or ``stopped``) and validated at least
        once: what selection, fronts and curves may use."""
        return self.outcome in RESULT_OUTCOMES and self.best_epoch is not None

    @property
    def best_epoch(self) -> dict[str, float] | None:
        """The epoch with the lowest validation score (the one a search would keep; the first of
        equals), among the epochs that validated (``val_every``) with a finite score; it always
        has the test metrics."""
        validated = [record for record in self.history if math.isfinite(record.get("score", math.nan))]
        if not validated:
            return None
        return min(validated, key=lambda record: record["score"])


@dataclass
class SearchSummary:
    """One search (an alpha search, a static grid, a baseline) and its trials."""

    name: str
    kind: str  # "gradnorm", "static_grid", "equal", "uncertainty", "dwa", "static"
    wall_seconds: float
    trials: list[TrialSummary]
    grid_size: int | None = None  # full combinatorial size of a static grid
    levels: list[int] | None = None  # a static grid's number of weight levels per task (None: not recorded)
    sampled: bool = False  # whether the grid was sampled at random under a trial cap
    recommends_static: bool = False  # its best trial's mean weights become the recommended static weights
    reference: bool = False  # its trials train one task each: Delta m%'s single-task reference, no competitor
    source: str | None = None  # the search its configuration comes from (the recommended static's GradNorm)
    maps_front: bool = False  # it searches the trade-off front: the Pareto view draws its non-dominated points
    schedules_weights: bool = False  # its trials' weights change as they train: its best trial's are plotted

    @property
    def compute_seconds(self) -> float:
        """The compute of all its trials, whatever their outcome."""
        return float(sum(trial.compute_seconds for trial in self.trials))

    def cost(self, unit: str) -> float | None:
        """What all its trials cost in ``unit`` (whatever their outcome); ``None`` when a trial's
        cost in it is unknown."""
        costs = [trial.cost(unit) for trial in self.trials]
        return None if None in costs else float(sum(costs))


@dataclass(frozen=True)
class PrimaryMetric:
    """The metric that stands for a task (in Delta m%): ``name`` as reported (``"left/accuracy"``;
    trials record it as ``"test/<name>"``) and whether a higher value is better."""

    task: str
    name: str
    higher_is_better: bool


def primary_metrics(problem: Any, task_names: list[str] | None = None) -> list[PrimaryMetric]:
    """Each task's primary metric, in task order, from a :class:`gradnorm_core.Problem` (its
    ``primary_metrics()``; directions from :func:`gradnorm_core.higher_is_better`). Reads no data.
    A task without a primary metric raises a one-line ValueError."""
    from gradnorm_core import higher_is_better

    names = problem.primary_metrics()
    out = []
    for task in task_names or list(problem.task_names):
        if task not in names:
            raise ValueError(f"problem {getattr(problem, 'name', '?')!r} gives no primary metric for task {task!r}; "
                             "override Problem.primary_metrics() to name one per task (for Delta m%)")
        out.append(PrimaryMetric(task, names[task], higher_is_better(names[task])))
    return out


def history_keys(trial: TrialSummary, prefix: str) -> list[str]:
    """Keys of the trial's first history record that start with ``prefix`` (``"weight/"``), in
    record order; a one-line ValueError when there are none."""
    keys = [key for key in trial.history[0] if key.startswith(prefix)] if trial.history else []
    if not keys:
        raise ValueError(
            f"trial {trial.trial_id!r} of search {trial.search!r} has no weight history "
            f"(no '{prefix}<task>' entries); pass a trial of a weighted method that ran an epoch")
    return keys


def reads_metric(key: str) -> bool:
    """Whether the report reads this metric of a trial's history (the rest need not be fetched);
    of the validation metrics only ``val/<task>/normalized_error`` (the Pareto view's)."""
    return (key == metric_names.SCORE or key in COST_UNITS.values()
            or key.startswith(("test/", metric_names.WEIGHT, metric_names.MEAN_WEIGHT))
            or (key.startswith("val/") and key.endswith("/normalized_error")))


def task_metric_names(summaries: list[SearchSummary]) -> list[str]:
    """``<task>/<metric>`` test metrics present at the trials' best epochs, other than losses."""
    names: list[str] = []
    for summary in summaries:
        for trial in summary.trials:
            for key in trial.best_epoch or {}:  # the best epoch has the test metrics
                if key.startswith("test/") and key.count("/") == 2 and not key.endswith("/loss"):
                    name = key[len("test/"):]
                    if name not in names:
                        names.append(name)
    return names


def span(trials: list[TrialSummary]) -> float:
    """Seconds from the first trial's start to the last trial's end (0 without trials)."""
    return max(t.end_time for t in trials) - min(t.start_time for t in trials) if trials else 0.0


def sweep_timing(summaries: list[SearchSummary], state: SweepState) -> dict[str, float]:
    """``trial_phase_seconds`` (first trial start to last trial end, all searches),
    ``compute_seconds`` (summed over trials) and ``wall_seconds`` (the Tune experiment's, summed over
    the runs of a resumed sweep)."""
    trials = [trial for summary in summaries for trial in summary.trials]
    return {"trial_phase_seconds": span(trials), "compute_seconds": sum(t.compute_seconds for t in trials),
            "wall_seconds": state.wall_seconds}


# ----------------------------------------------------------------------------- reading the record


def search_summary(client: MlflowClient, state: SweepState, name: str, kind: str) -> SearchSummary:
    """One search rebuilt from MLflow: its trial runs and their metric histories. Its wall-clock
    is the span from its first trial's start to its last trial's end (searches overlap). A
    trial's outcome is its run's ``gradnorm_tune.outcome`` tag, or without one its status
    (:func:`outcome_from_status`, with the ``stopped_early`` tag)."""
    from trainables import (DEVICE, ERROR_TAG, OUTCOME, PRIMARY_METRICS, STOPPED_EARLY, TRIAL_ID, decode_params,
                            metric_history, trial_runs)

    from ..searches import SEARCH_TYPES

    entry = state.searches[name]
    trials = []
    runs = trial_runs(client, state.experiment_id, entry["parent_run_id"]) if entry.get("parent_run_id") else []
    for run in runs:
        history = metric_history(client, run, reads_metric)
        tags = run.data.tags
        outcome = tags.get(OUTCOME) or outcome_from_status(
            run.info.status, tags.get(STOPPED_EARLY) == "true")
        last = history[-1] if history else {}
        trials.append(TrialSummary(
            search=name, trial_id=tags.get(TRIAL_ID, run.info.run_id),
            config=decode_params(run.data.params), status=run.info.status,
            compute_seconds=last.get(metric_names.COMPUTE_SECONDS, 0.0),
            device=tags.get(DEVICE, "?"), end_time=(run.info.end_time or run.info.start_time) / 1000,
            history=history, error=tags.get(ERROR_TAG), start_time=run.info.start_time / 1000,
            outcome=outcome if outcome in OUTCOMES else FAILED,
            cpu_seconds=last.get(metric_names.CPU_SECONDS), gpu_seconds=last.get(metric_names.GPU_SECONDS),
            samples=last.get(metric_names.SAMPLES), primary=_json(tags.get(PRIMARY_METRICS)),
        ))
    return SearchSummary(name=name, kind=kind, wall_seconds=span(trials), trials=trials,
                         grid_size=entry.get("grid_size"), levels=entry.get("levels"),
                         sampled=bool(entry.get("sampled", False)),
                         recommends_static=getattr(SEARCH_TYPES.get(kind), "recommends_static", False),
                         reference=getattr(SEARCH_TYPES.get(kind), "reference", False),
                         maps_front=getattr(SEARCH_TYPES.get(kind), "maps_front", False),
                         schedules_weights=getattr(SEARCH_TYPES.get(kind), "schedules_weights", False))


def _json(text: str | None) -> Any:
    try:
        return None if text is None else json.loads(text)
    except ValueError:
        return None


def sweep_summaries(client: MlflowClient, state: SweepState, spec: SweepSpec) -> list[SearchSummary]:
    """Every search of the sweep (:func:`search_summary`), in the order of its state; the
    recommended static search names the search its weights came from (``source``)."""
    from ..searcher import RECOMMENDED, RECOMMENDED_TYPE

    kinds = {search.name: search.type for search in spec.searches} | {RECOMMENDED: RECOMMENDED_TYPE}
    summaries = [search_summary(client, state, name, kinds.get(name, "?")) for name in state.searches]
    source = spec.recommending_search if spec.recommended_static else None
    for summary in summaries:
        if summary.name == RECOMMENDED and source is not None:
            summary.source = source.name
    return summaries
