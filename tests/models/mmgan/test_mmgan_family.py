"""MMGANFamily: implicit conditioning (checked through gradients), the curriculum as training goes on,
the discriminator's labels, the metrics (mmhvae's names) and what the loop asks."""

from __future__ import annotations

import math

import pytest
import torch

from raysys.models import build_family
from raysys.models.family import StepContext
from raysys.models.mmgan.losses import lsgan_discriminator_loss
from raysys.models.mmgan.scenarios import sample_inputs

torch.set_num_threads(1)
MODALITIES = ("t1", "t1gd", "t2", "flair")


def make_batch(batch: int = 4, seed: int = 0, available: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    mask = ((xx**2 + yy**2) < 0.7).expand(batch, 64, 64).clone()
    images = torch.rand(batch, 4, 1, 64, 64, generator=gen) * 0.2 + torch.tensor([0.2, 0.4, 0.6, 0.8])[None, :, None, None, None]
    if available is None:
        available = torch.ones(batch, 4, dtype=torch.bool)
    images = images * mask[:, None, None] * available[:, :, None, None, None]
    return {"images": images, "available": available, "mask": mask}


def family(**overrides):
    fam = build_family("mmgan", "tiny", MODALITIES, overrides)
    fam.configure_optimizers(total_epochs=10, steps_per_epoch=4)
    return fam


def context(epoch: int = 0, total: int = 10) -> StepContext:
    return StepContext(epoch=epoch, total_epochs=total, global_step=0, device=torch.device("cpu"))


def loss_gradient(fam, inputs: torch.Tensor, available: torch.Tensor) -> torch.Tensor:
    """d L_G / d(generator output), [B, M, H, W]."""
    torch.manual_seed(0)
    model = fam.inference_module()
    real = model.to_model_space(make_batch(len(available), available=available)["images"][:, :, 0])
    imputed = model.impute(real, inputs)
    fake = model(imputed).detach().requires_grad_(True)
    total, _ = fam.generator_loss(fake, real, imputed, inputs, available)
    total.backward()
    return fake.grad


def test_implicit_conditioning_scores_only_the_synthesised_outputs():
    available = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 1], [1, 0, 1, 0]], dtype=torch.bool)  # 2nd lacks t2, 3rd t1gd+flair
    inputs = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    targets = available & ~inputs
    grad = loss_gradient(family(), inputs, available).abs().amax(dim=(-2, -1))  # [B, M]
    assert (grad[~targets] == 0).all(), grad  # outputs for the inputs and for absent modalities: no influence
    assert (grad[targets] > 0).all(), grad
    adversarial = loss_gradient(family(lambda_l1=0.0), inputs, available).abs().amax(dim=(-2, -1))  # L_adv alone
    assert (adversarial[~targets] == 0).all() and (adversarial[targets] > 0).all(), adversarial
    # without IC the loss also reconstructs the inputs (so the check above can fail)
    plain = loss_gradient(family(implicit_conditioning=False), inputs, available).abs().amax(dim=(-2, -1))
    assert (plain[inputs] > 0).all() and (plain[~available] == 0).all()


def test_discriminator_labels_put_back_reals_as_real():
    inputs = torch.tensor([[1, 0, 1, 0]], dtype=torch.bool)
    targets = torch.tensor([[0, 1, 0, 0]], dtype=torch.bool)  # flair absent: not scored
    real = torch.ones(1, 4, 2, 2)
    fake = inputs[:, :, None, None].float().expand(1, 4, 2, 2).clone()  # 1 on inputs, 0 on the synthesised t1gd
    fake[:, 3] = 5.0  # an absent modality's score is ignored
    assert lsgan_discriminator_loss(real, fake, inputs, targets).item() == 0.0
    fake[:, 1] = 1.0  # the synthesised output judged real costs (1 - 0)^2 on 1 of 3 present maps
    assert lsgan_discriminator_loss(real, fake, inputs, targets).item() == pytest.approx(0.5 / 3)


def test_curriculum_shifts_the_scenarios_towards_more_missing_modalities():
    fam = family()
    available = torch.ones(2000, 4, dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)
    missing = {}
    for epoch in (0, 2, 4, 9):
        inputs = sample_inputs(available, fam.open_scenarios(context(epoch).progress), gen)
        missing[epoch] = (~inputs).sum(1).float()
    assert (missing[0] == 1).all()  # start: one modality missing only
    means = [missing[e].mean().item() for e in (0, 2, 4, 9)]
    assert means == sorted(means) and means[0] < means[1] < means[2]
    assert (missing[9] == 3).any() and means[-1] == pytest.approx(2.0, abs=0.1)  # all 14 scenarios uniformly
    no_curriculum = family(curriculum=False)
    assert no_curriculum.open_scenarios(0.0) == 14


def test_train_step_updates_both_networks_and_logs_finite_losses():
    torch.manual_seed(0)
    fam = family()
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in fam.modules.items()}
    grads = {}

    class RecordingContext(StepContext):
        def optimise(self, optimizer, loss, parameters):
            params = list(parameters)
            super().optimise(optimizer, loss, params)
            grads[optimizer is fam.optimizers["generator"]] = [p.grad for p in params]

    available = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    logs = fam.train_step(make_batch(available=available), RecordingContext(epoch=0, total_epochs=10, global_step=0, device=torch.device("cpu")))
    assert all(math.isfinite(v) for v in logs.values()) and logs["loss/adv"] > 0 and logs["loss/disc"] > 0
    assert logs["loss/total"] == pytest.approx(0.9 * logs["loss/l1"] + 0.1 * logs["loss/adv"], rel=1e-5)
    assert all(g is not None and torch.isfinite(g).all() for g in grads[True]), "a generator parameter got no gradient"
    for name, module in fam.modules.items():
        assert not all(torch.equal(a, b) for a, b in zip(before[name], module.parameters())), name
    # lambda = 1: no adversarial term, the discriminator is left alone
    l1_only = family(lambda_l1=1.0)
    disc = [p.detach().clone() for p in l1_only.modules["discriminator"].parameters()]
    logs = l1_only.train_step(make_batch(), context())
    assert logs["loss/adv"] == 0.0 and logs["loss/disc"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(disc, l1_only.modules["discriminator"].parameters()))


def test_metrics_have_mmhvae_names_and_nan_where_undefined():
    mmhvae = build_family("mmhvae", "tiny", MODALITIES)
    fam = family()
    assert fam.metric_names == mmhvae.metric_names and fam.objective == mmhvae.objective == "psnr_mean"
    fam.train(False)
    available = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 1]], dtype=torch.bool)
    metrics = fam.eval_step(make_batch(2, available=available))
    assert set(metrics) == set(fam.metric_names)
    assert all(v.shape == (2,) for v in metrics.values())
    assert metrics["psnr_harmonisation"].isnan().all() and metrics["psnr/t1-t2_to_t2"].isnan().all()  # inputs returned as given
    assert torch.isfinite(metrics["psnr/t1-t1gd_to_flair"]).all() and torch.isfinite(metrics["psnr_synthesis"]).all()
    assert metrics["psnr/t1_to_t2"][1].isnan() and metrics["psnr/t2_to_t1"][1].isnan()  # sample 2 lacks t2
    assert torch.allclose(metrics["psnr_mean"], metrics["psnr_synthesis"])


def test_what_the_loop_asks():
    fam = family(curriculum=False, lambda_l1=0.8)
    assert fam.context_slices == 1
    assert fam.run_tags() == {"implicit_conditioning": "True", "curriculum": "False", "lambda_l1": "0.8"}
    fam.train(False)
    batch = make_batch(3, available=torch.tensor([[1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 1, 0]], dtype=torch.bool))
    outputs = fam.synthesis(batch)
    assert set(outputs) == {"from all", "from 1st"}
    assert all(v.shape == (3, 4, 64, 64) and torch.isfinite(v).all() for v in outputs.values())
    assert torch.equal(outputs["from all"][2, 2], batch["images"][2, 2, 0])  # the one input, as given
    assert type(fam).config_for_store(fam.config, (-5, 5)).data_range == (-5.0, 5.0)
