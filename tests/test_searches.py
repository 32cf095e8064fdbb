"""Search types: each one's trials, labels, balancer options and MLflow params; the registry;
and that no module switches on a search type's name."""

from __future__ import annotations

import ast
import importlib
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from sweeps.searches import (
    SEARCH_TYPES,
    DwaSearch,
    EqualSearch,
    GradNormSearch,
    ImtlLSearch,
    ImtlSearch,
    ScaleInvariantSearch,
    SearchType,
    StaticGridSearch,
    StaticSearch,
    UncertaintySearch,
    make_search,
    static_grid_points,
)
from sweeps.spec import SpecError, parse_spec
from trainables import TrialBase

ROOT = Path(__file__).resolve().parent.parent
TASKS = ["a", "b", "c"]
# what every trial of a sweep shares; a search's trial_config adds its balancer and label
BASE = TrialBase.from_dict({"problem": {"name": "toy", "options": {"sigmas": [1, 2, 3]}}, "training": {"lr": 0.01}})


def label(search: SearchType, point: dict) -> str:
    return search.trial_config(BASE, point).label


def search(name: str, data) -> SearchType:
    return make_search(name, data, task_names=TASKS, problem_name="toy")


# -- gradnorm --------------------------------------------------------------------------------


def optuna_search(**options) -> GradNormSearch:
    return search("gn", {"type": "gradnorm", "alpha": {"low": 0.5, "high": 2.0}, "num_trials": 6, **options})


def test_gradnorm_optuna_options_and_trials():
    gn = optuna_search()
    assert isinstance(gn, GradNormSearch) and gn.method == "gradnorm" and gn.recommends_static
    assert gn.options == {"search": "optuna", "alpha": {"low": 0.5, "high": 2.0}, "num_trials": 6}
    assert gn.trial_count(3) == 6
    assert gn.trial_points(3, seed=0) is None  # Optuna picks them as results come in
    assert gn.parent_params(3, seed=0) == gn.options
    assert gn.balancer_options() == {}
    assert optuna_search(weight_lr=0.01, optimizer="sgd").balancer_options() == {"lr": 0.01, "optimizer": "sgd"}


def test_gradnorm_grid_options_and_trials():
    gn = search("alphas", {"type": "gradnorm", "alpha": [0, 0.5, 1.5]})
    assert gn.options == {"search": "grid", "alpha": [0.0, 0.5, 1.5], "num_trials": 3}
    assert gn.trial_count(3) == 3
    assert gn.trial_points(3, seed=0) == [{"alpha": 0.0}, {"alpha": 0.5}, {"alpha": 1.5}]
    assert gn.searcher(seed=0, metric="best_score", mode="min") is None


def test_gradnorm_label():
    gn = optuna_search()
    assert label(gn, {"alpha": 0.5}) == "alpha=0.5"
    assert label(gn, {"alpha": 1.234567}) == "alpha=1.235"
    # a drawn weight_lr is GradNorm's own lr, beside alpha; the network's lr stays the sweep's
    trial = optuna_search(weight_lr={"low": 0.01, "high": 0.1}).trial_config(BASE, {"alpha": 1.0, "weight_lr": 0.05})
    assert trial.balancer.options == {"alpha": 1.0, "lr": 0.05} and trial.training.lr == 0.01
    assert trial.label == "alpha=1, weight_lr=0.05"


def test_gradnorm_optuna_searcher_suggests_alphas_in_the_range():
    from ray.tune.search.optuna import OptunaSearch

    def suggestions(seed: int) -> list[float]:
        searcher = optuna_search().searcher(seed=seed, metric="best_score", mode="min")
        assert isinstance(searcher, OptunaSearch)
        alphas = []
        for i in range(12):  # past TPE's random start-up trials
            alpha = searcher.suggest(f"t{i}")["alpha"]
            searcher.on_trial_complete(f"t{i}", {"best_score": (alpha - 1.2) ** 2})
            alphas.append(alpha)
        return alphas

    alphas = suggestions(seed=3)
    assert all(0.5 <= alpha <= 2.0 for alpha in alphas), alphas
    assert len(set(alphas)) == len(alphas)
    assert suggestions(seed=3) == alphas  # seeded
    assert suggestions(seed=4) != alphas


# -- static_grid -----------------------------------------------------------------------------


def test_static_grid_trials_are_the_grid_points():
    grid = search("grid", {"type": "static_grid", "levels": [[1, 2], [0.5, 1, 2], [3]]})
    assert grid.method == "static" and not grid.recommends_static
    assert grid.options == {"levels": [[1.0, 2.0], [0.5, 1.0, 2.0], [3.0]], "max_trials": None}
    assert grid.trial_count(3) == 6
    points = [list(p) for p in itertools.product([1, 2], [0.5, 1, 2], [3])]
    assert grid.trial_points(3, seed=0) == [{"weights": p} for p in points]
    assert grid.searcher(seed=0, metric="best_score", mode="min") is None
    assert grid.balancer_options() == {}


def test_static_grid_sampled_trials_and_parent_params():
    grid = search("grid", {"type": "static_grid", "levels": [0.5, 1, 2, 4], "max_trials": 5})
    assert grid.trial_count(3) == 5
    points, size, sampled = static_grid_points(grid, 3, seed=7)
    assert (len(points), size, sampled) == (5, 64, True)
    assert grid.trial_points(3, seed=7) == [{"weights": p} for p in points]
    assert grid.trial_points(3, seed=8) != grid.trial_points(3, seed=7)
    assert grid.parent_params(3, seed=7) == {
        "levels": [0.5, 1.0, 2.0, 4.0], "max_trials": 5, "grid_size": 64, "grid_sampled": True,
        "grid_levels": [4, 4, 4],  # levels per task: the full grid's points by number of tasks
    }
    full = search("full", {"type": "static_grid", "levels": [1, 2]})
    assert full.parent_params(3, seed=0) | {"grid_size": 8, "grid_sampled": False} == full.parent_params(3, seed=0)


def test_static_grid_label_and_task_count_check():
    grid = StaticGridSearch(name="g", levels=[[1], [1, 2]])
    assert label(grid, {"weights": [1, 0.5, 2.0]}) == "weights=[1, 0.5, 2]"
    assert label(grid, {"weights": [1 / 3]}) == "weights=[0.3333]"
    with pytest.raises(SpecError, match=r"^x: searches\.g\.levels: expected 3 lists .* got 2;"):
        make_search("g", {"type": "static_grid", "levels": [[1], [1, 2]]}, task_names=TASKS, source="x")
    assert make_search("g", {"type": "static_grid", "levels": [[1], [1, 2]]}).grid_size(2) == 2


# -- the one-trial baselines -------------------------------------------------------------------


def test_equal():
    equal = search("equal", "equal")  # shorthand for {type: equal}
    assert isinstance(equal, EqualSearch) and equal.method == "equal"
    assert equal.options == {} and equal.balancer_options() == {}
    assert equal.trial_count(3) == 1 and equal.trial_points(3, seed=0) == [{}]
    assert label(equal, {}) == "-" and equal.parent_params(3, seed=0) == {}
    assert equal.searcher(seed=0, metric="best_score", mode="min") is None


def test_uncertainty():
    unc = search("unc", {"type": "uncertainty", "weight_lr": 0.025, "optimizer": "adam"})
    assert isinstance(unc, UncertaintySearch) and unc.method == "uncertainty"
    assert unc.balancer_options() == {"lr": 0.025, "optimizer": "adam"}
    assert search("unc", {"type": "uncertainty"}).balancer_options() == {}
    assert unc.trial_count(3) == 1 and unc.trial_points(3, seed=0) == [{}]
    assert label(unc, {}) == "-"
    assert unc.trial_config(BASE, {}).balancer.options == {"lr": 0.025, "optimizer": "adam"}
    assert unc.parent_params(3, seed=0) == {"weight_lr": 0.025, "optimizer": "adam"}


def test_dwa():
    dwa = search("dwa", {"type": "dwa", "temperature": 2})
    assert isinstance(dwa, DwaSearch) and dwa.method == "dwa"
    assert dwa.balancer_options() == {"temperature": 2.0}
    assert search("dwa", {"type": "dwa"}).balancer_options() == {}
    assert dwa.trial_count(3) == 1 and dwa.trial_points(3, seed=0) == [{}]
    assert label(dwa, {}) == "-" and dwa.parent_params(3, seed=0) == {"temperature": 2.0}


def test_scale_invariant_and_imtl_l():
    si = search("si", "scale_invariant")  # shorthand, no options
    assert isinstance(si, ScaleInvariantSearch) and si.method == "scale_invariant"
    assert si.options == {} and si.balancer_options() == {} and si.trial_count(3) == 1
    imtl = search("imtl", {"type": "imtl_l", "weight_lr": 0.05, "optimizer": "sgd"})
    assert isinstance(imtl, ImtlLSearch) and imtl.method == "imtl_l"
    assert imtl.balancer_options() == {"lr": 0.05, "optimizer": "sgd"}
    assert search("imtl", {"type": "imtl_l"}).balancer_options() == {}
    assert imtl.trial_points(3, seed=0) == [{}] and label(imtl, {}) == "-"
    assert imtl.parent_params(3, seed=0) == {"weight_lr": 0.05, "optimizer": "sgd"}
    with pytest.raises(SpecError, match=r"searches\.imtl\.weight_lr: must be > 0"):
        search("imtl", {"type": "imtl_l", "weight_lr": 0})
    with pytest.raises(SpecError, match=r"searches\.si\.weight_lr: unknown option 'weight_lr'"):
        search("si", {"type": "scale_invariant", "weight_lr": 0.1})


def test_hybrid_imtl():
    imtl = search("imtl", {"type": "imtl", "weight_lr": 0.05, "optimizer": "sgd"})
    assert isinstance(imtl, ImtlSearch) and imtl.method == "imtl" and SEARCH_TYPES["imtl"] is ImtlSearch
    assert imtl.balancer_options() == {"lr": 0.05, "optimizer": "sgd"}
    assert imtl.trial_config(BASE, {}).balancer.options == {"lr": 0.05, "optimizer": "sgd"}
    assert imtl.trial_points(3, seed=0) == [{}] and label(imtl, {}) == "-" and imtl.trial_count(3) == 1


GRADIENT_METHODS = ["mgda", "pcgrad", "cagrad", "nash_mtl", "imtl_g", "aligned_mtl", "upgrad", "dualproj"]


@pytest.mark.parametrize("kind", [*GRADIENT_METHODS, "rlw"])
def test_each_gradient_method_and_rlw_is_a_search_with_every_searchs_options(kind):
    plain = search("s", {"type": kind})
    assert plain.method == kind and plain.trial_count(3) == 1 and plain.trial_points(3, seed=0) == [{}]
    assert plain.trial_config(BASE, {}).balancer.options == {} and label(plain, {}) == "-"
    every = search("s", {"type": kind, "repeats": 2, "lr": {"low": 1e-4, "high": 1e-2}, "num_trials": 3,
                         "scheduler": {"type": "asha"}})
    assert every.trial_count(3) == 6 and every.trial_points(3, seed=0) is None
    config = every.trial_config(BASE, {"lr": 0.003}, repeat=1)
    assert config.training.lr == 0.003 and config.training.seed == 1 and config.label == "lr=0.003"
    grid = search("s", {"type": kind, "lr": [0.001, 0.003]})
    assert grid.trial_points(3, seed=0) == [{"lr": 0.001}, {"lr": 0.003}]


@pytest.mark.parametrize("kind", GRADIENT_METHODS)
def test_a_gradient_methods_jacobian_reaches_its_balancer(kind):
    rep = search("s", {"type": kind, "jacobian": "representation"})
    assert rep.balancer_options() == {"jacobian": "representation"} and rep.parent_params(3, 0) == rep.options
    assert rep.trial_config(BASE, {}).balancer.options == {"jacobian": "representation"}
    with pytest.raises(SpecError, match=r"searches\.s\.jacobian: unknown jacobian 'output'; choose one of: parameters, representation"):
        search("s", {"type": kind, "jacobian": "output"})


@pytest.mark.parametrize("kind", ["pcgrad", "rlw"])
def test_a_trials_random_stream_is_seeded_by_its_training_seed(kind):
    repeated = search("r", {"type": kind, "repeats": 2})
    built = [repeated.trial_config(BASE, {}, repeat=k).build(data=False)[2] for k in range(2)]
    assert [balancer.seed for balancer in built] == [0, 1]  # the trainable fills in training.seed
    assert not (built[0].state_dict()["random_state"] == built[1].state_dict()["random_state"]).all()


def test_cagrad_and_nash_mtl_options_reach_their_balancers():
    cagrad = search("c", {"type": "cagrad", "c": 0.2})
    assert cagrad.trial_config(BASE, {}).balancer.options == {"c": 0.2}
    nash = search("n", {"type": "nash_mtl", "update_weights_every": 4, "max_norm": 0, "jacobian": "representation"})
    assert nash.trial_config(BASE, {}).balancer.options == {"jacobian": "representation", "update_weights_every": 4,
                                                           "max_norm": 0.0}
    with pytest.raises(SpecError, match=r"searches\.c\.c: must be >= 0.*give CAGrad's c"):
        search("c", {"type": "cagrad", "c": -1})
    with pytest.raises(SpecError, match=r"searches\.n\.update_weights_every: .*whole number >= 1"):
        search("n", {"type": "nash_mtl", "update_weights_every": 0})
    with pytest.raises(SpecError, match=r"searches\.r\.c: unknown option 'c' for search type 'rlw'"):
        search("r", {"type": "rlw", "c": 0.4})


def test_static():
    static = StaticSearch(name="recommended_static", type="static", weights=[1.0, 0.5, 2.0])
    assert static.method == "static" and static.options == {"weights": [1.0, 0.5, 2.0]}
    assert static.balancer_options() == {"weights": [1.0, 0.5, 2.0]}
    assert static.trial_count(3) == 1
    assert static.trial_points(3, seed=0) == [{"weights": [1.0, 0.5, 2.0]}]
    assert label(static, {"weights": [1.0, 0.5, 2.0]}) == "weights=[1, 0.5, 2]"
    assert static.parent_params(3, seed=0) == {"weights": [1.0, 0.5, 2.0]}
    with pytest.raises(SpecError, match=r"searches\.s\.weights: expected 3 weights"):
        search("s", {"type": "static", "weights": [1, 2]})


# -- the registry and the validation every type shares -----------------------------------------


def test_registry_lists_every_type_from_its_own_module():
    assert set(SEARCH_TYPES) == {
        "gradnorm", "static_grid", "static_optuna", "equal", "uncertainty", "dwa", "static", "scale_invariant",
        "imtl_l", "imtl", "famo", "single_task", "mgda", "pcgrad", "cagrad", "nash_mtl", "imtl_g", "aligned_mtl",
        "upgrad", "dualproj", "rlw", "static_pareto", "pbt",
    }
    methods = {kind: cls.method for kind, cls in SEARCH_TYPES.items()}
    assert methods == {
        "gradnorm": "gradnorm", "static_grid": "static", "equal": "equal",
        "uncertainty": "uncertainty", "dwa": "dwa", "static": "static",
        "scale_invariant": "scale_invariant", "imtl_l": "imtl_l", "imtl": "imtl",
        "famo": "famo", "static_optuna": "static", "single_task": "static", "mgda": "mgda", "pcgrad": "pcgrad",
        "cagrad": "cagrad", "nash_mtl": "nash_mtl", "imtl_g": "imtl_g", "aligned_mtl": "aligned_mtl",
        "upgrad": "upgrad", "dualproj": "dualproj", "rlw": "rlw", "static_pareto": "static", "pbt": "static",
    }
    for kind, cls in SEARCH_TYPES.items():
        assert issubclass(cls, SearchType) and cls.type_name() == kind
        assert cls.__module__ == f"sweeps.searches.{kind}", cls


def test_only_a_types_own_module_names_it():
    """No comparison or mapping keyed on a type's name anywhere in the spec or the searches, and
    each ``Literal["<type>"]`` in its own module only."""
    kinds = set(SEARCH_TYPES)
    for path in sorted([*(ROOT / "sweeps" / "spec").glob("*.py"), *(ROOT / "sweeps" / "searches").glob("*.py")]):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                named = {c.value for c in (node.left, *node.comparators) if isinstance(c, ast.Constant)}
                assert not named & kinds, f"{path.name}:{node.lineno} compares with a search type"
            elif isinstance(node, ast.Dict):
                named = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                assert not named & kinds, f"{path.name}:{node.lineno} maps search types"
            elif isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "Literal":
                named = {c.value for c in ast.walk(node.slice) if isinstance(c, ast.Constant)}
                assert not (named & kinds) - {path.stem}, f"{path.name}:{node.lineno} names another type"


def test_search_modules_import_no_ray_mlflow_or_optuna_at_top_level():
    for path in sorted((ROOT / "sweeps" / "searches").glob("*.py")):
        imported = set()
        for node in ast.parse(path.read_text()).body:  # top level only: searcher() imports lazily
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
        assert not imported & {"ray", "mlflow", "optuna"}, (path.name, imported)


@pytest.mark.parametrize("first", ["sweeps.searches", "sweeps.spec"])
def test_either_package_imports_first_without_ray(first):
    code = (
        f"import sys, {first}\n"
        "from sweeps.spec import load_spec\n"
        "spec = load_spec('sweeps/specs/demo.yaml')\n"
        "assert spec.num_tasks == 3\n"
        "assert not {'ray', 'mlflow', 'optuna'} & set(sys.modules), sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_every_type_rejects_unknown_options_and_a_name_inside():
    for kind, cls in SEARCH_TYPES.items():
        with pytest.raises(SpecError, match=rf"searches\.s\.bogus: unknown option 'bogus' for search type '{kind}'"):
            make_search("s", {"type": kind, "bogus": 1})
        with pytest.raises(SpecError, match=r"searches\.s\.name: unknown option 'name'"):
            make_search("s", {"type": kind, "name": "other"})
        assert "name" not in cls.user_keys() and "type" not in cls.user_keys()


def test_strict_numbers():
    with pytest.raises(SpecError, match=r"searches\.d\.temperature: expected a number, got boolean True"):
        make_search("d", {"type": "dwa", "temperature": True})
    with pytest.raises(SpecError, match=r"searches\.d\.temperature: expected a number, got string '2'"):
        make_search("d", {"type": "dwa", "temperature": "2"})
    with pytest.raises(SpecError, match=r"searches\.g\.num_trials: expected an integer, got float 2\.5"):
        make_search("g", {"type": "gradnorm", "alpha": {"low": 0, "high": 1}, "num_trials": 2.5})
    assert make_search("d", {"type": "dwa", "temperature": 2}).temperature == 2.0


def test_one_recommended_static_trial_from_the_first_gradnorm_search():
    spec = parse_spec({
        "name": "t",
        "problem": "toy_t2",
        "searches": {
            "equal": "equal",
            "first": {"type": "gradnorm", "alpha": [0, 1]},
            "second": {"type": "gradnorm", "alpha": {"low": 0, "high": 1}, "num_trials": 3},
        },
    }, "s")
    assert spec.recommended_static and spec.recommending_search.name == "first"
    assert spec.trial_count() == 1 + 2 + 3 + 1


def test_with_resources_revalidates_and_keeps_raw():
    spec = parse_spec({"name": "t", "problem": "toy_t2", "searches": {"equal": "equal"}}, "s")
    changed = spec.with_resources(cpu=2, max_concurrent=3)
    assert (changed.resources.cpu, changed.resources.max_concurrent) == (2.0, 3)
    assert changed.raw["resources"] == {"cpu": 2, "max_concurrent": 3} and "resources" not in spec.raw
    assert parse_spec(changed.raw, changed.source) == changed
    with pytest.raises(SpecError, match=r"^s: resources\.gpu: 1\.5 GPUs per trial"):
        spec.with_resources(gpu=1.5)


def test_module_of_each_type_is_importable_alone():
    for kind in SEARCH_TYPES:
        module = importlib.import_module(f"sweeps.searches.{kind}")
        assert SEARCH_TYPES[kind] in vars(module).values()


def test_every_name_the_packages_export_exists():
    import sweeps
    import trainables

    for package in (sweeps, trainables):
        missing = [name for name in package.__all__ if not hasattr(package, name)]
        assert not missing, (package.__name__, missing)
    assert "start_ray" not in sweeps.__all__  # it lives in sweeps.session
