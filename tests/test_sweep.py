"""A small sweep on real Ray with real MLflow (SQLite; tests/small_sweep.py, shared with other tests):
the run hierarchy, the cost figures, the printed table, and a sweep whose driver is killed (SIGKILL) resumed, with AdamW, a cosine
schedule, clipping and validation every 2 epochs, to the same records as an uninterrupted one.
(SIGINT and SIGTERM: tests/test_interrupt.py.) The killed sweep's trials wait at a gate
(tests/gated_problems.py), so the kill lands mid-sweep on any machine."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import matplotlib.image
import pytest
import yaml
from gated_problems import open_gate
from mlflow.tracking import MlflowClient
from small_sweep import EPOCHS, EXPECTED_TRIALS
from small_sweep import SPEC as SMALL

from sweeps.runner import SweepState, resume_sweep, run_sweep
from sweeps.spec import parse_spec
from trainables import PARENT, ROLE, SEARCH, TRIAL_ID

ROOT = Path(__file__).resolve().parents[1]


def runs_by_role(client: MlflowClient, experiment_id: str) -> dict[str, list]:
    runs = client.search_runs([experiment_id], max_results=1000)
    grouped: dict[str, list] = {}
    for run in runs:
        grouped.setdefault(run.data.tags.get(ROLE, "?"), []).append(run)
    return grouped


def check_hierarchy(client: MlflowClient, state: SweepState, epochs: int = EPOCHS) -> dict[str, list]:
    """One comparison run, one parent per search, one child per trial, nothing twice."""
    grouped = runs_by_role(client, state.experiment_id)
    assert len(grouped["comparison"]) == 1
    comparison = grouped["comparison"][0]
    searches = {run.data.tags[SEARCH]: run for run in grouped["search"]}
    assert set(searches) == set(EXPECTED_TRIALS)
    assert all(run.data.tags[PARENT] == comparison.info.run_id for run in searches.values())
    trials_per_search = Counter()
    for trial in grouped["trial"]:
        search = trial.data.tags[SEARCH]
        assert trial.data.tags[PARENT] == searches[search].info.run_id
        assert trial.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(trial.info.run_id, "val/score")]
        assert steps == list(range(1, epochs + 1)), f"{search} trial logged epochs {steps}"
        trials_per_search[search] += 1
    assert dict(trials_per_search) == EXPECTED_TRIALS
    trial_ids = [trial.data.tags[TRIAL_ID] for trial in grouped["trial"]]
    assert len(trial_ids) == len(set(trial_ids))
    return grouped


def test_sweep_logs_hierarchy_costs_and_table(small_sweep, tmp_path, capsys):
    """tests/small_sweep.py's sweep: its record in MLflow, its cost figures and its table."""
    state, uri, out = small_sweep.state, small_sweep.uri, small_sweep.out
    client = MlflowClient(uri)
    grouped = check_hierarchy(client, state)
    comparison = client.get_run(state.comparison_run_id)
    assert comparison.info.status == "FINISHED"

    artifacts = {item.path for item in client.list_artifacts(comparison.info.run_id)}
    assert {"cost_table.md", "cost_table.csv", "best_so_far.png", "weights_gradnorm.png",
            "recommended_weights_gradnorm.json", "pareto.png"} <= artifacts
    # the Pareto view: every search's best trial placed against the grid's front
    pareto = matplotlib.image.imread(client.download_artifacts(comparison.info.run_id, "pareto.png", str(tmp_path)))
    assert pareto.size > 0 and float(pareto[..., :3].std()) > 0.01
    local = client.download_artifacts(comparison.info.run_id, "cost_table.csv", str(tmp_path))
    with open(local, newline="") as handle:
        fronts = {row["search"]: row["front"] for row in csv.DictReader(handle)}
    assert set(fronts) == set(EXPECTED_TRIALS)
    assert fronts["grid"] in ("on front", "inside")
    assert set(fronts.values()) <= {"on front", "inside", "beyond"}
    assert "grid front" in out

    # cost figures, recomputed from the trial runs themselves
    metrics = comparison.data.metrics
    for search, count in EXPECTED_TRIALS.items():
        trials = [t for t in grouped["trial"] if t.data.tags[SEARCH] == search]
        compute = sum(t.data.metrics["compute_seconds"] for t in trials)
        best = min(min(m.value for m in client.get_metric_history(t.info.run_id, "val/score")) for t in trials)
        assert metrics[f"{search}/trials"] == count
        assert metrics[f"{search}/compute_seconds"] == pytest.approx(compute)
        assert metrics[f"{search}/best_val_score"] == pytest.approx(best)
        assert metrics[f"{search}/wall_seconds"] > 0

    # the recommended static weights: time average of the best GradNorm trial's step-mean weights
    gradnorm = [t for t in grouped["trial"] if t.data.tags[SEARCH] == "gradnorm"]
    best_trial = min(gradnorm, key=lambda t: min(m.value for m in client.get_metric_history(t.info.run_id, "val/score")))
    expected = [
        sum(m.value for m in client.get_metric_history(best_trial.info.run_id, f"weight/{task}/epoch_mean")) / EPOCHS
        for task in ("left", "right", "sum")
    ]
    local = client.download_artifacts(comparison.info.run_id, "recommended_weights_gradnorm.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == pytest.approx(expected)
    (recommended,) = [t for t in grouped["trial"] if t.data.tags[SEARCH] == "recommended_static"]
    assert json.loads(recommended.data.params["balancer.weights"]) == pytest.approx(expected, abs=1e-4)

    # the printed table: every search, the grid's full size, the comparison's numbers
    for search in EXPECTED_TRIALS:
        assert f"| {search}" in out
    assert "2 of 9 (sampled)" in out
    assert f"{metrics['grid/best_val_score']:.4f}" in out
    assert "recommended static weights" in out

    # `gradnorm-tune report` rebuilds the same table from MLflow alone
    from sweeps.cli import main

    capsys.readouterr()
    assert main(["report", str(state.directory)]) == 0
    rebuilt = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert [line for line in rebuilt.splitlines() if line.startswith("|")] == table
    # and the same answer: the paragraph the comparison run's description opens with
    answer = comparison.data.tags["mlflow.note.content"].split("\n\n")[0]
    assert answer.endswith(".") and answer in out and answer in rebuilt
    assert rebuilt.rstrip().splitlines()[-1].endswith(  # and links to it in MLflow (sweeps.links)
        f"/#/experiments/{state.experiment_id}/runs/{state.comparison_run_id}/artifacts/cost_table.md"
        "?workflowType=machine_learning")
    assert len(client.get_metric_history(state.comparison_run_id, "grid/compute_seconds")) == 1


def table_header(text: str) -> list[str]:
    return [cell.strip() for cell in text.strip().strip("|").split("|")]


def test_the_answer_is_where_users_look(small_sweep, tmp_path):
    """The Must-show of the answer: the comparison run's description states the winner and the alpha
    search's share of the sampled grid with a %; every search run carries its own numbers and spans
    its own trials; trial runs are named by their configuration; the alpha sweep's plot and the
    grid's cost by tasks are logged; the CSV projects the full grid; the headline fits 9 columns."""
    from sweeps.report import percent
    from trainables.run_names import trial_run_name

    state, uri, out = small_sweep.state, small_sweep.uri, small_sweep.out
    client = MlflowClient(uri)
    grouped = runs_by_role(client, state.experiment_id)
    comparison = client.get_run(state.comparison_run_id)
    with open(client.download_artifacts(comparison.info.run_id, "cost_table.csv", str(tmp_path)), newline="") as f:
        rows = {row["search"]: row for row in csv.DictReader(f)}

    # the answer, from the CSV's numbers: the lowest mean validation score, the alpha search's share
    paragraph = comparison.data.tags["mlflow.note.content"].split("\n\n")[0]
    scored = {name: float(row["best_val_score"]) for name, row in rows.items() if row["best_val_score"]}
    winner = min(scored, key=scored.get)
    assert paragraph.startswith(f"{winner} found the best validation score (lower is better): "
                                f"{scored[winner]:.4f}"), paragraph
    share = percent(float(rows["gradnorm"]["grid_samples_fraction"]))  # (the load does not move samples)
    full = percent(float(rows["gradnorm"]["full_grid_samples_fraction"]))
    cpu = percent(float(rows["gradnorm"]["grid_cpu_fraction"]))
    assert share.endswith("%") and (f"The alpha search gradnorm cost {share} of the sampled grid's samples processed "
                                    f"({cpu} of its CPU time;" in paragraph), paragraph
    assert f"{full} of the full grid's (projected: its 9 points at the mean cost of the 2 that ran)" in paragraph
    assert paragraph in out  # the sweep's last lines say it too
    line = client.get_experiment(state.experiment_id).tags["mlflow.note.content"]
    assert line.startswith(f"small: Best validation score: {winner} ") and share in line

    # every search run: its own numbers (the CSV's), from its first trial's start to its last one's end
    for run in grouped["search"]:
        search = run.data.tags[SEARCH]
        trials = [t for t in grouped["trial"] if t.data.tags[PARENT] == run.info.run_id]
        assert run.info.start_time == min(t.info.start_time for t in trials), search
        assert 0 <= run.info.end_time - max(t.info.end_time for t in trials) <= 1000, search
        metrics = run.data.metrics
        for key in ("best_val_score", "best_test_score", "compute_seconds", "cpu_seconds", "samples",
                    "wall_seconds", "grid_compute_fraction", "full_grid_compute_fraction", "grid_cpu_fraction"):
            assert metrics[key] == pytest.approx(float(rows[search][key])), (search, key)
        assert metrics["trials"] == EXPECTED_TRIALS[search] and metrics["failed"] == 0
        assert metrics["samples"] == EXPECTED_TRIALS[search] * EPOCHS * SMALL["problem"]["options"]["num_train"]
    # trial runs say what they are: their search and configuration, rounded (params keep it whole)
    for run in grouped["trial"]:
        params = run.data.params
        assert run.info.run_name == trial_run_name(run.data.tags[SEARCH], params["label"])
        if run.data.tags[SEARCH] == "gradnorm":
            assert run.info.run_name == f"gradnorm alpha={float(params['balancer.alpha']):.3g}"
        if run.data.tags[SEARCH] == "grid":
            weights = json.loads(params["balancer.weights"])
            assert run.info.run_name == "grid w=[" + ", ".join(f"{w:g}" for w in weights) + "]"

    artifacts = {item.path for item in client.list_artifacts(comparison.info.run_id)}
    assert {"alpha_vs_score.png", "grid_cost_by_tasks.png", "cost_table.json"} <= artifacts
    assert {"path": "cost_table.json", "type": "table"} in json.loads(comparison.data.tags["mlflow.loggedArtifacts"])
    # the full grid, projected: its 9 points at the mean compute of the 2 that ran
    grid = rows["grid"]
    assert grid["full_grid_projected"] == "True" and grid["points_ran"] == "2"
    assert float(grid["full_grid_compute_seconds"]) == pytest.approx(9 / 2 * float(grid["compute_seconds"]))
    assert float(grid["full_grid_samples"]) == 9 * EPOCHS * SMALL["problem"]["options"]["num_train"]
    # the cost table: a first line, then a headline of at most 9 columns
    table = Path(client.download_artifacts(comparison.info.run_id, "cost_table.md", str(tmp_path))).read_text()
    first, headline = table.split("\n\n")[:2]
    assert first.startswith("Scores: lower is better.") and winner in first
    assert len(table_header(headline.splitlines()[0])) <= 9


def test_a_record_written_under_the_earlier_names_is_reported_again(small_sweep, tmp_path):
    """A sweep recorded before this version: its trial metrics under the earlier names (``score``,
    ``best_score``, ``mean_weight/<task>``, ``avg_weight/<task>``), no CPU time or samples, no numbers
    on its search runs, no levels in sweep.json. ``report`` rebuilds the same comparison from it,
    its costs against the grid in wall-clock seconds, and gives the search runs their numbers."""
    import shutil
    import sqlite3

    copy = tmp_path / "copy"  # the store, its artifacts and the sweep's directory, moved
    shutil.copytree(small_sweep.directory, copy)
    (directory,) = (copy / "runs").iterdir()
    data = json.loads((directory / "sweep.json").read_text())
    for entry in data["searches"].values():
        entry.pop("levels", None)
    (directory / "sweep.json").write_text(json.dumps(data))
    uri = f"sqlite:///{copy / 'mlflow.db'}"
    roles = {run.info.run_id: run.data.tags[ROLE]
             for run in MlflowClient(uri).search_runs([small_sweep.state.experiment_id], max_results=100)}
    with sqlite3.connect(copy / "mlflow.db") as db:
        moved = (str(small_sweep.directory), str(copy))
        db.execute("update experiments set artifact_location = replace(artifact_location, ?, ?)", moved)
        db.execute("update runs set artifact_uri = replace(artifact_uri, ?, ?)", moved)
        for table in ("metrics", "latest_metrics"):
            for run_id, role in roles.items():
                if role != "trial":  # the comparison's and the searches' numbers: written again by report
                    db.execute(f"delete from {table} where run_uuid = ?", (run_id,))
            db.execute(f"delete from {table} where key in ('cpu_seconds', 'samples')")
            db.execute(f"update {table} set key = 'score' where key = 'val/score'")
            db.execute(f"update {table} set key = 'best_score' where key = 'best_val_score'")
            db.execute(f"update {table} set key = 'mean_weight/' || substr(key, 8, length(key) - 18) "
                       "where key like 'weight/%/epoch_mean'")
            db.execute(f"update {table} set key = 'avg_weight/' || substr(key, 8, length(key) - 20) "
                       "where key like 'weight/%/time_average'")
        names = {key for (key,) in db.execute("select distinct key from metrics")}
    assert {"score", "best_score", "mean_weight/left", "avg_weight/sum", "weight/sum"} <= names
    assert not names & {"val/score", "best_val_score", "cpu_seconds", "samples", "weight/left/epoch_mean"}

    def cost_table(path: Path) -> dict[str, dict]:
        with open(path, newline="") as handle:
            return {row["search"]: row for row in csv.DictReader(handle)}

    run = small_sweep.state.comparison_run_id
    expected = cost_table(MlflowClient(small_sweep.uri).download_artifacts(run, "cost_table.csv", str(tmp_path)))
    # the command itself, in a process of its own (MLflow keeps each run's artifact location per process)
    done = subprocess.run([sys.executable, "-m", "sweeps.cli", "report", str(directory), "--tracking-uri", uri],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stdout + done.stderr
    printed = done.stdout
    rows = cost_table(copy / "mlartifacts" / "small-sweep" / run / "artifacts" / "cost_table.csv")
    for search, row in expected.items():
        for key in ("best_val_score", "best_test_score", "best_config", "compute_seconds", "grid_compute_fraction",
                    "full_grid_compute_seconds", "test/sum/rmse", "front"):
            assert rows[search].get(key) == row.get(key), (search, key)
        assert not rows[search].get("cpu_seconds") and not rows[search].get("grid_samples_fraction")
    assert "of the sampled grid's wall-clock seconds" in printed
    for run in runs_by_role(MlflowClient(uri), small_sweep.state.experiment_id)["search"]:
        assert run.data.metrics["best_val_score"] == pytest.approx(float(rows[run.data.tags[SEARCH]]["best_val_score"]))


# a real training loop's settings: AdamW, a cosine schedule after a warm-up epoch, clipping, and
# validation every 2 epochs (epochs 2 and 3; the test split at the best and the last epoch)
TRAINING_LOOP = dict(SMALL["training"], epochs=3, optimizer="adamw", weight_decay=0.01, schedule="cosine",
                     warmup_epochs=1, clip_grad_norm=1.0, val_every=2)
LOOP_TRIALS = 4


def trial_records(client: MlflowClient, experiment: str) -> dict[tuple[str, str], dict]:
    """Every trial run of the experiment, by (search, label): its status and every metric's
    (epoch, value) points but the compute time."""
    records = {}
    for run in runs_by_role(client, client.get_experiment_by_name(experiment).experiment_id)["trial"]:
        key = (run.data.tags[SEARCH], run.data.params["label"])
        assert key not in records, f"trial {key} logged twice"
        records[key] = {"status": run.info.status} | {
            metric: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, metric))
            for metric in run.data.metrics if metric not in ("compute_seconds", "cpu_seconds")
        }
    return records


def test_interrupted_sweep_with_adamw_cosine_and_clipping_resumes_to_the_uninterrupted_records(
        local_ray, tmp_path, new_store):
    # MultiDigits (192 pairs, 3 steps an epoch) whose trials, in the killed sweep, wait at their
    # 4th step, the first of epoch 2, until the gate opens: without the gate, the same numbers
    gate = tmp_path / "gate"
    gate.mkdir()
    problem = {"name": "gated_problems:GatedDigits", "options": {"num_train": 192, "num_val": 64, "num_test": 64}}
    spec = dict(SMALL, problem=problem, training=TRAINING_LOOP, recommended_static=False,
                searches={"grid": {"type": "static_grid", "levels": [[1], [0.5, 1, 2], [1]]}, "equal": {"type": "equal"}})
    # the uninterrupted sweep
    uri = new_store(tmp_path / "whole.db")
    state = run_sweep(parse_spec(dict(spec, experiment="loop-whole"), "whole"), storage=tmp_path / "whole",
                      tracking_uri=uri)
    expected = trial_records(MlflowClient(uri), "loop-whole")
    assert len(expected) == LOOP_TRIALS
    for record in expected.values():
        assert record["status"] == "FINISHED"
        assert [step for step, _ in record["val/score"]] == [2, 3]  # val_every 2, and the last epoch
        assert [step for step, _ in record["train/left/loss"]] == [1, 2, 3]
        assert {2, 3} >= {step for step, _ in record["test/score"]} >= {3}  # at the best and the last
        assert [step for step, _ in record["best_val_score"]] == [2, 3]  # inf at epoch 1: not logged
    # the comparison reads the test score at the best validation epoch of the best trial
    metrics = MlflowClient(uri).get_run(state.comparison_run_id).data.metrics
    best = min((r for (search, _), r in expected.items() if search == "grid"), key=lambda r: min(v for _, v in r["val/score"]))
    epoch, score = min(best["val/score"], key=lambda point: point[1])
    assert metrics["grid/best_val_score"] == pytest.approx(score)
    assert metrics["grid/best_test_score"] == pytest.approx(dict(best["test/score"])[epoch])

    # the same sweep, its driver killed (SIGKILL to its process group: no clean-up at all) once a
    # trial has logged an epoch (mid-trial: it resumes from its checkpoint), while the two running
    # trials wait at the gate and the other two have not started; then resumed, the gate open
    uri = new_store(tmp_path / "interrupted.db")
    spec_file = tmp_path / "interrupted.yaml"
    gated = dict(problem, options=dict(problem["options"], gate=str(gate), at=4))
    spec_file.write_text(yaml.safe_dump(dict(spec, problem=gated, experiment="loop-interrupted")))
    driver = subprocess.Popen(
        [sys.executable, "-m", "sweeps.cli", "sweep", str(spec_file), "--storage", str(tmp_path / "interrupted"),
         "--tracking-uri", uri, "--checkpoint-seconds", "0"],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")])),
        start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    client = MlflowClient(uri)
    deadline, started = time.time() + 240, False
    try:
        while time.time() < deadline and not started:
            time.sleep(0.2)
            try:
                experiment = client.get_experiment_by_name("loop-interrupted")
                runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{ROLE}` = 'trial'")
            except Exception:  # noqa: BLE001 - the database is being created
                continue
            started = any("compute_seconds" in run.data.metrics for run in runs)
        assert driver.poll() is None, driver.stdout.read()
        os.killpg(driver.pid, signal.SIGKILL)
        output, _ = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == -signal.SIGKILL, output
    assert len(trial_records(client, "loop-interrupted")) < LOOP_TRIALS  # mid-sweep: some had not started
    (directory,) = list((tmp_path / "interrupted").iterdir())
    open_gate(gate)
    resume_sweep(directory)
    # every trial once, finished, with the same numbers at every epoch as without the interrupt
    assert trial_records(client, "loop-interrupted") == expected
