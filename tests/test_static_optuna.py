"""``static_optuna``: static weights drawn log-uniform per task by Optuna's TPE and normalised to
sum to T. The normalisation against numpy, the seeded draws, the trial configs and labels, the
budgets, the spec checks, and the sweep's searcher handing its trials out with repeats."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sweeps.searcher import SweepSearcher
from sweeps.searches import SEARCH_TYPES, StaticOptunaSearch, make_search, normalised_weights
from sweeps.spec import SpecError, parse_spec
from trainables import TrialBase, TrialConfig

TASKS = ["a", "b", "c"]
BASE = TrialBase.from_dict({"problem": {"name": "toy", "options": {"sigmas": [1, 2, 3]}}, "training": {"lr": 0.01}})


def search(data) -> StaticOptunaSearch:
    return make_search("so", data, task_names=TASKS, problem_name="toy", source="s")


def test_normalised_weights_against_numpy():
    rng = np.random.default_rng(0)
    for count in (1, 2, 3, 11):
        drawn = np.exp(rng.uniform(np.log(0.1), np.log(10), size=count))
        expected = drawn / drawn.sum() * count
        got = normalised_weights(list(drawn))
        assert np.allclose(got, expected, rtol=1e-12) and math.isclose(sum(got), count, rel_tol=1e-12)
    assert normalised_weights([1.0, 3.0]) == [0.5, 1.5]  # by hand: 2 * 1/4, 2 * 3/4


def test_options_budget_and_registry():
    so = search({"type": "static_optuna", "num_trials": 6, "repeats": 3})
    assert SEARCH_TYPES["static_optuna"] is StaticOptunaSearch and so.method == "static"
    assert so.options == {"num_trials": 6, "repeats": 3, "weights": {"low": 0.1, "high": 10.0}}
    assert so.trial_count(3) == 18 and so.trial_points(3, seed=0) is None
    narrow = search({"type": "static_optuna", "num_trials": 2, "weights": {"low": 0.5, "high": 2}})
    assert (narrow.weights.low, narrow.weights.high) == (0.5, 2.0)


@pytest.mark.parametrize("data, expected", [
    ({"type": "static_optuna"}, r"^s: searches\.so\.num_trials: missing required field; give how many configurations"),
    ({"type": "static_optuna", "num_trials": 3, "weights": {"low": 2, "high": 1}},
     r"^s: searches\.so\.weights: low \(2\) must be below high \(1\); swap them or widen the range$"),
    ({"type": "static_optuna", "num_trials": 3, "weights": {"low": 0, "high": 1}},
     r"^s: searches\.so\.weights\.low: must be > 0, got 0"),
    ({"type": "static_optuna", "num_trials": 3, "weights": [1, 2]},
     r"^s: searches\.so\.weights: expected a mapping, got list \[1, 2\]; write it as a range"),
    ({"type": "static_optuna", "num_trials": 3, "levels": [1, 2]},
     r"^s: searches\.so\.levels: unknown option 'levels' for search type 'static_optuna'"),
])
def test_spec_errors(data, expected):
    with pytest.raises(SpecError, match=expected) as caught:
        search(data)
    assert "\n" not in str(caught.value)


def drawn_points(seed: int, count: int = 10) -> list[dict]:
    searcher = search({"type": "static_optuna", "num_trials": count}).searcher(seed, "best_score", "min", num_tasks=3)
    points = []
    for i in range(count):
        point = searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", {"best_score": abs(math.log(point["weight_0"] / point["weight_2"]))})
        points.append(point)
    return points


def test_optuna_draws_each_tasks_weight_log_uniform_following_the_seed():
    points = drawn_points(5)
    assert all(set(p) == {"weight_0", "weight_1", "weight_2"} for p in points)
    values = [v for p in points for v in p.values()]
    assert all(0.1 <= v <= 10 for v in values) and min(values) < 1 < max(values)
    assert drawn_points(5) == points and drawn_points(6) != points


def test_a_drawn_point_trains_its_normalised_weights():
    so = search({"type": "static_optuna", "num_trials": 4, "lr": {"low": 1e-4, "high": 1e-2}})
    config = so.trial_config(BASE, {"weight_0": 0.5, "weight_1": 2.0, "weight_2": 1.5, "lr": 0.002})
    assert config.balancer.options == {"weights": [0.375, 1.5, 1.125]}  # 3 * (0.5, 2, 1.5) / 4
    assert config.training.lr == 0.002 and config.label == "weights=[0.375, 1.5, 1.125], lr=0.002"
    points = drawn_points(1, count=3)
    so = search({"type": "static_optuna", "num_trials": 3})
    for point in points:
        weights = so.trial_config(BASE, point).balancer.options["weights"]
        assert math.isclose(sum(weights), 3.0, rel_tol=1e-12)
        assert math.isclose(weights[0] / weights[1], point["weight_0"] / point["weight_1"], rel_tol=1e-12)


def test_the_sweeps_searcher_hands_out_its_trials_with_repeats():
    spec = parse_spec({"name": "t", "problem": {"name": "toy", "options": {"sigmas": [1, 2, 3]}},
                       "training": {"epochs": 2, "lr": 0.01, "seed": 3},
                       "searches": {"so": {"type": "static_optuna", "num_trials": 2, "repeats": 2,
                                           "scheduler": {"type": "asha"}}}}, "s")
    sweep = SweepSearcher(spec.searches, spec.trial_base(), spec.task_names, spec.training["seed"], None)
    configs = [sweep.suggest(f"t{i}") for i in range(2)]
    assert configs[0]["balancer"] == configs[1]["balancer"]  # one configuration, its two seeds
    assert [c["training"]["seed"] for c in configs] == [3, 4]
    for i, config in enumerate(configs):
        sweep.on_trial_complete(f"t{i}", {"best_score": 0.5})
    third = sweep.suggest("t2")
    assert third["balancer"]["weights"] != configs[0]["balancer"]["weights"]
    assert TrialConfig.from_dict(third).balancer.method == "static"
    assert math.isclose(sum(third["balancer"]["weights"]), 3.0, rel_tol=1e-12)
