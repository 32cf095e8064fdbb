"""Small text files in a sweep's storage, wherever it lives: a local path or a URI that
``pyarrow.fs`` reads (``file://``, ``s3://``, ``gs://``). Trials write their logs and failure
records here, so that a retry on another node, and the driver, read what an earlier attempt wrote.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

__all__ = ["filesystem", "join", "read_text", "write_text"]


def _is_uri(location: str) -> bool:
    return "://" in location


def filesystem(location: str):
    """``(pyarrow filesystem, path in it)`` of a local path or a URI."""
    import pyarrow.fs

    if _is_uri(location):
        return pyarrow.fs.FileSystem.from_uri(location)
    return pyarrow.fs.LocalFileSystem(), str(Path(location).expanduser().resolve())


def join(location: str, *parts: str) -> str:
    """``location/part/...`` for a path or a URI (a URI's query, if any, stays at the end)."""
    if _is_uri(location):
        base, question, query = location.partition("?")
        return posixpath.join(base, *parts) + question + query
    return str(Path(location).joinpath(*parts))


def write_text(location: str, text: str) -> None:
    """Write ``text`` to ``location`` (a path or URI), creating its folder; replaces the file."""
    fs, path = filesystem(location)
    fs.create_dir(posixpath.dirname(path), recursive=True)
    with fs.open_output_stream(path) as stream:
        stream.write(text.encode("utf-8"))


def read_text(location: str) -> str | None:
    """The text at ``location``, or ``None`` when there is no such file."""
    import pyarrow.fs

    fs, path = filesystem(location)
    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        return stream.read().decode("utf-8")
