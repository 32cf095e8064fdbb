"""IMTLL against a hand-written numpy Adam/SGD on s, autograd on the literal IMTL-L loss, and
torch.optim.Adam on a separate s."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from gradnorm_core import IMTLL, make_balancer
from balancer_fixtures import fit_and_resume, make_problem, sgd_step_model


class NumpyReference:
    """s on the literal loss sum_i (exp(s_i) L_i - s_i), with textbook Adam (Kingma & Ba) or SGD."""

    def __init__(self, num_tasks: int, lr: float, optimizer: str) -> None:
        self.s = np.zeros(num_tasks)
        self.lr, self.optimizer = lr, optimizer
        self.m = np.zeros(num_tasks)
        self.v = np.zeros(num_tasks)
        self.t = 0

    def step(self, losses: np.ndarray) -> None:
        grad = np.exp(self.s) * losses - 1.0  # d/ds of exp(s) L - s
        if self.optimizer == "sgd":
            self.s = self.s - self.lr * grad
            return
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * grad
        self.v = 0.999 * self.v + 0.001 * grad**2
        m_hat = self.m / (1 - 0.9**self.t)
        v_hat = self.v / (1 - 0.999**self.t)
        self.s = self.s - self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)


def test_initial_state():
    balancer = IMTLL(3)
    assert balancer.num_tasks == 3 and balancer.step_count == 0
    assert balancer.lr == 0.025 and balancer.optimizer_name == "adam"
    assert torch.equal(balancer.log_scales, torch.zeros(3))
    assert torch.equal(balancer.weights, torch.ones(3))


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_and_log_scales_match_numpy_reference(optimizer, dtype):
    lr = 0.1 if optimizer == "adam" else 0.05
    model, losses = make_problem(dtype=dtype)
    balancer = IMTLL(3, lr=lr, optimizer=optimizer)
    reference = NumpyReference(3, lr, optimizer)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    for step in range(6):
        s_old = reference.s.copy()
        # Independent reference: autograd of the literal loss in s_old on a fresh forward pass;
        # the -s term does not depend on the network.
        values = losses()
        s_tensor = torch.tensor(s_old, dtype=dtype)
        literal = (torch.exp(s_tensor) * values - s_tensor).sum()
        grads = torch.autograd.grad(literal, list(model.parameters()))
        reference.step(values.detach().double().numpy())
        model.zero_grad()
        balancer.backward(losses())
        for p, g in zip(model.parameters(), grads):
            assert p.grad.dtype == dtype
            torch.testing.assert_close(p.grad, g, **tol)
        s_new = balancer.log_scales
        assert s_new.dtype == dtype and balancer.weights.dtype == dtype and balancer.step_count == step + 1
        np.testing.assert_allclose(s_new.double().numpy(), reference.s, rtol=tol["rtol"], atol=tol["atol"])
        np.testing.assert_allclose(balancer.weights.double().numpy(), np.exp(reference.s), rtol=tol["rtol"] * 10)
        sgd_step_model(model)
    assert np.abs(reference.s).min() > 0.1  # s really moved, so the checks used non-trivial s_old
    # task 1's loss is largest: its scale fell, task 2's (smallest loss) rose
    assert reference.s[1] < 0 < reference.s[2]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_matches_torch_adam_on_the_literal_loss(dtype):
    """Reference: s as a separate parameter, sum exp(s) L - s differentiated by autograd."""
    lr = 0.05
    sequence = [[2.0, 0.5, 1.0], [1.5, 0.7, 3.0], [1.0, 0.1, 2.0], [0.8, 0.05, 0.5], [0.6, 0.2, 0.25]]
    balancer = IMTLL(3, lr=lr)  # default optimizer: adam
    s_ref = torch.zeros(3, dtype=dtype, requires_grad=True)
    optimizer = torch.optim.Adam([s_ref], lr=lr)
    for values in sequence:
        losses = torch.tensor(values, dtype=dtype, requires_grad=True)
        balancer.backward(losses)
        # The "network" here is the loss vector itself: its gradient must be exp(s_old).
        torch.testing.assert_close(losses.grad, torch.exp(s_ref.detach()))
        optimizer.zero_grad()
        (torch.exp(s_ref) * torch.tensor(values, dtype=dtype) - s_ref).sum().backward()
        optimizer.step()
        torch.testing.assert_close(balancer.log_scales, s_ref.detach())
    assert (balancer.log_scales.abs() > 0.1).all()


def test_network_gradient_uses_old_not_new_log_scales():
    model, losses = make_problem()
    balancer = IMTLL(3, lr=0.5, optimizer="sgd")
    balancer.backward(losses())  # s moves away from 0
    sgd_step_model(model)
    s_before = balancer.log_scales
    values = losses()
    with_old = torch.autograd.grad((torch.exp(s_before) * values).sum(), [model.weight])[0]
    model.zero_grad()
    balancer.backward(losses())
    values = losses()
    with_new = torch.autograd.grad((torch.exp(balancer.log_scales) * values).sum(), [model.weight])[0]
    torch.testing.assert_close(model.weight.grad, with_old)
    assert not torch.allclose(model.weight.grad, with_new)


def test_fixed_losses_drive_the_scaled_losses_to_one():
    """The minimiser of exp(s) L - s is exp(s) = 1 / L: the weights become those of scale_invariant."""
    values = [4.0, 0.25, 1.0]
    balancer = IMTLL(3, lr=0.1, optimizer="sgd")
    for _ in range(400):
        balancer.backward(torch.tensor(values, dtype=torch.float64, requires_grad=True))
    np.testing.assert_allclose(balancer.weights.numpy() * np.array(values), 1.0, rtol=1e-6)


def test_load_state_dict_refuses_other_configuration_and_changes_nothing():
    model, losses = make_problem()
    original = IMTLL(3, lr=0.1)
    for _ in range(2):
        model.zero_grad()
        original.backward(losses())
        sgd_step_model(model)
    state = original.state_dict()
    for other in (IMTLL(3, lr=0.2), IMTLL(3, lr=0.1, optimizer="sgd")):
        with pytest.raises(ValueError, match="build it with the same"):
            other.load_state_dict(state)
        assert other.step_count == 0 and torch.equal(other.log_scales, torch.zeros(3))
    with pytest.raises(ValueError, match="num_tasks"):
        IMTLL(2, lr=0.1).load_state_dict(state)
    fresh = IMTLL(3, lr=0.1)
    for broken in ({k: v for k, v in state.items() if k != "log_scales"}, dict(state, log_scales=torch.zeros(4))):
        with pytest.raises(ValueError, match="log_scales") as info:
            fresh.load_state_dict(broken)
        assert "\n" not in str(info.value)
        assert fresh.step_count == 0 and torch.equal(fresh.log_scales, torch.zeros(3))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_tasks=0), "num_tasks"),
        (dict(num_tasks=2, lr=0.0), "lr"),
        (dict(num_tasks=2, lr=float("inf")), "lr"),
        (dict(num_tasks=2, lr="fast"), "lr"),
        (dict(num_tasks=2, optimizer="rmsprop"), "optimizer"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        IMTLL(**kwargs)
    assert "\n" not in str(info.value)


def test_make_balancer_builds_it_and_rejects_unknown_options():
    balancer = make_balancer("imtl_l", 3, lr=0.05, optimizer="sgd")
    assert isinstance(balancer, IMTLL) and (balancer.lr, balancer.optimizer_name) == (0.05, "sgd")
    assert isinstance(make_balancer("imtl_l", 3), IMTLL)
    message = "method 'imtl_l' takes no option 'temperature'; accepted options: lr, optimizer"
    with pytest.raises(ValueError, match=message):
        make_balancer("imtl_l", 3, temperature=2.0)


def test_a_run_through_fit_weights_the_largest_loss_least():
    records = fit_and_resume("imtl_l", lr=0.05)
    assert records[-1]["weights"][2] < records[-1]["weights"][0]


def test_imtl_l_is_uncertainty_weighting_without_its_half():
    """IMTL-L's sum_i (e^{s_i} L_i - s_i) is twice Kendall et al.'s regression loss
    sum_i (1/2 e^{-u_i} L_i + u_i / 2) at u = -s. With SGD, IMTL-L at lr is exactly uncertainty
    weighting at 2 lr with s = -u and twice its weights; with Adam, which ignores a gradient's
    scale, s = -u at the same lr up to Adam's epsilon."""
    from gradnorm_core.balancers.uncertainty import UncertaintyWeighting

    for optimizer, lr_factor, tol in (("sgd", 2.0, 1e-12), ("adam", 1.0, 1e-6)):
        imtl = IMTLL(3, lr=0.05, optimizer=optimizer)
        uncertainty = UncertaintyWeighting(3, lr=0.05 * lr_factor, optimizer=optimizer)  # every task regression
        generator = torch.Generator().manual_seed(0)
        for _ in range(20):
            values = torch.rand(3, generator=generator, dtype=torch.float64) * 5
            imtl.backward(values.clone().requires_grad_())
            uncertainty.backward(values.clone().requires_grad_())
            torch.testing.assert_close(imtl.log_scales, -uncertainty.log_variances, rtol=tol, atol=tol)
            torch.testing.assert_close(imtl.weights, 2 * uncertainty.weights, rtol=tol, atol=0)
        assert (imtl.log_scales.abs() > 0.05).any()
