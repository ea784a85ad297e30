"""A study's directory wherever it lives: a local (shared) path or any fsspec URL (s3://, gs://, abfs://).

Ray's Tuner, ``Tuner.restore`` and ``ExperimentAnalysis`` take the same URL (they go through
pyarrow); raysys' own files in it (``study.json``, ``pareto_front.json``) and its existence checks
go through fsspec here, so the rest of ``raysys.tune`` never asks which kind of directory it is.
Credentials and endpoints come from the standard variables (``AWS_ENDPOINT_URL``, ...) only.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from raysys.urls import absolute_url, local_path


class StudyDir:
    """The directory at ``url`` (a local path is made absolute); files are named relative to it."""

    def __init__(self, url: str | Path) -> None:
        self.url = absolute_url(str(url), "study storage").rstrip("/")
        self._fs: Any = None

    @property
    def local(self) -> Path | None:
        """The local path, or None when the directory lives on object storage."""
        path = local_path(self.url)
        return Path(path) if path is not None else None

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0] if self.local is None else "file"

    @property
    def fs(self) -> Any:
        if self._fs is None:
            import fsspec.core

            self._fs, _ = fsspec.core.url_to_fs(self.url)
        return self._fs

    def join(self, *parts: str) -> str:
        """The URL (or absolute path) of ``parts`` under this directory."""
        return "/".join([self.url, *(p.strip("/") for p in parts)])

    def child(self, name: str) -> "StudyDir":
        return StudyDir(self.join(name))

    def exists(self, name: str = "") -> bool:
        return self.fs.exists(self.join(name) if name else self.url)

    def read_text(self, name: str) -> str:
        with self.fs.open(self.join(name), "r") as f:
            return f.read()

    def write_text(self, name: str, text: str) -> None:
        with self.fs.open(self.join(name), "w") as f:
            f.write(text)

    def makedirs(self) -> None:
        self.fs.makedirs(self.url, exist_ok=True)  # object stores: nothing to create

    def find(self, path: str) -> str | None:
        """The URL of a path Ray reported under this directory (a Train checkpoint), None if it is
        gone. On object storage Ray reports filesystem paths without the scheme (``bucket/key``)."""
        if not path:
            return None
        url = path if ("://" in path or self.local is not None) else f"{self.scheme}://{path}"
        return url if self.fs.exists(url) else None

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"StudyDir({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StudyDir) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)


@contextlib.contextmanager
def local_copy(url: str) -> Iterator[str]:
    """A local directory holding ``url``'s files: the path itself when local, else a temporary
    download (e.g. a checkpoint on S3 the registry packs into a model), removed afterwards."""
    path = local_path(url)
    if path is not None:
        yield path
        return
    import fsspec.core

    fs, remote = fsspec.core.url_to_fs(url)
    with tempfile.TemporaryDirectory(prefix="raysys-download-") as tmp:
        target = os.path.join(tmp, os.path.basename(remote.rstrip("/")))
        fs.get(remote.rstrip("/") + "/", target, recursive=True)
        yield target
