"""Model directories for the prediction tests (untrained tiny models: the tests check the
geometry, the files and the pipeline, not the quality of a synthesis)."""

from __future__ import annotations

from pathlib import Path

import pytest

from predict_helpers import fast_record, save_model


@pytest.fixture(scope="session")
def fast_models(tmp_path_factory) -> dict[str, Path]:
    """``{"mmhvae", "disentangle"}`` with the 12-slice, 32x32 ``fast_record``; ``"old"``: no record."""
    root = tmp_path_factory.mktemp("predict-models")
    return {"mmhvae": save_model(root / "mmhvae", "mmhvae", fast_record()),
            "disentangle": save_model(root / "disentangle", "disentangle", fast_record()),
            "old": save_model(root / "old", "mmhvae", None)}
