"""RefCOCO/+/g segmentation metrics of SOC's image pretraining."""
from typing import Optional, Sequence

from soc_mm.registry import METRICS
from .a2d_sentences_metric import A2DSentencesMetric


@METRICS.register_module()
class RefCOCOSegMetric(A2DSentencesMetric):
    """SOC's RefCOCO evaluation: COCO segm mAP (``useCats=0``) over all queries' masks and
    overall IoU / mean IoU / P@0.5:0.9 of the top-scoring mask, against the
    ``instances_refcoco*_val.json`` ground truth (one annotation per image id = expression).

    Not mmdet's ``RefSegMetric``: that one reports only cIoU and mIoU (x100), scores an
    empty-vs-empty frame 0 instead of SOC's 1 (IoU with +1e-6), has no P@K or mAP, and reads
    ``gt_masks`` / ``pred_instances`` of image data samples.

    Same inputs as :class:`A2DSentencesMetric` with one evaluated frame per pseudo-clip;
    the COCO image id comes from metainfo ``img_id`` (or ``coco_img_ids``).

    Args:
        ann_file (str): COCO-format ground truth of the split (required).
        metric, iou_thrs, collect_device, prefix, collect_dir: see :class:`A2DSentencesMetric`.
    """
    default_prefix = 'refcoco'

    def __init__(self,
                 ann_file: str,
                 metric: Sequence[str] = ('iou', 'map'),
                 iou_thrs: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        if ann_file is None:
            raise ValueError('RefCOCOSegMetric needs ann_file (e.g. instances_refcoco_val.json)')
        super().__init__(ann_file=ann_file, metric=metric, iou_thrs=iou_thrs,
                         collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
