"""The segmentation predictor against contract 2 of issue 13 (``SegmenterInference.segment``),
with a test double of the segmenter (the real family is added elsewhere; the end-to-end test
with a registered segmenter comes with it): what it is given, and the label file written."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from predict_helpers import MODALITIES, fast_record, subject_files

from data_prep.convert.geometry import axial_view, fit_in_plane
from raysys.predict.pipeline import process_subject
from raysys.predict.preprocess import Preprocessing, prepare_subject
from raysys.predict.segmentation import SegmentationPredictor


class ThresholdSegmenter:
    """Stands in for ``SegmenterInference``: labels 4 / 2 / 1 by the first available image's value."""

    family = "segmenter"
    context = None

    def __init__(self):
        self.modalities = tuple(MODALITIES)
        self.meta = {"family": "segmenter", "modalities": list(MODALITIES)}
        self.calls = []

    def segment(self, images, available=None, position=None):
        self.calls.append((images.shape, available.copy(), position.copy()))
        first = images[np.arange(len(images)), available.argmax(1)]          # [B, H, W]
        return np.select([first > 1.0, first > 0.3, first > 0.0], [4, 2, 1], 0).astype(np.int64)


def test_labels_are_written_on_the_subjects_grid(phantom_dir, tmp_path):
    subject = "sub-000"
    files = subject_files(phantom_dir, subject)
    spec = Preprocessing.from_record(fast_record())
    segmenter = ThresholdSegmenter()
    rows = process_subject(subject, files, SegmentationPredictor(segmenter), spec, str(tmp_path))
    assert [r["modality"] for r in rows if r["synthesised"]] == ["seg"]
    (shape, available, _), *_ = segmenter.calls
    assert shape == (12, 4, 32, 32)
    assert available.tolist() == [[m in files for m in MODALITIES]] * 12
    position = np.concatenate([p for *_, p in segmenter.calls])
    assert np.allclose(position, (np.arange(12) + 0.5) / 12)
    image = nib.load(tmp_path / subject / f"{subject}_seg.nii.gz")
    reference = nib.load(files["t1"])
    labels = np.asarray(image.dataobj)
    assert image.get_data_dtype() == np.uint8 and labels.shape == reference.shape
    assert np.array_equal(image.affine, reference.affine)
    assert set(np.unique(labels)) <= {0, 1, 2, 4} and {1, 2, 4} <= set(np.unique(labels))
    assert not labels[:, :, :40].any() and not labels[:, :, 52:].any()
    # nearest-neighbour labels: resizing them again with the store's nearest rule gives the
    # segmenter's own output back (every model-grid pixel of the plane lands on its native pixel)
    again = fit_in_plane(axial_view(labels[:, :, 40:52]), spec.size, order=0)
    prepared = prepare_subject(subject, files, spec)
    expected = ThresholdSegmenter().segment(prepared.images, np.repeat(prepared.available[None], 12, 0), prepared.position)
    assert np.array_equal(again, expected)


def test_a_missing_predict_folder_names_the_predict_flag(tmp_path, capsys):
    """``jobs/segment.py --predict /missing``: exit 2 and one line naming the flag the user typed."""
    from raysys.segment.predict_cli import main

    missing = tmp_path / "missing"
    assert main(["--predict", str(missing), "--model", str(tmp_path / "model"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --predict {missing}: not a folder or a .csv manifest"]
    assert not (tmp_path / "out").exists()
