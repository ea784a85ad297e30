"""SegmenterFamily: the segmenter plugged into the model-family interface (trained by the same loop)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from raysys.models.family import ModelFamily, StepContext, unwrap
from raysys.models.segmenter.config import SegmenterConfig
from raysys.models.segmenter.model import SegmenterModel
from raysys.models.segmenter.regions import MEAN, REGIONS, class_mean, labels_to_classes, region_dice

METRICS = (f"dice_{MEAN}", *(f"dice_{r}" for r in REGIONS))


def read_frozen_parts(url: str) -> dict[str, torch.Tensor]:
    """The partial state dict at ``url`` (a path or fsspec URL), loaded with ``weights_only=True``."""
    import fsspec

    with fsspec.open(url, "rb") as handle:
        return torch.load(handle, map_location="cpu", weights_only=True)


class SegmenterFamily(ModelFamily):
    """Module ``model`` (SegmenterModel); optimiser ``model`` (Adam over the network only).

    Loss: MONAI ``DiceCELoss`` (softmax, labels one-hot; Dice without the background channel and
    over the whole batch, so slices without a class do not make its Dice term 0/0).
    Metrics (per slice, ``regions.region_dice``): ``dice_<region>`` and ``dice_mean`` (NCR, ED,
    ET), the objective (max).

    A config with ``frozen_parts`` loads the frozen tensors from that URL at construction; the
    family's ``config`` then has ``frozen_parts=""``: checkpoints and registered models carry the
    tensors in their state and rebuild the module from the config alone.
    """

    name = "segmenter"
    config_cls = SegmenterConfig
    metric_names = METRICS
    objective = f"dice_{MEAN}"
    objective_mode = "max"

    def __init__(self, config: SegmenterConfig, modalities: Sequence[str]):
        if not isinstance(config, SegmenterConfig):
            raise TypeError(f"SegmenterFamily: config must be a SegmenterConfig, got {type(config).__name__}")
        if len(modalities) < 1 or len(set(modalities)) != len(modalities):
            raise ValueError(f"SegmenterFamily: modalities={list(modalities)!r} must be distinct names")
        super().__init__(config, modalities)
        if config.frozen_parts:
            self.modules["model"].load_frozen(read_frozen_parts(config.frozen_parts), source=config.frozen_parts)
            self.config = dataclasses.replace(config, frozen_parts="")
        from monai.losses import DiceCELoss

        self.loss = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True,
                               lambda_dice=config.lambda_dice, lambda_ce=config.lambda_ce)

    @classmethod
    def config_for_store(cls, config: SegmenterConfig, value_range: Sequence[float]) -> SegmenterConfig:
        """Dice needs no value range: the config is used as it is."""
        return config

    def build_modules(self) -> dict[str, nn.Module]:
        return {"model": SegmenterModel(self.config, self.modalities)}

    def configure_optimizers(self, total_epochs: int, steps_per_epoch: int):
        network = unwrap(self.modules["model"]).network
        self.optimizers = {"model": torch.optim.Adam(network.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)}
        self.schedulers: dict[str, Any] = {}
        return self.optimizers, self.schedulers

    @staticmethod
    def _targets(batch: Mapping[str, torch.Tensor], device: torch.device) -> torch.Tensor:
        if "label" not in batch:
            raise ValueError("the segmenter needs tumour labels: train it on a store converted with label maps (<subject>_seg)")
        return batch["label"].to(device)

    def _forward(self, batch: Mapping[str, torch.Tensor], model: nn.Module, device: torch.device) -> torch.Tensor:
        position = batch.get("position")
        return model(batch["images"].to(device), batch["available"].to(device),
                     None if position is None else position.to(device))

    def train_step(self, batch: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        self.train(True)
        model = self.modules["model"]
        classes = labels_to_classes(self._targets(batch, ctx.device))
        with ctx.autocast():
            logits = self._forward(batch, model, ctx.device)
        loss = self.loss(logits.float(), classes[:, None])
        ctx.optimise(self.optimizers["model"], loss, model.parameters())
        return {"loss/total": float(loss.detach())}

    @torch.no_grad()
    def eval_step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-slice Dice of every region and their class mean (NaN where undefined: ``regions``)."""
        self.train(False)
        model = self.modules["model"]
        device = next(unwrap(model).network.parameters()).device
        truth = self._targets(batch, device)
        pred = unwrap(model).segment(batch["images"].to(device), batch["available"].to(device),
                                     None if batch.get("position") is None else batch["position"].to(device))
        dice = region_dice(pred, truth)
        metrics = {f"dice_{region}": dice[:, i] for i, region in enumerate(REGIONS)}
        metrics[f"dice_{MEAN}"] = class_mean(dice)
        return {name: metrics[name].float() for name in self.metric_names}

    def inference_module(self) -> SegmenterModel:
        return unwrap(self.modules["model"])

    @property
    def context_slices(self) -> int:
        return unwrap(self.modules["model"]).context or 1

    def run_tags(self) -> dict[str, str]:
        """What segmenter runs are compared by: the input mode and the network."""
        return {"input_mode": self.config.input_mode, "network": self.config.network}
