"""DynamicWeightAverage against the formula computed by hand in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gradnorm_core.balancers.dwa import DynamicWeightAverage

# Per-epoch lists of per-step task losses (3 tasks), made by hand.
EPOCHS = [
    [[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]],
    [[1.0, 2.0, 0.5]],
    [[0.5, 2.0, 1.0], [0.5, 1.0, 1.0], [0.5, 0.5, 1.0]],
    [[0.25, 1.5, 2.0], [0.25, 0.5, 0.5]],
    [[0.2, 0.1, 0.3]],
    [[0.1, 0.1, 0.1]],
]


def expected_weights(epochs, temperature: float, num_tasks: int = 3) -> list[np.ndarray]:
    """w(t) for t = 0 .. len(epochs), straight from the paper's formula, in numpy float64."""
    means = [np.mean(np.asarray(steps, dtype=np.float64), axis=0) for steps in epochs]
    weights = []
    for t in range(len(epochs) + 1):
        if t < 2:
            weights.append(np.ones(num_tasks))
        else:
            r = means[t - 1] / means[t - 2]
            e = np.exp(r / temperature)
            weights.append(num_tasks * e / e.sum())
    return weights


def run_epochs(balancer, epochs, dtype=torch.float64):
    """Feed hand-made losses (leaf tensors); return the weight the network saw per epoch."""
    seen = []
    for steps in epochs:
        per_step = []
        for values in steps:
            losses = torch.tensor(values, dtype=dtype, requires_grad=True)
            balancer.backward(losses)
            per_step.append(losses.grad.clone())  # d total / d L_i = w_i
        for g in per_step:
            assert torch.equal(g, per_step[0])  # constant within the epoch
        seen.append(per_step[0])
        balancer.end_epoch()
    return seen


@pytest.mark.parametrize("temperature", [0.5, 2.0, 10.0])
def test_weights_follow_the_formula(temperature):
    balancer = DynamicWeightAverage(3, temperature=temperature)
    expected = expected_weights(EPOCHS, temperature)
    seen = run_epochs(balancer, EPOCHS)
    for t, w in enumerate(seen):
        np.testing.assert_allclose(w.numpy(), expected[t], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(balancer.weights.numpy(), expected[-1], rtol=1e-12, atol=1e-12)
    assert balancer.epoch_count == len(EPOCHS)
    assert balancer.step_count == sum(len(steps) for steps in EPOCHS)
    for w in expected[2:]:
        assert not np.allclose(w, 1.0)  # the check above is not trivially about ones


def test_first_two_epochs_use_unit_weights_and_weights_sum_to_num_tasks():
    balancer = DynamicWeightAverage(3)
    assert torch.equal(balancer.weights, torch.ones(3))
    run_epochs(balancer, EPOCHS[:1])
    assert torch.equal(balancer.weights, torch.ones(3, dtype=torch.float64))
    run_epochs(balancer, EPOCHS[1:2])
    assert not torch.allclose(balancer.weights, torch.ones(3, dtype=torch.float64))
    assert float(balancer.weights.sum()) == pytest.approx(3.0, abs=1e-12)


def test_model_gradient_is_that_of_the_weighted_sum():
    generator = torch.Generator().manual_seed(0)
    model = nn.Linear(4, 3)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    x = torch.randn(8, 4, generator=generator)
    y = torch.randn(8, 3, generator=generator)
    scale = torch.tensor([1.0, 1.0, 1.0])

    def losses():
        return scale * ((model(x) - y) ** 2).mean(dim=0)

    balancer = DynamicWeightAverage(3, temperature=1.0)
    history = []
    for epoch, factors in enumerate([[1.0, 1.0, 1.0], [0.5, 1.0, 2.0], [1.0, 1.0, 1.0]]):
        scale = torch.tensor(factors)
        values = losses().detach().numpy().astype(np.float64)
        history.append([values])
        w = expected_weights(history[:-1], 1.0)[epoch]
        reference = torch.autograd.grad(
            sum(float(w[i]) * losses()[i] for i in range(3)), list(model.parameters())
        )
        model.zero_grad()
        balancer.backward(losses())
        for p, g in zip(model.parameters(), reference):
            torch.testing.assert_close(p.grad, g)
        balancer.end_epoch()
    assert balancer.weights.dtype == torch.float32
    np.testing.assert_allclose(balancer.weights.numpy(), expected_weights(history, 1.0)[-1], rtol=1e-6)


def test_end_epoch_without_steps_changes_nothing():
    balancer = DynamicWeightAverage(3)
    balancer.end_epoch()  # before any step
    assert balancer.epoch_count == 0
    expected = expected_weights(EPOCHS, 2.0)
    for t, steps in enumerate(EPOCHS):
        run_epochs(balancer, [steps])
        state = balancer.state_dict()
        balancer.end_epoch()  # an empty epoch: ignored
        balancer.end_epoch()
        after = balancer.state_dict()
        assert after["epoch_count"] == state["epoch_count"] == t + 1
        assert torch.equal(after["weights"], state["weights"])
        np.testing.assert_allclose(balancer.weights.numpy(), expected[t + 1], rtol=1e-12)


def test_float64_and_float32_losses_set_the_weights_dtype():
    b64 = DynamicWeightAverage(3)
    run_epochs(b64, EPOCHS[:3], dtype=torch.float64)
    assert b64.weights.dtype == torch.float64
    b32 = DynamicWeightAverage(3)
    seen = run_epochs(b32, EPOCHS[:3], dtype=torch.float32)
    assert b32.weights.dtype == torch.float32 and seen[-1].dtype == torch.float32
    expected = expected_weights(EPOCHS[:3], 2.0)
    np.testing.assert_allclose(b64.weights.numpy(), expected[-1], rtol=1e-12)
    np.testing.assert_allclose(b32.weights.numpy(), expected[-1], rtol=1e-6)


def test_zero_mean_loss_raises_at_end_epoch_and_changes_nothing():
    balancer = DynamicWeightAverage(2)
    run_epochs(balancer, [[[0.0, 1.0]]])
    balancer.backward(torch.tensor([1.0, 1.0], requires_grad=True))
    state = balancer.state_dict()
    with pytest.raises(ValueError, match="task 0") as info:
        balancer.end_epoch()
    assert "\n" not in str(info.value)
    after = balancer.state_dict()
    assert after["epoch_count"] == state["epoch_count"] == 1
    assert after["epoch_steps"] == state["epoch_steps"] == 1
    assert torch.equal(after["epoch_sum"], state["epoch_sum"])


def test_load_state_dict_refuses_other_configuration_and_changes_nothing():
    original = DynamicWeightAverage(3, temperature=2.0)
    run_epochs(original, EPOCHS[:3])
    state = original.state_dict()
    other = DynamicWeightAverage(3, temperature=1.0)
    with pytest.raises(ValueError, match="temperature"):
        other.load_state_dict(state)
    assert other.step_count == 0 and other.epoch_count == 0
    assert torch.equal(other.weights, torch.ones(3))
    with pytest.raises(ValueError, match="num_tasks"):
        DynamicWeightAverage(2).load_state_dict(state)
    broken = dict(state, weights=torch.ones(5, dtype=torch.float64))
    fresh = DynamicWeightAverage(3)
    with pytest.raises(ValueError, match="shape"):
        fresh.load_state_dict(broken)
    assert fresh.step_count == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_tasks=0), "num_tasks"),
        (dict(num_tasks="2"), "num_tasks"),
        (dict(num_tasks=2, temperature=0.0), "temperature"),
        (dict(num_tasks=2, temperature=-1.0), "temperature"),
        (dict(num_tasks=2, temperature=float("inf")), "temperature"),
        (dict(num_tasks=2, temperature="hot"), "temperature"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        DynamicWeightAverage(**kwargs)
    assert "\n" not in str(info.value)
