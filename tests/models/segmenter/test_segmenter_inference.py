"""SegmenterInference through a saved model directory: self-contained, same labels as the module."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segmenter_helpers import MODALITIES, segmenter_family

from raysys.config import plain_values, to_flat
from raysys.registry import SegmenterInference, load, save_model_dir

torch.set_num_threads(1)


@pytest.mark.parametrize("mode", ["standard_avg", "fused_anatomy"])
def test_round_trip_through_a_model_dir_needs_nothing_else(mode, upstream_dirs, tmp_path):
    family = segmenter_family(mode, upstream_dirs, tmp_path / "frozen")
    module = family.inference_module().eval()
    with torch.no_grad():  # a trained-looking network: random weights, not the init
        for p in module.network.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    directory = save_model_dir(tmp_path / "model", "segmenter", "tiny", MODALITIES, plain_values(to_flat(family.config)),
                               module.state_dict(), {"test": True})
    for frozen_file in (tmp_path / "frozen").glob("*.pt"):
        frozen_file.unlink()  # the frozen parts travel inside weights.pt
    inference = load(str(directory))
    assert isinstance(inference, SegmenterInference) and inference.input_mode == mode
    rng = np.random.default_rng(0)
    k = family.context_slices
    images = rng.normal(size=(3, 4, k, 64, 64)).astype(np.float32)
    available = np.array([[1, 1, 1, 1], [1, 0, 1, 1], [0, 0, 1, 0]], dtype=bool)
    position = np.array([0.1, 0.5, 0.9], dtype=np.float32)
    labels = inference.segment(images, available, position)
    x = torch.from_numpy(images) * torch.from_numpy(available)[:, :, None, None, None]
    expected = module.segment(x, torch.from_numpy(available), torch.from_numpy(position)).numpy()
    assert labels.dtype == np.int64 and labels.shape == (3, 64, 64)
    assert set(np.unique(labels)) <= {0, 1, 2, 4}
    assert np.array_equal(labels, expected)
    # Another in-plane size: resampled in, probabilities resampled out; one slice without context.
    other = inference.segment(rng.normal(size=(2, 4, 48, 80)).astype(np.float32), available[:2])
    assert other.shape == (2, 48, 80) and set(np.unique(other)) <= {0, 1, 2, 4}
    with pytest.raises(ValueError, match="position"):
        inference.segment(images, available, position[:2])
