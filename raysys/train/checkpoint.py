"""The checkpoint format: one ``state.pt`` per checkpoint directory (CONTRACTS section 4), built by ``build_state``.

``state.pt`` holds only tensors, dicts, lists, tuples, numbers and strings, so it loads with
``torch.load(weights_only=True)`` (no pickled code). Keys: ``family``, ``modalities``,
``model_config`` (flat), ``train_config`` (flat), ``family_state``
(``ModelFamily.state_dict()``), ``epoch`` (completed epochs), ``best_metric``, ``rng`` (rank 0's
RNG states, for the record: the loop re-seeds every epoch from (seed, epoch, rank), which is what
makes a resumed run replay exactly). Each rank also writes ``ranks/rank-<r>.json`` (a digest of its parameters) so anyone can
check that DDP kept the replicas identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import torch
from torch import nn

from raysys.config import plain_values, to_flat
from raysys.models.family import ModelFamily, unwrap

if TYPE_CHECKING:
    from raysys.train.config import TrainConfig

STATE_FILE = "state.pt"
RANKS_DIR = "ranks"
REQUIRED_KEYS = ("family", "modalities", "model_config", "train_config", "family_state", "epoch", "best_metric", "rng")


class CheckpointError(RuntimeError):
    """A checkpoint directory or file is missing or malformed; the message names the path."""


def build_state(train: "TrainConfig", family: ModelFamily, *, epoch: int, best_metric: float | None) -> dict[str, Any]:
    """The ``state.pt`` dict of ``family`` trained under ``train`` after ``epoch`` completed epochs.

    The one builder of the format (the loop and the tests use it): flat un-prefixed configs as
    builtins, the family's full state (modules, optimizers, schedulers), this process's RNG states.
    """
    return {
        "family": train.family,
        "modalities": list(family.modalities),
        "model_config": plain_values(to_flat(family.config)),
        "train_config": plain_values(to_flat(train)),
        "family_state": family.state_dict(),
        "epoch": int(epoch),
        "best_metric": best_metric,
        "rng": rng_state(),
    }


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as weights_only-safe values."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": plain_values(random.getstate()),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of ``rng_state``."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(("MT19937", state["numpy"]["keys"].numpy().astype(np.uint32), state["numpy"]["pos"], 0, 0.0))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(directory: str | Path, state: Mapping[str, Any]) -> Path:
    """Write ``state.pt`` into ``directory`` atomically (temp file + rename); returns its path."""
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint state lacks keys {missing}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / STATE_FILE
    tmp = directory / (STATE_FILE + ".tmp")
    torch.save(dict(state), tmp)
    os.replace(tmp, path)
    return path


def load_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint's state dict from a checkpoint directory or a ``state.pt`` path."""
    path = Path(path)
    file = path / STATE_FILE if path.is_dir() else path
    if not file.is_file():
        raise CheckpointError(f"no checkpoint state at {file}")
    try:
        state = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the path named
        raise CheckpointError(f"cannot load checkpoint {file}: {err}") from err
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {file} lacks keys {missing}")
    return state


def parameter_digest(modules: Mapping[str, nn.Module]) -> str:
    """SHA-256 over every parameter (name, dtype, bytes) of the unwrapped modules, in name order.

    Buffers are left out on purpose: BatchNorm running statistics are per rank under DDP.
    """
    digest = hashlib.sha256()
    for name in sorted(modules):
        for pname, param in unwrap(modules[name]).named_parameters():
            digest.update(f"{name}.{pname}:{param.dtype}".encode())
            digest.update(param.detach().to("cpu", copy=True).contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def write_rank_digest(directory: str | Path, rank: int, digest: str, epoch: int, node_id: str | None = None) -> Path:
    """``ranks/rank-<r>.json`` with this rank's parameter digest at ``epoch`` (and its Ray node)."""
    path = Path(directory) / RANKS_DIR / f"rank-{rank}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rank": rank, "epoch": epoch, "parameter_sha256": digest, "node_id": node_id}))
    return path


def read_rank_records(directory: str | Path) -> dict[int, dict[str, Any]]:
    """{rank: {"parameter_sha256", "epoch", "node_id"}} of every rank that wrote into this checkpoint."""
    out = {}
    for file in sorted((Path(directory) / RANKS_DIR).glob("rank-*.json")):
        record = json.loads(file.read_text())
        out[int(record["rank"])] = record
    return out


def checkpoint_dir_name(epoch: int) -> str:
    """``checkpoint_epoch=000003``: the directory of the checkpoint after ``epoch`` epochs."""
    return f"checkpoint_epoch={epoch:06d}"


def write_checkpoint(directory: str | Path, state: Mapping[str, Any] | None, rank: int, digest: str, epoch: int,
                     node_id: str | None = None) -> Path:
    """This rank's part of a checkpoint: ``state.pt`` (rank 0, ``state`` given) and its digest record."""
    if state is not None:
        save_state(directory, state)
    write_rank_digest(directory, rank, digest, epoch, node_id)
    return Path(directory)


def latest_checkpoint_dir(run_dir: str | Path) -> Path | None:
    """The newest ``checkpoint_epoch=*`` directory holding a state file (local mode's resume)."""
    candidates = [p for p in Path(run_dir).glob("checkpoint_epoch=*") if (p / STATE_FILE).is_file()]
    return max(candidates, key=lambda p: int(p.name.split("=")[1])) if candidates else None
