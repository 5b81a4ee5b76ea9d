from .contrastive_loss import QuerySentenceContrastiveLoss
from .giou_loss import SOCGIoULoss, soc_generalized_box_iou

__all__ = ['QuerySentenceContrastiveLoss', 'SOCGIoULoss', 'soc_generalized_box_iou']
