"""One small sweep on real Ray and real MLflow (SQLite), run once per test session (the
``small_sweep`` fixture of conftest.py) for the tests that read its record and what it printed:

- tests/test_sweep.py: the run hierarchy, the cost figures, the table, the report rebuilt;
- tests/test_concurrent_searches.py: every search shares the trial slots of one Tune experiment;
- tests/test_progress.py: the progress line while it runs (printed after every step of Tune's loop);
- tests/test_network_lr.py: the network's learning rate drawn by Optuna for equal weights.

Five searches at 2 slots: GradNorm's alpha by Optuna, a static grid of 9 points sampled at 2 (so
that the record projects the full grid's cost), equal weights, equal weights with the network's lr
drawn from a range that leaves out the sweep's ``training.lr``, and the recommended static trial.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from types import SimpleNamespace

EPOCHS = 2
LR_RANGE = (1e-4, 1e-3)  # the lrs search's range, below the sweep's training.lr
SPEC = {
    "name": "small",
    "experiment": "small-sweep",
    "problem": {"name": "multidigits", "options": {"num_train": 192, "num_val": 64, "num_test": 64}},
    "training": {"epochs": EPOCHS, "batch_size": 64, "lr": 0.002, "seed": 0, "device": "cpu"},
    "resources": {"cpu": 1, "max_concurrent": 2},
    "searches": {
        "gradnorm": {"type": "gradnorm", "search": "optuna", "alpha": {"low": 0.0, "high": 3.0}, "num_trials": 2},
        "grid": {"type": "static_grid", "levels": [[1], [0.5, 1, 2], [0.5, 1, 2]], "max_trials": 2},
        "equal": {"type": "equal"},
        "lrs": {"type": "equal", "lr": {"low": LR_RANGE[0], "high": LR_RANGE[1]}, "num_trials": 3},
    },
    "recommended_static": True,
}
#: Trials per search, the recommended static trial's included.
EXPECTED_TRIALS = {"gradnorm": 2, "grid": 2, "equal": 1, "lrs": 3, "recommended_static": 1}


def run(directory: Path) -> SimpleNamespace:
    """Run the sweep in ``directory`` with a progress line after every step of Tune's loop; its
    state, tracking URI and what it printed (``out``)."""
    from sweeps import progress
    from sweeps.runner import run_sweep
    from sweeps.spec import parse_spec

    uri = f"sqlite:///{directory / 'mlflow.db'}"
    printed = io.StringIO()
    period, progress.PROGRESS_SECONDS = progress.PROGRESS_SECONDS, 0.0
    try:
        with contextlib.redirect_stdout(printed):
            state = run_sweep(parse_spec(SPEC, "small-sweep"), storage=directory / "runs", tracking_uri=uri)
    finally:
        progress.PROGRESS_SECONDS = period
    return SimpleNamespace(state=state, uri=uri, out=printed.getvalue(), directory=directory)
