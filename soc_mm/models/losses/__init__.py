from .contrastive_loss import QuerySentenceContrastiveLoss
from .giou_loss import SOCGIoULoss

__all__ = ['QuerySentenceContrastiveLoss', 'SOCGIoULoss']
