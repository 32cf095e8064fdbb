"""ScaleInvariant against plain autograd on the literal loss sum_i log L_i, and 1 / L in numpy."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from gradnorm_core import ScaleInvariant, make_balancer
from balancer_fixtures import fit_and_resume, make_problem, sgd_step_model


def run_steps(balancer, model, losses, steps):
    """Run steps and return the trajectory: (model grads, weights) after each."""
    trajectory = []
    for _ in range(steps):
        model.zero_grad()
        balancer.backward(losses())
        trajectory.append(([p.grad.clone() for p in model.parameters()], balancer.weights))
        sgd_step_model(model)
    return trajectory


def test_initial_state():
    balancer = ScaleInvariant(3)
    assert balancer.num_tasks == 3 and balancer.step_count == 0
    assert torch.equal(balancer.weights, torch.ones(3)) and not balancer.weights.requires_grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_and_weights_match_the_log_loss(dtype):
    model, losses = make_problem(dtype=dtype)
    balancer = ScaleInvariant(3)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    for step in range(5):
        # Independent reference: autograd of the literal sum_i log L_i on a fresh forward pass.
        values = losses()
        reference = torch.autograd.grad(torch.log(values).sum(), list(model.parameters()))
        expected_weights = 1.0 / values.detach().numpy().astype(np.float64)
        model.zero_grad()
        balancer.backward(losses())
        for p, g in zip(model.parameters(), reference):
            assert p.grad.dtype == dtype
            torch.testing.assert_close(p.grad, g, **tol)
        weights = balancer.weights
        assert weights.dtype == dtype and balancer.step_count == step + 1
        np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=1e-12 if dtype == torch.float64 else 1e-6)
        sgd_step_model(model, lr=0.05)
    # the losses span two orders of magnitude, so the weights above were far from ones
    assert float(balancer.weights.max() / balancer.weights.min()) > 10


def test_weights_are_the_gradient_coefficients_of_the_losses():
    """With the loss vector itself as the 'network', its gradient is exactly the reported weights."""
    balancer = ScaleInvariant(3)
    for values in ([2.0, 0.5, 1.0], [1e-3, 40.0, 7.0]):
        losses = torch.tensor(values, dtype=torch.float64, requires_grad=True)
        balancer.backward(losses)
        assert torch.equal(losses.grad, balancer.weights)
        np.testing.assert_allclose(balancer.weights.numpy() * np.array(values), 1.0, rtol=1e-15)


def test_scaling_a_task_loss_leaves_the_gradient_unchanged():
    model, losses = make_problem(dtype=torch.float64)
    grads = []
    for factor in (1.0, 1e4, 1e-4):
        balancer = ScaleInvariant(3)
        model.zero_grad()
        balancer.backward(losses() * torch.tensor([factor, 1.0, 1.0], dtype=torch.float64))
        grads.append([p.grad.clone() for p in model.parameters()])
    for other in grads[1:]:
        for a, b in zip(grads[0], other):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "make_losses, error, match",
    [
        (lambda v: v * torch.tensor([1.0, 0.0, 1.0]), ValueError, r"losses\[1\] is 0\.0 .*needs positive losses"),
        (lambda v: v * torch.tensor([1.0, 1.0, -2.0]), ValueError, r"losses\[2\] is -.*needs positive losses"),
        (lambda v: v * torch.tensor([1e-45, 1.0, 1.0]), ValueError, r"losses\[0\] .*1/L overflows"),
    ],
)
def test_losses_a_log_cannot_take_raise_one_line_and_change_nothing(make_losses, error, match):
    model, losses = make_problem()
    balancer = ScaleInvariant(3)
    run_steps(balancer, model, losses, 2)
    before = balancer.state_dict()
    model.zero_grad(set_to_none=True)
    with pytest.raises(error, match=match) as info:
        balancer.backward(make_losses(losses()))
    assert "\n" not in str(info.value)
    after = balancer.state_dict()
    assert after["step_count"] == before["step_count"] == 2
    assert torch.equal(after["weights"], before["weights"])
    assert all(p.grad is None for p in model.parameters())


def test_load_state_dict_refuses_bad_states_and_changes_nothing():
    balancer = ScaleInvariant(3)
    balancer.backward(torch.tensor([2.0, 4.0, 8.0], requires_grad=True))
    state = balancer.state_dict()
    with pytest.raises(ValueError, match="num_tasks"):
        ScaleInvariant(2).load_state_dict(state)
    fresh = ScaleInvariant(3)
    for broken in (dict(state, weights=torch.ones(5)), {k: v for k, v in state.items() if k != "weights"}):
        with pytest.raises(ValueError, match="weights") as info:
            fresh.load_state_dict(broken)
        assert "\n" not in str(info.value)
        assert fresh.step_count == 0 and torch.equal(fresh.weights, torch.ones(3))


def test_make_balancer_builds_it_and_rejects_options():
    balancer = make_balancer("scale_invariant", 4)
    assert isinstance(balancer, ScaleInvariant) and balancer.num_tasks == 4
    with pytest.raises(ValueError, match="method 'scale_invariant' takes no option 'lr'; accepted options: none"):
        make_balancer("scale_invariant", 4, lr=0.1)
    with pytest.raises(ValueError, match="num_tasks"):
        make_balancer("scale_invariant", 0)


def test_a_run_through_fit_weights_each_task_by_its_inverse_loss():
    # the weights of the last step are 1 / that step's losses: the largest-sigma task's is smallest
    for record in fit_and_resume("scale_invariant"):
        assert all(w > 0 for w in record["weights"]) and record["weights"][2] < record["weights"][0]