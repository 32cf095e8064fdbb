"""The training loop's settings (gradnorm_core.optim): optimizers against torch's own stepped by
hand, learning-rate schedules against hand-computed values, gradient clipping, bf16 autocast,
validation every N epochs with the test split at the best epoch, their errors, exact resume."""

from __future__ import annotations

import io
import math

import pytest
import torch

from gradnorm_core import TrainConfig, fit, make_balancer
from gradnorm_core.problems import ToyRegression
from trainables.trainable import best_scores, epoch_metrics

LR = 0.01


@pytest.fixture(scope="module")
def toy():
    # 24 training items in batches of 8: 3 steps per epoch
    return ToyRegression([1.0, 3.0], num_train=24, num_val=16, num_test=12, seed=2)


def equal_fit(problem, **config):
    """A run with equal task weights (backward of the plain sum of the losses)."""
    model = problem.build_model(seed=4)
    return fit(problem, make_balancer("equal", problem.num_tasks), model=model,
               **{"epochs": 3, "batch_size": 8, "lr": LR, "seed": 7, "device": "cpu", **config})


def hand_loop(problem, optimizer_of, epochs=3, batch_size=8, seed=7, clip=None, schedule=None):
    """The same training written directly against torch: same model init, same batches (one
    permutation per epoch from a generator seeded with ``seed``), the summed losses' backward,
    then torch's own optimizer (and clipping, and a per-step learning-rate function)."""
    model = problem.build_model(seed=4)
    optimizer = optimizer_of(model.parameters())
    shuffle = torch.Generator().manual_seed(seed)
    inputs, targets = problem.train.inputs, problem.train.targets
    step = 0
    for _ in range(epochs):
        order = torch.randperm(len(inputs), generator=shuffle)
        for begin in range(0, len(inputs), batch_size):
            index = order[begin:begin + batch_size]
            if schedule is not None:
                for group in optimizer.param_groups:
                    group["lr"] = LR * schedule(step)
            optimizer.zero_grad(set_to_none=True)
            losses = problem.task_losses(model(inputs[index]), tuple(t[index] for t in targets))
            (torch.ones(len(losses)) * losses).sum().backward()
            if clip is not None:
                grads = [p.grad for p in model.parameters() if p.grad is not None]
                norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
                scale = min(1.0, clip / (float(norm) + 1e-6))
                for g in grads:
                    g.mul_(scale)
            optimizer.step()
            step += 1
    return model


def assert_same_parameters(model, expected, exact=True):
    for (name, got), want in zip(model.named_parameters(), expected.parameters()):
        if exact:
            assert torch.equal(got, want), name
        else:
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("config,optimizer_of", [
    ({}, lambda p: torch.optim.Adam(p, lr=LR)),  # the default: Adam, unchanged
    ({"weight_decay": 0.01}, lambda p: torch.optim.Adam(p, lr=LR, weight_decay=0.01)),
    ({"optimizer": "adamw", "weight_decay": 0.05}, lambda p: torch.optim.AdamW(p, lr=LR, weight_decay=0.05)),
    ({"optimizer": "sgd"}, lambda p: torch.optim.SGD(p, lr=LR)),
    ({"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 0.001},
     lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9, nesterov=True, weight_decay=0.001)),
])
def test_each_optimizer_equals_torch_stepped_by_hand(toy, config, optimizer_of):
    training = equal_fit(toy, **config)
    list(training)
    assert_same_parameters(training.model, hand_loop(toy, optimizer_of))


def recorded_lrs(training) -> list[float]:
    """The learning rate of every optimizer step of the run, as the optimizer sees it."""
    lrs: list[float] = []
    training.optimizer.register_step_pre_hook(lambda opt, args, kwargs: lrs.append(opt.param_groups[0]["lr"]))
    list(training)
    return lrs


@pytest.mark.parametrize("config,factors", [
    # 3 epochs of 3 steps; no schedule: constant
    ({}, [1.0] * 9),
    # warm-up of 1 epoch (W = 3 steps): (s + 1) / (W + 1), then constant
    ({"warmup_epochs": 1}, [0.25, 0.5, 0.75] + [1.0] * 6),
    # cosine over all 9 steps: (1 + cos(pi s / 9)) / 2
    ({"schedule": "cosine"}, [1.0, 0.9698463, 0.8830222, 0.75, 0.5868241, 0.4131759, 0.25, 0.1169778, 0.0301537]),
    # warm-up of 1 epoch, then cosine over the 6 steps left: (1 + cos(pi k / 6)) / 2
    ({"schedule": "cosine", "warmup_epochs": 1},
     [0.25, 0.5, 0.75, 1.0, 0.9330127, 0.75, 0.5, 0.25, 0.0669873]),
    # step decay by 0.5 every 2 epochs (epochs 0-1: 1, epoch 2: 0.5)
    ({"schedule": "step", "step_size": 2, "gamma": 0.5}, [1.0] * 6 + [0.5] * 3),
    # after a warm-up epoch, the decay counts the epochs since the warm-up
    ({"schedule": "step", "step_size": 1, "gamma": 0.5, "warmup_epochs": 1},
     [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5]),
])
def test_schedules_give_the_hand_computed_learning_rates(toy, config, factors):
    training = equal_fit(toy, **config)
    assert (training.scheduler is None) == (config == {})
    assert recorded_lrs(training) == pytest.approx([LR * f for f in factors], rel=1e-6)


def test_cosine_reaches_zero_after_the_last_step_and_matches_the_formula_on_a_longer_run(toy):
    training = equal_fit(toy, epochs=7, schedule="cosine", warmup_epochs=2)
    lrs = recorded_lrs(training)
    warm, total = 6, 21
    expected = [LR * ((s + 1) / (warm + 1) if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm))))
                for s in range(total)]
    assert lrs == pytest.approx(expected, rel=1e-9)
    assert training.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-15)
    # and the parameters are those of torch's own Adam with that learning rate set by hand
    hand = hand_loop(toy, lambda p: torch.optim.Adam(p, lr=LR), epochs=7,
                     schedule=lambda s: expected[s] / LR)
    assert_same_parameters(training.model, hand, exact=False)


def test_clipping_bounds_the_gradient_the_optimizer_steps_with(toy):
    seen: list[list[torch.Tensor]] = []

    def run(clip):
        training = equal_fit(toy, epochs=1, clip_grad_norm=clip)
        seen.clear()
        training.optimizer.register_step_pre_hook(
            lambda opt, args, kwargs: seen.append([p.grad.clone() for p in training.model.parameters()]))
        list(training)
        return training, [torch.linalg.vector_norm(torch.cat([g.flatten() for g in step])) for step in seen]

    _, unclipped = run(None)
    assert min(unclipped) > 0.05
    training, norms = run(0.05)
    assert max(norms) <= 0.05 * (1 + 1e-5)
    assert norms[0] == pytest.approx(0.05, rel=1e-4)
    # the first step's clipped gradient, against clipping computed independently
    model = toy.build_model(seed=4)
    order = torch.randperm(24, generator=torch.Generator().manual_seed(7))[:8]
    losses = toy.task_losses(model(toy.train.inputs[order]), tuple(t[order] for t in toy.train.targets))
    grads = torch.autograd.grad(losses.sum(), list(model.parameters()))
    total = math.sqrt(sum(float(g.double().square().sum()) for g in grads))
    assert total == pytest.approx(float(unclipped[0]), rel=1e-5)
    for got, grad in zip(seen[0], grads):
        torch.testing.assert_close(got, grad * (0.05 / (total + 1e-6)), rtol=1e-5, atol=1e-8)
    # a bound above every norm changes nothing
    loose = equal_fit(toy, epochs=2, clip_grad_norm=1e6)
    list(loose)
    plain = equal_fit(toy, epochs=2)
    list(plain)
    assert_same_parameters(loose.model, plain.model)


def test_bf16_autocast_runs_the_forward_in_bfloat16_and_hands_float32_losses_to_the_balancer(toy):
    training = equal_fit(toy, epochs=2, precision="bf16")
    output_dtypes, loss_dtypes = set(), set()
    layer = next(m for m in training.model.modules() if isinstance(m, torch.nn.Linear))
    layer.register_forward_hook(lambda module, args, out: output_dtypes.add(out.dtype) if module.training else None)
    backward = training.balancer.backward
    training.balancer.backward = lambda losses: (loss_dtypes.add(losses.dtype), backward(losses))
    records = list(training)
    assert output_dtypes == {torch.bfloat16} and loss_dtypes == {torch.float32}
    assert all(math.isfinite(r.score) for r in records)
    assert all(p.dtype == torch.float32 for p in training.model.parameters())
    fp32 = equal_fit(toy, epochs=2)
    assert [r.score for r in fp32] != [r.score for r in records]


def test_val_every_validates_every_n_epochs_and_at_the_last(toy):
    records = list(equal_fit(toy, epochs=5, val_every=2))
    assert [r.epoch for r in records] == [1, 2, 3, 4, 5]
    assert [r.score is not None for r in records] == [False, True, False, True, True]
    for record in records:
        assert bool(record.val) == (record.score is not None) and bool(record.train)
        assert len(record.weights) == 2
        if record.score is None:
            assert record.test == {} and "score" not in record.flat()
        else:
            assert record.score == record.val["score"]
    assert records[1].test and records[-1].test  # the first validation, and the last epoch
    metrics = [epoch_metrics(r, toy.task_names, "cpu") for r in records]
    assert "score" not in metrics[0] and "test/score" not in metrics[0] and "val/task0/loss" not in metrics[0]
    assert best_scores(metrics[:1]) == {"best_score": math.inf}


class ScriptedScores:
    """Replaces ``problem.evaluate``: val scores from a script, test scores counted (test: 12 items)."""

    def __init__(self, problem, monkeypatch, val_scores):
        self.val_scores, self.tested = list(val_scores), []
        self.evaluate, self.calls = problem.evaluate, 0
        monkeypatch.setattr(problem, "evaluate", self)

    def __call__(self, model, dataset, *args, **kwargs):
        result = self.evaluate(model, dataset, *args, **kwargs)
        if len(dataset) == 12:
            self.tested.append(result["score"])
            return result
        score = self.val_scores[self.calls]
        self.calls += 1
        return dict(result, score=score)


def test_test_split_only_at_a_new_best_validation_and_at_the_end(toy, monkeypatch):
    scripted = ScriptedScores(toy, monkeypatch, [3.0, 2.0, 2.5, 2.0, 2.2])
    records = list(equal_fit(toy, epochs=5))
    # first (3.0), better (2.0), worse (2.5), equal (2.0: not better), last (2.2)
    assert [bool(r.test) for r in records] == [True, True, False, False, True]
    assert len(scripted.tested) == 3
    metrics = [epoch_metrics(r, toy.task_names, "cpu") for r in records]
    assert ["test/score" in m for m in metrics] == [True, True, False, False, True]
    best = best_scores(metrics)
    assert best == {"best_score": 2.0, "best_test_score": records[1].test["score"]}
    assert best_scores(metrics[:3])["best_test_score"] == records[1].test["score"]

    # resumed after epoch 3, the best so far (2.0, epoch 2) still rules whether epoch 4 tests
    monkeypatch.undo()
    ScriptedScores(toy, monkeypatch, [3.0, 2.0, 2.5])
    first = equal_fit(toy, epochs=5)
    for _ in range(3):
        next(iter(first))
    state = first.state_dict()
    monkeypatch.undo()
    ScriptedScores(toy, monkeypatch, [2.0, 2.2])
    tail = list(equal_fit(toy, epochs=5, state=state))
    assert [bool(r.test) for r in tail] == [False, True]


@pytest.mark.parametrize("options,message", [
    ({"optimizer": "adamx"}, "optimizer: unknown optimizer 'adamx'; did you mean 'adam'?"),
    ({"optimizer": "sgd", "momentum": 1.0}, "momentum: must be a number in [0, 1), got 1.0"),
    ({"momentum": 0.9}, "momentum: only optimizer 'sgd' takes momentum, not 'adam'"),
    ({"optimizer": "sgd", "nesterov": True}, "nesterov: Nesterov momentum needs momentum > 0"),
    ({"optimizer": "sgd", "momentum": 0.9, "nesterov": "yes"}, "nesterov: must be true or false"),
    ({"optimizer": "adamw", "nesterov": True}, "nesterov: only optimizer 'sgd' takes nesterov"),
    ({"schedule": "linear"}, "schedule: unknown schedule 'linear'"),
    ({"schedule": "step"}, "step_size: schedule 'step' needs step_size"),
    ({"schedule": "cosine", "step_size": 2}, "step_size: only schedule 'step' takes step_size"),
    ({"schedule": "step", "step_size": 0}, "step_size: must be a whole number of epochs >= 1"),
    ({"schedule": "step", "step_size": 2, "gamma": 0.0}, "gamma: must be a number in (0, 1]"),
    ({"gamma": 0.5}, "gamma: only schedule 'step' takes gamma"),
    ({"warmup_epochs": -1}, "warmup_epochs: must be a whole number >= 0"),
    ({"warmup_epochs": 1.5}, "warmup_epochs: must be a whole number >= 0"),
    ({"warmup_epochs": 3}, "warmup_epochs: 3 leaves no epoch after the warm-up (epochs is 3)"),
    ({"clip_grad_norm": 0}, "clip_grad_norm: must be a number > 0 or null"),
    ({"clip_grad_norm": True}, "clip_grad_norm: must be a number > 0 or null"),
    ({"clip_grad_norm": float("inf")}, "clip_grad_norm: must be a number > 0 or null"),
    ({"precision": "fp16"}, "precision: unknown precision 'fp16'"),
    ({"val_every": 0}, "val_every: must be a whole number of epochs >= 1"),
    ({"val_every": True}, "val_every: must be a whole number of epochs >= 1"),
])
def test_bad_settings_are_one_line_errors_naming_the_field_and_the_fix(toy, options, message):
    with pytest.raises(ValueError) as error:
        TrainConfig(epochs=3, **options)
    text = str(error.value)
    assert text.startswith(message) and "\n" not in text
    field = message.split(":")[0]
    assert text.startswith(f"{field}: ") and "; " in text  # "<field>: <what>; <fix>"
    with pytest.raises(ValueError, match="^" + field):
        equal_fit(toy, **options)


def test_resume_mid_run_gives_the_same_records_with_adamw_cosine_warmup_and_clipping(toy):
    settings = {"epochs": 5, "optimizer": "adamw", "weight_decay": 0.01, "schedule": "cosine",
                "warmup_epochs": 1, "clip_grad_norm": 0.5, "val_every": 2}
    uninterrupted = [r.as_dict() for r in equal_fit(toy, **settings)]
    first = equal_fit(toy, **settings)
    head = [next(iter(first)).as_dict() for _ in range(3)]
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # plain tensors, numbers and strings only
    assert state["scheduler"]["last_epoch"] == 9 and state["best_score"] == head[1]["score"]
    torch.manual_seed(999)  # the global RNG in between must not matter
    resumed = equal_fit(toy, **settings, state=state)
    assert resumed.optimizer.param_groups[0]["lr"] == first.optimizer.param_groups[0]["lr"]
    tail = [r.as_dict() for r in resumed]
    assert [r["epoch"] for r in head + tail] == [1, 2, 3, 4, 5]
    for got, expected in zip(head + tail, uninterrupted):
        for key in ("elapsed_seconds", "cpu_seconds"):  # the clocks; samples must match
            got.pop(key), expected.pop(key)
        assert got == expected
