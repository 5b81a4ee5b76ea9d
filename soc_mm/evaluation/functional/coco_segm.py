"""COCO segmentation mAP as SOC computes it: pycocotools ``COCOeval(iouType='segm')``
with ``useCats=0`` (one category) over the masks of all queries with their scores."""
import contextlib
import io
import warnings
from typing import Dict, Hashable, List, Sequence, Tuple

import numpy as np

COCO_SEGM_KEYS = ('mAP', 'AP50', 'AP75', 'AP_s', 'AP_m', 'AP_l')


def encode_mask(mask: np.ndarray) -> dict:
    """Binary mask ``[H, W]`` -> COCO RLE with ``counts`` as str."""
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def decode_mask(rle: dict) -> np.ndarray:
    """COCO RLE -> bool mask ``[H, W]``."""
    from pycocotools import mask as mask_utils
    rle = dict(rle)
    if isinstance(rle['counts'], str):
        rle['counts'] = rle['counts'].encode('ascii')
    with warnings.catch_warnings():  # pycocotools' numpy-2 copy-keyword DeprecationWarning
        warnings.simplefilter('ignore', DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def build_coco_gt(images: Sequence[Tuple[Hashable, int, int, dict]]):
    """In-memory COCO ground truth: one image per ``(img_id, height, width, rle)``
    with one annotation (category 1), laid out like SOC's ``create_gt_in_coco_format``."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    annotations = []
    for ann_id, (img_id, height, width, rle) in enumerate(images, start=1):  # ids from 1, as COCOeval expects
        annotations.append(dict(id=ann_id, image_id=img_id, category_id=1, segmentation=rle,
                                area=float(mask_utils.area(rle)),
                                bbox=mask_utils.toBbox(rle).tolist(), iscrowd=0))
    dataset = dict(images=[dict(id=i, height=int(h), width=int(w)) for i, h, w, _ in images],
                   annotations=annotations, categories=[dict(id=1, name='referred_object')])
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
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
