"""All searches of a sweep share the trial slots of one Tune experiment: tests/small_sweep.py's
five searches at 2 slots, read back from MLflow's run start and end times."""

from __future__ import annotations

from collections import Counter

from mlflow.tracking import MlflowClient
from small_sweep import EPOCHS, EXPECTED_TRIALS, SPEC

from trainables import PARENT, ROLE, SEARCH, TRIAL_ID


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one instant (an end before a start at a tie)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda event: (event[0], event[1]))
    open_now = most = 0
    for _, change in events:
        open_now += change
        most = max(most, open_now)
    return most


def test_most_at_once_counts_overlaps():
    assert most_at_once([(0, 1), (1, 2)]) == 1
    assert most_at_once([(0, 2), (1, 3), (2.5, 4)]) == 2
    assert most_at_once([(0, 5), (1, 2), (1.5, 3)]) == 3


def test_searches_share_the_slots_and_every_trial_runs_once(small_sweep):
    state = small_sweep.state
    client = MlflowClient(small_sweep.uri)
    runs = client.search_runs([state.experiment_id], max_results=1000)
    searches = {run.data.tags[SEARCH]: run for run in runs if run.data.tags.get(ROLE) == "search"}
    trials = [run for run in runs if run.data.tags.get(ROLE) == "trial"]

    # one Tune experiment for the whole sweep, not one per search
    assert sorted(p.name for p in state.directory.iterdir() if p.is_dir()) == ["trials"]

    # every trial exactly once, under its own search's run, every epoch logged once
    assert Counter(run.data.tags[SEARCH] for run in trials) == EXPECTED_TRIALS
    assert len({run.data.tags[TRIAL_ID] for run in trials}) == len(trials)
    for run in trials:
        assert run.data.tags[PARENT] == searches[run.data.tags[SEARCH]].info.run_id
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val/score")]
        assert steps == list(range(1, EPOCHS + 1))

    # trials of different searches ran at the same time
    spans = [(run.data.tags[SEARCH], run.info.start_time, run.info.end_time) for run in trials]
    assert all(end is not None and end > start for _, start, end in spans)
    overlapping = {
        tuple(sorted((a, b)))
        for i, (a, a_start, a_end) in enumerate(spans)
        for b, b_start, b_end in spans[i + 1:]
        if a != b and a_start < b_end and b_start < a_end
    }
    assert overlapping, f"no two searches overlapped: {spans}"
    # never more at once than the sweep's slots
    assert most_at_once([(start, end) for _, start, end in spans]) <= SPEC["resources"]["max_concurrent"]

    # each search's run ends when its last trial ends, not when the sweep does: after its own
    # trials, and before every trial of the others that ended after its last one (the driver
    # records the ends in the order the trials end)
    for name, run in searches.items():
        own = max(end for search, _, end in spans if search == name)
        later = [end for search, _, end in spans if search != name and end > own]
        assert run.info.status == "FINISHED"
        assert own <= run.info.end_time <= min(later, default=run.info.end_time), (name, run.info.end_time, spans)
    assert state.searches.keys() == EXPECTED_TRIALS.keys()
    assert all(entry["status"] == "done" for entry in state.searches.values())
