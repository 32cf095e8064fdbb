"""Time per training step of GradNorm (or of other balancers), divided by that of equal weights,
on the paper's toy trunk.

Every method trains the same model on the same batches, interleaved round by round in one run
so that machine noise hits them alike; the figure per method is the median over rounds.

    python bench/step_overhead.py                 # T = 2, 10, 50 on CPU, batch 128, 2 threads
    python bench/step_overhead.py --device cuda   # the same on a GPU
    python bench/step_overhead.py --balancers     # the loss-scale balancers, IMTL and FAMO instead
    python bench/step_overhead.py --balancers scale_invariant dwa uncertainty
    python bench/step_overhead.py --famo          # FAMO same_batch vs next_batch vs equal
    python bench/step_overhead.py --baselines     # the field's gradient methods (both Jacobians) and RLW

Methods:
  gradnorm        GradNorm.for_linear: one backward, norms from a hook and the layer's input
  gradnorm-plain  GradNorm(shared_params): T autograd.grad calls at W, exact for any W
  per-task        per-task gradients over all shared parameters (as LibMTL does), then combined
  second-order    Algorithm 1 written literally, create_graph=True and autograd on L_grad

With ``--balancers NAME ...`` each name is a method of ``gradnorm_core.METHODS``, built with
``make_balancer(NAME, T, model=model)`` and its default options (``NAME:key=value,...`` sets
some, e.g. ``famo:update=next_batch``), and timed against equal weights the same way (a name not
registered is skipped with a note). A method that ``wants_losses_after_step`` (FAMO's default
``same_batch``) gets them as the training loop gives them: one more forward pass under
``torch.no_grad()`` after the optimizer's step, which its ratio includes. ``--famo`` times FAMO
with ``update`` ``same_batch`` and ``next_batch`` side by side, and adds their ratio: the cost of
the re-evaluation. ``--baselines`` times the gradient-aggregation methods with the Jacobian on the
trunk's parameters (their default: T backward passes per step, batched) and on its output
(``jacobian=representation``: one backward pass), and RLW, against equal weights; its table has
one row per method and one column per T.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch

from gradnorm_core import METHODS as REGISTERED, EqualWeights, GradNorm, make_balancer
from gradnorm_core.problems import MultiHeadNet, ToyRegression

Step = Callable[[torch.Tensor, list[torch.Tensor]], None]


def equal_step(model: MultiHeadNet, problem: ToyRegression) -> Step:
    balancer = EqualWeights(problem.num_tasks)
    return _training_step(model, problem, balancer.backward)


def gradnorm_step(model: MultiHeadNet, problem: ToyRegression) -> Step:
    gradnorm = GradNorm.for_linear(model.last_shared_layer, problem.num_tasks, alpha=1.5)
    return _training_step(model, problem, gradnorm.backward, branch=gradnorm.branch)


def gradnorm_plain_step(model: MultiHeadNet, problem: ToyRegression) -> Step:
    gradnorm = GradNorm(model.last_shared_layer.parameters(), problem.num_tasks, alpha=1.5)
    return _training_step(model, problem, gradnorm.backward)


class _ClosedFormWeights:
    """GradNorm's weight update from given norms, shared by the two reference methods."""

    def __init__(self, num_tasks: int, device: torch.device) -> None:
        self.weights = torch.ones(num_tasks, device=device)
        self.optimizer = torch.optim.Adam([self.weights], lr=0.025)
        self.initial: torch.Tensor | None = None

    def update(self, losses: torch.Tensor, norms: torch.Tensor, alpha: float = 1.5) -> None:
        if self.initial is None:
            self.initial = losses.clone()
        grad_norms = self.weights * norms
        ratios = losses / self.initial
        targets = grad_norms.mean() * (ratios / ratios.mean()) ** alpha
        self.weights.grad = torch.sign(grad_norms - targets) * norms
        self.optimizer.step()
        with torch.no_grad():
            self.weights.clamp_(min=1e-4).mul_(len(norms) / self.weights.sum())


def per_task_step(model: MultiHeadNet, problem: ToyRegression) -> Step:
    shared = list(model.trunk.parameters())
    heads = list(model.heads.parameters())
    last = set(id(p) for p in model.last_shared_layer.parameters())
    state = _ClosedFormWeights(problem.num_tasks, next(model.parameters()).device)

    def backward(losses: torch.Tensor) -> None:
        weights = state.weights.detach().clone()
        per_task = [torch.autograd.grad(loss, shared, retain_graph=True) for loss in losses]
        norms = torch.stack([
            torch.sqrt(sum(g.square().sum() for g, p in zip(grads, shared) if id(p) in last))
            for grads in per_task
        ])
        for index, param in enumerate(shared):
            param.grad = sum(w * grads[index] for w, grads in zip(weights, per_task))
        for param, grad in zip(heads, torch.autograd.grad((weights * losses).sum(), heads)):
            param.grad = grad
        state.update(losses.detach(), norms)

    return _training_step(model, problem, backward)


def second_order_step(model: MultiHeadNet, problem: ToyRegression) -> Step:
    shared = list(model.last_shared_layer.parameters())
    weights = torch.ones(problem.num_tasks, device=shared[0].device, requires_grad=True)
    optimizer = torch.optim.Adam([weights], lr=0.025)
    initial: list[torch.Tensor] = []

    def backward(losses: torch.Tensor) -> None:
        if not initial:
            initial.append(losses.detach().clone())
        grad_norms = torch.stack([
            torch.sqrt(sum(g.square().sum() for g in torch.autograd.grad(
                weights[i] * losses[i], shared, retain_graph=True, create_graph=True)))
            for i in range(problem.num_tasks)
        ])
        ratios = losses.detach() / initial[0]
        targets = (grad_norms.mean() * (ratios / ratios.mean()) ** 1.5).detach()
        (weight_grad,) = torch.autograd.grad((grad_norms - targets).abs().sum(), weights, retain_graph=True)
        (weights.detach() * losses).sum().backward()
        weights.grad = weight_grad
        optimizer.step()
        with torch.no_grad():
            weights.clamp_(min=1e-4).mul_(problem.num_tasks / weights.sum())

    return _training_step(model, problem, backward)


def balancer_step(spec: str) -> Callable[[MultiHeadNet, ToyRegression], Step]:
    """The maker of a training step with the registered balancer ``spec``: ``NAME`` with its
    default options, or ``NAME:key=value,...``."""
    name, _, rest = spec.partition(":")
    options = dict(item.split("=", 1) for item in rest.split(",") if item)

    def make(model: MultiHeadNet, problem: ToyRegression) -> Step:
        balancer = make_balancer(name, problem.num_tasks, model=model, **options)
        after_step = balancer.after_step if balancer.wants_losses_after_step else None
        return _training_step(model, problem, balancer.backward,
                              balancer.branch if balancer.uses_branch else None, after_step)

    return make


#: timed by ``--balancers`` with no names: the loss-scale balancers, IMTL and both FAMO timings
DEFAULT_BALANCERS = ("scale_invariant", "uncertainty", "imtl_l", "imtl", "famo", "famo:update=next_batch")
FAMO_TIMINGS = ("famo:update=same_batch", "famo:update=next_batch")
#: timed by ``--baselines``: each gradient method on the trunk's parameters and on its output, and RLW
GRADIENT_METHODS = ("mgda", "pcgrad", "cagrad", "nash_mtl", "imtl_g", "aligned_mtl", "upgrad", "dualproj")
BASELINES = (*GRADIENT_METHODS, *(f"{name}:jacobian=representation" for name in GRADIENT_METHODS), "rlw")


def _training_step(model, problem, backward, branch=None, after_step=None) -> Step:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(x: torch.Tensor, targets: list[torch.Tensor]) -> None:
        optimizer.zero_grad(set_to_none=True)
        backward(problem.task_losses(model(x, branch=branch), targets))
        optimizer.step()
        if after_step is not None:  # as the training loop does: the same batch, after the step
            with torch.no_grad():
                after_step(problem.task_losses(model(x), targets))

    return step


METHODS = {
    "equal": equal_step,
    "gradnorm": gradnorm_step,
    "gradnorm-plain": gradnorm_plain_step,
    "per-task": per_task_step,
    "second-order": second_order_step,
}


def measure(num_tasks: int, batch_size: int, rounds: int, round_seconds: float, device: torch.device,
            makers: dict[str, Callable[[MultiHeadNet, ToyRegression], Step]] = METHODS):
    """Median seconds per step of each method of ``makers``, interleaved round by round."""
    problem = ToyRegression([1.0 + 99.0 * i / max(num_tasks - 1, 1) for i in range(num_tasks)],
                            num_train=batch_size * 8, num_val=1, num_test=1, seed=0)
    train = problem.train.to(device)
    batches = [train.batch(slice(i * batch_size, (i + 1) * batch_size)) for i in range(8)]
    base = problem.build_model(seed=0).to(device)
    steps = {name: make(copy.deepcopy(base), problem) for name, make in makers.items()}

    def run(step: Step, count: int) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(count):
            x, targets = batches[i % len(batches)]
            step(x, list(targets))
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / count

    counts = {}
    for name, step in steps.items():
        run(step, 3)  # warm-up: allocator, first-step state, lazy init
        counts[name] = max(2, int(round_seconds / run(step, 2)))
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            samples[name].append(run(step, counts[name]))
    return {name: statistics.median(times) for name, times in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[2, 10, 50])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--round-seconds", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--balancers", nargs="*", metavar="NAME",
                        help="time these registered methods (make_balancer) instead of --methods; "
                             f"no names: {' '.join(DEFAULT_BALANCERS)}")
    parser.add_argument("--famo", action="store_true",
                        help=f"time {' and '.join(FAMO_TIMINGS)} against equal, and their ratio")
    parser.add_argument("--baselines", action="store_true",
                        help="time the gradient methods (on the trunk's parameters and its output) and RLW "
                             "against equal; one row per method")
    args = parser.parse_args()
    if args.famo:
        args.balancers = list(FAMO_TIMINGS)
    if args.baselines:
        args.balancers = list(BASELINES)
    if args.balancers is None:
        makers = {name: make for name, make in METHODS.items() if name in args.methods + ["equal"]}
    else:
        wanted = args.balancers or list(DEFAULT_BALANCERS)
        known = [n for n in wanted if n.partition(":")[0] in REGISTERED]
        for name in [n for n in wanted if n not in known]:
            print(f"note: {name!r} is not a registered method (registered: {', '.join(REGISTERED)}); skipped")
        makers = {"equal": equal_step, **{n: balancer_step(n) for n in known if n != "equal"}}
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = [name for name in makers if name != "equal"]
    pair = [n for n in FAMO_TIMINGS if n in makers] if all(n in makers for n in FAMO_TIMINGS) else []
    extra = ["same_batch / next_batch"] if pair else []
    print(f"toy trunk 250-100x4, heads 100->100, batch {args.batch_size}, device {device}, "
          f"{args.threads} threads, median of {args.rounds} interleaved rounds")
    if args.baselines:
        by_method(names, makers, args, device)
        return
    print("| T  | equal ms/step | " + " | ".join([f"{n} / equal" for n in names] + extra) + " |")
    print("|----|---------------|" + "|".join("-" * (len(n) + 10) for n in names + extra) + "|")
    for num_tasks in args.tasks:
        times = measure(num_tasks, args.batch_size, args.rounds, args.round_seconds, device, makers)
        equal = times["equal"]
        cells = [f"{times[n] / equal:{len(n) + 7}.2f}x" for n in names]
        if pair:
            cells.append(f"{times[pair[0]] / times[pair[1]]:{len(extra[0]) - 1}.2f}x")
        print(f"| {num_tasks:<2} | {equal * 1e3:13.2f} | {' | '.join(cells)} |", flush=True)


def by_method(names: list[str], makers: dict, args: argparse.Namespace, device: torch.device) -> None:
    """One row per method, its step's time over equal's at each T (all measured first, side by
    side per T)."""
    ratios: dict[str, list[str]] = {name: [] for name in names}
    equal_ms = []
    for num_tasks in args.tasks:
        times = measure(num_tasks, args.batch_size, args.rounds, args.round_seconds, device, makers)
        equal_ms.append(f"{times['equal'] * 1e3:.2f} ms")
        for name in names:
            ratios[name].append(f"{times[name] / times['equal']:.2f}x")
        print(f"T={num_tasks} measured", flush=True)
    print("| method / equal | " + " | ".join(f"T={t}" for t in args.tasks) + " |")
    print("|---|" + "---:|" * len(args.tasks))
    print("| equal (ms per step) | " + " | ".join(equal_ms) + " |")
    for name in names:
        print(f"| {name.replace(':jacobian=', ', ')} | " + " | ".join(ratios[name]) + " |")


if __name__ == "__main__":
    main()
