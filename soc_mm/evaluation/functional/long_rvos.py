"""Long-RVOS (CVPR 2026) J, F, J&F, tIoU and vIoU, as its official ``eval/eval_long_rvos/`` scripts compute them.

The official evaluation is five scripts: ``eval_static.py``, ``eval_dynamic.py`` and ``eval_hybrid.py`` score
the expressions of one description type each (``"type"`` of an expression in ``meta_expressions.json``:
``"static"``, ``"dynamic"``, ``"static+dynamic"``; the last one is reported as *hybrid*), ``eval_overall.py``
pools the per-expression numbers the three wrote, and ``eval_pred_frame.py`` scores only the frames present
in the prediction folder (key-frame evaluation). This module computes all of them in one pass.

Definitions (the official rules, restated; ``pred_dir/<video>/<exp_id>/<frame>.png`` are the predictions,
``Annotations/<video>/<obj_id>/<frame>.png`` the ground truth of the expression's single object ``obj_id``):

* **masks**: a PNG is read as 8-bit grayscale (``cv2.IMREAD_GRAYSCALE``) and every non-zero pixel is the
  object. A ground-truth PNG that does not exist means "the object is absent from this frame" (an empty
  mask); so does a missing prediction PNG of any frame but the video's first (whose size the official
  script reads; its absence is an error here, see below).
* **J** (region similarity, "sIoU" in the official comments) of a frame is ``|P & G| / |P | G|``, 1 when
  both masks are empty; **F** is the DAVIS boundary F-measure of the frame (``db_eval_boundary``: one-pixel
  boundary maps, matched within a disk of radius ``ceil(0.008 * image diagonal)`` pixels; 1 when both
  masks are empty). An expression's J (F) is the mean over its scored frames.
* **tIoU** (temporal IoU): with ``G_t`` = "the ground truth of frame t is non-empty" and ``P_t`` = "the
  prediction of frame t is non-empty", ``tIoU = #{t: G_t and P_t} / #{t: G_t or P_t}`` -- the IoU of the
  sets of frames where the object is present and where it is predicted.
* **vIoU** (spatio-temporal IoU): ``vIoU = sum of J_t over {t: G_t and P_t} / #{t: G_t or P_t}`` -- the
  frames where exactly one of the two is non-empty count as 0, those where both are empty are left out.
* when no frame has a ground truth or a prediction (``#{t: G_t or P_t} = 0``), ``tIoU = vIoU = 1``.
* every expression of a video whose folder ``pred_dir/<video>`` does not exist scores
  ``J = F = tIoU = vIoU = 0``.
* a type's numbers are the means over its expressions of J, F, tIoU and vIoU, and ``J&F = (J + F) / 2``
  of those means; ``overall`` is the same over the expressions of the three types pooled (not the mean of
  the three types). A type with no expression gives NaN, as ``np.mean([])`` does in the official scripts.
  Everything is on the scale the scripts print: fractions in ``[0, 1]``.
* ``only_predicted_frames=True`` (``eval_pred_frame.py``): the scored frames of an expression are the
  entries of ``pred_dir/<video>/<exp_id>/`` (sorted file names, each looked up under the same name in the
  ground-truth folder), not the frames of ``meta_expressions.json``; every expression of the meta file is
  scored, whatever its type (``"type"`` may be absent), and ``overall`` is their mean (the only table that
  script prints); the per-type tables are added from the same per-expression numbers.

Where the official scripts would crash inside a worker process -- and then silently average over fewer
expressions, or, once 32 workers have died, leave every later expression out -- we raise an error that
names the file, video, expression and field instead: an expression folder missing from an existing video
folder, a missing prediction of the video's first frame, an unreadable PNG, frames of different sizes,
and (default mode) an expression without a ``"type"``. Expressions whose type is none of the three are
left out of the per-type and overall tables, as the official scripts leave them out (they are counted by
:func:`long_rvos_counts`). The official per-type json files key an expression as ``"<video>_<exp_id>"``,
so two expressions whose keys coincide would count once there; here every expression counts.
"""
import multiprocessing
import os
import os.path as osp
import pickle
import traceback
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from soc_mm.datasets.utils import read_json
from .jf import jf_per_frame
from .mevis import check_png_size, warn_16_bit

#: the official F boundary tolerance (fraction of the image diagonal).
LONG_RVOS_BOUND_TH = 0.008
#: reported table -> the ``"type"`` value of its expressions in ``meta_expressions.json``.
LONG_RVOS_TYPES = OrderedDict([('static', 'static'), ('dynamic', 'dynamic'), ('hybrid', 'static+dynamic')])
#: the numbers of each table, in the order the official scripts print them.
LONG_RVOS_METRICS = ('J', 'F', 'J&F', 'tIoU', 'vIoU')
#: the numbers of one expression (the official per-type json files store ``[J, F, tIoU, vIoU]``).
EXPRESSION_SCORES = ('J', 'F', 'tIoU', 'vIoU')


def type_table(desc_type: Optional[str]) -> Optional[str]:
    """The table (``'static'``, ``'dynamic'``, ``'hybrid'``) of an expression's ``"type"``, None for any other."""
    for table, value in LONG_RVOS_TYPES.items():
        if desc_type == value:
            return table
    return None


def load_long_rvos_meta(meta_file: str, require_type: bool = True) -> 'OrderedDict[str, dict]':
    """Read and check a Long-RVOS ``meta_expressions.json``.

    Args:
        meta_file (str): ``{"videos": {video: {"frames": [str, ...], "expressions": {exp_id: {"exp": str,
            "obj_id": int | str, "type": "static" | "dynamic" | "static+dynamic"}}}}}``.
        require_type (bool): every expression must have a string ``"type"`` (the per-type scripts need it;
            ``eval_pred_frame.py`` does not read it).

    Returns:
        ``{video: {"frames": [str], "expressions": {exp_id: {"exp", "obj_id": str, "type": str | None}}}}`` in
        file order; ``obj_id`` as the name of its ground-truth folder (``str(obj_id)``, the official path).

    Raises:
        FileNotFoundError / ValueError: naming the file, video, expression and field that is missing or
        malformed (a key repeated anywhere in the file is an error too).
    """
    data = read_json(meta_file, 'Long-RVOS meta_expressions file')
    videos = data.get('videos') if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        raise ValueError(f"{meta_file}: expected {{'videos': {{video_id: {{...}}}}}} at the top level")
    checked = OrderedDict()
    for video_id, video in videos.items():
        where = f'{meta_file}: video {video_id!r}'
        if not isinstance(video, dict):
            raise ValueError(f'{where} is a {type(video).__name__}, expected a dict with "frames" and "expressions"')
        frames = video.get('frames')
        if not isinstance(frames, list) or not frames or not all(isinstance(f, str) and f for f in frames):
            raise ValueError(f"{where}: field 'frames' must be a non-empty list of frame names, got {frames!r:.80}")
        if len(set(frames)) != len(frames):
            raise ValueError(f"{where}: field 'frames' lists a frame twice")
        expressions = video.get('expressions')
        if not isinstance(expressions, dict) or not expressions:
            raise ValueError(f"{where}: field 'expressions' must be a non-empty dict {{exp_id: {{...}}}}")
        checked_exps = OrderedDict()
        for exp_id, expression in expressions.items():
            exp_where = f'{where}, expression {exp_id!r}'
            if not isinstance(expression, dict):
                raise ValueError(f'{exp_where} is a {type(expression).__name__}, expected a dict')
            if 'obj_id' not in expression:
                raise ValueError(f"{exp_where}: no field 'obj_id' (the object whose masks are "
                                 'Annotations/<video>/<obj_id>/<frame>.png)')
            obj_id = expression['obj_id']
            if isinstance(obj_id, bool) or not isinstance(obj_id, (int, str)) or str(obj_id) in ('', '.', '..') \
                    or '/' in str(obj_id):
                raise ValueError(f"{exp_where}: field 'obj_id' must be one object id (an int or a string naming "
                                 f'its folder under Annotations/<video>/), got {obj_id!r:.80}')
            desc_type = expression.get('type')
            if desc_type is None and require_type:
                raise ValueError(f"{exp_where}: no field 'type' (one of \"static\", \"dynamic\", "
                                 '"static+dynamic"; the official per-type scripts need it)')
            if desc_type is not None and not isinstance(desc_type, str):
                raise ValueError(f"{exp_where}: field 'type' must be a string, got {desc_type!r:.80}")
            checked_exps[str(exp_id)] = dict(exp=expression.get('exp'), obj_id=str(obj_id), type=desc_type)
        checked[str(video_id)] = dict(frames=list(frames), expressions=checked_exps)
    return checked


def read_png_mask(path: str, what: str = 'prediction') -> np.ndarray:
    """One mask PNG -> bool ``[H, W]``: the non-zero pixels of its 8-bit grayscale reading (``cv2``).

    A 16-bit PNG is read as the official scripts read it (OpenCV keeps the high byte) and a
    :class:`PredictionBitDepthWarning` names the file.

    Raises:
        ValueError: ``path`` is a folder or not an image OpenCV can decode.
    """
    if osp.isdir(path):
        raise ValueError(f'{what} {path} is a folder, expected a PNG mask')
    header = check_png_size(path, what)
    image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f'unreadable {what} {path}: not an image file OpenCV can decode')
    mask = image != 0
    if header is not None and header[2] == 16:
        warn_16_bit(path, mask, what, 'Long-RVOS scripts')
    return mask


def scored_frame_files(pred_dir: str, video_id: str, exp_id: str, frames: Sequence[str],
                       only_predicted_frames: bool) -> List[str]:
    """The file names (``<frame>.png``) scored for one expression of a video that has a prediction folder.

    Default: every frame of ``meta_expressions.json``. ``only_predicted_frames``: the sorted entries of the
    expression's prediction folder (``eval_pred_frame.py``).

    Raises:
        FileNotFoundError: the expression folder, or the prediction of the video's first frame (the size of
            every mask is read from it), is missing.
    """
    exp_dir = osp.join(pred_dir, video_id, exp_id)
    first = osp.join(exp_dir, f'{frames[0]}.png')
    if not osp.isdir(exp_dir):
        raise FileNotFoundError(f'prediction folder {exp_dir} not found (video {video_id!r} has a prediction folder, '
                                f'so every expression of it needs one; expression {exp_id!r})')
    if not osp.exists(first):
        raise FileNotFoundError(f'missing prediction {first} of the first frame of video {video_id!r} (expression '
                                f'{exp_id!r}): the official scripts read the frame size from it')
    if only_predicted_frames:
        return sorted(os.listdir(exp_dir))
    return [f'{frame}.png' for frame in frames]


def score_expression_frames(pred_dir: str, annotations_dir: str, video_id: str, exp_id: str, obj_id: str,
                            frames: Sequence[str], frame_files: Sequence[str],
                            bound_th: float = LONG_RVOS_BOUND_TH) -> Tuple[dict, int]:
    """Scores of one expression, reading one frame at a time (memory: one frame pair, not the video).

    Args:
        pred_dir, annotations_dir: the prediction folder and the split's ``Annotations`` folder.
        video_id, exp_id, obj_id: the expression (``obj_id`` names its ground-truth folder).
        frames: the video's frames in ``meta_expressions.json`` (the first one gives the frame size).
        frame_files: the scored file names (:func:`scored_frame_files`).
        bound_th: F boundary tolerance.

    Returns:
        ``({'J', 'F', 'tIoU', 'vIoU'}, number of scored frames without a prediction PNG)``.
    """
    exp_dir = osp.join(pred_dir, video_id, exp_id)
    gt_dir = osp.join(annotations_dir, video_id, obj_id)
    first = osp.join(exp_dir, f'{frames[0]}.png')
    size = read_png_mask(first).shape
    j_frames = np.empty(len(frame_files), np.float64)
    f_frames = np.empty(len(frame_files), np.float64)
    gt_present = np.zeros(len(frame_files), bool)
    pred_present = np.zeros(len(frame_files), bool)
    missing = 0
    for t, name in enumerate(frame_files):
        masks = []
        for path, what in ((osp.join(exp_dir, name), 'prediction'), (osp.join(gt_dir, name), 'ground truth')):
            if osp.exists(path):
                mask = read_png_mask(path, what)
                if mask.shape != size:
                    raise ValueError(f'{what} {path} is {mask.shape[0]}x{mask.shape[1]} (H x W) but the prediction '
                                     f'{first} is {size[0]}x{size[1]}; every mask of a video must have its size')
            else:
                mask = np.zeros(size, bool)
                missing += what == 'prediction'
            masks.append(mask)
        pred, gt = masks
        j, f = jf_per_frame(pred, gt, bound_th=bound_th)
        j_frames[t], f_frames[t] = j[0], f[0]
        gt_present[t], pred_present[t] = gt.any(), pred.any()
    return scores_from_frames(j_frames, f_frames, gt_present, pred_present), missing


def scores_from_frames(j_frames: np.ndarray, f_frames: np.ndarray, gt_present: np.ndarray,
                       pred_present: np.ndarray) -> Dict[str, float]:
    """An expression's J, F, tIoU and vIoU from its per-frame numbers (definitions: module docstring).

    Args:
        j_frames, f_frames: float ``[T]``, J and F of every scored frame.
        gt_present, pred_present: bool ``[T]``, whether the ground truth / the prediction of the frame is
            non-empty.

    Returns:
        ``{'J', 'F', 'tIoU', 'vIoU'}`` as floats.
    """
    j_frames = np.asarray(j_frames, np.float64)
    gt_present, pred_present = np.asarray(gt_present, bool), np.asarray(pred_present, bool)
    both = gt_present & pred_present
    union = int(np.count_nonzero(gt_present | pred_present))
    if union == 0:
        tiou = viou = 1.0
    else:
        tiou = np.count_nonzero(both) / union
        viou = float(j_frames[both].sum()) / union
    return dict(J=float(j_frames.mean()), F=float(np.mean(f_frames)), tIoU=float(tiou), vIoU=float(viou))


def long_rvos_table(rows: Sequence[dict]) -> Dict[str, float]:
    """One table from per-expression scores: the means of J, F, tIoU, vIoU and ``J&F = (J + F) / 2``
    (NaN, as the official ``np.mean([])``, when ``rows`` is empty)."""
    if not rows:
        return {key: float('nan') for key in LONG_RVOS_METRICS}
    means = {key: float(np.mean([row[key] for row in rows])) for key in EXPRESSION_SCORES}
    return dict(J=means['J'], F=means['F'], **{'J&F': (means['J'] + means['F']) / 2}, tIoU=means['tIoU'],
                vIoU=means['vIoU'])


def long_rvos_summary(per_expression: Sequence[dict], only_predicted_frames: bool = False) -> Dict[str, dict]:
    """The reported tables ``{'static', 'dynamic', 'hybrid', 'overall'}``, each ``{'J', 'F', 'J&F', 'tIoU',
    'vIoU'}``, from per-expression rows (with ``'type'`` and the four scores).

    ``overall``: the expressions of the three types (``eval_overall.py``), or every expression when
    ``only_predicted_frames`` (``eval_pred_frame.py``).
    """
    summary = OrderedDict()
    for table, desc_type in LONG_RVOS_TYPES.items():
        summary[table] = long_rvos_table([row for row in per_expression if row['type'] == desc_type])
    pooled = per_expression if only_predicted_frames else [row for row in per_expression
                                                           if type_table(row['type']) is not None]
    summary['overall'] = long_rvos_table(pooled)
    return summary


def long_rvos_counts(per_expression: Sequence[dict]) -> Dict[str, object]:
    """What an evaluation read: expressions per table, those of other types (in no per-type table),
    videos without a prediction folder (their expressions score 0), scored frames without a prediction PNG
    (scored as empty masks)."""
    counts = OrderedDict((table, 0) for table in LONG_RVOS_TYPES)
    other = 0
    for row in per_expression:
        table = type_table(row['type'])
        if table is None:
            other += 1
        else:
            counts[table] += 1
    missing_videos = list(OrderedDict.fromkeys(r['video'] for r in per_expression if r['prediction'] == 'missing'))
    return dict(expressions=len(per_expression), **counts, other_type=other, missing_videos=missing_videos,
                expressions_of_missing_videos=sum(r['prediction'] == 'missing' for r in per_expression),
                frames_without_prediction=sum(r['frames_without_prediction'] for r in per_expression))


def official_per_type_json(per_expression: Sequence[dict], table: str) -> Dict[str, List[float]]:
    """The json file the official per-type script writes (``static_valid.json`` etc.):
    ``{"<video>_<exp_id>": [J, F, tIoU, vIoU]}`` of the expressions of ``table`` (or of every expression
    for ``table='overall'``, ``eval_pred_frame.py``'s ``keyframe_result.json``)."""
    rows = per_expression if table == 'overall' else [r for r in per_expression
                                                      if r['type'] == LONG_RVOS_TYPES[table]]
    return {f"{r['video']}_{r['exp_id']}": [r[key] for key in EXPRESSION_SCORES] for r in rows}


# ---------------------------------------------------------------------------------------- worker processes
_WORKER_STATE: dict = {}


class WorkerTraceback(Exception):
    """The traceback text of an error raised in an evaluation worker process (the ``__cause__`` of the
    error re-raised in the caller)."""


def _init_worker(pred_dir: str, annotations_dir: str, bound_th: float, only_predicted_frames: bool,
                 failed=None) -> None:
    _WORKER_STATE.update(pred_dir=pred_dir, annotations_dir=annotations_dir, bound_th=bound_th,
                         only_predicted_frames=only_predicted_frames, failed=failed)


def _score_task(task: tuple) -> Tuple[dict, int, int]:
    """``(scores, frames without a prediction, scored frames)`` of one task ``(video, exp_id, obj_id, frames)``."""
    video_id, exp_id, obj_id, frames = task
    state = _WORKER_STATE
    files = scored_frame_files(state['pred_dir'], video_id, exp_id, frames, state['only_predicted_frames'])
    scores, missing = score_expression_frames(state['pred_dir'], state['annotations_dir'], video_id, exp_id, obj_id,
                                              frames, files, bound_th=state['bound_th'])
    return scores, missing, len(files)


def _score_task_in_worker(task: tuple) -> tuple:
    """:func:`_score_task` in a worker process; never raises across the pool.

    Returns ``('ok', result)``, ``('error', exception, traceback text)`` or ``('skipped',)`` once another
    task has failed (the shared ``failed`` event), so that the pool drains quickly.
    """
    failed = _WORKER_STATE.get('failed')
    if failed is not None and failed.is_set():
        return ('skipped', )
    try:
        return ('ok', _score_task(task))
    except Exception as error:  # returned to the caller, which raises it
        if failed is not None:
            failed.set()
        text = traceback.format_exc()
        try:
            pickle.loads(pickle.dumps(error))
        except Exception:
            error = RuntimeError(f'{type(error).__name__}: {error}')
        return ('error', error, text)


def _score_in_processes(tasks: List[tuple], workers: int, initargs: tuple) -> List[tuple]:
    """Results of every task in task order, computed by at most ``workers`` processes.

    Each task carries only its expression (video, ids and frame names); masks are read by the worker, one
    frame at a time. A worker returns its error as a value, the others then skip what is left, and the pool
    is shut down with pending tasks cancelled (bounded time whatever the workers do); a worker process that
    dies breaks the pool, which is reported.

    Raises:
        the error of the first failed task (in task order), chained to the worker's traceback;
        RuntimeError if a worker process died.
    """
    context = multiprocessing.get_context()
    failed = context.Event()
    executor = ProcessPoolExecutor(min(workers, len(tasks)), mp_context=context, initializer=_init_worker,
                                   initargs=tuple(initargs) + (failed, ))
    results = []
    try:
        futures = [executor.submit(_score_task_in_worker, task) for task in tasks]
        for future in futures:
            results.append(future.result())
            if results[-1][0] != 'ok':
                failed.set()
    except BrokenProcessPool as error:
        raise RuntimeError('a Long-RVOS evaluation worker process died (killed, or out of memory?) before '
                           'returning its result; run with workers=0 to see where') from error
    finally:
        failed.set()
        executor.shutdown(wait=True, cancel_futures=True)
    for task, result in zip(tasks, results):
        if result[0] == 'error':
            _, error, text = result
            raise error from WorkerTraceback(f'in the worker evaluating video {task[0]!r}, expression {task[1]!r}:'
                                             f'\n{text}')
    if any(result[0] != 'ok' for result in results):  # cannot happen: a skip follows an error
        raise RuntimeError('Long-RVOS evaluation: a worker skipped a task but none reported an error')
    return [result[1] for result in results]


def evaluate_long_rvos_predictions(pred_dir: str,
                                   meta_expressions: str,
                                   annotations_dir: str,
                                   *,
                                   workers: int = 0,
                                   only_predicted_frames: bool = False,
                                   bound_th: float = LONG_RVOS_BOUND_TH) -> Tuple[Dict[str, dict], List[dict]]:
    """Score Long-RVOS predictions ``<pred_dir>/<video>/<exp_id>/<frame>.png`` as the official scripts do.

    Args:
        pred_dir (str): prediction folder (the official ``--pred_path``).
        meta_expressions (str): the split's ``meta_expressions.json``.
        annotations_dir (str): the split's ``Annotations`` folder (``<video>/<obj_id>/<frame>.png``).
        workers (int): 0: evaluate in this process; N >= 1: in N worker processes (the numbers do not
            depend on it). An error in a worker is raised here.
        only_predicted_frames (bool): score only the frames present in each expression's prediction folder
            (``eval_pred_frame.py``); see the module docstring.
        bound_th (float): F boundary tolerance. Defaults to the official 0.008.

    Returns:
        ``(summary, per_expression)``: ``summary`` = ``{'static', 'dynamic', 'hybrid', 'overall'}``, each
        ``{'J', 'F', 'J&F', 'tIoU', 'vIoU'}`` (fractions, as the official scripts print them);
        ``per_expression`` = one dict per expression of the meta file, in its order: ``video``, ``exp_id``,
        ``expression``, ``obj_id``, ``type``, ``J``, ``F``, ``J&F``, ``tIoU``, ``vIoU``, ``num_frames``
        (scored frames), ``frames_without_prediction`` and ``prediction`` (``'scored'``, or ``'missing'``
        for a video without a prediction folder: all four scores 0). :func:`long_rvos_counts` sums them up.

    Raises:
        FileNotFoundError / ValueError: see the module docstring; the message names the file or field.
        RuntimeError: a worker process died.
    """
    if not osp.isdir(pred_dir):
        raise FileNotFoundError(f'prediction folder {pred_dir} not found')
    if not osp.isdir(annotations_dir):
        raise FileNotFoundError(f'Long-RVOS ground-truth folder {annotations_dir} not found (expected the split\'s '
                                'Annotations/<video>/<obj_id>/<frame>.png)')
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f'workers must be an integer >= 0, got {workers!r}')
    if bound_th <= 0:
        raise ValueError(f'bound_th must be > 0, got {bound_th}')
    videos = load_long_rvos_meta(meta_expressions, require_type=not only_predicted_frames)

    rows, tasks = [], []
    for video_id, video in videos.items():
        video_dir = osp.join(pred_dir, video_id)
        has_prediction = osp.exists(video_dir)
        for exp_id, expression in video['expressions'].items():
            rows.append(dict(video=video_id, exp_id=exp_id, expression=expression['exp'], obj_id=expression['obj_id'],
                             type=expression['type']))
            if has_prediction:
                tasks.append((video_id, exp_id, expression['obj_id'], video['frames']))
    initargs = (pred_dir, annotations_dir, bound_th, only_predicted_frames)
    if workers == 0 or len(tasks) <= 1:
        _init_worker(*initargs)
        try:
            results = [_score_task(task) for task in tasks]
        finally:
            _WORKER_STATE.clear()
    else:
        results = _score_in_processes(tasks, workers, initargs)
    scored = {task[:2]: result for task, result in zip(tasks, results)}

    for row in rows:
        result = scored.get((row['video'], row['exp_id']))
        if result is None:
            scores, missing, num_frames, status = dict.fromkeys(EXPRESSION_SCORES, 0.0), 0, 0, 'missing'
        else:
            (scores, missing, num_frames), status = result, 'scored'
        row.update(J=scores['J'], F=scores['F'], **{'J&F': (scores['J'] + scores['F']) / 2}, tIoU=scores['tIoU'],
                   vIoU=scores['vIoU'], num_frames=num_frames, frames_without_prediction=missing, prediction=status)
    return long_rvos_summary(rows, only_predicted_frames), rows
