"""What the driver's checks of each search's method add to reading a spec (``sweeps.spec.trials``:
each search's first trial built on one model of the problem, as the trial builds it, before Ray
starts).

For each spec, ``load_spec`` runs with and without that build, interleaved round by round in one
process after a warm-up (the imports and the first model build), so that machine noise hits both
alike; the figure is the median over rounds, and their difference is what the build adds.

    python bench/spec_checks.py                              # the demo and the example project
    python bench/spec_checks.py my/sweep.yaml --rounds 15
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import sweeps.spec.trials as trials
from sweeps.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
SPECS = [ROOT / "sweeps" / "specs" / "demo.yaml", ROOT / "examples" / "digit_scale" / "sweep.yaml"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="*", default=[str(path) for path in SPECS])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    build = trials._build_methods
    for path in args.specs:
        load_spec(path)  # warm-up
        seconds: dict[str, list[float]] = {"without": [], "with": []}
        for _ in range(args.rounds):
            for variant in seconds:
                trials._build_methods = build if variant == "with" else (lambda spec, found: None)
                start = time.perf_counter()
                load_spec(path)
                seconds[variant].append(time.perf_counter() - start)
        trials._build_methods = build
        without, with_ = (statistics.median(seconds[key]) * 1000 for key in ("without", "with"))
        print(f"{path}: load_spec {without:.1f} ms without the methods' build, {with_:.1f} ms with it "
              f"(+{with_ - without:.1f} ms, x{with_ / without:.2f}), median of {args.rounds}")


if __name__ == "__main__":
    main()
