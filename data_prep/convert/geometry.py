"""Axial slice stacks, in-plane resizing, brain masks and the choice of slices.

Convention: a RAS volume [X, Y, Z] becomes an axial stack [Z, H, W]: rows run anterior (row 0)
to posterior (-Y), columns run from the subject's left to right (+X, neurological view).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

AUTO_MIN_BRAIN_FRACTION = 0.1
"""``--slices auto`` keeps axial slices whose brain area is >= this fraction of the largest one."""


def axial_stack(volume: np.ndarray) -> np.ndarray:
    """RAS volume [X, Y, Z] -> axial slices [Z, H, W] (H = Y reversed: anterior at the top, W = X)."""
    return np.ascontiguousarray(np.transpose(volume, (2, 1, 0))[:, ::-1, :])


def padded_plane(height: int, width: int, size: tuple[int, int]) -> tuple[int, int]:
    """Smallest in-plane shape >= (height, width) with the aspect ratio of ``size``."""
    target_h, target_w = size
    if height * target_w >= width * target_h:
        return height, max(width, int(round(height * target_w / target_h)))
    return max(height, int(round(width * target_h / target_w))), width


def _positions(n_padded: int, n_out: int) -> np.ndarray:
    """Source coordinate of each output pixel; corners aligned (= scipy.ndimage.zoom, grid_mode=False)."""
    if n_out == 1:
        return np.zeros(1)
    return np.arange(n_out) * ((n_padded - 1) / (n_out - 1))


def _linear_matrix(n_padded: int, n_out: int, first: int, n_in: int) -> np.ndarray:
    """[n_out, n_in] linear-interpolation weights onto the input's pixels (padding contributes 0)."""
    position = _positions(n_padded, n_out)
    low = np.clip(np.floor(position).astype(int), 0, max(n_padded - 2, 0))
    fraction = position - low
    weights = np.zeros((n_out, n_padded + 1), dtype=np.float64)
    weights[np.arange(n_out), low] += 1 - fraction
    weights[np.arange(n_out), low + 1] += fraction
    return weights[:, first:first + n_in].astype(np.float32)


def fit_in_plane(stack: np.ndarray, size: tuple[int, int], order: int) -> np.ndarray:
    """Zero-pad [Z, h, w] symmetrically to the aspect ratio of ``size``, then resize to [Z, H, W].

    ``order`` 1: bilinear with corners aligned (as ``scipy.ndimage.zoom(order=1)``), computed
    as two small matrix products, which release the GIL so Dask threads run in parallel.
    ``order`` 0: nearest neighbour (labels, masks). Nothing is cropped, so the whole field of
    view (and the whole brain) keeps one scale for every subject of one acquisition grid.
    """
    depth, height, width = stack.shape
    padded_h, padded_w = padded_plane(height, width, size)
    top, left = (padded_h - height) // 2, (padded_w - width) // 2
    if order == 1:
        rows = _linear_matrix(padded_h, size[0], top, height)            # [H, h]
        cols = _linear_matrix(padded_w, size[1], left, width)            # [W, w]
        # columns first as ONE [Z*h, w] x [w, W] product, then rows per slice (batched)
        along_columns = np.matmul(stack.astype(np.float32, copy=False).reshape(depth * height, width), cols.T)
        return np.matmul(rows, along_columns.reshape(depth, height, size[1]))
    if order != 0:
        raise ValueError(f"order={order}: expected 0 (nearest) or 1 (linear)")
    rows = np.rint(_positions(padded_h, size[0])).astype(int) - top
    cols = np.rint(_positions(padded_w, size[1])).astype(int) - left
    # padding is symmetric, so the output pixels that fall inside the input form one block
    row_ok, col_ok = np.flatnonzero((rows >= 0) & (rows < height)), np.flatnonzero((cols >= 0) & (cols < width))
    out = np.zeros((depth, *size), dtype=stack.dtype)
    if row_ok.size and col_ok.size:
        r0, r1, c0, c1 = row_ok[0], row_ok[-1] + 1, col_ok[0], col_ok[-1] + 1
        out[:, r0:r1, c0:c1] = stack.take(rows[r0:r1], axis=1).take(cols[c0:c1], axis=2)
    return out


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a 1-D sample (maximises the between-class variance)."""
    histogram, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(histogram)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(histogram * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(centres[int(np.argmax(between))])


def brain_mask(images: dict[str, np.ndarray], tissue: np.ndarray | None) -> np.ndarray:
    """Brain mask [X, Y, Z] bool: the tissue map's non-zero voxels when given, else estimated.

    Estimate: each modality scaled by its 99th percentile, averaged, thresholded at Otsu's
    level; holes filled and the largest connected component kept.
    """
    if tissue is not None:
        return tissue > 0
    scaled = [v / max(float(np.percentile(v[v > 0], 99)) if np.any(v > 0) else 1.0, 1e-12)
              for v in images.values()]
    mean = np.mean(scaled, axis=0)
    # Otsu over ALL voxels: it separates background (0 after skull stripping, or noise) from head/brain
    mask = mean > otsu_threshold(mean.ravel())
    labelled, count = ndimage.label(mask)
    if count > 1:
        sizes = ndimage.sum_labels(mask, labelled, index=np.arange(1, count + 1))
        mask = labelled == (1 + int(np.argmax(sizes)))
    return ndimage.binary_fill_holes(mask)


def choose_slices(mask_stack: np.ndarray, slices: tuple[int, int] | None) -> np.ndarray:
    """Indices (into the axial stack [Z, H, W]) of the slices to keep.

    ``None`` (auto): slices whose brain area >= ``AUTO_MIN_BRAIN_FRACTION`` of the largest.
    ``(a, b)``: slices a..b-1, which must lie inside the volume.
    """
    depth = mask_stack.shape[0]
    if slices is not None:
        start, stop = slices
        if stop > depth:
            raise ValueError(f"--slices {start}:{stop} exceeds the volume's {depth} axial slices")
        return np.arange(start, stop)
    area = mask_stack.reshape(depth, -1).sum(axis=1)
    if area.max() == 0:
        raise ValueError("brain mask is empty")
    kept = np.flatnonzero(area >= AUTO_MIN_BRAIN_FRACTION * area.max())
    # one contiguous range, so neighbouring stored slices are neighbours in the volume (context)
    return np.arange(kept[0], kept[-1] + 1)
