"""MM-GAN as a ``ModelFamily``: modules, optimisers, the curriculum, the objective and the metrics."""

from __future__ import annotations

from typing import ClassVar, Mapping, Sequence

import torch
from torch import nn

from raysys.models.family import ModelFamily, StepContext, first_available, frozen, unwrap
from raysys.models.metrics import masked_psnr, masked_ssim
from raysys.models.mmgan.config import MMGANConfig
from raysys.models.mmgan.discriminator import ConditionalPatchDiscriminator
from raysys.models.mmgan.losses import implicit_conditioning, l1_on_targets, lsgan_discriminator_loss, lsgan_generator_loss
from raysys.models.mmgan.model import MMGAN
from raysys.models.mmgan.scenarios import curriculum_stage, missing_scenarios, open_scenarios, sample_inputs
from raysys.models.subset_metrics import AGGREGATE_METRICS, all_subsets, subset_metric_names, subset_scores


class MMGANFamily(ModelFamily):
    """Modules ``generator`` (``MMGAN``) and ``discriminator`` (a conditional PatchGAN); two Adam
    optimisers, one step each per train step (the released code).

    Metrics: the names of mmhvae (``raysys.models.subset_metrics``): PSNR and SSIM of every target
    from every non-empty input subset, and their aggregates. MM-GAN returns its inputs unchanged,
    so the harmonisation cells (target among the inputs) are NaN and ``psnr_mean`` averages the
    synthesis cells only (= ``psnr_synthesis``, which is defined alike in both families).
    """

    name: ClassVar[str] = "mmgan"
    config_cls: ClassVar[type] = MMGANConfig
    metric_names: ClassVar[tuple[str, ...]] = AGGREGATE_METRICS
    objective: ClassVar[str] = "psnr_mean"
    objective_mode: ClassVar[str] = "max"
    find_unused_parameters: ClassVar[bool] = False  # every parameter of both modules is used each step

    def __init__(self, config: MMGANConfig, modalities: Sequence[str]):
        if not isinstance(config, MMGANConfig):
            raise TypeError(f"config must be an MMGANConfig, got {type(config).__name__}")
        if len(modalities) < 2 or len(set(modalities)) != len(modalities):
            raise ValueError(f"modalities must be >= 2 distinct names, got {list(modalities)}")
        super().__init__(config, modalities)
        self.metric_names = AGGREGATE_METRICS + tuple(subset_metric_names(self.modalities))

    # --- construction -------------------------------------------------------------------
    def build_modules(self) -> dict[str, nn.Module]:
        m = len(self.modalities)
        return {"generator": MMGAN(self.config, m), "discriminator": ConditionalPatchDiscriminator(m, self.config.disc_channels)}

    def configure_optimizers(self, total_epochs: int, steps_per_epoch: int):
        cfg = self.config
        betas = (cfg.beta1, cfg.beta2)
        self.optimizers = {
            "generator": torch.optim.Adam(self.modules["generator"].parameters(), lr=cfg.lr, betas=betas),
            "discriminator": torch.optim.Adam(self.modules["discriminator"].parameters(), lr=cfg.disc_lr, betas=betas),
        }
        self.schedulers = {}
        return self.optimizers, self.schedulers

    # --- curriculum (Sec. III-E) ----------------------------------------------------------
    def open_scenarios(self, progress: float) -> int:
        """How many of the easiest missing-data scenarios are drawn at training fraction ``progress``."""
        cfg, m = self.config, len(self.modalities)
        if not cfg.curriculum:
            return len(missing_scenarios(m))
        return open_scenarios(m, curriculum_stage(progress, cfg.curriculum_stages, cfg.curriculum_end), cfg.curriculum_stages)

    # --- data ---------------------------------------------------------------------------
    def _inputs(self, batch: Mapping[str, torch.Tensor], device: torch.device):
        """Centre slice [B, M, H, W] (float32), available bool [B, M], mask bool [B, H, W]."""
        images = batch["images"]
        if images.dim() == 5:
            images = images[:, :, images.shape[2] // 2]
        if images.dim() != 4 or images.shape[1] != len(self.modalities):
            raise ValueError(f"batch['images'] must be [B, {len(self.modalities)}, K, H, W], got {tuple(batch['images'].shape)}")
        return images.to(device).float(), batch["available"].to(device).bool(), batch["mask"].to(device).bool()

    # --- objective ----------------------------------------------------------------------
    def scored(self, inputs: torch.Tensor, available: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(real inputs put back, outputs scored), each bool [B, M]. With IC: the inputs, and the
        modalities synthesised that the sample has; without: nothing, and every modality it has."""
        if self.config.implicit_conditioning:
            return inputs, available & ~inputs
        return torch.zeros_like(inputs), available

    def generator_loss(self, fake: torch.Tensor, real: torch.Tensor, imputed: torch.Tensor, inputs: torch.Tensor,
                       available: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_G = (1 - lambda) L_adv + lambda L_1 (Sec. III-C) on the scored outputs only (IC).

        fake, real, imputed: [B, M, H, W] model space (generator output, ground truth, its input);
        inputs, available: bool [B, M]. The discriminator scores with frozen weights.
        Returns (total, {"l1", "adv", "composite"}) with composite the image pair's fake half.
        """
        cfg = self.config
        _, targets = self.scored(inputs, available)
        composite = implicit_conditioning(fake, real, targets)  # absent modalities stay real (zeros) in both pairs
        l1 = l1_on_targets(fake, real, targets)
        adv = torch.zeros((), device=fake.device)
        if cfg.lambda_l1 < 1.0:
            scorer = unwrap(self.modules["discriminator"])
            with frozen(scorer):
                adv = lsgan_generator_loss(scorer(imputed, composite), targets)
        total = cfg.lambda_l1 * l1 + (1.0 - cfg.lambda_l1) * adv
        return total, {"l1": l1, "adv": adv, "composite": composite}

    # --- training -----------------------------------------------------------------------
    def train_step(self, batch: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        cfg = self.config
        images, available, _ = self._inputs(batch, ctx.device)
        generator, discriminator = self.modules["generator"], self.modules["discriminator"]
        model: MMGAN = unwrap(generator)
        n_open = self.open_scenarios(ctx.progress)
        inputs = sample_inputs(available, n_open)  # one scenario per sample (released: per batch)
        real = model.to_model_space(images)
        imputed = model.impute(real, inputs)
        with ctx.autocast():
            fake = generator(imputed)
        total, parts = self.generator_loss(fake.float(), real, imputed, inputs, available)
        grad_norm = ctx.optimise(self.optimizers["generator"], total, generator.parameters())
        logs = {
            "loss/total": float(total.detach()),
            "loss/l1": float(parts["l1"].detach()),
            "loss/adv": float(parts["adv"].detach()),
            "loss/disc": 0.0,
            "curriculum/open_scenarios": float(n_open),
            "curriculum/missing": float((available & ~inputs).sum(1).float().mean()),
        }
        if grad_norm is not None:
            logs["grad_norm/generator"] = grad_norm
        if cfg.lambda_l1 < 1.0:  # the discriminator: real pair vs the IC composite, in one call (DDP)
            put_back, _ = self.scored(inputs, available)
            fake_pair = parts["composite"].detach()
            with ctx.autocast():
                scores = discriminator(torch.cat([imputed, imputed]), torch.cat([real, fake_pair]))
            b = real.shape[0]
            d_loss = lsgan_discriminator_loss(scores[:b].float(), scores[b:].float(), put_back, available & ~put_back)
            ctx.optimise(self.optimizers["discriminator"], d_loss, discriminator.parameters())
            logs["loss/disc"] = float(d_loss.detach())
        return logs

    # --- evaluation ---------------------------------------------------------------------
    @torch.no_grad()
    def eval_step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """PSNR/SSIM (range ``config.data_range``, inside ``batch['mask']``) of every target from
        every non-empty input subset; NaN where the sample lacks an input or the target, and for
        targets among the inputs (returned unchanged, nothing to score)."""
        cfg = self.config
        model: MMGAN = unwrap(self.modules["generator"])
        device = next(model.parameters()).device
        images, available, mask = self._inputs(batch, device)
        b, m = images.shape[:2]
        subsets = all_subsets(m, device)  # [S, M]
        target = images.transpose(0, 1).flatten(0, 1)  # [M * B, H, W]
        masks = mask.repeat(m, 1, 1)
        psnr, ssim = [], []
        for subset in subsets:
            pred = model.synthesise(images, subset.expand(b, m)).transpose(0, 1).flatten(0, 1)
            psnr.append(masked_psnr(pred, target, masks, cfg.data_range).view(m, b))
            ssim.append(masked_ssim(pred, target, masks, cfg.data_range).view(m, b))
        return subset_scores(torch.stack(psnr), torch.stack(ssim), subsets, available, self.modalities, harmonisation=False)

    # --- export -------------------------------------------------------------------------
    def inference_module(self) -> nn.Module:
        return unwrap(self.modules["generator"])

    # --- what the loop asks --------------------------------------------------------------
    # context_slices: the default 1; the generator reads the centre slice only.
    def run_tags(self) -> dict[str, str]:
        """The paper's ablation axes: implicit conditioning, curriculum learning, the L1 weight."""
        cfg = self.config
        return {"implicit_conditioning": str(cfg.implicit_conditioning), "curriculum": str(cfg.curriculum), "lambda_l1": str(cfg.lambda_l1)}

    @torch.no_grad()
    def synthesis(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every modality from all available inputs and from each sample's first input alone."""
        model: MMGAN = self.inference_module()
        device = next(model.parameters()).device
        images, available = batch["images"].to(device), batch["available"].to(device).bool()
        return {"from all": model.synthesise(images, available), "from 1st": model.synthesise(images, first_available(available))}

    def __repr__(self) -> str:
        return f"MMGANFamily(modalities={list(self.modalities)}, channels={self.config.channels})"
