"""A PNG montage of one subject: every modality, the tissue map and the tumour labels (one axial slice)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LABEL_COLOURS = {1: (0.9, 0.1, 0.1), 2: (0.1, 0.8, 0.2), 4: (1.0, 0.85, 0.0)}  # NCR red, ED green, ET yellow


def write_preview(path: Path, name: str, slices: dict[str, np.ndarray], available: dict[str, bool],
                  labels: np.ndarray, tissue: np.ndarray, site: str) -> None:
    """``slices``: modality -> 2-D axial slice [X, Y]; shown anterior up, subject right on the right (neurological view)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    def show(ax, image, **kwargs):
        ax.imshow(np.rot90(image), **kwargs)
        ax.set_axis_off()

    panels = len(slices) + 2
    fig, axes = plt.subplots(1, panels, figsize=(2.3 * panels, 3.0), dpi=110)
    for ax, (modality, image) in zip(axes, slices.items()):
        hi = np.percentile(image[image > 0], 99.5) if (image > 0).any() else 1.0
        show(ax, image, cmap="gray", vmin=0, vmax=hi, interpolation="nearest")
        ax.set_title(modality + ("" if available.get(modality, False) else " (not in cohort)"), fontsize=9)
    tissue_cmap = ListedColormap([(0, 0, 0), (0.2, 0.4, 0.9), (0.6, 0.6, 0.6), (0.95, 0.95, 0.95)])
    show(axes[-2], tissue, cmap=tissue_cmap, vmin=-0.5, vmax=3.5, interpolation="nearest")
    axes[-2].set_title("tissue (CSF/GM/WM)", fontsize=9)
    base = slices.get("flair", next(iter(slices.values())))
    show(axes[-1], base, cmap="gray", vmin=0, vmax=np.percentile(base[base > 0], 99.5) if (base > 0).any() else 1)
    overlay = np.zeros((*labels.shape, 4))
    for label, colour in LABEL_COLOURS.items():
        overlay[labels == label] = (*colour, 0.55)
    show(axes[-1], overlay, interpolation="nearest")
    axes[-1].set_title("labels: NCR / ED / ET", fontsize=9)
    where = "axial slice through the tumour" if labels.any() else "axial slice (no tumour in this subject)"
    fig.suptitle(f"{name} ({site}), {where}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
