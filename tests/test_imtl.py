"""IMTL (hybrid) against independent computations: IMTL-G's alpha from its defining conditions
solved by numpy (sum 1, equal projections on every unit gradient), a hand-worked 2-task example,
and whole steps on a tiny multi-head network against per-task autograd to the representation,
with IMTL-L's scales stepped by a numpy Adam."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from gradnorm_core import IMTL, MultiHeadNet, make_balancer, make_problem
from gradnorm_core.balancers.imtl import imtl_g_alphas
from balancer_fixtures import fit_and_resume


def alphas_from_conditions(grads: np.ndarray) -> np.ndarray:
    """alpha solving sum_t alpha_t = 1 and (u_1 - u_t) . sum_k alpha_k g_k = 0 for t = 2..T."""
    units = grads / np.linalg.norm(grads, axis=1, keepdims=True)
    rows = [np.ones(len(grads))] + [(units[0] - units[t]) @ grads.T for t in range(1, len(grads))]
    return np.linalg.solve(np.array(rows), np.eye(len(grads))[0])


def test_two_tasks_by_hand():
    """g_1 = (1, 0), g_2 = (0, 2): u = (1, 0), (0, 1); D = (1, -2), U = (1, -1); alpha_2 = g_1.U /
    D.U = 1/3, alpha_1 = 2/3; g = (2/3, 2/3) projects 2/3 on both unit gradients."""
    alphas = imtl_g_alphas(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    torch.testing.assert_close(alphas, torch.tensor([2 / 3, 1 / 3], dtype=torch.float64), rtol=1e-15, atol=0)


@pytest.mark.parametrize("num_tasks", [2, 3, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_closed_form_matches_the_conditions_solved_by_numpy(num_tasks, seed):
    grads = np.random.default_rng(seed).normal(size=(num_tasks, 7)) * np.array([1, 10, 0.1, 3, 1])[:num_tasks, None]
    got = imtl_g_alphas(torch.tensor(grads)).numpy()
    np.testing.assert_allclose(got, alphas_from_conditions(grads), rtol=1e-9, atol=1e-12)
    combined = got @ grads
    projections = (grads / np.linalg.norm(grads, axis=1, keepdims=True)) @ combined
    np.testing.assert_allclose(projections, projections[0], rtol=1e-9)
    assert imtl_g_alphas(torch.tensor(grads[:1])).tolist() == [1.0]


def test_undefined_closed_form_is_none():
    assert imtl_g_alphas(torch.tensor([[1.0, 2.0], [0.0, 0.0]])) is None  # a zero gradient
    assert imtl_g_alphas(torch.tensor([[1.0, 2.0], [2.0, 4.0]])) is None  # parallel: u_1 - u_2 = 0
    assert imtl_g_alphas(torch.tensor([[1.0, math.nan], [1.0, 0.0]])) is None


def tiny_net(seed: int = 0) -> tuple[MultiHeadNet, torch.Tensor, list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = MultiHeadNet(nn.Sequential(nn.Linear(4, 6), nn.Tanh()), [nn.Linear(6, 1) for _ in range(3)])
    x = torch.randn(10, 4, generator=generator, dtype=torch.float64)
    targets = [torch.randn(10, 1, generator=generator, dtype=torch.float64) * scale for scale in (1.0, 10.0, 0.1)]
    return net.double(), x, targets


def task_losses(outputs, targets):
    return torch.stack([((o - t) ** 2).mean() for o, t in zip(outputs, targets)])


class NumpyAdam:
    def __init__(self, size: int, lr: float) -> None:
        self.lr, self.m, self.v, self.t = lr, np.zeros(size), np.zeros(size), 0

    def step(self, value: np.ndarray, grad: np.ndarray) -> np.ndarray:
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * grad
        self.v = 0.999 * self.v + 0.001 * grad**2
        return value - self.lr * (self.m / (1 - 0.9**self.t)) / (np.sqrt(self.v / (1 - 0.999**self.t)) + 1e-8)


def test_steps_match_per_task_autograd_to_the_representation():
    """Reference per step: z = trunk(x); G_t = d(e^{s_t} L_t)/dz by one autograd.grad per task;
    alpha from the conditions (numpy) on g_t = sum_b G_t; trunk gradient = that of
    sum_t alpha_t e^{s_t} L_t, heads' = that of sum_t e^{s_t} L_t; s by numpy Adam on e^s L - 1."""
    net, x, targets = tiny_net()
    twin = copy.deepcopy(net)
    balancer = IMTL(3, lr=0.1)
    s, adam = np.zeros(3), NumpyAdam(3, 0.1)
    ours, theirs = torch.optim.SGD(net.parameters(), lr=0.05), torch.optim.SGD(twin.parameters(), lr=0.05)
    for step in range(6):
        z = twin.trunk(x)
        losses = task_losses([head(z) for head in twin.heads], targets)
        scaled = torch.tensor(np.exp(s)) * losses
        per_task = [torch.autograd.grad(scaled[t], z, retain_graph=True)[0] for t in range(3)]
        alphas = alphas_from_conditions(np.stack([g.sum(0).numpy() for g in per_task]))
        trunk_grads = torch.autograd.grad((torch.tensor(alphas) * scaled).sum(), list(twin.trunk.parameters()),
                                          retain_graph=True)
        head_grads = torch.autograd.grad(scaled.sum(), list(twin.heads.parameters()))
        s = adam.step(s, np.exp(s) * losses.detach().numpy() - 1.0)

        ours.zero_grad()
        balancer.backward(task_losses(net(x, branch=balancer.branch), targets))
        for p, g in zip([*net.trunk.parameters(), *net.heads.parameters()], [*trunk_grads, *head_grads]):
            torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(balancer.alphas.numpy(), alphas, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(balancer.log_scales.numpy(), s, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(balancer.weights.numpy(), alphas * np.exp(s), rtol=1e-9, atol=1e-12)
        for q, g in zip([*twin.trunk.parameters(), *twin.heads.parameters()], [*trunk_grads, *head_grads]):
            q.grad = g
        ours.step()
        theirs.step()
    assert balancer.fallback_steps == 0 and balancer.step_count == 6
    assert np.ptp(alphas) > 0.05  # the tasks really got different alphas


def test_a_zero_task_gradient_falls_back_to_equal_alphas_and_counts():
    net, x, targets = tiny_net()
    with torch.no_grad():
        net.heads[1].weight.zero_()  # task 1's gradient at the representation is 0
    balancer = IMTL(3)
    balancer.backward(task_losses(net(x, branch=balancer.branch), targets))
    assert balancer.fallback_steps == 1 and balancer.state_dict()["fallback_steps"] == 1
    torch.testing.assert_close(balancer.alphas, torch.full((3,), 1 / 3, dtype=torch.float64))


def test_without_branch_it_says_what_to_do():
    net, x, targets = tiny_net()
    balancer = IMTL(3)
    losses = task_losses(net(x), targets)
    with pytest.raises(RuntimeError, match=r"IMTL needs the heads to read balancer.branch\(features\)") as info:
        balancer.backward(losses)
    assert "\n" not in str(info.value) and balancer.step_count == 0
    with torch.no_grad():  # evaluation: the representation itself, nothing recorded
        z = net.trunk(x)
        assert all(view is z for view in balancer.branch(z))
    with pytest.raises(ValueError, match="method 'imtl' needs a model whose forward takes branch="):
        make_balancer("imtl", 2, model=nn.Linear(3, 2))


def test_a_run_through_fit_on_a_convolutional_trunk_resumes_exactly_and_moves_the_weights():
    problem = make_problem("multidigits", num_train=128, num_val=64, num_test=64, seed=0)
    records = fit_and_resume("imtl", problem, batch_size=32, network_lr=2e-3, lr=0.05)
    assert records[-1]["weights"] != records[0]["weights"]