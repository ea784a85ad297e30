"""MMHVAEFamily: DDP-safe gradients, GAN schedule, memory of real images, subsets, metrics."""

from __future__ import annotations

import math

import pytest
import torch

from raysys.models import build_family
from raysys.models.family import StepContext
from raysys.models.mmhvae.subsets import sample_subsets, subset_probabilities

torch.set_num_threads(1)
MODALITIES = ("t1", "t1gd", "t2", "flair")


def make_batch(batch: int = 4, seed: int = 0, available: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    mask = ((xx**2 + yy**2) < 0.7).expand(batch, 64, 64).clone()
    images = torch.rand(batch, 4, 3, 64, 64, generator=gen) * 0.2 + torch.tensor([0.2, 0.4, 0.6, 0.8])[None, :, None, None, None]
    images = images * mask[:, None, None]
    if available is None:
        available = torch.ones(batch, 4, dtype=torch.bool)
    images = images * available[:, :, None, None, None]  # missing modalities are zeros (contract)
    return {"images": images, "available": available, "mask": mask}


def context(epoch: int, total: int = 10, step: int = 0) -> StepContext:
    return StepContext(epoch=epoch, total_epochs=total, global_step=step, device=torch.device("cpu"))


def family(**overrides):
    fam = build_family("mmhvae", "tiny", MODALITIES, overrides)
    fam.configure_optimizers(total_epochs=10, steps_per_epoch=4)
    return fam


@pytest.mark.parametrize(("fusion", "levels"), [("poe", 6), ("average", 6), ("concat_zeros", 6), ("poe", 1), ("poe", 3)])
def test_every_generator_parameter_gets_a_gradient_with_missing_modalities(fusion, levels):
    torch.manual_seed(0)
    fam = family(fusion=fusion, levels=levels, gan_start_fraction=0.0, disc_start_fraction=0.0)
    assert fam.find_unused_parameters is False
    available = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 1, 0]], dtype=torch.bool)  # flair never
    grads: dict[str, torch.Tensor | None] = {}

    class RecordingContext(StepContext):
        def optimise(self, optimizer, loss, parameters):
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if optimizer is fam.optimizers["model"]:
                grads.update({n: p.grad for n, p in fam.modules["model"].named_parameters()})
            optimizer.step()

    ctx = RecordingContext(epoch=5, total_epochs=10, global_step=0, device=torch.device("cpu"))
    logs = fam.train_step(make_batch(4, available=available), ctx)
    missing = [name for name, g in grads.items() if g is None]
    assert not missing, f"parameters without gradient: {missing}"
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert math.isfinite(logs["loss/total"]) and logs["loss/gan"] > 0 and logs["loss/disc"] > 0


def test_gan_term_is_exactly_zero_before_its_start_and_discriminators_start_earlier():
    torch.manual_seed(0)
    fam = family(gan_start_epoch=6, disc_start_epoch=4)
    disc_before = [p.detach().clone() for p in fam.modules["discriminators"].parameters()]
    logs = fam.train_step(make_batch(), context(epoch=3))
    assert logs["loss/gan"] == 0.0 and logs["weight/lambda_gan"] == 0.0 and logs["loss/disc"] == 0.0
    assert logs["loss/total"] == pytest.approx(logs["loss/recon"] + logs["weight/lambda_kl"] * logs["loss/kl"], rel=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(disc_before, fam.modules["discriminators"].parameters()))
    logs = fam.train_step(make_batch(), context(epoch=4))  # discriminators train, generator not yet adversarial
    assert logs["loss/gan"] == 0.0 and logs["weight/lambda_gan"] == 0.0 and logs["loss/disc"] > 0
    assert not all(torch.equal(a, b) for a, b in zip(disc_before, fam.modules["discriminators"].parameters()))
    logs = fam.train_step(make_batch(), context(epoch=6))
    assert logs["loss/gan"] > 0 and logs["weight/lambda_gan"] == fam.config.lambda_gan
    # fraction form: paper default 0.8 of the epochs
    paper_like = family()
    assert not paper_like.gan_active(context(epoch=7, total=10)) and paper_like.gan_active(context(epoch=8, total=10))
    assert family(lambda_gan=0.0).gan_active(context(epoch=9)) is False


def test_memory_feeds_the_discriminator_of_a_modality_missing_from_the_batch():
    torch.manual_seed(0)
    fam = family(gan_start_epoch=0, disc_start_epoch=0)
    seen = []
    fam.modules["discriminators"].register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    full = make_batch(4, seed=1)
    fam.train_step(full, context(epoch=0))
    remembered = fam.memory.buffers[3, : fam.memory.filled[3]]
    assert fam.memory.filled[3] == 4
    no_flair = make_batch(4, seed=2, available=torch.tensor([[1, 1, 1, 0]] * 4, dtype=torch.bool))
    seen.clear()
    fam.train_step(no_flair, context(epoch=0))
    discriminator_step = seen[-1]  # the generator's scoring call comes first, then cat([real, fake])
    assert discriminator_step.shape[0] == 8
    real_flair = discriminator_step[:4, 3]
    for image in real_flair:
        assert any(torch.equal(image, r) for r in remembered)
    assert (real_flair.amax(dim=(1, 2)) > -1).all()  # real brains, not the zero-filled input


def test_empty_memory_gives_no_real_example():
    fam = family()
    images = torch.zeros(2, 4, 8, 8)
    available = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0]], dtype=torch.bool)
    _, valid = fam.memory.fill_missing(images, available)
    assert valid[:, :3].all() and not valid[:, 3].any()


def test_subset_probabilities_uniform_and_paper():
    available = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 1, 0]], dtype=torch.bool)
    subsets, uniform = subset_probabilities(available, "uniform")
    assert subsets.shape == (15, 4)
    torch.testing.assert_close(uniform.sum(1), torch.ones(3))
    assert torch.allclose(uniform[0][uniform[0] > 0], torch.tensor(1 / 7)) and (uniform[0] > 0).sum() == 7
    _, paper = subset_probabilities(available, "paper", anchor=0)
    full = (subsets == available[0]).all(1)
    anchor_alone = (subsets == torch.tensor([True, False, False, False])).all(1)
    assert paper[0][full].item() == pytest.approx(1 / 3) and paper[0][anchor_alone].item() == pytest.approx(1 / 3)
    assert paper[0][~full & ~anchor_alone].sum().item() == pytest.approx(1 / 3)
    assert paper[1][anchor_alone].item() == pytest.approx(1.0)  # r = {anchor}
    # anchor missing: 1/2 the full r, 1/2 uniform over the 3 subsets of r (r itself included)
    full_2 = (subsets == available[2]).all(1)
    assert paper[2][full_2].item() == pytest.approx(0.5 + 0.5 / 3)
    draws = sample_subsets(available, 50, "paper", generator=torch.Generator().manual_seed(0))
    assert draws.shape == (50, 3, 4) and draws.any(-1).all() and not (draws & ~available[None]).any()


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_schedules_learning_rate_and_kl_warmup():
    fam = family(kl_warmup_epochs=2.0)
    assert isinstance(fam.optimizers["model"], torch.optim.Adamax) and isinstance(fam.optimizers["discriminators"], torch.optim.Adam)
    assert fam.optimizers["model"].param_groups[0]["lr"] == pytest.approx(2e-3)
    assert fam.optimizers["discriminators"].param_groups[0]["lr"] == pytest.approx(2e-4)
    assert fam.kl_weight(context(0, step=3)) == pytest.approx(1e-3 * 4 / 8)
    assert fam.kl_weight(context(3, step=20)) == pytest.approx(1e-3)
    scheduler = fam.schedulers["model"]
    for _ in range(scheduler.T_max):
        scheduler.step()
    assert fam.optimizers["model"].param_groups[0]["lr"] == pytest.approx(1e-4)


def test_eval_step_returns_per_sample_metrics_with_nan_where_undefined():
    torch.manual_seed(0)
    fam = family()
    available = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.bool)
    metrics = fam.eval_step(make_batch(3, available=available))
    assert set(metrics) == set(fam.metric_names)
    assert len(fam.metric_names) == 6 + 15 * 4 * 2 and fam.objective in type(fam).metric_names
    for name, value in metrics.items():
        assert value.shape == (3,), name
    assert torch.isfinite(metrics["psnr_mean"]).all() and torch.isfinite(metrics["ssim_harmonisation"]).all()
    assert torch.isnan(metrics["psnr_synthesis"][2])  # only one modality: nothing to synthesise
    assert torch.isfinite(metrics["psnr/t1-t2_to_flair"][0]) and torch.isnan(metrics["psnr/t1-t2_to_flair"][1:]).all()
    assert torch.isfinite(metrics["ssim/t1_to_t2"][1]) and torch.isnan(metrics["ssim/t1_to_t1gd"][1])
    again = fam.eval_step(make_batch(3, available=available))
    torch.testing.assert_close(again["psnr_mean"], metrics["psnr_mean"])  # seeded validation noise


def test_objective_options_one_sample_kl_l2_and_uniform_subsets():
    torch.manual_seed(0)
    fam = family(kl="sample", recon="l2", subset_sampling="uniform", lambda_gan=0.0, levels=2)
    logs = fam.train_step(make_batch(2), context(epoch=0))
    assert all(math.isfinite(v) for v in logs.values())
    assert set(k for k in logs if k.startswith("kl/")) == {"kl/z1", "kl/z6"}
    # squared error in data-range units of a [0, 1] image, summed over the 4 observed modalities (Alg. 1)
    assert logs["loss/recon"] < 4 * 0.25
