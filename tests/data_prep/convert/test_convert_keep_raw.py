"""--keep-raw: raw/<modality> arrays with per-volume scaling only, beside the normalised images."""

from __future__ import annotations

import numpy as np
import zarr

from data_prep.convert.__main__ import main
from data_prep.convert.normalise import RAW_RANGE
from raysys.data import open_store




def test_raw_arrays_hold_per_volume_scaled_images(raw_store, tiny_store):
    store = open_store(raw_store)
    assert store.has_raw and store.raw_range == RAW_RANGE and store.attrs["has_raw"] is True
    assert not open_store(tiny_store).has_raw and "keep_raw" not in open_store(tiny_store).attrs["arguments"]
    scales = {}
    for subject in range(len(store.subjects)):
        mask = np.asarray(store.volume(subject, "mask")).astype(bool)
        p99 = store.attrs["subject_normalisation"][store.subjects[subject]]["raw_p99"]
        for modality, present in store.available(subject).items():
            if not present:
                continue
            raw = np.asarray(store.raw_volume(subject, modality), dtype=np.float64)
            normalised = np.asarray(store.volume(subject, modality), dtype=np.float64)
            assert raw.shape == normalised.shape and not raw[~mask].any()
            assert RAW_RANGE[0] <= raw.min() and raw.max() <= RAW_RANGE[1]
            # x / p99 of the 3-D brain: about 1 at the resized slices' own 99th percentile
            assert 0.9 < np.percentile(raw[mask], 99) < 1.1 and p99[modality] > 0
            # both are linear maps of the same volume: raw = a * normalised + b inside the brain
            a, b = np.polyfit(normalised[mask], raw[mask], 1)
            assert np.corrcoef(normalised[mask], raw[mask])[0, 1] > 0.97
            scales.setdefault(modality, []).append(a)
    # the normalisation is not a fixed map of the raw images: harmonising them is a real task
    assert any(np.ptp(v) / np.mean(v) > 0.05 for v in scales.values() if len(v) > 1)


def test_cli_flag_and_stores_without_it(phantom_dir, tmp_path):
    out = tmp_path / "cli.zarr"
    assert main(["--input", str(phantom_dir), "--output", str(out), "--modalities", "t1", "--folds", "3",
                 "--keep-raw", "--quiet"]) == 0
    root = zarr.open_group(str(out), mode="r")
    assert list(root["raw"].array_keys()) == ["t1"] and root.attrs["arguments"]["keep_raw"] is True
    assert root["raw/t1"].dtype == root["images/t1"].dtype and root["raw/t1"].shape == root["images/t1"].shape
