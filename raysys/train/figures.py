"""End-of-run figures (matplotlib): a synthesis grid and, where the family offers one, a t-SNE.

Families reach this module only through optional duck-typed hooks, so the train loop stays
model-agnostic:

* ``family.synthesise(batch) -> Tensor [B, M, H, W]`` (or a dict name -> such tensor): every
  modality predicted from the sample's available inputs; else the inference module's own API
  (MMHVAE ``synthesise``; disentanglement ``anatomy``/``modality``/``decode``) is used, and
  the grid shows inputs only when neither exists.
* ``family.embedding_figure(batches) -> dict[str, Figure]``; else for "disentangle" the
  family's ``probes.tsne_figure`` of z (by modality) and f(s) (by subject).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: workers have no display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


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


def _first_available_only(available: torch.Tensor) -> torch.Tensor:
    """[B, M] bool -> the same shape with only each sample's first available modality kept."""
    first = available.float().argmax(dim=1)
    return torch.nn.functional.one_hot(first, available.shape[1]).bool() & available


@torch.no_grad()
def model_outputs(family: Any, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """name -> [B, M, H, W] predictions for the grid, from whatever the family's model offers."""
    hook = getattr(family, "synthesise", None)
    if callable(hook):
        produced = hook(batch)
        return dict(produced) if isinstance(produced, Mapping) else {"synthesis": produced}
    model = family.inference_module()
    images, available = batch["images"], batch["available"].bool()
    single = _first_available_only(available)
    if callable(getattr(model, "synthesise", None)):  # MMHVAE: PoE over any input subset
        return {"from all": model.synthesise(images, available), "from 1st": model.synthesise(images, single)}
    if all(callable(getattr(model, n, None)) for n in ("anatomy", "modality", "decode")):
        # Disentanglement: D(s_source, z_target | target), source = the target itself or the 1st input.
        s, z = model.anatomy(images, available), model.modality(images, available)
        rows = torch.arange(s.shape[0], device=s.device)
        s_first = s[rows, single.float().argmax(dim=1)]
        k = images.shape[2] // 2 if images.dim() == 5 else 0
        centre = lambda x: x[:, k] if x.dim() == 4 else x  # noqa: E731 - decoder gives [N, K, H, W]
        self_recon = [centre(model.decode(s[:, m], z[:, m], m)) for m in range(images.shape[1])]
        cross = [centre(model.decode(s_first, z[:, m], m)) for m in range(images.shape[1])]
        return {"self": torch.stack(self_recon, dim=1), "from 1st": torch.stack(cross, dim=1)}
    return {}


def embedding_figures(family: Any, batches: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, Figure]:
    """t-SNE figures where the family provides them (disentanglement: z by modality, f(s) by subject)."""
    hook = getattr(family, "embedding_figure", None)
    if callable(hook):
        return dict(hook(batches))
    if family.name != "disentangle":
        return {}
    from raysys.models.disentangle.probes import collect_representations, tsne_figure

    reps = collect_representations(family.inference_module(), batches)
    if reps["z"].shape[0] < 3:
        return {}
    names = dict(enumerate(family.modalities))
    return {
        "tsne_z_by_modality": tsne_figure(reps["z"], reps["modality"], "z by modality", names),
        "tsne_fs_by_subject": tsne_figure(reps["fs"], reps["subject"], "f(s) by subject"),
    }


@torch.no_grad()
def family_figures(family: Any, batches: Sequence[Mapping[str, torch.Tensor]], value_range: tuple[float, float]) -> dict[str, Figure]:
    """All figures the family supports for a few validation batches: artifact name -> Figure."""
    batch = batches[0]
    outputs = model_outputs(family, batch)
    figures = {
        "figures/synthesis_grid.png": synthesis_grid(
            centre_slices(batch["images"]), batch["available"], {k: centre_slices(v) for k, v in outputs.items()}, family.modalities, value_range
        )
    }
    for name, fig in embedding_figures(family, batches).items():
        figures[f"figures/{name}.png"] = fig
    return figures
