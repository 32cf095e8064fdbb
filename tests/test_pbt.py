"""``pbt``: a member that takes another's checkpoint over trains on with its own weights and
learning rate (:meth:`gradnorm_core.Training.adopt`, against a run set up by hand), the spec's
options and checks, the population's seeded draws, the weights' perturbation, the sweep's
scheduler routing a member to its search's PBT, and a real sweep whose members exploit: the
MLflow record keeps each member's weight schedule, and an interrupted sweep resumes to the end."""

from __future__ import annotations

import copy
import math
import random

import pytest
import torch

from gradnorm_core import Training, make_balancer
from gradnorm_core.problems import ToyRegression
from sweeps.experiment import checkpoints_to_keep, make_scheduler
from sweeps.population import FACTORS, SearchPBT, SearchView, WeightExplorer
from sweeps.searches import PbtSearch, make_search
from sweeps.spec import SpecError, parse_spec
from trainables import TrialBase

TASKS = ["a", "b", "c"]


# -- adopting another run's state ---------------------------------------------------------------


@pytest.fixture(scope="module")
def toy():
    return ToyRegression([1.0, 10.0, 50.0], num_train=256, num_val=64, num_test=64, seed=3)


def training(toy, weights, lr, **config) -> Training:
    model = toy.build_model(seed=1)
    balancer = make_balancer("static", toy.num_tasks, weights=weights)
    options = {"epochs": 4, "batch_size": 64, "lr": lr, "seed": 1, "device": "cpu", **config}
    from gradnorm_core import TrainConfig

    return Training(toy, balancer, model=model, config=TrainConfig(**options))


@pytest.mark.parametrize("schedule", ["none", "cosine"])
def test_an_adopted_state_trains_on_with_the_adopters_weights_and_rate(toy, schedule):
    donor = training(toy, [1.0, 2.0, 0.5], 1e-3, schedule=schedule)
    next(iter(donor))
    state = donor.state_dict()
    adopter = training(toy, [0.2, 0.3, 2.5], 3e-3, schedule=schedule)
    adopter.adopt(copy.deepcopy(state), elapsed_seconds=7.5)
    assert adopter.epoch == 1 and adopter.elapsed_seconds == 7.5
    assert adopter.balancer.weights.tolist() == pytest.approx([0.2, 0.3, 2.5])
    for mine, theirs in zip(adopter.model.state_dict().values(), donor.model.state_dict().values()):
        assert torch.equal(mine, theirs)

    # by hand: the donor's state with the adopter's weights and its rate put into the saved
    # optimizer and schedule, loaded as any resume is
    by_hand = training(toy, [0.2, 0.3, 2.5], 3e-3, schedule=schedule)
    edited = copy.deepcopy(state)
    edited["balancer"]["weights"] = [0.2, 0.3, 2.5]
    factor = 1.0
    if schedule != "none":
        edited["scheduler"]["base_lrs"] = [3e-3]
        factor = donor.scheduler.lr_lambdas[0](donor.scheduler.last_epoch)
    for group in edited["optimizer"]["param_groups"]:
        group["lr"] = 3e-3 * factor
        group.pop("initial_lr", None) if schedule == "none" else group.update(initial_lr=3e-3)
    by_hand.load_state_dict(edited)
    assert adopter.optimizer.param_groups[0]["lr"] == pytest.approx(3e-3 * factor, rel=1e-12)
    mine, theirs = adopter.run_epoch(), by_hand.run_epoch()
    assert mine.score == theirs.score and mine.train == theirs.train and mine.epoch == theirs.epoch == 2
    assert mine.elapsed_seconds > 7.5 > theirs.elapsed_seconds  # its own compute goes on from what it carried


# -- the search type ------------------------------------------------------------------------------


def search(data) -> PbtSearch:
    return make_search("p", data, task_names=TASKS, problem_name="toy", source="s")


def test_options_population_and_labels():
    pbt = search({"type": "pbt", "population": 3, "perturb": ["weights", "lr"], "lr": {"low": 1e-4, "high": 1e-2}})
    assert pbt.trial_count(3) == 3 and pbt.searcher(0, "best_score", "min") is None
    points = pbt.trial_points(3, seed=5)
    again = pbt.trial_points(3, seed=5)
    assert points == again != pbt.trial_points(3, seed=6)
    rng = random.Random(5)  # the draws by hand: per member, 3 weights then the rate, log-uniform
    for member, point in enumerate(points, start=1):
        drawn = [math.exp(rng.uniform(math.log(0.1), math.log(10))) for _ in TASKS]
        assert point["member"] == member
        assert point["weights"] == pytest.approx([3 * d / sum(drawn) for d in drawn], rel=1e-12)
        assert point["lr"] == pytest.approx(math.exp(rng.uniform(math.log(1e-4), math.log(1e-2))), rel=1e-12)
    base = TrialBase.from_dict({"problem": {"name": "toy", "options": {"sigmas": [1, 2, 3]}},
                                "training": {"lr": 0.01}, "run": {"checkpoint_seconds": 30.0}})
    config = pbt.trial_config(base, points[1])
    assert config.label == "member=2" and config.run.checkpoint_seconds == 0  # a checkpoint every epoch
    assert config.balancer.options["weights"] == points[1]["weights"] and config.training.lr == points[1]["lr"]
    assert pbt.settings(8, 3, 0)["perturbation_interval"] == 2 and pbt.interval(3) == 1


@pytest.mark.parametrize("data, expected", [
    ({"repeats": 2}, r"searches\.p\.repeats: is 2, but a pbt search trains one population"),
    ({"scheduler": {"type": "asha"}}, r"searches\.p\.scheduler: a pbt search is scheduled by population based"),
    ({"perturb": ["lr"]}, r"searches\.p\.perturb: lists lr, which needs the learning rates' range"),
    ({"perturb": ["alpha"]}, r"searches\.p\.perturb\[0\]: cannot perturb 'alpha'; give a list of what to perturb"),
    ({"perturb": []}, r"searches\.p\.perturb: expected a non-empty list"),
    ({"lr": [0.1, 0.2]}, r"searches\.p\.lr: is a list, but a pbt search draws each member's learning rate"),
    ({"population": 1}, r"searches\.p\.population: must be an integer >= 2"),
    ({"quantile_fraction": 0.6}, r"searches\.p\.quantile_fraction: must be <= 0\.5"),
    ({"num_trials": 4}, r"searches\.p\.num_trials: is for searches that Optuna draws"),
])
def test_bad_options_say_what_and_how_to_fix(data, expected):
    with pytest.raises(SpecError, match=expected):
        search({"type": "pbt", **data})


@pytest.mark.parametrize("training, resources, expected", [
    ({"epochs": 4}, {"max_concurrent": 2}, r"^s: searches\.p\.population: is 4, above resources\.max_concurrent \(2\)"),
    ({"epochs": 3}, {}, None),
    ({"epochs": 4, "val_every": 2}, {}, r"searches\.p\.perturbation_interval: is 1, but members validate every 2"),
])
def test_the_sweep_checks_the_population_against_it(training, resources, expected):
    data = {"name": "t", "problem": "toy_t2", "training": training, "resources": resources,
            "searches": {"p": {"type": "pbt"}}}
    if expected is None:
        parse_spec(data, "s")
    else:
        with pytest.raises(SpecError, match=expected):
            parse_spec(data, "s")
    with pytest.raises(SpecError, match=r"searches\.p\.perturbation_interval: is 3, not below training\.epochs \(3\)"):
        parse_spec({**data, "training": {"epochs": 3}, "resources": {},
                    "searches": {"p": {"type": "pbt", "perturbation_interval": 3}}}, "s")


def test_weight_explorer_scales_or_draws_afresh_and_normalises():
    scaling = WeightExplorer(0.1, 10.0, resample_probability=0.0, seed=1)
    config = {"balancer": {"method": "static", "weights": [1.0, 0.5, 1.5]}, "label": "member=1"}
    perturbed = scaling(config)
    assert config["balancer"]["weights"] == [1.0, 0.5, 1.5]  # the donor's config is left as it is
    new = perturbed["balancer"]["weights"]
    assert sum(new) == pytest.approx(3.0) and perturbed["label"] == "member=1"
    rng = random.Random(1)  # by hand: the explorer's coin, then one factor per weight
    assert rng.random() >= 0.0
    scaled = [w * rng.choice(FACTORS) for w in [1.0, 0.5, 1.5]]
    assert new == pytest.approx([3 * v / sum(scaled) for v in scaled], rel=1e-12)
    drawing = WeightExplorer(0.5, 2.0, resample_probability=1.0, seed=1)
    rng = random.Random(1)
    rng.random()  # the explorer's coin
    drawn = [math.exp(rng.uniform(math.log(0.5), math.log(2.0))) for _ in range(3)]
    assert drawing.perturb([1.0, 1.0, 1.0]) == pytest.approx([3 * d / sum(drawn) for d in drawn], rel=1e-12)


def test_the_sweep_scheduler_gives_each_pbt_its_own_members():
    spec = parse_spec({"name": "t", "problem": "toy_t2", "training": {"epochs": 6},
                       "searches": {"p": {"type": "pbt", "population": 2, "perturbation_interval": 2},
                                    "g": {"type": "static_grid", "levels": [1, 2]}}}, "s")
    scheduler = make_scheduler(spec)
    (pbt,) = scheduler.populations.values()
    assert isinstance(pbt, SearchPBT) and scheduler.ashas == {}
    assert pbt._perturbation_interval == 2 and pbt._synch and pbt._metric == "score"
    assert checkpoints_to_keep(spec) == 4

    class Trial:
        def __init__(self, trial_id, search):
            self.trial_id, self.config = trial_id, {"search": search}

    class Controller:
        search_alg = object()  # the sweep's searcher: Tune's PBT refuses one; the view hides it

        def __init__(self, trials):
            self.trials = trials

        def get_trials(self):
            return self.trials

    trials = [Trial("m1", "p"), Trial("g1", "g"), Trial("m2", "p")]
    view = SearchView(Controller(trials), "p")
    assert view.get_trials() == [trials[0], trials[2]] and view.search_alg is None
    assert view.trials is trials  # anything else is the controller's
