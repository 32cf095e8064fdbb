"""The network's learning rate searched on any search type (``lr`` of :class:`SearchType`): its
spec checks, the seeded log-uniform draws (alone, or jointly with GradNorm's alpha), the grid
dimension of a list, the budgets, the trial configs (the drawn lr is ``training.lr``), the former
``equal_lr`` type's one-line fix, and a real short sweep of equal weights with the lr searched
(tests/small_sweep.py's ``lrs`` search)."""

from __future__ import annotations

import math

import pytest
from mlflow.tracking import MlflowClient
from small_sweep import LR_RANGE, SPEC

from sweeps.searcher import SweepSearcher, trial_config
from sweeps.searches import SEARCH_TYPES, EqualSearch, label_for_method, make_search
from sweeps.spec import SpecError, parse_spec
from trainables import ROLE, SEARCH, VARIED, TrialBase, TrialConfig, decode_params

TASKS = ["a", "b", "c"]
LOW, HIGH = 1e-4, 1e-2
BASE = TrialBase.from_dict({"problem": {"name": "toy", "options": {"sigmas": [1, 2, 3]}}, "training": {"lr": 0.5}})


def search(data, name="lrs"):
    return make_search(name, data, task_names=TASKS, problem_name="toy", source="s")


def equal_lr(**options) -> dict:
    return {"type": "equal", "lr": {"low": LOW, "high": HIGH}, "num_trials": 4, **options}


def test_equal_with_lr_searched_options_trials_and_label():
    lrs = search(equal_lr())
    assert isinstance(lrs, EqualSearch) and lrs.method == "equal" and not lrs.recommends_static
    assert lrs.options == {"lr": {"low": LOW, "high": HIGH}, "num_trials": 4}
    assert lrs.parent_params(3, seed=0) == lrs.options
    assert lrs.trial_count(3) == 4 and lrs.trial_points(3, seed=0) is None  # Optuna picks them
    assert search(equal_lr(repeats=3)).trial_count(3) == 12  # budgets count every trial
    assert lrs.balancer_options() == {}
    trial = lrs.trial_config(BASE, {"lr": 0.0012})
    assert trial.label == "lr=0.0012" and trial.training.lr == 0.0012 and trial.balancer.options == {}
    assert lrs.trial_config(BASE, {"lr": 0.001234567}).label == "lr=0.001235"
    # a run of the equal method outside any search is labelled as the plain equal search's
    assert label_for_method("equal", trial) == "-"
    # without lr, the sweep's: one trial at training.lr
    plain = search({"type": "equal"})
    assert plain.trial_count(3) == 1 and plain.trial_config(BASE, {}).training.lr == 0.5


@pytest.mark.parametrize("data, expected", [
    ({"type": "equal", "lr": {"low": LOW, "high": HIGH}},
     r"^s: searches\.lrs\.num_trials: missing required field; give how many learning rates Optuna tries"),
    (equal_lr(lr={"low": HIGH, "high": HIGH}),
     r"^s: searches\.lrs\.lr: low \(0\.01\) must be below high \(0\.01\); swap them or widen the range$"),
    (equal_lr(lr={"low": 0, "high": HIGH}), r"^s: searches\.lrs\.lr\.low: must be > 0, got 0; give learning rates"),
    (equal_lr(lr={"low": "1e-4", "high": HIGH}), r"^s: searches\.lrs\.lr\.low: expected a number, got string"),
    (equal_lr(lr=0.01), r"^s: searches\.lrs\.lr: is one number \(0\.01\), but a search's lr is the network's "
                        r"learning rate to search; give a range \{low, high\} or a list of rates \(one rate for the "
                        r"whole sweep: training\.lr; a method's own learning rate: weight_lr\)$"),
    (equal_lr(lr=[0.01, 0]), r"^s: searches\.lrs\.lr\[1\]: must be > 0, got 0;"),
    (equal_lr(lr=[0.01, 0.01]), r"^s: searches\.lrs\.lr\[1\]: 0\.01 is listed twice; list each learning rate once$"),
    (equal_lr(lr="fast"), r"^s: searches\.lrs\.lr: expected a range or a list, got string 'fast'"),
    (equal_lr(lr={"low": LOW, "hi": HIGH}), r"^s: searches\.lrs\.lr\.hi: unknown learning rate range key 'hi'; "
                                            r"did you mean 'high'\?"),
    ({"type": "equal", "num_trials": 4}, r"^s: searches\.lrs\.num_trials: is for searches that Optuna draws; "
                                         r"remove it, or give lr as a range"),
    (equal_lr(num_trials=0), r"^s: searches\.lrs\.num_trials: must be an integer >= 1, got 0"),
    (equal_lr(num_trials=2.5), r"^s: searches\.lrs\.num_trials: expected an integer, got float 2\.5"),
    ({"type": "equal_lr", "lr": {"low": LOW, "high": HIGH}, "num_trials": 4},
     r"^s: searches\.lrs\.type: search type 'equal_lr' is now 'equal'; write type: equal \(its lr: \{low, high\} "
     r"and num_trials stay as they are\)"),
    ({"type": "static_grid", "levels": [1, 2], "lr": {"low": LOW, "high": HIGH}},
     r"^s: searches\.lrs\.lr: is a range, which Optuna draws, but this search runs a grid of fixed points; give lr "
     r"as a list of rates .*or use a static_optuna search"),
    ({"type": "gradnorm", "alpha": [0, 1], "lr": {"low": LOW, "high": HIGH}},
     r"^s: searches\.lrs\.lr: is a range.*or use search: optuna with an alpha range$"),
    ({"type": "gradnorm", "alpha": {"low": 0, "high": 1}, "num_trials": 3, "lr": [0.01, 0.1]},
     r"^s: searches\.lrs\.lr: is a list, a grid dimension, but Optuna draws this search's configurations; give a "
     r"range"),
    ({"type": "static_optuna", "num_trials": 3, "lr": [0.01, 0.1]}, r"^s: searches\.lrs\.lr: is a list"),
])
def test_spec_errors_are_one_line_naming_the_field(data, expected):
    with pytest.raises(SpecError, match=expected) as caught:
        search(data)
    assert "\n" not in str(caught.value)


def test_every_search_type_takes_the_network_lr():
    assert all("lr" in cls.model_fields for cls in SEARCH_TYPES.values())


def draws(seed: int, data=None, count: int = 12) -> list[dict]:
    searcher = search(data or equal_lr()).searcher(seed=seed, metric="best_score", mode="min", num_tasks=3)
    points = []
    for i in range(count):  # past TPE's random start-up trials
        point = searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", {"best_score": (math.log10(point["lr"]) + 3) ** 2})
        points.append(point)
    return points


def test_optuna_draws_learning_rates_in_the_range_following_the_seed():
    first = [point["lr"] for point in draws(0)]
    assert all(LOW <= lr <= HIGH for lr in first) and len(set(first)) == len(first)
    assert [p["lr"] for p in draws(0)] == first and [p["lr"] for p in draws(1)] != first
    # log-uniform: the start-up draws spread over the decades, not bunched near high
    assert min(first) < 1e-3 < max(first)


def test_gradnorm_draws_lr_jointly_with_alpha_and_the_rest():
    data = {"type": "gradnorm", "alpha": {"low": 0.5, "high": 2.0}, "num_trials": 5,
            "weight_lr": {"low": 0.01, "high": 0.1}, "initial_losses": ["first_step", "chance"],
            "lr": {"low": LOW, "high": HIGH}}
    gn = search(data, "gn")
    assert gn.trial_count(3) == 5 and gn.trial_points(3, 0) is None
    points = draws(2, data, count=8)
    for point in points:
        assert set(point) == {"alpha", "weight_lr", "initial_losses", "lr"}
        assert 0.5 <= point["alpha"] <= 2.0 and 0.01 <= point["weight_lr"] <= 0.1 and LOW <= point["lr"] <= HIGH
    config = gn.trial_config(BASE, points[0])
    # the network's lr goes to training, GradNorm's own to the balancer
    assert config.training.lr == points[0]["lr"] and config.balancer.options["lr"] == points[0]["weight_lr"]
    assert config.label == (f"alpha={points[0]['alpha']:.4g}, weight_lr={points[0]['weight_lr']:.3g}, "
                            f"L0={points[0]['initial_losses']}, lr={points[0]['lr']:.4g}")


def test_a_list_of_rates_is_a_grid_dimension():
    grid = search({"type": "static_grid", "levels": [[1], [1, 2], [1]], "lr": [0.001, 0.01], "repeats": 2})
    assert grid.config_count(3) == 4 and grid.trial_count(3) == 8
    points = grid.trial_points(3, seed=0)
    assert points == [{"weights": [1.0, w, 1.0], "lr": lr} for w in (1.0, 2.0) for lr in (0.001, 0.01)]
    config = grid.trial_config(BASE, points[1], repeat=1)
    assert config.training.lr == 0.01 and config.balancer.options == {"weights": [1.0, 1.0, 1.0]}
    assert config.label == "weights=[1, 1, 1], lr=0.01" and config.training.seed == BASE.training.seed + 1
    alphas = search({"type": "gradnorm", "alpha": [0, 1], "lr": [0.001, 0.01]})
    assert alphas.options["num_trials"] == 4 and alphas.trial_count(3) == 4
    unc = search({"type": "uncertainty", "lr": [0.001, 0.01]})
    assert unc.trial_points(3, 0) == [{"lr": 0.001}, {"lr": 0.01}] and unc.searcher(0, "s", "min") is None


def test_the_drawn_lr_overrides_the_sweeps_training_lr():
    spec = parse_spec({"name": "t", "problem": {"name": "toy", "options": {"sigmas": [1, 2, 3]}},
                       "training": {"epochs": 2, "lr": 0.5, "seed": 4},
                       "searches": {"lrs": equal_lr(num_trials=3)}, "recommended_static": False}, "s")
    base = spec.trial_base()
    sweep = SweepSearcher(spec.searches, base, spec.task_names, spec.training["seed"], None)
    configs = [sweep.suggest(f"t{i}") for i in range(3)]
    assert sweep.suggest("t3") == "FINISHED"
    for config in configs:
        assert config["balancer"] == {"method": "equal"} and config["search"] == "lrs"
        lr = config["training"]["lr"]  # the network's
        assert LOW <= lr <= HIGH and config["label"] == f"lr={lr:.4g}"
        assert TrialConfig.from_dict(config).training.lr == lr  # not the sweep's 0.5
    assert trial_config(base, spec.searches[0], {"lr": 0.003})["training"]["lr"] == 0.003


def test_uncertainty_trials_take_each_tasks_kind_from_the_problem():
    """Kendall's factor depends on the kind of task; the trial fills ``kinds`` from the problem."""
    base = TrialBase.from_dict({"problem": {"name": "multidigits", "options": {"num_train": 64, "num_val": 32,
                                                                               "num_test": 32}},
                                "training": {"lr": 0.01}})
    config = search({"type": "uncertainty", "lr": {"low": LOW, "high": HIGH}, "num_trials": 2}).trial_config(
        base, {"lr": 0.002})
    assert "kinds" not in config.balancer.options and config.training.lr == 0.002
    problem, _, balancer = config.build()
    assert list(balancer.kinds) == list(problem.task_kinds()) == ["classification", "classification", "regression"]


def test_a_short_sweep_trains_each_learning_rate_with_equal_weights(small_sweep):
    """tests/small_sweep.py's ``lrs`` search: equal weights, 3 network rates drawn from a range
    that leaves out the sweep's ``training.lr``."""
    low, high = LR_RANGE
    client = MlflowClient(small_sweep.uri)
    trials = [run for run in client.search_runs([small_sweep.state.experiment_id], max_results=100)
              if run.data.tags.get(ROLE) == "trial" and run.data.tags[SEARCH] == "lrs"]
    assert len(trials) == SPEC["searches"]["lrs"]["num_trials"] == 3
    configs = [decode_params(run.data.params) for run in trials]
    lrs = [config["training"]["lr"] for config in configs]
    assert not low <= SPEC["training"]["lr"] <= high
    assert len(set(lrs)) == 3 and all(low <= lr <= high for lr in lrs), lrs  # never the sweep's training.lr
    for run, config in zip(trials, configs):
        assert run.info.status == "FINISHED" and config["balancer"]["method"] == "equal"
        assert run.data.params[VARIED] == config["label"] == f"lr={config['training']['lr']:.4g}"
        weights = [value for key, value in run.data.metrics.items() if key.startswith("weight/") and key.count("/") == 1]
        assert len(weights) == 3 and all(weight == 1.0 for weight in weights)
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val/score")] == [1, 2]
