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
    edited["balancer"] = by_hand.balancer.state_dict()
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

    # a member that lags (its own epoch 0) or runs ahead (3) goes on from its own epoch
    for own in (0, 3):
        placed = training(toy, [0.2, 0.3, 2.5], 3e-3, schedule=schedule)
        placed.adopt(copy.deepcopy(state), epoch=own)
        assert placed.epoch == own
        if placed.scheduler is not None:
            assert placed.scheduler.last_epoch == own * placed.steps_per_epoch
            assert placed.optimizer.param_groups[0]["lr"] == pytest.approx(
                3e-3 * placed.scheduler.lr_lambdas[0](own * placed.steps_per_epoch), rel=1e-12)
        assert [record.epoch for record in placed] == list(range(own + 1, 5))


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
    rng = random.Random(1)  # by hand: the explorer's coin, then one factor per weight until they differ
    assert rng.random() >= 0.0
    factors = [rng.choice(FACTORS) for _ in range(3)]
    while len(set(factors)) == 1:
        factors = [rng.choice(FACTORS) for _ in range(3)]
    scaled = [w * f for w, f in zip([1.0, 0.5, 1.5], factors)]
    assert new == pytest.approx([3 * v / sum(scaled) for v in scaled], rel=1e-12)
    for seed in range(20):  # two tasks: the ratio always moves, by 1.2/0.8 one way or the other
        a, b = WeightExplorer(0.1, 10.0, 0.0, seed).perturb([1.0, 1.0])
        assert a / b == pytest.approx(1.5) or b / a == pytest.approx(1.5)
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
    assert pbt._perturbation_interval == 2 and not pbt._synch and pbt._metric == "score"
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


# -- a real sweep ---------------------------------------------------------------------------------


# Async PBT ranks a member against the other's last report: whether an exploit happens in 3
# perturbation points depends on the order the two report in (seen once, in a clean-clone CI run: no
# exploit at all). A stop-gap until a per-epoch gate makes both report before either goes on.
@pytest.mark.flaky(reruns=2)
def test_a_sweep_whose_members_exploit_keeps_each_members_weight_schedule(local_ray, tmp_path, new_store):
    """Two members ranked after each of epochs 1 to 3 of 4 (quantile 0.5: the lower takes the
    upper's checkpoint over), with static_pareto beside them: one sweep for both new search types."""
    import csv

    from mlflow.tracking import MlflowClient

    from sweeps.runner import run_sweep
    from trainables import ROLE, SEARCH

    import threading
    import time
    from pathlib import Path

    from gated_problems import open_gate

    uri = new_store(tmp_path / "mlflow.db")
    # both members wait at their first step until both are there (the gate opens once two tickets
    # are taken), then train side by side, with epochs long enough (about a second) to stay so
    gate = tmp_path / "gate"
    gate.mkdir()

    def open_when_both_wait() -> None:
        deadline = time.monotonic() + 300
        while not (gate / "ticket-1").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        open_gate(gate)

    opener = threading.Thread(target=open_when_both_wait, daemon=True)
    opener.start()
    spec = parse_spec({
        "name": "pbt", "experiment": "pbt-test",
        "problem": {"name": "gated_problems:GatedDigits",
                    "options": {"gate": str(gate), "at": 1, "free": 0, "num_train": 2048, "num_val": 64,
                                "num_test": 64}},
        "training": {"epochs": 4, "batch_size": 64, "lr": 0.002, "seed": 0, "device": "cpu"},
        "resources": {"cpu": 1, "max_concurrent": 2},
        "searches": {"pbt": {"type": "pbt", "population": 2, "perturbation_interval": 1, "quantile_fraction": 0.5,
                             "resample_probability": 0.0},
                     "front": {"type": "static_pareto", "num_trials": 2}},
    }, "test")
    state = run_sweep(spec, storage=tmp_path / "runs", tracking_uri=uri)
    opener.join(timeout=10)
    assert Path(gate / "open").exists()
    client = MlflowClient(uri)
    runs = client.search_runs([state.experiment_id], max_results=100)
    members = [run for run in runs if run.data.tags.get(ROLE) == "trial" and run.data.tags[SEARCH] == "pbt"]
    assert len(members) == 2 and all(run.info.status == "FINISHED" for run in members)
    tasks = spec.task_names

    def schedule(run) -> list[list[float]]:  # the weights of each epoch, in epoch order
        per_task = [[m.value for m in sorted(client.get_metric_history(run.info.run_id, f"weight/{task}"),
                                             key=lambda m: m.step)] for task in tasks]
        return [list(epoch) for epoch in zip(*per_task)]

    schedules = {run.data.params["label"]: schedule(run) for run in members}
    starts = {run.data.params["label"]: [float(w) for w in run.data.params["balancer.weights"].strip("[]").split(",")]
              for run in members}
    assert all(len(weights) == 4 for weights in schedules.values()), schedules  # every epoch once
    for label, weights in schedules.items():  # epoch 1 at its own starting weights
        assert weights[0] == pytest.approx(starts[label], rel=1e-6)
    exploits = 0
    for label, weights in schedules.items():
        (other,) = set(schedules) - {label}
        for before, after in zip(weights, weights[1:]):
            if after == pytest.approx(before, rel=1e-6):
                continue
            # new weights: some weights of the other member's, each times 1.2 or 0.8 (not all alike), normalised
            exploits += 1
            assert sum(after) == pytest.approx(len(tasks), rel=1e-6)
            assert any({round(r / min(ratios), 5) for r in ratios} == {1.0, 1.5}
                       for ratios in ([a / b for a, b in zip(after, donor)] for donor in schedules[other])), schedules
    assert exploits >= 1, schedules
    # its compute is its own: what it had spent, then its second epoch
    computes = {run.data.params["label"]: [m.value for m in client.get_metric_history(run.info.run_id,
                                                                                     "compute_seconds")]
                for run in members}
    assert all(0 < c[0] < c[1] for c in computes.values())
    metrics = client.get_run(state.comparison_run_id).data.metrics
    assert metrics["pbt/compute_seconds"] == pytest.approx(sum(c[-1] for c in computes.values()), rel=1e-6)
    local = client.download_artifacts(state.comparison_run_id, "cost_table.csv", str(tmp_path))
    rows = {row["search"]: row for row in csv.DictReader(open(local, newline=""))}
    assert set(rows) == {"pbt", "front"} and all(float(row["hypervolume"]) > 0 for row in rows.values())
    assert metrics["front/hypervolume"] == pytest.approx(float(rows["front"]["hypervolume"]), rel=1e-9)


def test_the_report_gives_the_best_members_schedule_and_final_weights():
    from sweeps.report import SearchSummary, comparison_figures, cost_rows
    from report_fixtures import epoch, trial

    member = trial("pbt", "m1", {"label": "member=1"}, history=[epoch(1, 0.5, 0.5, weights=(1.5, 0.5)),
                                                                 epoch(2, 0.4, 0.4, weights=(0.8, 1.2))])
    pbt = SearchSummary(name="pbt", kind="pbt", wall_seconds=1.0, trials=[member], schedules_weights=True)
    (row,) = cost_rows([pbt], [])
    assert row["final_weights"] == [0.8, 1.2]  # its last epoch's, not its start's
    assert "weights_pbt.png" in comparison_figures([pbt])
    static = SearchSummary(name="grid", kind="static_grid", wall_seconds=1.0, trials=[member])
    assert "final_weights" not in cost_rows([static], [])[0] and "weights_grid.png" not in comparison_figures([static])
