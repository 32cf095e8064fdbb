"""The checks of a spec that ask the trials themselves, before Ray starts and before any MLflow
run exists: every search's first trial passes the trial's own checks
(:class:`trainables.TrialConfig`), its method is built on the problem's model as the trial builds
it (the balancer's own checks of its options, against the model: :meth:`TrialConfig.build`,
which reads no data here), and every name fits MLflow's and the file system's limits
(:mod:`trainables.limits`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..validation import problem
from .runtime_env import code_on_path

if TYPE_CHECKING:
    from trainables import TrialBase, TrialConfig

    from ..searches import SearchType
    from .model import SweepSpec

__all__ = ["check_trials", "first_trial", "fits"]


def fits(kind: str, name: str) -> str:
    """``name`` if every MLflow name and file name derived from it fits (:mod:`trainables.limits`)."""
    from trainables import name_problem

    found = name_problem(kind, name)
    if found is not None:
        raise problem(*found)
    return name


def first_trial(spec: SweepSpec, search: SearchType, base: TrialBase, repeat: int = 0) -> TrialConfig | None:
    """The config of the search's first trial (repeat ``repeat`` of it); None without trials."""
    point = search.first_point(spec.num_tasks, int(spec.training["seed"]))
    return None if point is None else search.trial_config(base, point, repeat)


def check_trials(spec: SweepSpec) -> None:
    """The part all trials share, each search's first trial, and the seeds of its repeats pass
    the trial's own checks, and each search's method builds on the problem's model (one model,
    built once, no data read); the first problem is raised, located in the spec."""
    from trainables import MAX_SEED, TrialConfigError

    try:
        base = spec.trial_base()
    except TrialConfigError as error:
        raise problem(error.what, error.fix, error.at) from None
    seed = int(spec.training["seed"])
    trials = []
    for search in spec.searches:
        at = ("searches", search.name)
        if seed + search.repeats - 1 > MAX_SEED:
            raise problem(f"is {search.repeats}: with training.seed {seed} its last repeat's seed would be "
                          f"{seed + search.repeats - 1}, above {MAX_SEED} (the largest NumPy and Optuna take)",
                          f"lower training.seed to at most {MAX_SEED - search.repeats + 1}", (*at, "repeats"))
        try:
            trial = first_trial(spec, search, base, search.repeats - 1)
        except TrialConfigError as error:
            raise problem(f"its trials' {'.'.join(map(str, error.at))}: {error.what}", error.fix or "fix the value",
                          at) from None
        if trial is not None:
            trials.append((at, trial))
    _build_methods(spec, trials)


def _build_methods(spec: SweepSpec, trials: list[tuple[tuple[str, ...], TrialConfig]]) -> None:
    """Each trial's balancer built as the trial builds it (:meth:`TrialConfig.build`, reading no
    data), on one model of the problem built with the sweep's seed (its module imported from the
    spec's shipped code, as for its task names): the method's checks of its options against the
    problem and the model, before any trial runs."""
    from gradnorm_core import make_problem
    from trainables import TrialConfigError

    from ..validation import one_line

    if not trials:
        return
    seed = int(spec.training["seed"])
    with code_on_path(spec.runtime_env):
        built = make_problem(spec.problem.name, **spec.problem.options)
        try:
            model = built.build_model(seed=seed)
        except Exception as error:  # noqa: BLE001 - the user's build_model: reported, one line
            raise problem(f"problem {spec.problem.name!r}: build_model(seed={seed}) failed ({type(error).__name__}: "
                          f"{one_line(str(error))[:200]})", "fix the problem's build_model (it must load no data)",
                          ("problem", "name")) from None
        for at, trial in trials:
            try:
                trial.build(built, model=model, data=False)
            except TrialConfigError as error:
                what, _, fix = error.what.partition("; ")
                raise problem(f"method {trial.balancer.method!r}: {what}", fix or "fix the search's options",
                              at) from None
