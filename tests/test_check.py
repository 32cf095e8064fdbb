"""``gradnorm-tune check SPEC``: a user's problem tried on one batch of every method before a sweep.

A good problem gives a report whose numbers are checked against the model itself; each kind of
mistake, one deliberately broken problem each, exits 2 with one line naming the problem's method
or the spec's field and the fix, with no Ray started and no MLflow store created. The problem's
package is written outside the repository, on no Python path, and shipped by the spec's
``runtime_env.working_dir`` (as tests/test_user_problems.py does for a sweep). The check on a
cluster runs as one Ray task on a local Ray of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from sweeps.cli import main

BIN = Path(sys.executable).parent
MODULE = "rings_problem"

RINGS = '''
"""Rings: random points in the plane; their radius (regression) and their quadrant (4 classes)."""

import torch
from torch import nn
from torch.nn import functional as F

from gradnorm_core import ErrorRate, Metrics, MultiHeadNet, NormalizedMSE, Problem, Split, seeded_init


class Rings(Problem):
    name = "rings"
    task_names = ("radius", "quadrant")
    shared_layer = "trunk.2"

    def __init__(self, num_train=64, num_val=32, num_test=32, seed=0):
        self.sizes, self.seed = (num_train, num_val, num_test), seed

    def load_data(self):
        generator = torch.Generator().manual_seed(self.seed)
        splits = []
        for size in self.sizes:
            x = torch.randn(size, 2, generator=generator)
            radius = x.norm(dim=1, keepdim=True)
            quadrant = (x[:, 0] > 0).long() * 2 + (x[:, 1] > 0).long()
            splits.append(Split(x, (radius, quadrant)))
        return tuple(splits)

    def build_model(self, seed=0):
        with seeded_init(seed):
            trunk = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU())
            return MultiHeadNet(trunk, [nn.Linear(16, 1), nn.Linear(16, 4)])

    def task_losses(self, outputs, targets):
        return torch.stack([F.mse_loss(outputs[0], targets[0]), F.cross_entropy(outputs[1], targets[1])])

    def metrics(self):
        return Metrics([NormalizedMSE("radius", 0), ErrorRate("quadrant", 1)])
'''


def write_spec(folder: Path, code: str = RINGS, name: str = f"{MODULE}:Rings", **changes) -> Path:
    """The problem's module in ``folder/code`` and a spec shipping that folder; ``changes``
    replace top-level keys of the spec (``searches``, ...)."""
    (folder / "code").mkdir(parents=True, exist_ok=True)
    (folder / "code" / f"{MODULE}.py").write_text(textwrap.dedent(code))
    spec = {
        "name": "rings",
        "problem": {"name": name, "options": {"num_train": 64, "num_val": 32, "num_test": 32}},
        "runtime_env": {"working_dir": "code"},
        "training": {"epochs": 2, "batch_size": 16, "lr": 0.01, "seed": 0, "device": "cpu"},
        "searches": {"gradnorm": {"type": "gradnorm", "alpha": [1.0, 2.0]}, "equal": {"type": "equal"}},
        "recommended_static": False,
        **changes,
    }
    path = folder / "rings.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A working directory of its own (where an MLflow store would appear), MLflow pointed there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


def ray_running() -> bool:
    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


def test_a_good_problem_gives_its_report(place, capsys):
    path = write_spec(place, searches={"gradnorm": {"type": "gradnorm", "alpha": {"low": 0.5, "high": 2.0},
                                                    "num_trials": 3},
                                       "grid": {"type": "static_grid", "levels": [1, 2]},
                                       "equal": {"type": "equal"}, "mgda": {"type": "mgda"},
                                       "rlw": {"type": "rlw", "repeats": 2}}, recommended_static=True)
    ray_before = ray_running()
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    sys.path.insert(0, str(place / "code"))
    try:
        rings = __import__(MODULE).Rings()
        model = rings.build_model(0)
    finally:
        sys.path.remove(str(place / "code"))
        del sys.modules[MODULE]
    parameters = sum(p.numel() for p in model.parameters())  # 2*16+16 + 16*16+16 + 16+1 + 16*4+4 = 405
    assert parameters == 405
    assert f"  model: MultiHeadNet, {parameters:,} parameters\n" in out, out
    assert "  tasks: 2: radius (regression), quadrant (classification)\n" in out
    assert "  data: train 64, val 32, test 32 items; first batch: x (16, 2), targets (16, 1), (16,)\n" in out
    assert "  GradNorm's W: trunk.2 (Linear, 272 parameters): fast path, one backward pass per step\n" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("    ")}
    assert set(lines) == {"gradnorm", "grid", "equal", "static", "mgda", "rlw"}, out
    assert " 1 trial(s)" in lines["mgda"] and " 2 trial(s)" in lines["rlw"]
    assert " 3 trial(s) of ~" in lines["gradnorm"] and "(alpha=0.5)" in lines["gradnorm"]  # the range's low end
    assert " 4 trial(s)" in lines["grid"] and " 1 trial(s)" in lines["equal"] and " 1 trial(s)" in lines["static"]
    assert "estimated compute of the sweep: 12 trials x 2 epochs" in out
    assert out.rstrip().endswith(f"no mistake found: gradnorm-tune sweep {path}")
    # it ran in the shipped working_dir, as a worker does; nothing of it is left in this process
    assert f", in {place / 'code'}, device cpu\n" in out and os.getcwd() == str(place) and MODULE not in sys.modules
    assert ray_running() == ray_before and not (place / "mlflow.db").exists()


def replaced(old: str, new: str, code: str = RINGS) -> str:
    assert old in code, old
    return code.replace(old, new)


LOSS = "F.mse_loss(outputs[0], targets[0]), F.cross_entropy(outputs[1], targets[1])"
CHANCE = '''
    def chance_losses(self):
        return [1.0]
'''
PLAIN = '''
from torch import nn


class Plain(nn.Module):
    """Two heads on a trunk, without MultiHeadNet's last_shared_layer or its branch= argument."""

    def __init__(self, trunk, heads):
        super().__init__()
        self.trunk, self.heads = trunk, nn.ModuleList(heads)

    def forward(self, x):
        features = self.trunk(x)
        return [head(features) for head in self.heads]
'''
MISTAKES = {
    "module that does not import": (
        {"code": "import rings_missing_dependency\n" + RINGS},
        "problem.name: cannot import module 'rings_problem' of problem 'rings_problem:Rings' (ModuleNotFoundError: "
        "No module named 'rings_missing_dependency'); install 'rings_missing_dependency' where the trials run"),
    "misspelled module": (
        {"name": "ring_problem:Rings"},
        "problem.name: cannot import module 'ring_problem' of problem 'ring_problem:Rings' (ModuleNotFoundError: No "
        "module named 'ring_problem'); did you mean 'rings_problem'? fix problem.name: the working_dir {code} has no "
        "module 'ring_problem' (its modules: rings_problem)"),
    "misspelled class": (
        {"name": "rings_problem:Ring"},
        "problem.name: module 'rings_problem' has no attribute 'Ring' (problem 'rings_problem:Ring'); did you mean "
        "'Rings'? Problem classes in it: Rings"),
    "shared layer not in the model": (
        {"code": replaced('shared_layer = "trunk.2"', 'shared_layer = "trunk.9"')},
        "problem.shared_layer: problem 'rings_problem:Rings' sets shared_layer 'trunk.9': no module 'trunk.9' in the "
        "model"),
    "shared layer that is a head": (
        {"code": replaced('shared_layer = "trunk.2"', 'shared_layer = "heads.0"')},
        "Rings.shared_layer: 'heads.0' (Linear) is not shared: task 'quadrant''s loss does not depend on it; name the "
        "last layer that every task's output goes through"),
    "losses of the wrong shape": (
        {"code": replaced(LOSS, 'F.mse_loss(outputs[0], targets[0], reduction="none").squeeze(1), '
                                'F.cross_entropy(outputs[1], targets[1], reduction="none")')},
        "Rings.task_losses: returned shape (2, 16); return shape (2,): one loss per task, each a mean over the batch"),
    "losses as a list": (
        {"code": replaced(f"torch.stack([{LOSS}])", f"[{LOSS}]")},
        "Rings.task_losses: returned a list; return the 2 losses as one tensor: torch.stack([loss_1, ..., loss_2])"),
    "a target broadcast against its output": (
        {"code": replaced("radius = x.norm(dim=1, keepdim=True)", "radius = x.norm(dim=1)")},
        "Rings.task_losses: task 'radius': its loss broadcast the target (16,) against the output (16, 1) to (16, 16) "
        "on the first batch (it compares every output with every target); give the output and its target the same "
        "shape (e.g. the target as (16, 1)"),
    "a target broadcast in a loss written by hand": (  # no torch warning here
        {"code": replaced("F.mse_loss(outputs[0], targets[0])", "((outputs[0] - targets[0]) ** 2).mean()",
                          replaced("radius = x.norm(dim=1, keepdim=True)", "radius = x.norm(dim=1)"))},
        "Rings.task_losses: task 'radius': its loss broadcast the target (16,) against the output (16, 1) to (16, 16) "
        "on the first batch"),
    "a non-finite loss": (
        {"code": replaced("F.mse_loss(outputs[0], targets[0])",
                          "F.mse_loss(outputs[0], targets[0].log() - 1e9 * 1e300)")},
        "Rings.task_losses: task 'radius''s loss is inf on the first train batch; fix the loss or the data of task "
        "'radius'"),
    "a model with one output for two tasks": (
        {"code": replaced("[nn.Linear(16, 1), nn.Linear(16, 4)]", "[nn.Linear(16, 1)]")},
        "Rings.build_model: the model's forward returned 1 output(s) for 2 tasks; return one output per task"),
    "metrics missing a task's normalized error": (
        {"code": replaced('Metrics([NormalizedMSE("radius", 0), ErrorRate("quadrant", 1)])',
                          'Metrics([NormalizedMSE("radius", 0)])')},
        "Rings.metrics: compute() has no 'quadrant/normalized_error' (it has: radius/rmse, radius/normalized_error); "
        "add a metric of task 'quadrant' giving its normalized error"),
    "load_data that raises": (
        {"code": replaced("generator = torch.Generator().manual_seed(self.seed)",
                          "raise FileNotFoundError('/data/rings.npy not found')")},
        "Rings.load_data: raised FileNotFoundError: /data/rings.npy not found; fix load_data"),
    "an empty split": (
        {"options": {"num_train": 64, "num_val": 0, "num_test": 32}},
        "Rings.load_data: the val split is empty; give every split items"),
    "an option the method refuses, without data": (
        {"searches": {"gradnorm": {"type": "gradnorm", "alpha": [1.0], "initial_losses": "chance"}}},
        "searches.gradnorm: method 'gradnorm': initial_losses: 'chance' needs problem 'rings' does not define "
        "chance_losses(): override Problem.chance_losses()"),
    "an option the method refuses, with the data": (
        {"code": RINGS + CHANCE,
         "searches": {"gradnorm": {"type": "gradnorm", "alpha": [1.0], "initial_losses": "chance"}}},
        "searches.gradnorm: method 'gradnorm': initial_losses: problem 'rings''s chance_losses() returned 1 values "
        "for 2 tasks"),
    "a method the model cannot take": (
        {"code": replaced("return MultiHeadNet(trunk, [nn.Linear(16, 1), nn.Linear(16, 4)])",
                          "return Plain(trunk, [nn.Linear(16, 1), nn.Linear(16, 4)])",
                          replaced('    shared_layer = "trunk.2"\n', "", PLAIN + RINGS))},
        "searches.gradnorm: method 'gradnorm': shared_layer: Plain has no last_shared_layer; give shared_layer, the "
        "module path of GradNorm's W in the model (one of: trunk, trunk.0, trunk.1, trunk.2, trunk.3, heads, heads.0, "
        "heads.1)"),
    "a gradient method on a model without branch=": (
        {"code": replaced("return MultiHeadNet(trunk, [nn.Linear(16, 1), nn.Linear(16, 4)])",
                          "return Plain(trunk, [nn.Linear(16, 1), nn.Linear(16, 4)])",
                          replaced('    shared_layer = "trunk.2"\n', "", PLAIN + RINGS)),
         "searches": {"upgrad": {"type": "upgrad"}}},
        "searches.upgrad: method 'upgrad': UPGrad needs a model whose forward takes branch= (MultiHeadNet), got Plain: "
        "it reads the trunk's output through branch; build the model as a MultiHeadNet or give its forward a branch "
        "argument"),
}


@pytest.mark.parametrize("case", MISTAKES)
def test_each_mistake_is_one_line_exit_2_without_ray_or_mlflow(case, place, capsys):
    change, expected = MISTAKES[case]
    change = dict(change)
    options = change.pop("options", None)
    path = write_spec(place, change.pop("code", RINGS), change.pop("name", f"{MODULE}:Rings"), **change)
    if options is not None:
        spec = yaml.safe_load(path.read_text())
        spec["problem"]["options"] = options
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
    ray_before = ray_running()
    assert main(["check", str(path)]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith(f"gradnorm-tune: error: {path}: ") and err.count("\n") == 1, err
    assert expected.format(code=place / "code") in err, err
    assert captured.out == ""
    assert ray_running() == ray_before and not (place / "mlflow.db").exists() and MODULE not in sys.modules


def test_a_loss_that_reshapes_the_output_itself_is_no_mistake(place, capsys):
    """Output (B, 1) and target (B,) of other shapes, but a loss that pairs them (as the built-in
    MultiDigits and QM9 do): the shape check passes it."""
    code = replaced("F.mse_loss(outputs[0], targets[0])", "F.mse_loss(outputs[0].squeeze(1), targets[0])",
                    replaced("radius = x.norm(dim=1, keepdim=True)", "radius = x.norm(dim=1)"))
    assert main(["check", str(write_spec(place, code))]) == 0, capsys.readouterr().err
    assert "no mistake found" in capsys.readouterr().out


def test_verbose_shows_the_traceback_of_the_problems_own_error(place, capsys):
    path = write_spec(place, code=MISTAKES["load_data that raises"][0]["code"])
    assert main(["check", str(path), "--verbose"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last):" in err and f"{MODULE}.py" in err and "in load_data" in err
    assert err.rstrip().splitlines()[-1].startswith(f"gradnorm-tune: error: {path}: Rings.load_data: raised ")


def test_on_a_cluster_it_runs_as_one_ray_task_with_the_shipped_code(tmp_path):
    """``--address local``: a Ray of its own, the check one task of a job whose runtime_env ships
    the working_dir; the task imports the problem from Ray's unpacked copy, and a mistake found
    there is the same one line."""
    path = write_spec(tmp_path)
    broken = write_spec(tmp_path / "broken", code=MISTAKES["metrics missing a task's normalized error"][0]["code"])
    env = {**os.environ, "RAY_ADDRESS": "", "PYTHONPATH": os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")]))}
    # the good problem and the broken one checked side by side, each on a Ray of its own
    checks = {}
    for name, spec in (("good", path), ("broken", broken)):
        with open(tmp_path / f"{name}.out", "w") as out, open(tmp_path / f"{name}.err", "w") as err:
            checks[name] = subprocess.Popen([str(BIN / "gradnorm-tune"), "check", str(spec), "--address", "local"],
                                            cwd=tmp_path, env=env, stdout=out, stderr=err)
    try:
        codes = {name: check.wait(300) for name, check in checks.items()}
    finally:
        for check in checks.values():
            if check.poll() is None:
                check.kill()
                check.wait(10)
    done = {name: subprocess.CompletedProcess(checks[name].args, code, (tmp_path / f"{name}.out").read_text(),
                                              (tmp_path / f"{name}.err").read_text()) for name, code in codes.items()}
    assert done["good"].returncode == 0, done["good"].stdout[-3000:] + done["good"].stderr[-3000:]
    assert f"check of {path}: problem {MODULE}:Rings\n  ran on: a Ray task on node " in done["good"].stdout, \
        done["good"].stdout
    assert "_ray_pkg_" in done["good"].stdout and "GradNorm's W: trunk.2 (Linear" in done["good"].stdout
    done = done["broken"]
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    # Ray's C++ core prints its own warning where the machine has no route out (loopback-only CI)
    stderr = "".join(line for line in done.stderr.splitlines(keepends=True) if "network_util.cc" not in line)
    assert stderr.startswith(f"gradnorm-tune: error: {broken}: Rings.metrics: compute() has no "
                             "'quadrant/normalized_error'") and stderr.count("\n") == 1, done.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has the GPU the spec asks for")
def test_a_spec_for_gpus_checked_without_one_says_where_to_run_it(place, capsys):
    path = write_spec(place)
    spec = yaml.safe_load(path.read_text())
    spec["training"]["device"] = "cuda"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == (f"gradnorm-tune: error: {path}: training.device: device is 'cuda' but no CUDA device is available; "
                   "run the check where the trials' GPUs are (--address of their cluster), or set training.device "
                   "to auto\n")
