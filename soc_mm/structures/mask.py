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
from typing import Any, Callable, Hashable, Iterable, List, Optional, Sequence, Tuple

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


#: the most 5-bit groups one number of a compressed RLE string may use. pycocotools' ``rleFrString`` shifts
#: each group as a C ``int`` (32 bits): a 7th group (shift 30 or more) wraps or is undefined, so pycocotools
#: would read another number than the one written; 6 groups (30 bits with the sign) hold any run
#: of an image of fewer than 2**29 pixels exactly.
_MAX_GROUPS = 6
#: the most pixels (H * W) a COCO RLE may have here: pycocotools stores run lengths in 32-bit ``uint`` and
#: reads them with the 30-bit numbers above.
MAX_RLE_PIXELS = (1 << 29) - 1


def _run_length_stats(strings: Sequence[bytes]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse compressed COCO RLE strings (pycocotools' ``rleFrString``) in one vectorised pass.

    Each number is written in groups of 5 bits (6th bit: "more follows", 5th bit of the last group: the
    sign); from the 4th number of a string on, each is the difference to the number two places before.

    Args:
        strings: n compressed ``counts`` (bytes).

    Returns:
        (valid bool [n], total int64 [n], smallest run int64 [n]): ``valid`` False for a string with a
        character outside ``'0'..'o'``, a number cut off at its end or of more than :data:`_MAX_GROUPS`
        groups (total and smallest run are then 0); ``total`` the pixels its runs cover.
    """
    n = len(strings)
    valid = np.ones(n, dtype=bool)
    total = np.zeros(n, dtype=np.int64)
    smallest = np.zeros(n, dtype=np.int64)
    lens = np.fromiter(map(len, strings), dtype=np.int64, count=n)
    if not n or not lens.any():
        return valid, total, smallest
    chars = np.frombuffer(b''.join(strings), dtype=np.uint8) - np.uint8(48)  # '0'..'o' -> 0..63, others wrap
    offsets = np.concatenate([[0], np.cumsum(lens)])
    nonempty = lens > 0
    bad = np.zeros(n, dtype=bool)
    if chars.max() > 63:
        string_of_char = np.repeat(np.arange(n), lens)
        bad[string_of_char[chars > 63]] = True
    bad[nonempty] |= (chars[offsets[1:][nonempty] - 1] & 0x20) != 0  # the last number runs past the end
    if not bad.any():  # every number ends inside its string: numbers that are too wide
        ends = np.flatnonzero((chars & 0x20) == 0)
        starts = np.concatenate([[0], ends[:-1] + 1])
        groups = ends - starts + 1
        if groups.max() > _MAX_GROUPS:
            bad[np.searchsorted(offsets, ends[groups > _MAX_GROUPS], side='right') - 1] = True
    if bad.any():  # parse the well-formed strings alone
        keep = np.flatnonzero(~bad)
        sub = _run_length_stats([strings[i] for i in keep])
        valid[:] = False
        valid[keep], total[keep], smallest[keep] = sub
        return valid, total, smallest
    low = chars & 0x1f
    values = low[starts].astype(np.int64)
    for k in range(1, int(groups.max())):  # the k-th 5-bit group of the numbers that have one
        has = np.flatnonzero(groups > k)
        values[has] += low[starts[has] + k].astype(np.int64) << (5 * k)
    negative = (chars[ends] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * groups[negative])
    string_of_number = np.searchsorted(offsets, ends, side='right') - 1
    first_number = np.searchsorted(ends, offsets[:-1])  # of each string
    position = np.arange(ends.size) - first_number[string_of_number]  # within its string
    runs = values.copy()
    for parity in (1, 0):  # running sums along numbers 2, 4, 6, ... and 3, 5, 7, ... (1-based) of each string
        idx = np.flatnonzero((position & 1 == parity) & (position >= 1))
        if not idx.size:
            continue
        sums = np.cumsum(values[idx])
        chain_of = string_of_number[idx]
        chain_start = np.flatnonzero(np.concatenate([[True], chain_of[1:] != chain_of[:-1]]))
        before = np.concatenate([[0], sums])[chain_start]
        runs[idx] = sums - np.repeat(before, np.diff(np.concatenate([chain_start, [idx.size]])))
    first = first_number[nonempty]
    total[nonempty] = np.add.reduceat(runs, first)
    smallest[nonempty] = np.minimum.reduceat(runs, first)
    return valid, total, smallest


def check_rles(rles: Sequence[Any], where: Callable[[int], str], size: Optional[Sequence[int]] = None,
               size_from: str = '') -> List[dict]:
    """The one check of COCO RLEs read from a file (MeViS ``mask_dict.json``: the dataset, ``LoadRLEMasks``,
    the metric and the evaluator), for many RLEs at once (:func:`check_rle` for one).

    Accepted: ``{'size': [H, W], 'counts': c}`` with ``c`` a compressed RLE string (``str``, as in the
    json files, or ``bytes``, as pycocotools returns it) or an uncompressed list of run lengths (ints);
    the run lengths must be non-negative and cover exactly ``H * W`` pixels (pycocotools' decoder does
    not check this: a shorter RLE would decode as a partial mask, a longer one would write past it).

    Args:
        rles: the entries as read (no None: a missing mask is the caller's business).
        where (callable): ``where(i)`` names entry ``i`` in errors (file, key, frame).
        size (tuple, optional): the expected ``(H, W)`` of every entry (the frames' size).
        size_from (str): where ``size`` comes from, named in the size error.

    Returns:
        list[dict]: ``{'size': [H, W], 'counts': bytes}`` (compressed) per entry, ready for
        ``pycocotools.mask.decode``.

    Raises:
        ValueError: naming ``where(i)`` of the first bad entry and what was expected.
    """
    expected = ("a COCO RLE {'size': [H, W], 'counts': str} (compressed; bytes or a list of run lengths "
                'are also accepted)')
    sizes, compressed, lists = [], {}, {}
    for i, rle in enumerate(rles):
        if not isinstance(rle, dict) or 'size' not in rle or 'counts' not in rle:
            raise ValueError(f'{where(i)}: expected {expected}, got {str(rle)[:60]}')
        rle_size, counts = rle['size'], rle['counts']
        if not isinstance(rle_size, (list, tuple)) or len(rle_size) != 2 or not all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 0 for s in rle_size):
            raise ValueError(f'{where(i)}: "size" must be [H, W] (two integers >= 0), got {str(rle_size)[:40]}')
        height, width = int(rle_size[0]), int(rle_size[1])
        if size is not None and (height, width) != tuple(int(s) for s in size):
            source = f' ({size_from})' if size_from else ''
            raise ValueError(f'{where(i)}: RLE size [{height}, {width}] (H, W) but the frames of the video are '
                             f'{[int(s) for s in size]}{source}')
        if height * width > MAX_RLE_PIXELS:
            raise ValueError(f'{where(i)}: RLE size [{height}, {width}] (H, W) has {height * width} pixels, more '
                             f'than the {MAX_RLE_PIXELS} a COCO RLE may have here (pycocotools counts runs in 32 bits)')
        sizes.append((height, width))
        if isinstance(counts, str):
            try:
                counts = counts.encode('ascii')
            except UnicodeEncodeError:
                raise ValueError(f'{where(i)}: "counts" is not a compressed COCO RLE string (non-ASCII '
                                 'characters)') from None
        if isinstance(counts, bytes):
            compressed[i] = counts
        elif isinstance(counts, list):
            if not all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in counts):
                raise ValueError(f'{where(i)}: "counts" must be a string (compressed RLE) or a list of integer '
                                 f'run lengths, got {str(counts)[:40]}')
            lists[i] = counts
        else:
            raise ValueError(f'{where(i)}: "counts" must be a string (compressed RLE), bytes or a list of run '
                             f'lengths, got {type(counts).__name__}')
    stats = {}
    if compressed:
        valid, totals, smallest = _run_length_stats(list(compressed.values()))
        stats = {i: (bool(v), int(t), int(m)) for i, v, t, m in zip(compressed, valid, totals, smallest)}
    for i, counts in lists.items():  # Python integers: exact whatever their size (int64 would wrap)
        runs = [int(c) for c in counts]
        stats[i] = (True, sum(runs), min(runs) if runs else 0)
    checked = []
    for i, rle in enumerate(rles):
        (height, width), (valid, total, smallest) = sizes[i], stats[i]
        if not valid:
            raise ValueError(f'{where(i)}: "counts" {str(rle["counts"])[:40]!r} is not a valid compressed COCO '
                             'RLE string (characters \'0\'..\'o\'; each number at most 6 groups of 5 bits, '
                             'as pycocotools reads them)')
        if smallest < 0:
            raise ValueError(f'{where(i)}: the RLE has a negative run length ({smallest}); the "counts" are '
                             'corrupt')
        if total != height * width:
            raise ValueError(f'{where(i)}: the RLE counts cover {total} pixels but its size [{height}, {width}] '
                             f'has {height * width} (the counts must cover every pixel exactly once)')
        if i in lists:
            from pycocotools import mask as mask_utils
            counts = mask_utils.frPyObjects({'size': [height, width], 'counts': [int(c) for c in lists[i]]},
                                            height, width)['counts']
        else:
            counts = compressed[i]
        checked.append({'size': [height, width], 'counts': counts})
    return checked


def check_rle(rle: Any, where: str, size: Optional[Sequence[int]] = None, size_from: str = '') -> dict:
    """Check one COCO RLE read from a file: :func:`check_rles` (the same rules) for a single entry.

    Returns:
        dict: ``{'size': [H, W], 'counts': bytes}``. Raises ValueError naming ``where``.
    """
    return check_rles([rle], lambda _: where, size=size, size_from=size_from)[0]


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
