"""StaticWeights and EqualWeights: the gradient is that of the fixed weighted sum, checked by autograd.
What every balancer keeps (weights detached, bad losses refused, exact resume) is in
test_balancer_contract.py."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradnorm_core.balancers.static import EqualWeights, StaticWeights
from balancer_fixtures import make_problem as _make_problem


def make_ones_problem(*args, **kwargs):
    """Every task's loss is the plain MSE of its output."""
    return _make_problem(*args, scales=(1.0,) * 8, **kwargs)


def reference_grads(model: nn.Module, losses, weights: list[float]) -> list[torch.Tensor]:
    """Gradient of sum_i w_i L_i, from a fresh forward pass, by torch.autograd.grad."""
    values = losses()
    total = sum(w * values[i] for i, w in enumerate(weights))
    return list(torch.autograd.grad(total, list(model.parameters())))


def test_gradient_is_that_of_the_weighted_sum():
    model, losses = make_ones_problem()
    weights = [0.5, 2.0, 0.0]
    expected = reference_grads(model, losses, weights)
    balancer = StaticWeights(weights)
    balancer.backward(losses())
    for p, g in zip(model.parameters(), expected):
        torch.testing.assert_close(p.grad, g)
    # Weight 0 means task 2 contributes nothing: its output row gets no gradient.
    assert torch.count_nonzero(model.weight.grad[2]) == 0
    assert torch.count_nonzero(model.weight.grad[1]) > 0


def test_gradient_differs_from_unweighted_sum():
    """Guards the test above against passing trivially."""
    model, losses = make_ones_problem()
    unweighted = reference_grads(model, losses, [1.0, 1.0, 1.0])
    StaticWeights([0.5, 2.0, 0.0]).backward(losses())
    assert not torch.allclose(model.weight.grad, unweighted[0])


def test_equal_weights_is_the_plain_sum():
    model, losses = make_ones_problem()
    expected = reference_grads(model, losses, [1.0, 1.0, 1.0])
    balancer = EqualWeights(3)
    assert isinstance(balancer, StaticWeights)
    assert balancer.num_tasks == 3
    balancer.backward(losses())
    for p, g in zip(model.parameters(), expected):
        torch.testing.assert_close(p.grad, g)
    assert torch.equal(balancer.weights, torch.ones(3))


def test_weights_never_change_and_step_count_counts():
    model, losses = make_ones_problem()
    balancer = StaticWeights([1.0, 3.0, 0.25])
    assert balancer.num_tasks == 3
    assert balancer.step_count == 0
    before = balancer.weights
    assert before.dtype == torch.float32 and before.device.type == "cpu"
    assert torch.equal(before, torch.tensor([1.0, 3.0, 0.25]))
    for step in range(3):
        model.zero_grad()
        balancer.backward(losses())
        balancer.end_epoch()
        assert balancer.step_count == step + 1
        assert torch.equal(balancer.weights, before)


def test_float64_losses_use_the_exact_float64_weights():
    model, losses = make_ones_problem(dtype=torch.float64)
    weights = [0.1, 0.3, 0.7]  # not representable in float32
    expected = reference_grads(model, losses, weights)
    balancer = StaticWeights(weights)
    balancer.backward(losses())
    assert balancer.weights.dtype == torch.float64
    assert torch.equal(balancer.weights, torch.tensor(weights, dtype=torch.float64))
    for p, g in zip(model.parameters(), expected):
        assert p.grad.dtype == torch.float64
        torch.testing.assert_close(p.grad, g, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize(
    "bad",
    [
        [],
        [1.0, -1.0],
        [float("nan"), 1.0],
        [math.inf, 1.0],
        [0.0, 0.0],
        "12",
        3,
        [1.0, "a"],
        [True, 1.0],
        [1.0, None],
    ],
)
def test_bad_weights_raise_one_line_error_naming_weights(bad):
    with pytest.raises((ValueError, TypeError)) as info:
        StaticWeights(bad)
    message = str(info.value)
    assert "weights" in message and "\n" not in message


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "3"])
def test_equal_weights_bad_num_tasks(bad):
    with pytest.raises(ValueError, match="num_tasks"):
        EqualWeights(bad)


def test_other_sequences_are_accepted():
    assert torch.equal(StaticWeights((1, 2)).weights, torch.tensor([1.0, 2.0]))
    assert torch.equal(StaticWeights(torch.tensor([0.5, 0.0])).weights, torch.tensor([0.5, 0.0]))


def test_load_state_dict_refuses_other_weights_and_changes_nothing():
    original = StaticWeights([1.0, 2.0])
    original.step_count = 5
    other = StaticWeights([1.0, 3.0])
    with pytest.raises(ValueError, match="weights"):
        other.load_state_dict(original.state_dict())
    assert other.step_count == 0
    with pytest.raises(ValueError, match="num_tasks"):
        StaticWeights([1.0, 2.0, 3.0]).load_state_dict(original.state_dict())
