"""MMHVAE size for both presets: parameters and GMACs per slice with all 4 inputs (one JSON object).

Reference (released code, analytic, 192x192, L = 7): 13.77 M parameters, 12.65 GMACs.
Usage: python bench/mmhvae_size.py
"""

from __future__ import annotations

import json
import platform
import time

import torch

from raysys.models import DEFAULT_MODALITIES, make_config
from raysys.models.mmhvae.size import model_size

REFERENCE = {"params_generator": 13.77e6, "gmacs_per_slice_all_inputs": 12.65}


def main() -> None:
    torch.set_num_threads(1)
    out: dict[str, object] = {"machine": platform.platform(), "torch": torch.__version__, "modalities": list(DEFAULT_MODALITIES)}
    for preset in ("tiny", "paper"):
        start = time.perf_counter()
        size = model_size(make_config("mmhvae", preset), DEFAULT_MODALITIES)
        size["measure_seconds"] = round(time.perf_counter() - start, 2)
        out[preset] = size
    paper = out["paper"]
    out["paper_vs_reference"] = {
        "params_ratio": round(paper["params_generator"] / REFERENCE["params_generator"], 4),
        "gmacs_ratio": round(paper["gmacs_per_slice_all_inputs"] / REFERENCE["gmacs_per_slice_all_inputs"], 4),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
