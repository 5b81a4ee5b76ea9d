"""Binary masks as COCO RLE, and the COCO-format ground truth of the referring-segmentation mAP.

One helper for every place that handles these: the datasets' ground-truth writers
(``create_a2d_coco_gt`` / ``create_jhmdb_coco_gt``, run by ``tools/dataset_converters/create_coco_gt.py``)
and the metrics (masks gathered across ranks as RLE; ``A2DSentencesMetric``'s in-memory ground truth).

The ground truth is laid out as SOC's (MTTR's) ``create_gt_in_coco_format``: one image per evaluated
frame, one annotation per image (the referred object), annotation ids from 1 and the single category
``{'id': 1, 'name': 'dummy_class'}`` (RVOS predicts no classes; the mAP runs with ``useCats=0``, so
the category only has to exist).
"""
import warnings
from typing import Hashable, Iterable, List, Optional, Sequence, Tuple

import numpy as np

#: the one category of RVOS ground truth (SOC's name and id).
COCO_GT_CATEGORY = {'id': 1, 'name': 'dummy_class'}


def encode_mask(mask: np.ndarray) -> dict:
    """Binary mask ``[H, W]`` (bool or 0/1) -> COCO RLE ``{'size': [H, W], 'counts': str}``.

    ``counts`` is a str (json-serialisable, as in SOC's ground-truth files).
    """
    from pycocotools import mask as mask_utils
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f'encode_mask: expects one mask [H, W], got shape {mask.shape}')
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def decode_mask(rle: dict) -> np.ndarray:
    """COCO RLE (``counts`` as str or bytes) -> bool mask ``[H, W]``."""
    from pycocotools import mask as mask_utils
    rle = dict(rle)
    if isinstance(rle['counts'], str):
        rle['counts'] = rle['counts'].encode('ascii')
    with warnings.catch_warnings():  # pycocotools' numpy-2 copy-keyword DeprecationWarning
        warnings.simplefilter('ignore', DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def coco_gt_dict(frames: Iterable[Tuple[Hashable, dict, Optional[Sequence[float]]]],
                 source: str = 'COCO ground truth') -> dict:
    """COCO-format ground truth of the referred object in each evaluated frame.

    Args:
        frames: one ``(image_id, rle, bbox)`` per evaluated frame: its COCO image id, the referred
            object's mask as RLE (:func:`encode_mask`; its ``size`` gives the image height and
            width) and its box ``[x, y, w, h]`` in pixels, or None to leave ``bbox`` out (SOC's
            JHMDB file has none; the segm mAP does not read it).
        source (str): what the frames come from, named in the error for a repeated image id.

    Returns:
        dict: ``{'categories': [COCO_GT_CATEGORY], 'images': [{'id', 'height', 'width'}],
        'annotations': [{'id', 'image_id', 'category_id': 1, 'segmentation', 'area', ['bbox',]
        'iscrowd': 0}]}`` with annotation ids 1, 2, ... in the order of ``frames``.
    """
    from pycocotools import mask as mask_utils
    images: List[dict] = []
    annotations: List[dict] = []
    seen = set()
    for image_id, rle, bbox in frames:
        if image_id in seen:
            raise ValueError(f'{source}: image id {image_id!r} appears twice (one referred object per '
                             'evaluated frame expected)')
        seen.add(image_id)
        height, width = (int(s) for s in rle['size'])
        images.append({'id': image_id, 'height': height, 'width': width})
        annotation = {'id': len(annotations) + 1, 'image_id': image_id, 'category_id': COCO_GT_CATEGORY['id'],
                      'segmentation': rle, 'area': float(mask_utils.area(rle))}
        if bbox is not None:
            annotation['bbox'] = [float(v) for v in bbox]
        annotation['iscrowd'] = 0
        annotations.append(annotation)
    return {'categories': [dict(COCO_GT_CATEGORY)], 'images': images, 'annotations': annotations}
