"""``figure.png``: inputs, each method's output and the target for a few slices (matplotlib, no pyplot)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

Panel = tuple[str, "np.ndarray | None"]  # (column title, [H, W] image or None = blank)


def panel_figure(rows: Sequence[tuple[str, Sequence[Panel]]], value_range: tuple[float, float], path: str | Path) -> Path:
    """A grid: one row per (row title, panels), images shown in ``value_range`` grey levels."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    n_cols = max((len(p) for _, p in rows), default=1)
    figure = Figure(figsize=(1.6 * n_cols, 1.7 * max(1, len(rows))))
    axes = figure.subplots(max(1, len(rows)), n_cols, squeeze=False)
    for r, (title, panels) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(panels) or panels[c][1] is None:
                ax.axis("off")
                continue
            name, image = panels[c]
            ax.imshow(np.asarray(image, dtype=np.float32), cmap="gray", vmin=value_range[0], vmax=value_range[1])
            ax.set_title(name, fontsize=6)
            if c == 0:
                ax.set_ylabel(title, fontsize=6)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    return path
