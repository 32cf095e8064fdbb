"""problem_tasks: a registered problem's task names from its options alone, with make_problem's
checks and messages, and without building, generating or loading any data."""

from __future__ import annotations

import functools
import inspect

import numpy as np
import pytest

import gradnorm_core
from gradnorm_core import problems
from gradnorm_core.data import mnist as mnist_data
from gradnorm_core.data import qm9 as qm9_data
from gradnorm_core.data.qm9 import TARGET_NAMES
from gradnorm_core.problems import (
    PROBLEMS,
    QM9,
    MultiDigits,
    MultiMNIST,
    ToyRegression,
    make_problem,
    problem_tasks,
)
from gradnorm_core.problems import multidigits as multidigits_module
from gradnorm_core.problems import multimnist as multimnist_module
from gradnorm_core.problems import qm9 as qm9_module
from gradnorm_core.problems import toy as toy_module
from test_multimnist import synthetic_mnist
from test_qm9 import H2, METHANE, WATER, needs_qm9pack, write_fake_qm9

SMALL = {"num_train": 12, "num_val": 6, "num_test": 6}


def test_exported():
    assert gradnorm_core.problem_tasks is problem_tasks
    assert "problem_tasks" in gradnorm_core.__all__ and "problem_tasks" in problems.__all__


def test_registry_still_maps_names_to_factories():
    # sweeps/spec reads inspect.signature(PROBLEMS[name]): the factories themselves stay there
    assert set(PROBLEMS) == {"toy", "toy_t2", "toy_t10", "multidigits", "multimnist", "qm9"}
    assert PROBLEMS["toy"] is ToyRegression and PROBLEMS["multidigits"] is MultiDigits
    assert PROBLEMS["multimnist"] is MultiMNIST and PROBLEMS["qm9"] is QM9
    assert PROBLEMS["toy_t2"] == ToyRegression.paper_t2
    assert PROBLEMS["toy_t10"] == ToyRegression.paper_t10
    assert list(inspect.signature(PROBLEMS["toy_t2"]).parameters) == [
        "num_train", "num_val", "num_test", "seed"
    ]


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_each_problem_defers_its_data_to_load_data(name):
    # construction only checks options: every built-in is a Problem with a load_data()
    factory = PROBLEMS[name]
    cls = factory if inspect.isclass(factory) else factory.__self__
    assert cls.load_data is not problems.Problem.load_data


# --- the same task names as the built problem -----------------------------------------------

CHEAP = [
    ("toy", {"sigmas": [1.0, 2.0, 4.0], "seed": 3, **SMALL}, ("task0", "task1", "task2")),
    ("toy", {"sigmas": (5,), **SMALL}, ("task0",)),
    ("toy_t2", SMALL, ("task0", "task1")),
    ("toy_t10", {"seed": 2, **SMALL}, tuple(f"task{i}" for i in range(10))),
    ("multidigits", {"seed": 1, **SMALL}, ("left", "right", "sum")),
]


@pytest.mark.parametrize(("name", "options", "expected"), CHEAP, ids=[c[0] for c in CHEAP])
def test_matches_the_built_problem(name, options, expected):
    tasks = problem_tasks(name, **options)
    assert isinstance(tasks, tuple)
    assert tasks == expected
    assert tasks == make_problem(name, **options).task_names


def test_defaults_come_from_the_factory_signature():
    assert problem_tasks("toy_t2") == ("task0", "task1")
    assert problem_tasks("toy_t10") == tuple(f"task{i}" for i in range(10))
    assert problem_tasks("toy", sigmas=[1, 2]) == ("task0", "task1")
    assert problem_tasks("multidigits") == ("left", "right", "sum")
    assert problem_tasks("multimnist") == ("left", "right")
    assert problem_tasks("qm9") == TARGET_NAMES


def test_multimnist_matches_on_synthetic_digits(monkeypatch):
    arrays = synthetic_mnist(n_train=60, n_test=20)
    monkeypatch.setattr(multimnist_module, "_load", lambda directory: arrays)
    built = make_problem("multimnist", **SMALL)
    assert problem_tasks("multimnist", **SMALL) == built.task_names == ("left", "right")


def test_multimnist_matches_on_real_mnist_if_present():
    directory = mnist_data.default_cache_dir()
    try:
        mnist_data.load_mnist(directory)
    except FileNotFoundError:
        pytest.skip(f"MNIST not found in {directory}; run gradnorm-tune data mnist")
    built = make_problem("multimnist", **SMALL)
    assert problem_tasks("multimnist", **SMALL) == built.task_names


def test_qm9_matches_on_files_in_qm9pack_format(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("GRADNORM_TUNE_DATA", str(tmp_path / "cache"))
    write_fake_qm9(data, [WATER, H2, METHANE] * 4)
    options = {"data_dir": str(data), "num_train": 6, "num_val": 3, "num_test": 3}
    built = make_problem("qm9", **options)
    assert problem_tasks("qm9", **options) == built.task_names == TARGET_NAMES


@needs_qm9pack
def test_qm9_matches_on_real_data(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADNORM_TUNE_DATA", str(tmp_path))  # no shared cache written
    # the installed CSVs, but only their first 2000 molecules (a full parse takes minutes)
    monkeypatch.setattr(qm9_module, "load_qm9", functools.partial(qm9_data.load_qm9, limit=2000))
    built = make_problem("qm9", num_train=200, num_val=100, num_test=100)
    assert problem_tasks("qm9", num_train=200, num_val=100, num_test=100) == built.task_names


# --- no data is built, generated or loaded --------------------------------------------------


def test_multimnist_answers_from_an_empty_data_directory(tmp_path, monkeypatch):
    empty = tmp_path / "mnist"
    empty.mkdir()
    monkeypatch.setenv("GRADNORM_TUNE_DATA", str(empty))
    assert mnist_data.default_cache_dir() == empty
    assert problem_tasks("multimnist", **SMALL) == ("left", "right")
    assert problem_tasks("multimnist", data_dir=tmp_path / "absent") == ("left", "right")
    # construction reads nothing either: the missing files show on first use of the data
    with pytest.raises(FileNotFoundError, match="MNIST file"):
        make_problem("multimnist", **SMALL).train
    with pytest.raises(FileNotFoundError, match="MNIST file"):
        make_problem("multimnist", data_dir=tmp_path / "absent").load_data()
    assert not any(empty.iterdir()) and not (tmp_path / "absent").exists()


class DataTouched(Exception):
    pass


def refuse(*args, **kwargs):
    raise DataTouched("data was read")


def test_qm9_answers_without_reading_the_csvs(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    write_fake_qm9(data, [WATER, H2, METHANE] * 4)
    monkeypatch.setenv("GRADNORM_TUNE_DATA", str(tmp_path / "cache"))  # no cache to hit
    monkeypatch.setattr(qm9_data, "_read", refuse)
    options = {"data_dir": str(data), "num_train": 6, "num_val": 3, "num_test": 3}
    assert problem_tasks("qm9", **options) == TARGET_NAMES
    assert problem_tasks("qm9", num_train=6, num_val=3, num_test=3) == TARGET_NAMES
    problem = make_problem("qm9", **options)  # construction reads no file
    with pytest.raises(DataTouched):
        problem.train


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("toy", {"sigmas": [1.0, 100.0]}),
        ("toy_t2", {}),
        ("toy_t10", {"seed": 4}),
        ("multidigits", {}),
        ("multimnist", {}),
        ("qm9", {}),
    ],
)
def test_nothing_is_built_or_loaded(name, options, monkeypatch):
    # (not __init__: the factories' signatures must stay what make_problem checks against)
    for cls in (ToyRegression, MultiDigits, MultiMNIST, QM9):
        monkeypatch.setattr(cls, "_make_split", refuse)
    monkeypatch.setattr(toy_module.torch, "randn", refuse)  # toy's B, eps_i and inputs
    monkeypatch.setattr(multidigits_module, "_load_digits", refuse)
    monkeypatch.setattr(multimnist_module, "_load", refuse)
    monkeypatch.setattr(mnist_data, "load_mnist", refuse)
    monkeypatch.setattr(mnist_data, "read_idx", refuse)
    monkeypatch.setattr(qm9_module, "load_qm9", refuse)
    monkeypatch.setattr(qm9_data, "load_qm9", refuse)
    monkeypatch.setattr(qm9_data, "_read", refuse)
    monkeypatch.setattr(qm9_data, "_read_cache", refuse)
    assert problem_tasks(name, **options)
    problem = make_problem(name, **options)  # construction loads nothing either
    assert problem.task_names
    with pytest.raises(DataTouched):
        problem.load_data()
    with pytest.raises(DataTouched):
        problem.train  # the first use of the data loads it


# --- bad inputs: the same one-line message as make_problem ------------------------------------

BAD = [
    # unknown name
    ("mnist", {}, "unknown problem 'mnist'; choose one of: toy, toy_t2, toy_t10, multidigits"),
    # unknown option
    ("toy_t2", {"sigmas": [1.0]}, "unknown option 'sigmas' for problem 'toy_t2'; accepted"),
    ("multimnist", {"num_molecules": 5}, "unknown option 'num_molecules' for problem 'multimnist'"),
    ("qm9", {"targets": ["mu"]}, "targets must be 'standardized' (z-scored on the train split) or 'raw'"),
    # missing option
    ("toy", {"seed": 1}, "problem 'toy' needs option 'sigmas'; accepted options: sigmas, num_train"),
    # bad values
    ("toy", {"sigmas": [1.0, -2.0]}, "sigmas[1] must be a finite number > 0, got -2.0"),
    ("toy", {"sigmas": [1.0, float("nan")]}, "sigmas[1] must be a finite number > 0, got nan"),
    ("toy", {"sigmas": []}, "sigmas must hold at least one task scale"),
    ("toy", {"sigmas": ["a"]}, "sigmas must be a sequence of positive numbers, got ['a']"),
    ("toy", {"sigmas": [1.0], "num_train": 0}, "num_train must be an integer >= 1, got 0"),
    ("toy", {"sigmas": [0.0], "num_train": 0}, "sigmas[0] must be"),  # sigmas are checked first
    ("toy_t2", {"num_val": True}, "num_val must be an integer >= 1, got True"),
    ("toy_t2", {"num_train": 0, "seed": -1}, "num_train must be"),  # sizes before the seed
    ("toy_t10", {"num_train": 0, "seed": -1}, "seed must be a non-negative integer, got -1"),
    ("multidigits", {"num_test": 2.5}, "num_test must be an integer >= 1, got 2.5"),
    ("multidigits", {"seed": -3}, "seed must be a non-negative integer, got -3"),
    ("multimnist", {"num_train": 0}, "num_train must be an integer >= 1, got 0"),
    ("multimnist", {"seed": np.int64(-1)}, "seed must be a non-negative integer"),
    ("qm9", {"num_val": 0}, "num_val must be an integer >= 1, got 0"),
    ("qm9", {"seed": "1"}, "seed must be a non-negative integer, got '1'"),
]


def message_of(call, name, options):
    with pytest.raises(ValueError) as info:
        call(name, **options)
    return str(info.value)


@pytest.mark.parametrize(("name", "options", "start"), BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_inputs_give_make_problems_message(name, options, start):
    from_tasks = message_of(problem_tasks, name, options)
    assert from_tasks == message_of(make_problem, name, options)
    assert from_tasks.startswith(start)
    assert "\n" not in from_tasks
