"""QM9: Coulomb-matrix descriptor, robust parsing, the QM9 problem on arrays, and the real data."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch

from gradnorm_core.data import qm9 as qm9_data
from gradnorm_core.data.qm9 import (
    MAX_ATOMS,
    NUM_MOLECULES,
    TARGET_NAMES,
    coulomb_descriptor,
    load_qm9,
    parse_elements,
    parse_floats,
    parse_xyz,
)
from gradnorm_core import make_problem
from gradnorm_core.problems.base import MultiHeadNet
from gradnorm_core.problems.qm9 import QM9

# --- Coulomb matrix -------------------------------------------------------------------------

H2 = ([1, 1], np.array([[0.0, 0.0, 0.0], [0.74, 0.0, 0.0]]))
WATER = ([8, 1, 1], np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]]))
METHANE = (
    [6, 1, 1, 1, 1],
    np.array(
        [
            [-0.0127, 1.0858, 0.0080],
            [0.0022, -0.0060, 0.0020],
            [1.0117, 1.4638, 0.0003],
            [-0.5408, 1.4475, -0.8766],
            [-0.5238, 1.4379, 0.9064],
        ]
    ),
)


def reference_eigenvalues(charges, coords):
    """Coulomb matrix built with explicit loops, eigenvalues by np.linalg.eigvals."""
    n = len(charges)
    matrix = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i == j:
                matrix[i, j] = 0.5 * charges[i] ** 2.4
            else:
                matrix[i, j] = charges[i] * charges[j] / math.dist(coords[i], coords[j])
    values = np.sort(np.linalg.eigvals(matrix).real)[::-1]
    return np.concatenate([values, np.zeros(MAX_ATOMS - n)])


def random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


@pytest.mark.parametrize("molecule", [H2, WATER, METHANE], ids=["H2", "water", "methane"])
def test_coulomb_descriptor_matches_reference_and_is_invariant(molecule):
    charges, coords = molecule
    expected = reference_eigenvalues(charges, coords)
    got = coulomb_descriptor(charges, coords)
    assert got.shape == (MAX_ATOMS,)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    assert np.all(np.diff(got[: len(charges)]) <= 0)  # descending, then zero padding
    assert np.all(got[len(charges) :] == 0)

    rng = np.random.default_rng(0)
    for _ in range(3):
        perm = rng.permutation(len(charges))
        moved = coords[perm] @ random_rotation(rng).T + rng.normal(size=3)
        np.testing.assert_allclose(
            coulomb_descriptor(np.asarray(charges)[perm], moved), expected, rtol=1e-9, atol=1e-9
        )


def test_h2_closed_form():
    # [[0.5, 1/d], [1/d, 0.5]] has eigenvalues 0.5 +- 1/d
    d = 0.74
    got = coulomb_descriptor(*H2)
    np.testing.assert_allclose(got[:2], [0.5 + 1 / d, 0.5 - 1 / d])


def test_batched_descriptors_match_single():
    # Molecules of different sizes, stored flat as in the CSV, grouped by atom count internally.
    molecules = [WATER, H2, METHANE, WATER, H2]
    counts = np.array([len(c) for c, _ in molecules])
    charges = np.concatenate([c for c, _ in molecules])
    coords = np.concatenate([x for _, x in molecules])
    got = qm9_data._descriptors(counts, charges, coords)
    assert got.shape == (5, MAX_ATOMS) and got.dtype == np.float32
    for row, (c, x) in zip(got, molecules):
        np.testing.assert_allclose(row, reference_eigenvalues(c, x), rtol=1e-5, atol=1e-5)


# --- parsing ------------------------------------------------------------------------------


def test_parse_xyz_accepts_numbers_json_rejects():
    text = "[[0.,1.0858041578,-0.],[1.5e-3,-2.,0.0002765748],[3,1.2*^-6,-0.5]]"
    got = parse_xyz(text)
    expected = np.array([[0.0, 1.0858041578, 0.0], [1.5e-3, -2.0, 0.0002765748], [3.0, 1.2e-6, -0.5]])
    np.testing.assert_array_equal(got, expected)


def test_parse_floats_concatenates_in_order():
    got = parse_floats(["[[0.,1.],[2.,3.]]", "[[4,5.5,6.]]"])
    np.testing.assert_array_equal(got, [0, 1, 2, 3, 4, 5.5, 6])


def test_parse_errors_are_one_line():
    with pytest.raises(ValueError, match="malformed"):
        parse_xyz("[[0.,abc,1.]]")
    with pytest.raises(ValueError, match="multiple of 3"):
        parse_xyz("[[0.,1.]]")
    with pytest.raises(ValueError, match="unknown element 'Xe'"):
        parse_elements(["['C','Xe']"])


def test_parse_elements():
    np.testing.assert_array_equal(
        parse_elements(["['C','H','H']", "['O','N','F']"]), [6, 1, 1, 8, 7, 9]
    )


# --- the problem on synthetic arrays ---------------------------------------------------------

NAMES = ["small", "medium", "large"]


def synthetic(n=600, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.1, 50, size=d) + rng.normal(size=d) * 10
    w = rng.normal(size=(d, 3))
    z = np.tanh((x - x.mean(0)) / x.std(0) @ w / np.sqrt(d))
    y = z * np.array([0.01, 1.0, 1000.0]) + np.array([0.0, 5.0, -400.0])
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def arrays():
    return synthetic()


@pytest.fixture(scope="module")
def problem(arrays):
    """On raw targets: the tests below that need the targets' own scales."""
    return QM9.from_arrays(*arrays, NAMES, num_train=300, num_val=150, num_test=100, seed=0, targets="raw")


@pytest.fixture(scope="module")
def standardized(arrays):
    return QM9.from_arrays(*arrays, NAMES, num_train=300, num_val=150, num_test=100, seed=0)


def test_shapes_and_dtypes(problem):
    assert problem.name == "qm9"
    assert problem.task_names == tuple(NAMES) and problem.num_tasks == 3
    for split, n in zip((problem.train, problem.val, problem.test), (300, 150, 100)):
        assert split.inputs.shape == (n, 8) and split.inputs.dtype == torch.float32
        assert len(split.targets) == 3
        for t in split.targets:
            assert t.shape == (n,) and t.dtype == torch.float32


def test_splits_disjoint_and_deterministic(arrays, problem):
    indices = [problem.train_index, problem.val_index, problem.test_index]
    union = np.concatenate(indices)
    assert len(np.unique(union)) == len(union) == 550
    same = QM9.from_arrays(*arrays, NAMES, num_train=300, num_val=150, num_test=100, seed=0, targets="raw")
    other = QM9.from_arrays(*arrays, NAMES, num_train=300, num_val=150, num_test=100, seed=1, targets="raw")
    for a, b in zip(indices, [same.train_index, same.val_index, same.test_index]):
        np.testing.assert_array_equal(a, b)
    assert torch.equal(problem.train.inputs, same.train.inputs)
    assert not np.array_equal(problem.train_index, other.train_index)
    # targets are the raw rows of the chosen molecules
    _, y = arrays
    for k in range(3):
        np.testing.assert_allclose(problem.val.targets[k].numpy(), y[problem.val_index, k], rtol=1e-6)


def test_inputs_standardised_with_train_statistics_only(arrays, problem):
    x, y = arrays
    train = problem.train.inputs.double()
    torch.testing.assert_close(train.mean(0), torch.zeros(8, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(train.std(0, unbiased=False), torch.ones(8, dtype=torch.float64), atol=1e-5, rtol=0)
    expected_val = (x[problem.val_index].astype(np.float64) - x[problem.train_index].mean(0)) / x[
        problem.train_index
    ].astype(np.float64).std(0)
    np.testing.assert_allclose(problem.val.inputs.numpy(), expected_val, rtol=1e-4, atol=1e-4)
    # Changing molecules outside the train split changes no statistic.
    x2 = x.copy()
    outside = np.setdiff1d(np.arange(len(x)), problem.train_index)
    x2[outside] *= 100
    moved = QM9.from_arrays(x2, y, NAMES, num_train=300, num_val=150, num_test=100, seed=0, targets="raw")
    np.testing.assert_array_equal(moved.input_mean, problem.input_mean)
    np.testing.assert_array_equal(moved.input_std, problem.input_std)
    assert torch.equal(moved.train.inputs, problem.train.inputs)


def test_raw_targets_keep_their_scales(problem):
    spreads = [float(t.std()) for t in problem.train.targets]
    assert spreads[2] / spreads[0] > 1e4  # raw scales kept: the imbalance is the point
    assert problem.targets == "raw" and list(problem.target_std) == [1.0] * 3


def test_standardized_targets_are_z_scores_on_the_train_split(arrays, standardized):
    """numpy on the arrays: each split's targets are (y - mean) / std with the train split's mean
    and population std; molecules outside the train split change no statistic."""
    x, y = arrays
    assert QM9().targets == "standardized" and standardized.targets == "standardized"  # the default
    train = y[standardized.train_index]
    mean, std = train.mean(axis=0), train.std(axis=0)
    np.testing.assert_allclose(standardized.target_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(standardized.target_std, std, rtol=1e-12)
    for split, index in ((standardized.train, standardized.train_index), (standardized.val, standardized.val_index),
                         (standardized.test, standardized.test_index)):
        got = np.stack([t.numpy() for t in split.targets], axis=1)
        np.testing.assert_allclose(got, (y[index] - mean) / std, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([float(t.double().mean()) for t in standardized.train.targets], 0.0, atol=1e-6)
    np.testing.assert_allclose([float(t.double().std(unbiased=False)) for t in standardized.train.targets], 1.0,
                               rtol=1e-6)
    y2 = y.copy()
    y2[np.setdiff1d(np.arange(len(y)), standardized.train_index)] *= 100
    moved = QM9.from_arrays(x, y2, NAMES, num_train=300, num_val=150, num_test=100, seed=0)
    np.testing.assert_array_equal(moved.target_std, standardized.target_std)
    assert torch.equal(moved.train.targets[2], standardized.train.targets[2])


def test_standardized_metrics_are_in_the_targets_units(arrays, standardized, problem):
    """MAE and RMSE of the model's outputs, mapped back (o * std + mean), against the raw targets,
    in numpy; the normalized error is the raw one's."""
    _, y = arrays
    model = standardized.build_model(seed=2)
    result = standardized.evaluate(model, standardized.val, batch_size=64)
    with torch.no_grad():
        outputs = np.stack([o.squeeze(1).double().numpy() for o in model(standardized.val.inputs)], axis=1)
    predicted = outputs * standardized.target_std + standardized.target_mean
    truth = y[standardized.val_index]
    for k, name in enumerate(NAMES):
        error = predicted[:, k] - truth[:, k]
        assert result[f"{name}/mae"] == pytest.approx(np.abs(error).mean(), rel=1e-5)
        assert result[f"{name}/rmse"] == pytest.approx(np.sqrt((error**2).mean()), rel=1e-5)
        assert result[f"{name}/normalized_error"] == pytest.approx((error**2).mean() / truth[:, k].var(), rel=1e-4)
    assert result["large/mae"] > 100 * result["small/mae"]  # the units, not z-scores
    assert standardized.task_kinds() == ("regression",) * 3
    assert standardized.primary_metrics() == {name: f"{name}/mae" for name in NAMES}


def test_bad_targets_option():
    with pytest.raises(ValueError, match="targets must be 'standardized' .* or 'raw', got 'zscore'") as info:
        QM9(targets="zscore")
    assert "\n" not in str(info.value)
    assert make_problem("qm9", targets="raw").targets == "raw"


def test_model_and_evaluate_keys(problem):
    model = problem.build_model(seed=0)
    assert isinstance(model, MultiHeadNet)
    assert model.last_shared_layer.out_features == 256
    assert len(model.heads) == 3
    outputs = model(problem.val.inputs[:5])
    assert [o.shape for o in outputs] == [(5, 1)] * 3
    again = problem.build_model(seed=0)
    for a, b in zip(model.parameters(), again.parameters()):
        assert torch.equal(a, b)
    result = problem.evaluate(model, problem.val)
    expected = {"score"} | {
        f"{t}/{m}" for t in NAMES for m in ("loss", "mae", "rmse", "normalized_error")
    }
    assert set(result) == expected
    assert all(math.isfinite(v) for v in result.values())
    assert result["large/loss"] > 1e3 * result["small/loss"]


def test_metrics_are_scale_free_and_correct(problem):
    torch.manual_seed(0)
    targets = [t[:50] for t in problem.val.targets]
    outputs = [(t + 0.1 * t.std() * torch.randn(50)).unsqueeze(1) for t in targets]
    metrics = problem.task_metrics(outputs, targets)
    for name, o, t in zip(NAMES, outputs, targets):
        o = o.squeeze(1).double()
        t = t.double()
        assert metrics[f"{name}/mae"] == pytest.approx(float((o - t).abs().mean()), rel=1e-6)
        expected = float(((o - t) ** 2).mean() / t.var(unbiased=False))
        assert metrics[f"{name}/normalized_error"] == pytest.approx(expected, rel=1e-6)
    scaled_outputs = [outputs[0] * 1000, *outputs[1:]]
    scaled_targets = [targets[0] * 1000, *targets[1:]]
    scaled = problem.task_metrics(scaled_outputs, scaled_targets)
    assert scaled["small/normalized_error"] == pytest.approx(metrics["small/normalized_error"], rel=1e-5)
    assert scaled["small/mae"] == pytest.approx(1000 * metrics["small/mae"], rel=1e-5)
    assert problem.score(scaled) == pytest.approx(problem.score(metrics), rel=1e-5)


def test_short_training_lowers_score(problem):
    model = problem.build_model(seed=0)
    before = problem.evaluate(model, problem.val)["score"]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(60):
        index = torch.randint(0, len(problem.train), (64,), generator=generator)
        x, ys = problem.train.batch(index)
        losses = problem.task_losses(model(x), ys)
        # per-task normalisation so the test checks the problem, not loss balancing
        loss = sum(loss / float(t.var()) for loss, t in zip(losses, problem.train.targets))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = problem.evaluate(model, problem.val)["score"]
    assert after < 0.5 * before


def test_bad_inputs_raise_one_line_errors(arrays):
    x, y = arrays
    with pytest.raises(ValueError, match="exceeds the 600 molecules"):
        QM9.from_arrays(x, y, NAMES, num_train=500, num_val=100, num_test=100)
    with pytest.raises(ValueError, match="target_names must hold 3"):
        QM9.from_arrays(x, y, NAMES[:2], num_train=10, num_val=10, num_test=10)
    with pytest.raises(ValueError, match="same number of rows"):
        QM9.from_arrays(x[:10], y, NAMES, num_train=5, num_val=2, num_test=2)
    with pytest.raises(ValueError, match="num_val"):
        QM9.from_arrays(x, y, NAMES, num_train=10, num_val=0, num_test=10)
    with pytest.raises(ValueError, match="seed"):
        QM9.from_arrays(x, y, NAMES, num_train=10, num_val=10, num_test=10, seed=-1)
    bad = y.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        QM9.from_arrays(x, bad, NAMES, num_train=10, num_val=10, num_test=10)


# --- locating the data and the cache -------------------------------------------------------


def test_missing_data_dir_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"pip install 'gradnorm-tune\[qm9\]'"):
        load_qm9(tmp_path)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(qm9_data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"qm9pack==1\.0\.3"):
        qm9_data.qm9_data_dir()


def write_fake_qm9(folder, molecules):
    """Three part files in qm9pack's format, holding ``molecules`` split over them."""
    header = (
        "XYZ_file,Index,SMILES,InChi,N_atoms,Stoichiometry,Elements,XYZ_Ang,Mulliken_pop,"
        "Harmonic_Freq_cmi,RotA_GHz,RotB_GHz,RotC_GHz,Dipole_debye,Polarizability_bohr3,HOMO_au,"
        "LUMO_au,HOMO_LUMO_gap_au,R2_bohr2,ZPVE_au,InternalEnergy_0K_au,InternalEnergy_298K_au,"
        "Enthalphy_298K_au,GibbsFreeEnergy_298K_au,Heatcapacity_Cv_cal_mol_K"
    )
    symbols = {1: "H", 6: "C", 8: "O"}
    parts = [[], [], []]
    for i, (charges, coords) in enumerate(molecules):
        elements = "[" + ",".join(f"'{symbols[z]}'" for z in charges) + "]"
        xyz = "[" + ",".join("[" + ",".join(repr(float(v)) for v in atom) + "]" for atom in coords) + "]"
        xyz = xyz.replace("0.0,", "0.,")  # the non-JSON form found in the real files
        values = [float(i + k) for k in range(12)]
        row = [f'"m{i}.xyz"', str(i + 1), '"X"', '"InChI"', str(len(charges)), '"[0]"']
        row += [f'"{elements}"', f'"{xyz}"', '"[0.]"', '"[1.]"', "1.", "1.", "1."]
        row += [repr(v) for v in values]
        parts[i % 3].append(",".join(row))
    for name, rows in zip(qm9_data.PART_FILES, parts):
        (folder / name).write_text("\n".join([header, *rows]) + "\n")


def test_load_from_files_and_cache(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("GRADNORM_TUNE_DATA", str(tmp_path / "cache"))
    molecules = [WATER, H2, METHANE, H2, WATER, METHANE]
    write_fake_qm9(data, molecules)
    # part files are read in order: part1 holds molecules 0, 3; part2 1, 4; part3 2, 5
    order = [0, 3, 1, 4, 2, 5]
    targets, names, descriptors = load_qm9(data, limit=3)
    assert names == list(TARGET_NAMES) and targets.shape == (3, 11)
    assert not list((tmp_path / "cache").glob("**/*.npz"))  # a limited first load caches nothing
    targets, names, descriptors = load_qm9(data)
    assert targets.shape == (6, 11) and descriptors.shape == (6, MAX_ATOMS)
    assert descriptors.dtype == np.float32 and targets.dtype == np.float64
    # gap (column 17 of the file, value i + 4) is skipped; u0 is value i + 6
    np.testing.assert_array_equal(targets[:, names.index("lumo")], np.array(order) + 3.0)
    np.testing.assert_array_equal(targets[:, names.index("r2")], np.array(order) + 5.0)
    for row, m in zip(descriptors, order):
        np.testing.assert_allclose(row, reference_eigenvalues(*molecules[m]), rtol=1e-5, atol=1e-5)
    cached = list((tmp_path / "cache" / "qm9").glob("*"))
    assert len(cached) == 1 and cached[0].suffix == ".npz"  # no temporary file left behind
    # second load comes from the cache (the CSVs are no longer parsed)
    monkeypatch.setattr(qm9_data, "_read", lambda *a: pytest.fail("cache not used"))
    again = load_qm9(data)
    np.testing.assert_array_equal(again[0], targets)
    np.testing.assert_array_equal(again[2], descriptors)
    np.testing.assert_array_equal(load_qm9(data, limit=2)[2], descriptors[:2])


def test_problem_from_data_dir(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("GRADNORM_TUNE_DATA", str(tmp_path / "cache"))
    write_fake_qm9(data, [WATER, H2, METHANE] * 4)
    problem = QM9(data_dir=str(data), num_train=6, num_val=3, num_test=3, seed=0)
    assert problem.task_names == TARGET_NAMES
    assert problem.train.inputs.shape == (6, MAX_ATOMS)


# --- real data (qm9pack) --------------------------------------------------------------------

needs_qm9pack = pytest.mark.skipif(
    importlib.util.find_spec("qm9pack") is None,
    reason="qm9pack not installed; pip install 'gradnorm-tune[qm9]'",
)


@needs_qm9pack
def test_real_data_row_count_and_columns():
    folder = qm9_data.qm9_data_dir()
    rows = 0
    for name in qm9_data.PART_FILES:
        with open(folder / name, "rb") as f:
            header = f.readline().decode()
            rows += sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b""))
        for column in qm9_data.TARGET_COLUMNS.values():
            assert column in header.strip().split(",")
    assert rows == NUM_MOLECULES == 130831


@needs_qm9pack
def test_real_data_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADNORM_TUNE_DATA", str(tmp_path))
    targets, names, descriptors = load_qm9(limit=2000)
    assert names == ["mu", "alpha", "homo", "lumo", "r2", "zpve", "u0", "u298", "h298", "g298", "cv"]
    assert targets.shape == (2000, 11) and descriptors.shape == (2000, 29)
    assert np.isfinite(targets).all() and np.isfinite(descriptors).all()
    # First molecule is methane: CH4, U0 = -40.47893 Ha, mu = 0.
    assert targets[0, names.index("u0")] == pytest.approx(-40.47893)
    assert targets[0, names.index("mu")] == 0.0
    assert np.all(descriptors[0, 5:] == 0) and np.all(descriptors[0, :5] != 0)
    # Scales differ by orders of magnitude: the imbalance GradNorm is meant to fix.
    std = targets.std(axis=0)
    assert std[names.index("r2")] / std[names.index("homo")] > 1e3
    problem = QM9.from_arrays(descriptors, targets, names, num_train=1000, num_val=500, num_test=500)
    result = problem.evaluate(problem.build_model(), problem.val)
    assert math.isfinite(result["score"])
