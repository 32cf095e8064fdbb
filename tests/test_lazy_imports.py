"""What each step of ``gradnorm-tune`` imports: torch, Ray, MLflow, Optuna and matplotlib each
take a second or more to import, so each is imported only by the step that uses it. Every case
runs in a fresh interpreter and names the heavy modules it must leave out of ``sys.modules``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "ray", "ray.tune", "mlflow", "optuna", "matplotlib", "pandas", "sqlalchemy")

CASES = {
    # parsing a command line, --help included: nothing heavy
    "the command line parsed": ("from sweeps.cli import parser\nparser().parse_args(['sweep', 'demo'])", HEAVY),
    # what the command sets up before any command runs, and the errors it turns into exit statuses
    "the command's set-up": (
        "from sweeps.cli import set_up_process\nset_up_process()\n"
        "from trainables import TrackingError, TrialConfigError, default_tracking_uri\n"
        "from sweeps.spec import SpecError\nfrom sweeps.state import SweepError\nfrom sweeps.verdict import ExitStatus",
        HEAVY),
    # the runner, before its checks pass: Ray itself (to check the address), not Tune or MLflow
    "the sweep's runner": ("import sweeps.runner, sweeps.session",
                           ("torch", "ray.tune", "mlflow", "optuna", "matplotlib", "pandas", "sqlalchemy")),
    # a bad spec fails on the spec's own checks (which build the problem, so torch), before Ray or MLflow
    "a bad spec": (
        "from sweeps.cli import main\nimport yaml\n"
        "open('spec.yaml', 'w').write(yaml.safe_dump({'name': 'bad', 'problem': 'toy_t2', "
        "'training': {'epochs': 0}, 'searches': {'equal': {'type': 'equal'}}}))\n"
        "assert main(['sweep', 'spec.yaml', '--storage', 'runs', '--tracking-uri', 'sqlite:///mlflow.db']) == 2",
        ("ray", "mlflow", "optuna", "matplotlib")),
    # what a trial's worker imports to start a trial: no MLflow (the driver keeps the record), no sweep
    "a trial's trainable": ("import trainables.trainable", ("mlflow", "optuna", "matplotlib", "sweeps")),
    # a sweep's run up to its trials: the report's plotting waits for the end
    "a sweep's run": ("import sweeps.finish", ("matplotlib", "sweeps.report")),
}


@pytest.mark.parametrize("case", CASES)
def test_each_step_imports_only_what_it_uses(case, tmp_path):
    code, absent = CASES[case]
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(set({list(absent)!r}) & set(sys.modules))))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert imported == [], f"{case} imported {imported}"
