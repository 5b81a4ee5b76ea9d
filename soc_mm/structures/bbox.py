"""Box helpers shared by the losses and the match costs.

Conversions and plain IoUs come from mmdet (``mmdet.structures.bbox.bbox_cxcywh_to_xyxy``,
``bbox_overlaps``); only SOC's GIoU is written here because its epsilon placement differs.
"""
import torch
from torch import Tensor


def soc_generalized_box_iou(boxes1: Tensor, boxes2: Tensor, is_aligned: bool = False) -> Tensor:
    """GIoU of xyxy boxes: ``(I + 1e-6) / (U + 1e-6) - (E - U + 1e-6) / (E + 1e-6)``.

    mmdet's ``bbox_overlaps`` clamps ``U`` and ``E`` at eps instead of adding eps to numerator
    and denominator; for the all-zero boxes of absent objects that differs by ~1e-6 / area, so
    the official formula is kept.

    Args:
        boxes1 (Tensor): [N, 4] xyxy.
        boxes2 (Tensor): [M, 4] xyxy ([N, 4] when ``is_aligned``).
        is_aligned (bool): element-wise (-> [N]) instead of pairwise (-> [N, M]).

    Returns:
        Tensor: [N, M] (or [N] when ``is_aligned``) GIoU in [-1, 1].
    """
    if not is_aligned:
        boxes1 = boxes1[:, None]
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    inter = _corner_area(torch.max(boxes1[..., :2], boxes2[..., :2]), torch.min(boxes1[..., 2:], boxes2[..., 2:]))
    union = area1 + area2 - inter
    iou = (inter + 1e-6) / (union + 1e-6)
    enclose = _corner_area(torch.min(boxes1[..., :2], boxes2[..., :2]), torch.max(boxes1[..., 2:], boxes2[..., 2:]))
    return iou - ((enclose - union) + 1e-6) / (enclose + 1e-6)


def _corner_area(top_left: Tensor, bottom_right: Tensor) -> Tensor:
    """Area of the boxes spanned by ``top_left`` / ``bottom_right`` [..., 2] (0 when empty) -> [...]."""
    wh = (bottom_right - top_left).clamp(min=0)
    return wh[..., 0] * wh[..., 1]
