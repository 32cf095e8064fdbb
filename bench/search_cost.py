"""Does one alpha search reach the static grid's best score, and at what fraction of its compute,
beside the methods a practitioner would weigh, each with its learning rate tuned?

    nice -n 10 python bench/search_cost.py multidigits            # the CPU size: minutes on 2 cores
    python bench/search_cost.py multimnist --scale 4              # more data and epochs, e.g. on GPUs

Runs one sweep per problem through the normal sweep runner, every search with ``--repeats`` seeds
per configuration: GradNorm as in the paper (L(0) from the first step, weights' learning rate
0.025, Optuna over alpha, the sweep's network lr), GradNorm searched (alpha, the weights' learning
rate, the L(0) rule and the network's lr in one Optuna search), the same under ASHA, the static
grid (full or sampled) and the same grid under ASHA, static weights drawn by Optuna at the
searched GradNorm's budget (``static_optuna``, its network lr searched too), the front searched by
NSGA-II with one objective per task at that budget (``static_pareto``), population based training of
the weights and the network lr (``pbt``: one population of 2, the sweep's two slots), equal weights and
every one-configuration balancer (the gradient methods and RLW included) at the sweep's lr and with the
lr searched (``<name>_lr``), the single-task reference of Delta m%, and the recommended static weights.
Writes the answer and the Markdown tables, a CSV, the best-so-far plot, the Pareto plot, the alpha
sweep's plot and the grid's cost by number of tasks to bench/results/ and logs them to MLflow. Costs
are counted in wall-clock seconds, in the trials' own CPU time (GPU time on GPUs) and in samples; the
shares of the grid are stated in the stable unit, against the grid as it ran and against the full grid
(projected from the points that ran when it was sampled). The load average is sampled while the
sweep runs and written beside the results.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from published import multimnist_section, qm9_section  # noqa: E402

from sweeps import RECOMMENDED, SweepState, parse_spec, report, run_sweep, sweep_summaries  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
#: one-configuration balancers, each run at the sweep's lr and with the network's lr searched
BALANCERS = ("equal", "uncertainty", "dwa", "scale_invariant", "imtl", "famo", "mgda", "pcgrad", "cagrad", "nash_mtl",
             "imtl_g", "aligned_mtl", "upgrad", "dualproj", "rlw")
AT_SWEEP_LR_ONLY = ("imtl_l",)  # the same dynamics as uncertainty without Kendall's 1/2
ALPHA_TRIALS, LR_TRIALS = 10, 6
PBT_POPULATION = 2  # a population trains at once: at most the sweep's 2 trial slots


def searches(static_grid: dict, lr: float, epochs: int, repeats: int, balancers: tuple[str, ...] = BALANCERS,
             at_sweep_lr_only: tuple[str, ...] = ()) -> dict:
    """The same searches for every problem; only the grid and the learning rate differ. A searched
    network lr is drawn log-uniform over two decades around the sweep's. ``balancers``: which of
    :data:`BALANCERS` run (each at the sweep's lr and with the lr searched); ``at_sweep_lr_only``: which
    of them run at the sweep's lr only (a costly step: Nash-MTL on many tasks)."""
    alpha, rates = {"low": 0.0, "high": 3.0}, {"low": lr / 10, "high": lr * 10}
    asha = {"type": "asha", "grace_period": max(1, epochs // 5), "reduction_factor": 3}
    searched = {"type": "gradnorm", "alpha": alpha, "num_trials": ALPHA_TRIALS, "weight_lr": {"low": 0.005, "high": 0.2},
                "initial_losses": ["first_step", "chance"], "lr": rates}
    found = {  # the first GradNorm search gives the recommended static weights
        "gradnorm_searched": searched,
        "gradnorm_paper": {"type": "gradnorm", "alpha": alpha, "num_trials": 8, "weight_lr": 0.025,
                           "initial_losses": "first_step"},
        "gradnorm_asha": {**searched, "scheduler": asha},
        "static_grid": {"type": "static_grid", **static_grid},
        "static_grid_asha": {"type": "static_grid", **static_grid, "scheduler": asha},
        "static_optuna": {"type": "static_optuna", "num_trials": ALPHA_TRIALS, "lr": rates},
        # the front searched by NSGA-II at the same budget, and a weight schedule found by PBT
        "static_pareto": {"type": "static_pareto", "num_trials": ALPHA_TRIALS, "lr": rates},
        "pbt": {"type": "pbt", "population": PBT_POPULATION, "perturb": ["weights", "lr"], "lr": rates,
                "quantile_fraction": 0.5},
        **{name: {"type": name} for name in balancers + AT_SWEEP_LR_ONLY},
        **{f"{name}_lr": {"type": name, "lr": rates, "num_trials": LR_TRIALS}
           for name in balancers if name not in at_sweep_lr_only},
        "single_task": {"type": "single_task"},
    }
    # a pbt search trains one population (its members share the seed): no repeats
    return {name: search if search["type"] == "pbt" else {**search, "repeats": repeats} for name, search in found.items()}


def problem_spec(problem: str, scale: float, repeats: int, balancers: tuple[str, ...] = BALANCERS,
                 at_sweep_lr_only: tuple[str, ...] = ()) -> dict:
    """The sweep of one problem, sized for 2 CPU cores at scale 1."""
    def size(n: int) -> int:
        return int(n * scale)

    if problem == "multidigits":
        epochs = max(1, size(15))
        return {
            "problem": {"name": "multidigits", "options": {"num_train": size(4000), "num_val": 1000, "num_test": 1000}},
            "training": {"epochs": epochs, "batch_size": 64, "lr": 0.002},
            "searches": searches({"levels": [0.5, 1, 2]}, 0.002, epochs, repeats, balancers, at_sweep_lr_only),  # 3 levels per task: 27 runs
        }
    if problem == "multimnist":
        epochs = max(1, size(10))
        return {
            "problem": {"name": "multimnist", "options": {"num_train": size(10000), "num_val": 2000, "num_test": 2000}},
            "training": {"epochs": epochs, "batch_size": 128, "lr": 0.002},
            # the first task's weight fixed, 5 levels for the second
            "searches": searches({"levels": [[1], [0.25, 0.5, 1, 2, 4]]}, 0.002, epochs, repeats, balancers, at_sweep_lr_only),
        }
    if problem == "qm9":
        epochs = max(1, size(10))
        return {
            "problem": {"name": "qm9", "options": {"num_train": size(20000), "num_val": 5000, "num_test": 5000,
                                                   "targets": "standardized"}},
            "training": {"epochs": epochs, "batch_size": 256, "lr": 0.001},
            # the first target fixed, 3 levels for the other ten: 3^10 = 59,049 points, sampled
            "searches": searches({"levels": [[1]] + [[0.1, 1, 10]] * 10, "max_trials": max(8, size(24))}, 0.001,
                                 epochs, repeats, balancers, at_sweep_lr_only),
        }
    raise SystemExit(f"unknown problem {problem!r}; choose multidigits, multimnist or qm9")


class LoadSampler(threading.Thread):
    """The 1-minute load average every ``period`` seconds while the sweep runs."""

    def __init__(self, period: float = 15.0) -> None:
        super().__init__(daemon=True)
        self.period, self.samples, self.stop = period, [os.getloadavg()[0]], threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.period):
            self.samples.append(os.getloadavg()[0])

    def describe(self) -> str:
        return (f"load average (1 min, sampled every {self.period:g} s) min {min(self.samples):.1f}, median "
                f"{statistics.median(self.samples):.1f}, max {max(self.samples):.1f}")


def shown_option(key: str, value) -> str | None:
    """An option as the setup table shows it: ranges as ``low to high``, lists joined by ``/``."""
    if value is None or key in ("repeats", "lr", "num_trials", "search"):
        return None
    if key == "scheduler":
        return f"ASHA (grace {value['grace_period']}, reduction {value['reduction_factor']:g})"
    if isinstance(value, dict) and set(value) == {"low", "high"}:
        return f"{key} {value['low']:g} to {value['high']:g}"
    if isinstance(value, list):
        return f"{key} " + "/".join(str(v) for v in value)
    return f"{key} {value}"


def setup_rows(spec) -> list[str]:
    """Where each result comes from: the search's type, the network lr it trained at, its budget."""
    lr = spec.training["lr"]
    lines = ["| search | type | network lr | trials | what it searches or sets |", "|---|---|---|---:|---|"]
    for search in spec.searches:
        if search.lr is None:
            rate = f"{lr:g} (the sweep's)"
        elif isinstance(search.lr, list):
            rate = ", ".join(f"{r:g}" for r in search.lr)
        else:
            rate = f"searched, {search.lr.low:g} to {search.lr.high:g} log-uniform"
        what = ", ".join(filter(None, (shown_option(k, v) for k, v in search.options.items()))) or "-"
        lines.append(f"| {search.name} | {search.type} | {rate} | {search.trial_count(spec.num_tasks)} | {what} |")
    source = spec.recommending_search
    rate = f"{lr:g} (the sweep's)" if source.lr is None else f"the best {source.name} configuration's"
    lines.append(f"| {RECOMMENDED} | static | {rate} | {source.repeats} | the time-averaged weights of "
                 f"{source.name}'s best configuration |")
    return lines


def verdict(rows: list[dict], unit: str) -> list[str]:
    """One line per search: its Delta m%, what it cost against the grid as it ran and against the
    full grid (in ``unit``, the stable one, with wall-clock seconds beside), when it came within
    noise of the grid's best; then the goal the issue names, met or not."""
    words, reach_key = report.UNIT_WORDS[unit], report.reach_key(unit)
    lines = []
    for row in rows:
        if row["search"] == "static_grid":
            continue
        cost, wall, own = (row.get(f"grid_{unit}_fraction"), row.get("grid_compute_fraction"),
                           row.get("grid_cpu_fraction") if unit != "cpu" else None)
        full = row.get(f"full_grid_{unit}_fraction")
        derived = f" (with {row['source']}'s)" if row.get("source") else ""
        reach = row.get(reach_key)
        parts = [f"Δm% {row['delta_m']:+.1f}" if row.get("delta_m") is not None else None,
                 None if cost is None else
                 f"the whole search cost {report.percent(cost)} of the grid's {words}{derived} ("
                 + ("" if own is None else f"{report.percent(own)} of its CPU time; ")
                 + f"{report.percent(wall)} of its wall-clock seconds)"
                 + ("" if full is None or full == cost else f", {report.percent(full)} of the full grid's (projected)"),
                 None if reach_key not in row else
                 "never within noise of the grid's best" if reach is None else
                 f"within noise of the grid's best at {report.percent(reach)} of the grid's {words}{derived}",
                 f"{row['vs_best']} against the best row" if row.get("vs_best") else None]
        lines.append(f"- {row['search']}: " + "; ".join(p for p in parts if p) + ".")
    goal = [row for row in rows if row["search"] in ("gradnorm_paper", "gradnorm_searched", "gradnorm_asha", RECOMMENDED)
            and row.get(reach_key) is not None and row[reach_key] <= 0.2]
    lines += ["", f"Goal (GradNorm, or its recommended static, within noise of the grid's best at no more than 1/5 of "
              f"the grid's {words}): " + ("met by " + ", ".join(f"{r['search']} ({report.percent(r[reach_key])})"
                                                               for r in goal) if goal else "not met.")]
    return lines


def per_trial_line(rows: list[dict]) -> str:
    """Each search's mean cost per trial in wall-clock seconds and in the trials' own CPU seconds:
    the wall-clock moves with the load (a search whose trials ran while the machine was busier pays
    more for the same work), the CPU time far less."""
    parts = [f"{row['search']} {float(row['compute_seconds']) / int(row['trials']):.2f} / "
             f"{float(row.get('cpu_seconds') or 'nan') / int(row['trials']):.2f}" for row in rows if int(row["trials"]) > 0]
    return ("Mean cost per trial, wall-clock s / CPU s (the sweep hands out the searches' trials in this order; a "
            "search that ran while other work loaded the machine paid more wall-clock per trial for the same work): "
            + ", ".join(parts) + ".")


def full_grid_line(grid: dict, unit: str) -> str:
    """What the full grid would cost: its points at the mean cost of those that ran, projected."""
    if not grid.get("full_grid_projected"):
        return (f"The grid ran whole: {grid['grid_size']:,} points, {grid['trials']} trials, "
                f"{float(grid[report.cost_key(unit)]):,.0f} {report.UNIT_WORDS[unit]}.")
    full = float(grid[report.full_grid_key(unit)])
    hours = [f"{float(grid[key]) / 3600:,.1f} {what}" for key, what in (
        ("full_grid_cpu_seconds", "CPU hours"), ("full_grid_compute_seconds", "hours of wall-clock trial time at this load"))
        if grid.get(key)]
    return (f"The full grid has {grid['grid_size']:,} points, of which {grid['points_ran']} ran (sampled at random): "
            f"projected at their mean cost, it would take {full:,.0f} {report.UNIT_WORDS[unit]}"
            + (f" ({'; '.join(hours)})" if unit == "samples" and hours else "")
            + ". Fractions *of the grid* below are of the sampled grid as it ran; fractions *of the full grid* of "
            "this projection.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("problem", choices=["multidigits", "multimnist", "qm9"])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies data and epochs (default 1: CPU size)")
    parser.add_argument("--repeats", type=int, default=3, help="seeds per configuration (default 3)")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--ray-address", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--balancers", default=",".join(BALANCERS),
                        help="comma-separated one-configuration balancers to run, each at the sweep's lr and with the "
                             "lr searched (default: all of them; Nash-MTL costs 15x to 75x an equal-weights step)")
    parser.add_argument("--at-sweep-lr-only", default="",
                        help="comma-separated balancers (of --balancers) run at the sweep's lr only, without the "
                             "lr-searched search (e.g. nash_mtl on QM9's 11 tasks)")
    args = parser.parse_args()
    balancers = tuple(name.strip() for name in args.balancers.split(",") if name.strip())
    only = tuple(name.strip() for name in args.at_sweep_lr_only.split(",") if name.strip())
    for flag, names in (("--balancers", balancers), ("--at-sweep-lr-only", only)):
        unknown = sorted(set(names) - set(balancers if flag != "--balancers" else BALANCERS))
        if unknown:
            parser.error(f"{flag}: unknown {', '.join(unknown)}; choose from "
                         f"{', '.join(balancers if flag != '--balancers' else BALANCERS)}")

    data = {"name": f"search-cost-{args.problem}", "experiment": f"search-cost-{args.problem}",
            "resources": {"cpu": 1, "max_concurrent": 2}, "recommended_static": True,
            **problem_spec(args.problem, args.scale, args.repeats, balancers, only)}
    data["training"] |= {"seed": 0, "device": "auto"}
    spec = parse_spec(data, f"bench {args.problem}")
    sampler = LoadSampler()
    sampler.start()
    start = time.time()
    with tempfile.TemporaryDirectory() as storage:
        state: SweepState = run_sweep(spec, storage=storage, tracking_uri=args.tracking_uri,
                                      ray_address=args.ray_address)
    seconds = time.time() - start
    sampler.stop.set()
    client = MlflowClient(state.tracking_uri)
    summaries = sweep_summaries(client, state, spec)
    primaries = report.spec_primary_metrics(spec)
    metrics = report.task_metric_names(summaries)
    rows = report.cost_rows(summaries, metrics, report.front_statuses(summaries), primaries=primaries)
    unit = report.stable_unit(summaries)
    shown = [p.name for p in primaries]  # the table shows each task's primary metric; the CSV has them all
    grid = next(r for r in rows if r["search"] == "static_grid")
    nice = os.nice(0)
    command = (f"{'nice -n ' + str(nice) + ' ' if nice else ''}python bench/search_cost.py {args.problem} "
               f"--scale {args.scale:g} --repeats {args.repeats}"
               + (f" --balancers {','.join(balancers)}" if balancers != BALANCERS else "")
               + (f" --at-sweep-lr-only {','.join(only)}" if only else ""))
    options = spec.problem.options
    lines = [
        f"# Search cost on {args.problem}", "",
        f"Command: `{command}`; {time.strftime('%Y-%m-%d')}, 2 CPU cores shared with other work, {seconds:.0f} s for "
        f"the sweep; {sampler.describe()}. Wall-clock seconds are inflated by the load and noisy (all searches share "
        "the sweep's two trial slots in one Tune experiment and interleave); the shares of the grid are stated in "
        f"{report.UNIT_WORDS[unit]}, the trials' own, which the load hardly moves, and in samples processed, which "
        "it does not move at all (second table and CSV).",
        "",
        f"Where the numbers come from: problem {spec.problem.name} ({', '.join(f'{k} {v}' for k, v in options.items())}), "
        f"{spec.training['epochs']} epochs, batch {spec.training['batch_size']}, Adam; every configuration trained with "
        f"{args.repeats} seeds (0 .. {args.repeats - 1})."
        + (" QM9 targets standardized on the train split (z-scores), MAE in the targets' own units." if
           args.problem == "qm9" else ""),
        "", "## The searches", "", *setup_rows(spec), "",
        "## Results", "",
        "A search's best configuration has the lowest mean best-epoch validation score (mean ± std over its seeds; "
        "lower is better), with the test score and each task's primary test metric at the same epochs. *Δm%*: the "
        "mean relative loss against the single-task reference on each task's primary metric, "
        "(1/T) Σ (-1)^h (M - M_stl) / M_stl × 100 (lower is better; below 0 beats training each task alone). "
        f"*reached best*: the share of the grid's {report.UNIT_WORDS[unit]} (the grid as it ran) at which "
        "the search first had a configuration (all its seeds ended) within noise of the grid's best "
        f"({grid['best_val_score']:.4f}); for the recommended static, its GradNorm search's cost comes first. "
        "*vs best*: within the seeds' spread of the best row (sqrt(std_a² + std_b²)). *grid front*: where the best "
        "trial lies against the non-dominated grid trials. *hypervolume (per s)*: the volume dominated by the search's "
        "non-dominated configurations (each the mean over its seeds of the per-task normalized validation errors at "
        "the best epochs) up to one reference point, 1.1 × the sweep's worst normalized error in each task; in "
        "brackets that over the search's compute seconds (the recommended static's with its GradNorm search's): the "
        "quality of a front per second.",
        "", full_grid_line(grid, unit), "",
        report.table_heading(rows, unit), "", report.headline_table(rows, unit), "",
        report.details_table(rows, shown), "", per_trial_line(rows), "",
        "**Plainly** (from the tables above):", "", report.answer(rows, unit), "", *verdict(rows, unit), "",
        f"Recommended static weights (the time-averaged weights of the best GradNorm configuration, averaged over its "
        f"seeds): {state.searches.get(RECOMMENDED, {}).get('weights')}; the grid's best: {grid['best_config']}.",
    ]
    if args.problem == "multimnist":
        lines += multimnist_section(rows, options["num_train"], spec.training["epochs"])
    if args.problem == "qm9":
        lines += qm9_section(rows, options["num_train"], spec.training["epochs"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.problem}.md").write_text("\n".join(lines) + "\n")
    report.write_csv(rows, args.out / f"{args.problem}.csv")
    report.save_figure(report.best_so_far_figure(summaries, unit), args.out / f"{args.problem}_best_so_far.png")
    report.save_figure(report.pareto_figure(summaries), args.out / f"{args.problem}_pareto.png")
    report.save_figure(report.grid_cost_figure(summaries, unit), args.out / f"{args.problem}_grid_cost_by_tasks.png")
    report.save_figure(report.alpha_vs_score_figure(summaries), args.out / f"{args.problem}_alpha_vs_score.png")
    client.log_artifacts(state.comparison_run_id, str(args.out), artifact_path="search_cost")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
