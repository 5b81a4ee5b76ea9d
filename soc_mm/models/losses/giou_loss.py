"""GIoU loss with the epsilon placement of SOC/DETR-style code (``soc_mm.structures.soc_generalized_box_iou``)."""
from typing import Optional

from mmdet.models.losses.utils import weighted_loss
from torch import Tensor, nn

from soc_mm.registry import MODELS
from soc_mm.structures import soc_generalized_box_iou


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
