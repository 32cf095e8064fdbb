"""The sweep's one searcher, driven by hand as Tune drives it: which trial comes when, the
recommended static trial after its GradNorm search, and its state saved and restored."""

from __future__ import annotations

import pytest
from ray.tune.search import Searcher

from sweeps.searcher import RECOMMENDED, SweepSearcher
from sweeps.spec import parse_spec
from trainables import TrialConfig

TASKS = ["task0", "task1", "task2"]
SPEC = {
    "name": "s",
    "problem": {"name": "toy", "options": {"sigmas": [1, 2, 3], "num_train": 8, "num_val": 4, "num_test": 4}},
    "training": {"epochs": 2, "seed": 3},
    "searches": {
        "grid": {"type": "static_grid", "levels": [[1], [1], [0.5, 2]]},
        "gn": {"type": "gradnorm", "alpha": {"low": 0.0, "high": 3.0}, "num_trials": 3},
        "equal": {"type": "equal"},
    },
    "recommended_static": True,
}


def searcher(data: dict = SPEC) -> SweepSearcher:
    spec = parse_spec(data, "test")
    source = spec.recommending_search.name if spec.recommended_static and spec.recommending_search else None
    return SweepSearcher(spec.searches, spec.trial_base(), spec.task_names, spec.training["seed"], source)


def result(score: float, weights: list[float]) -> dict:
    return {"best_score": score, **{f"avg_weight/{task}": w for task, w in zip(TASKS, weights)}}


def test_gradnorm_first_then_the_others_in_spec_order():
    sweep = searcher()
    configs = [sweep.suggest(f"t{i}") for i in range(6)]
    assert [c["search"] for c in configs] == ["gn", "gn", "gn", "grid", "grid", "equal"]
    alphas = [c["balancer"]["alpha"] for c in configs[:3]]
    assert all(0.0 <= a <= 3.0 for a in alphas) and len(set(alphas)) == 3
    assert [c["balancer"]["weights"] for c in configs[3:5]] == [[1.0, 1.0, 0.5], [1.0, 1.0, 2.0]]
    # each config is a whole trial config: the sweep's training, the method, the search's label
    assert all(c["training"]["epochs"] == 2 and c["training"]["seed"] == 3 and c["problem"]["name"] == "toy"
               for c in configs)
    assert [c["balancer"]["method"] for c in configs] == ["gradnorm"] * 3 + ["static"] * 2 + ["equal"]
    assert configs[0]["label"] == f"alpha={alphas[0]:.4g}" and configs[3]["label"] == "weights=[1, 1, 0.5]"
    assert configs[5]["balancer"] == {"method": "equal"}  # equal weights take no option
    assert TrialConfig.from_dict(configs[3]).to_dict() == configs[3]  # what the trainable reads back
    # nothing left but the recommended trial, whose GradNorm search has not ended: wait
    assert sweep.suggest("t6") is None


def test_recommended_trial_comes_when_its_search_has_ended_with_the_best_weights():
    sweep = searcher()
    ids = {f"t{i}": sweep.suggest(f"t{i}")["search"] for i in range(6)}
    gradnorm = [trial for trial, search in ids.items() if search == "gn"]
    sweep.on_trial_complete(gradnorm[0], result(0.5, [1.2, 0.9, 0.9]))
    sweep.on_trial_complete(gradnorm[1], result(0.3, [0.51234, 1.0, 1.48766]))
    assert sweep.suggest("early") is None  # one GradNorm trial still running
    sweep.on_trial_complete(gradnorm[2], error=True)
    config = sweep.suggest("t7")
    assert config["search"] == RECOMMENDED and config["balancer"]["method"] == "static"
    assert config["balancer"]["weights"] == [0.5123, 1.0, 1.4877]  # the best trial's, rounded to 4 places
    assert sweep.recommended_weights == [0.5123, 1.0, 1.4877]
    assert sweep.suggest("t8") == Searcher.FINISHED


def test_the_recommended_trial_trains_at_the_network_lr_its_weights_were_found_at():
    data = {**SPEC, "searches": {"gn": {"type": "gradnorm", "alpha": {"low": 0.0, "high": 3.0}, "num_trials": 3,
                                        "lr": {"low": 1e-4, "high": 1e-2}}}}
    sweep = searcher(data)
    configs = {f"t{i}": sweep.suggest(f"t{i}") for i in range(3)}
    rates = {trial: config["training"]["lr"] for trial, config in configs.items()}
    assert len(set(rates.values())) == 3 and all(1e-4 <= r <= 1e-2 for r in rates.values())
    for trial, score in zip(configs, (0.5, 0.2, 0.4)):
        sweep.on_trial_complete(trial, result(score, [1.0, 1.0, 1.0]))
    config = sweep.suggest("t3")
    assert config["search"] == RECOMMENDED and config["training"]["lr"] == rates["t1"]  # the best one's
    assert config["label"] == f"weights=[1, 1, 1], lr={rates['t1']:.4g}"
    # without a searched lr, the sweep's own
    plain = searcher()
    ids = {f"t{i}": plain.suggest(f"t{i}")["search"] for i in range(6)}
    for trial, search in ids.items():
        plain.on_trial_complete(trial, result(0.3, [1.0, 1.0, 1.0]) if search == "gn" else None)
    assert plain.suggest("t6")["training"]["lr"] == parse_spec(SPEC, "test").training["lr"]


def test_no_recommended_trial_when_every_gradnorm_trial_failed():
    sweep = searcher()
    ids = {f"t{i}": sweep.suggest(f"t{i}")["search"] for i in range(6)}
    for trial, search in ids.items():
        sweep.on_trial_complete(trial, error=search == "gn")
    assert sweep.suggest("t6") == Searcher.FINISHED
    assert sweep.recommended_weights is None


def test_a_retried_trial_counts_once():
    sweep = searcher()
    ids = [sweep.suggest(f"t{i}") and f"t{i}" for i in range(3)]
    for trial in ids[:2]:
        sweep.on_trial_complete(trial, result(0.5, [1, 1, 1]))
    sweep.on_trial_complete(ids[0], result(0.5, [1, 1, 1]))  # resumed with resume_errored, ends again
    for i in range(3, 6):
        sweep.suggest(f"t{i}")
    assert sweep.suggest("x") is None  # gn's third trial has not ended


def test_without_recommended_static_the_end_is_finished():
    sweep = searcher(dict(SPEC, recommended_static=False))
    for i in range(6):
        assert sweep.suggest(f"t{i}") is not None
    assert sweep.suggest("t6") == Searcher.FINISHED


def test_state_saved_and_restored_continues_identically(tmp_path):
    original, twin = searcher(), searcher()
    for i in range(2):
        original.suggest(f"t{i}")
        original.on_trial_complete(f"t{i}", result(0.4 + i, [1, 1, 1]))
    original.save(str(tmp_path / "searcher.pkl"))
    twin.restore(str(tmp_path / "searcher.pkl"))
    # the same next trials, Optuna's next alpha included
    for i in range(2, 6):
        assert twin.suggest(f"t{i}") == original.suggest(f"t{i}")


@pytest.mark.parametrize("seed", [0, 1])
def test_optuna_alphas_follow_the_seed(seed):
    data = dict(SPEC, training={"epochs": 2, "seed": seed})
    first = [searcher(data).suggest(f"t{i}")["balancer"]["alpha"] for i in range(1)]
    again = [searcher(data).suggest(f"t{i}")["balancer"]["alpha"] for i in range(1)]
    other = searcher(dict(SPEC, training={"epochs": 2, "seed": seed + 10})).suggest("t0")["balancer"]["alpha"]
    assert first == again and first[0] != other


def repeated(repeats: int = 2) -> dict:
    searches = {
        "gn": {"type": "gradnorm", "alpha": {"low": 0.0, "high": 3.0}, "num_trials": 2, "repeats": repeats},
        "grid": {"type": "static_grid", "levels": [[1], [1], [0.5, 2]], "repeats": repeats},
    }
    return dict(SPEC, searches=searches)


def test_repeats_train_every_configuration_with_consecutive_seeds():
    sweep = searcher(repeated(3))
    configs = [sweep.suggest(f"t{i}") for i in range(12)]
    assert [c["search"] for c in configs] == ["gn"] * 6 + ["grid"] * 6
    # Optuna's pick is trained three times, seeds 3, 4, 5, before its next pick
    assert [c["training"]["seed"] for c in configs] == [3, 4, 5] * 4
    assert [c["repeat"] for c in configs] == [0, 1, 2] * 4
    alphas = [c["balancer"]["alpha"] for c in configs[:6]]
    assert len(set(alphas[:3])) == 1 and alphas[0] != alphas[3]
    assert [c["balancer"]["weights"] for c in configs[6:12]] == [[1.0, 1.0, 0.5]] * 3 + [[1.0, 1.0, 2.0]] * 3
    assert configs[0]["label"] == configs[2]["label"]  # the configuration, not the seed
    assert sweep.suggest("t12") is None  # the recommended trials wait for gn


def test_optuna_hears_the_mean_of_a_picks_repeats_once(monkeypatch):
    sweep = searcher(repeated(2))
    told = []
    optuna = sweep.ledger.sources[0].searcher
    monkeypatch.setattr(optuna, "on_trial_complete", lambda trial_id, result=None, error=False:
                        told.append((trial_id, result, error)))
    for i in range(4):
        sweep.suggest(f"t{i}")
    sweep.on_trial_complete("t0", result(0.2, [1, 1, 1]))
    assert told == []  # its other repeat is still running
    sweep.on_trial_complete("t1", result(0.4, [1, 1, 1]))
    sweep.on_trial_complete("t2", error=True)
    sweep.on_trial_complete("t3", error=True)
    assert told[0][0] == "t0" and told[0][1]["best_score"] == pytest.approx(0.3) and not told[0][2]
    assert told[1] == ("t2", None, True)  # every repeat failed


def test_recommended_weights_average_the_repeats_of_the_best_configuration():
    sweep = searcher(repeated(2))
    for i in range(8):
        sweep.suggest(f"t{i}")
    # pick one (t0, t1): mean 0.35; pick two (t2, t3): mean 0.3, the better one, though t0 is the best trial
    sweep.on_trial_complete("t0", result(0.1, [3.0, 0.0, 0.0]))
    sweep.on_trial_complete("t1", result(0.6, [3.0, 0.0, 0.0]))
    sweep.on_trial_complete("t2", result(0.3, [1.0, 1.0, 1.0]))
    sweep.on_trial_complete("t3", result(0.3, [0.5, 1.5, 1.0]))
    first, second = sweep.suggest("r0"), sweep.suggest("r1")
    assert first["search"] == second["search"] == RECOMMENDED
    assert first["balancer"]["weights"] == second["balancer"]["weights"] == [0.75, 1.25, 1.0]
    assert [first["training"]["seed"], second["training"]["seed"]] == [3, 4]
    assert sweep.suggest("r2") == Searcher.FINISHED


def test_gradnorm_searches_alpha_weight_lr_and_initial_losses_together():
    data = dict(SPEC, searches={"gn": {
        "type": "gradnorm", "alpha": {"low": 0.5, "high": 2.0}, "num_trials": 6,
        "weight_lr": {"low": 0.005, "high": 0.2}, "initial_losses": ["first_step", "chance"]}})
    sweep = searcher(data)
    configs = [sweep.suggest(f"t{i}") for i in range(6)]
    for config in configs:
        options = config["balancer"]  # the weights' learning rate is GradNorm's lr, beside alpha
        assert 0.5 <= options["alpha"] <= 2.0 and 0.005 <= options["lr"] <= 0.2
        assert options["initial_losses"] in ("first_step", "chance")
        assert config["training"]["lr"] == 0.001  # the network's, untouched
        assert config["label"] == (f"alpha={options['alpha']:.4g}, weight_lr={options['lr']:.3g}, "
                                   f"L0={options['initial_losses']}")
    assert len({c["balancer"]["initial_losses"] for c in configs}) == 2


def test_a_gradnorm_grid_crosses_alphas_with_initial_loss_rules():
    data = dict(SPEC, searches={"gn": {"type": "gradnorm", "alpha": [1.0, 1.5], "weight_lr": 0.1,
                                       "initial_losses": ["first_step", "chance"]}})
    sweep = searcher(data)
    configs = [sweep.suggest(f"t{i}") for i in range(4)]
    assert [(c["balancer"]["alpha"], c["balancer"]["initial_losses"]) for c in configs] == [
        (1.0, "first_step"), (1.0, "chance"), (1.5, "first_step"), (1.5, "chance")]
    assert all(c["balancer"]["lr"] == 0.1 for c in configs)
    one = searcher(dict(SPEC, searches={"gn": {"type": "gradnorm", "alpha": [1.0], "initial_losses": "chance"}}))
    config = one.suggest("t0")
    assert config["balancer"] == {"method": "gradnorm", "initial_losses": "chance", "alpha": 1.0}
    assert config["label"] == "alpha=1"
