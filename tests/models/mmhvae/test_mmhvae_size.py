"""Paper preset: within 10 % of the reference's 13.77 M parameters and 15 % of its 12.65 GMACs
per 192x192 slice with all 4 inputs; the latent ladder of Sec. 4.2."""

from __future__ import annotations

import torch

from raysys.models import build_model, make_config
from raysys.models.mmhvae.size import model_size

torch.set_num_threads(1)
MODALITIES = ["t1", "t1gd", "t2", "flair"]


def test_paper_preset_size_matches_the_reference():
    model = build_model("mmhvae", preset="paper", modalities=MODALITIES)
    params = sum(p.numel() for p in model.parameters())
    assert abs(params / 13.77e6 - 1) < 0.10, params
    size = model_size(make_config("mmhvae", "paper"), MODALITIES)
    assert size["params_generator"] == params
    assert abs(size["gmacs_per_slice_all_inputs"] / 12.65 - 1) < 0.15, size


def test_paper_preset_latent_ladder():
    model = build_model("mmhvae", preset="paper", modalities=MODALITIES)
    x = torch.zeros(1, 4, 192, 192)
    available = torch.ones(1, 4, dtype=torch.bool)
    with torch.no_grad():
        _, result = model.decode(model.evidence(model.encode(x), available), None, temperature=0.0)
    shapes = {g: tuple(z.shape[1:]) for g, z in result.latents.items()}
    assert shapes == {
        7: (256,), 6: (64, 6, 6), 5: (64, 12, 12), 4: (64, 24, 24), 3: (32, 48, 48), 2: (16, 96, 96), 1: (8, 192, 192),
    }
