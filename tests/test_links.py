"""The links into the MLflow UI that a sweep's last lines, ``report`` and ``train`` print
(``sweeps.links``): the UI's address for each kind of tracking URI, never with credentials, and the
pages (the experiment's runs, the comparison run's Overview with the answer, its cost table's
preview) in MLflow 3's model-training view. What they
show in the UI is checked in headless Chromium by tests/test_dashboard.py."""

from __future__ import annotations

import pytest

from sweeps.cli import main
from sweeps.links import run_link, runs_link, ui_base, ui_lines


@pytest.mark.parametrize("uri,base", [
    ("sqlite:////home/me/mlflow.db", "http://127.0.0.1:5000"),
    ("file:///home/me/mlruns", "http://127.0.0.1:5000"),
    ("./mlruns", "http://127.0.0.1:5000"),
    ("http://mlflow:5000", "http://mlflow:5000"),
    ("https://sweep:s3cret@tracking.example.org/mlflow/", "https://tracking.example.org/mlflow"),
    ("http://[::1]:5000", "http://[::1]:5000"),
])
def test_the_ui_address_of_each_store_without_credentials(uri, base):
    assert ui_base(uri) == base
    assert runs_link(uri, "7") == f"{base}/#/experiments/7/runs?workflowType=machine_learning"
    assert run_link(uri, "7", "abc") == f"{base}/#/experiments/7/runs/abc/artifacts?workflowType=machine_learning"
    assert run_link(uri, "7", "abc", tab="") == f"{base}/#/experiments/7/runs/abc?workflowType=machine_learning"
    assert run_link(uri, "7", "abc", tab="artifacts/cost_table.md") == (
        f"{base}/#/experiments/7/runs/abc/artifacts/cost_table.md?workflowType=machine_learning")
    assert not any("s3cret" in line for line in ui_lines(uri, "7", "abc"))


def test_a_local_store_says_how_to_start_its_ui_on_the_address_the_links_use():
    lines = ui_lines("sqlite:////home/me/mlflow.db", "3", "r1")
    assert lines == [
        "browse it: mlflow ui --backend-store-uri sqlite:////home/me/mlflow.db --host 127.0.0.1 --port 5000  "
        "then open http://127.0.0.1:5000, or:",
        "  MLflow, the experiment's runs: http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning",
        "  MLflow, this sweep's answer (the comparison run): "
        "http://127.0.0.1:5000/#/experiments/3/runs/r1?workflowType=machine_learning",
        "  MLflow, cost_table.md: "
        "http://127.0.0.1:5000/#/experiments/3/runs/r1/artifacts/cost_table.md?workflowType=machine_learning",
    ]
    assert ui_lines("http://mlflow:5000") == ["browse it: open http://mlflow:5000"]
    # quoted for the shell: a path with a space pasted into bash stays one argument
    (line,) = ui_lines("sqlite:////home/me/my runs/mlflow.db")
    assert "mlflow ui --backend-store-uri 'sqlite:////home/me/my runs/mlflow.db' --host" in line


def test_train_prints_the_link_to_its_run(tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["train", "--problem", "toy_t2", "--method", "equal", "--epochs", "1", "--tracking-uri", uri,
                 "--experiment", "links", "--device", "cpu"]) == 0
    out = capsys.readouterr().out.rstrip().splitlines()
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("links")
    (run,) = client.search_runs([experiment.experiment_id])
    assert out[-1] == (f"  MLflow, this run (its metrics and weights): http://127.0.0.1:5000/#/experiments/"
                       f"{experiment.experiment_id}/runs/{run.info.run_id}?workflowType=machine_learning")
