"""What the report tests share: hand-built trials and searches (imported by test_selection,
test_table and test_figures). Each builder returns fresh objects."""

from __future__ import annotations

from sweeps.report import SearchSummary, TrialSummary

TASKS = ["left", "right"]
TASK_METRICS = ["left/accuracy", "right/accuracy"]


def epoch(i: int, score: float, test: float, weights=(1.0, 1.0), mean=(1.0, 1.0), acc=(0.5, 0.5)):
    record = {"epoch": i, "score": score, "test/score": test, "compute_seconds": 10.0 * (i + 1)}
    for task, w, m, a in zip(TASKS, weights, mean, acc):
        record[f"weight/{task}"] = w
        record[f"mean_weight/{task}"] = m
        record[f"test/{task}/accuracy"] = a
    return record


def trial(search, trial_id, config, *, status="FINISHED", compute=10.0, end=0.0, history=(), outcome=""):
    return TrialSummary(search=search, trial_id=trial_id, config=config, status=status,
                        compute_seconds=compute, device="cpu", end_time=end, history=list(history),
                        error=None if status == "FINISHED" else "boom", outcome=outcome)


def gradnorm_search() -> SearchSummary:
    """Alpha search. t_good has the best validation score (epoch 1) but not the best test score;
    t_test_bait has a better test score with a worse validation score; t_failed reached the best
    validation score of all before failing, and must be ignored for scores."""
    trials = [
        trial("gradnorm", "t_test_bait", {"method": "gradnorm", "alpha": 1.5, "label": "alpha=1.5"}, compute=30.0, end=300.0,
              history=[epoch(0, 0.60, 0.05, acc=(0.99, 0.98)), epoch(1, 0.50, 0.04, acc=(0.99, 0.99))]),
        trial("gradnorm", "t_good", {"method": "gradnorm", "alpha": 0.12, "label": "alpha=0.12"}, compute=20.0, end=200.0,
              history=[epoch(0, 0.45, 0.40, weights=(1.2, 0.8), mean=(1.1, 0.9)),
                       epoch(1, 0.30, 0.35, weights=(1.4, 0.6), mean=(1.3, 0.7), acc=(0.91, 0.87)),
                       epoch(2, 0.32, 0.20, weights=(1.5, 0.5), mean=(1.45, 0.55), acc=(0.95, 0.96))]),
        trial("gradnorm", "t_failed", {"method": "gradnorm", "alpha": 3.0, "label": "alpha=3.0"}, status="FAILED",
              compute=5.0, end=100.0, history=[epoch(0, 0.01, 0.01)]),
        trial("gradnorm", "t_late", {"method": "gradnorm", "alpha": 0.5, "label": "alpha=0.5"}, compute=40.0, end=400.0,
              history=[epoch(0, 0.70, 0.70), epoch(1, 0.31, 0.31)]),
    ]
    return SearchSummary(name="gradnorm", kind="gradnorm", wall_seconds=55.5, trials=trials, recommends_static=True)


def grid_search() -> SearchSummary:
    trials = [
        trial("grid", f"g{i}", {"method": "static", "weights": [1.0, w], "label": f"weights=[1, {w:g}]"},
              compute=1.0 + i, end=float(i), history=[epoch(0, 0.9 - 0.1 * i, 0.8)])
        for i, w in enumerate([0.5, 1.0, 2.0])
    ]
    return SearchSummary(name="grid", kind="static_grid", wall_seconds=12.4, trials=trials,
                         grid_size=27, sampled=True)


def all_failed_search() -> SearchSummary:
    trials = [trial("equal", "e0", {"method": "equal"}, status="FAILED", compute=7.0, end=1.0),
              trial("equal", "e1", {"method": "equal"}, status="ERROR", compute=3.0, end=2.0)]
    return SearchSummary(name="equal", kind="equal", wall_seconds=9.0, trials=trials)


def independent_best(search):
    """Recompute the selection by hand: lowest validation score over finished trials' epochs."""
    best = None
    for t in search.trials:
        if t.status != "FINISHED":
            continue
        for record in t.history:
            if best is None or record["score"] < best[1]["score"]:
                best = (t, record)
    return best
