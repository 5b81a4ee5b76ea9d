"""COCO segmentation mAP as SOC computes it: pycocotools ``COCOeval(iouType='segm')``
with ``useCats=0`` (one category) over the masks of all queries with their scores.

Masks, RLE and the ground-truth layout are ``soc_mm.structures.mask``'s (shared with the datasets)."""
import contextlib
import io
import warnings
from typing import Dict, List, Tuple, Union

COCO_SEGM_KEYS = ('mAP', 'AP50', 'AP75', 'AP_s', 'AP_m', 'AP_l')


def load_coco_gt(gt: Union[str, dict]):
    """pycocotools ``COCO`` of a ground-truth json file or of a dict from
    ``soc_mm.structures.coco_gt_dict``, indexed without COCO's prints."""
    from pycocotools.coco import COCO
    if isinstance(gt, str):
        from soc_mm.datasets.utils import read_json
        path, gt = gt, read_json(gt, 'COCO ground truth')  # a repeated key is an error naming the file
        if not isinstance(gt, dict):
            raise ValueError(f'COCO ground truth {path}: expected a json object with "images" and "annotations"')
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
    return coco


def coco_segm_eval(coco_gt, predictions: List[dict]) -> Tuple[Dict[str, float], str]:
    """Run COCOeval (segm, ``useCats=0``).

    Args:
        coco_gt: pycocotools ``COCO`` ground truth.
        predictions: ``dict(image_id, category_id=1, segmentation=RLE, score)`` per mask.

    Returns:
        (``{'mAP', 'AP50', 'AP75', 'AP_s', 'AP_m', 'AP_l'}``, COCOeval's printed summary)
    """
    from pycocotools.cocoeval import COCOeval
    if not predictions:
        raise ValueError('no predicted masks: cannot compute COCO mAP')
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        coco_dt = coco_gt.loadRes(predictions)
        coco_eval = COCOeval(coco_gt, coco_dt, iouType='segm')
        coco_eval.params.useCats = 0  # one category: RVOS predicts no classes
        coco_eval.evaluate()
        coco_eval.accumulate()
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        coco_eval.summarize()
    return {k: float(v) for k, v in zip(COCO_SEGM_KEYS, coco_eval.stats[:6])}, summary.getvalue()
