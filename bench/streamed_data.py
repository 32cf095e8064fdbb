"""Time per training epoch on MultiDigits with its data streamed item by item through a
DataLoader, divided by the same epoch with the data held in memory (index batching).

    python bench/streamed_data.py                     # demo size, 2 threads, 5 rounds
    python bench/streamed_data.py --num-workers 2     # the streamed side with DataLoader workers

Both sides train the same model from the same seed on the same batches (the records are
identical; tests/test_streamed_data.py checks that), interleaved epoch by epoch so that machine
noise hits them alike; the figure is the median over rounds of the per-epoch ratio.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch.utils.data import Dataset

from gradnorm_core import fit, make_balancer
from gradnorm_core.problems import MultiDigits, Split


class Streamed(Dataset):
    """One item at a time, as a dataset reading from disk would: no batch indexing."""

    def __init__(self, split: Split) -> None:
        self.inputs, self.targets = split.inputs, split.targets

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int):
        return self.inputs[index], tuple(t[index] for t in self.targets)


class StreamedDigits(MultiDigits):
    def load_data(self):
        return tuple(Streamed(split) for split in super().load_data())


def training(problem: MultiDigits, method: str, rounds: int, num_workers: int):
    model = problem.build_model(seed=0)
    options = {"alpha": 1.5} if method == "gradnorm" else {}
    balancer = make_balancer(method, problem.num_tasks, model=model, **options)
    return iter(fit(problem, balancer, model=model, epochs=rounds, batch_size=64, lr=2e-3, seed=0,
                    device="cpu", num_workers=num_workers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--num-train", type=int, default=4000)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = {"num_train": args.num_train, "num_val": 1000, "num_test": 1000}
    print(f"MultiDigits, {args.num_train} training pairs, batch 64, {args.threads} threads, "
          f"{args.rounds} epochs each, num_workers={args.num_workers} on the streamed side")
    print("| method | in-memory s/epoch | streamed s/epoch | streamed / in-memory |")
    print("|---|---:|---:|---:|")
    for method in ("equal", "gradnorm"):
        memory = training(MultiDigits(**sizes), method, args.rounds, 0)
        streamed = training(StreamedDigits(**sizes), method, args.rounds, args.num_workers)
        times: dict[str, list[float]] = {"memory": [], "streamed": []}
        last = {"memory": 0.0, "streamed": 0.0}
        for _ in range(args.rounds):
            for name, run in (("memory", memory), ("streamed", streamed)):
                record = next(run)  # elapsed_seconds: the run's own clock, cumulative
                times[name].append(record.elapsed_seconds - last[name])
                last[name] = record.elapsed_seconds
        ratios = [s / m for s, m in zip(times["streamed"], times["memory"])]
        print(f"| {method} | {statistics.median(times['memory']):.3f} | {statistics.median(times['streamed']):.3f} "
              f"| {statistics.median(ratios):.2f}x |")


if __name__ == "__main__":
    main()
