"""Binary masks as COCO RLE, and the COCO-format ground truth of the referring-segmentation mAP.

One helper for every place that handles these: the datasets' ground-truth writers
(``create_a2d_coco_gt`` / ``create_jhmdb_coco_gt``, run by ``tools/dataset_converters/create_coco_gt.py``)
and the metrics (masks gathered across ranks as RLE; ``A2DSentencesMetric``'s in-memory ground truth).

The ground truth is laid out as SOC's (MTTR's) ``create_gt_in_coco_format``: one image per evaluated
frame, one annotation per image (the referred object), annotation ids from 1 and the single category
``{'id': 1, 'name': 'dummy_class'}`` (RVOS predicts no classes; the mAP runs with ``useCats=0``, so
the category only has to exist).
"""
import numbers
import warnings
from typing import Any, Hashable, Iterable, List, Optional, Sequence, Tuple

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


def _compressed_run_lengths(counts: bytes) -> Optional[np.ndarray]:
    """Run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``), int64 ``[m]``; None when
    the string is malformed (a character outside ``'0'..'o'``, or a number cut off at the end).

    Each number is written in groups of 5 bits (6th bit: "more follows", 5th bit of the last group: sign);
    from the 4th number on, each is stored as the difference to the number two places before it.
    """
    chars = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if chars.size == 0:
        return np.zeros(0, dtype=np.int64)
    if chars.min() < 0 or chars.max() > 63 or chars[-1] & 0x20:
        return None
    ends = np.flatnonzero((chars & 0x20) == 0)  # last group of each number
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    if lengths.max() > 12:  # more than 60 bits: no run length of a real image
        return None
    shift = 5 * (np.arange(chars.size) - np.repeat(starts, lengths))
    values = np.add.reduceat((chars & 0x1f) << shift, starts)
    negative = (chars[ends] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * lengths[negative])
    runs = values.copy()
    # from the 4th number on, each is a difference to the one two places before: running sums over the
    # odd positions and over the even positions from the 3rd
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def check_rle(rle: Any, where: str, size: Optional[Sequence[int]] = None, size_from: str = '') -> dict:
    """The one check of a COCO RLE read from a file (MeViS ``mask_dict.json``: dataset, metric, evaluator).

    Accepted: ``{'size': [H, W], 'counts': c}`` with ``c`` a compressed RLE string (``str``, as in the
    json files, or ``bytes``, as pycocotools returns it) or an uncompressed list of run lengths (ints);
    the run lengths must be non-negative and cover exactly ``H * W`` pixels (pycocotools' decoder does
    not check this: a shorter RLE would decode as a partial mask, a longer one would write past it).

    Args:
        rle: the entry as read.
        where (str): names the entry in errors (file, key, frame).
        size (tuple, optional): the expected ``(H, W)`` (the frames' size).
        size_from (str): where ``size`` comes from, named in the size error.

    Returns:
        dict: ``{'size': [H, W], 'counts': bytes}`` (compressed), ready for ``pycocotools.mask.decode``.

    Raises:
        ValueError: naming ``where`` and what was expected.
    """
    expected = ("a COCO RLE {'size': [H, W], 'counts': str} (compressed; bytes or a list of run lengths "
                'are also accepted)')
    if not isinstance(rle, dict) or 'size' not in rle or 'counts' not in rle:
        raise ValueError(f'{where}: expected {expected}, got {str(rle)[:60]}')
    rle_size, counts = rle['size'], rle['counts']
    if not isinstance(rle_size, (list, tuple)) or len(rle_size) != 2 or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 0 for s in rle_size):
        raise ValueError(f'{where}: "size" must be [H, W] (two integers >= 0), got {str(rle_size)[:40]}')
    height, width = int(rle_size[0]), int(rle_size[1])
    if size is not None and (height, width) != tuple(int(s) for s in size):
        source = f' ({size_from})' if size_from else ''
        raise ValueError(f'{where}: RLE size [{height}, {width}] (H, W) but the frames of the video are '
                         f'{[int(s) for s in size]}{source}')
    if isinstance(counts, str):
        try:
            counts = counts.encode('ascii')
        except UnicodeEncodeError:
            raise ValueError(f'{where}: "counts" is not a compressed COCO RLE string (non-ASCII characters)') \
                from None
    if isinstance(counts, bytes):
        runs = _compressed_run_lengths(counts)
        if runs is None:
            raise ValueError(f'{where}: "counts" {str(rle["counts"])[:40]!r} is not a valid compressed COCO RLE '
                             'string')
    elif isinstance(counts, list):
        if not all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in counts):
            raise ValueError(f'{where}: "counts" must be a string (compressed RLE) or a list of integer run '
                             f'lengths, got {str(counts)[:40]}')
        runs = np.asarray(counts, dtype=np.int64)
    else:
        raise ValueError(f'{where}: "counts" must be a string (compressed RLE), bytes or a list of run lengths, '
                         f'got {type(counts).__name__}')
    if runs.size and runs.min() < 0:
        raise ValueError(f'{where}: the RLE has a negative run length ({int(runs.min())}); the "counts" are '
                         'corrupt')
    total = int(runs.sum())
    if total != height * width:
        raise ValueError(f'{where}: the RLE counts cover {total} pixels but its size [{height}, {width}] has '
                         f'{height * width} (the counts must cover every pixel exactly once)')
    if isinstance(counts, list):
        from pycocotools import mask as mask_utils
        counts = mask_utils.frPyObjects({'size': [height, width], 'counts': list(map(int, counts))},
                                        height, width)['counts']
    return {'size': [height, width], 'counts': counts}


def decode_mask(rle: dict, where: str = 'COCO RLE', size: Optional[Sequence[int]] = None,
                size_from: str = '') -> np.ndarray:
    """COCO RLE -> bool mask ``[H, W]``.

    The RLE is checked first (:func:`check_rle`: ``counts`` as str, bytes or a list of run lengths covering
    exactly ``H * W`` pixels; ``size`` the expected (H, W) when given); else a ValueError naming ``where``.
    """
    from pycocotools import mask as mask_utils
    rle = check_rle(rle, where, size=size, size_from=size_from)
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
