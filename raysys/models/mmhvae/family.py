"""MMHVAE as a ``ModelFamily``: modules, optimisers, the training objective and the metrics."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Sequence

import torch
from torch import nn

from raysys.models.family import ModelFamily, StepContext, first_available, frozen, unwrap
from raysys.models.metrics import masked_psnr, masked_ssim
from raysys.models.mmhvae.config import MMHVAEConfig
from raysys.models.mmhvae.discriminator import PatchDiscriminators
from raysys.models.mmhvae.losses import lsgan_discriminator_loss, lsgan_generator_loss, reconstruction_error
from raysys.models.mmhvae.memory import RealImageMemory
from raysys.models.mmhvae.model import MMHVAE
from raysys.models.mmhvae.subsets import training_subsets
from raysys.models.subset_metrics import AGGREGATE_METRICS, all_subsets, subset_metric_names, subset_scores


class MMHVAEFamily(ModelFamily):
    """Modules ``model`` (the generator, ``MMHVAE``) and ``discriminators`` (one PatchGAN per
    modality); optimisers ``model`` (Adamax, cosine decay per step) and ``discriminators`` (Adam).
    With ``lambda_gan == 0`` (GAN off) there are no discriminators at all: no module, no
    optimiser, no discriminator step, no memory of real images.

    Metrics: the six aggregates of ``metric_names`` (class level) plus, per instance, PSNR and
    SSIM for every non-empty input subset and target modality (``subset_metric_names``).
    """

    name: ClassVar[str] = "mmhvae"
    config_cls: ClassVar[type] = MMHVAEConfig
    metric_names: ClassVar[tuple[str, ...]] = AGGREGATE_METRICS
    objective: ClassVar[str] = "psnr_mean"
    objective_mode: ClassVar[str] = "max"
    find_unused_parameters: ClassVar[bool] = False  # every parameter of "model" is used each step

    def __init__(self, config: MMHVAEConfig, modalities: Sequence[str]):
        if not isinstance(config, MMHVAEConfig):
            raise TypeError(f"config must be an MMHVAEConfig, got {type(config).__name__}")
        if len(modalities) < 1 or len(set(modalities)) != len(modalities):
            raise ValueError(f"modalities must be distinct names, got {list(modalities)}")
        if config.anchor_modality >= len(modalities):
            raise ValueError(f"anchor_modality={config.anchor_modality} is out of range for modalities {list(modalities)}")
        super().__init__(config, modalities)
        self.metric_names = AGGREGATE_METRICS + tuple(subset_metric_names(self.modalities))
        self.memory = RealImageMemory(len(self.modalities), config.memory_size)
        self._steps_per_epoch = 1

    # --- construction -------------------------------------------------------------------
    def build_modules(self) -> dict[str, nn.Module]:
        m = len(self.modalities)
        model = MMHVAE(self.config, m)
        if self.config.compile_model:
            model.compile()  # in place: parameters and state-dict keys stay those of MMHVAE
        if not self.gan_enabled:
            return {"model": model}
        return {
            "model": model,
            "discriminators": PatchDiscriminators(m, self.config.disc_channels, self.config.disc_layers),
        }

    @property
    def gan_enabled(self) -> bool:
        """Whether the GAN term exists at all (``lambda_gan > 0``); off, no discriminator is built."""
        return self.config.lambda_gan > 0

    def configure_optimizers(self, total_epochs: int, steps_per_epoch: int):
        cfg = self.config
        self._steps_per_epoch = max(1, steps_per_epoch)
        total_steps = max(1, total_epochs * self._steps_per_epoch)
        generator = torch.optim.Adamax(self.modules["model"].parameters(), lr=cfg.lr, betas=(0.9, cfg.beta2))
        self.optimizers = {"model": generator}
        if self.gan_enabled:
            self.optimizers["discriminators"] = torch.optim.Adam(self.modules["discriminators"].parameters(), lr=cfg.disc_lr)
        # Stepped by train_step once per step (not per epoch): cosine from lr to lr_min.
        self.schedulers = {
            "model": torch.optim.lr_scheduler.CosineAnnealingLR(generator, T_max=total_steps, eta_min=cfg.lr_min)
        }
        return self.optimizers, self.schedulers

    # --- schedules ----------------------------------------------------------------------
    def _started(self, ctx: StepContext, epoch: int | None, fraction: float) -> bool:
        if not self.gan_enabled:
            return False
        return ctx.epoch >= epoch if epoch is not None else ctx.progress >= fraction

    def gan_active(self, ctx: StepContext) -> bool:
        """lambda_GAN > 0 from ``gan_start_epoch`` (or ``gan_start_fraction`` of the epochs) on."""
        return self._started(ctx, self.config.gan_start_epoch, self.config.gan_start_fraction)

    def discriminators_active(self, ctx: StepContext) -> bool:
        """Discriminators train from ``disc_start_epoch`` (or ``disc_start_fraction``) on."""
        return self._started(ctx, self.config.disc_start_epoch, self.config.disc_start_fraction)

    def kl_weight(self, ctx: StepContext) -> float:
        """lambda_KL, ramped linearly over ``kl_warmup_epochs`` (counted in steps) if set."""
        cfg = self.config
        if cfg.kl_warmup_epochs <= 0:
            return cfg.lambda_kl
        ramp = (ctx.global_step + 1) / (cfg.kl_warmup_epochs * self._steps_per_epoch)
        return cfg.lambda_kl * min(1.0, ramp)

    # --- data ---------------------------------------------------------------------------
    @classmethod
    def config_for_raw_inputs(cls, config: MMHVAEConfig, raw_range: Sequence[float]) -> MMHVAEConfig:
        """Encode the raw images, reconstruct the normalised ones (the paper's harmonisation)."""
        return dataclasses.replace(config, input_range=tuple(float(v) for v in raw_range))

    def _centre(self, batch: Mapping[str, torch.Tensor], key: str, device: torch.device) -> torch.Tensor:
        images = batch[key]
        if images.dim() == 5:
            images = images[:, :, images.shape[2] // 2]
        if images.dim() != 4 or images.shape[1] != len(self.modalities):
            raise ValueError(f"batch[{key!r}] must be [B, {len(self.modalities)}, K, H, W], got {tuple(batch[key].shape)}")
        return images.to(device).float()

    def _inputs(self, batch: Mapping[str, torch.Tensor], device: torch.device):
        """Centre slices (float32): targets [B, M, H, W], encoder inputs (``raw_images`` for a model
        with raw inputs, else None: the targets), available bool [B, M], mask bool [B, H, W]."""
        images = self._centre(batch, "images", device)
        raw = None
        if self.config.input_range is not None:
            if "raw_images" not in batch:
                raise ValueError("this model encodes raw images (config.input_range): the batch needs 'raw_images'")
            raw = self._centre(batch, "raw_images", device)
        available = batch["available"].to(device).bool()
        mask = batch["mask"].to(device).bool()
        return images, raw, available, mask

    # --- training -----------------------------------------------------------------------
    def train_step(self, batch: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        cfg = self.config
        images, raw, available, mask = self._inputs(batch, ctx.device)
        b, m, h, w = images.shape
        model, discriminators = self.modules["model"], self.modules.get("discriminators")
        subsets = training_subsets(available, cfg.posterior, cfg.subsets_per_step, cfg.subset_sampling, cfg.anchor_modality)
        gan_on, disc_on = self.gan_active(ctx), self.discriminators_active(ctx)
        lambda_kl = self.kl_weight(ctx)

        with ctx.autocast():
            out = model(images, subsets, mask, raw)
        recon = out.recon.float()
        recon_loss = reconstruction_error(recon, out.target.float(), mask, available, cfg.recon)  # [T, B]
        # KL in nats per pixel, per draw/sample: the same H x W normalisation as the reconstruction
        # term (a per-pixel mean summed over the observed modalities, Alg. 1), so lambda_KL weighs the
        # two terms alike whatever the size of r (dividing by M as well made it lambda_KL |r| / M).
        kl_per_group = out.kl.float() / (h * w)  # [T, B, G]
        kl = kl_per_group.sum(dim=-1)
        total = recon_loss.mean() + lambda_kl * kl.mean()
        gan_loss = torch.zeros((), device=images.device)
        if gan_on:  # eq. 16 for every modality of every draw, scored by frozen discriminators
            scorer = unwrap(discriminators)
            with frozen(scorer), ctx.autocast():
                scores = scorer(recon.flatten(0, 1))
            gan_loss = lsgan_generator_loss(scores.float())
            total = total + cfg.lambda_gan * gan_loss
        grad_norm = ctx.optimise(self.optimizers["model"], total, model.parameters())
        scheduler = self.schedulers["model"]
        if scheduler.last_epoch < scheduler.T_max:
            scheduler.step()

        logs = {
            "loss/total": float(total.detach()),
            "loss/recon": float(recon_loss.mean().detach()),
            "loss/kl": float(kl.mean().detach()),
            "loss/gan": float(gan_loss.detach()),
            "loss/disc": 0.0,  # set below once the discriminators train
            "weight/lambda_kl": lambda_kl,
            "weight/lambda_gan": cfg.lambda_gan if gan_on else 0.0,
            "lr/model": self.optimizers["model"].param_groups[0]["lr"],
        }
        for i, group in enumerate(out.groups):
            logs[f"kl/z{group}"] = float(kl_per_group[..., i].mean().detach())
        if grad_norm is not None:
            logs["grad_norm/model"] = grad_norm

        if self.gan_enabled:  # Alg. 1 l. 28-34: remember reals, then train the discriminators
            self.memory.push(out.target, available)
            if disc_on:
                real, valid = self.memory.fill_missing(out.target.detach(), available)
                fake = out.recon[0].detach()  # draw 0: a random subset per sample
                with ctx.autocast():
                    scores = discriminators(torch.cat([real, fake.to(real.dtype)]))
                d_loss = lsgan_discriminator_loss(scores[:b].float(), scores[b:].float(), valid)
                ctx.optimise(self.optimizers["discriminators"], d_loss, discriminators.parameters())
                logs["loss/disc"] = float(d_loss.detach())
        return logs

    # --- evaluation ---------------------------------------------------------------------
    @torch.no_grad()
    def eval_step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """PSNR/SSIM (data range ``config.data_range``, inside ``batch['mask']``) of every target
        modality from every non-empty input subset, NaN where the sample lacks an input or the
        target; each modality is encoded once and the subsets reuse the encodings."""
        cfg = self.config
        model: MMHVAE = unwrap(self.modules["model"])
        device = next(model.parameters()).device
        images, raw, available, mask = self._inputs(batch, device)
        b, m = images.shape[:2]
        encoding = model.encode(model.inputs_to_model_space(images if raw is None else raw))
        generator = torch.Generator(device=device)
        generator.manual_seed(cfg.eval_seed)
        subsets = all_subsets(m, device)  # [S, M]
        psnr, ssim = [], []
        for subset in subsets:
            out, _ = model.decode(model.evidence(encoding, subset.expand(b, m)), mask, cfg.temperature, generator)
            pred = model.to_data_space(out.float()).transpose(0, 1).flatten(0, 1)  # [M * B, H, W]
            target = images.transpose(0, 1).flatten(0, 1)
            masks = mask.repeat(m, 1, 1)
            psnr.append(masked_psnr(pred, target, masks, cfg.data_range).view(m, b))
            ssim.append(masked_ssim(pred, target, masks, cfg.data_range).view(m, b))
        return subset_scores(torch.stack(psnr), torch.stack(ssim), subsets, available, self.modalities)  # [S, M, B] each

    # --- export -------------------------------------------------------------------------
    def inference_module(self) -> nn.Module:
        return unwrap(self.modules["model"])

    # --- what the loop asks --------------------------------------------------------------
    # context_slices: the default 1; the model reads the centre slice only.
    def run_tags(self) -> dict[str, str]:
        """The design axes of the paper's ablations: latent levels L, fusion, GAN weight, posterior."""
        cfg = self.config
        return {"levels": str(cfg.levels), "fusion": cfg.fusion, "lambda_gan": str(cfg.lambda_gan), "posterior": cfg.posterior}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """As the base, except that a checkpoint written when GAN-off runs still built
        discriminators (before they were skipped) loads into a family without them."""
        absent = [k for k in state["modules"] if k not in self.modules]
        if absent and absent != ["discriminators"]:
            raise KeyError(f"checkpoint holds modules {absent} this {self!r} does not have")
        state = {
            part: {k: v for k, v in state.get(part, {}).items() if k != "discriminators" or self.gan_enabled}
            for part in ("modules", "optimizers", "schedulers")
        }
        super().load_state_dict(state)

    @torch.no_grad()
    def synthesis(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every modality from all available inputs and from each sample's first input alone (PoE)."""
        model: MMHVAE = self.inference_module()
        device = next(model.parameters()).device
        images = batch["raw_images" if model.raw_inputs else "images"].to(device)
        available = batch["available"].to(device).bool()
        return {"from all": model.synthesise(images, available), "from 1st": model.synthesise(images, first_available(available))}

    def __repr__(self) -> str:
        return f"MMHVAEFamily(modalities={list(self.modalities)}, levels={self.config.levels}, groups={self.config.groups})"


def describe(config: MMHVAEConfig) -> dict[str, Any]:
    """Human-readable summary of the latent ladder (used by the README and the size bench)."""
    size = config.image_size
    ladder = {}
    for g in config.groups:
        if g == config.max_levels:
            ladder[f"z{g}"] = f"{config.top_latent_dim}-d vector"
        else:
            res = size // 2 ** (g - 1)
            ladder[f"z{g}"] = f"{config.channels[g - 1] // 2}@{res}x{res}"
    return {"levels": config.levels, "max_levels": config.max_levels, "groups": list(config.groups), "latents": ladder}

