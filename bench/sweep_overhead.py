"""How close a whole sweep comes to the wall-clock its trials need: the demo spec end to end, as
``gradnorm-tune sweep`` runs it, compared with (sum of trial compute) / (trial slots).

    python bench/sweep_overhead.py                        # this tree, on the demo spec
    python bench/sweep_overhead.py --baseline-ref d211ee2  # and an older commit, side by side
    python bench/sweep_overhead.py --spec toy_t2 --epochs 5

Two ratios per run, read from the MLflow record the sweep wrote (a fresh SQLite file each):
- trial phase: first trial start to last trial end, over the ideal (sum of every trial's
  ``compute_seconds``) / slots. 1.0 means the slots never idled and Tune cost nothing.
- whole command: the ``gradnorm-tune sweep`` process from start to exit (imports, Ray's
  start-up, MLflow, the report included), over the same ideal.

And the start-up: from the command's start to its first trial's start (as the trial's MLflow run
records it: Tune started the trial's actor), and of that the project's own time: less Ray's own
start-up, a bare ``ray.init`` of a local Ray timed in a fresh process just before the sweep.

``--baseline-ref`` checks that commit out into a temporary git worktree and runs its CLI the
same way, on the same machine, one after the other, so the two are compared in one run. The
ideal uses each run's own measured compute, so noise in the trials themselves cancels out.
Targets (issue 22): at most 1.3 for the whole command, and at most 5 s of the project's own
time before the first trial.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from trainables import ROLE, ROLE_TRIAL

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "sweeps" / "specs"


def write_spec(args: argparse.Namespace, folder: Path) -> Path:
    data = yaml.safe_load((SPECS / f"{args.spec}.yaml").read_text())
    data["experiment"] = "bench-sweep-overhead"
    if args.epochs:
        data["training"]["epochs"] = args.epochs
    data.setdefault("resources", {})["max_concurrent"] = args.slots
    data["training"]["device"] = "cpu"
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


#: Ray's own start-up: a local Ray started and stopped, in a fresh process, its import aside.
RAY_INIT = """import time, ray
start = time.perf_counter()
ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=50)
print(time.perf_counter() - start)
ray.shutdown()"""


def ray_init_seconds(folder: Path) -> float:
    done = subprocess.run([sys.executable, "-c", RAY_INIT], cwd=folder, env=dict(os.environ, RAY_ADDRESS=""),
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def run_cli(source: Path, spec: Path, folder: Path) -> tuple[float, float, str]:
    """One ``gradnorm-tune sweep`` in a fresh process on the code in ``source``: its seconds, the
    time it started (unix seconds) and its tracking URI."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = dict(os.environ, PYTHONPATH=str(source), RAY_ADDRESS="")
    started = time.time()
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "sweeps.cli", "sweep", str(spec), "--storage", str(folder / "runs"),
         "--tracking-uri", uri],
        cwd=folder, env=env, capture_output=True, text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"sweep on {source} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, started, uri


def measure(uri: str) -> dict[str, float]:
    """Trial count, summed compute, the trial phase and the first trial's start (unix seconds),
    from the trial runs in MLflow."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("bench-sweep-overhead")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{ROLE}` = '{ROLE_TRIAL}'",
                              max_results=10000)
    starts = [run.info.start_time / 1000 for run in runs]
    ends = [run.info.end_time / 1000 for run in runs]
    compute = sum(run.data.metrics["compute_seconds"] for run in runs)
    return {"trials": len(runs), "compute": compute, "phase": max(ends) - min(starts), "first": min(starts)}


def report(label: str, numbers: dict[str, float], slots: int) -> None:
    ideal = numbers["compute"] / slots
    command, first = numbers["command"], numbers["first"] - numbers["started"]
    print(f"{label:<28} {numbers['trials']:>6.0f} {numbers['compute']:>9.1f} {ideal:>7.1f} "
          f"{numbers['phase']:>8.1f} {numbers['phase'] / ideal:>6.2f}x {command:>8.1f} {command / ideal:>6.2f}x "
          f"{first:>9.1f} {numbers['ray_init']:>8.1f} {first - numbers['ray_init']:>6.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", default="demo", help="a spec in sweeps/specs (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=None, help="override training.epochs")
    parser.add_argument("--slots", type=int, default=2, help="resources.max_concurrent (default: %(default)s)")
    parser.add_argument("--baseline-ref", default=None, help="a git commit to run first, side by side")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        spec = write_spec(args, folder)
        sources = [("this tree", ROOT)]
        if args.baseline_ref:
            baseline = folder / "baseline"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(baseline), args.baseline_ref],
                           check=True, capture_output=True)
            sources.insert(0, (f"baseline {args.baseline_ref}", baseline))
        results = []
        try:
            for label, source in sources:
                run_folder = folder / label.replace(" ", "_")
                run_folder.mkdir()
                ray_init = ray_init_seconds(run_folder)
                command, started, uri = run_cli(source, spec, run_folder)
                results.append((label, measure(uri) | {"command": command, "started": started, "ray_init": ray_init}))
        finally:
            if args.baseline_ref:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder / "baseline")],
                               capture_output=True)
    print(f"\n{args.spec} spec, {args.slots} trial slots, 1 CPU each, on {os.cpu_count()} cores; "
          "ideal = sum of trial compute / slots; to 1st trial: from the command's start; own: that less "
          "Ray's own ray.init (seconds)")
    print(f"{'':<28} {'trials':>6} {'compute':>9} {'ideal':>7} {'phase':>8} {'ratio':>7} {'command':>8} {'ratio':>7} "
          f"{'1st trial':>9} {'ray.init':>8} {'own':>6}")
    for label, numbers in results:
        report(label, numbers, args.slots)


if __name__ == "__main__":
    main()
