"""The checks of a spec that ask the trials themselves: every trial's config passes the trial's
own checks (:class:`trainables.TrialConfig`) and every name fits MLflow's and the file system's
limits (:mod:`trainables.limits`), before Ray starts and before any MLflow run exists."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..validation import problem

if TYPE_CHECKING:
    from .model import SweepSpec

__all__ = ["check_trials", "fits"]


def fits(kind: str, name: str) -> str:
    """``name`` if every MLflow name and file name derived from it fits (:mod:`trainables.limits`)."""
    from trainables.limits import name_problem

    found = name_problem(kind, name)
    if found is not None:
        raise problem(*found)
    return name


def check_trials(spec: SweepSpec) -> None:
    """The part all trials share, each search's first trial, and the seeds of its repeats pass
    the trial's own checks; the first problem is raised, located in the spec."""
    from trainables import MAX_SEED, TrialConfigError

    try:
        base = spec.trial_base()
    except TrialConfigError as error:
        raise problem(error.what, error.fix, error.at) from None
    seed = int(spec.training["seed"])
    for search in spec.searches:
        at = ("searches", search.name)
        if seed + search.repeats - 1 > MAX_SEED:
            raise problem(f"is {search.repeats}: with training.seed {seed} its last repeat's seed would be "
                          f"{seed + search.repeats - 1}, above {MAX_SEED} (the largest NumPy and Optuna take)",
                          f"lower training.seed to at most {MAX_SEED - search.repeats + 1}", (*at, "repeats"))
        points = search.trial_points(spec.num_tasks, seed)
        try:
            for point in points[:1] if points else ():
                search.trial_config(base, point, search.repeats - 1)
        except TrialConfigError as error:
            raise problem(f"its trials' {'.'.join(map(str, error.at))}: {error.what}", error.fix or "fix the value",
                          at) from None
