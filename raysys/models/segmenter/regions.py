"""BraTS labels, the network's classes, the evaluated regions and their Dice.

Labels (store ``labels``, BraTS): 0 background, 1 NCR (necrotic / non-enhancing core), 2 ED
(oedema), 4 ET (enhancing tumour). The network predicts 4 classes, class c = ``LABELS[c]``.
Regions: the paper's classes NCR, ED, ET, and the BraTS regions WT = 1|2|4, TC = 1|4.
``mean`` = the mean Dice of NCR, ED and ET (the cell of Ouyang et al.'s Table 2).

Dice of a region on one sample (a slice, or a subject's volume): MONAI's ``DiceMetric`` with
``ignore_empty=False``, then NaN where the region is absent from BOTH prediction and truth.
Why not MONAI's ``ignore_empty=True``: it gives NaN whenever the truth is empty, so false
positives on tumour-free slices would never count. Why not plain ``ignore_empty=False``: it
gives 1 to every slice where both are empty, and tumour-free slices (most of them) would
inflate the mean. With this rule a tumour-free sample counts only when the model predicts the
region there (Dice 0), and undefined samples are left out of means (``n`` counts the rest).
"""

from __future__ import annotations

import torch

LABELS = (0, 1, 2, 4)  # class index -> BraTS label
CLASSES = ("NCR", "ED", "ET")  # the paper's classes (labels 1, 2, 4)
REGIONS: dict[str, tuple[int, ...]] = {"NCR": (1,), "ED": (2,), "ET": (4,), "WT": (1, 2, 4), "TC": (1, 4)}
MEAN = "mean"
REGION_NAMES = (*REGIONS, MEAN)


def labels_to_classes(labels: torch.Tensor) -> torch.Tensor:
    """BraTS labels {0, 1, 2, 4} -> class indices {0, 1, 2, 3}; any other label raises."""
    table = torch.full((max(LABELS) + 1,), -1, dtype=torch.long, device=labels.device)
    table[list(LABELS)] = torch.arange(len(LABELS), device=labels.device)
    labels = labels.long()
    if labels.numel() and (labels.min() < 0 or labels.max() > max(LABELS)):
        raise ValueError(f"labels must be BraTS ids {list(LABELS)}, got values in [{int(labels.min())}, {int(labels.max())}]")
    classes = table[labels]
    if labels.numel() and bool((classes < 0).any()):
        raise ValueError(f"labels must be BraTS ids {list(LABELS)}, got {sorted(set(labels.unique().tolist()) - set(LABELS))}")
    return classes


def classes_to_labels(classes: torch.Tensor) -> torch.Tensor:
    """Class indices {0, 1, 2, 3} -> BraTS labels {0, 1, 2, 4} (int64)."""
    return torch.tensor(LABELS, dtype=torch.long, device=classes.device)[classes.long()]


def region_masks(labels: torch.Tensor) -> torch.Tensor:
    """Labels [B, *spatial] -> bool [B, 5, *spatial], one channel per region of ``REGIONS``."""
    return torch.stack([torch.isin(labels, torch.tensor(ids, device=labels.device)) for ids in REGIONS.values()], dim=1)


def region_dice(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Dice per sample and region: labels [B, *spatial] (2-D slices or 3-D volumes) -> [B, 5]
    in ``REGIONS`` order, NaN where the region is in neither (module docstring)."""
    from monai.metrics import DiceMetric

    if pred.shape != truth.shape:
        raise ValueError(f"region_dice: pred {tuple(pred.shape)} and truth {tuple(truth.shape)} must match")
    p, t = region_masks(pred), region_masks(truth)
    metric = DiceMetric(include_background=True, reduction="none", ignore_empty=False)
    dice = metric(y_pred=p.float(), y=t.float()).float()
    both_empty = ~(p.flatten(2).any(-1) | t.flatten(2).any(-1))
    return torch.where(both_empty, torch.full_like(dice, float("nan")), dice)


def class_mean(dice: torch.Tensor) -> torch.Tensor:
    """[B, 5] region Dice -> [B] mean over NCR, ED, ET where defined (NaN if none is)."""
    return dice[:, [list(REGIONS).index(c) for c in CLASSES]].nanmean(dim=1)
