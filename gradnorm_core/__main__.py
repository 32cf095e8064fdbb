"""``python -m gradnorm_core``: train one problem with several balancers and print a table.

    python -m gradnorm_core --problem toy_t10 --epochs 20 gradnorm:alpha=0.12 equal uncertainty dwa
    python -m gradnorm_core --problem multidigits gradnorm:alpha=1.5,initial_losses=chance equal
"""

from __future__ import annotations

import argparse
import sys

from . import TrainConfig, fit, make_balancer, make_problem, resolve_initial_losses

# options whose values are names, kept as strings; every other option must be a number
STRING_OPTIONS = ("initial_losses", "optimizer", "update", "jacobian", "scale_mode")


def parse_method(text: str) -> tuple[str, dict[str, float | str]]:
    """``"gradnorm:alpha=0.12,lr=0.025"`` -> ``("gradnorm", {"alpha": 0.12, "lr": 0.025})``.

    ``initial_losses``, ``optimizer``, ``update``, ``jacobian`` and ``scale_mode`` take names
    (``initial_losses=chance``, ``jacobian=representation``); a whole number stays an int
    (``update_weights_every=2``).
    """
    name, _, rest = text.partition(":")
    options: dict[str, float | str] = {}
    for item in filter(None, rest.split(",")):
        key, equals, value = item.partition("=")
        if not equals:
            raise ValueError(f"method option {item!r} must look like key=value, e.g. alpha=0.12")
        if key in STRING_OPTIONS:
            options[key] = value
            continue
        try:
            options[key] = int(value) if value.lstrip("+-").isdigit() else float(value)
        except ValueError:
            raise ValueError(f"method option {key!r} must be a number, got {value!r}") from None
    return name, options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradnorm_core", description=__doc__.split("\n")[0])
    parser.add_argument("methods", nargs="*", default=["gradnorm:alpha=0.12", "equal", "uncertainty", "dwa"],
                        help="balancers as NAME[:key=value,...] (default: %(default)s)")
    parser.add_argument("--problem", default="toy_t10", help="toy_t2, toy_t10 or multidigits (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    try:
        methods = [parse_method(m) for m in args.methods]
        config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             seed=args.seed, device=args.device)
        problem = make_problem(args.problem, seed=args.seed)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    runs = []
    try:
        for name, options in methods:
            model = problem.build_model(seed=args.seed)
            built = dict(options)
            if name == "gradnorm" and "initial_losses" in built:
                # "first_step": GradNorm's default; "chance": this problem's chance-level losses
                initial = resolve_initial_losses(built.pop("initial_losses"), problem)
                if initial is not None:
                    built["initial_losses"] = initial
            if name == "uncertainty" and "kinds" not in built:  # Kendall et al.'s factor per kind
                built["kinds"] = list(problem.task_kinds())
            runs.append((name, options, model, make_balancer(name, problem.num_tasks, model=model, **built)))
    except (TypeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    print(f"problem {problem.name} ({problem.num_tasks} tasks), {config.epochs} epochs, "
          f"batch {config.batch_size}, lr {config.lr}, seed {config.seed}")
    rows = []
    live = sys.stdout.isatty()
    for name, options, model, balancer in runs:
        for record in fit(problem, balancer, model=model, **vars(config)):
            if live:
                print(f"  {name:<12} epoch {record.epoch:>3}  val score {record.score:.4f}", end="\r", flush=True)
        print(f"  {name:<12} done: {record.epoch} epochs, val score {record.score:.4f}, "
              f"{record.elapsed_seconds:.1f} s", flush=True)
        rows.append((name, options, record))

    print(f"{'method':<28} {'val score':>10} {'test score':>10} {'seconds':>8}  final weights")
    for name, options, record in sorted(rows, key=lambda row: row[2].test["score"]):
        label = name + ("(" + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                        for k, v in options.items()) + ")" if options else "")
        weights = " ".join(f"{w:.2f}" for w in record.weights)
        print(f"{label:<28} {record.score:>10.4f} {record.test['score']:>10.4f} "
              f"{record.elapsed_seconds:>8.1f}  {weights}")
    print("scores: mean over tasks of MSE / variance of the targets (lower is better)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
