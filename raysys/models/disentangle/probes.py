"""Disentanglement measured, not eyeballed: linear probe, silhouettes, t-SNE figures.

Inputs are plain arrays of representations collected from a trained model
(``collect_representations``): f(s) should carry no modality (probe accuracy ~ 1/M) and
cluster by subject; z should cluster by modality. scikit-learn and matplotlib are imported
lazily so importing the model stays cheap.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import torch

from raysys.models.disentangle.losses import pooled_anatomy


@torch.no_grad()
def collect_representations(model, batches: Iterable[Mapping[str, torch.Tensor]], sim_pool: int | None = None,
                            max_samples: int | None = None) -> dict[str, np.ndarray]:
    """f(s) and z of every available image in ``batches``.

    Returns arrays over the N available images: ``fs`` [N, Ds], ``z`` [N, Dz], ``modality`` [N],
    ``subject`` [N] (and ``slice`` [N] when batches carry it).
    """
    pool = sim_pool or model.config.sim_pool
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: dict[str, list[np.ndarray]] = {"fs": [], "z": [], "modality": [], "subject": [], "slice": []}
    count = 0
    try:
        for batch in batches:
            images, available = batch["images"].to(device), batch["available"].to(device).bool()
            s, z = model.anatomy(images, available), model.modality(images, available)
            fs = pooled_anatomy(s, pool)
            rb, ri = available.nonzero(as_tuple=True)
            out["fs"].append(fs[rb, ri].float().cpu().numpy())
            out["z"].append(z[rb, ri].float().cpu().numpy())
            out["modality"].append(ri.cpu().numpy())
            out["subject"].append(batch["subject"].to(device)[rb].cpu().numpy())
            if "slice" in batch:
                out["slice"].append(batch["slice"].to(device)[rb].cpu().numpy())
            count += int(rb.shape[0])
            if max_samples is not None and count >= max_samples:
                break
    finally:
        model.train(was_training)
    result = {k: np.concatenate(v) for k, v in out.items() if v}
    if max_samples is not None:
        result = {k: v[:max_samples] for k, v in result.items()}
    return result


def linear_probe_accuracy(features: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None,
                          folds: int = 5, seed: int = 0) -> float:
    """Cross-validated accuracy of a logistic-regression probe predicting ``labels`` from ``features``.

    With ``groups`` (e.g. subject ids) the folds never split a group, so the probe cannot
    recognise a subject it has seen. Chance is 1 / n_classes for label-free features.
    Args: features [N, D], labels [N], groups [N] or None.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels)
    if features.ndim != 2 or labels.shape != features.shape[:1]:
        raise ValueError(f"linear_probe_accuracy: features {features.shape} must be [N, D], labels {labels.shape} [N]")
    if np.unique(labels).size < 2:
        raise ValueError("linear_probe_accuracy: labels need at least 2 classes")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    if groups is not None:
        groups = np.asarray(groups)
        n_splits = min(folds, np.unique(groups).size)
        if n_splits < 2:
            raise ValueError("linear_probe_accuracy: groups need at least 2 distinct values")
        cv = GroupKFold(n_splits=n_splits)
        scores = cross_val_score(probe, features, labels, groups=groups, cv=cv)
    else:
        n_splits = min(folds, int(np.bincount(np.unique(labels, return_inverse=True)[1]).min()))
        if n_splits < 2:
            raise ValueError("linear_probe_accuracy: every class needs at least 2 samples")
        cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        scores = cross_val_score(probe, features, labels, cv=cv)
    return float(np.mean(scores))


def silhouette(features: np.ndarray, labels: np.ndarray, metric: str = "cosine") -> float:
    """Silhouette score of ``features`` [N, D] clustered by ``labels`` [N] (in [-1, 1]; higher =
    tighter, better separated clusters). Cosine by default, the geometry of eq. (2)."""
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels)
    if not 2 <= np.unique(labels).size < labels.shape[0]:
        raise ValueError("silhouette: labels need between 2 and N - 1 distinct values")
    return float(silhouette_score(np.asarray(features, dtype=np.float64), labels, metric=metric))


def disentanglement_metrics(representations: Mapping[str, np.ndarray], seed: int = 0) -> dict[str, float]:
    """The three numbers of the README from ``collect_representations`` output.

    ``probe_modality_from_fs``: probe accuracy of modality from f(s), folds grouped by subject
    (chance 1/M = no leakage); ``silhouette_z_by_modality`` (high = z encodes the modality);
    ``silhouette_fs_by_subject`` (high = f(s) encodes the subject).
    """
    fs, z = representations["fs"], representations["z"]
    modality, subject = representations["modality"], representations["subject"]
    groups = subject if np.unique(subject).size >= 2 else None
    return {
        "probe_modality_from_fs": linear_probe_accuracy(fs, modality, groups=groups, seed=seed),
        "silhouette_z_by_modality": silhouette(z, modality),
        "silhouette_fs_by_subject": silhouette(fs, subject),
    }


def tsne_figure(features: np.ndarray, labels: np.ndarray, title: str = "", label_names: Mapping[int, str] | None = None,
                perplexity: float = 30.0, seed: int = 0):
    """A matplotlib Figure of the 2-D t-SNE of ``features`` [N, D], coloured by ``labels`` [N]
    (the paper's Fig. 3: z by modality, f(s) by subject). Perplexity is capped below N."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display backend needed
    from sklearn.manifold import TSNE

    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels)
    if features.ndim != 2 or labels.shape != features.shape[:1] or features.shape[0] < 3:
        raise ValueError(f"tsne_figure: features {features.shape} must be [N >= 3, D] and labels {labels.shape} [N]")
    embedding = TSNE(n_components=2, perplexity=min(perplexity, (features.shape[0] - 1) / 3), init="pca",
                     random_state=seed).fit_transform(features)
    figure = Figure(figsize=(4.5, 4.0))
    axes = figure.add_subplot()
    for value in np.unique(labels):
        chosen = labels == value
        name = label_names.get(int(value), str(value)) if label_names else str(value)
        axes.scatter(embedding[chosen, 0], embedding[chosen, 1], s=10, label=name)
    axes.set_title(title)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.legend(fontsize="small", markerscale=1.5, frameon=False)
    figure.tight_layout()
    return figure
