"""A user's mistake said as the user made it: an exception raised in a DataLoader worker or a Ray
worker reaches the error tag and the terminal line as raised (not as its wrapper), and a target
that a loss broadcasts against an output of another shape fails the trial on its first batch, in
one line naming the task, instead of training silently. Real torch DataLoader workers, real Ray,
real MLflow (SQLite); the built-in problems and the example project as they ship.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from torch import nn
from torch.utils.data import DataLoader, Dataset

from gradnorm_core import TargetShapeError, check_target_shapes, fit, make_balancer, make_problem
from gradnorm_core.problems.data import iterate_batches
from gradnorm_core.problems.shapes import _suspect
from sweeps.cli import main
from trainables import ERROR_LOG, ERROR_TAG, OUTCOME, error_line

ROOT = Path(__file__).resolve().parents[1]


class Broken(Dataset):
    def __init__(self, error: Exception) -> None:
        self.error = error

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        raise self.error


class TwoArguments(Exception):
    def __init__(self, what: str, where: str) -> None:
        super().__init__(f"{what} at {where}")


@pytest.mark.parametrize("error, expected", [
    (IndexError("item 3 is\nunreadable"), "IndexError: item 3 is"),
    (KeyError("label"), "KeyError: 'label'"),
    (TwoArguments("bad header", "row 7"), "TwoArguments: bad header at row 7"),  # torch raises a RuntimeError for it
])
def test_an_exception_in_a_dataloader_worker_is_said_as_raised(error, expected):
    with pytest.raises(Exception) as caught:
        next(iter(DataLoader(Broken(error), batch_size=2, num_workers=1)))
    assert str(caught.value).startswith(f"Caught {type(error).__name__} in DataLoader worker process 0.")
    assert error_line(caught.value) == expected


def test_an_exception_in_a_ray_worker_is_said_as_raised(local_ray):
    ray = local_ray

    @ray.remote(max_retries=0)
    def fails():
        raise ValueError("the user's own words")

    with pytest.raises(ValueError) as caught:
        ray.get(fails.remote(), timeout=120)
    assert "ray::fails()" in str(caught.value).splitlines()[0]  # Ray's wrapper, its traceback first
    assert error_line(caught.value) == "ValueError: the user's own words"


# -- the shape check on the first batch ----------------------------------------------------------


def digit_scale_batch(problem, size: int = 16):
    """A first batch of the example's DigitScale as its data gives it (its own item transform,
    ``digit_and_ink``, on synthetic images: the MNIST files are not needed)."""
    from digit_scale.problem import digit_and_ink
    from test_multimnist import synthetic_mnist
    from torch.utils.data import default_collate

    images, labels = synthetic_mnist(n_train=size, n_test=1)[:2]
    return default_collate([digit_and_ink(torch.from_numpy(image), torch.tensor([label]))
                            for image, label in zip(images, labels)])


def shipped_problems():
    """Every built-in problem, small (MultiMNIST and QM9 on the tests' synthetic arrays, with their
    own model and loss), and the example project's, with a first batch of each."""
    from test_multimnist import synthetic_mnist
    from test_qm9 import NAMES, synthetic

    from gradnorm_core.problems import QM9, MultiMNIST

    def batch(problem):
        return next(iter(iterate_batches(problem.train, 16, torch.device("cpu"))))

    for name in ("toy_t2", "toy_t10"):
        yield name, make_problem(name), None
    yield "multidigits", make_problem("multidigits", num_train=64, num_val=32, num_test=32), None
    yield "multimnist", MultiMNIST.from_arrays(*synthetic_mnist(), num_train=64, num_val=32, num_test=32, seed=0), None
    yield "qm9", QM9.from_arrays(*synthetic(), NAMES, num_train=64, num_val=32, num_test=32, seed=0), None
    sys.path.insert(0, str(ROOT / "examples" / "digit_scale"))
    try:
        problem = make_problem("digit_scale.problem:DigitScale", num_train=64, num_val=32, num_test=32)
        yield "digit_scale", problem, digit_scale_batch(problem)
    finally:
        sys.path.remove(str(ROOT / "examples" / "digit_scale"))


def test_every_shipped_problem_passes_the_shape_check_and_trains_its_first_step():
    """Their legitimate broadcasting (class indices (B,) against logits (B, C); a (B, 1) output
    against a (B,) target in a loss that reshapes it, as MultiDigits' sum and QM9 do) passes."""
    suspects = []
    for name, problem, batch in shipped_problems():
        x, targets = batch if batch is not None else next(iter(iterate_batches(problem.train, 16, torch.device("cpu"))))
        model = problem.build_model(seed=0)
        outputs = model(x)
        check_target_shapes(problem, outputs, targets, problem.task_losses(outputs, targets))
        suspects += [name for output, target in zip(outputs, targets) if _suspect(output, target) is not None]
        if batch is None:  # the training's own first step runs the check too
            training = fit(problem, make_balancer("equal", problem.num_tasks), model=model, epochs=1, batch_size=16)
            training.step(*next(iter(iterate_batches(problem.train, 16, training.device))))
    # the check's second look (the target's rows rolled) was needed, and passed them
    assert set(suspects) == {"multidigits", "qm9"}, suspects


def test_a_broadcast_loss_written_by_hand_fails_the_first_step_naming_the_task():
    problem = make_problem("multidigits", num_train=64, num_val=32, num_test=32)

    def by_hand(outputs, targets):  # the sum's target (B,) against its output (B, 1): (B, B)
        return torch.stack([nn.functional.cross_entropy(outputs[0], targets[0]),
                            nn.functional.cross_entropy(outputs[1], targets[1]), ((outputs[2] - targets[2]) ** 2).mean()])

    problem.task_losses = by_hand
    model = problem.build_model(seed=0)
    training = fit(problem, make_balancer("equal", 3), model=model, epochs=1, batch_size=16)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(TargetShapeError, match=r"^task 'sum': its loss broadcast the target \(16,\) against the "
                                               r"output \(16, 1\) to \(16, 16\) on the first batch") as error:
        training.step(*next(iter(iterate_batches(problem.train, 16, training.device))))
    assert error.value.task == "sum" and "\n" not in str(error.value)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # refused before any step


# -- in a sweep ----------------------------------------------------------------------------------


def test_a_loader_workers_error_and_a_broadcast_loss_fail_their_trials_in_one_line(local_ray, tmp_path, capfd,
                                                                                  new_store):
    """Two trials of a user's problem (tests/fault_problems.py): one whose train items raise in its
    DataLoader's worker, one whose loss broadcasts a target. Each fails at once, deterministically
    (not retried), with the user's words in its line and its error tag; the sweep exits 4."""
    from test_outcomes import assert_nothing_running, runs, spec

    data = spec("user-errors", "none", faults=["loader", "broadcast"],
                searches={"equal": {"type": "equal", "repeats": 2}})
    data["training"]["num_workers"] = 1
    path = tmp_path / "user.yaml"
    path.write_text(yaml.safe_dump(data))
    uri = new_store(tmp_path / "mlflow.db")
    capfd.readouterr()
    code = main(["sweep", str(path), "--storage", str(tmp_path / "runs"), "--tracking-uri", uri])
    out, err = capfd.readouterr()
    assert code == 4, out[-3000:] + err[-3000:]
    assert "Traceback" not in out + err and err.count("\n") <= 2, err
    loader = "IndexError: faulty: train item "
    shape = ("TargetShapeError: task 'high': its loss broadcast the target (32,) against the output (32, 1) to "
             "(32, 32) on the first batch")
    failed = [line for line in out.splitlines() if "FAILED: " in line]
    assert sorted(line.split("FAILED: ")[1][:len(loader)] for line in failed) == sorted([loader, shape[:len(loader)]])
    assert any(shape in line for line in failed) and "Caught" not in out, out
    grouped = runs(uri, "user-errors")
    assert_nothing_running(grouped)
    client = MlflowClient(uri)
    tags = Counter()
    for run in grouped["trial"]:
        assert run.info.status == "FAILED" and run.data.tags[OUTCOME] == "failed"
        error = run.data.tags[ERROR_TAG]
        tags[error.split(":")[0]] += 1
        assert error.startswith(loader) or error.startswith(shape), error
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == [ERROR_LOG]
        log = Path(tmp_path / "runs").glob(f"*/logs/{run.data.tags['gradnorm_tune.trial_id']}.log")
        text = next(log).read_text()
        assert text.count("deterministic, not retried") == 1, text  # tried once
    assert tags == {"IndexError": 1, "TargetShapeError": 1}


# -- Ray's own output ----------------------------------------------------------------------------


def test_a_dead_raylets_report_is_one_line_and_the_rest_of_rays_output_passes(capsys):
    """What Ray's driver prints when a node's agent reports its raylet dead (the tail of raylet.out,
    mostly [state-dump] lines): one line in a quiet sweep; any other report as Ray prints it."""
    import ray._private.worker as worker

    from sweeps.ray_output import SAID, quiet_raylet_reports
    from sweeps.session import quiet_logs

    original = worker.print_to_stdstream
    try:
        quiet_logs()  # what a sweep sets up (quiet_raylet_reports among it), twice: idempotent
        quiet_raylet_reports()
        dump = ("Raylet is terminated. Termination is unexpected. Possible reasons include: (1) SIGKILL by the user "
                "or system OOM killer ... Last 20 lines of the Raylet logs:\n" + "".join(
                    f"    [state-dump] NodeManager: line {i}\n" for i in range(20)))
        worker.print_to_stdstream({"lines": [dump], "pid": "raylet", "is_err": False}, ignore_prefix=False)
        worker.print_to_stdstream({"lines": ["a task failed: the user's words"], "pid": 4242, "ip": "127.0.0.1",
                                   "is_err": True, "task_name": "f", "actor_name": ""}, ignore_prefix=False)
    finally:
        worker.print_to_stdstream = original
    out, err = capsys.readouterr()
    assert out == SAID + "\n" and "state-dump" not in out + err
    assert "a task failed: the user's words" in err


def test_the_second_look_draws_nothing_from_the_random_generator():
    """A loss that samples (here: noise on the sum's target) gets its second look without moving
    torch's generator: a restored run, which checks its first batch again, keeps its numbers."""
    problem = make_problem("multidigits", num_train=64, num_val=32, num_test=32)
    plain = problem.task_losses

    def noisy(outputs, targets):
        return plain(outputs, [*targets[:2], targets[2] + 0.01 * torch.randn_like(targets[2])])

    problem.task_losses = noisy
    model = problem.build_model(seed=0)
    x, targets = next(iter(iterate_batches(problem.train, 16, torch.device("cpu"))))
    outputs = model(x)
    losses = noisy(outputs, targets)
    state = torch.get_rng_state()
    check_target_shapes(problem, outputs, targets, losses)  # the sum task is looked at twice
    assert torch.equal(torch.get_rng_state(), state)
