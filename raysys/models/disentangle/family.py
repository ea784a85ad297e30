"""DisentangleFamily: the disentanglement model plugged into the model-family interface."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from raysys.models.disentangle.config import DisentangleConfig
from raysys.models.disentangle.discriminator import AnatomyDiscriminator
from raysys.models.disentangle.losses import (
    confusion_loss,
    latent_consistency,
    pair_l1,
    pooled_anatomy,
    similarity_margin_loss,
)
from raysys.models.disentangle.model import DisentangleModel, DisentangleOutput
from raysys.models.disentangle.score import ReferenceBank, disentanglement_score
from raysys.models.family import ModelFamily, StepContext, first_available, unwrap
from raysys.models.metrics import masked_psnr, masked_ssim

# ``disentanglement``: score.disentanglement_score, in [-2, 2], higher = better disentangled.
AGGREGATE_METRICS = ("psnr_cross", "ssim_cross", "psnr_self", "ssim_self", "disentanglement")


def pair_metric_names(modalities: Sequence[str]) -> tuple[str, ...]:
    """Per-pair / per-modality metric names. ``_to_`` instead of ``->``: MLflow rejects ``>``."""
    names = []
    for source in modalities:
        for target in modalities:
            if source != target:
                names += [f"psnr_{source}_to_{target}", f"ssim_{source}_to_{target}"]
    for modality in modalities:
        names.append(f"psnr_self_{modality}")
    return tuple(names)


class DisentangleFamily(ModelFamily):
    """Ouyang et al. 2021: Conv/CondConv encoders, SPADE decoder, +NA / +Adv / +Sim.

    Modules: ``model`` (DisentangleModel) and, for ``regulariser == "adv"``, ``discriminator``.
    ``metric_names`` on an instance also lists the per-pair metrics of its modalities.
    """

    name = "disentangle"
    config_cls = DisentangleConfig
    metric_names = AGGREGATE_METRICS
    objective = "psnr_cross"
    objective_mode = "max"
    # Per-modality encoders/heads get no gradient when their modality is absent from a batch.
    find_unused_parameters = True

    def __init__(self, config: DisentangleConfig, modalities: Sequence[str]):
        if not isinstance(config, DisentangleConfig):
            raise TypeError(f"DisentangleFamily: config must be a DisentangleConfig, got {type(config).__name__}")
        if len(modalities) < 2 or len(set(modalities)) != len(modalities):
            raise ValueError(f"DisentangleFamily: modalities={list(modalities)!r} must be >= 2 distinct names")
        super().__init__(config, modalities)
        self.metric_names = AGGREGATE_METRICS + pair_metric_names(self.modalities)
        # Other-subject references of ``disentanglement`` across the batches of one validation pass.
        self._reference_bank = ReferenceBank()

    # --- construction ---------------------------------------------------------------------
    def build_modules(self) -> dict[str, nn.Module]:
        modules: dict[str, nn.Module] = {"model": DisentangleModel(self.config, self.modalities)}
        if self.config.regulariser == "adv":
            modules["discriminator"] = AnatomyDiscriminator(
                self.config.anatomy_channels, self.config.discriminator_widths, len(self.modalities)
            )
        return modules

    def configure_optimizers(self, total_epochs: int, steps_per_epoch: int):
        c = self.config
        self.optimizers = {
            "model": torch.optim.Adam(self.modules["model"].parameters(), lr=c.lr, betas=c.betas,
                                      weight_decay=c.weight_decay, amsgrad=c.amsgrad)
        }
        if "discriminator" in self.modules:
            self.optimizers["discriminator"] = torch.optim.Adam(
                self.modules["discriminator"].parameters(), lr=c.discriminator_lr, betas=c.betas,
                weight_decay=c.weight_decay, amsgrad=c.amsgrad,
            )
        # The released code stepped ReduceLROnPlateau on val cross-recon L1; we use val psnr_cross.
        self.schedulers = {
            name: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=c.plateau_factor,
                                                             patience=c.plateau_patience)
            for name, opt in self.optimizers.items()
        }
        return self.optimizers, self.schedulers

    def on_epoch_end(self, epoch: int, val_metrics: Mapping[str, float]) -> None:
        self._reference_bank.clear()
        value = val_metrics.get(self.objective)
        if value is None or not math.isfinite(float(value)):
            return
        for scheduler in getattr(self, "schedulers", {}).values():
            scheduler.step(float(value))

    # --- training -------------------------------------------------------------------------------
    def losses(self, out: DisentangleOutput, batch: Mapping[str, torch.Tensor],
               global_step: int | None = None) -> dict[str, torch.Tensor]:
        """Every weighted term of the encoder/decoder objective (``total`` is their sum).

        ``global_step`` drives the similarity warm-up (``sim_warmup_steps``); None = warm-up done.
        """
        c = self.config
        images = batch["images"]
        available = batch["available"].bool()
        weight = None
        if c.recon_background_weight != 1.0 and "mask" in batch:
            brain = batch["mask"].to(images.device).float()
            weight = brain + c.recon_background_weight * (1.0 - brain)  # [B, H, W]
        terms = {
            "self": pair_l1(out.recon, images, out.pair_valid, cross=False, pixel_weight=weight),
            "cross": c.lambda_c * pair_l1(out.recon, images, out.pair_valid, cross=True, pixel_weight=weight),
            "latent": c.lambda_l * latent_consistency(out.z_reencoded, out.z, out.pair_valid),
        }
        if c.regulariser == "sim":
            fs = pooled_anatomy(out.s.float(), c.sim_pool)  # f(s) in fp32 even under autocast
            loss_s, loss_z = similarity_margin_loss(fs, out.z.float(), batch["subject"], available,
                                                    c.alpha_s, c.alpha_z)
            ramp = 1.0
            if c.sim_warmup_steps > 0 and global_step is not None:
                ramp = min(1.0, global_step / c.sim_warmup_steps)
            terms["sim_s"] = ramp * c.lambda_s * loss_s
            terms["sim_z"] = ramp * c.lambda_z * loss_z
        if c.regulariser == "adv":
            # unwrap: the encoder's step must not touch the discriminator's DDP reducer.
            terms["adv"] = c.lambda_adv * confusion_loss(unwrap(self.modules["discriminator"])(out.anatomy_rows))
        terms["total"] = sum(terms.values())
        return terms

    def discriminator_loss(self, out: DisentangleOutput) -> torch.Tensor:
        """Cross-entropy of the discriminator predicting the source modality of s (detached)."""
        logits = self.modules["discriminator"](out.anatomy_rows.detach())
        return F.cross_entropy(logits.float(), out.row_index[:, 1])

    def train_step(self, batch: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        self.train(True)
        self._reference_bank.clear()  # a new validation pass starts with fresh references
        batch = {k: v.to(ctx.device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        logs: dict[str, float] = {}
        with ctx.autocast():
            out: DisentangleOutput = self.modules["model"](batch["images"], batch["available"])
        if "discriminator" in self.modules:
            with ctx.autocast():
                disc_loss = self.discriminator_loss(out)
            logs["loss/discriminator"] = float(disc_loss.detach())
            if math.isfinite(logs["loss/discriminator"]):
                ctx.optimise(self.optimizers["discriminator"], disc_loss, self.modules["discriminator"].parameters())
        with ctx.autocast():
            terms = self.losses(out, batch, ctx.global_step)
        logs.update({f"loss/{name}": float(value.detach()) for name, value in terms.items()})
        if math.isfinite(logs["loss/total"]):  # else the loop stops the run on the returned value
            ctx.optimise(self.optimizers["model"], terms["total"], self.modules["model"].parameters())
        return logs

    # --- evaluation -----------------------------------------------------------------------------
    @torch.no_grad()
    def eval_step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-sample [B] metrics on the CENTRE slice inside the brain mask (NaN where undefined)."""
        self.train(False)
        model = self.modules["model"]
        device = next(unwrap(model).parameters()).device
        images = batch["images"].to(device)
        available = batch["available"].to(device).bool()
        mask = batch["mask"].to(device).bool()
        out: DisentangleOutput = model(images, available)
        centre = self.config.context // 2
        nan = torch.full((images.shape[0],), float("nan"), device=device)
        metrics: dict[str, torch.Tensor] = {}
        cross_psnr, cross_ssim, self_psnr, self_ssim = [], [], [], []
        for i, source in enumerate(self.modalities):
            for j, target in enumerate(self.modalities):
                valid = out.pair_valid[:, i, j]
                pred, truth = out.recon[:, i, j, centre], images[:, j, centre]
                psnr = torch.where(valid, masked_psnr(pred, truth, mask, self.config.data_range), nan)
                ssim = torch.where(valid, masked_ssim(pred, truth, mask, self.config.data_range), nan)
                if i == j:
                    metrics[f"psnr_self_{source}"] = psnr
                    self_psnr.append(psnr)
                    self_ssim.append(ssim)
                else:
                    metrics[f"psnr_{source}_to_{target}"] = psnr
                    metrics[f"ssim_{source}_to_{target}"] = ssim
                    cross_psnr.append(psnr)
                    cross_ssim.append(ssim)
        metrics["psnr_cross"] = torch.stack(cross_psnr, 1).nanmean(1)
        metrics["ssim_cross"] = torch.stack(cross_ssim, 1).nanmean(1)
        metrics["psnr_self"] = torch.stack(self_psnr, 1).nanmean(1)
        metrics["ssim_self"] = torch.stack(self_ssim, 1).nanmean(1)
        # Disentanglement (score.py): references = other-subject samples of this batch and of the
        # earlier batches of this validation pass (the validation loader is ordered by subject).
        if "subject" in batch:
            fs = pooled_anatomy(out.s.float(), self.config.sim_pool)
            subject = batch["subject"].to(device)
            metrics["disentanglement"] = disentanglement_score(fs, out.z.float(), subject, available,
                                                               reference=self._reference_bank.tensors())
            self._reference_bank.add(fs, out.z.float(), subject, available)
        else:  # no subject ids: other-subject references are unknown
            metrics["disentanglement"] = nan
        return {name: metrics[name].float() for name in self.metric_names}

    # --- export ---------------------------------------------------------------------------------
    def inference_module(self) -> DisentangleModel:
        return unwrap(self.modules["model"])

    # --- what the loop asks ----------------------------------------------------------------------
    @property
    def context_slices(self) -> int:
        return self.config.context

    def run_tags(self) -> dict[str, str]:
        """Table 1's design axes: the regulariser (+NA/+Adv/+Sim) and the encoders (Conv/CondConv)."""
        return {"regulariser": self.config.regulariser, "encoder": self.config.encoder}

    @torch.no_grad()
    def synthesis(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``self``: D(s_m, z_m | m); ``from 1st``: D(s_first, z_m | m), s_first = the anatomy of
        each sample's first available input. Centre slices, [B, M, H, W]."""
        model = self.inference_module()
        device = next(model.parameters()).device
        images, available = batch["images"].to(device), batch["available"].to(device).bool()
        s, z = model.anatomy(images, available), model.modality(images, available)
        rows = torch.arange(s.shape[0], device=s.device)
        s_first = s[rows, first_available(available).float().argmax(dim=1)]
        centre = self.config.context // 2  # the decoder gives [N, K, H, W]
        self_recon = [model.decode(s[:, m], z[:, m], m)[:, centre] for m in range(len(self.modalities))]
        cross = [model.decode(s_first, z[:, m], m)[:, centre] for m in range(len(self.modalities))]
        return {"self": torch.stack(self_recon, dim=1), "from 1st": torch.stack(cross, dim=1)}

    def figures(self, batches: Sequence[Mapping[str, torch.Tensor]], value_range: tuple[float, float]) -> dict[str, Any]:
        """t-SNE of z coloured by modality and of f(s) coloured by subject (needs >= 3 samples)."""
        from raysys.models.disentangle.probes import collect_representations, tsne_figure

        reps = collect_representations(self.inference_module(), batches)
        if reps["z"].shape[0] < 3:
            return {}
        return {
            "tsne_z_by_modality": tsne_figure(reps["z"], reps["modality"], "z by modality", dict(enumerate(self.modalities))),
            "tsne_fs_by_subject": tsne_figure(reps["fs"], reps["subject"], "f(s) by subject"),
        }
