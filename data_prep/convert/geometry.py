"""Axial slice stacks, in-plane resizing, brain masks and the choice of slices.

Convention: a RAS volume [X, Y, Z] becomes an axial stack [Z, H, W]: rows run anterior (row 0)
to posterior (-Y), columns run from the subject's left to right (+X, neurological view).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.linalg.blas import saxpy

AUTO_MIN_BRAIN_FRACTION = 0.1
"""``--slices auto`` keeps axial slices whose brain area is >= this fraction of the largest one."""


def axial_view(volume: np.ndarray) -> np.ndarray:
    """RAS volume [X, Y, Z] -> axial slices [Z, H, W] as a VIEW (H = Y reversed: anterior at the
    top, W = X). For nibabel's Fortran-ordered arrays it is C-ordered apart from the row flip."""
    return np.transpose(volume, (2, 1, 0))[:, ::-1, :]


def axial_areas(mask: np.ndarray) -> np.ndarray:
    """Voxels of the mask [X, Y, Z] in each axial slice [Z]."""
    return np.count_nonzero(mask, axis=(0, 1))


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


def _nonzero_rows(matrix: np.ndarray) -> tuple[int, int]:
    """First and last + 1 row of ``matrix`` with a non-zero entry ((0, 0) when none)."""
    hit = np.flatnonzero(np.any(matrix != 0, axis=1))
    return (int(hit[0]), int(hit[-1]) + 1) if hit.size else (0, 0)


def _two_tap_sum(stack: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """``stack`` resampled along ``axis`` by ``weights`` [n_out, n_in] (bilinear: at most two
    adjacent non-zeros per row): each output is ``w0 * x[i] + w1 * x[i + 1]``.

    Two elementwise products and one sum, not a matrix product: a BLAS product's last bits depend
    on BLAS's thread count on some CPUs (2-core AMD EPYC, OpenBLAS 0.3.30: 1 and 2 threads differed,
    and setting the count per thread did not hold under concurrent threads), while the store's
    Dask tasks and ``raysys.predict`` must give the same bits. It is also 2 multiply-adds per
    output instead of one per input pixel.
    """
    n_out, n_in = weights.shape
    non_zero = weights != 0
    first = np.where(non_zero.any(axis=1), non_zero.argmax(axis=1), 0)
    second = np.minimum(first + 1, n_in - 1)
    out_rows = np.arange(n_out)
    w0 = weights[out_rows, first]
    w1 = np.where(first + 1 < n_in, weights[out_rows, second], np.float32(0)).astype(np.float32)
    shape = [1] * stack.ndim
    shape[axis] = n_out
    out = np.take(stack, first, axis=axis)
    out *= w0.reshape(shape)
    high = np.take(stack, second, axis=axis)
    high *= w1.reshape(shape)
    out += high
    return out


def fit_in_plane(stack: np.ndarray, size: tuple[int, int], order: int,
                 plane: tuple[int, int] | None = None, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Zero-pad [Z, h, w] symmetrically to the aspect ratio of ``size``, then resize to [Z, H, W].

    ``order`` 1: bilinear with corners aligned (as ``scipy.ndimage.zoom(order=1)``), computed
    along columns then rows as two-tap sums (``_two_tap_sum``), the same bits on every machine.
    ``order`` 0: nearest neighbour (labels, masks). Nothing is cropped, so the whole field of
    view (and the whole brain) keeps one scale for every subject of one acquisition grid.
    ``plane``: ``stack`` is the window at ``offset`` (rows, columns) of slices of shape ``plane``
    that are zero everywhere else; the result is that of the whole zero-filled slices, computed
    from the window alone (a brain's bounding box is about half the slice).
    """
    depth, height, width = stack.shape
    full_h, full_w = plane if plane is not None else (height, width)
    if not (0 <= offset[0] <= full_h - height and 0 <= offset[1] <= full_w - width):
        raise ValueError(f"fit_in_plane: window {stack.shape[1:]} at {offset} is outside the plane {(full_h, full_w)}")
    padded_h, padded_w = padded_plane(full_h, full_w, size)
    top, left = (padded_h - full_h) // 2, (padded_w - full_w) // 2
    if order == 1:
        rows = _linear_matrix(padded_h, size[0], top + offset[0], height)      # [H, h]
        cols = _linear_matrix(padded_w, size[1], left + offset[1], width)      # [W, w]
        # only output pixels with a non-zero weight on the window are computed (all of them
        # without a window); the others stay 0
        r0, r1 = _nonzero_rows(rows)
        c0, c1 = _nonzero_rows(cols)
        out = np.zeros((depth, *size), dtype=np.float32)
        if r1 > r0 and c1 > c0:
            stack = np.asarray(stack, dtype=np.float32)
            along_columns = _two_tap_sum(stack, cols[c0:c1], axis=2)                  # [Z, h, c1 - c0]
            out[:, r0:r1, c0:c1] = _two_tap_sum(along_columns, rows[r0:r1], axis=1)
        return out
    if order != 0:
        raise ValueError(f"order={order}: expected 0 (nearest) or 1 (linear)")
    rows = np.rint(_positions(padded_h, size[0])).astype(int) - top - offset[0]
    cols = np.rint(_positions(padded_w, size[1])).astype(int) - left - offset[1]
    # positions grow monotonically, so the output pixels that fall inside the input form one block
    row_ok, col_ok = np.flatnonzero((rows >= 0) & (rows < height)), np.flatnonzero((cols >= 0) & (cols < width))
    out = np.zeros((depth, *size), dtype=stack.dtype)
    if row_ok.size and col_ok.size:
        r0, r1, c0, c1 = row_ok[0], row_ok[-1] + 1, col_ok[0], col_ok[-1] + 1
        out[:, r0:r1, c0:c1] = stack.take(rows[r0:r1], axis=1).take(cols[c0:c1], axis=2)
    return out


def unfit_in_plane(stack: np.ndarray, plane: tuple[int, int], order: int) -> np.ndarray:
    """Inverse of ``fit_in_plane``: slices [..., H, W] on the resized grid -> [..., h, w] of the
    original ``plane`` (h, w) (used by ``raysys.predict`` to put a model's output back on a
    subject's own grid).

    The resized grid spans the zero-padded plane corner to corner, so each pixel of the padded
    plane lies at a known position on it; ``order`` 1 interpolates bilinearly there (for images),
    0 takes the nearest pixel (labels); the padding is then cropped. A plane that needed no
    resizing (padded plane == ``size``) comes back exactly.
    """
    size = stack.shape[-2:]
    padded_h, padded_w = padded_plane(plane[0], plane[1], size)
    top, left = (padded_h - plane[0]) // 2, (padded_w - plane[1]) // 2
    if order == 1:
        rows = _linear_matrix(size[0], padded_h, 0, size[0])[top:top + plane[0]]        # [h, H]
        cols = _linear_matrix(size[1], padded_w, 0, size[1])[left:left + plane[1]]      # [w, W]
        return np.matmul(np.matmul(rows, stack.astype(np.float32, copy=False)), cols.T)
    if order != 0:
        raise ValueError(f"order={order}: expected 0 (nearest) or 1 (linear)")
    rows = np.rint(_positions(size[0], padded_h)).astype(int)[top:top + plane[0]]
    cols = np.rint(_positions(size[1], padded_w)).astype(int)[left:left + plane[1]]
    return stack.take(rows, axis=-2).take(cols, axis=-1)


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
    level; holes filled and the largest connected component kept. Percentile and Otsu level
    come from every ``ESTIMATE_SAMPLE_STEP``-th plane (they only set a scale and a threshold).
    """
    if tissue is not None:
        return tissue > 0
    # one accumulation path for every layout (saxpy rounds once, ``+=`` of a product twice): in
    # the loader's Fortran order, which costs no copy for its volumes
    mean = np.empty(next(iter(images.values())).shape, dtype=np.float32, order="F")
    flat = mean.ravel(order="F")                                  # a view: same memory, one pass each
    for i, volume in enumerate(images.values()):
        volume = np.asarray(volume).astype(np.float32, order="F", copy=False)
        sample = _sample(volume)
        positive = sample[sample > 0]
        scale = max(float(np.percentile(positive, 99)), 1e-12) if positive.size else 1.0
        weight = 1.0 / (scale * len(images))
        if i == 0:
            np.multiply(volume, np.float32(weight), out=mean)
        else:
            saxpy(volume.ravel(order="F"), flat, a=weight)          # mean += weight * volume, no temporary
    # Otsu over ALL voxels: it separates background (0 after skull stripping, or noise) from head/brain
    rough = mean > otsu_threshold(_sample(mean))
    del mean
    box = bounding_box(rough)
    if box is None:
        return rough
    # components and holes lie inside the bounding box (outside it everything is background,
    # connected to the volume's border), so both are computed on the box only
    inner = rough[box].T                    # nibabel's Fortran order -> a C-ordered view for scipy
    labelled, count = ndimage.label(inner)
    if count > 1:
        sizes = np.bincount(labelled.ravel())
        sizes[0] = 0
        inner = labelled == int(np.argmax(sizes))
    mask = np.zeros_like(rough)
    mask[box] = fill_holes(inner).T
    return mask


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box (slices per axis) holding every True voxel; None for an empty mask."""
    box = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(np.any(mask, axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hit.size == 0:
            return None
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


ESTIMATE_SAMPLE_STEP = 7
"""Every 7th plane of voxels estimates the percentiles and Otsu's level of a brain mask estimate."""


def _sample(volume: np.ndarray) -> np.ndarray:
    """Every ``ESTIMATE_SAMPLE_STEP``-th axial plane (last axis, Z), whatever the memory layout: the
    same voxels, so the same percentile and Otsu level, for every orientation on disk. In the
    loader's Fortran order these planes are contiguous, so a sample costs 1/7 of a pass over the
    volume (every 7th voxel would touch every cache line); the order of the returned values
    follows memory, and what is computed from them (percentile, histogram) ignores order."""
    return volume[..., ::ESTIMATE_SAMPLE_STEP].ravel(order="K")


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_fill_holes(mask)`` (default connectivity), ~4x faster on a volume:
    the background components (6-connected) that touch the volume's border stay background."""
    background, count = ndimage.label(~mask)
    if count == 0:
        return mask.copy()
    touches = np.zeros(count + 1, dtype=bool)
    for axis in range(mask.ndim):
        for end in (0, -1):
            touches[np.take(background, end, axis=axis)] = True
    touches[0] = False                      # label 0 = the mask itself
    return ~touches[background]


def choose_slices(areas: np.ndarray, slices: tuple[int, int] | None) -> np.ndarray:
    """Indices of the axial slices to keep, one contiguous range, from the brain area of each
    slice [Z] (``axial_areas``), so neighbouring stored slices are neighbours in the volume.

    ``None`` (auto): from the first to the last slice whose brain area >= ``AUTO_MIN_BRAIN_FRACTION``
    of the largest. ``(a, b)``: slices a..b-1, which must lie inside the volume.
    """
    depth = int(areas.shape[0])
    if slices is not None:
        start, stop = slices
        if stop > depth:
            raise ValueError(f"--slices {start}:{stop} exceeds the volume's {depth} axial slices")
        return np.arange(start, stop)
    if areas.max() == 0:
        raise ValueError("brain mask is empty")
    kept = np.flatnonzero(areas >= AUTO_MIN_BRAIN_FRACTION * areas.max())
    return np.arange(kept[0], kept[-1] + 1)
