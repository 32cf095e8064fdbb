"""``single_task``: one training per task alone (weight 1 for it, 0 for the others, on the same
network), the reference of Delta m%. Its trials, labels, budget and refusals."""

from __future__ import annotations

import pytest

from sweeps.searches import SEARCH_TYPES, SingleTaskSearch, make_search
from sweeps.spec import SpecError, parse_spec
from trainables import TrialBase

TASKS = ["left", "right", "sum"]
BASE = TrialBase.from_dict({"problem": {"name": "multidigits", "options": {"num_train": 64, "num_val": 32,
                                                                           "num_test": 32}},
                            "training": {"lr": 0.01, "seed": 5}})


def search(data) -> SingleTaskSearch:
    return make_search("stl", data, task_names=TASKS, problem_name="multidigits", source="s")


def test_one_trial_per_task_alone():
    stl = search({"type": "single_task", "repeats": 2})
    assert SEARCH_TYPES["single_task"] is SingleTaskSearch and stl.reference and not stl.recommends_static
    assert stl.method == "static" and stl.trial_count(3) == 6 and stl.config_count(3) == 3
    points = stl.trial_points(3, seed=0)
    assert points == [{"weights": [1.0, 0.0, 0.0]}, {"weights": [0.0, 1.0, 0.0]}, {"weights": [0.0, 0.0, 1.0]}]
    configs = [stl.trial_config(BASE, point, repeat=1) for point in points]
    assert [c.label for c in configs] == ["task=left", "task=right", "task=sum"]
    assert all(c.training.lr == 0.01 and c.training.seed == 6 for c in configs)  # the sweep's lr
    _, model, balancer = configs[2].build()  # the same network: every head, the others at weight 0
    assert len(model.heads) == 3 and balancer.weights.tolist() == [0.0, 0.0, 1.0]
    assert stl.searcher(0, "best_score", "min") is None and stl.options == {"repeats": 2}


@pytest.mark.parametrize("data, expected", [
    ({"type": "single_task", "lr": [0.01, 0.1]},
     r"^s: searches\.stl\.lr: the single-task reference trains at the sweep's training\.lr; remove lr here"),
    ({"type": "single_task", "scheduler": {"type": "asha"}},
     r"^s: searches\.stl\.scheduler: each trial trains another task alone, so early stopping would compare "
     r"unlike trials; remove scheduler$"),
    ({"type": "single_task", "num_trials": 3}, r"^s: searches\.stl\.num_trials: is for searches that Optuna draws"),
    ({"type": "single_task", "weights": [1, 0, 0]}, r"^s: searches\.stl\.weights: unknown option 'weights'"),
])
def test_refusals(data, expected):
    with pytest.raises(SpecError, match=expected):
        search(data)


def test_a_spec_with_a_single_task_search_counts_its_trials():
    spec = parse_spec({"name": "t", "problem": {"name": "multidigits", "options": {"num_train": 64}},
                       "searches": {"stl": "single_task", "equal": "equal"}}, "s")
    assert spec.trial_count() == 3 + 1 and spec.search("stl").label(
        spec.search("stl").trial_config(spec.trial_base(), {"weights": [0.0, 1.0, 0.0]})) == "task=right"
