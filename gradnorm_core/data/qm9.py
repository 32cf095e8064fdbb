"""QM9 (130,831 small organic molecules) from the CSVs shipped in the PyPI package ``qm9pack``.

Nothing is downloaded at run time: ``pip install 'gradnorm-tune[qm9]'`` (or
``pip install qm9pack==1.0.3``) puts the CSVs on disk, and this module reads them. The package
itself is never imported (its ``__init__`` needs ``pkg_resources``); its folder is located with
``importlib.util.find_spec``, which does not execute it.

``qm9pack/data`` holds ``qm9_part1.csv``, ``qm9_part2.csv`` and ``qm9_part3.csv`` (43,610 +
43,611 + 43,610 = 130,831 molecules, one per line) with the columns::

    XYZ_file, Index, SMILES, InChi, N_atoms, Stoichiometry, Elements, XYZ_Ang, Mulliken_pop,
    Harmonic_Freq_cmi, RotA_GHz, RotB_GHz, RotC_GHz, Dipole_debye, Polarizability_bohr3,
    HOMO_au, LUMO_au, HOMO_LUMO_gap_au, R2_bohr2, ZPVE_au, InternalEnergy_0K_au,
    InternalEnergy_298K_au, Enthalphy_298K_au, GibbsFreeEnergy_298K_au,
    Heatcapacity_Cv_cal_mol_K

(and ``qm9_polarizability.csv``, the polarizability tensors, which is not used).
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

PART_FILES = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
NUM_MOLECULES = 130_831
MAX_ATOMS = 29
INSTALL_HINT = "pip install 'gradnorm-tune[qm9]' (or pip install qm9pack==1.0.3)"

# Target name -> CSV column, in the order of the returned target columns. Units are those of the
# file: Debye, bohr^3, Hartree, bohr^2, Hartree, cal/(mol K).
TARGET_COLUMNS: dict[str, str] = {
    "mu": "Dipole_debye",
    "alpha": "Polarizability_bohr3",
    "homo": "HOMO_au",
    "lumo": "LUMO_au",
    "r2": "R2_bohr2",
    "zpve": "ZPVE_au",
    "u0": "InternalEnergy_0K_au",
    "u298": "InternalEnergy_298K_au",
    "h298": "Enthalphy_298K_au",
    "g298": "GibbsFreeEnergy_298K_au",
    "cv": "Heatcapacity_Cv_cal_mol_K",
}
TARGET_NAMES: tuple[str, ...] = tuple(TARGET_COLUMNS)
NUCLEAR_CHARGES: dict[str, int] = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}

_CACHE_VERSION = 1
_BATCH = 8192  # molecules per eigvalsh call: bounds the (B, n, n, 3) temporaries to ~150 MB


def qm9_data_dir() -> Path:
    """The ``data`` folder of the installed ``qm9pack`` package (found without importing it)."""
    try:
        spec = importlib.util.find_spec("qm9pack")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "data"
        if all((folder / name).is_file() for name in PART_FILES):
            return folder
    raise FileNotFoundError(f"QM9 data not found (package qm9pack is not installed); {INSTALL_HINT}")


def cache_dir() -> Path:
    """Where computed arrays are cached: ``$GRADNORM_TUNE_DATA/qm9``, else
    ``~/.cache/gradnorm-tune/qm9``."""
    root = os.environ.get("GRADNORM_TUNE_DATA")
    if root:
        return Path(root).expanduser() / "qm9"
    return Path.home() / ".cache" / "gradnorm-tune" / "qm9"


def parse_floats(texts: Iterable[str]) -> np.ndarray:
    """All numbers in the nested-list strings ``texts`` (e.g. ``"[[0.,1.5,-2e-3],[...]]"``), flat,
    float64, in order.

    Not JSON: QM9's strings hold numbers such as ``0.`` and ``-0.`` that JSON rejects, and the
    raw QM9 files write some exponents Mathematica-style (``1.2*^-6``); both are read here.
    """
    text = ",".join(texts).replace("*^", "e").translate(_STRIP)
    tokens = text.split(",")
    if "" in tokens:
        tokens = [t for t in tokens if t]
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"malformed QM9 number list: {error}") from None


_STRIP = str.maketrans("", "", "[]() '\"\t\n")


def parse_xyz(text: str) -> np.ndarray:
    """One molecule's coordinate string (``XYZ_Ang``) as a float64 array (n_atoms, 3)."""
    values = parse_floats([text])
    if values.size % 3:
        raise ValueError(f"coordinate string holds {values.size} numbers, not a multiple of 3")
    return values.reshape(-1, 3)


def parse_elements(texts: Iterable[str]) -> np.ndarray:
    """Nuclear charges (int64, flat, in order) of element lists like ``"['C','H','H']"``."""
    tokens = ",".join(texts).translate(_STRIP).split(",")
    try:
        return np.array([NUCLEAR_CHARGES[t] for t in tokens if t], dtype=np.int64)
    except KeyError as error:
        raise ValueError(
            f"unknown element {error.args[0]!r} in QM9 data; known: {', '.join(NUCLEAR_CHARGES)}"
        ) from None


def coulomb_eigenvalues_batch(charges: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Sorted (descending) Coulomb-matrix eigenvalues of B molecules with n atoms each.

    ``charges`` (B, n), ``coords`` (B, n, 3) in Angstrom; returns float64 (B, n).
    C_ii = 0.5 Z_i^2.4 and C_ij = Z_i Z_j / |R_i - R_j| (Rupp et al., PRL 2012), distances in
    Angstrom as given in the file.
    """
    z = np.asarray(charges, dtype=np.float64)
    r = np.asarray(coords, dtype=np.float64)
    n = z.shape[1]
    distance = np.linalg.norm(r[:, :, None, :] - r[:, None, :, :], axis=-1)
    eye = np.eye(n, dtype=bool)
    distance[:, eye] = 1.0  # placeholder: the diagonal is overwritten below
    matrix = z[:, :, None] * z[:, None, :] / distance
    matrix[:, eye] = 0.5 * z**2.4
    return -np.sort(-np.linalg.eigvalsh(matrix), axis=1)


def coulomb_descriptor(charges: Sequence[int], coords: np.ndarray, size: int = MAX_ATOMS) -> np.ndarray:
    """One molecule's descriptor: its Coulomb-matrix eigenvalues sorted in descending order, then
    zero-padded to ``size`` (float64). Invariant to atom order, rotation and translation."""
    z = np.asarray(charges, dtype=np.float64)
    if len(z) > size:
        raise ValueError(f"molecule has {len(z)} atoms, more than the descriptor size {size}")
    out = np.zeros(size)
    out[: len(z)] = coulomb_eigenvalues_batch(z[None], np.asarray(coords, dtype=np.float64)[None])[0]
    return out


def _descriptors(counts: np.ndarray, charges: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """(N, MAX_ATOMS) float32 descriptors of N molecules stored flat (atoms in order)."""
    if counts.size and counts.max() > MAX_ATOMS:
        raise ValueError(f"a molecule has {counts.max()} atoms, more than {MAX_ATOMS}")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.zeros((len(counts), MAX_ATOMS), dtype=np.float32)
    for n in np.unique(counts):
        molecules = np.flatnonzero(counts == n)
        for lo in range(0, len(molecules), _BATCH):
            chosen = molecules[lo : lo + _BATCH]
            atoms = starts[chosen, None] + np.arange(n)
            out[chosen, :n] = coulomb_eigenvalues_batch(charges[atoms], coords[atoms])
    return out


def _read(data_dir: Path, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Parse the first ``limit`` molecules (all if None): targets (N, 11) f64, descriptors f32."""
    csv.field_size_limit(sys.maxsize)
    needed = ["N_atoms", "Elements", "XYZ_Ang", *TARGET_COLUMNS.values()]
    targets: list[list[float]] = []
    counts: list[int] = []
    elements: list[str] = []
    xyz: list[str] = []
    for name in PART_FILES:
        if limit is not None and len(counts) >= limit:
            break
        with open(data_dir / name, newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            missing = [c for c in needed if c not in header]
            if missing:
                raise ValueError(f"{data_dir / name} lacks the columns {missing}; {INSTALL_HINT}")
            i_count, i_elements, i_xyz, *i_targets = (header.index(c) for c in needed)
            for row in reader:
                if limit is not None and len(counts) >= limit:
                    break
                counts.append(int(row[i_count]))
                elements.append(row[i_elements])
                xyz.append(row[i_xyz])
                targets.append([float(row[i]) for i in i_targets])
    count_array = np.array(counts, dtype=np.int64)
    charges = parse_elements(elements)
    coords = parse_floats(xyz)
    total = int(count_array.sum())
    if charges.size != total or coords.size != 3 * total:
        raise ValueError(
            f"QM9 data is inconsistent: N_atoms sums to {total} but found {charges.size} elements "
            f"and {coords.size} coordinates (expected {3 * total}); reinstall: {INSTALL_HINT}"
        )
    descriptors = _descriptors(count_array, charges, coords.reshape(-1, 3))
    return np.array(targets, dtype=np.float64).reshape(-1, len(TARGET_COLUMNS)), descriptors


def _cache_path(data_dir: Path) -> Path:
    stats = []
    for name in PART_FILES:
        st = (data_dir / name).stat()
        stats.append([name, st.st_size, st.st_mtime_ns])
    key = json.dumps([_CACHE_VERSION, list(TARGET_NAMES), MAX_ATOMS, stats])
    return cache_dir() / f"qm9_{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def _write_atomically(path: Path, targets: np.ndarray, descriptors: np.ndarray) -> None:
    """Write the cache through a temporary file in the same folder and a rename; on any OSError
    (read-only home, full disk) leave no file behind and carry on without a cache."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".qm9_", suffix=".npz.tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, targets=targets, descriptors=descriptors, target_names=np.array(TARGET_NAMES))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a cache may be shared
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _read_cache(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            if tuple(data["target_names"].tolist()) != TARGET_NAMES:
                return None
            return data["targets"], data["descriptors"]
    except (OSError, ValueError, KeyError):
        return None  # absent or corrupt: recompute (and overwrite)


def load_qm9(
    data_dir: str | os.PathLike | None = None, limit: int | None = None
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """QM9 targets and Coulomb-matrix descriptors: ``(targets, target_names, descriptors)``.

    ``targets``: float64 (N, 11), raw values in the file's units, columns named by
    ``target_names``: mu (Debye), alpha (bohr^3), homo, lumo (Hartree), r2 (bohr^2), zpve,
    u0, u298, h298, g298 (Hartree), cv (cal/(mol K)). The file has twelve regression
    targets; the HOMO-LUMO gap is left out because it is lumo - homo (to the file's 1e-4
    rounding), so it adds no task of its own. These are the eleven targets of the usual QM9
    multitask benchmark (e.g. Nash-MTL, Navon et al. 2022). Their scales differ by orders of
    magnitude (std ~0.02 Hartree for homo, ~40 Hartree for u0, ~280 bohr^2 for r2).

    ``descriptors``: float32 (N, 29), the eigenvalues of each molecule's Coulomb matrix
    (C_ii = 0.5 Z_i^2.4, C_ij = Z_i Z_j / |R_i - R_j|, R in Angstrom) sorted in descending
    order and zero-padded to 29 atoms (the largest QM9 molecule): fixed-size and invariant to
    atom order, rotation and translation.

    ``data_dir``: folder holding ``qm9_part{1,2,3}.csv``; default ``qm9_data_dir()``.
    ``limit``: keep the first ``limit`` molecules (file order). Molecules are in file order.

    The full arrays are cached in ``cache_dir()`` as ``qm9_<key>.npz``, keyed by the CSVs'
    sizes and modification times, and written atomically (temporary file + rename). With a
    ``limit`` and no cache yet, only the first ``limit`` rows are parsed and nothing is cached.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(f"limit must be None or an integer >= 1, got {limit!r}")
    folder = Path(data_dir) if data_dir is not None else qm9_data_dir()
    missing = [name for name in PART_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"QM9 files {missing} not found in {folder}; {INSTALL_HINT}")
    path = _cache_path(folder)
    cached = _read_cache(path)
    if cached is not None:
        targets, descriptors = cached
    elif limit is not None:
        targets, descriptors = _read(folder, limit)
    else:
        targets, descriptors = _read(folder, None)
        _write_atomically(path, targets, descriptors)
    if limit is not None:
        targets, descriptors = targets[:limit], descriptors[:limit]
    return targets, list(TARGET_NAMES), descriptors
