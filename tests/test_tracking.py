"""The MLflow record (trainables.tracking) on a real MLflow store in a SQLite file: params and their
reverse, experiments, runs found by tag, epochs written once, real start and end times, and the
trial logger writing late (after an outage) with the times the trials really had."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from trainables import (
    ERROR_TAG,
    EXPERIMENT_KIND,
    KIND,
    PARENT,
    ROLE,
    SEARCH,
    SWEEP,
    TRIAL_ID,
    VARIED,
    MlflowTrialLogger,
    TrackingError,
    TrialConfig,
    check_tracking_server,
    create_comparison_run,
    create_search_run,
    decode_params,
    default_tracking_uri,
    describe_comparison,
    encode_params,
    ensure_experiment,
    finish_run,
    is_local_store,
    log_epoch,
    logs_of,
    metric_history,
    reach_tracking_server,
    redact,
    start_train_run,
    trial_runs,
)
from trainables.tracking import create_trial_run, find_trial_run

SMALL = {"num_train": 192, "num_val": 64, "num_test": 64}


def trial(balancer=None, problem="multidigits", options=SMALL, training=None, **top):
    """A trial config in its serialised form (what Tune passes and MLflow keeps)."""
    return {"problem": {"name": problem, "options": dict(options)},
            "balancer": balancer or {"method": "gradnorm", "alpha": 1.0},
            "training": {"epochs": 3, "batch_size": 64, "lr": 2e-3, "seed": 4, "device": "cpu", **(training or {})},
            "search": "alphas", "label": "alpha=1", **top}


GRADNORM = trial()
CONFIGS = [
    GRADNORM,
    trial({"method": "static", "weights": [1.0, 0.5, 2.0]}, search="grid", label="weights=[1, 0.5, 2]"),
    trial({"method": "gradnorm", "alpha": 0.0, "lr": 0.025, "optimizer": "adam"},
          training={"weight_decay": 1e-4, "device": "auto"}, run={"checkpoint_seconds": 10.0, "logs": "/s/logs"},
          repeat=2),
    trial({"method": "equal"}, problem="paper_toy",
          options={"tasks": 2, "sigmas": [1, 100], "noise": None, "flag": True, "name": "1", "deep": {"a": [1, 2]},
                   "empty": {}}),
    trial({"method": "uncertainty"}, label="-", search="true", options={"a.b": 1, "c": 2}),
]


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture()
def client(uri):
    return MlflowClient(uri)


@pytest.fixture()
def experiment(client, tmp_path):
    return client.create_experiment(f"test-{uuid.uuid4().hex[:8]}", artifact_location=(tmp_path / "a").as_uri())


def without_none(value):
    """``value`` without the None values, at every depth (params leave them out)."""
    if isinstance(value, dict):
        return {key: without_none(inner) for key, inner in value.items() if inner is not None}
    return value


@pytest.mark.parametrize("config", CONFIGS)
def test_params_round_trip_to_the_same_config(config):
    params = encode_params(config)
    assert all(isinstance(value, str) for value in params.values())
    assert decode_params(params) == without_none(config)


def test_params_are_the_config_flattened_with_dots_at_every_depth():
    params = encode_params(CONFIGS[1])
    assert params["problem.name"] == "multidigits" and params["problem.options.num_train"] == "192"
    assert params["balancer.method"] == "static" and params["balancer.weights"] == "[1.0, 0.5, 2.0]"
    assert params["training.lr"] == "0.002" and "balancer.alpha" not in params and params["search"] == "grid"
    toy = encode_params(CONFIGS[3])
    assert toy["problem.options.name"] == '"1"'  # a string that reads as a number
    assert toy["problem.options.deep.a"] == "[1, 2]" and toy["problem.options.empty"] == "{}"
    assert "problem.options.noise" not in toy  # None left out
    # a dict with a dotted key cannot be flattened and read back: one JSON param
    assert encode_params(CONFIGS[4])["problem.options"] == '{"a.b": 1, "c": 2}'
    assert encode_params(CONFIGS[2])["balancer.lr"] == "0.025" and encode_params(CONFIGS[2])["repeat"] == "2"
    assert encode_params(CONFIGS[2])["run.logs"] == "/s/logs" and logs_of(CONFIGS[2]) == "/s/logs"
    for config in CONFIGS[:3]:
        assert TrialConfig.from_dict(decode_params(encode_params(config))) == TrialConfig.from_dict(config)
    # the "varied" param beside a trial's config is not part of it
    assert decode_params(encode_params(GRADNORM) | {VARIED: "alpha=1"}) == GRADNORM
    with pytest.raises(ValueError, match="a top-level key cannot hold '.'"):
        encode_params({"a.b": 1})


def test_ensure_experiment_is_idempotent_and_tagged(client, uri, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = f"gradnorm-tune/{uuid.uuid4().hex[:8]}"
    first = ensure_experiment(client, name, uri)
    assert ensure_experiment(client, name, uri) == first
    experiment = client.get_experiment(first)
    assert experiment.name == name
    assert experiment.tags[EXPERIMENT_KIND] == "custom_model_development"
    # beside the SQLite file, not in the working directory
    store = Path(uri[len("sqlite:///"):]).parent
    assert store != tmp_path and experiment.artifact_location == (store / "mlartifacts" / name.replace("/", "_")).as_uri()
    # an experiment made elsewhere, without the tag, gets it
    other = client.create_experiment(f"plain-{uuid.uuid4().hex[:8]}", artifact_location=(tmp_path / "p").as_uri())
    assert ensure_experiment(client, client.get_experiment(other).name, uri) == other
    assert client.get_experiment(other).tags[EXPERIMENT_KIND] == "custom_model_development"
    client.delete_experiment(other)
    with pytest.raises(TrackingError, match="is deleted; restore it") as error:
        ensure_experiment(client, client.get_experiment(other).name, uri)
    assert "\n" not in str(error.value)


def test_comparison_and_search_runs_carry_their_tags_and_params(client, experiment):
    comparison = create_comparison_run(client, experiment, "toy comparison", "sweep1", "/runs/toy-1")
    run = client.get_run(comparison)
    assert run.info.run_name == "toy comparison"
    assert run.data.tags[ROLE] == "comparison" and run.data.tags[SWEEP] == "sweep1"
    assert run.data.tags["gradnorm_tune.directory"] == "/runs/toy-1"
    search = create_search_run(client, experiment, comparison, "sweep1", "grid", "static_grid",
                               {"points": 3, "values": [0.5, 1], "sampled": False})
    run = client.get_run(search)
    assert run.info.run_name == "grid"
    assert {key: run.data.tags[key] for key in (PARENT, ROLE, SEARCH, SWEEP, KIND)} == {
        PARENT: comparison, ROLE: "search", SEARCH: "grid", SWEEP: "sweep1", KIND: "static_grid"}
    assert run.data.params == {"points": "3", "values": "[0.5, 1]", "sampled": "false"}


def test_the_experiments_description_is_its_latest_sweeps_answer(client, experiment):
    """The answer on the comparison run always; its gist on the experiment only from the
    experiment's latest comparison run: a report rebuilt for an earlier sweep leaves it alone."""
    earlier, later = (client.create_run(experiment, start_time=start, tags={ROLE: "comparison"}).info.run_id
                      for start in (1_000_000, 2_000_000))
    client.create_run(experiment, start_time=3_000_000, tags={ROLE: "search"})  # (not a comparison)
    describe_comparison(client, experiment, later, "the later answer", "later")
    describe_comparison(client, experiment, earlier, "the earlier answer", "earlier")
    assert client.get_run(earlier).data.tags["mlflow.note.content"] == "the earlier answer"
    assert client.get_run(later).data.tags["mlflow.note.content"] == "the later answer"
    assert client.get_experiment(experiment).tags["mlflow.note.content"] == "later"
    # a table too long for a tag: the answer stays whole, the table is left to cost_table.md
    describe_comparison(client, experiment, later, "the answer.\n\n" + "| a | b |\n" * 1000, "later")
    assert client.get_run(later).data.tags["mlflow.note.content"] == "the answer.\n"


def test_a_trial_run_is_found_by_its_tag_and_never_duplicated(client, experiment):
    parent = client.create_run(experiment).info.run_id
    assert find_trial_run(client, experiment, parent, "t1") is None
    created = create_trial_run(client, experiment, parent, "t1", "alphas", "sweep1", GRADNORM)
    for _ in range(2):
        found = find_trial_run(client, experiment, parent, "t1")
        assert found is not None and found.info.run_id == created.info.run_id
    assert find_trial_run(client, experiment, "another-parent", "t1") is None
    create_trial_run(client, experiment, parent, "t2", "alphas", "sweep1", trial({"method": "gradnorm", "alpha": 0.5}))
    runs = trial_runs(client, experiment, parent)
    assert sorted(run.data.tags[TRIAL_ID] for run in runs) == ["t1", "t2"]
    run = client.get_run(created.info.run_id)
    assert run.info.run_name == "alphas alpha=1"  # its search and configuration (trainables.run_names)
    assert run.data.tags[ROLE] == "trial" and run.data.tags[SEARCH] == "alphas" and run.data.tags[PARENT] == parent
    assert run.data.params[VARIED] == "alpha=1"
    assert decode_params(run.data.params) == GRADNORM


def record(epoch, reported_at, **extra):
    return {"epoch": epoch, "score": 1.0 / epoch, "test/score": 2.0 / epoch, "weight/left": 0.5 + epoch,
            "mean_weight/left": 0.4 + epoch, "avg_weight/left": 0.3 + epoch, "compute_seconds": 0.5 * epoch,
            "cpu_seconds": 0.25 * epoch, "samples": 100 * epoch, "device": "cpu", "node": "n1",
            "reported_at": reported_at, "best_score": 1.0 / epoch, "flag": True, **extra}


def test_log_epoch_twice_stores_each_point_once_and_the_history_comes_back(client, experiment):
    run_id = client.create_run(experiment).info.run_id
    t0 = time.time()
    for _ in range(2):
        for epoch in (1, 2):
            log_epoch(client, run_id, record(epoch, t0 + epoch))
    scores = client.get_metric_history(run_id, "val/score")
    assert [(m.step, m.value, m.timestamp) for m in scores] == [
        (1, 1.0, int((t0 + 1) * 1000)), (2, 0.5, int((t0 + 2) * 1000))]
    run = client.get_run(run_id)
    assert run.data.tags["gradnorm_tune.device"] == "cpu" and run.data.tags["gradnorm_tune.node"] == "n1"
    assert "flag" not in run.data.metrics and "epoch" not in run.data.metrics
    # MLflow's names say the split and use one word for the weights (trainables.metric_names)
    assert set(run.data.metrics) == {"val/score", "test/score", "weight/left", "weight/left/epoch_mean",
                                     "weight/left/time_average", "compute_seconds", "cpu_seconds", "samples",
                                     "best_val_score"}
    history = metric_history(client, run)
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[1] == {"epoch": 2, "score": 0.5, "test/score": 1.0, "weight/left": 2.5, "mean_weight/left": 2.4,
                          "avg_weight/left": 2.3, "compute_seconds": 1.0, "cpu_seconds": 0.5, "samples": 200,
                          "best_score": 0.5}


def test_a_run_written_under_the_earlier_metric_names_reads_back_the_same(client, experiment):
    """A trial run logged before the names changed (its record's keys as MLflow names)."""
    run_id = client.create_run(experiment).info.run_id
    old = {"score": 0.5, "best_score": 0.5, "mean_weight/left": 2.4, "avg_weight/left": 2.3, "weight/left": 2.5}
    client.log_batch(run_id, metrics=[Metric(key, value, 1000, 2) for key, value in old.items()])
    (epoch,) = metric_history(client, client.get_run(run_id))
    assert epoch == {"epoch": 2, **old}
    assert metric_history(client, client.get_run(run_id), lambda key: key.startswith("mean_weight/")) == [
        {"epoch": 2, "mean_weight/left": 2.4}]


def test_log_epoch_writes_more_than_one_batch_of_metrics(client, experiment):
    run_id = client.create_run(experiment).info.run_id
    log_epoch(client, run_id, {"epoch": 1, "reported_at": 1.0, **{f"val/m{i}": float(i) for i in range(1500)}})
    assert len(client.get_run(run_id).data.metrics) == 1500


def test_start_and_end_times_are_stored_as_given(client, experiment):
    parent = client.create_run(experiment).info.run_id
    started, ended = 1_700_000_000.25, 1_700_000_042.5
    run = create_trial_run(client, experiment, parent, "t9", "alphas", "sweep1", GRADNORM, start_time=started)
    finish_run(client, run.info.run_id, "FAILED", end_time=ended, error="alpha: must be >= 0")
    stored = client.get_run(run.info.run_id)
    assert (stored.info.start_time, stored.info.end_time) == (1_700_000_000_250, 1_700_000_042_500)
    assert stored.info.status == "FAILED" and stored.data.tags[ERROR_TAG] == "alpha: must be >= 0"


def test_train_run_holds_the_config_and_epochs_like_a_trial(client, experiment):
    config = trial({"method": "gradnorm", "alpha": 1.5}, label="alpha=1.5")
    config.pop("search")
    run_id = start_train_run(client, experiment, config)
    log_epoch(client, run_id, record(1, 100.0))
    finish_run(client, run_id)
    run = client.get_run(run_id)
    assert run.info.run_name == "train gradnorm alpha=1.5" and run.data.tags[ROLE] == "train"
    assert run.info.status == "FINISHED" and run.info.end_time >= run.info.start_time
    assert decode_params(run.data.params) == config
    assert metric_history(client, run)[0]["score"] == 1.0


def test_unreachable_tracking_server_is_one_line(client):
    from servers import free_port

    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TrackingError, match=f"tracking server {uri} is unreachable") as error:
        check_tracking_server(uri)
    assert "\n" not in str(error.value) and str(error.value).endswith("start it or pass --tracking-uri")
    with pytest.raises(TrackingError, match=f"^tracking server {uri} is unreachable \\(nothing listens on "):
        reach_tracking_server(uri)  # (what a sweep asks before Ray starts: one TCP connection)
    reach_tracking_server(client.tracking_uri)  # a local store: nothing to reach
    assert isinstance(check_tracking_server(client.tracking_uri), MlflowClient)


def test_a_server_that_keeps_failing_is_asked_a_bounded_number_of_times():
    """A tracking server that answers 503 (overloaded) to every request: the check asks it once and
    retries it as CLIENT_SETTINGS bound it (MLflow's own default backs off for minutes), then says
    so in one line."""
    import http.server
    import threading

    from trainables import CLIENT_SETTINGS

    asked = []

    class Unavailable(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            asked.append(self.path)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _answer

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(TrackingError, match=f"^tracking server {uri} is unreachable"):
            check_tracking_server(uri)
    finally:
        server.shutdown()
        server.server_close()
    assert len(asked) == 1 + int(CLIENT_SETTINGS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]) == 3, asked


def test_uri_helpers(monkeypatch, tmp_path):
    assert redact("http://alice:secret@host:5000/x") == "http://alice:***@host:5000/x"
    assert redact("http://host:5000") == "http://host:5000"
    assert is_local_store("sqlite:///x.db") and is_local_store("file:///x") and is_local_store("mlruns")
    assert not is_local_store("http://host:5000")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://host:5000")
    assert default_tracking_uri() == "http://host:5000"


class FakeTrial:
    def __init__(self, trial_id, config):
        self.trial_id, self.config, self.checkpoint = trial_id, config, None
        self.num_failures, self.error_file, self.last_result = 0, None, {}


def test_one_logger_serves_every_search_and_late_writes_keep_the_real_times(client, uri, experiment):
    from servers import free_port

    parents = {"alphas": client.create_run(experiment).info.run_id}
    logger = MlflowTrialLogger(f"http://127.0.0.1:{free_port()}", experiment, parents, "sweep1",
                               retry_seconds=0.01, patience_seconds=0.2)
    parents["grid"] = client.create_run(experiment).info.run_id  # added while the experiment runs
    a = FakeTrial("a1", dict(GRADNORM))
    b = FakeTrial("b1", dict(CONFIGS[1]))
    t0 = time.time()
    logger.on_trial_start(0, [], a)
    logger.on_trial_start(0, [], b)
    for epoch in (1, 2):
        time.sleep(0.02)
        logger.on_trial_result(0, [], a, record(epoch, time.time()))
        logger.on_trial_result(0, [], b, record(epoch, time.time()))
    time.sleep(0.02)
    logger.on_trial_complete(0, [], a)
    logger.on_trial_error(0, [], b)
    t1 = time.time()
    from servers import wait_until

    wait_until(lambda: logger.outages == 1, 60, "the writer to notice the outage")
    assert logger.pending == 2 * 4  # the server is away: all kept
    with pytest.raises(ValueError, match="search 'nope' has no MLflow run"):
        logger.on_trial_start(0, [], FakeTrial("c1", dict(GRADNORM, search="nope")))

    time.sleep(1.0)  # the server comes back a while after the trials ended
    logger.tracking_uri, logger._client = uri, None
    logger.flush()
    assert logger.pending == 0
    runs = {}
    for search, parent in parents.items():
        (run,) = trial_runs(client, experiment, parent)
        assert run.data.tags[SEARCH] == search and run.info.run_name.startswith(f"{search} ")
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val/score")] == [1, 2]
        runs[search] = run
    assert runs["alphas"].info.status == "FINISHED" and runs["grid"].info.status == "FAILED"
    assert runs["grid"].data.tags[ERROR_TAG] == "trial failed (no error file)"
    for run in runs.values():  # the trials' own times, not the time of writing
        assert t0 * 1000 - 1 <= run.info.start_time < run.info.end_time <= t1 * 1000 + 1
    # the two searches' trials overlapped
    assert max(r.info.start_time for r in runs.values()) < min(r.info.end_time for r in runs.values())

    # a restarted driver finds the same runs and writes nothing twice
    again = MlflowTrialLogger(uri, experiment, parents, "sweep1")
    again.on_trial_result(0, [], a, record(2, 123.0))
    again.on_trial_complete(0, [], a)
    again.flush()  # (the writes are on the logger's thread: what it would write, written)
    again.close()
    assert again.run_id("a1", a.config) == runs["alphas"].info.run_id
    assert [m.step for m in client.get_metric_history(runs["alphas"].info.run_id, "val/score")] == [1, 2]
    assert client.get_run(runs["alphas"].info.run_id).info.end_time == runs["alphas"].info.end_time


def test_a_search_run_starts_with_its_first_trial_and_ends_with_its_last_even_after_an_outage(client, uri, experiment):
    """A planned search's run is created when its first trial's start is written (late, after an
    outage), with that trial's start time, and ended after its trial's updates; a restarted driver's
    logger finds it by its tags instead of creating a second one."""
    from servers import free_port, wait_until

    comparison = create_comparison_run(client, experiment, "late comparison", "sweep9", "/d")
    plans = {"alphas": ("gradnorm", {"alpha": {"low": 0, "high": 3}})}
    logger = MlflowTrialLogger(f"http://127.0.0.1:{free_port()}", experiment, {}, "sweep9", retry_seconds=0.01,
                               patience_seconds=0.2, comparison_run_id=comparison, plans=dict(plans))
    trial = FakeTrial("p1", dict(GRADNORM))
    time.sleep(0.05)  # the comparison run began before the search's first trial
    started = time.time()
    logger.on_trial_start(0, [], trial)
    logger.on_trial_result(0, [], trial, record(1, time.time()))
    logger.on_trial_complete(0, [], trial)
    ended = time.time()
    logger.end_search("alphas", "FINISHED", ended)
    wait_until(lambda: logger.outages == 1, 60, "the writer to notice the outage")
    assert "alphas" not in logger.parents  # nothing could be written yet
    time.sleep(0.5)
    logger.tracking_uri, logger._client = uri, None
    logger.flush()
    search = client.get_run(logger.parents["alphas"])
    assert search.data.tags[PARENT] == comparison and search.data.tags[ROLE] == "search"
    assert json.loads(search.data.params["alpha"]) == {"low": 0, "high": 3}
    (trial_run,) = trial_runs(client, experiment, search.info.run_id)
    assert search.info.start_time == trial_run.info.start_time == pytest.approx(started * 1000, abs=1)
    assert search.info.status == "FINISHED" and search.info.end_time == int(ended * 1000)
    assert search.info.start_time > client.get_run(comparison).info.start_time

    again = MlflowTrialLogger(uri, experiment, {}, "sweep9", comparison_run_id=comparison, plans=dict(plans))
    assert again.search_run("alphas", time.time()) == search.info.run_id
    assert len(client.search_runs([experiment], filter_string=f"tags.`{ROLE}` = 'search'")) == 1


def test_a_local_store_keeps_its_artifacts_beside_it(tmp_path, monkeypatch):
    from trainables.tracking import artifact_root

    monkeypatch.chdir(tmp_path)
    assert artifact_root("sqlite:////data/runs/mlflow.db") == Path("/data/runs/mlartifacts")
    assert artifact_root("sqlite:///sub/mlflow.db?timeout=20") == tmp_path / "sub" / "mlartifacts"
    assert artifact_root("file:./mlruns") == artifact_root("./mlruns") == tmp_path / "mlartifacts"
    assert artifact_root("http://127.0.0.1:5000") is None  # the server's own artifact root


@pytest.mark.parametrize("label,short", [
    ("alpha=1.2714, weight_lr=0.053912, L0=chance, lr=0.0054961", "alpha=1.27 wlr=0.0539 L0=chance lr=0.0055"),
    ("weights=[2, 2, 0.5]", "w=[2, 2, 0.5]"),
    ("weights=[6.146, 1.109, 0.08193]", "w=[6.15, 1.11, 0.0819]"),
    ("lr=0.06799999999999995", "lr=0.068"),
    ("task=left2", "task=left2"),  # a name is not a number
    ("-", ""),
])
def test_a_trial_run_is_named_by_its_search_and_its_configuration_rounded(label, short):
    from trainables.run_names import MAX_RUN_NAME, short_label, trial_run_name

    assert short_label(label) == short
    assert trial_run_name("gn", label) == " ".join(filter(None, ["gn", short]))
    assert len(trial_run_name("gn", "weights=[" + ", ".join(["1.5"] * 200) + "]")) == MAX_RUN_NAME
