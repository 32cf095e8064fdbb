"""The training loop: records, exact resumption, and its errors."""

from __future__ import annotations

import math
import time

import pytest
import torch

from gradnorm_core import (
    GradNorm,
    NonFiniteLossError,
    Training,
    fit,
    make_balancer,
    make_problem,
)
from gradnorm_core.problems import MultiDigits, ToyRegression


@pytest.fixture(scope="module")
def toy():
    return ToyRegression([1.0, 10.0, 50.0], num_train=256, num_val=64, num_test=64, seed=3)


def test_records_one_per_epoch_with_all_fields(toy):
    model = toy.build_model(seed=1)
    balancer = make_balancer("gradnorm", toy.num_tasks, model=model, alpha=1.0)
    records = list(fit(toy, balancer, model=model, epochs=3, batch_size=64, lr=1e-3, seed=1))
    assert [r.epoch for r in records] == [1, 2, 3]
    last = records[-1]
    for task in toy.task_names:
        for split in (last.val, last.test):
            assert {f"{task}/loss", f"{task}/rmse", f"{task}/normalized_error"} <= set(split)
        assert math.isfinite(last.train[f"{task}/loss"])
    assert last.score == last.val["score"] == pytest.approx(toy.score(last.val))
    assert len(last.weights) == 3 and sum(last.weights) == pytest.approx(3.0)
    assert records[0].weights != records[-1].weights  # GradNorm moved them
    assert 0 < records[0].elapsed_seconds < records[1].elapsed_seconds < records[2].elapsed_seconds
    assert last.flat()["val/task2/rmse"] == last.val["task2/rmse"]
    # the reported train loss is the mean of the step losses: check it against an independent pass
    assert records[0].train["task0/loss"] > 0


def test_cost_units_count_the_samples_and_the_process_cpu_time_and_survive_a_restore(toy):
    """samples: epochs x the train split's size; cpu_seconds: the process's CPU time inside the
    epochs (at most what the process spent around them); both carried across a restore, and a
    state saved before they were counted gives the exact samples and no CPU time."""
    def start(state=None):
        model = toy.build_model(seed=1)
        return fit(toy, make_balancer("equal", toy.num_tasks), model=model, state=state, epochs=3, batch_size=64,
                   lr=1e-3, seed=1, device="cpu")

    before = time.process_time()
    records = list(start())
    spent = time.process_time() - before
    assert [r.samples for r in records] == [256, 512, 768]
    assert 0 < records[0].cpu_seconds < records[1].cpu_seconds < records[2].cpu_seconds <= spent
    assert records[-1].gpu_seconds is None and "gpu_seconds" not in records[-1].flat()  # on CPU
    assert records[-1].flat()["samples"] == 768

    first = start()
    head = next(iter(first))
    resumed = start(state=first.state_dict())
    tail = list(resumed)
    assert [r.samples for r in tail] == [512, 768]
    assert tail[0].cpu_seconds > head.cpu_seconds
    old = {key: value for key, value in first.state_dict().items() if key not in ("cpu_seconds", "samples")}
    again = list(start(state=old))
    assert [r.samples for r in again] == [512, 768] and again[-1].cpu_seconds is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; CI has none")
def test_a_run_on_cuda_counts_its_gpu_time_within_its_wall_clock_and_across_a_restore(toy):
    """gpu_seconds: the time between events on the device's stream at each epoch's start and end,
    so never more than the epoch's wall-clock around it; carried across a restore."""
    def start(state=None):
        model = toy.build_model(seed=1)
        return fit(toy, make_balancer("gradnorm", toy.num_tasks, model=model, alpha=1.0), model=model, state=state,
                   epochs=3, batch_size=64, lr=1e-3, seed=1, device="cuda")

    records = list(start())
    assert 0 < records[0].gpu_seconds < records[1].gpu_seconds < records[2].gpu_seconds
    for record in records:
        assert record.gpu_seconds <= record.elapsed_seconds + 1e-3
    assert records[-1].flat()["gpu_seconds"] == records[-1].gpu_seconds
    first = start()
    head = next(iter(first))
    tail = list(start(state=first.state_dict()))
    assert head.gpu_seconds < tail[0].gpu_seconds <= tail[0].elapsed_seconds + 1e-3


def test_training_lowers_the_score():
    problem = MultiDigits(num_train=512, num_val=128, num_test=128, seed=1)
    model = problem.build_model(seed=0)
    before = problem.evaluate(model, problem.val)["score"]
    records = list(fit(problem, make_balancer("equal", 3), model=model, epochs=5, batch_size=32, lr=3e-3))
    assert records[-1].score < 0.8 * before


@pytest.mark.parametrize("method,options", [
    ("gradnorm", {"alpha": 1.5}),
    ("uncertainty", {}),
    ("dwa", {"temperature": 2.0}),
])
def test_resuming_from_a_state_gives_the_same_records(method, options):
    problem = MultiDigits(num_train=256, num_val=64, num_test=64, seed=0)

    def start(state=None):
        model = problem.build_model(seed=5)
        balancer = make_balancer(method, problem.num_tasks, model=model, **options)
        return fit(problem, balancer, model=model, state=state, epochs=4, batch_size=32, lr=2e-3, seed=5)

    uninterrupted = [r.as_dict() for r in start()]
    first = start()
    head = [next(iter(first)).as_dict() for _ in range(2)]
    state = first.state_dict()
    torch.manual_seed(12345)  # whatever happens to the global RNG in between must not matter
    resumed = start(state=state)
    tail = [r.as_dict() for r in resumed]
    assert [r["epoch"] for r in head + tail] == [1, 2, 3, 4]
    for got, expected in zip(head + tail, uninterrupted):
        for key in ("elapsed_seconds", "cpu_seconds"):  # the clocks; samples must match
            got.pop(key), expected.pop(key)
        assert got == expected
    assert resumed.elapsed_seconds >= first.elapsed_seconds


def test_bad_options_and_mismatches(toy):
    with pytest.raises(ValueError, match="unknown training option 'epoch'"):
        fit(toy, make_balancer("equal", 3), epoch=3)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        fit(toy, make_balancer("equal", 3), batch_size=0)
    with pytest.raises(ValueError, match="num_tasks=2 but problem 'toy' has 3 tasks"):
        fit(toy, make_balancer("equal", 2))
    model = toy.build_model()
    with pytest.raises(ValueError, match="pass that model as model="):
        fit(toy, GradNorm.for_linear(model.last_shared_layer, 3))
    with pytest.raises(ValueError, match="not parameters of model"):
        fit(toy, GradNorm.for_linear(model.last_shared_layer, 3), model=toy.build_model())
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu' or 'cuda"):
        fit(toy, make_balancer("equal", 3), device="tpu")


def test_make_balancer_errors():
    with pytest.raises(ValueError, match="unknown method 'gradnrom'; choose one of: gradnorm"):
        make_balancer("gradnrom", 2)
    with pytest.raises(ValueError, match="method 'dwa' takes no option 'alpha'; accepted options: temperature"):
        make_balancer("dwa", 2, alpha=1.0)
    with pytest.raises(ValueError, match="weights must hold 3 numbers"):
        make_balancer("static", 3, weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="'gradnorm' needs the model"):
        make_balancer("gradnorm", 3)
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        make_balancer("gradnorm", 3, model=make_problem("toy", sigmas=[1, 2, 3]).build_model(), alpha=-1)


def test_non_finite_loss_stops_training_with_the_task_named(toy):
    class Exploding(ToyRegression):
        calls = 0

        def task_losses(self, outputs, targets):
            losses = super().task_losses(outputs, targets)
            if not torch.is_grad_enabled():  # evaluation
                return losses
            Exploding.calls += 1
            if Exploding.calls == 6:
                losses = losses * torch.tensor([1.0, 1.0, float("inf")])
            return losses

    problem = Exploding([1.0, 2.0, 3.0], num_train=128, num_val=16, num_test=16)
    training = fit(problem, make_balancer("uncertainty", 3), epochs=2, batch_size=32)
    with pytest.raises(NonFiniteLossError, match=r"losses\[2\] is inf at step 5"):
        list(training)
    assert training.epoch == 1
    assert isinstance(training, Training)


def test_mean_weights_are_the_average_of_the_weights_used_at_each_step(toy):
    model = toy.build_model(seed=2)
    balancer = make_balancer("gradnorm", toy.num_tasks, model=model, alpha=1.0, lr=0.1)
    used = []
    original = balancer.backward

    def spy(losses):
        used.append(balancer.weights.double())
        original(losses)

    balancer.backward = spy
    (record,) = list(fit(toy, balancer, model=model, epochs=1, batch_size=64))
    expected = torch.stack(used).mean(dim=0)
    torch.testing.assert_close(torch.tensor(record.mean_weights, dtype=torch.float64), expected)
    assert record.weights != record.mean_weights


def test_the_cpu_clock_is_the_training_threads_when_torch_computes_on_it_alone():
    """One intra-op thread (a Ray trial with one CPU): the thread's own CPU time, so that the other
    threads of a Ray worker do not count; several: the process's, torch's threads included."""
    from gradnorm_core.train_config import cpu_clock_now

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert cpu_clock_now() is time.thread_time
        torch.set_num_threads(2)
        assert cpu_clock_now() is time.process_time
    finally:
        torch.set_num_threads(threads)
