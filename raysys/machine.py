"""The one-line description of this machine that reports and tables are stamped with."""

from __future__ import annotations

import os
import platform


def machine_name() -> str:
    """Host, CPU count and accelerator, e.g. ``"vm, 2 CPUs (x86_64), no GPU"``."""
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.node()}, {os.cpu_count()} CPUs ({platform.machine()}), {device}"
