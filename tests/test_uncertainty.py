"""UncertaintyWeighting's own math: Kendall, Gal & Cipolla's loss written literally in sigma
(1 / (2 sigma^2) L + log sigma for regression, 1 / sigma^2 L + log sigma for classification) with
torch.optim.Adam, hand-computed SGD steps, a hand-worked example, and the task kinds a problem
gives it."""

from __future__ import annotations

import math

import pytest
import torch

from gradnorm_core import make_balancer, make_problem
from gradnorm_core.balancers.uncertainty import UncertaintyWeighting
from balancer_fixtures import make_problem as tiny_problem, sgd_step_model

KINDS = ["regression", "classification", "regression"]
FACTOR = {"regression": 0.5, "classification": 1.0}


def kendall_loss(s: torch.Tensor, losses: torch.Tensor, kinds) -> torch.Tensor:
    """The paper's terms in sigma = exp(s / 2): eq. 7 for regression, eq. 10 for classification."""
    sigma = torch.exp(s / 2)
    total = 0.0
    for i, kind in enumerate(kinds):
        scale = 1 / (2 * sigma[i] ** 2) if kind == "regression" else 1 / sigma[i] ** 2
        total = total + scale * losses[i] + torch.log(sigma[i])
    return total


def test_initial_weights_are_kendalls_factors():
    assert torch.equal(UncertaintyWeighting(3, kinds=KINDS).weights, torch.tensor([0.5, 1.0, 0.5]))
    balancer = UncertaintyWeighting(2)
    assert balancer.kinds == ["regression", "regression"]  # None: every task regression (LibMTL's form)
    assert torch.equal(balancer.weights, torch.full((2,), 0.5))
    assert torch.equal(balancer.log_variances, torch.zeros(2))


def test_one_step_by_hand():
    """T = 2, kinds (regression, classification), L = (4, 1), SGD lr 0.1, s = 0. Network weights
    (1/2, 1); dL/ds = 1/2 - a e^{-s} L = (1/2 - 2, 1/2 - 1) = (-1.5, -0.5); s = (0.15, 0.05)."""
    balancer = UncertaintyWeighting(2, lr=0.1, optimizer="sgd", kinds=["regression", "classification"])
    losses = torch.tensor([4.0, 1.0], dtype=torch.float64, requires_grad=True)
    balancer.backward(losses)
    torch.testing.assert_close(losses.grad, torch.tensor([0.5, 1.0], dtype=torch.float64), rtol=0, atol=0)
    torch.testing.assert_close(balancer.log_variances, torch.tensor([0.15, 0.05], dtype=torch.float64),
                               rtol=1e-15, atol=1e-16)
    torch.testing.assert_close(balancer.weights, torch.tensor([0.5 * math.exp(-0.15), math.exp(-0.05)],
                                                              dtype=torch.float64), rtol=1e-15, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sgd_steps_match_hand_computation(dtype):
    """s_new = s_old - lr (1/2 - a e^{-s_old} L); the network sees a e^{-s_old} as weights."""
    lr = 0.3
    model, losses = tiny_problem(dtype=dtype)
    balancer = UncertaintyWeighting(3, lr=lr, optimizer="sgd", kinds=KINDS)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    for step in range(4):
        s_old = [float(v) for v in balancer.log_variances]
        a = [FACTOR[k] for k in KINDS]
        values = losses()
        reference = torch.autograd.grad(sum(a[i] * math.exp(-s_old[i]) * values[i] for i in range(3)),
                                        list(model.parameters()))
        L = values.detach().tolist()
        model.zero_grad()
        balancer.backward(losses())
        for p, g in zip(model.parameters(), reference):
            torch.testing.assert_close(p.grad, g, **tol)
        expected = [s_old[i] - lr * (0.5 - a[i] * math.exp(-s_old[i]) * L[i]) for i in range(3)]
        torch.testing.assert_close(balancer.log_variances, torch.tensor(expected, dtype=dtype), **tol)
        torch.testing.assert_close(balancer.weights, torch.tensor(a, dtype=dtype) * torch.exp(-balancer.log_variances),
                                   **tol)
        sgd_step_model(model)
    assert (balancer.log_variances.abs() > 0.1).all()


@pytest.mark.parametrize("kinds", [KINDS, None, ["classification"] * 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_matches_torch_adam_on_the_papers_loss_in_sigma(kinds, dtype):
    lr = 0.05
    sequence = [[2.0, 0.5, 1.0], [1.5, 0.7, 3.0], [1.0, 0.1, 2.0], [0.8, 0.05, 0.5], [0.6, 0.2, 0.25]]
    balancer = UncertaintyWeighting(3, lr=lr, kinds=kinds)  # default optimizer: adam
    literal_kinds = kinds or ["regression"] * 3
    s_ref = torch.zeros(3, dtype=dtype, requires_grad=True)
    optimizer = torch.optim.Adam([s_ref], lr=lr)
    for values in sequence:
        losses = torch.tensor(values, dtype=dtype, requires_grad=True)
        balancer.backward(losses)
        # the network's gradient: d(loss)/dL_i of the paper's loss at s before the step
        (expected_weights,) = torch.autograd.grad(kendall_loss(s_ref.detach(), losses, literal_kinds), [losses])
        torch.testing.assert_close(losses.grad, expected_weights)
        optimizer.zero_grad()
        kendall_loss(s_ref, torch.tensor(values, dtype=dtype), literal_kinds).backward()
        optimizer.step()
        torch.testing.assert_close(balancer.log_variances, s_ref.detach())
    assert (balancer.log_variances.abs() > 0.03).all()  # s really moved


def test_fixed_losses_drive_each_weight_to_one_over_twice_the_loss():
    """The minimiser of a e^{-s} L + s/2 is e^s = 2 a L: the weight a e^{-s} is 1 / (2 L)."""
    values = [4.0, 0.25, 1.0]
    balancer = UncertaintyWeighting(3, lr=0.2, optimizer="sgd", kinds=KINDS)
    for _ in range(600):
        balancer.backward(torch.tensor(values, dtype=torch.float64, requires_grad=True))
    torch.testing.assert_close(balancer.weights * torch.tensor(values, dtype=torch.float64),
                               torch.full((3,), 0.5, dtype=torch.float64), rtol=1e-6, atol=0)


def test_network_gradient_uses_old_not_new_log_variances():
    model, losses = tiny_problem()
    balancer = UncertaintyWeighting(3, lr=0.5, optimizer="sgd")
    balancer.backward(losses())  # s moves away from 0
    sgd_step_model(model)
    s_before = balancer.log_variances
    with_old = torch.autograd.grad((0.5 * torch.exp(-s_before) * losses()).sum(), [model.weight])[0]
    model.zero_grad()
    balancer.backward(losses())
    with_new = torch.autograd.grad((0.5 * torch.exp(-balancer.log_variances) * losses()).sum(), [model.weight])[0]
    torch.testing.assert_close(model.weight.grad, with_old)
    assert not torch.allclose(model.weight.grad, with_new)


def test_state_dict_refuses_other_kinds_and_changes_nothing():
    original = UncertaintyWeighting(3, lr=0.1, kinds=KINDS)
    original.backward(torch.tensor([1.0, 2.0, 3.0], requires_grad=True))
    state = original.state_dict()
    assert state["kinds"] == KINDS
    for other in (UncertaintyWeighting(3, lr=0.1), UncertaintyWeighting(3, lr=0.2, kinds=KINDS)):
        with pytest.raises(ValueError, match="build it with the same") as info:
            other.load_state_dict(state)
        assert "\n" not in str(info.value) and other.step_count == 0
        assert torch.equal(other.log_variances, torch.zeros(3))
    copy = UncertaintyWeighting(3, lr=0.1, kinds=KINDS)
    copy.load_state_dict(state)
    assert torch.equal(copy.state_dict()["log_variances"], state["log_variances"])


@pytest.mark.parametrize(
    "kinds, match",
    [
        (["regression"], r"kinds must be a list of 2 task kinds"),
        ("regression", r"kinds must be a list of 2 task kinds"),
        (["regression", "ranking"], r"kinds\[1\] must be 'regression' or 'classification', got 'ranking'"),
    ],
)
def test_bad_kinds(kinds, match):
    with pytest.raises(ValueError, match=match) as info:
        UncertaintyWeighting(2, kinds=kinds)
    assert "\n" not in str(info.value)


def test_kinds_come_from_the_problem():
    problem = make_problem("multidigits", num_train=64, num_val=32, num_test=32)
    assert problem.task_kinds() == ("classification", "classification", "regression")
    assert make_problem("toy_t2").task_kinds() == ("regression", "regression")
    balancer = make_balancer("uncertainty", 3, kinds=list(problem.task_kinds()))
    assert torch.equal(balancer.weights, torch.tensor([1.0, 1.0, 0.5]))


def test_a_trial_of_uncertainty_takes_the_problems_kinds():
    from trainables.config import TrialConfig

    problem = {"name": "multidigits", "options": {"num_train": 64, "num_val": 32, "num_test": 32}}
    config = TrialConfig.from_dict({"problem": problem, "balancer": {"method": "uncertainty"},
                                    "training": {"epochs": 1}})
    _, _, balancer = config.build()
    assert balancer.kinds == ["classification", "classification", "regression"]
    given = TrialConfig.from_dict({"problem": problem, "training": {"epochs": 1},
                                   "balancer": {"method": "uncertainty", "kinds": ["regression"] * 3}})
    assert given.build()[2].kinds == ["regression"] * 3
