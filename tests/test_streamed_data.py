"""A problem whose splits are plain streaming Datasets (items one by one, through a DataLoader)
trains to exactly the same records as the same data held in memory as Splits."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset, IterableDataset

from gradnorm_core import fit, make_balancer
from gradnorm_core.problems import MultiDigits, Split
from gradnorm_core.problems.data import iterate_batches

SIZES = {"num_train": 200, "num_val": 70, "num_test": 50, "seed": 3}


class Streamed(Dataset):
    """Item by item, as a dataset reading from disk would: not a Split, no batch indexing."""

    def __init__(self, split: Split) -> None:
        self.inputs = split.inputs
        self.targets = split.targets
        self.reads = 0

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int):
        self.reads += 1
        return self.inputs[index].clone(), tuple(t[index].clone() for t in self.targets)


class StreamedDigits(MultiDigits):
    def load_data(self):
        return tuple(Streamed(split) for split in super().load_data())


def run(problem, method, options, epochs=3, state=None, **config):
    model = problem.build_model(seed=7)
    balancer = make_balancer(method, problem.num_tasks, model=model, **options)
    training = fit(problem, balancer, model=model, state=state, epochs=epochs, batch_size=32, lr=3e-3,
                   seed=11, **{"device": "cpu", **config})
    return training


def records(training, count=None):
    out = []
    for record in training:
        row = record.as_dict()
        row.pop("elapsed_seconds"), row.pop("cpu_seconds")
        out.append(row)
        if count is not None and len(out) == count:
            break
    return out


@pytest.mark.parametrize(("method", "options"), [("equal", {}), ("gradnorm", {"alpha": 1.5})])
def test_streamed_dataset_gives_identical_records(method, options):
    in_memory = MultiDigits(**SIZES)
    streamed = StreamedDigits(**SIZES)
    expected = records(run(in_memory, method, options))
    got = records(run(streamed, method, options))
    assert not isinstance(streamed.train, Split) and isinstance(in_memory.train, Split)
    assert streamed.train.reads == 3 * SIZES["num_train"]  # every item, every epoch, one by one
    assert got == expected  # losses, scores, metrics, weights: exactly
    assert expected[0]["weights"] != expected[-1]["weights"] or method == "equal"


def test_streamed_with_worker_processes_gives_identical_records():
    expected = records(run(MultiDigits(**SIZES), "gradnorm", {"alpha": 1.0}, epochs=1))
    got = records(run(StreamedDigits(**SIZES), "gradnorm", {"alpha": 1.0}, epochs=1, num_workers=2))
    assert got == expected


def test_streamed_training_resumes_exactly_and_leaves_the_global_rng_alone():
    problem = StreamedDigits(**SIZES)
    uninterrupted = records(run(problem, "gradnorm", {"alpha": 1.5}))
    first = run(problem, "gradnorm", {"alpha": 1.5})
    rng = torch.get_rng_state()
    head = records(first, count=1)
    assert torch.equal(torch.get_rng_state(), rng)  # the DataLoader drew nothing from it
    state = first.state_dict()
    torch.manual_seed(999)
    tail = records(run(problem, "gradnorm", {"alpha": 1.5}, state=state))
    assert head + tail == uninterrupted


def test_batches_are_the_same_index_sets():
    split = MultiDigits(**SIZES).val
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))
    direct = list(iterate_batches(split, 16, "cpu", order=order))
    loaded = list(iterate_batches(Streamed(split), 16, "cpu", order=order))
    assert len(direct) == len(loaded) == 5
    for (x, targets), (y, others) in zip(direct, loaded):
        assert torch.equal(x, y) and isinstance(others, tuple)
        assert all(torch.equal(a, b) and a.dtype == b.dtype for a, b in zip(targets, others))


class Endless(IterableDataset):
    def __iter__(self):
        yield torch.zeros(144), (torch.tensor(0), torch.tensor(0), torch.tensor(0.0))


class IterableDigits(MultiDigits):
    def load_data(self):
        train, val, test = super().load_data()
        return Endless(), val, test


def test_an_iterable_dataset_is_refused_in_one_line():
    with pytest.raises(TypeError, match=r"^train split must be a map-style torch.utils.data.Dataset"):
        IterableDigits(**SIZES).train


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_streamed_on_cuda_pins_and_matches_the_in_memory_split():
    expected = records(run(MultiDigits(**SIZES), "gradnorm", {"alpha": 1.5}, epochs=2, device="cuda"))
    got = records(run(StreamedDigits(**SIZES), "gradnorm", {"alpha": 1.5}, epochs=2, device="cuda"))
    assert [r["epoch"] for r in got] == [1, 2]
    for a, b in zip(got, expected):
        assert a["weights"] == pytest.approx(b["weights"], rel=1e-5)
        assert a["val"] == pytest.approx(b["val"], rel=1e-5)
