"""Disentanglement probes: linear-probe accuracy, silhouettes and the t-SNE figure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raysys.models import build_family
from raysys.models.disentangle.probes import (
    collect_representations,
    disentanglement_metrics,
    linear_probe_accuracy,
    silhouette,
    tsne_figure,
)


def test_probe_is_at_chance_on_noise_and_high_on_separable_data():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 60)
    noise = rng.normal(size=(240, 8))
    chance = linear_probe_accuracy(noise, labels)
    assert abs(chance - 0.25) < 0.12
    separable = noise + 4.0 * np.eye(4)[labels] @ rng.normal(size=(4, 8))
    assert linear_probe_accuracy(separable, labels) > 0.95
    groups = np.tile(np.arange(12), 20)  # folds split by "subject"
    assert linear_probe_accuracy(separable, labels, groups=groups) > 0.95
    with pytest.raises(ValueError, match="features"):
        linear_probe_accuracy(noise[:, 0], labels)


def test_silhouette_orders_clustered_above_random():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 30)
    centres = rng.normal(size=(3, 5)) * 5
    clustered = centres[labels] + rng.normal(size=(90, 5)) * 0.3
    assert silhouette(clustered, labels) > 0.5
    assert abs(silhouette(rng.normal(size=(90, 5)), labels)) < 0.1
    with pytest.raises(ValueError, match="labels"):
        silhouette(clustered, np.zeros(90))


def test_tsne_figure_returns_a_figure():
    from matplotlib.figure import Figure

    rng = np.random.default_rng(2)
    figure = tsne_figure(rng.normal(size=(40, 6)), np.repeat(np.arange(4), 10), title="z by modality",
                         label_names={0: "t1", 1: "t1gd", 2: "t2", 3: "flair"})
    assert isinstance(figure, Figure)
    texts = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert texts == ["t1", "t1gd", "t2", "flair"] and figure.axes[0].get_title() == "z by modality"


def test_collect_representations_and_metrics_from_a_model():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = build_family("disentangle", "tiny").inference_module()
    batches = []
    for b in range(3):
        available = torch.ones(4, 4, dtype=torch.bool)
        available[b, 2] = False
        batches.append({"images": torch.randn(4, 4, 3, 64, 64), "available": available,
                        "subject": torch.arange(4) + 4 * b})
    reps = collect_representations(model, batches)
    assert reps["fs"].shape == (45, 4 * 4 * 4) and reps["z"].shape == (45, 16)
    assert reps["modality"].shape == (45,) and set(reps["modality"]) == {0, 1, 2, 3}
    assert model.training  # mode restored
    metrics = disentanglement_metrics(reps)
    assert set(metrics) == {"probe_modality_from_fs", "silhouette_z_by_modality", "silhouette_fs_by_subject"}
    assert all(np.isfinite(v) for v in metrics.values())
