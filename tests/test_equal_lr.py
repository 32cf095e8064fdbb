"""``equal_lr``: equal weights with the network's learning rate tuned by Optuna. Its spec checks,
its seeded log-uniform searcher, its trial configs (the drawn lr overrides training.lr), and a
real short sweep: N trials, each with its own lr inside the range, equal weights, labelled."""

from __future__ import annotations

import math

import pytest
from mlflow.tracking import MlflowClient

from sweeps.runner import run_sweep
from sweeps.searcher import SweepSearcher, trial_config
from sweeps.searches import EqualLrSearch, label_for_method, make_search
from sweeps.spec import SpecError, parse_spec
from trainables import ROLE, SEARCH, VARIED, TrialBase, TrialConfig, decode_params

TASKS = ["a", "b", "c"]
LOW, HIGH = 1e-4, 1e-2


def search(data) -> EqualLrSearch:
    return make_search("lrs", data, task_names=TASKS, problem_name="toy")


def equal_lr(**options) -> dict:
    return {"type": "equal_lr", "lr": {"low": LOW, "high": HIGH}, "num_trials": 4, **options}


def test_options_trials_and_label():
    lrs = search(equal_lr())
    assert isinstance(lrs, EqualLrSearch) and lrs.method == "equal" and not lrs.recommends_static
    assert lrs.options == {"lr": {"low": LOW, "high": HIGH}, "num_trials": 4}
    assert lrs.parent_params(3, seed=0) == lrs.options
    assert lrs.trial_count(3) == 4 and lrs.trial_points(3, seed=0) is None  # Optuna picks them
    assert lrs.balancer_options() == {}
    base = TrialBase.from_dict({"problem": {"name": "toy", "options": {"sigmas": [1, 2]}}, "training": {"lr": 0.5}})
    trial = lrs.trial_config(base, {"lr": 0.0012})
    assert trial.label == "lr=0.0012" and trial.training.lr == 0.0012 and trial.balancer.options == {}
    assert lrs.trial_config(base, {"lr": 0.001234567}).label == "lr=0.001235"
    # a run of the equal method outside any search is still labelled as the plain equal search's
    assert label_for_method("equal", trial) == "-"


@pytest.mark.parametrize("data, expected", [
    ({"type": "equal_lr", "lr": {"low": LOW, "high": HIGH}},
     r"^s: searches\.lrs\.num_trials: missing required field; give how many learning rates Optuna tries"),
    (equal_lr(lr={"low": HIGH, "high": HIGH}),
     r"^s: searches\.lrs\.lr: low \(0\.01\) must be below high \(0\.01\); swap them or widen the range$"),
    (equal_lr(lr={"low": HIGH, "high": LOW}), r"^s: searches\.lrs\.lr: low \(0\.01\) must be below high \(0\.0001\)"),
    (equal_lr(lr={"low": 0, "high": HIGH}), r"^s: searches\.lrs\.lr\.low: must be > 0, got 0; give learning rates to search"),
    (equal_lr(lr={"low": "1e-4", "high": HIGH}), r"^s: searches\.lrs\.lr\.low: expected a number, got string '1e-4'"),
    (equal_lr(lr=0.01), r"^s: searches\.lrs\.lr: expected a mapping, got float 0\.01; write it as a range \{low"),
    (equal_lr(lr={"low": LOW, "hi": HIGH}), r"^s: searches\.lrs\.lr\.hi: unknown learning rate range key 'hi'; did you mean 'high'\?"),
    ({"type": "equal_lr", "num_trials": 4}, r"^s: searches\.lrs\.lr: missing required field; give a range"),
    (equal_lr(num_trials="4"), r"^s: searches\.lrs\.num_trials: expected an integer, got string '4'"),
    (equal_lr(num_trials=0), r"^s: searches\.lrs\.num_trials: must be an integer >= 1, got 0"),
    (equal_lr(num_trials=2.5), r"^s: searches\.lrs\.num_trials: expected an integer, got float 2\.5"),
    (equal_lr(weights=[1, 1, 1]), r"^s: searches\.lrs\.weights: unknown option 'weights' for search type 'equal_lr'"),
])
def test_spec_errors_are_one_line_naming_the_field(data, expected):
    with pytest.raises(SpecError, match=expected) as caught:
        make_search("lrs", data, task_names=TASKS, problem_name="toy", source="s")
    assert "\n" not in str(caught.value)


def draws(seed: int, count: int = 12) -> list[float]:
    searcher = search(equal_lr()).searcher(seed=seed, metric="best_score", mode="min")
    lrs = []
    for i in range(count):  # past TPE's random start-up trials
        lr = searcher.suggest(f"t{i}")["lr"]
        searcher.on_trial_complete(f"t{i}", {"best_score": (math.log10(lr) + 3) ** 2})
        lrs.append(lr)
    return lrs


def test_optuna_draws_learning_rates_in_the_range_following_the_seed():
    first = draws(0)
    assert all(LOW <= lr <= HIGH for lr in first) and len(set(first)) == len(first)
    assert draws(0) == first and draws(1) != first
    # log-uniform: the start-up draws spread over the decades, not bunched near high
    assert min(first) < 1e-3 < max(first)


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


def test_a_short_sweep_trains_each_learning_rate_with_equal_weights(local_ray, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = parse_spec({
        "name": "lrs",
        "experiment": "equal-lr-test",
        "problem": {"name": "multidigits", "options": {"num_train": 128, "num_val": 64, "num_test": 64}},
        "training": {"epochs": 2, "batch_size": 64, "lr": 0.5, "seed": 0, "device": "cpu"},
        "resources": {"cpu": 1, "max_concurrent": 2},
        "searches": {"lrs": equal_lr(num_trials=3)},
    }, "test")
    state = run_sweep(spec, storage=tmp_path / "runs", tracking_uri=uri)
    client = MlflowClient(uri)
    trials = [run for run in client.search_runs([state.experiment_id], max_results=100)
              if run.data.tags.get(ROLE) == "trial"]
    assert len(trials) == 3 and {run.data.tags[SEARCH] for run in trials} == {"lrs"}
    configs = [decode_params(run.data.params) for run in trials]
    lrs = [config["training"]["lr"] for config in configs]
    assert len(set(lrs)) == 3 and all(LOW <= lr <= HIGH for lr in lrs), lrs  # never the sweep's 0.5
    for run, config in zip(trials, configs):
        assert run.info.status == "FINISHED" and config["balancer"]["method"] == "equal"
        assert run.data.params[VARIED] == config["label"] == f"lr={config['training']['lr']:.4g}"
        weights = [value for key, value in run.data.metrics.items() if key.startswith("weight/")]
        assert len(weights) == 3 and all(weight == 1.0 for weight in weights)
        assert [m.step for m in client.get_metric_history(run.info.run_id, "score")] == [1, 2]
