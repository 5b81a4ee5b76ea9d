"""DAVIS-2017 region similarity (J), boundary F-measure (F) and their statistics.

Definitions follow the public ``davis2017-evaluation`` code (``db_eval_iou``,
``db_eval_boundary``/``f_measure``, ``seg2bmap``, ``db_statistics``) so that
the numbers are the ones the standard evaluator reports. Masks are boolean
arrays ``[T, H, W]`` (a single ``[H, W]`` frame is accepted too).
"""
import warnings
from typing import Optional, Tuple, Union

import cv2
import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]


def _to_bool_frames(mask: ArrayLike, name: str) -> np.ndarray:
    """Return ``mask`` as a C-contiguous bool array ``[T, H, W]``."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3:
        raise ValueError(f'{name} must be a [T, H, W] or [H, W] mask, got shape {mask.shape}')
    if mask.dtype != np.bool_:
        if mask.size and not np.isin(mask, (0, 1)).all():
            raise ValueError(f'{name} must be binary (bool or values in {{0, 1}}), '
                             f'got values {np.unique(mask)[:5].tolist()}...')
        mask = mask.astype(np.bool_)
    return np.ascontiguousarray(mask)


def _check_pair(pred: ArrayLike, gt: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    pred = _to_bool_frames(pred, 'pred')
    gt = _to_bool_frames(gt, 'gt')
    if pred.shape != gt.shape:
        raise ValueError(f'pred and gt masks differ in shape: {pred.shape} vs {gt.shape}')
    return pred, gt


def region_similarity(pred: ArrayLike, gt: ArrayLike) -> np.ndarray:
    """Jaccard index per frame.

    Args:
        pred, gt: bool ``[T, H, W]`` (or ``[H, W]``).

    Returns:
        float64 ``[T]``; a frame where both masks are empty scores 1.
    """
    pred, gt = _check_pair(pred, gt)
    inter = np.logical_and(pred, gt).sum(axis=(1, 2))
    union = np.logical_or(pred, gt).sum(axis=(1, 2))
    jaccard = inter / np.maximum(union, 1)
    jaccard[union == 0] = 1.0
    return jaccard.astype(np.float64)


def boundary_map(seg: ArrayLike) -> np.ndarray:
    """One-pixel-wide boundary map of binary masks (DAVIS ``seg2bmap``).

    A pixel is a boundary pixel when it differs from its east, south or
    south-east neighbour (outside the frame counts as background); the last
    row only compares east, the last column only south, and the bottom-right
    pixel is never a boundary pixel.

    Args:
        seg: bool ``[..., H, W]``.

    Returns:
        bool ``[..., H, W]``.
    """
    seg = np.asarray(seg, dtype=np.bool_)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[..., :, :-1] = seg[..., :, 1:]
    south[..., :-1, :] = seg[..., 1:, :]
    south_east[..., :-1, :-1] = seg[..., 1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[..., -1, :] = seg[..., -1, :] ^ east[..., -1, :]
    bmap[..., :, -1] = seg[..., :, -1] ^ south[..., :, -1]
    bmap[..., -1, -1] = False
    return bmap


def disk_kernel(radius: float) -> np.ndarray:
    """Disk structuring element, uint8 ``[2r+1, 2r+1]``: ``x^2 + y^2 <= r^2``.

    Same grid and rule as ``skimage.morphology.disk`` (used by the DAVIS code),
    without depending on scikit-image.
    """
    coords = np.arange(-radius, radius + 1)
    xs, ys = np.meshgrid(coords, coords)
    return (xs**2 + ys**2 <= radius**2).astype(np.uint8)


def boundary_tolerance(height: int, width: int, bound_th: float = 0.008) -> float:
    """Boundary match tolerance in pixels: ``bound_th`` if ``>= 1``, else
    ``ceil(bound_th * image diagonal)``."""
    if bound_th >= 1:
        return bound_th
    return float(np.ceil(bound_th * np.linalg.norm((height, width))))


def _object_crop(pred: np.ndarray, gt: np.ndarray) -> Optional[Tuple[slice, slice]]:
    """Crop ``[H, W]`` holding both masks plus one row/column on every side
    (clipped to the frame), or None when both masks are empty.

    J, the boundary maps and the boundary matching computed on this crop equal
    the full-frame ones: outside it both masks and both boundaries are empty,
    and its extra empty last row/column (when it is not the frame's last) has
    no boundary under the full-frame rule either.
    """
    rows = np.flatnonzero(pred.any(axis=1) | gt.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(pred.any(axis=0) | gt.any(axis=0))
    height, width = pred.shape
    return (slice(max(rows[0] - 1, 0), min(rows[-1] + 2, height)),
            slice(max(cols[0] - 1, 0), min(cols[-1] + 2, width)))


def _f_measure_of_bounds(fg_bound: np.ndarray, gt_bound: np.ndarray, kernel: np.ndarray) -> float:
    """F-measure of two boundary maps ``[h, w]`` (DAVIS ``f_measure``)."""
    n_fg = int(np.count_nonzero(fg_bound))
    n_gt = int(np.count_nonzero(gt_bound))
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        # cv2's default dilation border adds nothing, so dilating the crop
        # gives the full-frame dilation at every boundary pixel.
        fg_u8 = fg_bound.view(np.uint8)
        gt_u8 = gt_bound.view(np.uint8)
        fg_match = int(np.count_nonzero(fg_u8 & cv2.dilate(gt_u8, kernel)))
        gt_match = int(np.count_nonzero(gt_u8 & cv2.dilate(fg_u8, kernel)))
        precision = fg_match / float(n_fg)
        recall = gt_match / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _jf_frame(pred: np.ndarray, gt: np.ndarray, kernel: Optional[np.ndarray]) -> Tuple[float, float]:
    """(J, F) of one frame pair ``[H, W]``; F is skipped (NaN) if kernel is None."""
    crop = _object_crop(pred, gt)
    if crop is None:  # both empty: J = F = 1 by definition
        return 1.0, 1.0
    pred, gt = pred[crop], gt[crop]
    union = int(np.count_nonzero(pred | gt))
    jaccard = np.count_nonzero(pred & gt) / union if union else 1.0
    if kernel is None:
        return float(jaccard), float('nan')
    f_measure = _f_measure_of_bounds(
        np.ascontiguousarray(boundary_map(pred)), np.ascontiguousarray(boundary_map(gt)), kernel)
    return float(jaccard), float(f_measure)


def jf_per_frame(pred: ArrayLike, gt: ArrayLike, bound_th: float = 0.008) -> Tuple[np.ndarray, np.ndarray]:
    """J and F of every frame in one pass (same values as
    :func:`region_similarity` and :func:`boundary_f_measure`).

    Args:
        pred, gt: bool ``[T, H, W]`` (or ``[H, W]``).
        bound_th: boundary tolerance, see :func:`boundary_f_measure`.

    Returns:
        (J, F), each float64 ``[T]``.
    """
    pred, gt = _check_pair(pred, gt)
    kernel = disk_kernel(boundary_tolerance(*pred.shape[-2:], bound_th=bound_th))
    values = np.array([_jf_frame(p, g, kernel) for p, g in zip(pred, gt)], dtype=np.float64)
    return values[:, 0].copy(), values[:, 1].copy()


def boundary_f_measure(pred: ArrayLike, gt: ArrayLike, bound_th: float = 0.008) -> np.ndarray:
    """Boundary F-measure per frame (DAVIS ``db_eval_boundary``).

    Boundaries (:func:`boundary_map`) match within a disk of radius
    :func:`boundary_tolerance` pixels.

    Args:
        pred, gt: bool ``[T, H, W]`` (or ``[H, W]``).
        bound_th: tolerance, as a fraction of the diagonal if ``< 1`` else pixels.

    Returns:
        float64 ``[T]`` in ``[0, 1]``; two empty masks score 1.
    """
    return jf_per_frame(pred, gt, bound_th=bound_th)[1]


def jf_statistics(per_frame: ArrayLike) -> Tuple[float, float, float]:
    """Mean, recall (fraction > 0.5) and decay (first minus last of 4 temporal
    bins) of per-frame J or F values (DAVIS ``db_statistics``).

    Args:
        per_frame: float ``[T]``, NaN entries are ignored by mean and decay.

    Returns:
        (mean, recall, decay) as floats.
    """
    values = np.asarray(per_frame, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError('jf_statistics needs at least one per-frame value')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', category=RuntimeWarning)
        mean = np.nanmean(values)
        recall = np.nanmean(values > 0.5)
        num_bins = 4
        # Bin edges as in DAVIS (they index with uint8, which wraps for videos
        # longer than 256 frames; int64 here gives the intended bins there).
        ids = (np.round(np.linspace(1, len(values), num_bins + 1) + 1e-10) - 1).astype(np.int64)
        bins = [values[ids[i]:ids[i + 1] + 1] for i in range(num_bins)]
        decay = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return float(mean), float(recall), float(decay)
