"""The progress line a sweep prints while it runs (every ``PROGRESS_SECONDS``): trials running,
pending and ended, the best validation score so far per search, the elapsed time; beside the
line per ended trial."""

from __future__ import annotations

import re
from types import SimpleNamespace

from small_sweep import EXPECTED_TRIALS

from sweeps import progress
from sweeps.progress import Progress

LINE = re.compile(r"^  progress (\d+ s|\d+m\d\ds|\d+h\d\dm): (\d+) running, (\d+) pending, (\d+)/(\d+) ended"
                  r"(?: \((?:\d+ (?:stopped early|failed|diverged)(?:, )?)+\))?; best val score: (.+)$")


def trial(search: str, status: str, best: float | None = None, epoch: int = 0, done: bool = False):
    result = {} if best is None else {"best_score": best, "epoch": epoch, "done": done}
    return SimpleNamespace(config={"search": search, "training": {"epochs": 4}}, status=status, last_result=result)


def test_the_line_counts_trials_and_gives_each_searchs_best_score():
    line = Progress({"grid": 4, "equal": 1, "gn": 2}, period=30).status_line([
        trial("grid", "TERMINATED", 0.5, epoch=4, done=True),
        trial("grid", "TERMINATED", 0.9, epoch=1, done=True),  # stopped early by ASHA
        trial("grid", "RUNNING", 0.4, epoch=2),
        trial("grid", "PENDING"),
        trial("equal", "ERROR"),
        trial("gn", "RUNNING"),
    ], elapsed=95)
    assert line == ("  progress 1m35s: 2 running, 2 pending, 3/7 ended (1 stopped early, 1 failed); "
                    "best val score: grid 0.4000")
    assert LINE.match(line)
    empty = Progress({"equal": 1}, period=30).status_line([], elapsed=3)
    assert empty == "  progress 3 s: 0 running, 1 pending, 0/1 ended; best val score: none yet"


def test_a_line_only_once_the_period_has_passed(monkeypatch, capsys):
    clock = iter([100.0, 110.0, 131.0, 140.0, 161.5])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    callback = Progress({"equal": 1}, period=30)
    for step in range(5):
        callback.step([])
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["  progress 31 s: 0 running, 1 pending, 0/1 ended; best val score: none yet",
                     "  progress 1m01s: 0 running, 1 pending, 0/1 ended; best val score: none yet"]


def test_the_period_defaults_to_the_module_constant(monkeypatch):
    assert Progress({}).period == progress.PROGRESS_SECONDS == 30
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 2.5)
    assert Progress({}).period == 2.5 and Progress({}, period=1).period == 1


def test_a_sweep_prints_the_line_while_it_runs(small_sweep):
    """tests/small_sweep.py's sweep, run with a line after every step of Tune's loop: no timing is
    involved in what the test sees."""
    out = small_sweep.out.splitlines()
    total = sum(EXPECTED_TRIALS.values())
    lines = [LINE.match(line) for line in out if line.startswith("  progress ")]
    assert len(lines) >= 2 and all(lines), out
    for match in lines:
        running, pending, ended, count = (int(match.group(i)) for i in (2, 3, 4, 5))
        assert count == total and running + pending + ended == total and running <= 2
    # the counts move on as trials end, and the best scores appear once trials report
    assert int(lines[0].group(4)) <= int(lines[-1].group(4))
    assert any(match.group(6) != "none yet" for match in lines)
    assert int(lines[-1].group(4)) >= 1  # a line after a trial had ended
    # the line per ended trial is still there
    assert sum(line.startswith("  [grid] trial ") for line in out) == EXPECTED_TRIALS["grid"]
    assert sum(line.startswith("  [equal] trial 1/1") for line in out) == 1
