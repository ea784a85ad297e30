"""A tiny but real ModelFamily for testing the train loop without the paper models.

A 2-layer conv auto-encoder maps the available centre slices (M channels, missing = 0) to all
M modalities; L1 loss on the available ones. Registered at test time as family "toy".
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import torch
from torch import nn

from raysys.models import FAMILIES
from raysys.models.family import ModelFamily, StepContext, unwrap
from raysys.models.metrics import masked_psnr


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    width: int = 8
    lr: float = 3e-3
    context: int = 1
    data_range: tuple[float, float] = (-5.0, 5.0)
    poison_epoch: int = -1  # make loss/total NaN from this epoch on (tests the non-finite guard)

    @classmethod
    def preset(cls, name: str) -> "ToyConfig":
        if name not in ("tiny", "paper"):
            raise ValueError(f"unknown preset {name!r}")
        return cls() if name == "tiny" else cls(width=32)


class ToyNet(nn.Module):
    def __init__(self, modalities: int, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2 * modalities, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, modalities, 3, padding=1)
        )

    def forward(self, images: torch.Tensor, available: torch.Tensor) -> torch.Tensor:
        """images [B, M, H, W], available [B, M] -> [B, M, H, W]."""
        gate = available[:, :, None, None].float().expand_as(images)
        return self.net(torch.cat([images * gate, gate], dim=1))


class ToyFamily(ModelFamily):
    name = "toy"
    config_cls = ToyConfig
    metric_names = ("psnr", "l1")
    objective = "psnr"
    objective_mode = "max"

    def build_modules(self):
        return {"model": ToyNet(len(self.modalities), self.config.width)}

    def configure_optimizers(self, total_epochs, steps_per_epoch):
        self.optimizers = {"model": torch.optim.Adam(self.modules["model"].parameters(), lr=self.config.lr)}
        self.schedulers = {"model": torch.optim.lr_scheduler.StepLR(self.optimizers["model"], step_size=1, gamma=0.9)}
        return self.optimizers, self.schedulers

    def _centre(self, batch):
        images = batch["images"]
        return images[:, :, images.shape[2] // 2]

    def train_step(self, batch: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        images, available = self._centre(batch), batch["available"]
        with ctx.autocast():
            out = self.modules["model"](images, available)
        weight = available[:, :, None, None].float()
        loss = ((out.float() - images).abs() * weight).sum() / weight.expand_as(images).sum().clamp(min=1)
        if 0 <= self.config.poison_epoch <= ctx.epoch:
            loss = loss * float("nan")
        ctx.optimise(self.optimizers["model"], loss, self.modules["model"].parameters())
        return {"loss/total": float(loss.detach()), "loss/l1": float(loss.detach())}

    def on_epoch_end(self, epoch, val_metrics):
        self.schedulers["model"].step()

    @torch.no_grad()
    def eval_step(self, batch):
        images, available = self._centre(batch), batch["available"]
        out = self.modules["model"](images, available)
        psnr = torch.stack([masked_psnr(out[:, m], images[:, m], batch["mask"], self.config.data_range) for m in range(images.shape[1])], 1)
        psnr = torch.where(available, psnr, torch.full_like(psnr, float("nan"))).nanmean(1)
        l1 = (out - images).abs().mean(dim=(1, 2, 3))
        return {"psnr": psnr, "l1": l1}

    @property
    def context_slices(self) -> int:
        return self.config.context

    def run_tags(self):
        return {"width": str(self.config.width)}

    @torch.no_grad()
    def synthesis(self, batch):
        return {"synthesis": self.modules["model"](self._centre(batch), batch["available"])}

    def inference_module(self):
        return unwrap(self.modules["model"])


def register() -> None:
    FAMILIES["toy"] = f"{__name__}:ToyFamily"
