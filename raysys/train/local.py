"""``train_local``: the training loop in this process, without Ray (benches, tests, one-process trials).

The same epochs as ``raysys.train.fit`` (``epoch_loop.run_training``: same metrics, checkpoint
format and per-epoch seeding) on one rank: no worker group, no ``ray.train.report``, and Ray is
never imported. ``LocalReporter`` keeps the best state in memory, optionally writes checkpoints
into a directory (the latest and the best are kept) and hands every epoch to a ``report``
callback. In a Tune function trainable, for example::

    def report(metrics, checkpoint_dir):
        ray.tune.report(metrics, checkpoint=ray.tune.Checkpoint.from_directory(checkpoint_dir))

    restored = ray.tune.get_checkpoint()  # a retried or resumed trial continues from it
    with restored.as_directory() if restored else contextlib.nullcontext() as resume_from:
        train_local(train, overrides, report=report, checkpoint_dir=trial_dir, resume_from=resume_from)
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from raysys.train import checkpoint as ckpt
from raysys.train.config import TrackingSpec, TrainConfig
from raysys.train.epoch_loop import Reporter, default_device, run_training
from raysys.train.faults import FaultSpec
from raysys.urls import absolute_url

# report(metrics, checkpoint_dir): the epoch's metrics and its checkpoint directory (None when
# checkpoints are not written); the directory is complete when the callback runs.
ReportCallback = Callable[[dict[str, Any], "str | None"], None]


@dataclasses.dataclass(frozen=True)
class LocalResult:
    """What ``train_local`` returns (the counterpart of ``fit``'s ``ray.train.Result``).

    ``metrics``: the last epoch's metrics (``epoch``, ``train/*``, ``val/*``, ``objective``,
    ``best_objective``, ``perf/*``); empty when no epoch ran (already trained to ``epochs``).
    ``best_state``: the checkpoint state (``checkpoint.build_state``) of the best epoch by the
    objective, on CPU, or None when no epoch ran or improved. ``checkpoint``: the latest checkpoint
    directory, or None without ``checkpoint_dir``. ``summary``: ``epochs_done``, ``best_metric``,
    ``mlflow_run_id``.
    """

    metrics: dict[str, Any]
    best_state: dict[str, Any] | None
    checkpoint: Path | None
    summary: dict[str, Any]


def _to_cpu(value: Any) -> Any:
    """A copy of a state dict with every tensor copied to CPU (training mutates the originals)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


class LocalReporter(Reporter):
    """Epochs stay in this process: best state in memory, checkpoints in ``checkpoint_dir``."""

    def __init__(self, device: torch.device, checkpoint_dir: Path | None, resume_from: Path | None,
                 callback: ReportCallback | None):
        self.device = device
        self.checkpoint_dir = checkpoint_dir
        self.resume_from = resume_from
        self.callback = callback
        self.metrics: dict[str, Any] = {}
        self.best_state: dict[str, Any] | None = None
        self.latest: Path | None = None
        self.best_dir: Path | None = None

    def resume_state(self) -> dict[str, Any] | None:
        source = self.resume_from
        if source is None and self.checkpoint_dir is not None:
            source = ckpt.latest_checkpoint_dir(self.checkpoint_dir)
        return ckpt.load_state(source) if source is not None else None

    def report(self, metrics: dict[str, Any], *, epoch: int, improved: bool,
               state: Callable[[], dict[str, Any]], digest: Callable[[], str]) -> None:
        built = state() if improved or self.checkpoint_dir is not None else None
        if improved:
            self.best_state = _to_cpu(built)
        self.metrics = dict(metrics)
        if self.checkpoint_dir is not None:
            self.latest = ckpt.write_checkpoint(self.checkpoint_dir / ckpt.checkpoint_dir_name(epoch), built, 0, digest(), epoch)
            if improved or self.best_dir is None:
                self.best_dir = self.latest
            for old in self.checkpoint_dir.glob("checkpoint_epoch=*"):  # keep the latest and the best
                if old not in (self.latest, self.best_dir):
                    shutil.rmtree(old, ignore_errors=True)
        if self.callback is not None:
            self.callback(dict(metrics), str(self.latest) if self.latest is not None else None)


def train_local(
    train: TrainConfig,
    model_overrides: Mapping[str, Any] | None = None,
    *,
    report: ReportCallback | None = None,
    checkpoint_dir: str | Path | None = None,
    resume_from: str | Path | None = None,
    tracking: TrackingSpec | None = None,
    run_name: str | None = None,
    device: str | torch.device | None = None,
) -> LocalResult:
    """Train ``train.family`` on ``train.data`` in this process, without Ray; see the module docstring.

    ``report(metrics, checkpoint_dir)`` runs after every epoch. ``checkpoint_dir``: write each
    epoch's checkpoint there (``checkpoint_epoch=<n>/state.pt``; the latest and the best are
    kept); a directory that already holds checkpoints continues from its latest. ``resume_from``:
    a checkpoint directory to continue from instead (e.g. a Tune trial's restored checkpoint).
    ``tracking``: record the run in MLflow as ``fit`` does (tags, params, metrics, figures) under
    ``run_name`` (default ``<family>-local``); None records nothing. ``device``: default CUDA when
    available, else CPU. Raises ``NonFiniteLossError`` on a non-finite training loss.
    """
    from raysys.models import make_config

    train = dataclasses.replace(train, data=absolute_url(train.data, "train.data"))
    make_config(train.family, train.preset, dict(model_overrides or {}))  # bad overrides fail before any data is read
    if tracking is not None:
        from raysys.tracking import resolve_tracking_uri

        tracking = dataclasses.replace(tracking, tracking_uri=resolve_tracking_uri(tracking.tracking_uri))
    checkpoint_root = Path(checkpoint_dir).expanduser().resolve() if checkpoint_dir is not None else None
    reporter = LocalReporter(
        torch.device(device) if device is not None else default_device(),
        checkpoint_root,
        Path(resume_from) if resume_from is not None else None,
        report,
    )
    marker_dir = checkpoint_root or Path(tempfile.gettempdir())
    summary = run_training(
        train,
        dict(model_overrides or {}),
        reporter,
        run_name=run_name or f"{train.family}-local",
        tracking=tracking,
        fault=FaultSpec.from_env(),
        fault_marker=str(marker_dir / ".fault_fired"),
    )
    return LocalResult(metrics=reporter.metrics, best_state=reporter.best_state, checkpoint=reporter.latest, summary=summary)
