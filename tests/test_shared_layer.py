"""GradNorm's W named by module path: a Conv2d W in a model without ``branch`` against a literal
Algorithm 1 (create_graph=True), the Linear fast path choice, the training loop, bad paths."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gradnorm_core import GradNorm, Problem, Split, fit, make_balancer, seeded_init
from gradnorm_core.problems import Metrics, MultiDigits, NormalizedMSE
from trainables import TrialConfig, TrialConfigError

DTYPE = torch.float64
T = 3


class ConvNet(nn.Module):
    """A backbone of two convolutions and one linear head per task; forward(x) only (no branch)."""

    def __init__(self, tasks: int = T, seed: int = 0) -> None:
        super().__init__()
        with seeded_init(seed):
            self.backbone = nn.Sequential(
                nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3), nn.ReLU(), nn.Flatten()
            )
            self.heads = nn.ModuleList(nn.Linear(5 * 4 * 4, 2) for _ in range(tasks))

    def forward(self, x):
        features = self.backbone(x)
        return [head(features) for head in self.heads]


def batches(steps: int, size: int = 16, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    scales = (1.0, 10.0, 0.1)
    out = []
    for _ in range(steps):
        x = torch.randn(size, 1, 8, 8, generator=g, dtype=DTYPE)
        base = x.mean(dim=(1, 2, 3))
        ys = [s * torch.stack([base, torch.tanh(3 * base + 0.1 * torch.randn(size, generator=g, dtype=DTYPE))], 1)
              for s in scales]
        out.append((x, ys))
    return out


def losses_of(outputs, targets):
    return torch.stack([F.mse_loss(o, t) for o, t in zip(outputs, targets)])


class LiteralAlgorithm1:
    """The paper's Algorithm 1 as written: G_i(t) = ||grad_W w_i(t) L_i(t)||_2 with the graph
    kept (create_graph=True), L_grad = sum_i |G_i - Gbar * r_i^alpha| with the target held
    constant, dL_grad/dw by autograd; then the weights' Adam step, the clamp to min_weight and
    the renormalisation to sum T (GradNorm's documented defaults: Adam, lr 0.025, 1e-4)."""

    def __init__(self, shared: nn.Module, tasks: int, alpha: float, lr: float = 0.025, min_weight: float = 1e-4):
        self.shared = list(shared.parameters())
        self.tasks, self.alpha, self.min_weight = tasks, alpha, min_weight
        self.w = torch.ones(tasks, dtype=DTYPE, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.w], lr=lr)
        self.initial = None

    def step(self, losses: torch.Tensor) -> None:
        """Fill the network's gradients (with the weights before this step), then update w."""
        if self.initial is None:
            self.initial = losses.detach().clone()
        norms = []
        for i in range(self.tasks):
            grads = torch.autograd.grad(self.w[i] * losses[i], self.shared, retain_graph=True, create_graph=True)
            norms.append(torch.sqrt(sum((g**2).sum() for g in grads)))
        G = torch.stack(norms)
        ratio = losses.detach() / self.initial
        r = ratio / ratio.mean()
        target = (G.mean() * r**self.alpha).detach()
        L_grad = torch.abs(G - target).sum()
        (w_grad,) = torch.autograd.grad(L_grad, self.w, retain_graph=True)
        (self.w.detach() * losses).sum().backward()
        self.optimizer.zero_grad()
        self.w.grad = w_grad
        self.optimizer.step()
        with torch.no_grad():
            self.w.clamp_(min=self.min_weight)
            self.w.mul_(self.tasks / self.w.sum())


@pytest.mark.parametrize("alpha", [0.0, 1.5])
def test_conv_shared_layer_matches_literal_algorithm_step_by_step(alpha):
    model = ConvNet().to(DTYPE)
    reference = copy.deepcopy(model)
    balancer = make_balancer("gradnorm", T, model=model, shared_layer="backbone.2", alpha=alpha)
    assert isinstance(balancer, GradNorm) and not balancer.uses_branch
    assert [p is q for p, q in zip(balancer.shared_parameters(), model.backbone[2].parameters())] == [True, True]
    literal = LiteralAlgorithm1(reference.backbone[2], T, alpha)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    reference_optimizer = torch.optim.Adam(reference.parameters(), lr=1e-2)
    for step, (x, ys) in enumerate(batches(6)):
        optimizer.zero_grad()
        reference_optimizer.zero_grad()
        balancer.backward(losses_of(model(x), ys))
        literal.step(losses_of(reference(x), ys))
        for (name, p), q in zip(model.named_parameters(), reference.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-12, msg=f"step {step} grad {name}")
        torch.testing.assert_close(balancer.weights.double(), literal.w.detach(), rtol=1e-9, atol=1e-12)
        optimizer.step()
        reference_optimizer.step()
        for p, q in zip(model.parameters(), reference.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12)
    assert not torch.allclose(literal.w.detach(), torch.ones(T, dtype=DTYPE))  # the weights moved


def test_a_path_that_does_not_exist_lists_the_closest_modules():
    model = ConvNet()
    with pytest.raises(ValueError) as error:
        make_balancer("gradnorm", T, model=model, shared_layer="backbon.2", alpha=1.0)
    message = str(error.value)
    assert message.startswith("shared_layer: no module 'backbon.2' in the model; closest: backbone.2, ")
    assert "\n" not in message
    with pytest.raises(ValueError, match=r"^shared_layer: module 'backbone.1' \(ReLU\) has no trainable parameter"):
        make_balancer("gradnorm", T, model=model, shared_layer="backbone.1")
    with pytest.raises(ValueError, match=r"^shared_layer: ConvNet has no last_shared_layer; give shared_layer"):
        make_balancer("gradnorm", T, model=model)
    # other methods use no W, but a path given with the model is still checked
    with pytest.raises(ValueError, match="no module 'heads.7'"):
        make_balancer("equal", T, model=model, shared_layer="heads.7")


def test_fast_path_for_a_multiheadnet_linear_plain_path_otherwise():
    problem = MultiDigits(num_train=8, num_val=8, num_test=8)
    model = problem.build_model()
    default = make_balancer("gradnorm", 3, model=model)
    assert default.uses_branch and default.shared_parameters()[0] is model.last_shared_layer.weight
    first = make_balancer("gradnorm", 3, model=model, shared_layer="trunk.0")
    assert first.uses_branch and first.shared_parameters()[0] is model.trunk[0].weight
    head = make_balancer("gradnorm", 3, model=model, shared_layer="heads.0")  # not in the trunk
    assert not head.uses_branch
    plain = make_balancer("gradnorm", T, model=ConvNet(), shared_layer="heads.0")  # no branch
    assert not plain.uses_branch


def test_fast_path_on_an_inner_trunk_layer_equals_the_plain_path():
    problem = MultiDigits(num_train=64, num_val=8, num_test=8, seed=1)
    model = problem.build_model(seed=2).to(DTYPE)
    twin = copy.deepcopy(model)
    fast = make_balancer("gradnorm", 3, model=model, shared_layer="trunk.0", alpha=1.0, lr=0.1)
    plain = GradNorm(twin.trunk[0].parameters(), 3, alpha=1.0, lr=0.1)
    for start in range(0, 64, 16):
        x, ys = problem.train.batch(slice(start, start + 16))
        x = x.to(DTYPE)
        ys = [y.to(DTYPE) if y.is_floating_point() else y for y in ys]
        fast.backward(problem.task_losses(model(x, branch=fast.branch), ys))
        plain.backward(problem.task_losses(twin(x), ys))
        torch.testing.assert_close(fast.weights, plain.weights, rtol=1e-9, atol=1e-12)


class ConvProblem(Problem):
    """A user's problem with a conv model that has no branch, and W named by path."""

    name = "conv"
    task_names = ("a", "b", "c")
    shared_layer = "backbone.2"

    def load_data(self):
        splits = []
        for index, size in enumerate((64, 32, 32)):
            x, ys = batches(1, size=size, seed=10 + index)[0]
            splits.append(Split(x.float(), tuple(y.float() for y in ys)))
        return tuple(splits)

    def build_model(self, seed=0):
        return ConvNet(seed=seed)

    def task_losses(self, outputs, targets):
        return losses_of(outputs, targets)

    def metrics(self):
        return Metrics(NormalizedMSE(task, i) for i, task in enumerate(self.task_names))


def test_training_loop_runs_a_model_without_branch():
    problem = ConvProblem()
    model = problem.build_model(seed=1)
    balancer = make_balancer("gradnorm", 3, model=model, shared_layer=problem.shared_layer, alpha=1.5)
    records = list(fit(problem, balancer, model=model, epochs=2, batch_size=16, device="cpu"))
    assert len(records) == 2 and records[-1].weights != [1.0, 1.0, 1.0]
    assert set(records[-1].val) >= {"a/loss", "a/rmse", "a/normalized_error", "score"}
    fast = GradNorm.for_linear(model.heads[0], 3)
    with pytest.raises(ValueError, match="needs a model whose forward takes branch="):
        fit(problem, fast, model=model)


def trial(problem: dict, shared_layer: str | int | None = None) -> dict:
    """A GradNorm trial's config (serialised) of ``problem``, with W at ``shared_layer``."""
    return {"problem": {**problem, "shared_layer": shared_layer}, "balancer": {"method": "gradnorm", "alpha": 1.0},
            "training": {"epochs": 1, "batch_size": 8, "device": "cpu"}}


def test_trial_config_key():
    problem = {"name": "multidigits", "options": {"num_train": 16, "num_val": 8, "num_test": 8}}
    _, model, balancer = TrialConfig.from_dict(trial(problem)).build()
    assert balancer.shared_parameters()[0] is model.last_shared_layer.weight
    _, model, balancer = TrialConfig.from_dict(trial(problem, "trunk.0")).build()
    assert balancer.uses_branch and balancer.shared_parameters()[0] is model.trunk[0].weight
    with pytest.raises(TrialConfigError, match=r"^shared_layer: no module 'trunk.9' in the model; closest: trunk"):
        TrialConfig.from_dict(trial(problem, "trunk.9")).build()
    with pytest.raises(TrialConfigError, match="^problem.shared_layer: expected a string, got 3"):
        TrialConfig.from_dict(trial(problem, 3))


def test_trial_takes_the_problems_shared_layer_unless_the_config_names_one():
    problem = {"name": "test_shared_layer:ConvProblem"}
    _, model, balancer = TrialConfig.from_dict(trial(problem)).build()
    assert not balancer.uses_branch
    assert balancer.shared_parameters() == list(model.backbone[2].parameters())
    _, model, balancer = TrialConfig.from_dict(trial(problem, "backbone.0")).build()
    assert balancer.shared_parameters() == list(model.backbone[0].parameters())
