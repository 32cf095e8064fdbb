"""The example user project, examples/digit_scale (its own pyproject.toml, not part of
gradnorm-tune): the documentation (docs/own-model.md) shows its problem file and spec as they are, its problem follows the
public interface (cheap construction, streamed Datasets, W a choice of module path), and its spec
sweeps it through the CLI on a local Ray with the code shipped by ``runtime_env.working_dir``.

The tests that train need the MNIST files (``gradnorm-tune data mnist``) and skip without them,
as tests/test_multimnist.py::test_real_mnist_if_present does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from torch.utils.data import Dataset

from gradnorm_core import default_cache_dir, fit, make_balancer, make_problem, problem_tasks
from gradnorm_core.data.mnist import FILES, load_mnist
from gradnorm_core.problems import ENTRY_POINT_GROUP, Problem, Split
from sweeps.spec import load_spec
from trainables import ROLE, SEARCH

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digit_scale"
PROBLEM_FILE = EXAMPLE / "digit_scale" / "problem.py"
SPEC_FILE = EXAMPLE / "sweep.yaml"
PACKAGE = "digit_scale"
NAME = f"{PACKAGE}.problem:DigitScale"
BIN = Path(sys.executable).parent


def docs_page() -> str:
    return (ROOT / "docs" / "own-model.md").read_text()


@pytest.fixture
def example(monkeypatch):
    """The example's package importable in this process (as from its working_dir), forgotten after."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    yield __import__(f"{PACKAGE}.problem", fromlist=["DigitScale"])
    for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]


@pytest.fixture
def mnist() -> dict[str, np.ndarray]:
    directory = default_cache_dir()
    try:
        data = load_mnist(directory)
    except FileNotFoundError:
        pytest.skip(f"MNIST not found in {directory}; run gradnorm-tune data mnist")
    if not all((directory / name).is_file() for name in FILES.values()):  # the example maps plain files
        pytest.skip(f"MNIST in {directory} is gzipped; run gradnorm-tune data mnist")
    return data


# ---------------------------------------------------------------- the docs show the real files


def test_the_docs_show_the_example_problem_file_spec_and_commands_as_they_are():
    """The page includes the files themselves (pymdownx.snippets; a missing file fails the build)."""
    page = docs_page()
    for language, path in (("python", PROBLEM_FILE), ("yaml", SPEC_FILE)):
        assert f'```{language}\n--8<-- "{path.relative_to(ROOT)}"\n```' in page
    assert "gradnorm-tune sweep examples/digit_scale/sweep.yaml\n" in page
    assert ("gradnorm-tune submit examples/digit_scale/sweep.yaml --address http://head:8265 "
            "--storage s3://my-bucket/runs\n") in page


def test_its_pyproject_is_its_own_and_registers_the_problem_by_name():
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    assert project["name"] == "digit-scale-example" and "gradnorm-tune" in project["dependencies"]
    assert project["entry-points"][ENTRY_POINT_GROUP] == {"digit_scale": NAME}
    main = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert not any("examples" in p or PACKAGE in p for p in main["tool"]["setuptools"]["packages"]["find"]["include"])


# ---------------------------------------------------------------- the problem, without data


def test_construction_reads_nothing_and_bad_options_fail_on_construction(example, tmp_path):
    problem = make_problem(NAME, data_dir=str(tmp_path / "nowhere"))
    assert isinstance(problem, Problem) and problem.task_names == ("digit", "ink")
    assert problem_tasks(NAME, num_train=10) == ("digit", "ink")
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte not found; run `gradnorm-tune data mnist`"):
        problem.train
    with pytest.raises(ValueError, match="num_train"):
        example.DigitScale(num_train=59000, num_val=2000)
    model = problem.build_model(seed=3)
    assert isinstance(model.get_submodule(problem.shared_layer), torch.nn.Linear)
    assert isinstance(model.get_submodule("trunk.3"), torch.nn.Conv2d)  # the spec's alternative W
    outputs = model(torch.zeros(5, 1, 28, 28))
    assert [tuple(o.shape) for o in outputs] == [(5, 10), (5, 1)]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 problem.build_model(seed=3).state_dict().values()))


def test_the_spec_names_the_problem_and_ships_its_folder(tmp_path):
    spec = load_spec(SPEC_FILE)
    assert spec.task_names == ["digit", "ink"] and spec.raw["problem"]["name"] == NAME
    assert spec.runtime_env == {"working_dir": str(EXAMPLE)}
    assert [s.type for s in spec.searches] == ["gradnorm", "static_grid", "equal"]
    assert PACKAGE not in sys.modules  # the driver imported it for the task names only
    # the alternative W the spec shows, uncommented: the last Conv2d
    project = shutil.copytree(EXAMPLE, tmp_path / "project", ignore=shutil.ignore_patterns("__pycache__"))
    text = SPEC_FILE.read_text()
    assert text.count("  # shared_layer: trunk.3 ") == 1
    (project / "sweep.yaml").write_text(text.replace("  # shared_layer: trunk.3 ", "  shared_layer: trunk.3   "))
    assert load_spec(project / "sweep.yaml").raw["problem"]["shared_layer"] == "trunk.3"


# ---------------------------------------------------------------- with MNIST


def test_items_stream_from_the_idx_files_through_a_dataloader(example, mnist, monkeypatch):
    problem = example.DigitScale(num_train=96, num_val=32, num_test=32, seed=1)
    train, val, test = problem.train, problem.val, problem.test
    for split, size in ((train, 96), (val, 32), (test, 32)):
        assert isinstance(split, Dataset) and not isinstance(split, Split) and len(split) == size
        assert all(isinstance(array, np.memmap) for array in split.arrays)  # mapped, not read into memory
    assert not set(train.indices.tolist()) & set(val.indices.tolist())
    x, (digit, ink) = train[5]
    j = train.indices[5]
    np.testing.assert_allclose(x[0].numpy(), mnist["train_images"][j] / 255, rtol=1e-6)
    assert digit.item() == mnist["train_labels"][j] and digit.dtype == torch.int64
    assert ink.shape == (1,) and ink.item() == pytest.approx(mnist["train_images"][j].sum() / 255, rel=1e-5)
    x, (digit, _) = test[0]
    assert digit.item() == mnist["test_labels"][test.indices[0]]

    labels = mnist["train_labels"][train.indices]
    inks = mnist["train_images"][train.indices].reshape(96, -1).sum(1) / 255
    digit_chance, ink_chance = problem.chance_losses()
    counts = np.bincount(labels) / 96
    assert digit_chance == pytest.approx(-(counts[counts > 0] * np.log(counts[counts > 0])).sum())
    assert ink_chance == pytest.approx(inks.var()) and ink_chance > 100 * digit_chance

    reads: Counter = Counter()
    read = type(train).__getitem__
    monkeypatch.setattr(type(train), "__getitem__", lambda self, i: (reads.update([id(self)]), read(self, i))[1])
    for shared_layer, fast in ((None, True), ("trunk.3", False)):
        reads.clear()
        model = problem.build_model(seed=0)
        balancer = make_balancer("gradnorm", 2, model=model, alpha=1.5,
                                 shared_layer=shared_layer or problem.shared_layer)
        assert balancer.uses_branch is fast  # the Linear: the fast path; the Conv2d: the exact plain one
        (record,) = list(fit(problem, balancer, model=model, epochs=1, batch_size=32, lr=2e-3, device="cpu"))
        assert reads[id(train)] == 96 and reads[id(val)] == 32  # item by item, each once: a DataLoader
        assert record.weights != [1.0, 1.0] and set(record.test) >= {"digit/accuracy", "ink/rmse", "score"}


def trial_runs(uri: str, experiment: str) -> list:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], filter_string=f"tags.`{ROLE}` = 'trial'", max_results=100)


def test_the_example_spec_sweeps_through_the_cli_with_its_code_shipped(mnist, tmp_path, new_store):
    """The example copied outside the repository (a user's project, on no Python path), its spec
    shrunk to seconds, swept by ``gradnorm-tune sweep`` on the local Ray the CLI starts."""
    project = shutil.copytree(EXAMPLE, tmp_path / "project", ignore=shutil.ignore_patterns("__pycache__"))
    spec = yaml.safe_load(SPEC_FILE.read_text())
    assert spec["runtime_env"] == {"working_dir": "."}
    spec["experiment"] = "example-project"
    spec["problem"]["options"].update(num_train=64, num_val=32, num_test=32)
    spec["training"].update(epochs=1, batch_size=32)
    spec["searches"]["gradnorm"]["num_trials"] = 1  # a trial of each search: 4 in all
    spec["searches"]["static_grid"]["max_trials"] = 1
    (project / "sweep.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    uri = new_store(tmp_path / "mlflow.db")
    env = {**os.environ, "RAY_ADDRESS": "", "PYTHONPATH": ""}
    done = subprocess.run(
        [str(BIN / "gradnorm-tune"), "sweep", str(project / "sweep.yaml"), "--storage", str(tmp_path / "runs"),
         "--tracking-uri", uri],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = trial_runs(uri, "example-project")
    assert [run.info.status for run in runs] == ["FINISHED"] * 4, [(r.data.tags.get(SEARCH), r.info.status) for r in runs]
    assert Counter(run.data.tags[SEARCH] for run in runs) == {"gradnorm": 1, "static_grid": 1, "equal": 1,
                                                              "recommended_static": 1}
