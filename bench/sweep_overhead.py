"""What running trials through Ray Tune (with checkpoints and MLflow logging) costs over plain
training: the wall-clock of an 8-trial sweep, divided by the time of the same 8 trainings run
in-process one after another, divided by the concurrency.

    python bench/sweep_overhead.py                  # 8 trials, 2 at a time, 1 CPU each
    python bench/sweep_overhead.py --epochs 20      # longer trials: the fixed cost weighs less

A ratio of 1.0 means Tune's scheduling, checkpoints and logging cost nothing; Ray's own start-up
is reported on its own line and left out of the ratio (a cluster is started once, not per sweep).
The cost is mostly per report (every epoch: a result handed to the driver, a checkpoint, an
MLflow batch), about 0.1 s here, so the default trials have epochs of about a second; shorter
epochs show a larger ratio (see --num-train).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from sweeps.runner import run_sweep, start_ray
from sweeps.spec import parse_spec
from trainables import TrialConfig


def spec(args: argparse.Namespace) -> dict:
    alphas = [round(0.25 + 0.25 * i, 2) for i in range(args.trials)]
    return {
        "name": "overhead",
        "experiment": "bench-sweep-overhead",
        "problem": {"name": "multidigits", "options": {"num_train": args.num_train, "num_val": 500, "num_test": 500}},
        "training": {"epochs": args.epochs, "batch_size": 64, "lr": 0.002, "seed": 0, "device": "cpu"},
        "resources": {"cpu": 1, "max_concurrent": args.concurrency},
        "searches": {"alphas": {"type": "gradnorm", "search": "grid", "alpha": alphas}},
        "recommended_static": False,
    }


def in_process_seconds(data: dict) -> tuple[float, list[float]]:
    """The same trainings, one after another in this process, with the CPUs a trial gets."""
    torch.set_num_threads(1)
    base = {"problem": data["problem"]["name"], "problem_options": data["problem"]["options"],
            "method": "gradnorm", **data["training"]}
    each = []
    for alpha in data["searches"]["alphas"]["alpha"]:
        start = time.perf_counter()
        _, training = TrialConfig.from_dict(dict(base, alpha=alpha)).start()
        for _ in training:
            pass
        each.append(time.perf_counter() - start)
    return sum(each), each


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--num-train", type=int, default=40000)
    args = parser.parse_args()
    data = spec(args)

    sequential, each = in_process_seconds(data)
    start = time.perf_counter()
    start_ray(None)
    ray_start = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as directory:
        uri = f"sqlite:///{Path(directory) / 'mlflow.db'}"
        state = run_sweep(parse_spec(data, "bench"), storage=Path(directory) / "runs", tracking_uri=uri)
        sweep_wall = state.searches["alphas"]["wall_seconds"]
    ideal = sequential / args.concurrency
    print(f"\n{args.trials} trials of {args.epochs} epochs on multidigits ({args.num_train} training pairs), "
          f"{args.concurrency} at a time, 1 CPU each")
    print(f"one trial in-process:          {sum(each) / len(each):8.1f} s (mean)")
    print(f"in-process, one after another: {sequential:8.1f} s  -> ideal with {args.concurrency} at once: {ideal:.1f} s")
    print(f"through Ray Tune + MLflow:     {sweep_wall:8.1f} s")
    print(f"ratio (Tune wall / ideal):     {sweep_wall / ideal:8.2f}x   (Ray start-up, not counted: {ray_start:.1f} s)")


if __name__ == "__main__":
    main()
