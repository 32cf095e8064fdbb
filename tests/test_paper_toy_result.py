"""The comparison of the paper's toy problem (Chen et al. 2018, Section 4, T=10) as
bench/paper_toy.py runs it: GradNorm (alpha=0.12), equal weights and uncertainty weighting,
trained from the same initial model on the same batches.

Who wins is a score, measured by the benchmark (``python bench/paper_toy.py``: 2000 points, 30
epochs, several seeds), not here: this checks, at a small size, that the comparison runs and that
each method trains and balances as it should.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench" / "paper_toy.py"


@pytest.fixture(scope="module")
def paper_toy():
    spec = importlib.util.spec_from_file_location("paper_toy", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclass looks its module up there)
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_each_method_trains_the_t10_toy_and_gradnorm_moves_its_weights(paper_toy):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = paper_toy.final_test_scores(seed=0, num_train=1000, num_val=64, num_test=256, epochs=5, lr=3e-3)
    finally:
        torch.set_num_threads(threads)
    assert set(runs) == {"gradnorm", "equal", "uncertainty"}
    # the same initial model for the three: the same untrained score, about 1 (scale-free)
    untrained = {run.untrained for run in runs.values()}
    assert len(untrained) == 1 and 0.9 < untrained.pop() < 1.1, runs
    for method, run in runs.items():
        assert math.isfinite(run.score) and run.score < run.untrained, (method, runs)  # training did something
        assert len(run.weights) == 10
    assert runs["equal"].weights == [1.0] * 10
    # GradNorm's weights moved apart, renormalised to sum to T; uncertainty's moved too
    assert sum(runs["gradnorm"].weights) == pytest.approx(10, rel=1e-5)
    assert max(runs["gradnorm"].weights) - min(runs["gradnorm"].weights) > 1e-3
    assert runs["uncertainty"].weights != [1.0] * 10
