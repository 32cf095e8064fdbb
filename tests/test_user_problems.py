"""A user's own problem in a sweep: named ``module:attribute`` or by an entry point, its code shipped
to Ray's workers with ``runtime_env.working_dir`` (``--working-dir``), every bad input a one-line
error (exit code 2) before any trial runs and before anything is written to MLflow.

The user's package is written into a temporary directory outside the repository, on no Python
path (see tests/user_problem_pkg.py). The two-node cluster version is in tests/test_cluster.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from user_problem_pkg import PACKAGE, write_entry_point, write_package

from gradnorm_core import make_problem, problem_tasks
from gradnorm_core.problems import Problem, ProblemNameError, resolve_problem
from sweeps.cli import main
from sweeps.spec import SpecError, load_spec, parse_spec
from trainables import ERROR_LOG, ERROR_TAG, OUTCOME, PRIMARY_METRICS, ROLE, SEARCH, TRIAL_ID

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def spec(experiment: str, **problem_options) -> dict:
    return {
        "name": "waves",
        "experiment": experiment,
        "problem": {"name": f"{PACKAGE}:Waves", "options": {"num_train": 256, "num_val": 64, "num_test": 64,
                                                            **problem_options}},
        "training": {"epochs": 3, "batch_size": 64, "lr": 0.01, "seed": 0, "device": "cpu"},
        "resources": {"cpu": 1, "max_concurrent": 2},
        "searches": {"gradnorm": {"type": "gradnorm", "search": "grid", "alpha": [0.5, 1.5]},
                     "equal": {"type": "equal", "repeats": 2}},
        "recommended_static": False,
    }


@pytest.fixture
def forget_package():
    """The user's package imported by a test in this process is forgotten after it."""
    before = list(sys.path)
    yield
    sys.path[:] = before
    for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]


@pytest.fixture
def code(tmp_path) -> Path:
    """The directory a user ships: it holds the package, and is on no Python path."""
    root = write_package(tmp_path / "code")
    assert not any(str(root) == path or path.startswith(f"{root}{os.sep}") for path in sys.path)
    return root


# ---------------------------------------------------------------- names, without Ray


def test_module_attribute_names_a_class_a_factory_or_a_dotted_path(code, monkeypatch, forget_package):
    monkeypatch.syspath_prepend(str(code))
    problems = __import__(f"{PACKAGE}.problems", fromlist=["Waves"])
    assert resolve_problem(f"{PACKAGE}:Waves") is problems.Waves
    for name in (f"{PACKAGE}:Waves", f"{PACKAGE}.problems:make_waves", f"{PACKAGE}:Factories.waves"):
        assert problem_tasks(name, num_train=8) == ("low", "high")
        assert problems.LOADS == []  # the task names come without any data
        problem = make_problem(name, num_train=8)
        assert isinstance(problem, Problem) and problem.task_names == ("low", "high")
    assert len(problem.train) == 8 and problems.LOADS == [(8, 32, 32)]


@pytest.mark.parametrize("name,options,message", [
    (f"{PACKAGE}:Wave", {}, f"module '{PACKAGE}' has no attribute 'Wave' (problem '{PACKAGE}:Wave'); "
                            "did you mean 'Waves'? Problem classes in it: Scaled, Waves"),
    (f"{PACKAGE}:Factories.wave", {}, f"{PACKAGE}:Factories has no attribute 'wave'"),
    (f"{PACKAGE}:not_a_problem", {}, f"problem '{PACKAGE}:not_a_problem' returned a builtins.dict, "
                                     "not a gradnorm_core Problem"),
    (f"{PACKAGE}:Waves", {"num_trian": 5}, f"unknown option 'num_trian' for problem '{PACKAGE}:Waves'; "
                                           "accepted options: num_train, num_val, num_test, seed, fail_seed"),
    (f"{PACKAGE}:Scaled", {}, f"problem '{PACKAGE}:Scaled' needs option 'scale'"),
    (f"{PACKAGE}:Waves", {"num_train": 0}, f"problem '{PACKAGE}:Waves' failed to build "
                                           "(ValueError: num_train must be >= 1, got 0)"),
    ("no_such_package:Waves", {}, "cannot import module 'no_such_package' of problem 'no_such_package:Waves' "
                                  "(ModuleNotFoundError: No module named 'no_such_package')"),
    (f"{PACKAGE}:", {}, "is not module:attribute"),
    ("wavez", {}, "unknown problem 'wavez'; choose one of: toy, toy_t2, toy_t10, multidigits"),
])
def test_bad_names_and_options_are_one_line(name, options, message, code, monkeypatch, forget_package):
    monkeypatch.syspath_prepend(str(code))
    with pytest.raises(ProblemNameError) as error:
        problem_tasks(name, **options)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_an_entry_point_is_resolved_by_its_plain_name(code, monkeypatch, forget_package):
    write_entry_point(code, "waves")
    write_entry_point(code / "shadow", "toy", f"{PACKAGE}:Waves")  # a built-in name is never shadowed
    monkeypatch.syspath_prepend(str(code / "shadow"))
    monkeypatch.syspath_prepend(str(code))
    problems = __import__(f"{PACKAGE}.problems", fromlist=["Waves"])
    assert resolve_problem("waves") is problems.Waves
    assert problem_tasks("waves", num_train=8) == ("low", "high")
    assert make_problem("waves", num_train=8).name == "waves"
    assert resolve_problem("toy").__name__ == "ToyRegression"
    with pytest.raises(ProblemNameError, match=r"unknown problem 'wavs'; choose one of: .*; installed: waves;"):
        problem_tasks("wavs")
    spec_ = parse_spec(dict(spec("ep"), problem={"name": "waves", "options": {"num_train": 8}}))
    assert spec_.task_names == ["low", "high"]
    with pytest.raises(SpecError, match=r"problem\.name: unknown problem 'wavs'; did you mean 'waves'\?"):
        parse_spec(dict(spec("ep"), problem="wavs"))


def test_spec_imports_the_problem_from_its_working_dir_for_the_task_names_only(code, tmp_path, monkeypatch):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "waves.yaml").write_text(yaml.safe_dump(dict(spec("s"), runtime_env={"working_dir": "../code"})))
    import ray.runtime_env  # noqa: F401 - Ray's first import puts its vendored packages on sys.path
    path_before = list(sys.path)
    loaded = load_spec(specs / "waves.yaml")
    assert loaded.task_names == ["low", "high"]
    # relative to the spec's directory, and kept absolute: a resume from anywhere finds the same code
    assert loaded.runtime_env == {"working_dir": str(code)} == loaded.raw["runtime_env"]
    assert sys.path == path_before and PACKAGE not in sys.modules  # nothing of it left in the driver
    monkeypatch.chdir(tmp_path.parent)
    assert parse_spec(loaded.raw, loaded.source) == loaded
    # the CLI flag: from the working directory, before the spec is validated
    monkeypatch.chdir(tmp_path)
    (specs / "plain.yaml").write_text(yaml.safe_dump(spec("s")))
    assert load_spec(specs / "plain.yaml", runtime_env={"working_dir": str(code)}).runtime_env == {
        "working_dir": str(code)}
    with pytest.raises(SpecError, match=r"problem\.name: cannot import module 'waves_problems'.*--working-dir DIR"):
        load_spec(specs / "plain.yaml")


# ---------------------------------------------------------------- bad input through the CLI


BAD = {
    "module not shipped": ({}, None, "problem.name: cannot import module 'waves_problems' of problem "
                                     "'waves_problems:Waves' (ModuleNotFoundError: No module named 'waves_problems'); "
                                     "ship its code with the sweep: runtime_env: {working_dir: DIR} in the spec or "
                                     "gradnorm-tune sweep --working-dir DIR"),
    "module does not import": ({}, "broken", "problem.name: cannot import module 'waves_problems' of problem "
                                             "'waves_problems:Waves' (ModuleNotFoundError: No module named "
                                             "'waves_missing_dependency'); install 'waves_missing_dependency' "
                                             "where the trials run (on every node), or ship it with the sweep too"),
    "misspelled module, shipped": (
        {"problem": {"name": "wave_problems.problem:Waves"}}, "code",
        "problem.name: cannot import module 'wave_problems.problem' of problem 'wave_problems.problem:Waves' "
        "(ModuleNotFoundError: No module named 'wave_problems'); did you mean 'waves_problems.problems'? fix "
        "problem.name: the working_dir {code} has no module 'wave_problems.problem' (its modules: waves_problems, "
        "waves_problems.problems)"),
    "misspelled attribute, shipped": (
        {"problem": {"name": f"{PACKAGE}.problems:Wavs"}}, "code",
        "problem.name: module 'waves_problems.problems' has no attribute 'Wavs' (problem "
        "'waves_problems.problems:Wavs'); did you mean 'Waves'? Problem classes in it: Scaled, Waves"),
    "missing attribute": ({"problem": {"name": f"{PACKAGE}:Wave"}}, "code",
                          "problem.name: module 'waves_problems' has no attribute 'Wave'"),
    "not a problem": ({"problem": {"name": f"{PACKAGE}:not_a_problem"}}, "code",
                      "problem.name: problem 'waves_problems:not_a_problem' returned a builtins.dict, not a "
                      "gradnorm_core Problem; make it return an instance of a gradnorm_core.Problem subclass"),
    "unknown option": ({"problem": {"name": f"{PACKAGE}:Waves", "options": {"num_trian": 5}}}, "code",
                       "problem.options.num_trian: unknown option 'num_trian' for problem 'waves_problems:Waves'; "
                       "did you mean 'num_train'? accepted: num_train"),
    "missing option": ({"problem": {"name": f"{PACKAGE}:Scaled"}}, "code",
                       "problem.options.scale: problem 'waves_problems:Scaled' needs option 'scale'; "
                       "add it under problem.options"),
    "bad option value": ({"problem": {"name": f"{PACKAGE}:Waves", "options": {"num_train": 0}}}, "code",
                         "problem.options: problem 'waves_problems:Waves' failed to build (ValueError: num_train "
                         "must be >= 1, got 0)"),
    "unknown runtime_env key": ({"runtime_env": {"workdir": "."}}, None,
                                "runtime_env.workdir: unknown runtime_env key 'workdir'; did you mean 'working_dir'?"),
    "working dir missing": ({}, "missing", "runtime_env.working_dir: "),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_exit_2_and_nothing_reaches_mlflow(case, tmp_path, capsys, forget_package):
    change, shipped, expected = BAD[case]
    if shipped == "broken":
        shipped = str(write_package(tmp_path / "code", broken=True))
    elif shipped == "code":
        shipped = str(write_package(tmp_path / "code"))
        expected = expected.replace("{code}", shipped)
    elif shipped == "missing":
        shipped, expected = str(tmp_path / "nowhere"), f"{expected}{tmp_path / 'nowhere'} does not exist"
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**spec("bad"), **change}))
    argv = ["sweep", str(path), "--storage", str(tmp_path / "runs"),
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    assert main(argv + (["--working-dir", shipped] if shipped else [])) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gradnorm-tune: error: {path}: ") and expected in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


# ---------------------------------------------------------------- real Ray


def trial_runs(client: MlflowClient, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], filter_string=f"tags.`{ROLE}` = 'trial'", max_results=100)


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_ADDRESS": "", **(env or {})}
    return subprocess.run([str(BIN / "gradnorm-tune"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_user_problem_swept_on_a_local_ray_with_its_code_shipped(local_ray, code, tmp_path, capsys, new_store):
    import ray

    @ray.remote
    def import_it():
        import waves_problems  # noqa: F401

    # a Ray worker cannot import the package: it is on no path, and this job has no runtime_env
    with pytest.raises(ModuleNotFoundError, match="No module named 'waves_problems'"):
        ray.get(import_it.remote(), timeout=60)

    specs = tmp_path / "specs"
    specs.mkdir()
    path = specs / "waves.yaml"
    data = spec("user-problems/local", fail_seed=1)
    data["searches"]["gradnorm"]["alpha"] = [1.0]  # 3 trials: GradNorm at one alpha, equal weights at 2 seeds
    # and a search whose one trial diverges (a network lr of 1e12), and the single-task reference
    # of Delta m%, whose primary metrics the driver reads as the trials recorded them
    data["searches"] |= {"wild": {"type": "equal", "lr": [1.0e12]}, "stl": {"type": "single_task"}}
    path.write_text(yaml.safe_dump(data))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    flags = ["--storage", str(tmp_path / "runs"), "--tracking-uri", uri, "--working-dir", str(code)]

    # this process's Ray was started without the runtime_env: a sweep cannot add it to that job
    assert main(["sweep", str(path), *flags]) == 2
    err = capsys.readouterr().err
    assert "runtime_env (working_dir) cannot be applied: Ray is already initialised" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()

    # the CLI starts its own Ray with the runtime_env; the trial of seed 1 hits the user's bug and
    # the wild search's trial diverges: the sweep ends with no result for wild (exit 4), one line a
    # trial, no traceback
    new_store(tmp_path / "mlflow.db")  # an empty store, its tables made
    done = run_cli("sweep", str(path), *flags, "--max-failures", "0", cwd=tmp_path)
    assert done.returncode == 4, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr and done.stderr.count("\n") <= 2, done.stderr
    (verdict,) = [line for line in done.stdout.splitlines() if line.startswith("sweep ended with failures: ")]
    assert "1 failed, 1 diverged of 6 trials; no result for wild (exit 4" in verdict, verdict
    client = MlflowClient(uri)
    runs = trial_runs(client, "user-problems/local")
    assert len(runs) == 6 and max(Counter(run.data.tags[TRIAL_ID] for run in runs).values()) == 1
    failed = [run for run in runs if run.data.tags[OUTCOME] == "failed"]
    assert len(failed) == 1 and failed[0].data.tags[SEARCH] == "equal" and failed[0].data.params["repeat"] == "1"
    # the exception's last line, raised by the copy Ray unpacked on the worker
    error = failed[0].data.tags[ERROR_TAG]
    assert error.startswith("RuntimeError: waves: no model for seed 1 (module ") and "_ray_pkg_" in error, error
    (wild,) = [run for run in runs if run.data.tags[OUTCOME] == "diverged"]
    assert wild.info.status == "FAILED" and wild.data.tags[SEARCH] == "wild"
    assert wild.data.tags[ERROR_TAG].startswith("task 'low': its training loss is inf at epoch 1, step "), wild.data.tags
    assert [a.path for a in client.list_artifacts(wild.info.run_id)] == [ERROR_LOG]
    (line,) = [line for line in done.stdout.splitlines() if "DIVERGED: " in line]
    log = Path(line.rsplit("(log: ", 1)[1].rstrip(")"))  # its log: which loss, where, the last finite values
    assert "the last finite values: the step before: low " in log.read_text(), log.read_text()
    assert all(run.info.status == "FINISHED" for run in runs if run not in (failed[0], wild))
    assert Counter(run.data.tags[SEARCH] for run in runs if run.info.status == "FINISHED") == {"gradnorm": 1,
                                                                                                "equal": 1, "stl": 2}
    # Delta m% on a shipped problem: its primary metrics as the trials recorded them
    comparison = next(run for run in client.search_runs([runs[0].info.experiment_id])
                      if run.data.tags.get(ROLE) == "comparison")
    assert comparison.info.status == "FINISHED" and comparison.data.tags[OUTCOME] == "no_result"
    assert "gradnorm/delta_m" in comparison.data.metrics and comparison.data.metrics["stl/delta_m"] == 0.0  # (its own)
    # (recorded at a trial's first report: the failed trial, which never reported, has none)
    (recorded,) = {run.data.tags[PRIMARY_METRICS] for run in runs if run.info.status == "FINISHED"}
    recorded = json.loads(recorded)
    assert recorded == {"low": {"metric": "low/rmse", "higher_is_better": False},
                        "high": {"metric": "high/rmse", "higher_is_better": False}}
    (directory,) = (tmp_path / "runs").iterdir()
    # report rebuilds it here (no Ray), from the record; and from a record without the trials' primary
    # metrics (written before they recorded them), from the shipped code, as a trial imports it
    capsys.readouterr()
    assert main(["report", str(directory), "--tracking-uri", uri]) == 0
    assert "Δm%" in capsys.readouterr().out  # the table's Delta m% column
    for run in runs:
        if PRIMARY_METRICS in run.data.tags:
            client.delete_tag(run.info.run_id, PRIMARY_METRICS)
    assert main(["report", str(directory), "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "Δm%" in out and "Delta m% left out" not in out, out
    # without the shipped code either: one line says what is missing
    code.rename(tmp_path / "moved")
    assert main(["report", str(directory), "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"runtime_env.working_dir: {code} does not exist" in err, err
    (tmp_path / "moved").rename(code)
    saved = json.loads((directory / "sweep.json").read_text())
    assert saved["spec"]["runtime_env"] == {"working_dir": str(code)}  # what a resume hands Ray again
    # a resume reads it back, and refuses this process's Ray too, before touching MLflow
    assert main(["resume", str(directory)]) == 2
    err = capsys.readouterr().err
    assert "runtime_env (working_dir) cannot be applied" in err and err.count("\n") == 1


#: Run in a process of its own, joined to the session's Ray (cheap: a new job on a running cluster,
#: not a new cluster): start_ray as a sweep calls it, with runtime_envs whose env_vars a task reads.
JOINING = """
import json, os, sys

import ray

from sweeps import session

address = sys.argv[1]
one, two = ({"env_vars": {"GRADNORM_TUNE_MARK": mark}} for mark in ("one", "two"))


@ray.remote(num_cpus=0)
def mark():
    return os.environ.get("GRADNORM_TUNE_MARK")


def job():
    return ray.get_runtime_context().get_job_id()


seen = {}
session.start_ray(address, runtime_env=one)  # a job of its own, with the runtime_env
seen["first"] = [job(), ray.get(mark.remote())]
session.start_ray(address, runtime_env=one)  # ours, with this runtime_env: used as it is
session.start_ray(address)  # a spec without one: used as it is
seen["same"] = job()
session.start_ray(address, runtime_env=two)  # ours, with another: a new job with it
seen["other"] = [job(), ray.get(mark.remote())]
print(json.dumps(seen))
"""


def test_runtime_env_goes_to_the_ray_the_sweep_starts_and_never_to_the_callers(local_ray, tmp_path):
    from sweeps import session
    from sweeps.state import SweepError

    ray = local_ray
    address = ray.get_runtime_context().gcs_address
    script = tmp_path / "joining.py"
    script.write_text(JOINING)
    done = subprocess.run([sys.executable, str(script), address], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RAY_AUTH_MODE": "token", "RAY_ADDRESS": ""})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["first"][1] == "one" and seen["same"] == seen["first"][0]  # applied, then kept
    assert seen["other"][1] == "two" and seen["other"][0] != seen["first"][0]  # restarted with the new one

    # the caller's Ray (a notebook's ray.init(), here the tests' session Ray): used, never restarted
    job = ray.get_runtime_context().get_job_id()
    session.start_ray(None)
    assert ray.is_initialized() and ray.get_runtime_context().get_job_id() == job
    session.check_runtime_env({})
    with pytest.raises(SweepError, match=r"^runtime_env \(working_dir\) cannot be applied: Ray is already "
                                         r"initialised in this process.*ray\.shutdown\(\) first") as error:
        session.start_ray(None, runtime_env={"working_dir": "/code"})
    assert "\n" not in str(error.value) and ray.get_runtime_context().get_job_id() == job


def test_with_runtime_env_overrides_the_spec_and_keeps_it_for_a_resume(tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    base = parse_spec({**spec("s"), "problem": "toy_t2", "runtime_env": {"env_vars": {"A": "1"}}})
    monkeypatch.chdir(tmp_path)
    changed = base.with_runtime_env(working_dir="other")
    assert changed.runtime_env == {"env_vars": {"A": "1"}, "working_dir": str(other)} == changed.raw["runtime_env"]
    assert base.runtime_env == {"env_vars": {"A": "1"}}


def test_the_driver_imports_a_shipped_problem_as_a_worker_does_not_from_its_own_directory(
        tmp_path, monkeypatch, forget_package):
    """With a working_dir, a worker runs in its unpacked copy and Ray does not add the driver's
    directory to its path: a module that only the driver's working directory holds (on its path as
    '' under ``python -m``, or imported from there before) is not the shipped problem."""
    own = write_package(tmp_path / "own")  # the driver's working directory holds the package...
    shipped = tmp_path / "shipped"
    (shipped / "other").mkdir(parents=True)  # ...the shipped working_dir does not
    (shipped / "other" / "__init__.py").write_text("")
    monkeypatch.chdir(own)
    monkeypatch.syspath_prepend("")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    data = dict(spec("s"), runtime_env={"working_dir": str(shipped)})
    __import__(PACKAGE)  # imported from the driver's own directory before the spec is read
    with pytest.raises(SpecError, match=rf"cannot import module '{PACKAGE}'.*No module named '{PACKAGE}'.*fix "
                                        rf"problem\.name: the working_dir {shipped} has no module '{PACKAGE}' "
                                        r"\(its modules: other\)"):
        parse_spec(data)
    assert sys.modules[PACKAGE].__file__.startswith(str(own)) and "" in sys.path  # the driver's as it was
    # without a working_dir Ray adds the driver's directory to the workers' path: found there
    assert parse_spec(spec("s")).task_names == ["low", "high"]
