"""Baselines, cells and the overlap refusal on tiny synthetic arrays (a duck-typed in-memory store)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from raysys.evaluate.baselines import CopyBaseline, MeanBaseline, ZerosBaseline, position_bins, rank_sources
from raysys.evaluate.cells import family_cells, subject_cells
from raysys.evaluate.overlap import EvaluationError, check_overlap
from raysys.evaluate.scoring import score_slices
from raysys.evaluate.slices import SubjectSlices, evenly_spaced


class ArrayStore:
    """The part of ``raysys.data.Store`` the baselines read, over in-memory volumes."""

    def __init__(self, volumes: dict[str, dict[str, np.ndarray]], masks: dict[str, np.ndarray], store_id: str = "s1",
                 raw: dict[str, dict[str, np.ndarray]] | None = None):
        self.subjects = list(volumes)
        self._raw = raw
        self.modalities = ["a", "b", "c"]
        self.value_range = (-5.0, 5.0)
        self.size = next(iter(masks.values())).shape[1:]
        self._v, self._m, self.store_id = volumes, masks, store_id
        counts = [masks[s].shape[0] for s in self.subjects]
        self.subject_start = np.concatenate([[0], np.cumsum(counts)])

    def subject_index(self, s):
        return s if isinstance(s, (int, np.integer)) else self.subjects.index(s)

    def available(self, s):
        have = self._v[self.subjects[self.subject_index(s)]]
        return {m: m in have for m in self.modalities}

    def slice_range(self, s):
        i = self.subject_index(s)
        return int(self.subject_start[i]), int(self.subject_start[i + 1])

    def volume(self, s, name):
        s = self.subjects[self.subject_index(s)]
        return self._m[s] if name == "mask" else self._v[s][name]

    def raw_volume(self, s, name):
        return self._raw[self.subjects[self.subject_index(s)]][name]

    def split_subjects(self, split, fold):
        return {"train": np.array([0, 1]), "val": np.array([2])}[split]


def subject_from(volumes: dict[str, np.ndarray], mask: np.ndarray, modalities=("a", "b", "c")) -> SubjectSlices:
    z, h, w = mask.shape
    images = np.zeros((z, len(modalities), 1, h, w), dtype=np.float32)
    for j, m in enumerate(modalities):
        if m in volumes:
            images[:, j, 0] = volumes[m]
    return SubjectSlices("s", 0, {m: m in volumes for m in modalities}, images, mask, np.arange(z), z)


def test_zeros_baseline_scores_the_hand_computed_psnr():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(3, 16, 16)).astype(np.float32)
    mask = np.zeros((3, 16, 16), dtype=bool)
    mask[:, 4:12, 4:12] = True
    subject = subject_from({"a": target}, mask)
    pred = ZerosBaseline().predict(subject, np.arange(3), ("a",), ["a"])["a"]
    assert pred.shape == (3, 16, 16) and not pred.any()
    psnr, ssim = score_slices(pred, target, mask, (-5.0, 5.0))
    for k in range(3):
        mse = float(np.mean(np.clip(target[k][mask[k]], -5, 5) ** 2))
        assert psnr[k] == pytest.approx(10 * math.log10(10.0**2 / mse), rel=1e-5)
    assert np.all(np.isfinite(ssim)) and np.all(np.abs(ssim) < 0.05)  # zeros vs noise: no structure


def test_mean_baseline_is_the_training_mean_per_relative_position():
    rng = np.random.default_rng(1)
    h = w = 8
    vols = {f"s{i}": {"a": rng.normal(size=(n, h, w)).astype(np.float32)} for i, n in enumerate([4, 4, 6])}
    masks = {s: np.ones((v["a"].shape[0], h, w), bool) for s, v in vols.items()}
    store = ArrayStore(vols, masks)
    mean = MeanBaseline.fit(store, [0, 1])  # the training subjects: s0, s1 (4 slices each)
    assert mean.bins == 4 and set(mean.means) == {"a"}
    np.testing.assert_allclose(mean.means["a"], (vols["s0"]["a"] + vols["s1"]["a"]) / 2, rtol=1e-6)
    # a 6-slice test subject: relative positions (i + 0.5) / 6 -> bins 0 1 1 2 3 3
    assert position_bins(np.arange(6), 6, 4).tolist() == [0, 1, 1, 2, 3, 3]
    subject = subject_from({"a": vols["s2"]["a"]}, masks["s2"])
    pred = mean.predict(subject, np.arange(6), ("a",), ["a", "b"])
    assert set(pred) == {"a"}  # no training subject has b: no mean baseline for it
    np.testing.assert_allclose(pred["a"][2], mean.means["a"][1])


def test_copy_chooses_the_best_training_source_and_never_the_target_itself():
    rng = np.random.default_rng(2)
    h = w = 24
    vols, masks = {}, {}
    for i in range(3):
        a = rng.normal(size=(3, h, w)).astype(np.float32)
        vols[f"s{i}"] = {"a": a, "b": a + 0.05 * rng.normal(size=a.shape).astype(np.float32),  # b ~ a
                         "c": rng.normal(size=a.shape).astype(np.float32)}                     # c unrelated
        masks[f"s{i}"] = np.ones((3, h, w), bool)
    copy = CopyBaseline.fit(ArrayStore(vols, masks), [0, 1])
    assert copy.ranking["a"] == ["b", "c"] and copy.ranking["b"] == ["a", "c"]
    assert copy.source(("a", "b", "c"), "a") == "b"
    assert copy.source(("a", "c"), "a") == "c"      # b not among the inputs: next best
    assert copy.source(("a",), "a") is None          # self-reconstruction without another input: no copy
    assert copy.source(("a", "b"), "b") == "a"       # harmonisation cell: the target itself is excluded
    subject = subject_from(vols["s2"], masks["s2"])
    pred = copy.predict(subject, np.arange(3), ("a", "c"), ["a", "b"])
    np.testing.assert_array_equal(pred["a"], vols["s2"]["c"])
    np.testing.assert_array_equal(pred["b"], vols["s2"]["a"])
    assert rank_sources({("x", "t"): 0.5, ("y", "t"): 0.5}, ["t", "y", "x"]) == {"t": ["y", "x"], "x": [], "y": []}


def test_copy_of_a_raw_input_model_copies_raw_images_and_may_copy_the_target_itself():
    """A model reading raw images gets the copy of what it sees: identity harmonisation included."""
    from raysys.evaluate.slices import read_subject

    rng = np.random.default_rng(3)
    h = w = 24
    vols, raws, masks = {}, {}, {}
    for i in range(3):
        a = rng.normal(size=(3, h, w)).astype(np.float32)
        c = rng.normal(size=a.shape).astype(np.float32)
        vols[f"s{i}"] = {"a": a, "b": a + 0.3 * rng.normal(size=a.shape).astype(np.float32), "c": c}
        raws[f"s{i}"] = {"a": 0.9 * a + 0.1, "b": rng.normal(size=a.shape).astype(np.float32), "c": 0.5 * c}
        masks[f"s{i}"] = np.ones((3, h, w), bool)
    store = ArrayStore(vols, masks, raw=raws)
    copy = CopyBaseline.fit(store, [0, 1], raw=True)
    assert copy.raw and copy.ranking["a"][0] == "a"      # raw a is a rescaled a: the best copy of a
    assert copy.ranking["c"][0] == "c" and set(copy.ranking["b"]) == {"a", "b", "c"}
    assert copy.source(("a",), "a") == "a"                 # one-input harmonisation has a copy row when raw
    subject = read_subject(store, 2, raw=True)
    pred = copy.predict(subject, np.arange(3), ("a", "c"), ["a", "c"])
    np.testing.assert_array_equal(pred["a"], raws["s2"]["a"])  # the raw image, not the normalised one
    np.testing.assert_array_equal(pred["c"], raws["s2"]["c"])
    normalised = CopyBaseline.fit(store, [0, 1])
    assert not normalised.raw and normalised.source(("a",), "a") is None
    with pytest.raises(ValueError, match="raw images were not read"):
        copy.predict(read_subject(store, 2), np.arange(3), ("a",), ["a"])


def test_cells_and_subject_cells():
    cells = family_cells("mmhvae", ["t1", "t1gd", "t2", "flair"])
    assert len(cells) == 15 * 4 and cells[0].label == "t1" and cells[-1].label == "t1+t1gd+t2+flair"
    dis = family_cells("disentangle", ["t1", "t2"])
    assert [(c.label, c.target) for c in dis] == [("t1", "t1"), ("t1", "t2"), ("t2", "t1"), ("t2", "t2")]
    got = subject_cells(cells, {"t1": True, "t1gd": False, "t2": True, "flair": False})
    assert {(c.label, c.target) for c in got} == {(i, t) for i in ("t1", "t2", "t1+t2") for t in ("t1", "t2")}
    assert evenly_spaced(10, 3).tolist() == [0, 4, 9] and evenly_spaced(5, 0).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="family"):
        family_cells("vae", ["t1"])


def test_overlap_with_training_subjects_is_refused_by_name():
    store = ArrayStore({f"sub-{i}": {"a": np.zeros((2, 4, 4))} for i in range(3)},
                       {f"sub-{i}": np.ones((2, 4, 4), bool) for i in range(3)})
    meta = {"training": {"store_id": "other", "fold": 0, "train_subjects": ["sub-0", "sub-1"], "val_subjects": ["sub-2"]}}
    with pytest.raises(EvaluationError, match="sub-2"):
        check_overlap("m", meta, store, ["sub-2", "sub-9"], "test")
    assert check_overlap("m", meta, store, ["sub-9"], "test") is None
    assert "cannot check" in check_overlap("m", {}, store, ["sub-0"], "test")
    # same store id, fold recorded but no lists: recomputed from the store's split
    same = {"training": {"store_id": "s1", "fold": 0}}
    with pytest.raises(EvaluationError, match="sub-0, sub-1"):
        check_overlap("m", same, store, ["sub-0", "sub-1"], "test")
