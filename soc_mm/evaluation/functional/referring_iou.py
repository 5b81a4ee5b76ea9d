"""Referring-segmentation IoU metrics of SOC / MTTR (A2D-Sentences, JHMDB-Sentences, RefCOCO):
overall IoU, mean IoU and precision@K on the top-scoring mask of every evaluated frame."""
from typing import Dict, Sequence, Tuple

import numpy as np

EPS = 1e-6


def referring_iou(pred: np.ndarray, gt: np.ndarray) -> Tuple[float, int, int]:
    """IoU of one predicted and one ground-truth mask ``[H, W]``.

    As in SOC, ``(I + 1e-6) / (U + 1e-6)`` in float32 (two empty masks give 1).

    Returns:
        (iou, intersection, union)
    """
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f'pred and gt masks differ in shape: {pred.shape} vs {gt.shape}')
    inter = int(np.count_nonzero(pred & gt))
    union = int(np.count_nonzero(pred | gt))
    return iou_from_counts(inter, union), inter, union


def iou_from_counts(inter: int, union: int) -> float:
    """``(I + 1e-6) / (U + 1e-6)`` computed in float32, as SOC does with torch tensors."""
    return float((np.float32(inter) + np.float32(EPS)) / (np.float32(union) + np.float32(EPS)))


def referring_iou_summary(ious: Sequence[float], inters: Sequence[int], unions: Sequence[int],
                          iou_thrs: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9)) -> Dict[str, float]:
    """Overall IoU (sum I / sum U), mean IoU and ``P@thr`` (fraction with IoU > thr).

    Args:
        ious, inters, unions: one entry per evaluated frame (see :func:`referring_iou`).
        iou_thrs: precision thresholds.

    Returns:
        dict with ``P@<thr>``, ``overall_iou`` and ``mean_iou``.
    """
    if len(ious) == 0:
        raise ValueError('no evaluated frames: cannot compute IoU metrics')
    ious = np.asarray(ious, dtype=np.float64)
    total_union = float(np.sum(unions))
    metrics = {f'P@{thr}': float(np.count_nonzero(ious > thr)) / len(ious) for thr in iou_thrs}
    metrics['overall_iou'] = float(np.sum(inters)) / total_union if total_union > 0 else float('nan')
    metrics['mean_iou'] = float(np.mean(ious))
    return metrics
