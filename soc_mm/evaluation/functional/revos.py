"""ReVOS (VISA, ECCV 2024) J, F, A, R and J&F, as VISA's ``tools/eval_revos.py`` + ``tools/metrics.py``
compute them, on their scale and with their rounding.

Inputs: predictions ``<pred_dir>/<video>/<exp_id>/<frame>.png`` (video names may contain ``/``, e.g.
``UVO/all/-fbscFfkh4M``: the folders are nested), the split's ``meta_expressions_valid_.json``
(``{"videos": {video: {"frames": [...], "expressions": {exp_id: {"exp", "anno_id": [...], "type_id"}}}}}``;
``type_id`` 0 referring, 1 reasoning, 2 no-target), ``mask_dict.json`` (``{str(anno_id): [COCO RLE or null per
frame]}``) and ``mask_dict_foreground.json`` (``{video: {"masks_rle": [COCO RLE per frame], ...}}``: the union
of every object the video's expressions refer to; VISA's ``tools/generate_foreground_mask.py`` writes it
next to ``mask_dict.json``; :func:`soc_mm.datasets.revos.revos_foreground_dict` computes the same).

Definitions (per expression and frame ``t``, with ``P_t`` the prediction, ``G_t`` the ground truth and
``B_t`` the video's foreground, all ``uint8 [H, W]``; ``H, W`` is the size of the expression's first PNG):

* ``P_t`` is the PNG read by ``cv2.imread(path, cv2.IMREAD_GRAYSCALE)``: its 8-bit values as stored (0/1,
  0/255, or a palette PNG's grey level), not binarised;
* ``G_t`` is the ``uint8`` **sum** of the RLE masks of the expression's ``anno_id`` list in frame ``t``
  (null entries skipped); ``B_t`` the foreground RLE of frame ``t``;
* **J** = ``|P != 0 & G != 0| / |P != 0 | G != 0|`` (1 when both are empty); **F** = the DAVIS boundary
  F-measure of ``P != 0`` against ``G != 0`` (one-pixel boundary maps, matched within a disk of radius
  ``ceil(0.008 * image diagonal)``), both :func:`soc_mm.evaluation.functional.jf_per_frame`;
* **A** (accuracy) = the fraction of pixels where ``G_t == P_t`` (values compared);
* **R** (robustness) = ``max(1 - neg / (pos + 1e-6), 0)`` with ``neg = sum((1 - G_t) * P_t)`` computed in
  ``uint8`` (both the subtraction and the product wrap modulo 256) and ``pos = sum(B_t)``: the false
  positives relative to the size of every annotated object of the video;
* an expression's J, F, A, R are the means over all frames of its video.

The official rules that change these numbers, reproduced by default; the summary's
``'rule_counts'`` (:data:`RULE_COUNTS_KEY`, a key beside the official ``referring`` / ``reason`` /
``overall``) says how many expressions each one touched:

1. ``missing_video``: every expression of a video without a folder ``<pred_dir>/<video>`` scores
   ``J = F = A = R = 0`` and counts in the means.
2. ``error_zero``: the official worker wraps each expression in ``try: ... except: [0, 0, 0, 0]``; every
   expression whose predictions cannot be read scores 0 silently: its folder missing in an existing video
   folder, a frame's PNG missing or unreadable, a PNG of another size than the first one or than the
   masks (numpy broadcasting rules: a PNG that broadcasts, e.g. ``1 x W``, is taken as broadcast). Each
   such expression's row says why (``status`` ``'error'``, ``error``); ``zero_on_error=False`` raises
   instead. Problems of the annotation files (a video without frames, an ``anno_id`` missing from
   ``mask_dict.json``, a per-frame list shorter than the video, a malformed RLE, a video missing from the
   foreground file or a null foreground entry) would also be zeros there; here they are errors naming the
   file, video, expression and field (they are not something a prediction can fix).
3. ``pixel_values``: J and F take every non-zero pixel as the object, but A compares the values and R
   multiplies them: with 0/255 PNGs (what VISA's own inference writes: ``Image.fromarray(mask * 255)``)
   A counts only the pixels where both are background, and a false-positive pixel adds 255 to ``neg``
   (``(1 - G) * P`` in uint8), so R drops to 0 as soon as the false positives exceed 1/255 of the
   foreground. Counted: expressions with a predicted value other than 0 and 1. ``binary_predictions=True``
   reads every non-zero pixel as 1 (as a 0/1 PNG).
4. ``overlap_sum``: where k >= 2 of the expression's objects overlap, ``G`` is k: J and F do not change,
   A counts the pixel wrong unless the PNG holds k, and R adds ``((1 - k) * P) mod 256`` (255 for k = 2
   and a 0/1 PNG, 1 for a 0/255 one): a correct prediction there counts as 255 false-positive pixels.
   Counted: expressions whose ground truth has a pixel of two or more of their objects.
   ``union_overlaps=True`` uses the union (0/1) instead.
5. ``rounding``: each expression's ``100 * J``, ``100 * F``, ``100 * A``, ``100 * R`` and
   ``100 * (J + F) / 2`` are rounded to 2 decimals (Python ``round`` of a numpy float64) before anything is
   averaged. A table's J, F, A, R are the means of the rounded values over its expressions and its JF is
   ``(J + F) / 2`` of those means (not the mean of the rounded per-expression JF). Counted: expressions
   with a number that the rounding changed. ``round_expressions=False`` averages unrounded values.
6. ``no_target_excluded``: ``referring`` averages the ``type_id == 0`` expressions, ``reason`` the
   ``type_id == 1`` ones, and ``overall`` is the mean of the two tables (not a mean over expressions);
   no-target expressions (``type_id == 2``) are scored (their rows are there) but in no table. A table
   without expressions is NaN (``np.mean([])``), and so is ``overall`` then. Counted: type-2 expressions.

Scale: the tables are in percent (0-100), as the official json. The official script averages the
expressions in the order its worker processes finished them; here in the order of the meta file (the
sums may differ in the last bits, ~1e-14). Where the official script would stop altogether (an expression
without ``exp`` or ``type_id``) we raise an error naming the file, video, expression and field; a
``type_id`` other than 0, 1, 2 is an error too (the official script would leave the expression out).

Memory: ``mask_dict.json`` and ``mask_dict_foreground.json`` are indexed once
(:class:`~soc_mm.evaluation.functional.lazy_json.LazyJsonObject`, byte offsets only); each expression
reads and decodes its own objects' RLEs and its video's foreground, one frame at a time. Worker
processes receive the index, not the data.
"""
import multiprocessing
import os.path as osp
import pickle
import traceback
import warnings
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from soc_mm.datasets.utils import first_repeated, json_key, read_json
from soc_mm.structures.mask import check_rles
from .jf import jf_per_frame
from .mevis import check_png_size, warn_16_bit

#: the official F boundary tolerance (fraction of the image diagonal).
REVOS_BOUND_TH = 0.008
#: ``type_id`` -> what the expression is; tables of the official json and the type_id each averages.
REVOS_TYPE_NAMES = {0: 'referring', 1: 'reasoning', 2: 'no-target'}
REVOS_TABLE_TYPES = OrderedDict([('referring', 0), ('reason', 1)])
REVOS_TABLES = ('referring', 'reason', 'overall')
#: the numbers of each table, in the official json's order.
REVOS_METRICS = ('J', 'F', 'A', 'R', 'JF')
#: the key of the summary that holds the rule counts (not an official key).
RULE_COUNTS_KEY = 'rule_counts'
#: the official rules counted in ``summary[RULE_COUNTS_KEY]`` (see the module docstring).
REVOS_RULES = ('missing_video', 'error_zero', 'pixel_values', 'overlap_sum', 'rounding', 'no_target_excluded')
#: R's denominator guard, as the official code.
_ROBUSTNESS_EPS = 1e-6

PathOrMapping = Union[str, Mapping[str, Any]]


class RevosPredictionError(Exception):
    """A prediction of one expression cannot be read as the official script reads it (it would score the
    expression 0). ``kind``: ``'missing_expression'``, ``'missing_png'``, ``'unreadable_png'`` or
    ``'size_mismatch'``."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind

    def __reduce__(self):
        return type(self), (self.kind, str(self))


class WorkerTraceback(Exception):
    """The traceback text of an error raised in a worker process (the ``__cause__`` of the error re-raised
    in the caller)."""


# ------------------------------------------------------------------ annotation files
def load_revos_meta(meta_file: str) -> 'OrderedDict[str, dict]':
    """Read and check a ReVOS ``meta_expressions_{train,valid}_.json``.

    Args:
        meta_file (str): ``{"videos": {video: {"frames": [str, ...], "expressions": {exp_id: {"exp": str,
            "anno_id": [int, ...], "type_id": 0 | 1 | 2, ...}}, ...}}}``.

    Returns:
        OrderedDict: ``{video: {"frames": [str], "expressions": {exp_id: {"exp": str, "anno_id": [str],
        "type_id": int}}}}`` in file order (``anno_id`` entries as the ``str`` keys of ``mask_dict.json``).

    Raises:
        FileNotFoundError, ValueError: naming the file, video, expression and field.
    """
    if not osp.isfile(meta_file):
        raise FileNotFoundError(f'ReVOS meta_expressions file {meta_file} not found')
    data = read_json(meta_file, 'ReVOS meta_expressions file')
    videos = data.get('videos') if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        raise ValueError(f"{meta_file}: expected {{'videos': {{video: {{...}}}}}} at the top level")
    checked = OrderedDict()
    for video_id, video in videos.items():
        where = f'{meta_file}: field videos[{json_key(video_id)}]'
        if not isinstance(video, dict):
            raise ValueError(f'{where} is a {type(video).__name__}, expected a dict')
        frames = video.get('frames')
        if not isinstance(frames, list) or not frames or not all(isinstance(f, str) for f in frames):
            raise ValueError(f'{where}["frames"] must be a non-empty list of frame names (str), got '
                             f'{str(frames)[:80]}')
        if first_repeated(frames) is not None:
            raise ValueError(f'{where}["frames"] lists frame {first_repeated(frames)!r} twice')
        expressions = video.get('expressions')
        if not isinstance(expressions, dict):
            raise ValueError(f'{where}["expressions"] must be a dict {{exp_id: {{"exp", "anno_id", "type_id"}}}}, '
                             f'got {type(expressions).__name__}')
        exps = OrderedDict()
        for exp_id, exp in expressions.items():
            exp_where = f'{where}["expressions"][{json_key(exp_id)}]'
            if not isinstance(exp, dict):
                raise ValueError(f'{exp_where} is a {type(exp).__name__}, expected a dict')
            for key in ('exp', 'anno_id', 'type_id'):
                if key not in exp:
                    raise ValueError(f'{exp_where} lacks the key {json_key(key)} (found keys {sorted(exp)[:8]})')
            anno_ids = exp['anno_id']
            if not isinstance(anno_ids, list) or not all(
                    isinstance(a, (int, str)) and not isinstance(a, bool) for a in anno_ids):
                raise ValueError(f'{exp_where}["anno_id"] must be a list of annotation ids (the keys of '
                                 f'mask_dict.json; [] for no object), got {str(anno_ids)[:80]}')
            type_id = exp['type_id']
            if isinstance(type_id, bool) or type_id not in REVOS_TYPE_NAMES:
                raise ValueError(f'{exp_where}["type_id"] must be 0 (referring), 1 (reasoning) or 2 (no-target), '
                                 f'got {type_id!r}')
            exps[str(exp_id)] = dict(exp, anno_id=[str(a) for a in anno_ids], type_id=int(type_id))
        checked[str(video_id)] = dict(video, frames=list(frames), expressions=exps)
    return checked


def default_foreground_file(mask_dict_file: str) -> str:
    """Where VISA's ``generate_foreground_mask.py`` writes the foreground of ``mask_dict.json``:
    ``mask_dict_foreground.json`` beside it (``.json`` -> ``_foreground.json``)."""
    stem = mask_dict_file[:-len('.json')] if mask_dict_file.endswith('.json') else mask_dict_file
    return stem + '_foreground.json'


def open_revos_masks(masks: PathOrMapping, foreground_masks: Optional[PathOrMapping] = None
                     ) -> Tuple[Mapping[str, Any], Mapping[str, Any]]:
    """The mask dict and the foreground dict as lazily read mappings.

    Args:
        masks: path of ``mask_dict.json`` (indexed, :class:`LazyJsonObject`) or a mapping
            ``{str(anno_id): [RLE or None per frame]}``.
        foreground_masks: path of ``mask_dict_foreground.json`` or a mapping ``{video: {"masks_rle":
            [...]}}``; None: :func:`default_foreground_file` of ``masks``.

    Raises:
        FileNotFoundError: a file is missing (the foreground one names the option to give it).
    """
    from .lazy_json import LazyJsonObject
    if isinstance(masks, str):
        if not osp.isfile(masks):
            raise FileNotFoundError(f'ReVOS mask_dict file {masks} not found')
        mask_map = LazyJsonObject(masks, 'ReVOS mask_dict file')
    else:
        mask_map = masks
    if foreground_masks is None:
        if not isinstance(masks, str):
            raise ValueError('ReVOS: foreground_masks is required when masks is not a file path')
        foreground_masks = default_foreground_file(masks)
        if not osp.isfile(foreground_masks):
            raise FileNotFoundError(
                f'ReVOS foreground masks {foreground_masks} not found (the robustness score R needs the '
                "foreground of every video: VISA's tools/generate_foreground_mask.py writes it beside "
                'mask_dict.json; give its path as foreground_masks)')
    if isinstance(foreground_masks, str):
        if not osp.isfile(foreground_masks):
            raise FileNotFoundError(f'ReVOS foreground masks file {foreground_masks} not found')
        foreground_map = LazyJsonObject(foreground_masks, 'ReVOS mask_dict_foreground file')
    else:
        foreground_map = foreground_masks
    return mask_map, foreground_map


def _source(mapping: Mapping, default: str) -> str:
    return getattr(mapping, 'path', default)


def check_revos_annotation_keys(videos: Mapping[str, dict], masks: Mapping[str, Any],
                                foreground: Mapping[str, Any], meta_file: str = 'meta_expressions') -> None:
    """Every ``anno_id`` of the meta file is a key of the mask dict and every video one of the foreground
    dict (checked before anything is scored; the values are checked where they are read)."""
    for video_id, video in videos.items():
        if video_id not in foreground:
            raise ValueError(f'{_source(foreground, "foreground masks")}: no key {json_key(video_id)} for video '
                             f'{video_id!r} of {meta_file} (R needs the foreground of every video)')
        for exp_id, exp in video['expressions'].items():
            for anno_id in exp['anno_id']:
                if anno_id not in masks:
                    raise ValueError(
                        f'{_source(masks, "mask_dict")}: no key {json_key(anno_id)} for anno_id {anno_id} of video '
                        f'{video_id!r} expression {exp_id!r} (field videos[{json_key(video_id)}]["expressions"]'
                        f'[{json_key(exp_id)}]["anno_id"] of {meta_file})')


def _checked_frame_list(value: Any, num_frames: int, where: str) -> list:
    if not isinstance(value, list) or len(value) < num_frames:
        got = f'{len(value)} entries' if isinstance(value, list) else f'a {type(value).__name__}'
        raise ValueError(f'{where}: expected a list with an entry for each of the video\'s {num_frames} frames, '
                         f'got {got}')
    return value


def _decode_rles(rles: Sequence[Any], where) -> List[np.ndarray]:
    """COCO RLEs (checked: :func:`soc_mm.structures.mask.check_rles`) -> uint8 0/1 masks ``[H, W]``,
    as ``pycocotools.mask.decode`` gives them."""
    from pycocotools import mask as mask_utils
    checked = check_rles(list(rles), where)
    with warnings.catch_warnings():  # pycocotools' numpy-2 copy-keyword DeprecationWarning
        warnings.simplefilter('ignore', DeprecationWarning)
        return [mask_utils.decode(rle) for rle in checked]


class RevosTruth:
    """The ground truth and the foreground of one expression, decoded one frame at a time.

    Args:
        masks, foreground: the mask dict and the foreground dict (:func:`open_revos_masks`).
        video_id (str), video (dict): the video as :func:`load_revos_meta` returns it.
        exp_id (str): the expression.
        union_overlaps (bool): the union of the objects instead of the official ``uint8`` sum.

    Raises (at construction and in :meth:`frame`): ValueError naming the file, key, video, expression and
    frame for a malformed annotation; :class:`RevosPredictionError` ``'size_mismatch'`` when an RLE does
    not fit the prediction's size.
    """

    def __init__(self, masks: Mapping[str, Any], foreground: Mapping[str, Any], video_id: str, video: dict,
                 exp_id: str, union_overlaps: bool = False):
        self.video_id, self.exp_id = video_id, exp_id
        self.frames = video['frames']
        self.union_overlaps = union_overlaps
        num_frames = len(self.frames)
        self.where = f'video {video_id!r} expression {exp_id!r}'
        mask_src, fg_src = _source(masks, 'mask_dict'), _source(foreground, 'foreground masks')
        self.objects = []
        for anno_id in video['expressions'][exp_id]['anno_id']:
            if anno_id not in masks:
                raise ValueError(f'{mask_src}: no key {json_key(anno_id)} for anno_id {anno_id} of {self.where}')
            where = f'{mask_src}[{json_key(anno_id)}] (anno_id {anno_id} of {self.where})'
            self.objects.append((where, _checked_frame_list(masks[anno_id], num_frames, where)))
        if video_id not in foreground:
            raise ValueError(f'{fg_src}: no key {json_key(video_id)} for video {video_id!r}')
        entry = foreground[video_id]
        where = f'{fg_src}[{json_key(video_id)}]["masks_rle"]'
        if not isinstance(entry, dict) or 'masks_rle' not in entry:
            raise ValueError(f'{fg_src}[{json_key(video_id)}]: expected {{"masks_rle": [RLE per frame], ...}}, got '
                             f'{str(entry)[:60]}')
        self.foreground = (where, _checked_frame_list(entry['masks_rle'], num_frames, where))

    def frame(self, t: int, shape: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
        """``(G_t, B_t)``: uint8 ``[H, W]`` ground truth (sum, or union, of the objects) and foreground of
        frame ``t`` at the prediction's ``shape``."""
        frame = self.frames[t]
        gt = np.zeros(shape, np.uint8)
        present = [(where, rles[t]) for where, rles in self.objects if rles[t]]  # null (or empty) entries: skipped
        decoded = _decode_rles([rle for _, rle in present],
                               lambda i: f'{present[i][0]}, frame {frame!r} (index {t})')
        for (where, _), mask in zip(present, decoded):
            try:
                if self.union_overlaps:
                    np.bitwise_or(gt, mask, out=gt)
                else:
                    gt += mask  # uint8, as the official accumulation
            except ValueError:
                raise RevosPredictionError(
                    'size_mismatch', f'{self.where}: the prediction of frame {frame!r} is {shape[0]}x{shape[1]} '
                    f'(H x W) but {where} is {mask.shape[0]}x{mask.shape[1]}') from None
        where, rles = self.foreground
        entry = rles[t]
        fg_where = f'{where}[{t}] (frame {frame!r})'
        if isinstance(entry, list) and entry:  # several RLEs: pycocotools decodes [H, W, n]; summed, then uint8
            parts = _decode_rles(entry, lambda i: f'{fg_where}[{i}]')
            fg_value = np.sum(np.stack(parts, axis=2), axis=2).astype(np.uint8)
        elif not entry:
            raise ValueError(f'{fg_where}: expected a COCO RLE (the foreground of every frame), got {entry!r}')
        else:
            fg_value = _decode_rles([entry], lambda i: fg_where)[0]
        fg = np.zeros(shape, np.uint8)
        try:
            fg[...] = fg_value
        except ValueError:
            raise RevosPredictionError(
                'size_mismatch', f'{self.where}: the prediction of frame {frame!r} is {shape[0]}x{shape[1]} (H x W) '
                f'but {fg_where} is {fg_value.shape[0]}x{fg_value.shape[1]}') from None
        return gt, fg


# ------------------------------------------------------------------ scores
def revos_frame_scores(pred: np.ndarray, gt: np.ndarray, foreground: np.ndarray,
                       bound_th: float = REVOS_BOUND_TH) -> Tuple[float, float, float, float]:
    """J, F, A, R of one frame (official definitions, see the module docstring).

    Args:
        pred (np.ndarray): uint8 ``[H, W]``, the PNG's values.
        gt (np.ndarray): uint8 ``[H, W]``, the sum of the expression's object masks.
        foreground (np.ndarray): uint8 ``[H, W]``, the video's foreground.

    Returns:
        (J, F, A, R) as floats.
    """
    j, f = jf_per_frame(pred != 0, gt != 0, bound_th=bound_th)
    # np.mean(gt == pred): a sum of 0.0/1.0 (exact) divided by the pixel count
    a = np.count_nonzero(gt == pred) / gt.size
    neg = np.sum((np.uint8(1) - gt) * pred)  # uint8: 1 - 2 = 255, 255 * 255 = 1 (mod 256); summed as uint64
    pos = np.sum(foreground)
    r = max(1 - neg / (pos + _ROBUSTNESS_EPS), 0.0)
    return float(j[0]), float(f[0]), float(a), float(r)


def round_scores(j: float, f: float, a: float, r: float) -> Dict[str, float]:
    """An expression's reported numbers: ``round(100 * x, 2)`` of J, F, A, R and ``100 * (J + F) / 2``
    (Python ``round`` of numpy float64, as the official script)."""
    j, f, a, r = (np.float64(x) for x in (j, f, a, r))
    return {'J': float(round(100 * j, 2)), 'F': float(round(100 * f, 2)), 'A': float(round(100 * a, 2)),
            'R': float(round(100 * r, 2)), 'JF': float(round(100 * (j + f) / 2, 2))}


def unrounded_scores(j: float, f: float, a: float, r: float) -> Dict[str, float]:
    """The numbers of :func:`round_scores` without the rounding."""
    j, f, a, r = (np.float64(x) for x in (j, f, a, r))
    return {'J': float(100 * j), 'F': float(100 * f), 'A': float(100 * a), 'R': float(100 * r),
            'JF': float(100 * (j + f) / 2)}


class RevosExpressionScorer:
    """J, F, A, R of one expression, accumulated one frame at a time (:meth:`add`, in frame order) and
    averaged over its frames (:meth:`result`); also records whether rules 3 and 4 applied.

    Args:
        bound_th (float): F boundary tolerance.
        binary_predictions (bool): read predicted values > 1 as 1 (not the official rule 3).
    """

    def __init__(self, bound_th: float, binary_predictions: bool):
        self.bound_th = bound_th
        self.binary_predictions = binary_predictions
        self.values: List[Tuple[float, float, float, float]] = []
        self.pixel_values = False  # a predicted value other than 0 and 1
        self.overlap = False  # a ground-truth pixel of two or more objects

    def add(self, pred: np.ndarray, gt: np.ndarray, fg: np.ndarray) -> None:
        if pred.size and pred.max() > 1:
            self.pixel_values = True
            if self.binary_predictions:
                pred = (pred != 0).view(np.uint8)
        if gt.size and gt.max() > 1:
            self.overlap = True
        self.values.append(revos_frame_scores(pred, gt, fg, self.bound_th))

    def result(self) -> Tuple[float, float, float, float]:
        """Means over the frames (``np.ndarray.mean``, as the official code)."""
        values = np.array(self.values, dtype=np.float64).T.copy()  # [4, T], each row contiguous
        return tuple(float(values[k].mean()) for k in range(4))


def read_prediction_png(path: str) -> np.ndarray:
    """``cv2.imread(path, cv2.IMREAD_GRAYSCALE)``: uint8 ``[H, W]`` as stored (8-bit; a 16-bit PNG as OpenCV
    converts it, with a :class:`PredictionBitDepthWarning` naming the file; a colour or palette PNG as its
    grey level). Unlike the official script, a file that is not a PNG (whatever its name) is unreadable here:
    its size cannot be bounded before OpenCV decodes it.

    Raises:
        RevosPredictionError: ``'missing_png'`` or ``'unreadable_png'``, naming the file.
    """
    if not osp.isfile(path):
        kind = 'missing_png' if osp.isdir(osp.dirname(path)) else 'missing_expression'
        what = 'PNG' if kind == 'missing_png' else 'folder ' + osp.dirname(path)
        raise RevosPredictionError(kind, f'missing prediction {what} (for {path})')
    try:
        bit_depth = check_png_size(path)[2]  # a PNG (not any format OpenCV decodes) of a bounded size, first
    except ValueError as error:
        raise RevosPredictionError('unreadable_png', str(error)) from None
    image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise RevosPredictionError('unreadable_png', f'unreadable prediction {path}: not an image OpenCV can '
                                   'decode')
    if bit_depth == 16:
        warn_16_bit(path, image != 0, official='ReVOS script (VISA eval_revos.py)')
    return image


def score_revos_expression(pred_dir: str, video_id: str, video: dict, exp_id: str, masks: Mapping[str, Any],
                           foreground: Mapping[str, Any], bound_th: float = REVOS_BOUND_TH,
                           binary_predictions: bool = False, union_overlaps: bool = False) -> dict:
    """J, F, A, R (fractions) of one expression whose video has a prediction folder, with its flags.

    Returns:
        dict: ``J``, ``F``, ``A``, ``R`` (floats in [0, 1]), ``pixel_values`` and ``overlap_sum`` (bools).

    Raises:
        RevosPredictionError: a prediction the official script cannot read (it scores the expression 0).
        ValueError: a malformed annotation (named).
    """
    frames = video['frames']
    exp_dir = osp.join(pred_dir, video_id, exp_id)
    first = read_prediction_png(osp.join(exp_dir, f'{frames[0]}.png'))
    shape = first.shape
    truth = RevosTruth(masks, foreground, video_id, video, exp_id, union_overlaps=union_overlaps)
    scorer = RevosExpressionScorer(bound_th, binary_predictions)
    for t, frame in enumerate(frames):
        image = first if t == 0 else read_prediction_png(osp.join(exp_dir, f'{frame}.png'))
        pred = np.zeros(shape, np.uint8)
        try:
            pred[...] = image  # numpy broadcasting, as the official assignment into its [T, H, W] array
        except ValueError:
            raise RevosPredictionError(
                'size_mismatch', f'prediction {osp.join(exp_dir, frame + ".png")} is {image.shape[0]}x'
                f'{image.shape[1]} (H x W) but {osp.join(exp_dir, frames[0] + ".png")} is {shape[0]}x{shape[1]}'
            ) from None
        gt, fg = truth.frame(t, shape)
        scorer.add(pred, gt, fg)
    j, f, a, r = scorer.result()
    return dict(J=j, F=f, A=a, R=r, pixel_values=scorer.pixel_values, overlap_sum=scorer.overlap)


# ------------------------------------------------------------------ tables
def revos_tables(rows: Sequence[Mapping[str, Any]]) -> Dict[str, Dict[str, float]]:
    """The official ``referring`` / ``reason`` / ``overall`` tables from per-expression rows (``type_id`` and
    the reported ``J``, ``F``, ``A``, ``R``; see the module docstring, rules 5-6).

    Returns:
        dict: ``{table: {'J', 'F', 'A', 'R', 'JF'}}`` (floats; NaN for a table without expressions).
    """
    tables = OrderedDict()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)  # the mean of no expression is NaN, as official
        for table, type_id in REVOS_TABLE_TYPES.items():
            chosen = [row for row in rows if row['type_id'] == type_id]
            means = {k: np.array([row[k] for row in chosen], dtype=np.float64).mean() for k in ('J', 'F', 'A', 'R')}
            means['JF'] = (means['J'] + means['F']) / 2
            tables[table] = {k: float(means[k]) for k in REVOS_METRICS}
    tables['overall'] = {k: float((np.float64(tables['referring'][k]) + np.float64(tables['reason'][k])) / 2)
                         for k in REVOS_METRICS}
    return tables


def revos_rule_counts(rows: Sequence[Mapping[str, Any]]) -> Dict[str, int]:
    """How many expressions each official rule touched (module docstring): ``expressions`` (all) and one
    count per name of :data:`REVOS_RULES`."""
    counts = {'expressions': len(rows)}
    counts['missing_video'] = sum(row['status'] == 'missing_video' for row in rows)
    counts['error_zero'] = sum(row['status'] == 'error' for row in rows)
    counts['pixel_values'] = sum(bool(row.get('pixel_values')) for row in rows)
    counts['overlap_sum'] = sum(bool(row.get('overlap_sum')) for row in rows)
    counts['rounding'] = sum(bool(row.get('rounded')) for row in rows)
    counts['no_target_excluded'] = sum(row['type_id'] == 2 for row in rows)
    return counts


def revos_row(video_id: str, exp_id: str, expression: dict, scores: Optional[Tuple[float, float, float, float]],
              status: str, error: str = '', pixel_values: bool = False, overlap_sum: bool = False,
              round_expressions: bool = True) -> dict:
    """One per-expression row: ``video``, ``exp_id``, ``exp``, ``type_id``, the reported ``J``, ``F``,
    ``A``, ``R``, ``JF`` (percent, rounded as official unless ``round_expressions=False``), ``status``
    (``'scored'``, ``'missing_video'``, ``'error'``), ``error`` (why it scored 0), the flags
    ``pixel_values`` / ``overlap_sum`` (rules 3-4) and ``rounded`` (rule 5 changed a number)."""
    j, f, a, r = scores if scores is not None else (0.0, 0.0, 0.0, 0.0)
    exact = unrounded_scores(j, f, a, r)
    reported = round_scores(j, f, a, r) if round_expressions else exact
    return dict(video=video_id, exp_id=exp_id, exp=expression['exp'], type_id=expression['type_id'], **reported,
                status=status, error=error, pixel_values=bool(pixel_values), overlap_sum=bool(overlap_sum),
                rounded=round_expressions and any(reported[k] != exact[k] for k in REVOS_METRICS))


def revos_summary(rows: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """The official tables (:func:`revos_tables`) plus ``summary[RULE_COUNTS_KEY]`` (:func:`revos_rule_counts`)."""
    summary: Dict[str, Any] = dict(revos_tables(rows))
    summary[RULE_COUNTS_KEY] = revos_rule_counts(rows)
    return summary


def official_summary(summary: Mapping[str, Any]) -> Dict[str, Dict[str, float]]:
    """Only the official keys (``referring``, ``reason``, ``overall``) of a :func:`revos_summary`: the json
    object VISA's ``eval_revos.py`` writes."""
    return {table: dict(summary[table]) for table in REVOS_TABLES}


# ------------------------------------------------------------------ evaluation of a prediction folder
_WORKER_STATE: dict = {}


def _init_worker(state: dict, failed=None) -> None:
    _WORKER_STATE.clear()
    _WORKER_STATE.update(state, failed=failed)


def _evaluate_expression(key: Tuple[str, str]) -> Tuple[str, Any]:
    """``('scored', dict)`` or ``('error', (kind, message))`` for one expression of a predicted video."""
    state = _WORKER_STATE
    video_id, exp_id = key
    try:
        scores = score_revos_expression(state['pred_dir'], video_id, state['videos'][video_id], exp_id,
                                        state['masks'], state['foreground'], bound_th=state['bound_th'],
                                        binary_predictions=state['binary_predictions'],
                                        union_overlaps=state['union_overlaps'])
    except RevosPredictionError as error:
        if not state['zero_on_error']:
            raise
        return 'error', (error.kind, str(error))
    return 'scored', scores


def _evaluate_expression_in_worker(key: Tuple[str, str]) -> tuple:
    """:func:`_evaluate_expression` in a worker process; never raises across the pool: ``('ok', result)``,
    ``('raised', exception, traceback text)`` or ``('skipped',)`` once another task has raised."""
    failed = _WORKER_STATE.get('failed')
    if failed is not None and failed.is_set():
        return ('skipped', )
    try:
        return ('ok', _evaluate_expression(key))
    except Exception as error:  # returned to the caller, which raises it
        if failed is not None:
            failed.set()
        text = traceback.format_exc()
        try:
            pickle.loads(pickle.dumps(error))
        except Exception:
            error = RuntimeError(f'{type(error).__name__}: {error}')
        return ('raised', error, text)


def _evaluate_in_processes(tasks: List[Tuple[str, str]], workers: int, state: dict) -> list:
    """The result of every task from ``workers`` processes, in task order; ends in bounded time (errors
    come back as values, the other workers then skip what is left, the pool is shut down with its
    pending tasks cancelled; a worker that dies breaks the pool, reported as a RuntimeError)."""
    context = multiprocessing.get_context()
    failed = context.Event()
    executor = ProcessPoolExecutor(min(workers, len(tasks)), mp_context=context, initializer=_init_worker,
                                   initargs=(state, failed))
    results = []
    try:
        futures = [executor.submit(_evaluate_expression_in_worker, task) for task in tasks]
        for future in futures:
            results.append(future.result())
            if results[-1][0] != 'ok':
                failed.set()
    except BrokenProcessPool as error:
        raise RuntimeError('a ReVOS evaluation worker process died (killed, or out of memory?) before returning '
                           'its result; run with workers=0 to see where') from error
    finally:
        failed.set()
        executor.shutdown(wait=True, cancel_futures=True)
    for task, result in zip(tasks, results):
        if result[0] == 'raised':
            _, error, text = result
            raise error from WorkerTraceback(f'in the worker evaluating video {task[0]!r}, expression '
                                             f'{task[1]!r}:\n{text}')
    if any(result[0] != 'ok' for result in results):  # cannot happen: a skip follows an error
        raise RuntimeError('ReVOS evaluation: a worker skipped a task but none reported an error')
    return [result[1] for result in results]


def evaluate_revos_predictions(pred_dir: str,
                               meta_expressions: str,
                               masks: PathOrMapping,
                               *,
                               foreground_masks: Optional[PathOrMapping] = None,
                               workers: int = 0,
                               zero_on_error: bool = True,
                               binary_predictions: bool = False,
                               union_overlaps: bool = False,
                               round_expressions: bool = True,
                               bound_th: float = REVOS_BOUND_TH) -> Tuple[Dict[str, Any], List[dict]]:
    """Score ReVOS predictions ``<pred_dir>/<video>/<exp_id>/<frame>.png`` as VISA's ``eval_revos.py``.

    Args:
        pred_dir (str): prediction folder.
        meta_expressions (str): the split's ``meta_expressions_valid_.json`` (or train).
        masks: ``mask_dict.json`` (path, indexed lazily; or a mapping ``{str(anno_id): [RLE or None]}``).
        foreground_masks: ``mask_dict_foreground.json`` (path or mapping ``{video: {"masks_rle": [...]}}``);
            None: ``mask_dict_foreground.json`` beside ``masks`` (:func:`default_foreground_file`).
        workers (int): 0 or 1: in this process; N > 1: N worker processes (each receives the files' byte
            index, not their data). The numbers do not depend on it.
        zero_on_error (bool): official rule 2 (an unreadable prediction scores 0); False raises instead.
        binary_predictions (bool): read every non-zero predicted pixel as 1 (not the official rule 3).
        union_overlaps (bool): ground truth as the union of the objects (not the official rule 4).
        round_expressions (bool): official rule 5; False averages unrounded per-expression numbers.
        bound_th (float): F boundary tolerance (official 0.008).

    Returns:
        tuple: ``(summary, per_expression)``. ``summary``: the object the official script writes,
        ``{'referring' | 'reason' | 'overall': {'J', 'F', 'A', 'R', 'JF'}}`` (percent), plus
        ``summary['rule_counts']`` (:data:`RULE_COUNTS_KEY`, not an official key; :func:`official_summary`
        drops it): ``{'expressions': N, 'missing_video', 'error_zero', 'pixel_values', 'overlap_sum',
        'rounding', 'no_target_excluded'}``, the number of expressions each official rule touched.
        ``per_expression``: one :func:`revos_row` per expression of the meta file, in its order.

    Raises:
        FileNotFoundError / ValueError: a missing prediction folder or annotation file, a malformed
        annotation (named); with ``zero_on_error=False`` also :class:`RevosPredictionError` naming the PNG.
        RuntimeError: a worker process died.
    """
    if not osp.isdir(pred_dir):
        raise FileNotFoundError(f'prediction folder {pred_dir} not found')
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(f'workers must be an integer >= 0, got {workers!r}')
    if bound_th <= 0:
        raise ValueError(f'bound_th must be > 0, got {bound_th}')
    videos = load_revos_meta(meta_expressions)
    mask_map, foreground_map = open_revos_masks(masks, foreground_masks)
    check_revos_annotation_keys(videos, mask_map, foreground_map, meta_expressions)

    tasks, missing_videos = [], set()
    for video_id, video in videos.items():
        if osp.exists(osp.join(pred_dir, video_id)):
            tasks.extend((video_id, exp_id) for exp_id in video['expressions'])
        else:
            missing_videos.add(video_id)
    state = dict(pred_dir=pred_dir, videos=videos, masks=mask_map, foreground=foreground_map, bound_th=bound_th,
                 binary_predictions=binary_predictions, union_overlaps=union_overlaps, zero_on_error=zero_on_error)
    if workers <= 1 or len(tasks) <= 1:
        _init_worker(state)
        try:
            results = [_evaluate_expression(task) for task in tasks]
        finally:
            _WORKER_STATE.clear()
    else:
        results = _evaluate_in_processes(tasks, workers, state)
    scored = dict(zip(tasks, results))

    rows = []
    for video_id, video in videos.items():
        for exp_id, expression in video['expressions'].items():
            if video_id in missing_videos:
                rows.append(revos_row(video_id, exp_id, expression, None, 'missing_video',
                                      f'no prediction folder {osp.join(pred_dir, video_id)}',
                                      round_expressions=round_expressions))
                continue
            status, value = scored[(video_id, exp_id)]
            if status == 'error':
                rows.append(revos_row(video_id, exp_id, expression, None, 'error', value[1],
                                      round_expressions=round_expressions))
            else:
                rows.append(revos_row(video_id, exp_id, expression, (value['J'], value['F'], value['A'], value['R']),
                                      'scored', pixel_values=value['pixel_values'], overlap_sum=value['overlap_sum'],
                                      round_expressions=round_expressions))
    return revos_summary(rows), rows


def revos_summary_lines(summary: Mapping[str, Any]) -> List[str]:
    """``NAME: value`` lines of the official numbers (``referring/J: 61.23``...) and of the rule counts
    (``rule_counts/missing_video: 3``)."""
    lines = [f'{table}/{k}: {summary[table][k]:.4f}' for table in REVOS_TABLES for k in REVOS_METRICS]
    counts = summary.get(RULE_COUNTS_KEY, {})
    lines += [f'{RULE_COUNTS_KEY}/{k}: {v}' for k, v in counts.items()]
    return lines
