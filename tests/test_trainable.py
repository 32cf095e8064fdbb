"""The Ray Tune trainable on real Ray: reports, checkpoints, exact restore, MLflow child runs,
and config errors that fail one trial with a one-line reason."""

from __future__ import annotations

import pytest
import torch
from mlflow.tracking import MlflowClient
from ray import tune

from trainables import (
    ERROR_TAG,
    OUTCOME,
    PARENT,
    TRIAL_ID,
    MlflowTrialLogger,
    TrialConfig,
    TrialConfigError,
    checkpoint_history,
    train_trial,
    trial_runs,
)

SMALL = {"num_train": 192, "num_val": 64, "num_test": 64}
BASE = {"problem": {"name": "multidigits", "options": SMALL}, "balancer": {"method": "gradnorm", "alpha": 1.0},
        "training": {"epochs": 3, "batch_size": 64, "lr": 2e-3, "seed": 4, "device": "cpu"}, "search": "alphas"}


def changed(config: dict, **parts) -> dict:
    """``config`` with some of its parts' keys replaced: ``changed(BASE, balancer={"alpha": 0.5})``."""
    return {**config, **{part: {**config.get(part, {}), **keys} if isinstance(keys, dict) else keys
                         for part, keys in parts.items()}}


def run(tmp_path, space, name, callbacks=(), max_failures=0):
    tuner = tune.Tuner(
        tune.with_resources(train_trial, {"cpu": 1}), param_space=space,
        tune_config=tune.TuneConfig(metric="best_score", mode="min", max_concurrent_trials=2),
        run_config=tune.RunConfig(name=name, storage_path=str(tmp_path / "ray"), verbose=0,
                                  callbacks=list(callbacks),
                                  failure_config=tune.FailureConfig(max_failures=max_failures)),
    )
    return tuner.fit()


def in_process(config):
    _, training = TrialConfig.from_dict(config).start()
    return list(training)


def test_reports_every_epoch_and_matches_an_in_process_run(local_ray, tmp_path):
    (result,) = run(tmp_path, dict(BASE), "plain")
    history = checkpoint_history(result.checkpoint)  # every epoch's report, as checkpointed
    assert [m["epoch"] for m in history] == [1, 2, 3]
    expected = in_process(BASE)  # another process with other thread counts: same up to rounding
    assert [m["score"] for m in history] == pytest.approx([r.score for r in expected], rel=1e-6)
    assert [m["weight/left"] for m in history] == pytest.approx([r.weights[0] for r in expected], rel=1e-6)
    assert result.metrics["best_score"] == min(m["score"] for m in history)
    assert result.metrics["device"] == "cpu"
    assert result.metrics["compute_seconds"] > 0
    assert result.checkpoint is not None


def crash_once_after_epoch_one(config):
    """train_trial, made to crash once right after its first checkpoint (as a lost worker would);
    without a ``marker`` in its config, train_trial as it is."""
    from pathlib import Path

    from ray import tune as ray_tune

    config = dict(config)
    marker = config.pop("marker")
    if marker is None:
        return train_trial(config)
    marker = Path(marker)
    real_report = ray_tune.report

    def report(metrics, checkpoint=None):
        real_report(metrics, checkpoint=checkpoint)
        if metrics["epoch"] == 1 and not marker.exists():
            marker.touch()
            raise RuntimeError("simulated crash after epoch 1")

    ray_tune.report = report
    try:
        train_trial(config)
    finally:
        ray_tune.report = real_report


def test_restored_trial_continues_to_the_same_final_numbers(local_ray, tmp_path):
    # side by side in one experiment: the trial that crashes once, and the same trial uninterrupted
    marker = tmp_path / "crashed"
    tuner = tune.Tuner(
        tune.with_resources(crash_once_after_epoch_one, {"cpu": 1}),
        param_space=dict(BASE, marker=tune.grid_search([str(marker), None])),
        tune_config=tune.TuneConfig(max_concurrent_trials=2),
        run_config=tune.RunConfig(name="restored", storage_path=str(tmp_path / "ray"), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=1)),
    )
    results = {result.config["marker"]: result for result in tuner.fit()}
    result, uninterrupted = results[str(marker)], results[None]
    assert marker.exists() and result.error is None and uninterrupted.error is None
    # the record is the trial's checkpointed history (Tune's own result table may miss the epoch the
    # worker reported just before it died, depending on which reached the driver first)
    expected = checkpoint_history(uninterrupted.checkpoint)
    history = checkpoint_history(result.checkpoint)
    assert [m["epoch"] for m in history] == [1, 2, 3]
    assert [m["score"] for m in history] == [m["score"] for m in expected]
    for key in ("weight/sum", "mean_weight/left", "test/score", "test/left/accuracy", "test/sum/rmse"):
        assert result.metrics[key] == uninterrupted.metrics[key], key
    # compute seconds carry over from before the crash
    compute = [m["compute_seconds"] for m in history]
    assert compute == sorted(compute)


def test_each_trial_is_one_mlflow_child_run_and_config_errors_fail_alone(local_ray, tmp_path, new_store):
    uri = new_store(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    experiment = client.create_experiment("trainable", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(experiment).info.run_id
    logger = MlflowTrialLogger(uri, experiment, {"alphas": parent}, "sweep0")
    # the search type puts each trial's label in its config; the run shows it as "varied"
    space = changed(BASE, balancer={"alpha": tune.grid_search([0.5, -2.0])},
                    label=tune.sample_from(lambda spec: f"alpha={spec.config.balancer.alpha:g}"))
    results = run(tmp_path, space, "logged", [logger])
    # the config error ends its trial as failed, without an error for Tune to retry
    assert [r.error for r in results] == [None, None]
    assert sorted(r.metrics.get("outcome", "-") for r in results) == ["-", "failed"]

    runs = client.search_runs([experiment], filter_string=f"tags.`{PARENT}` = '{parent}'")
    assert len(runs) == 2
    by_status = {r.info.status: r for r in runs}
    failed, finished = by_status["FAILED"], by_status["FINISHED"]
    assert failed.data.tags[ERROR_TAG] == "TrialConfigError: alpha must be a finite number >= 0, got -2.0"
    assert failed.data.tags[OUTCOME] == "failed" and finished.data.tags[OUTCOME] == "finished"
    assert finished.data.params["balancer.alpha"] == "0.5" and finished.data.params["varied"] == "alpha=0.5"
    assert failed.data.params["varied"] == "alpha=-2"
    assert finished.data.tags["gradnorm_tune.device"] == "cpu"
    scores = client.get_metric_history(finished.info.run_id, "val/score")
    assert [m.step for m in scores] == [1, 2, 3]
    # the run spans the trial: it started before its first epoch and ended after its last
    assert finished.info.start_time <= scores[0].timestamp <= scores[-1].timestamp <= finished.info.end_time
    weights = client.get_metric_history(finished.info.run_id, "weight/right")
    assert len(weights) == 3
    assert len({r.data.tags[TRIAL_ID] for r in runs}) == 2

    # a second logger (a restarted driver) finds the same run and logs nothing twice
    again = MlflowTrialLogger(uri, experiment, {"alphas": parent}, "sweep0")

    class Trial:
        trial_id = finished.data.tags[TRIAL_ID]
        config = changed(BASE, balancer={"alpha": 0.5})
        checkpoint = None

    assert again.run_id(Trial.trial_id, Trial.config) == finished.info.run_id
    again.on_trial_result(0, [], Trial, {"epoch": 3, "score": 123.0, "reported_at": 1.0})
    again.on_trial_result(0, [], Trial, {"epoch": 4, "score": 4.0, "reported_at": 2.0})  # a new one is written
    again.flush()  # (the writes are on the logger's thread: what it wrote, written)
    again.close()
    logged = sorted((m.step, m.value) for m in client.get_metric_history(finished.info.run_id, "val/score"))
    assert logged == sorted((m.step, m.value) for m in scores) + [(4, 4.0)]  # epoch 3 kept as it was, once


@pytest.mark.parametrize("config,message", [
    (changed(BASE, balancer={"method": "gradnrom"}), "^balancer.method: unknown method 'gradnrom'; choose one of: "),
    (dict(BASE, balancer={"method": "gradnorm"}), "^balancer.alpha: method 'gradnorm' needs alpha"),
    (changed(BASE, balancer={"alpha": True}), "^balancer.alpha: option 'alpha' of method 'gradnorm' is True; give a"),
    (changed(BASE, balancer={"temperature": 2.0}), "^balancer.temperature: method 'gradnorm' takes no option"),
    (changed(BASE, training={"epochs": 0}), "^training.epochs: epochs must be an integer >= 1"),
    (changed(BASE, training={"lr": float("inf")}), "^training.lr: expected a finite number, got inf; give a"),
    (changed(BASE, training={"epoch": 3}), "^training.epoch: unknown training key 'epoch'; did you mean 'epochs'"),
    (changed(BASE, run={"checkpoint_seconds": -1}), "^run.checkpoint_seconds: must be >= 0"),
    (dict(BASE, colour="red"), "^colour: unknown key 'colour'"),
    (dict(BASE, balancer={"method": "static", "weights": [1, 2]}), "^weights must hold 3 numbers"),
    (changed(BASE, problem={"name": "imagenet"}), "unknown problem 'imagenet'"),
    (changed(BASE, problem={"options": {"when": __import__("datetime").date(2024, 5, 1)}}),
     "^problem.options.when: datetime.date.* is no JSON value"),
])
def test_config_errors_are_one_line(config, message):
    with pytest.raises(TrialConfigError, match=message) as error:
        TrialConfig.from_dict(config).build()
    assert "\n" not in str(error.value)


def test_a_balancer_option_the_problem_gives_is_filled_in_by_the_trial(monkeypatch):
    """A method that takes ``kinds`` gets the problem's task kinds, unless the config gives them."""
    from gradnorm_core import BALANCERS, EqualWeights, register
    from gradnorm_core.problems import MultiDigits

    @register("kinds_for_a_test")
    class Kinds(EqualWeights):
        def __init__(self, num_tasks: int, kinds: list[str] | None = None) -> None:
            super().__init__(num_tasks)
            self.kinds = kinds

        @classmethod
        def build(cls, num_tasks, model=None, shared_layer=None, **options):
            return cls(num_tasks, **options)

    monkeypatch.setattr(MultiDigits, "task_kinds", lambda self: ["classification", "classification", "regression"],
                        raising=False)
    try:
        _, _, balancer = TrialConfig.from_dict(dict(BASE, balancer={"method": "kinds_for_a_test"})).build()
        assert balancer.kinds == ["classification", "classification", "regression"]
        given = dict(BASE, balancer={"method": "kinds_for_a_test", "kinds": ["a", "b", "c"]})
        assert TrialConfig.from_dict(given).build()[2].kinds == ["a", "b", "c"]
        assert not hasattr(TrialConfig.from_dict(BASE).build()[2], "kinds")  # GradNorm takes none
    finally:
        del BALANCERS["kinds_for_a_test"]


def test_trainable_runs_without_ray_session_for_bad_config():
    with pytest.raises(TrialConfigError):
        train_trial(changed(BASE, balancer={"method": "nope"}))
    assert torch.get_num_threads() >= 1


def test_updates_wait_while_the_server_is_away_and_reconcile_writes_them_from_checkpoints(local_ray, tmp_path,
                                                                                          new_store):
    from servers import free_port

    # nothing listens there: every write fails at once, the trials go on regardless
    away = MlflowTrialLogger(f"http://127.0.0.1:{free_port()}", "0", {"alphas": "p1", "more": "p2"}, "sweep0",
                             retry_seconds=0.05, patience_seconds=0.3)
    # two searches in one Tune experiment, one logger for both
    space = changed(BASE, balancer={"alpha": tune.grid_search([0.5, 1.0])},
                    search=tune.sample_from(lambda spec: "alphas" if spec.config.balancer.alpha == 0.5 else "more"))
    results = run(tmp_path, space, "away", [away])
    assert all(result.error is None for result in results)
    assert away.pending >= 2 * (1 + 3 + 1) and away.outages == 1  # start, 3 epochs, end: per trial

    uri = new_store(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    experiment = client.create_experiment("reconcile", artifact_location=(tmp_path / "artifacts").as_uri())
    parents = {"alphas": client.create_run(experiment).info.run_id, "more": client.create_run(experiment).info.run_id}
    back = MlflowTrialLogger(uri, experiment, parents, "sweep0")
    statuses = {result.metrics["trial_id"]: "TERMINATED" for result in results}
    for attempt in range(2):  # the second pass finds everything written and writes nothing
        back.reconcile(results, statuses)
        assert back.pending == 0
        logged = [trial_run for parent in parents.values() for trial_run in trial_runs(client, experiment, parent)]
        assert sorted(trial_run.data.params["balancer.alpha"] for trial_run in logged) == ["0.5", "1.0"]
        assert {trial_run.data.tags[PARENT]: trial_run.data.params["search"] for trial_run in logged} == {
            parent: search for search, parent in parents.items()}
        for trial_run in logged:
            assert trial_run.info.status == "FINISHED"
            # written late, the run still spans its trial's epochs, not the time of writing
            scores = client.get_metric_history(trial_run.info.run_id, "val/score")
            assert trial_run.info.start_time <= scores[0].timestamp <= scores[-1].timestamp == trial_run.info.end_time
            (result,) = [r for r in results if r.metrics["trial_id"] == trial_run.data.tags[TRIAL_ID]]
            scores = client.get_metric_history(trial_run.info.run_id, "val/score")
            assert [m.step for m in scores] == [1, 2, 3], attempt
            assert [m.value for m in scores] == [m["score"] for m in checkpoint_history(result.checkpoint)]
