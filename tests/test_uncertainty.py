"""UncertaintyWeighting against hand-computed updates and a reference loop with torch.optim.Adam."""

from __future__ import annotations

import math

import pytest
import torch

from gradnorm_core.balancers.base import NonFiniteLossError
from gradnorm_core.balancers.uncertainty import UncertaintyWeighting
from balancer_fixtures import make_problem, sgd_step_model


def test_initial_state():
    balancer = UncertaintyWeighting(3)
    assert balancer.num_tasks == 3 and balancer.step_count == 0
    assert torch.equal(balancer.log_variances, torch.zeros(3))
    assert torch.equal(balancer.weights, torch.ones(3))
    assert not balancer.weights.requires_grad and not balancer.log_variances.requires_grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sgd_steps_match_hand_computation(dtype):
    """s_new = s_old - lr (1 - exp(-s_old) L), and the network sees exp(-s_old) as weights."""
    lr = 0.3
    model, losses = make_problem(dtype=dtype)
    balancer = UncertaintyWeighting(3, lr=lr, optimizer="sgd")
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    for step in range(4):
        s_old = balancer.log_variances.to(dtype)
        # Independent reference: autograd gradient of sum_i exp(-s_old_i) L_i, fresh forward pass.
        values = losses()
        reference = torch.autograd.grad(
            sum(math.exp(-float(s_old[i])) * values[i] for i in range(3)), list(model.parameters())
        )
        L = values.detach()
        model.zero_grad()
        balancer.backward(losses())
        for p, g in zip(model.parameters(), reference):
            assert p.grad.dtype == dtype
            torch.testing.assert_close(p.grad, g, **tol)
        expected = [float(s_old[i]) - lr * (1.0 - math.exp(-float(s_old[i])) * float(L[i])) for i in range(3)]
        s_new = balancer.log_variances
        assert s_new.dtype == dtype and balancer.weights.dtype == dtype
        torch.testing.assert_close(s_new, torch.tensor(expected, dtype=dtype), **tol)
        torch.testing.assert_close(balancer.weights, torch.exp(-s_new), **tol)
        assert balancer.step_count == step + 1
        sgd_step_model(model)
    # The weights really moved away from 1, so the checks above used non-trivial s_old.
    assert (balancer.log_variances.abs() > 0.1).all()


def test_network_gradient_uses_old_not_new_log_variances():
    model, losses = make_problem()
    balancer = UncertaintyWeighting(3, lr=0.5, optimizer="sgd")
    balancer.backward(losses())  # s moves away from 0
    sgd_step_model(model)
    s_before = balancer.log_variances
    values = losses()
    with_old = torch.autograd.grad((torch.exp(-s_before) * values).sum(), [model.weight])[0]
    model.zero_grad()
    balancer.backward(losses())
    s_after = balancer.log_variances
    values = losses()
    with_new = torch.autograd.grad((torch.exp(-s_after) * values).sum(), [model.weight])[0]
    torch.testing.assert_close(model.weight.grad, with_old)
    assert not torch.allclose(model.weight.grad, with_new)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_steps_match_reference_loop(dtype):
    """Reference: s as a separate parameter, total = sum exp(-s) L + s differentiated by autograd."""
    lr = 0.05
    sequence = [[2.0, 0.5, 1.0], [1.5, 0.7, 3.0], [1.0, 0.1, 2.0], [0.8, 0.05, 0.5], [0.6, 0.2, 0.25]]
    balancer = UncertaintyWeighting(3, lr=lr)  # default optimizer: adam
    s_ref = torch.zeros(3, dtype=dtype, requires_grad=True)
    optimizer = torch.optim.Adam([s_ref], lr=lr)
    for values in sequence:
        losses = torch.tensor(values, dtype=dtype, requires_grad=True)
        balancer.backward(losses)
        # The "network" here is the loss vector itself: its gradient must be exp(-s_old).
        torch.testing.assert_close(losses.grad, torch.exp(-s_ref.detach()))
        optimizer.zero_grad()
        total = (torch.exp(-s_ref) * torch.tensor(values, dtype=dtype) + s_ref).sum()
        total.backward()
        optimizer.step()
        torch.testing.assert_close(balancer.log_variances, s_ref.detach())
    assert balancer.log_variances.dtype == dtype
    assert (balancer.log_variances.abs() > 0.1).all()


def run_steps(balancer, model, losses, steps):
    """Run steps and return the trajectory: (model grads, log-variances) after each."""
    trajectory = []
    for _ in range(steps):
        model.zero_grad()
        balancer.backward(losses())
        trajectory.append(([p.grad.clone() for p in model.parameters()], balancer.log_variances))
        sgd_step_model(model)
    return trajectory


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_state_dict_round_trip_continues_identically(optimizer, dtype):
    model, losses = make_problem(dtype=dtype)
    original = UncertaintyWeighting(3, lr=0.1, optimizer=optimizer)
    run_steps(original, model, losses, 3)
    state = original.state_dict()
    params = [p.detach().clone() for p in model.parameters()]

    expected = run_steps(original, model, losses, 4)  # the original goes on; ``state`` must not move

    with torch.no_grad():
        for p, saved in zip(model.parameters(), params):
            p.copy_(saved)
    copy = UncertaintyWeighting(3, lr=0.1, optimizer=optimizer)
    copy.load_state_dict(state)
    assert copy.step_count == 3
    got = run_steps(copy, model, losses, 4)
    for (grads_e, s_e), (grads_g, s_g) in zip(expected, got):
        assert torch.equal(s_e, s_g)
        for a, b in zip(grads_e, grads_g):
            assert torch.equal(a, b)
    assert copy.step_count == original.step_count == 7


def test_load_state_dict_refuses_other_configuration_and_changes_nothing():
    model, losses = make_problem()
    original = UncertaintyWeighting(3, lr=0.1)
    run_steps(original, model, losses, 2)
    state = original.state_dict()
    for other in (UncertaintyWeighting(3, lr=0.2), UncertaintyWeighting(3, lr=0.1, optimizer="sgd")):
        with pytest.raises(ValueError, match="build it with the same"):
            other.load_state_dict(state)
        assert other.step_count == 0
        assert torch.equal(other.log_variances, torch.zeros(3))
    with pytest.raises(ValueError, match="num_tasks"):
        UncertaintyWeighting(2, lr=0.1).load_state_dict(state)
    broken = dict(state)
    del broken["log_variances"]
    fresh = UncertaintyWeighting(3, lr=0.1)
    with pytest.raises(ValueError, match="log_variances"):
        fresh.load_state_dict(broken)
    assert fresh.step_count == 0


@pytest.mark.parametrize(
    "make_losses, error, match",
    [
        (lambda v: v[:2], ValueError, r"shape \(3,\)"),
        (lambda v: torch.cat([v, v[:1]]), ValueError, r"shape \(3,\)"),
        (lambda v: v.detach(), ValueError, "require grad"),
        (lambda v: v * torch.tensor([1.0, float("nan"), 1.0]), NonFiniteLossError, r"losses\[1\]"),
    ],
)
def test_bad_losses_raise_and_change_nothing(make_losses, error, match):
    model, losses = make_problem()
    balancer = UncertaintyWeighting(3, lr=0.1)
    run_steps(balancer, model, losses, 2)
    state = balancer.state_dict()
    model.zero_grad(set_to_none=True)
    with pytest.raises(error, match=match):
        balancer.backward(make_losses(losses()))
    after = balancer.state_dict()
    assert after["step_count"] == state["step_count"]
    assert torch.equal(after["log_variances"], state["log_variances"])
    assert after["optimizer"]["steps"] == state["optimizer"]["steps"]
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(after["optimizer"][key], state["optimizer"][key])
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_tasks=0), "num_tasks"),
        (dict(num_tasks=2.0), "num_tasks"),
        (dict(num_tasks=2, lr=0.0), "lr"),
        (dict(num_tasks=2, lr=-0.1), "lr"),
        (dict(num_tasks=2, lr=float("nan")), "lr"),
        (dict(num_tasks=2, lr="fast"), "lr"),
        (dict(num_tasks=2, optimizer="rmsprop"), "optimizer"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        UncertaintyWeighting(**kwargs)
    assert "\n" not in str(info.value)


def test_switching_losses_dtype_keeps_the_optimizer_state():
    """float32 steps then float64 steps: s and Adam's moments move along, Adam's step count goes on."""
    sequence = [[2.0, 0.5, 1.0], [1.5, 0.7, 3.0], [1.0, 0.1, 2.0], [0.8, 0.05, 0.5]]
    balancer = UncertaintyWeighting(3, lr=0.05)
    s_ref = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([s_ref], lr=0.05)
    for step, values in enumerate(sequence):
        dtype = torch.float32 if step < 2 else torch.float64
        balancer.backward(torch.tensor(values, dtype=dtype, requires_grad=True))
        optimizer.zero_grad()
        (torch.exp(-s_ref) * torch.tensor(values, dtype=torch.float64) + s_ref).sum().backward()
        optimizer.step()
        assert balancer.log_variances.dtype == dtype
        torch.testing.assert_close(
            balancer.log_variances.double(), s_ref.detach(), rtol=1e-5, atol=1e-6
        )
    balancer.backward(torch.tensor(sequence[0], dtype=torch.float64, requires_grad=True))
    adam_state = balancer.state_dict()["optimizer"]
    assert adam_state["steps"] == len(sequence) + 1
    assert adam_state["exp_avg"].dtype == torch.float64
