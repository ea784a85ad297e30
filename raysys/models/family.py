"""The one interface through which a model family plugs into the (model-agnostic) train loop.

A family owns its modules, optimizers, schedulers, losses and metrics. The train loop owns
devices, distribution (DDP), AMP, checkpoints, data and logging, and reaches the family only
through the members below. Pure PyTorch: nothing here imports ray or mlflow.

Batches are the dicts produced by ``raysys.data.SliceDataset`` after default collation:

    images     float32 [B, M, K, H, W]   K = context slices, missing modalities all-zero
    available  bool    [B, M]            which modalities the sample really has (after hiding)
    mask       bool    [B, H, W]         brain mask of the centre slice
    subject    int64   [B]               subject index in the store
    label      int64   [B, H, W]         tumour labels of the centre slice (only if the store has them)
    raw_images float32 [B, M, K, H, W]   raw images (only when the run trains on raw inputs, ``train.inputs=raw``)

The family also declares what the loop must not guess: ``config_for_store`` (the config set to
the store's value range), ``context_slices``, ``run_tags``, and the end-of-run ``synthesis``
outputs and ``figures``.

DDP contract: the loop may replace any entry of ``family.modules`` by a DDP wrapper before the
first step. Every computation that must produce gradients for a module therefore goes through
a *call* of ``self.modules[name](...)`` (one forward per backward for that module). To reach
attributes or extra methods use ``unwrap(self.modules[name])``; a generator loss that scores
fakes with a discriminator calls ``unwrap(discriminator)`` so the discriminator's reducer is
not involved, and the discriminator's own step zeroes its gradients first.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
from typing import Any, Callable, ClassVar, ContextManager, Iterator, Literal, Mapping, Sequence

import torch
from torch import nn


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module behind a DDP (or similar ``.module``-holding) wrapper."""
    while hasattr(module, "module") and isinstance(getattr(module, "module"), nn.Module):
        module = module.module
    return module


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Parameters of ``module`` do not require grad inside (a generator loss scoring fakes with
    a discriminator: the gradient reaches the fakes, not the discriminator's weights)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def first_available(available: torch.Tensor) -> torch.Tensor:
    """[B, M] bool -> the same shape with only each sample's first available modality kept."""
    first = available.float().argmax(dim=1)
    return torch.nn.functional.one_hot(first, available.shape[1]).bool() & available.bool()


@dataclasses.dataclass
class StepContext:
    """What the loop tells a family at each train step.

    ``optimise`` is the only way a family should step an optimizer: it zeroes grads,
    backpropagates, clips the gradient norm of ``parameters`` and steps, so AMP and
    clipping policy stay in the loop.
    """

    epoch: int  # 0-based current epoch
    total_epochs: int
    global_step: int
    device: torch.device
    grad_clip: float | None = 1.0
    autocast: Callable[[], ContextManager[Any]] = contextlib.nullcontext

    @property
    def progress(self) -> float:
        """Fraction of training done at the start of this epoch, in [0, 1)."""
        return self.epoch / max(self.total_epochs, 1)

    def optimise(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, parameters) -> float | None:
        """zero_grad -> backward -> clip -> step. Returns the pre-clip grad norm (or None)."""
        params = [p for p in parameters if p.requires_grad]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = None
        if self.grad_clip is not None and self.grad_clip > 0 and params:
            norm = float(torch.nn.utils.clip_grad_norm_(params, self.grad_clip))
        optimizer.step()
        return norm


class ModelFamily(abc.ABC):
    """Base class of a model family. Subclasses set the ClassVars and implement the methods.

    Construction builds every module from a typed, frozen config dataclass and the ordered
    modality names; nothing is placed on a device until the loop calls ``to``.
    """

    name: ClassVar[str]
    config_cls: ClassVar[type]
    # Metric names produced by ``eval_step`` (keys of its dict) and the one Tune optimises.
    metric_names: ClassVar[tuple[str, ...]]
    objective: ClassVar[str]
    objective_mode: ClassVar[Literal["max", "min"]] = "max"
    # Passed to DDP for the modules named here (e.g. branches unused by some regulariser).
    find_unused_parameters: ClassVar[bool] = False

    def __init__(self, config: Any, modalities: Sequence[str]):
        self.config = config
        self.modalities = tuple(modalities)
        self.modules: dict[str, nn.Module] = self.build_modules()

    # --- construction -------------------------------------------------------------------
    @abc.abstractmethod
    def build_modules(self) -> dict[str, nn.Module]:
        """All trainable modules by name, e.g. {"model": ..., "discriminator": ...}."""

    @abc.abstractmethod
    def configure_optimizers(
        self, total_epochs: int, steps_per_epoch: int
    ) -> tuple[dict[str, torch.optim.Optimizer], dict[str, Any]]:
        """Optimizers by name and LR schedulers by name (schedulers may be an empty dict).

        Called after the loop has moved/wrapped modules, so build them from the current
        ``self.modules`` parameters. Store them on ``self.optimizers`` / ``self.schedulers``.
        """

    # --- training -----------------------------------------------------------------------
    @abc.abstractmethod
    def train_step(self, batch: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        """One optimisation step (every optimizer it needs, via ``ctx.optimise``).

        Returns scalar losses for logging, named like ``loss/total``, ``loss/recon`` ...
        A non-finite ``loss/total`` makes the loop stop the run with an error.
        """

    def on_epoch_end(self, epoch: int, val_metrics: Mapping[str, float]) -> None:
        """Step epoch-level schedulers (e.g. ReduceLROnPlateau on a val metric). Optional."""

    # --- evaluation ---------------------------------------------------------------------
    @abc.abstractmethod
    @torch.no_grad()
    def eval_step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-sample metrics: each value a float tensor [B], NaN where not defined.

        The loop averages each metric over all samples of all ranks, ignoring NaN.
        """

    # --- export -------------------------------------------------------------------------
    @abc.abstractmethod
    def inference_module(self) -> nn.Module:
        """The (unwrapped) module that ``raysys.models.build_model`` returns for this config."""

    # --- what the loop needs to know (declared, never guessed) ---------------------------
    @classmethod
    def config_for_store(cls, config: Any, value_range: Sequence[float]) -> Any:
        """``config`` adapted to a store whose fixed value range (``Store.value_range``) is
        ``value_range``; the loop trains on what this returns. Default: the config's
        ``data_range`` field (the PSNR/SSIM range) set to it."""
        return dataclasses.replace(config, data_range=tuple(float(v) for v in value_range))

    @classmethod
    def config_for_raw_inputs(cls, config: Any, raw_range: Sequence[float]) -> Any:
        """``config`` for a run whose inputs are the store's raw images (``batch['raw_images']``,
        in ``raw_range``) and whose targets stay the normalised ``images`` (``train.inputs=raw``).
        Default: the family cannot (``ValueError``)."""
        raise ValueError(f"the {cls.name} family cannot train on raw inputs (train.inputs=raw); use train.inputs=normalised")

    @property
    def context_slices(self) -> int:
        """K, the adjacent slices per item the family consumes (``images`` [B, M, K, H, W])."""
        return 1

    def run_tags(self) -> dict[str, str]:
        """Config fields that name the design of a run (what runs are compared by), as
        ``{field: value}``; the loop tags the MLflow run ``model.<field>``. Default: none."""
        return {}

    @torch.no_grad()
    def synthesis(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Named predictions of every modality, each [B, M, H, W] (data space), for the
        end-of-run synthesis grid (e.g. ``{"from all": ..., "from 1st": ...}``). Called in eval
        mode on unwrapped modules. Default: none (the grid shows the inputs only)."""
        return {}

    def figures(self, batches: Sequence[Mapping[str, torch.Tensor]], value_range: tuple[float, float]) -> dict[str, Any]:
        """Family-specific end-of-run figures: ``{stem: matplotlib Figure}``, logged as
        ``figures/<stem>.png``, from a few validation batches. Import matplotlib inside (model
        code stays importable without it). Default: none."""
        return {}

    # --- helpers shared by all families -------------------------------------------------
    def to(self, device: torch.device) -> "ModelFamily":
        self.modules = {k: m.to(device) for k, m in self.modules.items()}
        return self

    def train(self, mode: bool = True) -> None:
        for module in self.modules.values():
            module.train(mode)

    def state_dict(self) -> dict[str, Any]:
        """Everything to resume: unwrapped module weights, optimizers, schedulers."""
        state: dict[str, Any] = {"modules": {k: unwrap(m).state_dict() for k, m in self.modules.items()}}
        state["optimizers"] = {k: o.state_dict() for k, o in getattr(self, "optimizers", {}).items()}
        state["schedulers"] = {k: s.state_dict() for k, s in getattr(self, "schedulers", {}).items()}
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for k, sd in state["modules"].items():
            unwrap(self.modules[k]).load_state_dict(sd)
        for k, sd in state.get("optimizers", {}).items():
            self.optimizers[k].load_state_dict(sd)
        for k, sd in state.get("schedulers", {}).items():
            self.schedulers[k].load_state_dict(sd)

    @property
    def parameters_count(self) -> int:
        return sum(p.numel() for m in self.modules.values() for p in unwrap(m).parameters())
