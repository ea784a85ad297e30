"""End-of-run figures (matplotlib): the generic synthesis grid plus the family's own figures.

The loop stays model-agnostic: predictions come from ``ModelFamily.synthesis(batch)`` (named
[B, M, H, W] outputs; none = the grid shows the inputs only) and extra figures from
``ModelFamily.figures(batches, value_range)`` (e.g. the disentanglement model's t-SNE plots).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: workers have no display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from raysys.models.family import ModelFamily  # noqa: E402


def synthesis_grid(
    inputs: torch.Tensor,
    available: torch.Tensor,
    outputs: Mapping[str, torch.Tensor],
    modalities: Sequence[str],
    value_range: tuple[float, float],
    max_samples: int = 4,
) -> Figure:
    """Rows: per sample, the inputs then each output set; columns: modalities.

    Args:
        inputs: [B, M, H, W] centre slices. available: [B, M] bool (missing inputs are greyed).
        outputs: name -> [B, M, H, W] predicted images. value_range: (low, high) of the data; the
        grey scale spans the inputs' 1st..99th percentile within it.
    """
    n = min(max_samples, inputs.shape[0])
    rows = [("input", inputs)] + list(outputs.items())
    fig, axes = plt.subplots(n * len(rows), len(modalities), figsize=(1.6 * len(modalities), 1.6 * n * len(rows)), squeeze=False)
    # Display window: the inputs' 1st..99th percentile (z-scored data fills little of value_range).
    shown = inputs[:n][available[:n].bool()].float()
    lo, hi = value_range
    if shown.numel() > 0:
        q = torch.quantile(shown.flatten()[:1_000_000].cpu(), torch.tensor([0.01, 0.99]))
        lo, hi = max(lo, float(q[0])), min(hi, float(q[1]))
        hi = hi if hi > lo else lo + 1.0
    for b in range(n):
        for r, (name, images) in enumerate(rows):
            for m, modality in enumerate(modalities):
                ax = axes[b * len(rows) + r][m]
                image = images[b, m].detach().float().cpu().numpy()
                ax.imshow(image, cmap="gray", vmin=lo, vmax=hi)
                if name == "input" and not bool(available[b, m]):
                    ax.imshow(image * 0, cmap="Reds", alpha=0.3)
                ax.set_xticks([])
                ax.set_yticks([])
                if b == 0 and r == 0:
                    ax.set_title(modality, fontsize=8)
                if m == 0:
                    ax.set_ylabel(f"{b}:{name}", fontsize=7)
    fig.tight_layout()
    return fig


def centre_slices(images: torch.Tensor) -> torch.Tensor:
    """[B, M, K, H, W] -> [B, M, H, W] (the middle of the K context slices)."""
    return images[:, :, images.shape[2] // 2] if images.dim() == 5 else images


@torch.no_grad()
def family_figures(family: ModelFamily, batches: Sequence[Mapping[str, torch.Tensor]], value_range: tuple[float, float]) -> dict[str, Figure]:
    """All figures the family supports for a few validation batches: artifact name -> Figure."""
    batch = batches[0]
    outputs = family.synthesis(batch)
    figures = {
        "figures/synthesis_grid.png": synthesis_grid(
            centre_slices(batch["images"]), batch["available"], {k: centre_slices(v) for k, v in outputs.items()}, family.modalities, value_range
        )
    }
    for name, fig in family.figures(batches, value_range).items():
        figures[f"figures/{name}.png"] = fig
    return figures
