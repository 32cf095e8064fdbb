"""A sweep's storage, wherever it lives: a local path (an NFS mount every node shares is one) or a
URI that ``pyarrow.fs`` reads: ``file://``, ``s3://bucket/prefix``, ``gs://bucket/prefix``.

A location is one string that every node can use as it is. An S3 location carries its endpoint
(an S3-compatible store: MinIO, Ceph, moto) in its query, ``?endpoint_override=HOST:PORT&scheme=http``,
put there by :func:`resolve` from the spec's ``storage.endpoint`` or the standard
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` of the machine that starts the sweep (``pyarrow``
itself ignores those variables): a worker that lacks them still reaches the same store.
Credentials are never put in a location: each node takes its own from the usual places (the
``AWS_*`` variables, its instance role, ``GOOGLE_APPLICATION_CREDENTIALS``).

Trials write their logs and failure records here with :func:`write_text`, so that a retry on
another node, and the driver, read what an earlier attempt wrote; the sweep keeps ``sweep.json``
and its Tune experiment here (:mod:`sweeps.state`).
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["SCHEMES", "StorageError", "delete", "exists", "filesystem", "is_uri", "join", "make_dir",
           "read_text", "resolve", "write_text"]

#: the URI schemes a sweep's storage may use (a local path needs none)
SCHEMES = ("file", "s3", "gs")
#: where an S3-compatible store's address comes from when the spec gives none, first found wins
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


class StorageError(ValueError):
    """A storage location that cannot be used; one line: what, and the fix."""


def is_uri(location: str | os.PathLike) -> bool:
    return "://" in str(location)


def _endpoint_query(endpoint: str) -> dict[str, str]:
    """``http://host:port`` -> pyarrow's ``endpoint_override`` and ``scheme``."""
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise StorageError(f"S3 endpoint {endpoint!r} is not http(s)://host[:port]; give the store's address, "
                           "e.g. http://127.0.0.1:9000")
    return {"endpoint_override": parts.netloc, "scheme": parts.scheme}


def resolve(location: str | os.PathLike, endpoint: str | None = None) -> str:
    """``location`` as every node can use it: a local path made absolute; ``file://`` as it is;
    an ``s3://`` URI with its endpoint in its query (``endpoint``, else ``AWS_ENDPOINT_URL_S3`` or
    ``AWS_ENDPOINT_URL`` if set, unless the query already names one). Raises :class:`StorageError`."""
    text = os.fspath(location)
    if not is_uri(text):
        if endpoint:
            raise StorageError(f"storage endpoint {endpoint!r} given for the local path {text}; "
                               "give an s3:// URI, or leave the endpoint out")
        return str(Path(text).expanduser().resolve())
    parts = urlsplit(text)
    if parts.scheme not in SCHEMES:
        raise StorageError(f"storage {text}: unknown scheme {parts.scheme!r}; give a path, or a URI starting "
                           f"with {', '.join(s + '://' for s in SCHEMES)}")
    if parts.scheme == "file":
        return text
    if not parts.netloc:
        raise StorageError(f"storage {text} names no bucket; write {parts.scheme}://BUCKET/PREFIX")
    query = dict(parse_qsl(parts.query))
    if parts.scheme == "s3" and "endpoint_override" not in query:
        endpoint = endpoint or next((os.environ[v] for v in ENDPOINT_VARIABLES if os.environ.get(v)), None)
        if endpoint:
            query |= _endpoint_query(endpoint)
    elif endpoint:
        raise StorageError(f"storage endpoint given for {text}: only s3:// takes one here" if parts.scheme != "s3"
                           else f"storage {text} names its endpoint already; give one of the two")
    return parts._replace(path=parts.path.rstrip("/"), query=urlencode(query, safe=":/")).geturl()


def filesystem(location: str | os.PathLike):
    """``(pyarrow filesystem, path in it)`` of a local path or a URI."""
    import pyarrow.fs

    text = os.fspath(location)
    if is_uri(text):
        return pyarrow.fs.FileSystem.from_uri(resolve(text))
    return pyarrow.fs.LocalFileSystem(), str(Path(text).expanduser().resolve())


def join(location: str | os.PathLike, *parts: str) -> str:
    """``location/part/...`` for a path or a URI (a URI's query, if any, stays at the end)."""
    text = os.fspath(location)
    if is_uri(text):
        base, question, query = text.partition("?")
        return posixpath.join(base, *parts) + question + query
    return str(Path(text).joinpath(*parts))


def exists(location: str | os.PathLike) -> bool:
    """Whether there is a file or a folder at ``location`` (a prefix with objects under it, on S3)."""
    import pyarrow.fs

    fs, path = filesystem(location)
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def make_dir(location: str | os.PathLike) -> None:
    """Create the folder at ``location`` and its parents (on an object store: nothing to create)."""
    fs, path = filesystem(location)
    fs.create_dir(path, recursive=True)


def delete(location: str | os.PathLike) -> None:
    """Delete the file at ``location``."""
    fs, path = filesystem(location)
    fs.delete_file(path)


def write_text(location: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``location`` (a path or URI), creating its folder; replaces the file."""
    fs, path = filesystem(location)
    fs.create_dir(posixpath.dirname(path), recursive=True)
    with fs.open_output_stream(path) as stream:
        stream.write(text.encode("utf-8"))


def read_text(location: str | os.PathLike) -> str | None:
    """The text at ``location``, or ``None`` when there is no such file."""
    import pyarrow.fs

    fs, path = filesystem(location)
    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        return stream.read().decode("utf-8")
