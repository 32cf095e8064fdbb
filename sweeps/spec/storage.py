"""The spec's ``storage``: where the sweep's directory goes (``--storage`` overrides it).

``storage: s3://bucket/prefix`` is short for ``storage: {uri: s3://bucket/prefix}``. The URI is a
local path (an NFS mount every node shares), ``file://``, ``s3://`` or ``gs://``; ``endpoint``
names an S3-compatible store (``http://minio:9000``) and is taken, when left out, from the
standard ``AWS_ENDPOINT_URL`` of the machine that starts the sweep (:mod:`trainables.storage`).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import model_validator

from trainables import storage

from ..validation import Fix, SpecModel, problem

__all__ = ["StorageSpec"]


class StorageSpec(SpecModel):
    KEY_NOUN: ClassVar[str] = "storage key"
    SHAPE_FIX: ClassVar[str] = ("write it as s3://BUCKET/PREFIX, or "
                                "{uri: s3://BUCKET/PREFIX, endpoint: http://HOST:PORT}")

    uri: Annotated[str, Fix("give a path, or a URI: file://, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX")]
    endpoint: Annotated[str | None, Fix("give the S3-compatible store's address, e.g. http://127.0.0.1:9000")] = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"uri": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _usable(self) -> StorageSpec:
        if not self.uri.strip():
            raise problem("is empty", "give a path, or a URI: s3://BUCKET/PREFIX, gs://BUCKET/PREFIX", ("uri",))
        if self.endpoint is not None and not self.uri.startswith("s3://"):
            raise problem(f"an endpoint is given for {self.uri}", "give an s3:// URI, or leave endpoint out",
                          ("endpoint",))
        try:
            storage.resolve(self.uri, self.endpoint) if storage.is_uri(self.uri) else None
        except storage.StorageError as error:
            what, _, fix = str(error).partition("; ")
            raise problem(what, fix, ("endpoint",) if "endpoint" in what else ("uri",)) from None
        return self
