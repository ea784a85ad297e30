"""Local paths versus fsspec URLs: the one rule for ``file://`` and plain paths.

Kept free of heavy imports (the data readers, the converter and DataLoader workers use it);
``raysys.tracking`` re-exports ``local_path``.
"""

from __future__ import annotations

from pathlib import Path


def local_path(url: str) -> str | None:
    """The absolute local path of a plain path or ``file://`` URL; None for other fsspec URLs."""
    url = str(url)
    if "://" in url and not url.startswith("file://"):
        return None
    return str(Path(url.removeprefix("file://")).expanduser().resolve())


def absolute_url(url: str, argument: str) -> str:
    """Local paths made absolute (Ray workers and trials ``chdir``); other fsspec URLs unchanged.

    An empty ``url`` raises ``ValueError`` naming ``argument`` (e.g. ``train.data``).
    """
    if not url:
        raise ValueError(f"{argument} must be a path or URL, got an empty string")
    return local_path(url) or url
