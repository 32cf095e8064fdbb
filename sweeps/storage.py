"""Where a sweep's directory goes: ``--storage`` or the spec's ``storage``, a local path or a URI
(see :mod:`trainables.storage`), checked before anything starts, and the new directory made there.

On a cluster of several machines, Tune's trials write their checkpoints where the sweep's
storage is, from whichever node they run on: a local path works only when every node mounts
the same folder there (NFS); otherwise use ``s3://`` or ``gs://``. :func:`check_nodes_see_storage`
asks every node before the first trial.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
import uuid
from pathlib import Path

from trainables import first_line, storage

from .state import SweepError, location

__all__ = ["DEFAULT_STORAGE", "STORAGE_VARIABLE", "check_nodes_see_storage", "check_storage", "new_directory",
           "storage_root"]

DEFAULT_STORAGE = "gradnorm-runs"
#: a cluster's default storage (the docker head sets it), used when neither flag nor spec gives one
STORAGE_VARIABLE = "GRADNORM_TUNE_STORAGE"


def storage_root(flag: str | None, spec_storage=None, shared: bool = False) -> str:
    """The storage a sweep uses: ``--storage``, else the spec's ``storage``, else
    ``$GRADNORM_TUNE_STORAGE`` (a cluster's default), else ``gradnorm-runs``; an S3 URI with its
    endpoint (the spec's ``storage.endpoint``, else ``AWS_ENDPOINT_URL``). ``shared``: the sweep
    runs as a Ray job, whose working directory is a temporary copy: a relative path is refused."""
    given = flag or (spec_storage.uri if spec_storage is not None else None) or os.environ.get(STORAGE_VARIABLE)
    if shared and not (given and (storage.is_uri(given) or Path(given).expanduser().is_absolute())):
        raise SweepError(f"--storage {given or DEFAULT_STORAGE}: a sweep run as a Ray job needs storage every node "
                         "reaches; give --storage (or the spec's storage) as s3://BUCKET/PREFIX, gs://BUCKET/PREFIX "
                         f"or an absolute path every node mounts (NFS), or set {STORAGE_VARIABLE} on the head")
    given = given or DEFAULT_STORAGE
    endpoint = spec_storage.endpoint if spec_storage is not None else None
    if endpoint and not str(given).startswith("s3://"):
        endpoint = None  # --storage named another kind of store: the spec's S3 endpoint is not for it
    try:
        return storage.resolve(given, endpoint)
    except storage.StorageError as error:
        raise SweepError(f"--storage: {error}") from None


def check_storage(root: str | Path) -> Path | str:
    """The storage folder (a resolved path, or a URI), once something can be created in it (or,
    while a local one does not exist yet, in the folder it would be made in); nothing is left
    behind by the check."""
    where = location(root)
    if isinstance(where, Path):
        return _check_local(root, where)
    marker = storage.join(where, f".write-check-{uuid.uuid4().hex}")
    try:
        storage.write_text(marker, "")
        storage.delete(marker)
    except OSError as error:
        raise SweepError(f"--storage {where}: cannot write there ({first_line(error)}); check the bucket, its "
                         "endpoint (storage.endpoint or AWS_ENDPOINT_URL) and this machine's credentials") from None
    return where


def _check_local(given, root: Path) -> Path:
    existing = root
    while not existing.exists():
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a folder")
        os.rmdir(tempfile.mkdtemp(prefix=".write-check-", dir=existing))
    except OSError as error:
        raise SweepError(f"--storage {given}: cannot write there ({error.strerror or type(error).__name__}); "
                         "give a folder you can write to") from None
    return root


def new_directory(root: Path | str, name: str) -> Path | str:
    """``<root>/<name>-<time>``, created (it must not exist yet)."""
    stamp = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if isinstance(root, Path):
        directory = root / stamp
        directory.mkdir(parents=True, exist_ok=False)
        return directory
    directory = storage.join(root, stamp)
    if storage.exists(directory):
        raise FileExistsError(errno.EEXIST, "sweep directory exists", directory)
    storage.make_dir(directory)
    return directory


def check_nodes_see_storage(root: Path | str) -> None:
    """On a cluster: every alive node reads a file the driver has just written in the storage
    folder (else its trials would fail at once with Tune's storage error, or write checkpoints no
    other node sees). Raises a one-line SweepError naming the nodes that do not; leaves nothing."""
    import ray

    from .session import on_every_node

    @ray.remote(num_cpus=0, max_retries=0)
    def read_marker(path: str) -> str | None:
        try:
            return storage.read_text(path)
        except OSError as error:
            return first_line(error)

    made = isinstance(root, Path) and not root.exists()
    marker, token = storage.join(root, f".visible-check-{uuid.uuid4().hex}"), uuid.uuid4().hex
    storage.write_text(marker, token)
    try:
        seen = on_every_node(read_marker, marker, timeout=120)
    finally:
        storage.delete(marker)
        if made:
            root.rmdir()
    blind = [f"{node['NodeManagerAddress']} ({node['NodeID'][:8]}: {text or 'no such file'})"
             for node, text in seen if text != token]
    if blind:
        raise SweepError(f"storage {root} is not shared with node(s) {', '.join(blind)}: their trials could not "
                         "write checkpoints there; give --storage (or the spec's storage) as s3://BUCKET/PREFIX, "
                         "gs://BUCKET/PREFIX or a path every node mounts (NFS)")
