"""``static_pareto``: static weights drawn by Optuna's NSGA-II with one objective per task. The
spec's options and checks, the sampler it builds (seeded, picklable with the sweep's searcher),
the objectives the sweep's searcher tells it (each task's normalized validation error at the
trial's best epoch, the mean over seeds with repeats), and its front in the Pareto view."""

from __future__ import annotations

import pickle

import pytest

from sweeps.report import SearchSummary, pareto_figure
from sweeps.searcher import SweepSearcher
from sweeps.searches import SEARCH_TYPES, StaticParetoSearch, make_search
from sweeps.spec import SpecError, parse_spec
from test_fronts import trial

TASKS = ["a", "b"]


def search(data) -> StaticParetoSearch:
    return make_search("sp", data, task_names=TASKS, problem_name="toy", source="s")


def test_options_and_registry():
    sp = search({"type": "static_pareto", "num_trials": 12})
    assert SEARCH_TYPES["static_pareto"] is StaticParetoSearch and sp.method == "static" and sp.maps_front
    assert sp.generation_size() == 4 and search({"type": "static_pareto", "num_trials": 600}).generation_size() == 50
    assert search({"type": "static_pareto", "num_trials": 3, "population_size": 3}).generation_size() == 3
    assert sp.objectives(TASKS) == ["val/a/normalized_error", "val/b/normalized_error"]
    assert sp.trial_count(2) == 12 and sp.trial_points(2, seed=0) is None


@pytest.mark.parametrize("data, expected", [
    ({"scheduler": {"type": "asha"}},
     r"^s: searches\.sp\.scheduler: Tune's schedulers judge one metric, but static_pareto has one objective per "
     r"task; remove scheduler"),
    ({"population_size": 1}, r"^s: searches\.sp\.population_size: must be an integer >= 2"),
    ({"num_trials": None}, r"^s: searches\.sp\.num_trials: missing required field"),
])
def test_bad_options(data, expected):
    with pytest.raises(SpecError, match=expected):
        search({"type": "static_pareto", "num_trials": 6, **data} if data.get("num_trials", 1) else
               {"type": "static_pareto"})


def sweep_searcher(repeats: int = 1, seed: int = 3) -> SweepSearcher:
    spec = parse_spec({"name": "t", "problem": {"name": "toy", "options": {"sigmas": [1, 2]}},
                       "training": {"epochs": 2, "lr": 0.01, "seed": seed},
                       "searches": {"sp": {"type": "static_pareto", "num_trials": 6, "repeats": repeats}}}, "s")
    return SweepSearcher(spec.searches, spec.trial_base(), spec.task_names, seed, None)


def epoch(score, a, b) -> dict:
    return {"score": score, "val/task0/normalized_error": a, "val/task1/normalized_error": b}


def test_the_sampler_is_nsga2_seeded_and_survives_the_searchers_checkpoint(tmp_path):
    first, second = sweep_searcher(), sweep_searcher()
    (source,) = first.ledger.sources
    assert type(source.searcher._ot_study.sampler).__mro__[1].__name__ == "NSGAIISampler"
    assert source.searcher.metric == ["val/task0/normalized_error", "val/task1/normalized_error"]
    drawn = [first.suggest(f"t{i}")["balancer"]["weights"] for i in range(3)]
    assert drawn == [second.suggest(f"t{i}")["balancer"]["weights"] for i in range(3)]
    assert sweep_searcher(seed=4).suggest("t0")["balancer"]["weights"] != drawn[0]
    first.on_trial_result("t0", epoch(0.5, 0.4, 0.6))
    first.save(str(tmp_path / "searcher.pkl"))  # Tune's experiment checkpoint: the study included
    restored = sweep_searcher()
    restored.restore(str(tmp_path / "searcher.pkl"))
    restored.on_trial_complete("t0", {"best_score": 0.5})
    assert restored.ledger.sources[0].searcher._ot_study.trials[0].values == [0.4, 0.6]
    pickle.loads(pickle.dumps(restored.ledger))


def test_each_objective_is_read_at_the_trials_best_epoch():
    sweep = sweep_searcher()
    sweep.suggest("t0")
    sweep.on_trial_result("t0", epoch(0.5, 0.4, 0.6))
    sweep.on_trial_result("t0", epoch(0.7, 0.1, 0.1))  # lower errors, but a worse score: not kept
    sweep.on_trial_result("t0", epoch(0.5, 0.3, 0.3))  # an equal score later: the first is kept
    sweep.on_trial_complete("t0", {"best_score": 0.5})
    (told,) = sweep.ledger.sources[0].searcher._ot_study.trials
    assert told.values == [0.4, 0.6] and told.state.name == "COMPLETE"


def test_with_repeats_each_objective_is_the_mean_over_the_seeds():
    sweep = sweep_searcher(repeats=2)
    configs = [sweep.suggest(f"t{i}") for i in range(2)]
    assert configs[0]["balancer"] == configs[1]["balancer"]
    sweep.on_trial_result("t0", epoch(0.5, 0.4, 0.6))
    sweep.on_trial_result("t1", epoch(0.3, 0.2, 0.2))
    sweep.on_trial_complete("t0", {"best_score": 0.5})
    sweep.on_trial_complete("t1", {"best_score": 0.3})
    (told,) = sweep.ledger.sources[0].searcher._ot_study.trials
    assert told.values == pytest.approx([0.3, 0.4])


def test_its_front_is_a_layer_of_the_pareto_view():
    grid = SearchSummary(name="grid", kind="static_grid", wall_seconds=1.0,
                         trials=[trial("grid", "g1", (0.3, (0.2, 0.8))), trial("grid", "g2", (0.3, (0.8, 0.2)))])
    pareto = SearchSummary(name="front", kind="static_pareto", wall_seconds=1.0, maps_front=True,
                           trials=[trial("front", "p1", (0.2, (0.1, 0.5))), trial("front", "p2", (0.2, (0.5, 0.1))),
                                   trial("front", "p3", (0.4, (0.6, 0.6)))])
    figure = pareto_figure([grid, pareto])
    (axes,) = [a for a in figure.axes if a.collections]
    layer = [c for c in axes.collections if c.get_gid() == "front front"]
    assert len(layer) == 1 and sorted(map(tuple, layer[0].get_offsets().tolist())) == [(0.1, 0.5), (0.5, 0.1)]
    assert "front front" in [t.get_text() for legend in figure.legends for t in legend.get_texts()]
