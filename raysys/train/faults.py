"""An environment-controlled fault hook for testing fault tolerance (off by default).

Set on the driver (``fit`` forwards them to the workers) or in the workers' environment:

    RAYSYS_FAULT_AT="<epoch>:<step>"   0-based epoch and train step at which to fail
    RAYSYS_FAULT_RANK=<r>              the rank that fails (default: the last rank)
    RAYSYS_FAULT_MODE=exit|raise       "exit" kills the worker process (os._exit, like a lost
                                       node); "raise" raises InjectedFault (default: exit)
    RAYSYS_FAULT_MARKER=<path>         marker file; the fault fires only if it does not exist
                                       yet and creates it, so a restarted run does not fail
                                       again (default: <storage>/<run name>/.fault_fired)
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

ENV_PREFIX = "RAYSYS_FAULT_"


class InjectedFault(RuntimeError):
    """Raised by the fault hook in ``raise`` mode."""


@dataclasses.dataclass(frozen=True)
class FaultSpec:
    epoch: int
    step: int
    rank: int | None = None
    mode: str = "exit"
    marker: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "FaultSpec | None":
        """The spec described by ``RAYSYS_FAULT_*`` variables, or None when ``RAYSYS_FAULT_AT`` is unset."""
        env = os.environ if env is None else env
        at = env.get(ENV_PREFIX + "AT", "").strip()
        if not at:
            return None
        epoch, sep, step = at.partition(":")
        if not sep or not epoch.strip().isdigit() or not step.strip().isdigit():
            raise ValueError(f"{ENV_PREFIX}AT must look like '<epoch>:<step>' (0-based), got {at!r}")
        mode = env.get(ENV_PREFIX + "MODE", "exit").strip()
        if mode not in ("exit", "raise"):
            raise ValueError(f"{ENV_PREFIX}MODE must be 'exit' or 'raise', got {mode!r}")
        rank = env.get(ENV_PREFIX + "RANK", "").strip()
        return cls(int(epoch), int(step), int(rank) if rank else None, mode, env.get(ENV_PREFIX + "MARKER") or None)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def maybe_fail(spec: FaultSpec | None, *, epoch: int, step: int, rank: int, world_size: int, default_marker: str) -> None:
    """Fail here if ``spec`` says so and its marker file does not exist yet (then create it)."""
    if spec is None or (epoch, step) != (spec.epoch, spec.step):
        return
    if rank != (spec.rank if spec.rank is not None else world_size - 1):
        return
    marker = spec.marker or default_marker
    os.makedirs(os.path.dirname(os.path.abspath(marker)), exist_ok=True)
    try:
        # O_EXCL: exactly one attempt ever creates the marker, so the fault fires once.
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    message = f"raysys fault hook: injected failure at epoch {epoch} step {step} on rank {rank}"
    if spec.mode == "raise":
        raise InjectedFault(message)
    print(message, flush=True)
    os._exit(1)
