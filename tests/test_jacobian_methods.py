"""The gradient-aggregation methods (MGDA, PCGrad, CAGrad, Nash-MTL, IMTL-G, Aligned-MTL, UPGrad,
DualProj) and RLW against independent computations: each method's trunk and head gradients against
TorchJD's own aggregator applied to a Jacobian computed here task by task (``autograd.grad`` per
loss), on the trunk's parameters and on its output, over two steps (stateful Nash-MTL and PCGrad's
random orders included); MGDA with two tasks against the closed form of the min-norm point of a
segment; IMTL-G against the paper's closed form; RLW against softmax draws of a seeded generator.
The contract every balancer keeps (state_dict, resume, bad losses) is test_balancer_contract.py's."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from gradnorm_core import fit, make_balancer
from gradnorm_core.balancers import BalancerOptionError
from gradnorm_core.balancers.imtl import imtl_g_alphas
from gradnorm_core.problems import MultiHeadNet
from gradnorm_core.problems.multidigits import MultiDigits

SCALES = (1.0, 10.0, 0.1)


def make_net(num_tasks: int = 3, seed: int = 0) -> MultiHeadNet:
    torch.manual_seed(seed)
    trunk = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 6))
    return MultiHeadNet(trunk, [nn.Linear(6, 1) for _ in range(num_tasks)]).double()


def batch(num_tasks: int = 3, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(16, 4, generator=generator, dtype=torch.float64),
            torch.randn(16, num_tasks, generator=generator, dtype=torch.float64))


def losses_of(outputs, y) -> torch.Tensor:
    scales = torch.tensor(SCALES[:len(outputs)], dtype=y.dtype)
    return scales * torch.stack([((out.squeeze(1) - y[:, i]) ** 2).mean() for i, out in enumerate(outputs)])


def reference_step(model: MultiHeadNet, aggregator, form: str, x, y) -> list[torch.Tensor]:
    """Every parameter's gradient as TorchJD's ``aggregator`` gives it, the Jacobian taken task by
    task here: the trunk's from the aggregated rows, each head's from its own loss."""
    features = model.trunk(x)
    losses = losses_of([head(features) for head in model.heads], y)
    trunk = list(model.trunk.parameters())
    wrt = trunk if form == "parameters" else [features]
    rows = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, wrt, retain_graph=True)]) for loss in losses]
    aggregated = aggregator(torch.stack(rows))
    if form == "parameters":
        trunk_grads = list(torch.split(aggregated, [p.numel() for p in trunk]))
    else:
        trunk_grads = torch.autograd.grad(features, trunk, aggregated.reshape(features.shape), retain_graph=True)
    grads = [g.reshape(p.shape) for g, p in zip(trunk_grads, trunk)]
    for index, head in enumerate(model.heads):
        grads += torch.autograd.grad(losses[index], list(head.parameters()), retain_graph=True)
    return grads


def balancer_step(model: MultiHeadNet, balancer, x, y) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    balancer.backward(losses_of(model(x, branch=balancer.branch), y))
    return [p.grad.clone() for p in model.parameters()]


def sgd(model: nn.Module, grads: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for p, g in zip(model.parameters(), grads):
            p -= 0.05 * g


def aggregators():
    """method -> (its options here, TorchJD's aggregator of the same configuration)."""
    from torchjd import aggregation as tj
    from torchjd.linalg import QuadprogProjector

    return {
        "mgda": ({}, tj.MGDA()),
        "pcgrad": ({"seed": 5}, tj.PCGrad()),
        "cagrad": ({"c": 0.4}, tj.CAGrad(c=0.4)),
        "nash_mtl": ({}, tj.NashMTL(n_tasks=3)),
        "imtl_g": ({}, tj.IMTLG()),
        "aligned_mtl": ({}, tj.AlignedMTL()),
        "upgrad": ({}, tj.UPGrad(projector=QuadprogProjector(norm_eps=1e-4, reg_eps=1e-4))),
        "dualproj": ({}, tj.DualProj(projector=QuadprogProjector(norm_eps=1e-4, reg_eps=1e-4))),
    }


METHODS = ["mgda", "pcgrad", "cagrad", "nash_mtl", "imtl_g", "aligned_mtl", "upgrad", "dualproj"]


@pytest.mark.parametrize("form", ["parameters", "representation"])
@pytest.mark.parametrize("method", METHODS)
def test_each_method_gives_torchjds_aggregation_of_the_jacobian(method, form):
    options, aggregator = aggregators()[method]
    model = make_net()
    twin = copy.deepcopy(model)
    balancer = make_balancer(method, 3, model=model, jacobian=form, **options)
    torch.manual_seed(options.get("seed", 0))  # PCGrad's reference draws its orders from the global generator
    for step in range(2):
        x, y = batch(seed=step + 1)
        expected = reference_step(twin, aggregator, form, x, y)
        got = balancer_step(model, balancer, x, y)
        for a, b in zip(got, expected, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)
        sgd(model, got)
        sgd(twin, expected)
    assert balancer.step_count == 2


@pytest.mark.parametrize("form", ["parameters", "representation"])
def test_mgda_with_two_tasks_is_the_min_norm_point_of_the_segment(form):
    model = make_net(num_tasks=2)
    balancer = make_balancer("mgda", 2, model=model, jacobian=form)
    x, y = batch(num_tasks=2)
    features = model.trunk(x)
    losses = losses_of([head(features) for head in model.heads], y)
    trunk = list(model.trunk.parameters())
    wrt = trunk if form == "parameters" else [features]
    g1, g2 = (torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, wrt, retain_graph=True)]) for loss in losses)
    # the point of [g1, g2] nearest 0: g2 + gamma (g1 - g2), gamma = (g2 - g1).g2 / |g1 - g2|^2 in [0, 1]
    gamma = float(((g2 - g1) @ g2 / (g1 - g2).square().sum()).clamp(0, 1))
    assert 0 < gamma < 1  # the two gradients conflict: a point inside the segment
    got = balancer_step(model, balancer, x, y)
    torch.testing.assert_close(balancer.weights, torch.tensor([gamma, 1 - gamma], dtype=torch.float64))
    point = gamma * g1 + (1 - gamma) * g2
    if form == "parameters":
        expected = [g.reshape(p.shape) for g, p in zip(torch.split(point, [p.numel() for p in trunk]), trunk)]
    else:
        expected = torch.autograd.grad(features, trunk, point.reshape(features.shape))
    for a, b in zip(got[:len(trunk)], expected, strict=True):
        torch.testing.assert_close(a, b)


def test_imtl_g_weights_are_the_papers_closed_form_at_the_representation():
    model = make_net()
    balancer = make_balancer("imtl_g", 3, model=model, jacobian="representation")
    x, y = batch()
    features = model.trunk(x)
    losses = losses_of([head(features) for head in model.heads], y)
    rows = torch.stack([torch.autograd.grad(loss, features, retain_graph=True)[0].reshape(-1) for loss in losses])
    balancer_step(model, balancer, x, y)
    torch.testing.assert_close(balancer.weights, imtl_g_alphas(rows))


def test_nash_mtl_reuses_its_weights_between_updates():
    model = make_net()
    balancer = make_balancer("nash_mtl", 3, model=model, update_weights_every=2, max_norm=0.0)
    weights = []
    for step in range(3):
        x, y = batch(seed=step + 1)
        sgd(model, balancer_step(model, balancer, x, y))
        weights.append(balancer.weights)
    assert torch.equal(weights[1], weights[0]) and not torch.equal(weights[2], weights[1])


def test_rlw_draws_softmax_normals_from_its_seed_and_leaves_the_global_generator_alone():
    model = make_net()
    balancer = make_balancer("rlw", 3, model=model, seed=11)
    draws = torch.Generator().manual_seed(11)
    global_state = torch.get_rng_state()
    first = None
    for step in range(3):
        x, y = batch(seed=step + 1)
        losses = losses_of(model(x), y)
        per_task = [torch.autograd.grad(loss, list(model.parameters()), retain_graph=True, allow_unused=True)
                    for loss in losses]
        expected_weights = torch.softmax(torch.randn(3, generator=draws, dtype=torch.float64), dim=0)
        model.zero_grad(set_to_none=True)
        balancer.backward(losses)
        torch.testing.assert_close(balancer.weights, expected_weights, rtol=0, atol=0)
        first = expected_weights if first is None else first
        for index, param in enumerate(model.parameters()):
            expected = sum(w * g[index] for w, g in zip(expected_weights, per_task) if g[index] is not None)
            torch.testing.assert_close(param.grad, expected)
    assert torch.equal(torch.get_rng_state(), global_state)
    other = make_balancer("rlw", 3, model=model, seed=12)
    x, y = batch()
    other.backward(losses_of(model(x), y))
    assert not torch.equal(other.weights, first)


@pytest.mark.parametrize(("method", "options", "option"), [
    ("cagrad", {"c": -0.1}, None),
    ("cagrad", {"c": "0.4"}, "c"),
    ("mgda", {"jacobian": "output"}, "jacobian"),
    ("nash_mtl", {"update_weights_every": 0}, None),
    ("nash_mtl", {"update_weights_every": 1.5}, "update_weights_every"),
    ("aligned_mtl", {"scale_mode": "max"}, "scale_mode"),
    ("pcgrad", {"seed": -1}, None),
    ("rlw", {"weights": [1, 2, 3]}, "weights"),
])
def test_options_are_checked_in_one_line(method, options, option):
    with pytest.raises(ValueError) as error:
        make_balancer(method, 3, model=make_net(), **options)
    assert "\n" not in str(error.value)
    if option is not None:  # the registry's check names the option and the fix
        assert isinstance(error.value, BalancerOptionError) and error.value.option == option and "; " in str(error.value)
    else:  # the constructor's range check names the option
        assert str(error.value).startswith(next(iter(options)))


def test_a_model_without_branch_is_refused_before_training():
    with pytest.raises(ValueError, match="branch"):
        make_balancer("upgrad", 3, model=nn.Linear(4, 3))


@pytest.fixture(scope="module")
def multidigits():
    return MultiDigits(num_train=96, num_val=32, num_test=32, seed=0)


@pytest.mark.parametrize("method", [*METHODS, "rlw"])
def test_make_balancer_builds_and_fit_trains_each_method_on_multidigits(multidigits, method):
    model = multidigits.build_model(seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    balancer = make_balancer(method, multidigits.num_tasks, model=model)
    (record,) = list(fit(multidigits, balancer, model=model, epochs=1, batch_size=32, lr=0.002, seed=0))
    assert record.score is not None and math.isfinite(record.score)
    assert balancer.step_count == 3 and len(record.weights) == 3
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # trunk and heads trained


@pytest.mark.parametrize("form", ["parameters", "representation"])
def test_a_non_finite_weight_raises_before_any_gradient_is_written(form, monkeypatch):
    model = make_net()
    balancer = make_balancer("dualproj", 3, model=model, jacobian=form)
    x, y = batch()
    balancer_step(model, balancer, x, y)
    before, weights = balancer.state_dict(), balancer.weights
    monkeypatch.setattr(balancer, "_weigh", lambda jacobian: torch.tensor([1.0, float("nan"), 1.0]))
    model.zero_grad(set_to_none=True)
    with pytest.raises(ValueError, match=r"^DualProj's weighting gave \[1\.0, nan, 1\.0\] at step 1: not T finite"):
        balancer.backward(losses_of(model(x, branch=balancer.branch), y))
    assert all(p.grad is None for p in model.parameters())
    assert balancer.step_count == 1 and torch.equal(balancer.weights, weights)
    assert torch.equal(balancer.state_dict()["weights"], before["weights"])
