"""What the first-batch shape check (:func:`gradnorm_core.check_target_shapes`) costs a trial: its
time on the first batch against one training step on that batch, side by side in one run.

The training loop runs the check once, on its first batch; a task is looked at twice only where
its output and target differ in shape (then its losses are computed once more, without a graph).
Measured on the built-in problems whose batches are in memory: the paper's toy (T = 10, no task
looked at twice) and MultiDigits (its sum task, (B, 1) against (B,), looked at twice).

    python bench/shape_check.py            # batch 64, 200 rounds, 2 threads
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gradnorm_core import check_target_shapes, fit, make_balancer, make_problem
from gradnorm_core.problems.data import iterate_batches

PROBLEMS = {"toy_t10": {}, "multidigits": {"num_train": 512, "num_val": 64, "num_test": 64}}


def measure(name: str, options: dict, batch_size: int, rounds: int) -> tuple[float, float]:
    """Median seconds of the check and of one training step (equal weights), interleaved."""
    problem = make_problem(name, **options)
    model = problem.build_model(seed=0)
    training = fit(problem, make_balancer("equal", problem.num_tasks), model=model, epochs=1, batch_size=batch_size)
    x, targets = next(iter(iterate_batches(problem.train, batch_size, training.device)))
    training.step(x, targets)  # (the check's own run, and warm-up)
    checks, steps = [], []
    for _ in range(rounds):
        outputs = model(x)
        losses = problem.task_losses(outputs, targets)
        start = time.perf_counter()
        check_target_shapes(problem, outputs, targets, losses)
        checks.append(time.perf_counter() - start)
        start = time.perf_counter()
        training.step(x, targets)
        steps.append(time.perf_counter() - start)
    return statistics.median(checks), statistics.median(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"batch {args.batch_size}, {args.rounds} rounds, {args.threads} threads, median of each")
    for name, options in PROBLEMS.items():
        check, step = measure(name, options, args.batch_size, args.rounds)
        print(f"{name:12} check {check * 1e6:8.1f} us   training step {step * 1e6:8.1f} us   "
              f"check / step {check / step:.3f} (once per trial, on its first batch)")


if __name__ == "__main__":
    main()
