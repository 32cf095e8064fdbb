"""GradNorm against a literal second-order implementation of Algorithm 1 (create_graph=True),
the fast single-backward path against the plain one, and its errors."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from gradnorm_core import GradNorm
from gradnorm_core.problems import MultiHeadNet

DTYPE = torch.float64


def make_net(num_tasks: int, seed: int = 0, activation: nn.Module | None = None, in_dim: int = 8):
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(in_dim, 16), nn.ReLU(), nn.Linear(16, 12)]
    if activation is not None:
        layers.append(activation)
    trunk = nn.Sequential(*layers)
    heads = [nn.Linear(12, 3) for _ in range(num_tasks)]
    return MultiHeadNet(trunk, heads).to(DTYPE)


def make_batches(num_tasks: int, steps: int, batch: int = 32, in_dim: int = 8, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    scales = torch.logspace(0, 1, num_tasks, dtype=DTYPE)
    mixing = torch.randn(in_dim, 3, generator=generator, dtype=DTYPE)
    batches = []
    for _ in range(steps):
        x = torch.randn(batch, in_dim, generator=generator, dtype=DTYPE)
        ys = [
            scale * torch.tanh(x @ mixing + 0.3 * torch.randn(batch, 3, generator=generator, dtype=DTYPE))
            for scale in scales
        ]
        batches.append((x, ys))
    return batches


def task_losses(outputs, targets):
    return torch.stack([nn.functional.mse_loss(o, y) for o, y in zip(outputs, targets)])


class LiteralGradNorm:
    """Algorithm 1 of the paper, written the obvious way: G_i from a create_graph=True gradient
    of w_i L_i, and the weights' gradient from autograd on L_grad."""

    def __init__(self, shared_params, num_tasks, alpha, lr, optimizer, min_weight=1e-4):
        self.shared = list(shared_params)
        self.num_tasks = num_tasks
        self.alpha = alpha
        self.min_weight = min_weight
        self.w = torch.ones(num_tasks, dtype=DTYPE, requires_grad=True)
        self.opt = (
            torch.optim.Adam([self.w], lr=lr) if optimizer == "adam" else torch.optim.SGD([self.w], lr=lr)
        )
        self.initial = None

    def backward(self, losses):
        if self.initial is None:
            self.initial = losses.detach().clone()
        grad_norms = []
        for i in range(self.num_tasks):
            grads = torch.autograd.grad(self.w[i] * losses[i], self.shared, retain_graph=True, create_graph=True)
            grad_norms.append(torch.sqrt(sum((g**2).sum() for g in grads)))
        grad_norms = torch.stack(grad_norms)
        ratios = losses.detach() / self.initial
        rates = ratios / ratios.mean()
        target = (grad_norms.mean() * rates**self.alpha).detach()
        grad_loss = (grad_norms - target).abs().sum()
        (weight_grad,) = torch.autograd.grad(grad_loss, self.w, retain_graph=True)
        (self.w.detach() * losses).sum().backward()
        self.w.grad = weight_grad
        self.opt.step()
        with torch.no_grad():
            self.w.clamp_(min=self.min_weight)
            self.w.mul_(self.num_tasks / self.w.sum())


def train(net, balancer, batches, branch=None):
    optimizer = torch.optim.SGD(net.parameters(), lr=0.003)
    history = []
    for x, ys in batches:
        optimizer.zero_grad()
        outputs = net(x, branch=branch)
        balancer.backward(task_losses(outputs, ys))
        optimizer.step()
        weights = balancer.weights if isinstance(balancer, GradNorm) else balancer.w.detach().clone()
        history.append(weights)
    return torch.stack(history)


def assert_same_params(net_a, net_b):
    for (name, a), b in zip(net_a.named_parameters(), net_b.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10, msg=f"parameter {name} differs")


@pytest.mark.parametrize("optimizer,lr", [("adam", 0.025), ("sgd", 0.02)])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.5])
def test_plain_path_matches_literal_second_order_algorithm(optimizer, lr, alpha):
    num_tasks, batches = 4, make_batches(4, steps=60)
    net_ref, net = make_net(num_tasks), make_net(num_tasks)
    literal = LiteralGradNorm(net_ref.last_shared_layer.parameters(), num_tasks, alpha, lr, optimizer)
    gradnorm = GradNorm(net.last_shared_layer.parameters(), num_tasks, alpha=alpha, lr=lr, optimizer=optimizer)

    expected = train(net_ref, literal, batches)
    got = train(net, gradnorm, batches)

    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-10)
    assert_same_params(net, net_ref)
    # the weights did move, so the comparison above is not between two constant vectors
    assert (expected[-1] - 1).abs().max() > 0.05


@pytest.mark.parametrize(
    "activation", [None, nn.ReLU(), nn.ReLU(inplace=True), nn.Tanh(), nn.LayerNorm(12)],
    ids=["identity", "relu", "relu-inplace", "tanh", "layernorm"],
)
def test_fast_path_matches_plain_and_literal(activation):
    num_tasks, batches = 5, make_batches(5, steps=40)
    net_ref, net_plain, net_fast = (make_net(num_tasks, activation=copy.deepcopy(activation)) for _ in range(3))
    literal = LiteralGradNorm(net_ref.last_shared_layer.parameters(), num_tasks, 1.0, 0.025, "adam")
    plain = GradNorm(net_plain.last_shared_layer.parameters(), num_tasks, alpha=1.0)
    fast = GradNorm.for_linear(net_fast.last_shared_layer, num_tasks, alpha=1.0)

    expected = train(net_ref, literal, batches)
    got_plain = train(net_plain, plain, batches)
    got_fast = train(net_fast, fast, batches, branch=fast.branch)

    torch.testing.assert_close(got_plain, expected, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(got_fast, expected, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(fast.last_norms, plain.last_norms, rtol=1e-9, atol=1e-12)
    assert_same_params(net_fast, net_ref)


def test_fast_path_gram_route_small_batch_wide_input():
    """A batch smaller than the layer's input width takes the Gram-matrix route."""
    num_tasks = 3
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 12), nn.ReLU())
    heads = [nn.Linear(12, 3) for _ in range(num_tasks)]
    net_plain = MultiHeadNet(trunk, heads).to(DTYPE)
    net_fast = copy.deepcopy(net_plain)
    batches = make_batches(num_tasks, steps=20, batch=5, in_dim=4)
    plain = GradNorm(net_plain.last_shared_layer.parameters(), num_tasks, alpha=1.5)
    fast = GradNorm.for_linear(net_fast.last_shared_layer, num_tasks, alpha=1.5)
    torch.testing.assert_close(
        train(net_fast, fast, batches, branch=fast.branch), train(net_plain, plain, batches), rtol=1e-9, atol=1e-10
    )
    assert_same_params(net_fast, net_plain)


def test_fast_path_without_bias_and_with_sequence_inputs():
    num_tasks = 3
    torch.manual_seed(0)
    shared = nn.Linear(6, 10, bias=False).to(DTYPE)
    heads = [nn.Linear(10, 2).to(DTYPE) for _ in range(num_tasks)]
    x = torch.randn(4, 7, 6, dtype=DTYPE)  # (batch, sequence, features)
    targets = [torch.randn(4, 7, 2, dtype=DTYPE) * s for s in (1, 10, 100)]

    fast = GradNorm.for_linear(shared, num_tasks)
    outputs = [head(f) for head, f in zip(heads, fast.branch(torch.relu(shared(x))))]
    fast.backward(task_losses(outputs, targets))

    features = torch.relu(shared(x))
    outputs = [head(features) for head in heads]
    losses = task_losses(outputs, targets)
    expected = torch.stack(
        [torch.autograd.grad(losses[i], shared.weight, retain_graph=True)[0].norm() for i in range(num_tasks)]
    )
    torch.testing.assert_close(fast.last_norms, expected, rtol=1e-10, atol=1e-12)


def test_sgd_steps_follow_the_closed_form():
    num_tasks, lr, alpha = 3, 0.1, 1.0
    net = make_net(num_tasks)
    gradnorm = GradNorm(net.last_shared_layer.parameters(), num_tasks, alpha=alpha, lr=lr, optimizer="sgd")
    shared = list(net.last_shared_layer.parameters())
    weights, initial = torch.ones(num_tasks, dtype=DTYPE), None
    for x, ys in make_batches(num_tasks, steps=3):
        net.zero_grad()
        losses = task_losses(net(x), ys)
        norms = torch.stack([
            torch.sqrt(sum(g.square().sum() for g in torch.autograd.grad(losses[i], shared, retain_graph=True)))
            for i in range(num_tasks)
        ])
        initial = losses.detach() if initial is None else initial
        ratios = losses.detach() / initial
        targets = (weights * norms).mean() * (ratios / ratios.mean()) ** alpha
        stepped = (weights - lr * torch.sign(weights * norms - targets) * norms).clamp(min=1e-4)
        expected = stepped * num_tasks / stepped.sum()
        # the network gets the gradient of sum w_i L_i with the weights from before the step
        head_grad = torch.autograd.grad(weights[1] * losses[1], net.heads[1].weight, retain_graph=True)[0]

        gradnorm.backward(losses)
        torch.testing.assert_close(gradnorm.weights, expected)
        torch.testing.assert_close(net.heads[1].weight.grad, head_grad)
        weights = expected
    assert not torch.allclose(weights, torch.ones(num_tasks, dtype=DTYPE))


def test_weights_stay_positive_and_sum_to_num_tasks():
    num_tasks = 6
    net = make_net(num_tasks)
    gradnorm = GradNorm.for_linear(net.last_shared_layer, num_tasks, alpha=3.0, lr=0.5, optimizer="sgd")
    history = train(net, gradnorm, make_batches(num_tasks, steps=50), branch=gradnorm.branch)
    torch.testing.assert_close(history.sum(dim=1), torch.full((50,), float(num_tasks), dtype=DTYPE))
    assert bool((history > 0).all())
    assert history.min() < 0.1  # a large lr drives some weight to its floor


def test_initial_losses_given_explicitly_are_used():
    num_tasks = 3
    batches = make_batches(num_tasks, steps=10)
    net_a, net_b = make_net(num_tasks), make_net(num_tasks)
    x, ys = batches[0]
    with torch.no_grad():
        first = task_losses(net_a(x), ys)
    scales = torch.tensor([1.0, 2.0, 4.0], dtype=DTYPE)  # a common factor would cancel out of r_i
    given = GradNorm(net_a.last_shared_layer.parameters(), num_tasks, initial_losses=first * scales)
    default = GradNorm(net_b.last_shared_layer.parameters(), num_tasks)
    train(net_a, given, batches)
    train(net_b, default, batches)
    torch.testing.assert_close(given.initial_losses, first * scales)
    torch.testing.assert_close(default.initial_losses, first)
    assert not torch.allclose(given.weights, default.weights)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_tasks": 0}, "num_tasks must be an integer >= 1"),
        ({"num_tasks": 2.5}, "num_tasks must be an integer >= 1"),
        ({"alpha": -0.1}, "alpha must be a finite number >= 0"),
        ({"lr": 0}, "lr must be a finite number > 0"),
        ({"optimizer": "rmsprop"}, "optimizer must be 'adam' or 'sgd'"),
        ({"initial_losses": [1.0, 2.0]}, "initial_losses must have 3 values"),
        ({"initial_losses": [1.0, 0.0, 2.0]}, "initial loss of task 1 is 0.0"),
        ({"min_weight": 2.0}, r"min_weight must be in \(0, 1\)"),
    ],
)
def test_bad_arguments_raise_one_line_errors(kwargs, match):
    net = make_net(3)
    arguments = {"num_tasks": 3, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match) as error:
        GradNorm(net.last_shared_layer.parameters(), **arguments)
    assert "\n" not in str(error.value)


def test_bad_shared_params_and_a_task_that_misses_w():
    net = make_net(2)
    with pytest.raises(ValueError, match="shared_params is empty"):
        GradNorm([], num_tasks=2)
    activation = net.trunk(torch.randn(3, 8, dtype=DTYPE))
    with pytest.raises(ValueError, match=r"shared_params\[0\] must be a leaf tensor"):
        GradNorm([activation], num_tasks=2)
    with pytest.raises(TypeError, match="shared_linear must be an nn.Linear"):
        GradNorm.for_linear(net.trunk, num_tasks=2)

    x, ys = make_batches(2, steps=1)[0]
    losses = task_losses(net(x), ys)

    unrelated = GradNorm(net.trunk[0].parameters(), num_tasks=2)
    head_only = torch.stack([losses[0], net.heads[1].bias.sum()])
    with pytest.raises(ValueError, match=r"losses\[1\] has a zero gradient at the shared parameters"):
        unrelated.backward(head_only)
    assert unrelated.step_count == 0


def test_fast_path_requires_branch():
    net = make_net(2)
    gradnorm = GradNorm.for_linear(net.last_shared_layer, num_tasks=2)
    x, ys = make_batches(2, steps=1)[0]
    with pytest.raises(RuntimeError, match=r"gn.branch\(features\)"):
        gradnorm.backward(task_losses(net(x), ys))
    assert gradnorm.step_count == 0
    with torch.no_grad():  # evaluation needs no branch bookkeeping
        assert len(gradnorm.branch(torch.zeros(2, 12))) == 2


def test_weights_follow_the_losses_dtype():
    net = make_net(2).float()
    gradnorm = GradNorm.for_linear(net.last_shared_layer, num_tasks=2)
    x, ys = make_batches(2, steps=1)[0]
    losses = task_losses(net(x.float(), branch=gradnorm.branch), [y.float() for y in ys])
    gradnorm.backward(losses)
    assert gradnorm.weights.dtype == torch.float32
    state = gradnorm.state_dict()

    net64 = copy.deepcopy(net).double()
    moved = GradNorm.for_linear(net64.last_shared_layer, num_tasks=2)
    moved.load_state_dict(state)
    moved.backward(task_losses(net64(x, branch=moved.branch), ys))
    assert moved.weights.dtype == torch.float64
    assert moved.step_count == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; CI has none")
def test_fast_path_on_cuda_matches_cpu():
    num_tasks = 3
    batches = make_batches(num_tasks, steps=10)
    net_cpu = make_net(num_tasks)
    net_gpu = copy.deepcopy(net_cpu).cuda()
    cpu = GradNorm.for_linear(net_cpu.last_shared_layer, num_tasks)
    gpu = GradNorm.for_linear(net_gpu.last_shared_layer, num_tasks)
    expected = train(net_cpu, cpu, batches, branch=cpu.branch)
    got = train(net_gpu, gpu, [(x.cuda(), [y.cuda() for y in ys]) for x, ys in batches], branch=gpu.branch)
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-7, atol=1e-9)


def test_branch_rejects_a_tensor_not_computed_from_the_shared_layer():
    net = make_net(2)
    gradnorm = GradNorm.for_linear(net.last_shared_layer, num_tasks=2)
    net.trunk(torch.randn(4, 8, dtype=DTYPE))
    unrelated = torch.randn(4, 12, dtype=DTYPE, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="does not depend on the shared Linear's output"):
        gradnorm.branch(unrelated)


def test_bfloat16_autocast_gives_float32_weights_close_to_full_precision():
    num_tasks = 3
    batches = make_batches(num_tasks, steps=5)
    net_full = make_net(num_tasks).float()
    net_amp = copy.deepcopy(net_full)
    full = GradNorm.for_linear(net_full.last_shared_layer, num_tasks)
    amp = GradNorm.for_linear(net_amp.last_shared_layer, num_tasks)
    for x, ys in batches:
        x, ys = x.float(), [y.float() for y in ys]
        full.backward(task_losses(net_full(x, branch=full.branch), ys))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outputs = net_amp(x, branch=amp.branch)
        amp.backward(task_losses([o.float() for o in outputs], ys))
    assert amp.weights.dtype == torch.float32
    torch.testing.assert_close(amp.last_norms, full.last_norms, rtol=0.05, atol=0)


def _ddp_worker(rank: int, world: int, store_path: str, results_path: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{store_path}", rank=rank, world_size=world
    )
    try:
        net = make_net(3)
        gradnorm = GradNorm.for_linear(net.last_shared_layer, num_tasks=3, alpha=1.0)
        local = make_batches(3, steps=8, seed=100 + rank)  # each process sees other data
        train(net, gradnorm, local, branch=gradnorm.branch)
        state = {"weights": gradnorm.weights, "initial": gradnorm.initial_losses,
                 "shared": net.last_shared_layer.weight.detach().clone()}
        torch.save(state, f"{results_path}.{rank}")
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_processes_keep_identical_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    world = 2
    torch.multiprocessing.spawn(
        _ddp_worker, args=(world, str(tmp_path / "store"), str(tmp_path / "result")), nprocs=world
    )
    results = [torch.load(tmp_path / f"result.{rank}") for rank in range(world)]
    torch.testing.assert_close(results[0]["weights"], results[1]["weights"], rtol=0, atol=0)
    torch.testing.assert_close(results[0]["initial"], results[1]["initial"], rtol=0, atol=0)
    # without DDP around the model the two networks drift apart (different data), yet the
    # task weights agree: GradNorm's update saw the same averaged losses and norms
    assert not torch.allclose(results[0]["shared"], results[1]["shared"])
    net = make_net(3)
    alone = GradNorm.for_linear(net.last_shared_layer, num_tasks=3, alpha=1.0)
    train(net, alone, make_batches(3, steps=8, seed=100), branch=alone.branch)
    assert not torch.allclose(alone.weights, results[0]["weights"])
