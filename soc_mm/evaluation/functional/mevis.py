"""MeViS (ICCV 2023, and v2, TPAMI 2025) J&F, as its official ``tools/eval_mevis.py`` +
``tools/metrics.py`` compute it.

MeViS v2 keeps the v1 layout and the offline evaluation script (the v2 README still points ``valid_u`` users
to ``tools/eval_mevis.py``, unchanged since v1): J, F and J&F over every expression, the ones that refer to no
object included (their ground truth is empty in every frame, so a frame scores J = F = 1 when nothing is
predicted and 0 otherwise). The public sources give no other number for the no-target expressions (no
N-acc / T-acc in the official script); the per-expression rows here say which expressions have no target,
so that such a breakdown can be computed from them.

Definition (``valid_u``, or any split whose ``meta_expressions.json`` has ``anno_id``):

* the ground truth of an expression in frame ``t`` is the union of the masks
  ``mask_dict[str(anno_id)][t]`` of its ``anno_id`` list (a ``null`` entry is no mask; an expression
  without ``anno_id`` has an empty ground truth in every frame);
* the prediction of frame ``t`` is ``<pred_dir>/<video>/<exp_id>/<frame>.png`` read as 8-bit
  grayscale (``cv2.IMREAD_GRAYSCALE``, as the official code reads it); every non-zero pixel is
  foreground;
* per frame, J is the Jaccard index (1 when prediction and truth are both empty) and F the DAVIS
  boundary F-measure (``db_eval_boundary``: one-pixel boundary maps of ``seg2bmap``, matched within
  a disk of radius ``ceil(0.008 * image diagonal)`` pixels); both are
  :func:`soc_mm.evaluation.functional.jf_per_frame`, which computes exactly these numbers;
* an expression's J (F) is the mean over all frames of its video; the reported J (F) is the mean
  over all expressions of the meta file, ``J&F = (J + F) / 2``;
* every expression of a video whose folder is missing from ``pred_dir`` scores ``J = F = 0``
  (the official rule).

``mask_dict.json`` is indexed, not loaded (:class:`soc_mm.evaluation.functional.lazy_json.LazyJsonObject`):
each worker reads and decodes the masks of the expression it scores, one expression at a time, instead of
every process holding the whole file (the official script loads it in the parent, copies it into a
``multiprocessing.Manager`` and forks 64 workers).

Where the official script would crash inside a worker and then silently average over fewer
expressions (a missing or unreadable PNG, a frame of another size, an unknown ``anno_id``) we raise
an error that names the file, video, expression and field instead.
"""
import multiprocessing
import os
import os.path as osp
import pickle
import traceback
import warnings
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from soc_mm.datasets.mevis import resolve_mevis_meta_file
from soc_mm.datasets.utils import DuplicateKeyError, first_repeated, read_json
from soc_mm.structures.mask import decode_mask
from .jf import jf_per_frame
from .lazy_json import LazyJsonObject

#: the official F boundary tolerance (fraction of the image diagonal).
MEVIS_BOUND_TH = 0.008


def _load_json(path: str, what: str):
    """A MeViS json file (``read_json``: a repeated key anywhere is an error naming the file and key)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'MeViS {what} {path} not found')
    return read_json(path, f'MeViS {what}')


def load_mevis_meta(meta_file: str) -> Dict[str, dict]:
    """Read and check a MeViS ``meta_expressions.json``.

    Args:
        meta_file (str): ``{"videos": {video: {"frames": [str, ...], "expressions":
            {exp_id: {"exp": str, "anno_id": [int, ...], ...}}}}}`` (MeViS v1 ``meta_expressions.json`` or
            v2 ``meta_expressions_v2.json``; a split folder: the one it holds, see
            :func:`soc_mm.datasets.mevis.resolve_mevis_meta_file`).

    Returns:
        dict: ``{video: {"frames": [str], "expressions": {exp_id: {"anno_id": [str], ...}}}}`` in
        file order, ``anno_id`` entries as the ``str`` keys of ``mask_dict.json``.

    Raises:
        ValueError: naming the file, video, expression and field that is missing or malformed.
    """
    meta_file, _ = resolve_mevis_meta_file(meta_file)
    data = _load_json(meta_file, 'meta_expressions file')
    videos = data.get('videos') if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        raise ValueError(f"{meta_file}: expected {{'videos': {{video_id: {{...}}}}}} at the top level")
    checked = OrderedDict()
    for video_id, video in videos.items():
        where = f'{meta_file}: video {video_id!r}'
        if not isinstance(video, dict):
            raise ValueError(f'{where} is a {type(video).__name__}, expected a dict')
        frames = video.get('frames')
        if not isinstance(frames, list) or not frames or not all(isinstance(f, str) for f in frames):
            raise ValueError(f"{where}: 'frames' must be a non-empty list of frame names, got {frames!r:.80}")
        if first_repeated(frames) is not None:
            raise ValueError(f"{where}: 'frames' lists frame {first_repeated(frames)!r} twice")
        expressions = video.get('expressions')
        if not isinstance(expressions, dict) or not expressions:
            raise ValueError(f"{where}: 'expressions' must be a non-empty dict {{exp_id: {{...}}}}")
        checked_exps = OrderedDict()
        for exp_id, expression in expressions.items():
            exp_where = f'{where}, expression {exp_id!r}'
            if not isinstance(expression, dict):
                raise ValueError(f'{exp_where} is a {type(expression).__name__}, expected a dict')
            anno_ids = expression.get('anno_id')
            if not isinstance(anno_ids, list) or not all(
                    isinstance(a, (int, str)) and not isinstance(a, bool) for a in anno_ids):
                raise ValueError(f"{exp_where}: 'anno_id' must be a list of annotation ids (the keys of "
                                 f'mask_dict.json), got {anno_ids!r:.80}')
            checked_exps[str(exp_id)] = dict(expression, anno_id=[str(a) for a in anno_ids])
        checked[str(video_id)] = dict(video, frames=list(frames), expressions=checked_exps)
    return checked


def load_mevis_mask_dict(mask_dict_file: str) -> LazyJsonObject:
    """Index a MeViS ``mask_dict.json``: ``{str(anno_id): [COCO RLE or null per frame]}``.

    Returns a read-only mapping whose entries are parsed when read (:class:`LazyJsonObject`: the byte
    range of every entry is indexed in one bounded-memory pass; a pickled copy holds only that index).
    Entries are checked where they are used (:func:`mevis_gt_masks`).

    Raises:
        FileNotFoundError: no such file. ValueError: not a json object (naming the byte where it is not),
        or a repeated ``anno_id``.
    """
    if not osp.isfile(mask_dict_file):
        raise FileNotFoundError(f'MeViS mask_dict file {mask_dict_file} not found')
    try:
        return LazyJsonObject(mask_dict_file, 'MeViS mask_dict file {anno_id: [RLE or null per frame]}')
    except DuplicateKeyError:
        raise
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(str(error)) from None


def mevis_gt_masks(mask_dict: Dict[str, list], anno_ids: Sequence[str], num_frames: int,
                   frame_size: Tuple[int, int], where: str = 'expression') -> np.ndarray:
    """Ground truth of one expression: the union of its annotations' masks in every frame.

    Args:
        mask_dict (dict): ``{str(anno_id): [RLE or None] * num_frames}`` (``mask_dict.json``).
        anno_ids (Sequence[str]): the expression's ``anno_id`` list (may be empty).
        num_frames (int): T, the number of frames of the video.
        frame_size (tuple): (H, W) of the video (every RLE must have this ``size``).
        where (str): names the expression in errors.

    Returns:
        np.ndarray: bool ``[T, H, W]``.
    """
    height, width = frame_size
    gt = np.zeros((num_frames, height, width), dtype=bool)
    for anno_id in anno_ids:
        rles = mask_dict.get(str(anno_id))
        if rles is None:
            raise ValueError(f'{where}: anno_id {anno_id} is not in mask_dict.json')
        if not isinstance(rles, list) or len(rles) != num_frames:
            got = f'{len(rles)} entries' if isinstance(rles, list) else f'a {type(rles).__name__}'
            raise ValueError(f'{where}: mask_dict.json[{str(anno_id)!r}] must be a list of {num_frames} '
                             f'RLE-or-null entries (one per frame of the video), got {got}')
        for t, rle in enumerate(rles):
            if rle is None:
                continue
            gt[t] |= decode_mask(rle, f'{where}: mask_dict.json[{str(anno_id)!r}][{t}]', size=(height, width),
                                 size_from='the size of its predicted PNGs')
    return gt


def mevis_expression_jf(pred: np.ndarray, gt: np.ndarray,
                        bound_th: float = MEVIS_BOUND_TH) -> Tuple[float, float]:
    """J and F of one expression: the means over its frames of the per-frame J and F.

    Args:
        pred, gt: bool ``[T, H, W]`` (prediction and union ground truth of every frame).

    Returns:
        (J, F) as floats.
    """
    j_per_frame, f_per_frame = jf_per_frame(pred, gt, bound_th=bound_th)
    # np.ndarray.mean, as the official code averages db_eval_iou / db_eval_boundary's output
    return float(j_per_frame.mean()), float(f_per_frame.mean())


def mevis_summary(scores: Iterable[Tuple[float, float]]) -> Dict[str, float]:
    """MeViS table from per-expression (J, F): means over expressions, ``J&F = (J + F) / 2``."""
    scores = list(scores)
    if not scores:
        raise ValueError('MeViS J&F: no expressions to average')
    j_mean = np.mean([s[0] for s in scores])
    f_mean = np.mean([s[1] for s in scores])
    return {'J': float(j_mean), 'F': float(f_mean), 'J&F': float((j_mean + f_mean) / 2)}


class PredictionBitDepthWarning(UserWarning):
    """A prediction PNG is not 8-bit: it is scored as read (as the official script does), which may not be
    the mask that was meant."""


#: 16-bit PNGs named in warnings per process; further ones are not named (one line says so).
MAX_BIT_DEPTH_WARNINGS = 10
_bit_depth_warnings = [0]


#: the first 8 bytes of every PNG file
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def png_header(path: str) -> Optional[Tuple[int, int, int]]:
    """(H, W, bit depth per channel) from a PNG's header (its ``IHDR`` chunk), or None if ``path`` does not
    start as a PNG does (signature, then ``IHDR``)."""
    with open(path, 'rb') as f:
        head = f.read(26)
    if len(head) == 26 and head[:8] == PNG_SIGNATURE and head[12:16] == b'IHDR':
        return int.from_bytes(head[20:24], 'big'), int.from_bytes(head[16:20], 'big'), head[24]
    return None


def png_bit_depth(path: str) -> Optional[int]:
    """Bit depth per channel from a PNG's header (its ``IHDR`` chunk), or None if ``path`` is not a PNG."""
    header = png_header(path)
    return None if header is None else header[2]


#: the most pixels a predicted or ground-truth mask PNG may declare (8192 x 8192): checked from the header
#: before decoding, so that a few KB of PNGs that declare huge frames cannot take GBs of memory
MAX_MASK_PIXELS = 1 << 26


def png_size(path: str) -> Optional[Tuple[int, int]]:
    """(H, W) from a PNG's header (its ``IHDR`` chunk), or None if ``path`` is not a PNG."""
    header = png_header(path)
    return None if header is None else header[:2]


def check_png_size(path: str, what: str = 'prediction', expected: Optional[Tuple[int, int]] = None,
                   expected_from: str = '') -> Optional[Tuple[int, int, int]]:
    """Before decoding: ``path`` is a PNG (OpenCV would decode any format it knows, whatever the name: a
    TIFF or PGM named ``.png`` could declare any size and bit depth unchecked), the size its header declares
    is at most :data:`MAX_MASK_PIXELS` pixels and, with ``expected`` (H, W), that size (``expected_from``
    says where it comes from). A path that is not a file: nothing to check (the caller names it).

    Returns:
        The header's (H, W, bit depth per channel), or None when ``path`` is not a file.

    Raises:
        ValueError: naming the file and what it is, the declared size and the bound or the expected size.
    """
    if not osp.isfile(path):
        return None
    header = png_header(path)
    if header is None:
        with open(path, 'rb') as f:
            head = f.read(8)
        raise ValueError(f'unreadable {what} {path}: not a PNG file (it starts with {head!r}, a PNG with '
                         f'{PNG_SIGNATURE!r} and its IHDR header); masks are read from PNG files only')
    size = header[:2]
    if size[0] * size[1] > MAX_MASK_PIXELS:
        raise ValueError(f'{what} {path} declares {size[0]}x{size[1]} (H x W) pixels, more than the '
                         f'{MAX_MASK_PIXELS} a mask may have here (not decoded)')
    if expected is not None and tuple(size) != tuple(expected):
        raise ValueError(f'{what} {path} is {size[0]}x{size[1]} (H x W) but {expected_from or "the video"} is '
                         f'{expected[0]}x{expected[1]}')
    return header


def warn_16_bit(path: str, read: np.ndarray, what: str = 'prediction', official: str = 'MeViS script') -> None:
    """Say loudly that a 16-bit PNG was scored as its 8-bit reading, with what the file holds and what
    was read (``read``: the mask or grey levels the 8-bit reading gave; ``official``: whose reading it is);
    the first :data:`MAX_BIT_DEPTH_WARNINGS` files of a process are named."""
    _bit_depth_warnings[0] += 1
    if _bit_depth_warnings[0] > MAX_BIT_DEPTH_WARNINGS:
        return
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    raw = raw if raw is None or raw.ndim == 2 else raw.max(axis=-1)
    held = 'unknown' if raw is None else (f'{int(np.count_nonzero(raw))} non-zero pixels (values '
                                          f'{int(raw.min())}..{int(raw.max())})')
    more = (f' (further 16-bit PNGs are not named: this process found {MAX_BIT_DEPTH_WARNINGS})'
            if _bit_depth_warnings[0] == MAX_BIT_DEPTH_WARNINGS else '')
    warnings.warn(
        f'{what} {path} is a 16-bit PNG: scored as read in 8-bit grayscale, as the official {official} '
        f'reads it (OpenCV keeps the high byte, so values below 256, e.g. 1 or 255 for the object, read as '
        f'background): the file holds {held}, read as {int(np.count_nonzero(read))} object pixels. The score '
        f'is the official number for these files; save 8-bit PNGs (0 = background, 255 = object) to score '
        f'the masks you meant{more}', PredictionBitDepthWarning, stacklevel=3)


def read_mask_png(path: str) -> np.ndarray:
    """One predicted mask PNG -> bool ``[H, W]`` (non-zero pixels of the 8-bit grayscale image).

    A 16-bit PNG is read as the official script reads it (OpenCV's 8-bit grayscale conversion keeps
    the high byte) and a :class:`PredictionBitDepthWarning` names the file and what it held and what
    was read.

    Raises:
        FileNotFoundError: the file does not exist; ValueError: it cannot be decoded.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'missing prediction {path} (every frame of a predicted video needs a PNG)')
    bit_depth = check_png_size(path)[2]
    image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f'unreadable prediction {path}: not an image file OpenCV can decode')
    mask = image != 0
    if bit_depth == 16:
        warn_16_bit(path, mask)
    return mask


def read_mevis_prediction(exp_dir: str, frames: Sequence[str],
                          expected_size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Predicted masks ``<exp_dir>/<frame>.png`` of every frame -> bool ``[T, H, W]``; all frames must
    have the size of the first one (and ``expected_size`` (H, W), the ground truth's, when given). Every
    PNG's declared size is checked before any is decoded."""
    first = osp.join(exp_dir, f'{frames[0]}.png') if frames else ''
    expected_from = 'its ground truth (mask_dict.json)'
    if expected_size is None and osp.isfile(first):
        expected_size, expected_from = check_png_size(first)[:2], first
    for frame in frames:
        check_png_size(osp.join(exp_dir, f'{frame}.png'), expected=expected_size, expected_from=expected_from)
    masks = []
    for frame in frames:
        path = osp.join(exp_dir, f'{frame}.png')
        mask = read_mask_png(path)
        if masks and mask.shape != masks[0].shape:
            raise ValueError(f'prediction {path} is {mask.shape[0]}x{mask.shape[1]} (H x W) but '
                             f'{osp.join(exp_dir, frames[0] + ".png")} is {masks[0].shape[0]}x{masks[0].shape[1]}')
        masks.append(mask)
    return np.stack(masks)


@dataclass
class MeViSResult:
    """Outcome of :func:`evaluate_mevis_predictions`.

    Attributes:
        metrics: ``{'J', 'F', 'J&F'}``.
        per_expression: ``{(video, exp_id): (J, F)}`` for every expression of the meta file, in its order.
        num_videos: number of videos of the meta file.
        missing_videos: videos of the meta file without a prediction folder (their expressions score 0).
        num_missing_expressions: number of expressions in those videos.
        extra_entries: names in the prediction folder that are not videos of the meta file (not read).
        rows: one dict per expression, in the meta file's order, for error analysis (CSV / JSON):
            ``video``, ``exp_id``, ``exp`` (the text), ``num_objects`` (referred objects, 0: no target),
            ``predicted`` (False: the video has no prediction folder, J = F = 0), ``J``, ``F``, ``J&F``.
        meta_file: the expression file read; version: ``'v1'`` / ``'v2'`` as its name says (None: neither).
        num_no_target: expressions that refer to no object (empty ``anno_id``).
    """
    metrics: Dict[str, float]
    per_expression: 'OrderedDict[Tuple[str, str], Tuple[float, float]]'
    num_videos: int = 0
    missing_videos: List[str] = field(default_factory=list)
    num_missing_expressions: int = 0
    extra_entries: List[str] = field(default_factory=list)
    rows: List[dict] = field(default_factory=list)
    meta_file: str = ''
    version: Optional[str] = None
    num_no_target: int = 0


# State of a worker process (set by _init_worker; the parent's own state when workers == 1).
_WORKER_STATE: dict = {}


class WorkerTraceback(Exception):
    """The traceback text of an error raised in an evaluation worker process (the ``__cause__`` of the
    error re-raised in the caller)."""


def _init_worker(videos: dict, mask_dict: dict, pred_dir: str, bound_th: float, failed=None) -> None:
    _WORKER_STATE.update(videos=videos, mask_dict=mask_dict, pred_dir=pred_dir, bound_th=bound_th,
                         failed=failed)


def _gt_size(mask_dict: dict, expression: dict) -> Optional[Tuple[int, int]]:
    """(H, W) of the first RLE of an expression's annotations (None: no target, or no RLE to read it from;
    the RLEs themselves are checked when decoded)."""
    for anno_id in expression.get('anno_id') or []:
        rles = mask_dict.get(str(anno_id))
        for rle in rles if isinstance(rles, list) else []:
            size = rle.get('size') if isinstance(rle, dict) else None
            if isinstance(size, (list, tuple)) and len(size) == 2 and all(
                    isinstance(v, int) and not isinstance(v, bool) for v in size):
                return int(size[0]), int(size[1])
    return None


def _evaluate_expression(key: Tuple[str, str]) -> Tuple[float, float]:
    """(J, F) of one expression of a video that has a prediction folder."""
    video_id, exp_id = key
    video = _WORKER_STATE['videos'][video_id]
    frames = video['frames']
    pred = read_mevis_prediction(osp.join(_WORKER_STATE['pred_dir'], video_id, exp_id), frames,
                                 expected_size=_gt_size(_WORKER_STATE['mask_dict'], video['expressions'][exp_id]))
    gt = mevis_gt_masks(_WORKER_STATE['mask_dict'], video['expressions'][exp_id]['anno_id'], len(frames),
                        pred.shape[1:], where=f'video {video_id!r}, expression {exp_id!r}')
    return mevis_expression_jf(pred, gt, bound_th=_WORKER_STATE['bound_th'])


def _evaluate_expression_in_worker(key: Tuple[str, str]) -> tuple:
    """:func:`_evaluate_expression` in a worker process; never raises across the pool.

    Returns:
        ``('ok', (J, F))``; ``('error', exception, traceback text)`` (the exception itself when it
        pickles, else a RuntimeError with its type and message); ``('skipped',)`` when another task
        has already failed (the shared ``failed`` event is set), so that the pool drains quickly.
    """
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
        return ('error', error, text)


def _evaluate_in_processes(tasks: List[Tuple[str, str]], workers: int, initargs: tuple) -> List[Tuple[float, float]]:
    """(J, F) of every task, computed by ``workers`` processes, in task order.

    Ends in bounded time whatever the workers do: a worker returns its error as a value (no
    exception crosses the pool), the other workers then skip their remaining tasks, and the pool is
    shut down with its pending tasks cancelled; a worker process that dies (killed, out of memory)
    breaks the pool, which ``concurrent.futures`` reports instead of waiting for its result.

    Raises:
        the error of the first failed task in task order (among the tasks that ran; its message names
        the file), chained to the worker's traceback; RuntimeError if a worker process died.
    """
    context = multiprocessing.get_context()
    failed = context.Event()
    executor = ProcessPoolExecutor(min(workers, len(tasks)), mp_context=context, initializer=_init_worker,
                                   initargs=tuple(initargs) + (failed, ))
    results = []
    try:
        futures = [executor.submit(_evaluate_expression_in_worker, task) for task in tasks]
        for future in futures:
            results.append(future.result())
            if results[-1][0] != 'ok':
                failed.set()  # a worker failed: the others skip what is left
    except BrokenProcessPool as error:
        raise RuntimeError('a MeViS evaluation worker process died (killed, or out of memory?) before '
                           'returning its result; run with workers=1 to see where') from error
    finally:
        failed.set()
        executor.shutdown(wait=True, cancel_futures=True)
    for task, result in zip(tasks, results):
        if result[0] == 'error':
            _, error, text = result
            raise error from WorkerTraceback(f'in the worker evaluating video {task[0]!r}, expression '
                                             f'{task[1]!r}:\n{text}')
    if any(result[0] != 'ok' for result in results):  # cannot happen: a skip follows an error
        raise RuntimeError('MeViS evaluation: a worker skipped a task but none reported an error')
    return [result[1] for result in results]


def evaluate_mevis_predictions(pred_dir: str,
                               meta_file: str,
                               mask_dict_file: str,
                               workers: int = 1,
                               bound_th: float = MEVIS_BOUND_TH) -> MeViSResult:
    """Score a folder of MeViS predictions ``<pred_dir>/<video>/<exp_id>/<frame>.png`` (the server's
    layout) as the official ``eval_mevis.py`` does.

    Args:
        pred_dir (str): prediction folder.
        meta_file (str): the split's ``meta_expressions.json`` (v1) or ``meta_expressions_v2.json`` (v2), with
            ``anno_id``; or the split folder (the file it holds; both: an error).
        mask_dict_file (str): the split's ``mask_dict.json`` (indexed, see :func:`load_mevis_mask_dict`).
        workers (int): processes over expressions; results do not depend on it. An error in a
            worker is raised here (the pool is shut down first, in bounded time).
        bound_th (float): F boundary tolerance. Defaults to the official 0.008.

    Returns:
        MeViSResult

    Raises:
        FileNotFoundError / ValueError: a missing or unreadable PNG in a predicted video, a frame
        of another size, a malformed meta or mask file; the message names the file or field.
        RuntimeError: a worker process died (``workers > 1``).
    """
    if not osp.isdir(pred_dir):
        raise FileNotFoundError(f'prediction folder {pred_dir} not found')
    if workers < 1:
        raise ValueError(f'workers must be >= 1, got {workers}')
    meta_file, version = resolve_mevis_meta_file(meta_file)
    videos = load_mevis_meta(meta_file)
    mask_dict = load_mevis_mask_dict(mask_dict_file)

    missing_videos, tasks = [], []
    for video_id, video in videos.items():
        video_dir = osp.join(pred_dir, video_id)
        if not osp.exists(video_dir):
            missing_videos.append(video_id)
        elif not osp.isdir(video_dir):
            raise ValueError(f'prediction {video_dir} is a file; expected a folder <exp_id>/<frame>.png')
        else:
            tasks.extend((video_id, exp_id) for exp_id in video['expressions'])
    extra = sorted(set(os.listdir(pred_dir)) - set(videos))

    if workers == 1 or len(tasks) <= 1:
        _init_worker(videos, mask_dict, pred_dir, bound_th)
        try:
            scores = [_evaluate_expression(task) for task in tasks]
        finally:
            _WORKER_STATE.clear()
    else:
        scores = _evaluate_in_processes(tasks, workers, (videos, mask_dict, pred_dir, bound_th))
    scored = dict(zip(tasks, scores))

    per_expression, rows = OrderedDict(), []
    for video_id, video in videos.items():
        for exp_id, expression in video['expressions'].items():
            j, f = per_expression[(video_id, exp_id)] = scored.get((video_id, exp_id), (0.0, 0.0))
            rows.append({'video': video_id, 'exp_id': exp_id, 'exp': expression.get('exp'),
                         'num_objects': len(expression['anno_id']), 'predicted': (video_id, exp_id) in scored,
                         'J': float(j), 'F': float(f), 'J&F': float((j + f) / 2)})
    return MeViSResult(
        metrics=mevis_summary(per_expression.values()),
        per_expression=per_expression,
        num_videos=len(videos),
        missing_videos=missing_videos,
        num_missing_expressions=sum(len(videos[v]['expressions']) for v in missing_videos),
        extra_entries=extra,
        rows=rows,
        meta_file=meta_file,
        version=version,
        num_no_target=sum(not row['num_objects'] for row in rows))


def per_expression_json(per_expression: Dict[Tuple[str, str], Tuple[float, float]]) -> Dict[str, List[float]]:
    """``{(video, exp_id): (J, F)}`` -> the official ``save_name`` layout ``{"<video>_<exp_id>": [J, F]}``."""
    return {f'{video_id}_{exp_id}': [float(j), float(f)] for (video_id, exp_id), (j, f) in per_expression.items()}


def check_mevis_frames(frames: Sequence[str], video: dict, where: str) -> None:
    """Predicted frame names must be all frames of the video, in order (MeViS scores every frame)."""
    expected = video['frames']
    if list(frames) != list(expected):
        raise ValueError(f'{where}: predicted frames {list(frames)[:3]}... ({len(frames)}) are not the '
                         f"video's {len(expected)} frames {list(expected)[:3]}... of meta_expressions.json; "
                         'MeViS scores every frame')


def mevis_missing_summary(missing_videos: Sequence[str], num_videos: int, num_missing_expressions: int,
                          limit: int = 10) -> str:
    """One line naming the videos without predictions (their expressions score J = F = 0)."""
    names = ', '.join(list(missing_videos)[:limit])
    more = f', ... ({len(missing_videos) - limit} more)' if len(missing_videos) > limit else ''
    return (f'missing videos: {len(missing_videos)} of {num_videos} ({num_missing_expressions} expressions '
            'scored J = F = 0)' + (f': {names}{more}' if missing_videos else ''))
