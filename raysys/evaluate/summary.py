"""``summary.json``: model vs baselines per target, and ``format_summary`` (a plain-text table).

Per target and method (means over subjects of the per-subject means):

* ``synthesis``: families that synthesise from subsets (mmhvae, mmgan): each subject's cell "all of the subject's other available modalities
  -> target" (for a subject with every modality: all other modalities); disentangle:
  cross-synthesis averaged over the subject's available sources (one value per subject first).
* ``self``: self-reconstruction (inputs = the target alone).

``beats_baselines[target]`` = {"synthesis": model SSIM > every baseline's, "self": likewise}
(a kind without rows is absent), and the top-level ``beats_baselines`` is True when the model
beats every baseline in synthesis for every target that has synthesis rows.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from raysys.evaluate.baselines import BASELINES
from raysys.registry.inference import synthesises_from_subsets

KINDS = ("synthesis", "self")


def _kind_rows(rows: Sequence[Mapping[str, Any]], family: str, modalities: Sequence[str], available: Mapping[str, set[str]],
               kind: str, target: str) -> list[Mapping[str, Any]]:
    if kind == "self":
        return [r for r in rows if r["target"] == target and r["inputs"] == target]
    if synthesises_from_subsets(family):
        wanted = {s: "+".join(m for m in modalities if m in have and m != target) for s, have in available.items()}
        return [r for r in rows if r["target"] == target and r["inputs"] == wanted.get(r["subject"]) and r["inputs"]]
    return [r for r in rows if r["target"] == target and r["inputs"] != target]


def method_means(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """``{method: {"ssim", "psnr", "n"}}``: per-subject average first, then the mean over subjects."""
    per: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for r in rows:
        per.setdefault(r["method"], {}).setdefault(r["subject"], []).append((float(r["psnr"]), float(r["ssim"])))
    out = {}
    for method, subjects in per.items():
        values = np.array([np.mean(v, axis=0) for v in subjects.values()])  # [n_subjects, 2]
        out[method] = {"ssim": float(values[:, 1].mean()), "psnr": float(values[:, 0].mean()), "n": int(len(values))}
    return out


def build_summary(rows: Sequence[Mapping[str, Any]], family: str, modalities: Sequence[str],
                  available: Mapping[str, set[str]], model: str = "model", **extra: Any) -> dict[str, Any]:
    """The summary dict (module docstring) from per-subject rows; ``extra`` keys are added as-is."""
    targets: dict[str, Any] = {}
    for target in modalities:
        entry: dict[str, Any] = {"beats_baselines": {}}
        for kind in KINDS:
            means = method_means(_kind_rows(rows, family, modalities, available, kind, target))
            if model not in means:
                continue
            entry[kind] = means
            baselines = [means[b]["ssim"] for b in BASELINES if b in means]
            entry["beats_baselines"][kind] = bool(all(means[model]["ssim"] > b for b in baselines))
        if len(entry) > 1:
            targets[target] = entry
    synthesis = [t for t in targets.values() if "synthesis" in t]
    summary = {
        **extra,
        "family": family,
        "targets": targets,
        "beats_baselines": bool(synthesis) and all(t["beats_baselines"]["synthesis"] for t in synthesis),
        "ssim_synthesis_mean": float(np.mean([t["synthesis"][model]["ssim"] for t in synthesis])) if synthesis else None,
        "psnr_synthesis_mean": float(np.mean([t["synthesis"][model]["psnr"] for t in synthesis])) if synthesis else None,
    }
    return summary


def format_summary(summary: Mapping[str, Any], model: str = "model") -> str:
    """A short plain-text "model vs baselines per target" table (SSIM, PSNR in dB in brackets)."""
    methods = [model] + [m for m in BASELINES]
    head = f"{'target':<8} {'kind':<10}" + "".join(f" {m:>22}" for m in methods) + "  beats"
    lines = [f"{summary.get('model_uri', model)} on {summary.get('split', '?')} (fold {summary.get('fold', '?')}, "
             f"{summary.get('n_subjects', '?')} subjects): SSIM (PSNR dB)", head, "-" * len(head)]
    for target, entry in summary["targets"].items():
        for kind in KINDS:
            if kind not in entry:
                continue
            cells = []
            for m in methods:
                v = entry[kind].get(m)
                cells.append(f" {v['ssim']:>12.3f} ({v['psnr']:5.1f})" if v else f" {'-':>22}")
            beats = "yes" if entry["beats_baselines"].get(kind) else "no"
            lines.append(f"{target:<8} {kind:<10}" + "".join(cells) + f"  {beats}")
    lines.append(f"beats baselines (synthesis, every target): {'yes' if summary.get('beats_baselines') else 'no'}"
                 f"; cells left out: {summary.get('left_out', 0)}")
    if summary.get("disentanglement"):
        lines.append("disentanglement: " + ", ".join(f"{k}={v:.3f}" for k, v in summary["disentanglement"].get(model, {}).items()))
    return "\n".join(lines)
