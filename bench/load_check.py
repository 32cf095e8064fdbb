"""Do a sweep's costs hold when the machine's load changes? One small sweep run twice, the second
beside CPU burners: each search's share of the grid's cost in wall-clock seconds, in the trials'
own CPU time and in samples processed, in each run, and how much each moved.

    python bench/load_check.py                # the second run beside 2 burners
    python bench/load_check.py --burners 4 --epochs 4

The sweep: GradNorm's alpha by Optuna (3 trials), a static grid of 9 points sampled at 6, and
equal weights, on MultiDigits (2,000 training items), 2 trial slots. Every trial runs all its
epochs, so the samples processed are the same in both runs by construction; the wall-clock and
the CPU time are measured. The burners are ``python -c "while True: pass"`` processes, started
before the second run and stopped by their PIDs after it. Nothing is written to bench/results.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from sweeps import parse_spec, report, run_sweep, sweep_summaries

UNITS = ("compute", "cpu", "samples")  # wall-clock, the trials' own CPU time, samples processed


def spec(epochs: int) -> dict:
    return {
        "name": "load-check", "experiment": "load-check",
        "problem": {"name": "multidigits", "options": {"num_train": 2000, "num_val": 200, "num_test": 200}},
        "training": {"epochs": epochs, "batch_size": 64, "lr": 0.002, "seed": 0, "device": "cpu"},
        "resources": {"cpu": 1, "max_concurrent": 2},
        "searches": {
            "gradnorm": {"type": "gradnorm", "search": "optuna", "alpha": {"low": 0.0, "high": 3.0}, "num_trials": 3},
            "grid": {"type": "static_grid", "levels": [[1], [0.5, 1, 2], [0.5, 1, 2]], "max_trials": 6},
            "equal": {"type": "equal"},
        },
        "recommended_static": False,
    }


def one_run(data: dict, folder: Path) -> tuple[list[dict], list[float]]:
    """The sweep's cost rows, and the 1-minute load average sampled every 5 s while it ran."""
    loads, done = [os.getloadavg()[0]], threading.Event()

    def sample() -> None:
        while not done.wait(5.0):
            loads.append(os.getloadavg()[0])

    threading.Thread(target=sample, daemon=True).start()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            state = run_sweep(parse_spec(data, "load check"), storage=folder / "runs",
                              tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    finally:
        done.set()
    summaries = sweep_summaries(MlflowClient(state.tracking_uri), state, parse_spec(data, "load check"))
    return report.cost_rows(summaries, []), loads


def burners(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--burners", type=int, default=2, help="CPU burners beside the second run (default 2)")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    data = spec(args.epochs)
    runs = []
    with tempfile.TemporaryDirectory() as directory:
        for k in range(2):
            started = burners(args.burners) if k else []
            try:
                start = time.time()
                rows, loads = one_run(data, Path(directory) / f"run{k}")
                runs.append((rows, loads, time.time() - start))
            finally:
                for process in started:  # by their PIDs
                    process.kill()
                    process.wait()
    print(f"python bench/load_check.py --burners {args.burners} --epochs {args.epochs}")
    for k, (rows, loads, seconds) in enumerate(runs):
        beside = f"beside {args.burners} CPU burners" if k else "as the machine was"
        print(f"\nrun {k + 1} ({beside}): {seconds:.0f} s, load average min {min(loads):.1f}, median "
              f"{statistics.median(loads):.1f}, max {max(loads):.1f}")
        print("| search | wall-clock s | CPU s | samples | share of the grid's: wall-clock | CPU time | samples |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for row in rows:
            costs = [f"{row.get(report.cost_key(unit)) or 0:,.{0 if unit == 'samples' else 1}f}" for unit in UNITS]
            shares = [report.percent(row.get(f"grid_{unit}_fraction")) for unit in UNITS]
            print(f"| {row['search']} | " + " | ".join(costs + shares) + " |")
    first, second = ({row["search"]: row for row in rows} for rows, _, _ in runs)
    print("\nrun 2 against run 1 (cost ratio; share of the grid's, run 1 -> run 2):")
    for search in first:
        parts = []
        for unit in UNITS:
            key, share = report.cost_key(unit), f"grid_{unit}_fraction"
            ratio = (second[search].get(key) or 0) / first[search][key] if first[search].get(key) else float("nan")
            parts.append(f"{report.UNIT_WORDS[unit]} x{ratio:.2f}, {report.percent(first[search].get(share))} -> "
                         f"{report.percent(second[search].get(share))}")
        print(f"- {search}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
