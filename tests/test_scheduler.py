"""Early stopping per search (``scheduler: {type: asha, ...}``): the spec's checks, the sweep's
one scheduler routing each trial to its own search's ASHA and keeping its state across a
restore, and a real sweep where ASHA stops trials: their MLflow runs are FINISHED, tagged as
stopped early, logged once, counted in the cost table; the searches without a scheduler, and the
recommended static trial that waits for its stopped GradNorm trials, run every epoch."""

from __future__ import annotations

import csv
import os
import pickle
import signal
import threading
from collections import Counter
from types import SimpleNamespace

import pytest
import yaml
from gated_problems import open_gate
from mlflow.tracking import MlflowClient
from ray.tune.schedulers import TrialScheduler

from sweeps.cli import main
from sweeps.experiment import make_scheduler
from sweeps.runner import SweepState, resume_sweep, run_sweep
from sweeps.scheduler import SchedulerState, SweepScheduler
from sweeps.signals import StopSignals
from sweeps.spec import SpecError, parse_spec
from trainables import PARENT, ROLE, SEARCH, STOPPED_EARLY, TRIAL_ID

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP

EPOCHS = 6
GRID = [[1], [0.05, 1, 20], [0.05, 1, 20]]  # 9 points, some of them poor: ASHA has something to stop
SPEC = {
    "name": "asha",
    "experiment": "scheduler-test",
    "problem": {"name": "multidigits", "options": {"num_train": 256, "num_val": 64, "num_test": 64}},
    "training": {"epochs": EPOCHS, "batch_size": 64, "lr": 0.002, "seed": 0, "device": "cpu"},
    "resources": {"cpu": 1, "max_concurrent": 2},
    "searches": {
        "grid": {"type": "static_grid", "levels": GRID,
                 "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 3}},
        # max_t below the epochs: every GradNorm trial is stopped at epoch 2, and the recommended
        # static trial comes only once the searcher has counted all three as ended
        "gn": {"type": "gradnorm", "alpha": [0.5, 1.5, 3.0], "scheduler": {"type": "asha", "max_t": 2}},
        "equal": {"type": "equal"},
    },
    "recommended_static": True,
}


# -- the spec ---------------------------------------------------------------------------------


def spec_with(scheduler, search=None, epochs: int = EPOCHS) -> dict:
    search = search or {"type": "static_grid", "levels": [1, 2]}
    return {"name": "t", "problem": "toy_t2", "training": {"epochs": epochs},
            "searches": {"s": {**search, "scheduler": scheduler}}}


def test_defaults_and_max_t_from_the_training_epochs():
    spec = parse_spec(spec_with({"type": "asha"}, {"type": "static_grid", "levels": [1, 2]}), "spec.yaml")
    scheduler = spec.search("s").scheduler
    assert (scheduler.grace_period, scheduler.reduction_factor, scheduler.max_t) == (1, 3.0, None)
    assert scheduler.resolved(EPOCHS) == {"grace_period": 1, "reduction_factor": 3.0, "max_t": EPOCHS}
    assert make_scheduler(spec).settings == {"s": {"grace_period": 1, "reduction_factor": 3.0, "max_t": EPOCHS}}
    assert spec.search("s").options["scheduler"]["type"] == "asha"  # on the search's MLflow run
    no_scheduler = parse_spec({"name": "t", "problem": "toy_t2", "searches": {"e": "equal"}}, "spec.yaml")
    assert make_scheduler(no_scheduler) is None  # Tune's own FIFO scheduler, as before


@pytest.mark.parametrize("scheduler, search, expected", [
    ({"type": "hyperband"}, None,
     r"^spec\.yaml: searches\.s\.scheduler\.type: unknown scheduler type 'hyperband'; choose one of: asha$"),
    ({"grace_period": 2}, None, r"^spec\.yaml: searches\.s\.scheduler\.type: missing required field; add 'type: asha'"),
    ("asha", None, r"^spec\.yaml: searches\.s\.scheduler: expected a mapping, got string 'asha'; write it as \{type: asha"),
    ({"type": "asha", "grace": 1}, None,
     r"^spec\.yaml: searches\.s\.scheduler\.grace: unknown scheduler option 'grace'; accepted: type, grace_period"),
    ({"type": "asha", "grace_period": 0}, None, r"^spec\.yaml: searches\.s\.scheduler\.grace_period: must be an integer >= 1"),
    ({"type": "asha", "grace_period": 1.5}, None,
     r"^spec\.yaml: searches\.s\.scheduler\.grace_period: expected an integer, got float 1\.5"),
    ({"type": "asha", "reduction_factor": 1}, None,
     r"^spec\.yaml: searches\.s\.scheduler\.reduction_factor: must be > 1, got 1; give a number > 1"),
    ({"type": "asha", "max_t": True}, None, r"^spec\.yaml: searches\.s\.scheduler\.max_t: expected an integer, got boolean"),
    ({"type": "asha", "grace_period": 4, "max_t": 3}, None,
     r"^spec\.yaml: searches\.s\.scheduler\.grace_period: is 4, above max_t \(3\).*; make grace_period <= max_t$"),
    ({"type": "asha", "max_t": 7}, None,
     r"^spec\.yaml: searches\.s\.scheduler\.max_t: is 7, above training\.epochs \(6\); make max_t <= 6"),
    ({"type": "asha", "grace_period": 7}, None,
     r"^spec\.yaml: searches\.s\.scheduler\.grace_period: is 7, above training\.epochs \(6\).*; make grace_period <= 6$"),
    ({"type": "asha"}, {"type": "equal"},
     r"^spec\.yaml: searches\.s\.scheduler: the search trains one configuration.*; remove scheduler"),
])
def test_bad_scheduler_options_give_one_line_naming_the_field(scheduler, search, expected):
    with pytest.raises(SpecError, match=expected) as caught:
        parse_spec(spec_with(scheduler, search), "spec.yaml")
    assert "\n" not in str(caught.value)


# -- the scheduler, driven by hand as Tune drives it ------------------------------------------------


def trial(trial_id: str, search: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, config={"search": search, "training": {"epochs": EPOCHS}})


def asha_on(*searches: str) -> SweepScheduler:
    return SweepScheduler({name: {"grace_period": 1, "reduction_factor": 3, "max_t": EPOCHS} for name in searches})


def test_each_trial_goes_to_its_own_searchs_asha_and_the_others_continue():
    scheduler = asha_on("grid", "gn")
    trials = {name: trial(name, search) for name, search in
              [("g1", "grid"), ("g2", "grid"), ("n1", "gn"), ("e1", "equal")]}
    for t in trials.values():
        scheduler.on_trial_add(None, t)
    assert scheduler.on_trial_result(None, trials["g1"], {"epoch": 1, "score": 0.1}) == CONTINUE
    # the gn trial is judged against gn's trials only (none yet), not grid's better one
    assert scheduler.on_trial_result(None, trials["n1"], {"epoch": 1, "score": 0.9}) == CONTINUE
    assert scheduler.on_trial_result(None, trials["g2"], {"epoch": 1, "score": 0.5}) == STOP
    # a search without a scheduler: always on, whatever its score
    assert scheduler.on_trial_result(None, trials["e1"], {"epoch": 1, "score": 99.0}) == CONTINUE
    assert scheduler.stopped == {"g2": 1}
    # the last epoch (max_t) ends a trial under ASHA: not early
    assert scheduler.on_trial_result(None, trials["g1"], {"epoch": EPOCHS, "score": 0.05}) == STOP
    for name in ("g1", "g2", "n1", "e1"):
        scheduler.on_trial_complete(None, trials[name], {"epoch": 1, "score": 0.1})
    scheduler.on_trial_remove(None, trial("never-added", "grid"))  # tolerated
    assert scheduler.set_search_properties("best_score", "min")  # the sweep's metric is the searcher's


def test_state_survives_the_experiment_checkpoint_and_restore():
    scheduler = asha_on("grid")
    a, b = trial("a", "grid"), trial("b", "grid")
    for t in (a, b):
        scheduler.on_trial_add(None, t)
    scheduler.on_trial_result(None, a, {"epoch": 1, "score": 0.1})
    assert scheduler.on_trial_result(None, b, {"epoch": 1, "score": 0.5}) == STOP

    # Tune pickles the scheduler and its callback into tuner.pkl together: one object after load
    unpickled, its_callback = pickle.loads(pickle.dumps((scheduler, SchedulerState(scheduler))))
    assert its_callback.scheduler is unpickled

    # the callback's state goes out with each experiment checkpoint and comes back on restore
    saved = pickle.loads(pickle.dumps(SchedulerState(scheduler).get_state()))
    restored, fresh = asha_on("grid"), asha_on("grid")
    SchedulerState(restored).set_state(saved)
    c = trial("c", "grid")
    for t in (a, b, c):
        restored.on_trial_add(None, t)  # Tune re-adds every restored trial
        fresh.on_trial_add(None, t)
    # c is judged against the rung recorded before the restore; without it, c would go on
    assert restored.on_trial_result(None, c, {"epoch": 1, "score": 0.3}) == STOP
    assert fresh.on_trial_result(None, c, {"epoch": 1, "score": 0.3}) == CONTINUE
    # a trial stopped before the restore, redone from an older checkpoint, is stopped again
    assert restored.on_trial_result(None, b, {"epoch": 1, "score": 0.5}) == STOP


# -- a real sweep ---------------------------------------------------------------------------------


def score_steps(client: MlflowClient, run) -> list[int]:
    return [m.step for m in client.get_metric_history(run.info.run_id, "val/score")]


def test_asha_stops_trials_which_are_recorded_once_and_counted(local_ray, tmp_path, capsys, new_store):
    uri = new_store(tmp_path / "mlflow.db")
    state = run_sweep(parse_spec(SPEC, "test"), storage=tmp_path / "runs", tracking_uri=uri)
    out = capsys.readouterr().out
    client = MlflowClient(uri)
    runs = client.search_runs([state.experiment_id], max_results=1000)
    searches = {run.data.tags[SEARCH]: run for run in runs if run.data.tags.get(ROLE) == "search"}
    trials = [run for run in runs if run.data.tags.get(ROLE) == "trial"]

    # every trial exactly once, under its own search, FINISHED (stopped or not), no epoch twice
    assert Counter(run.data.tags[SEARCH] for run in trials) == {"grid": 9, "gn": 3, "equal": 1,
                                                              "recommended_static": 1}
    assert len({run.data.tags[TRIAL_ID] for run in trials}) == len(trials)
    steps = {run.info.run_id: score_steps(client, run) for run in trials}
    for run in trials:
        assert run.data.tags[PARENT] == searches[run.data.tags[SEARCH]].info.run_id
        assert run.info.status == "FINISHED"
        assert steps[run.info.run_id] == list(range(1, len(steps[run.info.run_id]) + 1))
        assert (run.data.tags.get(STOPPED_EARLY) == "true") == (len(steps[run.info.run_id]) < EPOCHS)

    by_search = {name: [run for run in trials if run.data.tags[SEARCH] == name] for name in searches}
    # ASHA really stopped some grid trials, at a rung (epoch 1 or 3), and let others run to max_t
    grid_epochs = sorted(len(steps[run.info.run_id]) for run in by_search["grid"])
    stopped = [n for n in grid_epochs if n < EPOCHS]
    assert stopped and set(stopped) <= {1, 3}, grid_epochs
    assert EPOCHS in grid_epochs
    # every GradNorm trial stopped at its max_t; the recommended trial still came after them
    assert [len(steps[run.info.run_id]) for run in by_search["gn"]] == [2, 2, 2]
    # the searches without a scheduler ran every epoch
    for name in ("equal", "recommended_static"):
        assert [len(steps[run.info.run_id]) for run in by_search[name]] == [EPOCHS]

    # the cost table counts them: on the comparison run, in the CSV and in the printed table
    metrics = client.get_run(state.comparison_run_id).data.metrics
    assert metrics["grid/stopped_early"] == len(stopped) and metrics["gn/stopped_early"] == 3
    assert "equal/stopped_early" not in metrics and "equal/stopped_compute_seconds" not in metrics  # zero: not logged
    stopped_compute = sum(run.data.metrics["compute_seconds"] for run in by_search["grid"]
                          if run.data.tags.get(STOPPED_EARLY) == "true")
    assert metrics["grid/stopped_compute_seconds"] == pytest.approx(stopped_compute)
    assert 0 < metrics["grid/stopped_compute_seconds"] < metrics["grid/compute_seconds"]
    local = client.download_artifacts(state.comparison_run_id, "cost_table.csv", str(tmp_path))
    rows = {row["search"]: row for row in csv.DictReader(open(local, newline=""))}
    assert rows["grid"]["stopped_early"] == str(len(stopped)) and rows["grid"]["finished"] == "9"
    assert f"9 of 9 ({len(stopped)} stopped early)" in out
    assert "3 (3 stopped early)" in out
    # the plan names the scheduler; each stopped trial's line says where it stopped
    assert "ASHA early stopping (grace 1, reduction 3, max_t 6 epochs)" in out
    assert out.count(f"stopped early at epoch 2/{EPOCHS}") == 3


# -- interrupted and resumed ------------------------------------------------------------------------


def test_an_interrupted_sweep_under_asha_resumes_with_every_trial_once(local_ray, tmp_path, monkeypatch, capsys,
                                                                        new_store):
    """The sweep run by the command's entry point in this process, stopped by SIGINT (as Ctrl-C
    stops it) once a trial has ended, then resumed. (The process boundary and the signals
    themselves: tests/test_interrupt.py.)"""
    uri = new_store(tmp_path / "mlflow.db")
    spec_file = tmp_path / "asha.yaml"
    epochs = 3
    # the first trial to start runs; the others wait at their first step until the gate opens, after
    # the interrupt: it lands once a trial has ended and while the grid is unfinished, on any machine
    gate = tmp_path / "gate"
    gate.mkdir()
    problem = {"name": "gated_problems:GatedDigits",
               "options": dict(SPEC["problem"]["options"], gate=str(gate), at=1, free=1)}
    spec = dict(SPEC, experiment="scheduler-resume-test", recommended_static=False, problem=problem,
                training=dict(SPEC["training"], epochs=epochs),
                searches={"grid": {"type": "static_grid", "levels": [[1], [0.05, 20], [0.05, 1]],
                                   "scheduler": {"type": "asha"}}})
    spec_file.write_text(yaml.safe_dump(spec))
    storage = tmp_path / "runs"

    handled, done = threading.Event(), threading.Event()
    handle = StopSignals._handle

    def handle_and_tell(self, signum, frame):  # the sweep's own SIGINT handler, then the event
        try:
            handle(self, signum, frame)
        finally:
            handled.set()

    monkeypatch.setattr(StopSignals, "_handle", handle_and_tell)

    def interrupt_once_a_trial_has_ended() -> None:  # (a rung is recorded then)
        client = MlflowClient(uri)
        while not done.wait(0.5):
            experiment = client.get_experiment_by_name(spec["experiment"])
            if experiment is None or not client.search_runs(
                    [experiment.experiment_id],
                    filter_string=f"tags.`{ROLE}` = 'trial' and attributes.status = 'FINISHED'"):
                continue
            os.kill(os.getpid(), signal.SIGINT)
            # once the sweep has taken the signal (Tune starts no trial after that), the waiting
            # trials go on to their first report, where Tune stops them
            handled.wait(120)
            open_gate(gate)
            return

    interrupter = threading.Thread(target=interrupt_once_a_trial_has_ended, daemon=True)
    interrupter.start()
    try:
        code = main(["sweep", str(spec_file), "--storage", str(storage), "--tracking-uri", uri,
                     "--checkpoint-seconds", "0"])
    finally:
        done.set()
        interrupter.join(timeout=120)
    out, err = capsys.readouterr()
    assert code == 130 and handled.is_set(), out[-3000:] + err[-3000:]
    assert "SIGINT received: stopping the sweep cleanly" in out and "sweep interrupted with " in err
    (directory,) = list(storage.iterdir())
    assert SweepState.load(directory).searches["grid"]["status"] == "running"  # the interrupt came mid-way
    # the scheduler's rungs went out with the experiment checkpoint
    (saved,) = (directory / "trials").glob("callback-states-*.pkl")
    states = [s for s in pickle.loads(saved.read_bytes()).values() if s]
    (scheduler_state,) = [s["scheduler"] for s in states if "scheduler" in s]
    recorded = scheduler_state["ashas"]["grid"]["_brackets"][0]._rungs[-1][1]  # rung 1: trial id -> -score
    assert recorded, "no rung recorded before the interrupt"
    # tuner.pkl holds the scheduler and its callback as one object, which resume restores
    tuner_state = pickle.loads((directory / "trials" / "tuner.pkl").read_bytes())
    (callback,) = [c for c in tuner_state["_run_config"].callbacks if isinstance(c, SchedulerState)]
    assert callback.scheduler is tuner_state["_tune_config"].scheduler

    given_back = []  # rung 1 as Tune hands it back (the restored ASHA records on into it)
    set_state = SchedulerState.set_state

    def spy(self, state):
        given_back.append(dict(state["scheduler"]["ashas"]["grid"]["_brackets"][0]._rungs[-1][1]))
        set_state(self, state)

    monkeypatch.setattr(SchedulerState, "set_state", spy)
    client = MlflowClient(uri)
    state = resume_sweep(directory)
    assert given_back == [recorded]  # once, before the trials were re-added
    assert state.searches["grid"]["status"] == "done"
    trials = [run for run in client.search_runs([state.experiment_id], max_results=1000)
              if run.data.tags.get(ROLE) == "trial"]
    assert len(trials) == 4 and len({run.data.tags[TRIAL_ID] for run in trials}) == 4
    for run in trials:
        steps = score_steps(client, run)
        assert run.info.status == "FINISHED" and steps == list(range(1, len(steps) + 1))
        assert (run.data.tags.get(STOPPED_EARLY) == "true") == (len(steps) < epochs)
