"""Sweep specs: the shipped specs parse, every mistake is a one-line SpecError naming its field,
and static grids are enumerated or sampled as documented."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import os
from pathlib import Path

import pytest

from gradnorm_core import TrainConfig
from sweeps.searches import StaticGridSearch
from sweeps.spec import (
    SpecError,
    SweepSpec,
    load_spec,
    parse_spec,
    static_grid_points,
)

SPECS = Path(__file__).resolve().parent.parent / "sweeps" / "specs"
TRAIN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}

# A fast base spec: a 3-task toy problem (building it takes milliseconds).
BASE = {
    "name": "t",
    "problem": {"name": "toy", "options": {"sigmas": [1, 2, 3], "num_train": 64, "num_val": 16, "num_test": 16}},
    "training": {"epochs": 2, "batch_size": 16, "lr": 0.01},
    "resources": {"cpu": 1, "gpu": 0, "max_concurrent": 2},
    "searches": {
        "gn": {"type": "gradnorm", "search": "optuna", "alpha": {"low": 0.0, "high": 3.0}, "num_trials": 4},
        "grid": {"type": "static_grid", "levels": [1, 2, 4], "max_trials": 5},
        "equal": {"type": "equal"},
        "unc": {"type": "uncertainty", "weight_lr": 0.025},
        "dwa": {"type": "dwa", "temperature": 2.0},
        "fixed": {"type": "static", "weights": [1, 2, 3]},
    },
}


def base() -> dict:
    return copy.deepcopy(BASE)


def error_of(data, source: str = "spec.yaml") -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(data, source)
    message = str(info.value)
    assert "\n" not in message, message
    assert message.startswith(f"{source}: "), message
    assert "; " in message, message  # what is wrong; how to fix
    return message


def load_error(path) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "\n" not in message, message
    return message


# -- the shipped specs -----------------------------------------------------------------------


def test_demo_spec_parses():
    spec = load_spec(SPECS / "demo.yaml")
    assert isinstance(spec, SweepSpec)
    assert spec.name == "demo" and spec.problem.name == "multidigits"
    assert spec.num_tasks == 3 and spec.task_names == ["left", "right", "sum"]
    assert spec.resources.max_concurrent == 2 and spec.resources.cpu == 1 and spec.resources.gpu == 0
    types = {s.name: s.type for s in spec.searches}
    assert {"gradnorm", "static_grid", "equal", "uncertainty", "dwa"} <= set(types.values())
    grid = next(s for s in spec.searches if s.type == "static_grid")
    points, size, sampled = static_grid_points(grid, spec.num_tasks, spec.training["seed"])
    assert size == 27 and not sampled and len(points) == 27  # the exhaustive grid
    gn = next(s for s in spec.searches if s.type == "gradnorm")
    assert gn.options["search"] == "optuna" and gn.options["alpha"] == {"low": 0.0, "high": 3.0}
    assert spec.recommended_static
    assert spec.trial_count() <= 40  # keeps `make demo` within its time budget


def test_toy_t2_spec_parses():
    spec = load_spec(str(SPECS / "toy_t2.yaml"))
    assert spec.problem.name == "toy_t2" and spec.num_tasks == 2
    assert spec.experiment == "gradnorm-tune/toy_t2"
    gn = spec.search("gradnorm")
    assert gn.options["search"] == "grid" and gn.options["alpha"] == [0, 0.5, 1, 1.5, 2]
    assert gn.trial_count(2) == 5
    grid = spec.search("static_grid")
    points, size, sampled = static_grid_points(grid, 2, spec.training["seed"])
    assert (size, sampled) == (5, False)
    assert points == [[1, 0.01], [1, 0.1], [1, 1], [1, 10], [1, 100]]
    assert {s.type for s in spec.searches} == {"gradnorm", "static_grid", "equal", "uncertainty"}


def test_base_spec_parses_with_defaults_and_normalised_options():
    spec = parse_spec(base(), "spec.yaml")
    assert spec.source == "spec.yaml"
    assert spec.experiment == "gradnorm-tune/t"
    # every TrainConfig field, its default where the spec gives none
    assert spec.training == TRAIN_DEFAULTS | {"epochs": 2, "batch_size": 16, "lr": 0.01, "device": "auto"}
    assert spec.training["optimizer"] == "adam" and spec.training["val_every"] == 1
    assert spec.search("fixed").options == {"weights": [1.0, 2.0, 3.0]}
    assert spec.search("fixed").method == "static" and spec.search("grid").method == "static"
    assert spec.search("unc").balancer_options() == {"lr": 0.025}
    assert spec.recommended_static is True  # default, with a gradnorm search present
    assert parse_spec(spec.raw, spec.source) == spec  # raw rebuilds it (resume)
    assert spec.raw == BASE and spec.raw is not BASE

    data = base()
    del data["resources"], data["training"]
    data["searches"] = {"equal": {"type": "equal"}}
    spec = parse_spec(data, "x")
    assert spec.resources.cpu == 1 and spec.resources.gpu == 0 and spec.resources.max_concurrent is None
    assert spec.recommended_static is False  # no gradnorm search to take weights from


def test_yaml_reads_exponent_floats(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\nproblem: {name: toy_t2, options: {num_train: 8, num_val: 4, num_test: 4}}\n"
        "training: {lr: 2e-3}\nsearches: {gn: {type: gradnorm, alpha: [0, 1], weight_lr: 1e-2}}\n"
    )
    spec = load_spec(path)
    assert spec.training["lr"] == 0.002
    assert spec.search("gn").options["weight_lr"] == 0.01
    assert spec.search("gn").options["search"] == "grid"  # inferred from the list


def test_gpu_device_is_not_checked_for_availability():
    data = base()
    data["training"]["device"] = "cuda"
    data["resources"]["gpu"] = 0.25
    spec = parse_spec(data, "s")
    assert spec.training["device"] == "cuda" and spec.resources.gpu == 0.25


# -- file-level errors -----------------------------------------------------------------------


def test_missing_file(tmp_path):
    message = load_error(tmp_path / "nope.yaml")
    assert "nope.yaml: file: not found" in message


def test_directory_instead_of_file(tmp_path):
    assert "file: is a directory" in load_error(tmp_path)


def test_unreadable_file(tmp_path):
    """A file that exists but cannot be read: one that its permissions forbid (not to root, who
    reads anything: CI runs as root), and one that no one can read (a loop of symbolic links)."""
    path = tmp_path / "s.yaml"
    path.write_text("name: s\n")
    if os.geteuid() != 0:
        path.chmod(0)
        try:
            assert "file: cannot be read (Permission denied)" in load_error(path)
        finally:
            path.chmod(0o600)
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(tmp_path / "back.yaml")
    (tmp_path / "back.yaml").symlink_to(loop)
    message = load_error(loop)
    assert "loop.yaml: file: cannot be read (Too many levels of symbolic links); check its permissions" in message


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nproblem:\n  name: toy_t2\n searches: [\n")
    message = load_error(path)
    assert "YAML syntax error" in message and "line 4" in message


def test_yaml_duplicate_key_names_the_line(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nname: t\n")
    message = load_error(path)
    assert "line 2" in message and "duplicate key 'name'" in message


def test_empty_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("# nothing\n")
    assert "top level: the spec is empty" in load_error(path)


def test_top_level_not_a_mapping(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("- a\n- b\n")
    assert "top level: expected a mapping, got list" in load_error(path)


# -- field errors: (mutation, expected path substring, another expected substring) -------------


def _set(path, value):
    def mutate(data):
        node = data
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return mutate


def _del(path):
    def mutate(data):
        node = data
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]
    return mutate


CASES = {
    # top level
    "unknown top-level key": (_set("serches", {}), "serches: unknown top-level key", "did you mean 'searches'"),
    "missing name": (_del("name"), "name: missing required field", "name: demo"),
    "missing problem": (_del("problem"), "problem: missing required field", "multidigits"),
    "missing searches": (_del("searches"), "searches: missing required field", "equal"),
    "bad name": (_set("name", "my sweep"), "name: invalid sweep name", "letters, digits"),
    "bad experiment": (_set("experiment", ""), "experiment:", "MLflow experiment"),
    "recommended not bool": (_set("recommended_static", "yes please"), "recommended_static:", "true or false"),
    "recommended without gradnorm": (
        lambda d: (d.update(recommended_static=True), d.update(searches={"equal": {"type": "equal"}})),
        "recommended_static: is true",
        "add a gradnorm search",
    ),
    # problem
    "unknown problem": (_set("problem.name", "mnist"), "problem.name: unknown problem 'mnist'", "multidigits"),
    "problem not a mapping": (_set("problem", [1]), "problem: expected a mapping", "name: multidigits"),
    "unknown problem option": (
        _set("problem.options.num_trian", 5), "problem.options.num_trian: unknown option 'num_trian' for problem 'toy'", "did you mean 'num_train'"
    ),
    "missing problem option": (_del("problem.options.sigmas"), "problem.options.sigmas:", "needs option 'sigmas'"),
    "bad problem option value": (
        _set("problem.options.num_train", 0), "problem.options.num_train: bad option", "num_train must be an integer"
    ),
    "bad problem sigma": (_set("problem.options.sigmas", [1, -2, 3]), "problem.options.sigmas:", "sigmas[1]"),
    # training
    "unknown training key": (_set("training.epoch", 3), "training.epoch: unknown training key", "'epochs'"),
    "bad epochs": (_set("training.epochs", 0), "training.epochs:", "integer >= 1"),
    "bad lr": (_set("training.lr", -1.0), "training.lr:", "lr must be a number > 0"),
    "non-numeric lr": (_set("training.lr", "fast"), "training.lr:", "'fast'"),
    "boolean lr": (_set("training.lr", True), "training.lr: expected a number", "True"),
    "bad seed": (_set("training.seed", -1), "training.seed:", "seed must be"),
    "bad device": (_set("training.device", "tpu9"), "training.device: unknown device", "'auto', 'cpu'"),
    "unknown optimizer": (_set("training.optimizer", "adamx"), "training.optimizer: unknown optimizer 'adamx'", "adamw, sgd"),
    "step without step_size": (_set("training.schedule", "step"), "training.step_size: schedule 'step' needs", "step_size: 10"),
    "momentum with adam": (_set("training.momentum", 0.9), "training.momentum: only optimizer 'sgd'", "set optimizer: sgd"),
    "boolean clip": (_set("training.clip_grad_norm", True), "training.clip_grad_norm: must be a number > 0", "clip_grad_norm: 1.0"),
    "zero val_every": (_set("training.val_every", 0), "training.val_every: must be a whole number", "val_every: 5"),
    # resources
    "unknown resources key": (_set("resources.gpus", 1), "resources.gpus: unknown resources key", "'gpu'"),
    "zero cpu": (_set("resources.cpu", 0), "resources.cpu: must be > 0", "CPUs per trial"),
    "negative gpu": (_set("resources.gpu", -0.5), "resources.gpu: must be >= 0", "GPUs per trial"),
    "fractional gpu above one": (_set("resources.gpu", 1.5), "resources.gpu:", "whole number"),
    "gpu with cpu device": (
        lambda d: (d["training"].update(device="cpu"), d["resources"].update(gpu=1)),
        "resources.gpu:",
        "training.device",
    ),
    "non-numeric gpu": (_set("resources.gpu", "one"), "resources.gpu: expected a number", "'one'"),
    "zero max_concurrent": (_set("resources.max_concurrent", 0), "resources.max_concurrent:", ">= 1"),
    "fractional max_concurrent": (_set("resources.max_concurrent", 1.5), "resources.max_concurrent:", "integer"),
    # searches
    "empty searches": (_set("searches", {}), "searches: no searches given", "add at least one"),
    "searches not a mapping": (_set("searches", ["equal"]), "searches: expected a mapping", "search name"),
    "bad search name": (_set("searches", {"a b": {"type": "equal"}}), "searches.a b: invalid search name", "letters"),
    "missing search type": (_set("searches.equal", {}), "searches.equal.type: missing required field", "gradnorm"),
    "unknown search type": (
        _set("searches.equal.type", "equl"), "searches.equal.type: unknown search type 'equl'", "did you mean 'equal'"
    ),
    "unknown search option": (
        _set("searches.dwa.temprature", 1.0), "searches.dwa.temprature: unknown option 'temprature' for search type 'dwa'", "did you mean 'temperature'"
    ),
    "option of another type": (_set("searches.equal.weight_lr", 0.1), "searches.equal.weight_lr: unknown option",
                               "accepted: repeats"),
    # gradnorm
    "missing alpha": (_del("searches.gn.alpha"), "searches.gn.alpha: missing required field", "low"),
    "negative alpha low": (_set("searches.gn.alpha.low", -1), "searches.gn.alpha.low: must be >= 0", "0 <= low < high"),
    "low >= high": (_set("searches.gn.alpha", {"low": 2, "high": 1}), "searches.gn.alpha: low (2) must be below high (1)", "swap"),
    "non-numeric alpha": (_set("searches.gn.alpha.high", "3"), "searches.gn.alpha.high: expected a number", "'3'"),
    "alpha list with optuna": (_set("searches.gn.alpha", [0, 1]), "searches.gn.alpha: expected a mapping", "optuna"),
    "missing num_trials": (_del("searches.gn.num_trials"), "searches.gn.num_trials: missing required field", "num_trials"),
    "zero num_trials": (_set("searches.gn.num_trials", 0), "searches.gn.num_trials: must be an integer >= 1", "trials"),
    "unknown gradnorm search": (_set("searches.gn.search", "random"), "searches.gn.search: unknown gradnorm search", "optuna, grid"),
    "negative grid alpha": (
        _set("searches.gn", {"type": "gradnorm", "search": "grid", "alpha": [0, -1]}),
        "searches.gn.alpha[1]: must be >= 0",
        "alphas >= 0",
    ),
    "empty grid alpha": (
        _set("searches.gn", {"type": "gradnorm", "search": "grid", "alpha": []}),
        "searches.gn.alpha: expected a non-empty list",
        "alphas",
    ),
    "duplicate grid alpha": (
        _set("searches.gn", {"type": "gradnorm", "search": "grid", "alpha": [0, 1, 1]}),
        "searches.gn.alpha[2]: 1 is listed twice",
        "once",
    ),
    "num_trials with grid": (
        _set("searches.gn", {"type": "gradnorm", "search": "grid", "alpha": [0, 1], "num_trials": 3}),
        "searches.gn.num_trials: is for search: optuna",
        "remove it",
    ),
    "bad weight_lr": (_set("searches.gn.weight_lr", 0), "searches.gn.weight_lr: must be > 0", "learning rate"),
    "bad optimizer": (_set("searches.gn.optimizer", "adamw"), "searches.gn.optimizer: unknown optimizer", "adam, sgd"),
    # static_grid
    "missing levels": (_del("searches.grid.levels"), "searches.grid.levels: missing required field", "per task"),
    "wrong number of level lists": (
        _set("searches.grid.levels", [[1, 2], [1, 2]]),
        "searches.grid.levels: expected 3 lists (one per task of problem 'toy'), got 2",
        "give one list of weight levels per task or a single list for all tasks",
    ),
    "negative level": (_set("searches.grid.levels", [1, -2]), "searches.grid.levels[1]: must be >= 0", ">= 0"),
    "negative per-task level": (
        _set("searches.grid.levels", [[1], [1, 2], [3, -1]]), "searches.grid.levels[2][1]: must be >= 0", ">= 0"
    ),
    "non-numeric level": (_set("searches.grid.levels", [1, "x"]), "searches.grid.levels[1]: expected a number", "'x'"),
    "mixed level shapes": (_set("searches.grid.levels", [[1], 2, [3]]), "searches.grid.levels[1]: expected a list", "[1]"),
    "all tasks have a zero level": (
        _set("searches.grid.levels", [[0, 1], [0, 2], [0, 1]]), "searches.grid.levels: every task's levels include 0", "drop 0"
    ),
    "shared levels with zero": (_set("searches.grid.levels", [0, 1]), "searches.grid.levels: every task", "drop 0"),
    "duplicate level": (_set("searches.grid.levels", [1, 2, 1]), "searches.grid.levels[2]: 1 is listed twice", "once"),
    "zero max_trials": (_set("searches.grid.max_trials", 0), "searches.grid.max_trials: must be an integer >= 1", "grid"),
    # baselines
    "bad uncertainty lr": (_set("searches.unc.weight_lr", -0.1), "searches.unc.weight_lr: must be > 0",
                           "learning rate"),
    "one network lr": (_set("searches.unc.lr", 0.1), "searches.unc.lr: is one number (0.1)", "weight_lr"),
    "bad dwa temperature": (_set("searches.dwa.temperature", 0), "searches.dwa.temperature: must be > 0", "temperature"),
    # static
    "wrong number of weights": (
        _set("searches.fixed.weights", [1, 2]),
        "searches.fixed.weights: expected 3 weights (one per task of problem 'toy'), got 2",
        "give 3 weights",
    ),
    "negative weight": (_set("searches.fixed.weights", [1, -2, 3]), "searches.fixed.weights[1]: must be >= 0", "weights"),
    "all-zero weights": (_set("searches.fixed.weights", [0, 0, 0]), "searches.fixed.weights: all weights are 0", "> 0"),
    "missing weights": (_del("searches.fixed.weights"), "searches.fixed.weights: missing required field", "3 weights"),
    "boolean weight": (_set("searches.fixed.weights", [1, True, 3]), "searches.fixed.weights[1]: expected a number", "True"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_field_errors_are_one_line_and_name_the_field(case):
    mutate, where, detail = CASES[case]
    data = base()
    mutate(data)
    message = error_of(data)
    assert where in message, message
    assert detail in message, message


def test_error_from_a_file_names_the_file(tmp_path):
    path = tmp_path / "demo.yaml"
    path.write_text(
        "name: demo\nproblem: {name: toy_t2, options: {num_train: 8, num_val: 4, num_test: 4}}\n"
        "searches:\n  static_grid: {type: static_grid, levels: [[1], [1, 2], [3]]}\n"
    )
    message = load_error(path)
    assert message.startswith(f"{path}: searches.static_grid.levels: expected 2 lists"), message


# -- static grids ----------------------------------------------------------------------------


def grid(levels, max_trials=None) -> StaticGridSearch:
    return StaticGridSearch(name="g", type="static_grid", levels=levels, max_trials=max_trials)


def test_full_grid_in_product_order():
    search = grid([[1, 2], [0.5, 1, 2], [3]])
    points, size, sampled = static_grid_points(search, 3, seed=0)
    assert (size, sampled) == (6, False)
    assert points == [list(p) for p in itertools.product([1, 2], [0.5, 1, 2], [3])]


def test_cap_at_or_above_size_gives_full_grid():
    for cap in (27, 100):
        points, size, sampled = static_grid_points(grid([1, 2, 4], cap), 3, seed=0)
        assert (len(points), size, sampled) == (27, 27, False)
        assert points == [list(p) for p in itertools.product([1, 2, 4], repeat=3)]


def test_grid_size_shared_vs_per_task_levels():
    assert grid([1, 2, 4]).grid_size(3) == 27
    assert grid([1, 2, 4]).grid_size(2) == 9
    assert grid([[1], [1, 2], [1, 2, 3, 4]]).grid_size(3) == 8
    assert grid([[1], [0.01, 0.1, 1, 10, 100]]).grid_size(2) == 5
    assert grid([1, 2], 3).trial_count(3) == 3 and grid([1, 2]).trial_count(3) == 8


def test_sampling_with_a_cap():
    levels = [0.5, 1, 2, 4]
    full = [list(p) for p in itertools.product(levels, repeat=3)]
    points, size, sampled = static_grid_points(grid(levels, 10), 3, seed=7)
    assert (size, sampled, len(points)) == (64, True, 10)
    assert all(p in full for p in points)
    assert len({tuple(p) for p in points}) == 10
    # stable order: the grid's product order
    assert points == sorted(points, key=full.index)
    # deterministic for a seed, different for another
    assert static_grid_points(grid(levels, 10), 3, seed=7)[0] == points
    assert static_grid_points(grid(levels, 10), 3, seed=8)[0] != points


def test_sampling_a_large_grid_does_not_build_it():
    search = grid([0.1, 0.3, 1, 3, 10], 4)  # 5**10 = 9.8 million points for 10 tasks
    points, size, sampled = static_grid_points(search, 10, seed=0)
    assert size == 5**10 and sampled and len(points) == 4
    assert all(len(p) == 10 for p in points)


def test_non_utf8_file_is_unreadable(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    assert "s.yaml: file: cannot be read" in load_error(path)


def test_spec_module_imports_no_ray_mlflow_or_optuna():
    import ast

    import sweeps.spec

    tree = ast.parse(Path(sweeps.spec.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"ray", "mlflow", "optuna"}, imported


def test_shared_layer_is_checked_on_the_model_and_reaches_every_trial():
    data = base()
    data["problem"]["shared_layer"] = "trunk.2"
    spec = parse_spec(data, "spec.yaml")
    assert spec.trial_base().problem.shared_layer == "trunk.2"
    data["problem"]["shared_layer"] = "trunk.22"
    message = error_of(data)
    assert message.startswith("spec.yaml: problem.shared_layer: no module 'trunk.22' in the model"), message
    assert "closest: trunk.2" in message and "\n" not in message
    assert parse_spec(base(), "spec.yaml").trial_base().problem.shared_layer is None


def test_the_spec_accepts_a_search_of_each_gradient_method_and_rlw():
    """Each one built on the problem's model before Ray starts: its options checked there."""
    data = base()
    data["searches"] = {
        "mgda": {"type": "mgda", "jacobian": "representation"}, "pcgrad": "pcgrad",
        "cagrad": {"type": "cagrad", "c": 0.2, "repeats": 2}, "nash": {"type": "nash_mtl", "update_weights_every": 2},
        "imtl_g": "imtl_g", "aligned": "aligned_mtl", "upgrad": {"type": "upgrad", "lr": [0.001, 0.01]},
        "dualproj": "dualproj", "rlw": {"type": "rlw", "lr": {"low": 1e-4, "high": 1e-2}, "num_trials": 2},
    }
    spec = parse_spec(data, "spec.yaml")
    assert [s.type for s in spec.searches] == ["mgda", "pcgrad", "cagrad", "nash_mtl", "imtl_g", "aligned_mtl",
                                               "upgrad", "dualproj", "rlw"]
    assert spec.trial_count() == 1 + 1 + 2 + 1 + 1 + 1 + 2 + 1 + 2
