"""What a sweep spec is checked for before Ray starts and before any MLflow run exists: numbers
finite and seeds within NumPy's and Optuna's range, names within MLflow's and the file system's
limits (names derived from them included), problem options that JSON holds, a user's module that
ends the process when imported, and the shared layer the problem itself names. Each bad spec
makes ``gradnorm-tune sweep`` exit 2 with one line on stderr, and writes nothing."""

from __future__ import annotations

import sys
import textwrap
import uuid

import pytest
import yaml

from sweeps.cli import main
from trainables.limits import KEY_PATTERN, MAX_EXPERIMENT_NAME, MAX_FILE_NAME, MAX_KEY, SEARCH_METRIC

# a user's problem whose model has no module "trunk.9", though its class says W is there
MISNAMED_LAYER = '''
import torch
from torch import nn
from gradnorm_core import Metrics, MultiHeadNet, NormalizedMSE, Problem
from gradnorm_core.problems import Split


class {cls}(Problem):
    name = "misnamed"
    shared_layer = "trunk.9"

    def __init__(self, tasks=("a", "b")):
        self.task_names = tuple(tasks)

    def load_data(self):
        x, y = torch.zeros(4, 2), tuple(torch.zeros(4) for _ in self.task_names)
        return Split(x, y), Split(x, y), Split(x, y)

    def build_model(self, seed):
        torch.manual_seed(seed)
        return MultiHeadNet(nn.Sequential(nn.Linear(2, 4), nn.ReLU()), [nn.Linear(4, 1) for _ in self.task_names])

    def task_losses(self, outputs, targets):
        return torch.stack([((o.squeeze(1) - t) ** 2).mean() for o, t in zip(outputs, targets)])

    def metrics(self):
        return Metrics(NormalizedMSE(task, i) for i, task in enumerate(self.task_names))
'''
EXITS = "import sys\nsys.exit(3)\n"
PARSES_ARGV = textwrap.dedent("""
    import argparse
    parser = argparse.ArgumentParser(prog="rings")
    parser.add_argument("--rings", type=int, required=True)
    ARGS = parser.parse_args()
""")


def base_spec() -> dict:
    return {
        "name": "early",
        "problem": {"name": "toy", "options": {"sigmas": [1, 2], "num_train": 32, "num_val": 8, "num_test": 8}},
        "training": {"epochs": 2, "batch_size": 16, "lr": 0.01, "seed": 0, "device": "cpu"},
        "searches": {"gn": {"type": "gradnorm", "alpha": [0.5, 1.0]}, "equal": {"type": "equal"}},
    }


def changed(path: str, value):
    def change(spec: dict) -> dict:
        *outer, last = path.split(".")
        node = spec
        for key in outer:
            node = node[key]
        node[last] = value
        return spec
    return change


def renamed_search(new: str):
    def change(spec: dict) -> dict:
        spec["searches"] = {new: spec["searches"]["gn"], "equal": spec["searches"]["equal"]}
        return spec
    return change


def user_problem(code: str, attribute: str = "P", **options):
    """The spec's problem is ``<a new module>:<attribute>``, the module's text ``code``."""
    def change(spec: dict, module: str) -> dict:
        spec["problem"] = {"name": f"{module}:{attribute}", "options": options}
        return spec
    change.code = code
    return change


def with_search(change, **search):
    """``change``, and the gradnorm search given ``search``'s options."""
    def changed_too(spec: dict, module: str) -> dict:
        spec = change(spec, module)
        spec["searches"]["gn"].update(search)
        return spec
    changed_too.code = change.code
    return changed_too


LONG = "s" * 300
CASES = {
    "infinite lr": (changed("training.lr", float("inf")),
                    "training.lr: expected a finite number, got inf; give a positive learning rate"),
    "infinite weight decay": (changed("training.weight_decay", float("inf")),
                              "training.weight_decay: expected a finite number, got inf; give 0 or a positive"),
    "NaN momentum": (changed("training.momentum", float("nan")), "training.momentum: "),
    "seed 2**32": (changed("training.seed", 2**32),
                   "training.seed: 4294967296 is above 4294967295 (2**32 - 1), the largest seed NumPy and Optuna "
                   "take; give a whole number in [0, 4294967295]"),
    "seed 2**64": (changed("training.seed", 2**64), "training.seed: 18446744073709551616 is above 4294967295"),
    "repeats past the last seed": (
        lambda spec: changed("searches.gn.repeats", 3)(changed("training.seed", 2**32 - 2)(spec)),
        "searches.gn.repeats: is 3: with training.seed 4294967294 its last repeat's seed would be 4294967296, "
        "above 4294967295 (the largest NumPy and Optuna take); lower training.seed to at most 4294967293"),
    "300-character sweep name": (changed("name", LONG),
                                 f"name: sweep name '{LONG[:37]}...' is 300 characters long: the sweep directory's "
                                 f"name would be 316, above {MAX_FILE_NAME}; shorten it to at most 239 characters"),
    "260-character search name": (renamed_search("g" * 260),
                                  "search name 'ggggggggggggggggggggggggggggggggggggg...' is 260 characters long: the "
                                  "comparison run's metric keys <search>/<metric> would be 293, above 250; shorten it "
                                  "to at most 217 characters"),
    "600-character experiment": (changed("experiment", "e" * 600),
                                 "experiment: experiment name 'eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee...' is 600 "
                                 "characters long: MLflow's experiment name would be 600, "
                                 f"above {MAX_EXPERIMENT_NAME}"),
    "a date in problem.options": (changed("problem.options.start", "DATE"),
                                  "problem.options.start: datetime.date(2024, 5, 1) is no JSON value (date); give "
                                  "numbers (finite), strings, booleans, lists or mappings"),
    "a module that calls sys.exit": (user_problem(EXITS),
                                     "problem.name: importing module '{module}' of problem '{module}:P' ended the "
                                     "process (SystemExit 3); move what runs as a script (sys.exit, argparse's "
                                     "parse_args on sys.argv) under if __name__ == '__main__': in that module"),
    "a module that parses sys.argv": (user_problem(PARSES_ARGV),
                                      "problem.name: importing module '{module}' of problem '{module}:P' ended the "
                                      "process (SystemExit 2: rings: error: the following arguments are required: "
                                      "--rings); move what runs as a script"),
    "a Problem naming a layer its model lacks": (
        user_problem(MISNAMED_LAYER.format(cls="Misnamed"), "Misnamed"),
        "problem.shared_layer: problem '{module}:Misnamed' sets shared_layer 'trunk.9': no module 'trunk.9' in the "
        "model (closest: "),
    "a method option the problem cannot serve": (
        with_search(user_problem(MISNAMED_LAYER.format(cls="NoChance").replace('shared_layer = "trunk.9"',
                                                                               'shared_layer = None'), "NoChance"),
                    initial_losses="chance"),
        "searches.gn: method 'gradnorm': initial_losses: 'chance' needs problem 'misnamed' does not define "
        "chance_losses(): override Problem.chance_losses() to return one chance-level loss per task; fix the "
        "search's options"),
    "a task name MLflow refuses in keys": (
        user_problem(MISNAMED_LAYER.format(cls="Plus").replace('shared_layer = "trunk.9"', 'shared_layer = None'),
                     "Plus", tasks=["a+b", "c"]),
        "problem.name: problem '{module}:Plus': task name 'a+b' has characters MLflow refuses in metric and param "
        "keys; rename the task in the problem"),
}


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """Where a test's user modules go: on sys.path for the test, forgotten after it."""
    folder = tmp_path / "code"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.startswith("early_"):
            del sys.modules[name]


@pytest.mark.parametrize("case", CASES)
def test_a_bad_spec_exits_2_with_one_line_before_ray_or_mlflow(case, tmp_path, modules, capsys):
    change, expected = CASES[case]
    spec = base_spec()
    module = f"early_{uuid.uuid4().hex[:8]}"
    if hasattr(change, "code"):
        (modules / f"{module}.py").write_text(change.code)
        spec = change(spec, module)
    else:
        spec = change(spec)
    text = yaml.safe_dump(spec).replace("start: DATE", "start: 2024-05-01")  # YAML reads that as a date
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    ray_before = "ray" in sys.modules and sys.modules["ray"].is_initialized()  # (another test's Ray)
    code = main(["sweep", str(path), "--storage", str(tmp_path / "runs"),
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"gradnorm-tune: error: {path}: ") and err.count("\n") == 1, err
    assert expected.format(module=module) in err, err
    # nothing started, nothing written: no sweep directory, no MLflow store (so no run), no Ray
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()
    assert ("ray" in sys.modules and sys.modules["ray"].is_initialized()) == ray_before  # no Ray started


def test_the_limits_are_the_installed_mlflows():
    from mlflow.utils import validation

    assert MAX_KEY == validation.MAX_ENTITY_KEY_LENGTH
    assert MAX_EXPERIMENT_NAME == validation.MAX_EXPERIMENT_NAME_LENGTH
    for key in ("gn/compute_seconds", "problem.options.num_train", "test/a/normalized_error", "x:y z-1.2"):
        assert bool(KEY_PATTERN.match(key)) == bool(validation.validate_param_and_metric_name(key)), key
    for key in ("a+b", "é(x)", "a,b"):
        assert not KEY_PATTERN.match(key) and not validation.validate_param_and_metric_name(key), key


def test_the_comparison_runs_metrics_fit_the_room_kept_for_them():
    """Every number a search's run (and the comparison run, after ``<search>/``) can carry, in every
    unit, with a sampled grid and a derived search."""
    from test_answer import sweep

    from sweeps.comparison import search_metrics
    from sweeps.report import cost_rows

    searches = sweep()
    for search in searches:
        for trial in search.trials:
            trial.gpu_seconds = 1.0
    searches[1].trials[0].outcome = "stopped"  # (a zero count is not logged)
    keys = {key for row in cost_rows(searches, []) for key in search_metrics(row)}
    assert {"full_grid_samples_fraction", "full_grid_gpu_seconds", "to_grid_best_samples", "gpu_with_source_seconds",
            "samples_with_source", "stopped_compute_seconds", "outcome/failed"} <= keys
    assert max(len(key) for key in keys) <= SEARCH_METRIC


def test_the_longest_names_allowed_work(tmp_path):
    """At the limits, the spec loads; one character more and it does not (see CASES)."""
    from sweeps.spec import parse_spec
    from trainables.limits import longest

    spec = base_spec()
    spec["name"] = "s" * longest("sweep")
    spec = renamed_search("g" * longest("search"))(spec)
    spec["experiment"] = "e" * longest("experiment")
    loaded = parse_spec(spec, "s.yaml")
    assert len(loaded.name) == 239 and len(loaded.searches[0].name) == 217
    for kind, name in (("sweep", "s" * 240), ("search", "g" * 218), ("experiment", "e" * 256)):
        spec = base_spec()
        if kind == "search":
            spec = renamed_search(name)(spec)
        else:
            spec["name" if kind == "sweep" else "experiment"] = name
        with pytest.raises(Exception, match=f"{kind} name .* characters long"):
            parse_spec(spec, "s.yaml")
