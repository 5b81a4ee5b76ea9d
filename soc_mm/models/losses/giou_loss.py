"""GIoU with the epsilon placement of SOC/DETR-style code (box cost and loss)."""
from typing import Optional

import torch
from mmdet.models.losses.utils import weighted_loss
from torch import Tensor, nn

from soc_mm.registry import MODELS


def soc_generalized_box_iou(boxes1: Tensor, boxes2: Tensor, is_aligned: bool = False) -> Tensor:
    """GIoU of xyxy boxes: ``(I + 1e-6) / (U + 1e-6) - (E - U + 1e-6) / (E + 1e-6)``.

    mmdet's ``bbox_overlaps`` clamps ``U`` and ``E`` at eps instead of adding eps to numerator
    and denominator; for the all-zero boxes of absent objects that differs by ~1e-6 / area, so
    the official formula is kept.

    Args:
        boxes1 (Tensor): [N, 4] xyxy.
        boxes2 (Tensor): [M, 4] xyxy ([N, 4] when ``is_aligned``).
        is_aligned (bool): element-wise (-> [N]) instead of pairwise (-> [N, M]).
    """
    if not is_aligned:
        boxes1 = boxes1[:, None]
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    lt = torch.max(boxes1[..., :2], boxes2[..., :2])
    rb = torch.min(boxes1[..., 2:], boxes2[..., 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1 + area2 - inter
    iou = (inter + 1e-6) / (union + 1e-6)
    lt = torch.min(boxes1[..., :2], boxes2[..., :2])
    rb = torch.max(boxes1[..., 2:], boxes2[..., 2:])
    wh = (rb - lt).clamp(min=0)
    enclose = wh[..., 0] * wh[..., 1]
    return iou - ((enclose - union) + 1e-6) / (enclose + 1e-6)


@weighted_loss
def soc_giou_loss(pred: Tensor, target: Tensor) -> Tensor:
    """1 - GIoU of aligned xyxy boxes [N, 4] -> [N]."""
    return 1 - soc_generalized_box_iou(pred, target, is_aligned=True)


@MODELS.register_module()
class SOCGIoULoss(nn.Module):
    """GIoU loss on xyxy boxes with SOC's epsilon placement (see ``soc_generalized_box_iou``).

    Args:
        reduction (str): 'none' | 'mean' | 'sum'.
        loss_weight (float): multiplier.
    """

    def __init__(self, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__()
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None, reduction_override: Optional[str] = None) -> Tensor:
        """pred/target [N, 4] xyxy -> scalar (or [N] with reduction 'none')."""
        reduction = reduction_override or self.reduction
        if pred.numel() == 0:
            return pred.sum() * 0
        return self.loss_weight * soc_giou_loss(pred, target, weight, reduction=reduction,
                                                avg_factor=avg_factor)
