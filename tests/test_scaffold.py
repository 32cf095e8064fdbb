"""``gradnorm-tune init NAME``: a new user's problem and sweep from the templates, and the README's
walk-through (init, check, sweep) run as written, through the command line: init and check through
its entry point in this process (the check's report as docs/own-model.md shows it), the sweep as
the installed ``gradnorm-tune`` command, on the local Ray it starts with the spec's runtime_env,
shrunk to 2 trials.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from servers import kill_session, session_alive, wait_until
from sweeps.cli import main
from trainables import ROLE

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECTION = "## Your own model in a sweep"


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start:] if end < 0 else text[start:end]


def walk_through() -> list[list[str]]:
    """The commands of the section's first bash block, comments left out."""
    block = re.findall(r"```bash\n(.*?)```", readme_section(), flags=re.DOTALL)[0]
    return [line.split("#")[0].split() for line in block.splitlines() if line.strip()]


def run(command: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """A README command as the installed command, in a session of its own; once it has exited,
    nothing it started (its local Ray's processes included) may be left running (a Ray worker
    exits on its own once its raylet is gone: waited for, up to a bound)."""
    assert command[0] == "gradnorm-tune", command
    env = {**os.environ, "RAY_ADDRESS": "", "PYTHONPATH": str(ROOT)}  # this checkout's code
    env.pop("MLFLOW_TRACKING_URI", None)
    with subprocess.Popen([str(BIN / "gradnorm-tune"), *command[1:]], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        finally:
            try:
                wait_until(lambda: not session_alive(process.pid), 60, f"the processes {command[:2]} started to exit")
            finally:
                kill_session(process.pid)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def normalized(report: str) -> list[str]:
    """A check's report without what changes from run to run: where it ran, the numbers."""
    lines = [line for line in report.strip().splitlines() if not line.startswith("  ran on:")]
    lines = [re.sub(r"~?\d[\d,.]*\s*(ms|s|min|h)\b", "T", line) for line in lines]
    return [" ".join(re.sub(r"\d[\d,.]*", "N", line).split()) for line in lines]


def run_here(command: list[str], capsys) -> tuple[int, str, str]:
    """A README command through the command line's entry point (``sweeps.cli.main``), in this
    process: its exit status, stdout and stderr."""
    assert command[0] == "gradnorm-tune", command
    capsys.readouterr()
    code = main(command[1:])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_readme_walk_through_init_check_and_a_2_trial_sweep(tmp_path, monkeypatch, capsys):
    init, check, sweep = walk_through()
    assert init[:2] == ["gradnorm-tune", "init"] and check[:2] == ["gradnorm-tune", "check"]
    assert sweep[:2] == ["gradnorm-tune", "sweep"]
    monkeypatch.chdir(tmp_path)
    code, out, err = run_here(init, capsys)
    assert code == 0, err
    name = init[2]
    assert sorted(path.name for path in (tmp_path / name).iterdir()) == [f"{name}.py", "sweep.yaml"]
    assert f"next: gradnorm-tune check {name}/sweep.yaml, then gradnorm-tune sweep {name}/sweep.yaml" in out

    code, out, err = run_here(check, capsys)
    assert code == 0, out[-3000:] + err[-3000:]
    page = (ROOT / "docs" / "own-model.md").read_text()
    shown = re.findall(r"```text\n(check of .*?)```", page, flags=re.DOTALL)[0]
    assert normalized(out) == normalized(shown), out  # the report the docs show, but for the numbers
    assert f"  ran on: host {os.uname().nodename}, pid {os.getpid()}, " in out
    assert f", in {tmp_path / name}, device cpu" in out  # in the shipped working_dir
    assert name not in sys.modules  # the check imported the user's module as a worker would, and forgot it

    # the sweep as written, shrunk to 2 trials of 2 epochs (GradNorm at one alpha, equal weights)
    path = tmp_path / name / "sweep.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["problem"]["options"].update(num_train=256, num_val=64, num_test=64)
    spec["training"]["epochs"] = 2
    spec["searches"] = {"gradnorm": {"type": "gradnorm", "alpha": [1.0]}, "equal": {"type": "equal"}}
    spec["recommended_static"] = False
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    done = run(sweep + ["--storage", str(tmp_path / "runs")], tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")  # the default store: ./mlflow.db
    experiment = client.get_experiment_by_name(name)
    trials = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{ROLE}` = 'trial'")
    assert sorted(run.info.status for run in trials) == ["FINISHED", "FINISHED"]
    (comparison,) = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{ROLE}` = 'comparison'")
    # the comparison, built while the command's Ray stopped, is whole
    assert comparison.info.status == "FINISHED"
    artifacts = {artifact.path for artifact in client.list_artifacts(comparison.info.run_id)}
    assert {"cost_table.md", "cost_table.csv", "best_so_far.png", "pareto.png"} <= artifacts, artifacts
    last = done.stdout.rstrip().splitlines()[-4:]
    assert last[0].startswith(f"browse it: mlflow ui --backend-store-uri sqlite:///{tmp_path / 'mlflow.db'} ")
    eid, run_id = experiment.experiment_id, comparison.info.run_id
    assert last[1] == f"  MLflow, the experiment's runs: http://127.0.0.1:5000/#/experiments/{eid}/runs?" \
                      "workflowType=machine_learning"
    assert last[2].endswith(f"/#/experiments/{eid}/runs/{run_id}?workflowType=machine_learning")  # the answer
    assert last[3].endswith(f"/#/experiments/{eid}/runs/{run_id}/artifacts/cost_table.md?workflowType=machine_learning")


def test_every_field_of_the_spec_and_the_problem_is_commented(tmp_path, capsys):
    assert main(["init", "rings", "--dir", str(tmp_path)]) == 0
    spec = (tmp_path / "rings" / "sweep.yaml").read_text()
    keys = [line for line in spec.splitlines() if re.match(r"^\s*[a-z_]+:", line)]
    assert len(keys) >= 20 and all("#" in line for line in keys), [line for line in keys if "#" not in line]
    module = ast.parse((tmp_path / "rings" / "rings.py").read_text())
    assert ast.get_docstring(module)
    (cls,) = [node for node in module.body if isinstance(node, ast.ClassDef)]
    assert cls.name == "Rings"
    methods = [node for node in cls.body if isinstance(node, ast.FunctionDef)]
    assert {m.name for m in methods} >= {"__init__", "load_data", "build_model", "task_losses", "metrics",
                                         "chance_losses"}
    assert all(ast.get_docstring(m) for m in methods), [m.name for m in methods if not ast.get_docstring(m)]
    lines = (tmp_path / "rings" / "rings.py").read_text().splitlines()
    for node in cls.body:  # each class attribute: a comment on its line or the lines above it
        if isinstance(node, ast.Assign):
            above = lines[node.lineno - 4:node.lineno]
            assert any("#" in line for line in above), lines[node.lineno - 1]
    assert "EDIT" in ast.get_docstring(methods[1]) and "EDIT" in ast.get_docstring(methods[2])
    # the search types its comments name are ones the spec takes (the former equal_lr is not)
    from sweeps.searches import SEARCH_TYPES

    (listed,) = re.findall(r"# the search's type: ([a-z_, ]+)", spec)
    named = [name.strip() for name in listed.split(",") if name.strip()]
    assert len(named) >= 5 and not set(named) - set(SEARCH_TYPES), named


EDITED = '''
TASKS = {"total": "regression", "largest": "classification", "positive": "binary"}
'''
EDITED_METHODS = '''
    def load_data(self):
        """Three tasks now: the sum, the largest of the first three, and whether the first is positive."""
        generator = torch.Generator().manual_seed(self.seed)
        splits = []
        for size in self.sizes:
            x = torch.rand(size, 6, generator=generator) * 2 - 1
            targets = (x.sum(dim=1, keepdim=True), x[:, :3].argmax(dim=1), (x[:, :1] > 0).float())
            splits.append(Split(x, targets))
        return tuple(splits)

    def build_model(self, seed=0):
        """A deeper trunk; W its last Linear."""
        with seeded_init(seed):
            trunk = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(),
                                  nn.Linear(32, 16), nn.ReLU())
            return MultiHeadNet(trunk, [nn.Linear(16, 1), nn.Linear(16, 3), nn.Linear(16, 1)])

'''


def test_a_user_edits_the_two_methods_and_the_check_follows(tmp_path, monkeypatch, capsys):
    """TASKS, load_data and build_model edited (a binary third task, another trunk): the losses,
    metrics and chance losses follow the kinds, and the check passes on the new problem."""
    monkeypatch.chdir(tmp_path)
    assert main(["init", "tri"]) == 0
    problem = tmp_path / "tri" / "tri.py"
    text = problem.read_text()
    text = re.sub(r"^TASKS = .*$", EDITED.strip(), text, count=1, flags=re.MULTILINE)
    start, end = text.index("    def load_data(self):"), text.index("    def task_losses(")
    text = text[:start] + EDITED_METHODS.lstrip("\n") + text[end:]
    text = text.replace('shared_layer = "trunk.2"', 'shared_layer = "trunk.4"')
    problem.write_text(text)
    spec = yaml.safe_load((tmp_path / "tri" / "sweep.yaml").read_text())
    spec["problem"]["options"].update(num_train=256, num_val=64, num_test=64)
    (tmp_path / "tri" / "sweep.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    capsys.readouterr()
    assert main(["check", "tri/sweep.yaml"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "  tasks: 3: total (regression), largest (classification), positive (classification)\n" in out
    assert "  GradNorm's W: trunk.4 (Linear, 528 parameters): fast path" in out
    assert "targets (64, 1), (64,), (64, 1)" in out
    assert " 27 trial(s)" in out  # the static grid: 3 levels, 3 tasks


@pytest.mark.parametrize("name,expected", [
    ("2rings", "init: '2rings' is not a Python module name; give a Python name"),
    ("class", "init: 'class' cannot name a module (a keyword or a private name)"),
    ("numpy", "init: 'numpy' is the name of a module Python already imports"),
    ("taken", "init: {dir}/taken exists; choose another name or --dir (nothing is overwritten)"),
])
def test_a_bad_name_or_a_taken_folder_is_one_line_and_writes_nothing(name, expected, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("kept")
    before = sorted(str(path) for path in tmp_path.rglob("*"))
    assert main(["init", name, "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gradnorm-tune: error: {expected.format(dir=tmp_path)}") and err.count("\n") == 1, err
    assert sorted(str(path) for path in tmp_path.rglob("*")) == before
    assert (tmp_path / "taken" / "mine.txt").read_text() == "kept"
