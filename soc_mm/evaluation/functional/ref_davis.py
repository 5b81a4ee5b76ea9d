"""Ref-DAVIS17 J&F of index-PNG predictions, as SOC / ReferFormer's offline protocol computes it: one folder
of DAVIS-format results per annotator (``anno_0`` .. ``anno_3``), each scored by the ``davis2017-evaluation``
code for the "unsupervised" task (``eval_davis.py --task unsupervised``), the reported numbers being the mean
of the four annotators' tables.

Definition (per annotator, per video of the meta file; the same rules as ``DAVISEvaluation.evaluate`` with
``task='unsupervised'`` and ``Results.read_masks``):

* ground truth: ``<masks>/<video>/<frame>.png`` for every frame the meta file lists, read as index maps
  (``np.array(PIL.Image.open(...))``); value 255 is void (left out of J and F), the objects are ids
  ``1..N`` with **N the largest id of the first frame** (ids only in later frames are not scored);
* prediction: ``<pred_dir>/anno_<a>/<video>/<frame>.png``, index maps too; the predicted objects are ids
  ``1..M`` with M the largest id over all frames (missing ids are empty masks); fewer than N predicted
  objects are padded with empty ones; more than 20 is refused (the official limit of proposals);
* per (predicted, ground-truth) pair, J and F of every frame (:func:`jf_per_frame` on both masks with the
  void pixels removed, which is how ``db_eval_iou`` / ``db_eval_boundary`` treat void); the pairs are
  matched one-to-one maximising the mean over frames of ``(J + F) / 2`` (``linear_sum_assignment``), and
  each matched pair is one object of the table, in the order of the predicted ids;
* per object, mean / recall / decay of its per-frame J and F (``db_statistics``: :func:`jf_statistics`);
  the table's ``J-Mean`` etc. are means over the objects of every video, ``J&F-Mean = (J-Mean + F-Mean)/2``.

The official code exits when a PNG is missing or there are too many proposals; here those are errors
naming the file. ``db_statistics`` indexes its decay bins with ``uint8`` (wrong past 256 frames; DAVIS
videos have at most 104): :func:`jf_statistics` uses the intended bins.
"""
import os.path as osp
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from soc_mm.datasets.utils import first_repeated, read_json
from .jf import jf_per_frame, jf_statistics

#: the table ``eval_davis.py`` writes (``global_results-val.csv``), fractions in [0, 1]
DAVIS_TABLE_KEYS = ('J&F-Mean', 'J-Mean', 'J-Recall', 'J-Decay', 'F-Mean', 'F-Recall', 'F-Decay')
DAVIS_VOID = 255
#: ``DAVISEvaluation._evaluate_unsupervised``'s ``max_n_proposals``
MAX_PROPOSALS = 20
NUM_ANNOTATORS = 4


def read_index_png(path: str, what: str) -> np.ndarray:
    """An index PNG (palette or grayscale) -> uint8 ``[H, W]`` of its values, as ``np.array(Image.open())``."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'missing {what} {path} (every frame of a video needs one)')
    try:
        with Image.open(path) as image:
            values = np.array(image)
    except Exception as error:  # noqa: BLE001 - any decoding failure names the file
        raise ValueError(f'unreadable {what} {path}: {error}') from error
    if values.ndim != 2:
        raise ValueError(f'{what} {path} has {values.shape[-1]} channels; expected an index PNG (palette or '
                         'grayscale, pixel value = object id)')
    return values


def load_ref_davis_videos(meta_file: str) -> Dict[str, List[str]]:
    """``{video: [frame, ...]}`` of a Ref-DAVIS ``meta_expressions.json`` (``{"videos": {video: {"frames":
    [...], ...}}}``), in file order."""
    data = read_json(meta_file, 'Ref-DAVIS17 meta_expressions file')
    videos = data.get('videos') if isinstance(data, dict) else None
    if not isinstance(videos, dict) or not videos:
        raise ValueError(f"{meta_file}: expected {{'videos': {{video_id: {{'frames': [...]}}}}}} with at least one "
                         'video')
    out = {}
    for video_id, video in videos.items():
        frames = video.get('frames') if isinstance(video, dict) else None
        if not isinstance(frames, list) or not frames or not all(isinstance(f, str) for f in frames):
            raise ValueError(f"{meta_file}: video {video_id!r}: 'frames' must be a non-empty list of frame names")
        if first_repeated(frames) is not None:
            raise ValueError(f"{meta_file}: video {video_id!r}: 'frames' lists frame {first_repeated(frames)!r} twice")
        out[str(video_id)] = list(frames)
    return out


def _objects(index_maps: np.ndarray, count: int) -> np.ndarray:
    """bool ``[count, T, H, W]``: object ``k + 1`` of the index maps ``[T, H, W]``."""
    return index_maps[None] == np.arange(1, count + 1, dtype=index_maps.dtype)[:, None, None, None]


def evaluate_ref_davis_video(pred_root: str, gt_root: str, video_id: str, frames: Sequence[str],
                             bound_th: float = 0.008) -> List[dict]:
    """Matched objects of one video for one annotator's results folder.

    Returns:
        one dict per ground-truth object (in the order of the predicted ids they were matched to):
        ``object`` (1-based position), ``J`` and ``F`` (float64 ``[T]``).
    """
    gt = np.stack([read_index_png(osp.join(gt_root, video_id, f'{f}.png'), 'ground-truth PNG') for f in frames])
    pred = []
    for frame in frames:
        path = osp.join(pred_root, video_id, f'{frame}.png')
        values = read_index_png(path, 'prediction PNG')
        if values.shape != gt.shape[1:]:
            raise ValueError(f'prediction {path} is {values.shape[0]}x{values.shape[1]} (H x W) but the ground '
                             f'truth of video {video_id!r} is {gt.shape[1]}x{gt.shape[2]}')
        pred.append(values)
    pred = np.stack(pred)
    void = gt == DAVIS_VOID
    num_gt = int(np.where(void[0], 0, gt[0]).max())
    num_pred = int(pred.max())
    if num_pred > MAX_PROPOSALS:
        raise ValueError(f'{osp.join(pred_root, video_id)}: a PNG has the object id {num_pred}, more than the '
                         f'{MAX_PROPOSALS} proposals the DAVIS evaluation accepts (are the masks 0/255 instead of '
                         'object ids?)')
    if num_gt == 0:
        return []
    gt_objects = _objects(np.where(void, 0, gt), num_gt) & ~void[None]
    pred_objects = _objects(pred, max(num_pred, num_gt)) & ~void[None]
    from scipy.optimize import linear_sum_assignment
    num_rows = pred_objects.shape[0]
    j = np.zeros((num_rows, num_gt, len(frames)))
    f = np.zeros_like(j)
    for g in range(num_gt):
        for r in range(num_rows):
            j[r, g], f[r, g] = jf_per_frame(pred_objects[r], gt_objects[g], bound_th=bound_th)
    rows, cols = linear_sum_assignment(-(j.mean(axis=2) + f.mean(axis=2)) / 2)
    return [dict(object=i + 1, J=j[r, c], F=f[r, c]) for i, (r, c) in enumerate(zip(rows, cols))]


def davis_table(objects: Sequence[dict]) -> Dict[str, float]:
    """``eval_davis.py``'s global table from the per-frame J and F of every object."""
    if not objects:
        raise ValueError('Ref-DAVIS17: no ground-truth objects to average')
    j_stats = np.array([jf_statistics(o['J']) for o in objects])
    f_stats = np.array([jf_statistics(o['F']) for o in objects])
    j_mean, j_recall, j_decay = j_stats.mean(axis=0)
    f_mean, f_recall, f_decay = f_stats.mean(axis=0)
    return {'J&F-Mean': float((j_mean + f_mean) / 2), 'J-Mean': float(j_mean), 'J-Recall': float(j_recall),
            'J-Decay': float(j_decay), 'F-Mean': float(f_mean), 'F-Recall': float(f_recall),
            'F-Decay': float(f_decay)}


def _evaluate_task(task: tuple) -> List[dict]:
    return evaluate_ref_davis_video(*task)


def evaluate_ref_davis_predictions(pred_dir: str, meta_expressions: str, masks: str, *, workers: int = 0,
                                   num_annotators: int = NUM_ANNOTATORS,
                                   bound_th: float = 0.008) -> Tuple[dict, List[dict]]:
    """Ref-DAVIS17 J&F of ``<pred_dir>/anno_<a>/<video>/<frame>.png`` (index maps, one folder per annotator).

    Args:
        pred_dir (str): holds ``anno_0`` .. ``anno_<num_annotators - 1>``.
        meta_expressions (str): the Ref-DAVIS ``meta_expressions.json`` (its videos and frames are scored).
        masks (str): the ground-truth folder ``<masks>/<video>/<frame>.png`` (DAVIS-2017 valid
            ``Annotations_unsupervised/480p`` for the official protocol; any index PNGs of that layout).
        workers (int): processes over (annotator, video) pairs; 0 or 1: in this process.
        num_annotators (int): annotator folders (Ref-DAVIS17: 4).
        bound_th (float): F boundary tolerance (DAVIS: 0.008 of the diagonal).

    Returns:
        ``(summary, rows)``: summary = the mean over annotators of :data:`DAVIS_TABLE_KEYS`, plus
        ``'anno_<a>'``: that annotator's table; rows = one dict per (annotator, video, object) with
        ``annotator``, ``video``, ``object``, and J/F mean, recall, decay and ``J&F``.

    Raises:
        FileNotFoundError / ValueError: naming the missing or malformed folder, file or field.
    """
    if not osp.isdir(pred_dir):
        raise FileNotFoundError(f'prediction folder {pred_dir} not found')
    if not osp.isdir(masks):
        raise FileNotFoundError(f'Ref-DAVIS17 ground-truth folder {masks} not found (expected '
                                '<masks>/<video>/<frame>.png index maps)')
    videos = load_ref_davis_videos(meta_expressions)
    folders = [osp.join(pred_dir, f'anno_{a}') for a in range(num_annotators)]
    missing = [p for p in folders if not osp.isdir(p)]
    if missing:
        raise FileNotFoundError(f'Ref-DAVIS17: missing annotator result folder(s) {missing} (expected '
                                f'{pred_dir}/anno_<0..{num_annotators - 1}>/<video>/<frame>.png)')
    tasks = [(folder, masks, video_id, frames, bound_th) for folder in folders for video_id, frames in videos.items()]
    if workers > 1:
        with ProcessPoolExecutor(min(workers, len(tasks))) as pool:
            results = list(pool.map(_evaluate_task, tasks))
    else:
        results = [_evaluate_task(task) for task in tasks]
    summary: Dict[str, object] = {}
    tables, rows = [], []
    for a in range(num_annotators):
        objects = []
        for (_, _, video_id, _, _), video_objects in zip(tasks[a * len(videos):(a + 1) * len(videos)],
                                                          results[a * len(videos):(a + 1) * len(videos)]):
            objects.extend(video_objects)
            for obj in video_objects:
                (jm, jr, jd), (fm, fr, fd) = jf_statistics(obj['J']), jf_statistics(obj['F'])
                rows.append({'annotator': a, 'video': video_id, 'object': obj['object'], 'J-Mean': jm,
                             'J-Recall': jr, 'J-Decay': jd, 'F-Mean': fm, 'F-Recall': fr, 'F-Decay': fd,
                             'J&F-Mean': (jm + fm) / 2})
        tables.append(davis_table(objects))
    for key in DAVIS_TABLE_KEYS:
        summary[key] = float(np.mean([table[key] for table in tables]))
    for a, table in enumerate(tables):
        summary[f'anno_{a}'] = table
    return summary, rows
