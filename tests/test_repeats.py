"""``repeats: N`` in a real sweep: every configuration trained with N seeds, each trial run
exactly once in MLflow, Optuna told the mean, the recommended static trials repeated too, and
chance-level L(0) reaching the trials through a GradNorm search option."""

from __future__ import annotations

from collections import Counter, defaultdict

from mlflow.tracking import MlflowClient

from sweeps.runner import run_sweep
from sweeps.spec import parse_spec
from trainables import ROLE, SEARCH, TRIAL_ID, VARIED, decode_params

EPOCHS = 2
REPEATS = 2
SPEC = {
    "name": "repeats",
    "experiment": "repeats",
    "problem": {"name": "multidigits", "options": {"num_train": 256, "num_val": 64, "num_test": 64}},
    "training": {"epochs": EPOCHS, "batch_size": 64, "lr": 0.002, "seed": 5, "device": "cpu"},
    "resources": {"cpu": 1, "max_concurrent": 2},
    "searches": {
        "gn": {"type": "gradnorm", "alpha": {"low": 0.5, "high": 2.0}, "num_trials": 2,
               "initial_losses": "chance", "repeats": REPEATS},
        "grid": {"type": "static_grid", "levels": [[1], [1], [2]], "repeats": REPEATS},
    },
    "recommended_static": True,
}


def test_every_configuration_runs_once_per_seed(local_ray, tmp_path, new_store):
    uri = new_store(tmp_path / "mlflow.db")
    state = run_sweep(parse_spec(SPEC, "test"), storage=tmp_path / "runs", tracking_uri=uri)
    client = MlflowClient(uri)
    trials = [run for run in client.search_runs([state.experiment_id], max_results=1000)
              if run.data.tags.get(ROLE) == "trial"]
    assert Counter(run.data.tags[SEARCH] for run in trials) == {
        "gn": 2 * REPEATS, "grid": REPEATS, "recommended_static": REPEATS}
    assert len({run.data.tags[TRIAL_ID] for run in trials}) == len(trials)

    seeds = defaultdict(list)
    for run in trials:
        params = decode_params(run.data.params)
        seeds[(run.data.tags[SEARCH], run.data.params[VARIED])].append(params["training"]["seed"])
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val/score")] == list(range(1, EPOCHS + 1))
        if run.data.tags[SEARCH] == "gn":
            assert params["balancer"]["initial_losses"] == "chance"
    # each configuration (its label) once with seed 5 and once with seed 6
    assert len(seeds) == 2 + 1 + 1
    assert all(sorted(found) == [5, 6] for found in seeds.values()), seeds
    assert all(entry["status"] == "done" for entry in state.searches.values())
