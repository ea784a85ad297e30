"""Tiny real disentangle and mmhvae model directories, shared by the segmenter tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def upstream_dirs(tmp_path_factory) -> dict[str, Path]:
    from segmenter_helpers import save_upstream

    root = tmp_path_factory.mktemp("upstream")
    return {family: save_upstream(root / family, family) for family in ("disentangle", "mmhvae")}
