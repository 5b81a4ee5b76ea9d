"""J&F (DAVIS-2017 region similarity and boundary F-measure) over referring expressions."""
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from soc_mm.registry import METRICS
from soc_mm.structures import decode_mask, encode_mask
from ..functional import jf_per_frame, jf_statistics
from .sample_utils import (check_expected_expressions, check_finite_scores, evaluated_frame_ids, get_field,
                           pred_and_gt_masks, sample_as_dict, sample_name, to_numpy, unique_by_key)


def _exp_order(exp_id: str):
    """Expressions in numeric order when ids are numbers (Ref-DAVIS: '0', '1', ..., '10')."""
    return (0, int(exp_id), '') if exp_id.isdigit() else (1, 0, exp_id)


JF_KEYS = ('J&F', 'J', 'F', 'J-Recall', 'J-Decay', 'F-Recall', 'F-Decay')


def summarize_jf(per_expression: Sequence[dict]) -> Dict[str, float]:
    """DAVIS global table from per-frame J/F of each expression (= object).

    ``J`` is the mean over expressions of the per-expression mean over frames;
    recall and decay likewise (see :func:`jf_statistics`); ``J&F = (J + F) / 2``.
    """
    # lists of per-expression (mean, recall, decay), averaged like eval_davis.py does
    j_mean, j_recall, j_decay = (np.mean(list(v)) for v in zip(*(jf_statistics(it['J']) for it in per_expression)))
    f_mean, f_recall, f_decay = (np.mean(list(v)) for v in zip(*(jf_statistics(it['F']) for it in per_expression)))
    return {'J&F': float((j_mean + f_mean) / 2.), 'J': float(j_mean), 'F': float(f_mean),
            'J-Recall': float(j_recall), 'J-Decay': float(j_decay),
            'F-Recall': float(f_recall), 'F-Decay': float(f_decay)}


def merge_object_masks(masks: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Merge the masks of one video's objects into disjoint masks, as writing them into
    one index PNG does (Ref-DAVIS17 protocol).

    Args:
        masks: bool ``[N, T, H, W]``; scores: float ``[N, T]``.

    Returns:
        bool ``[N, T, H, W]``, disjoint: a pixel claimed by several objects goes to
        the one with the highest frame score (ties: the lowest index).
    """
    num_objects, num_frames = masks.shape[:2]
    merged = np.zeros_like(masks)
    for t in range(num_frames):
        # candidate value per object: its score where it claims the pixel, -inf elsewhere
        claim = np.where(masks[:, t], scores[:, t, None, None], -np.inf)
        winner = np.argmax(claim, axis=0)
        claimed = masks[:, t].any(axis=0)
        for k in range(num_objects):
            merged[k, t] = claimed & (winner == k)
    return merged


def davis_unsupervised_jf(pred_objects: np.ndarray, gt_objects: np.ndarray,
                          bound_th: float = 0.008) -> Tuple[np.ndarray, np.ndarray]:
    """Per-object J and F of a video after the DAVIS "unsupervised" assignment: predicted
    objects are matched one-to-one to ground-truth objects maximising the mean of
    (J + F) / 2 (Hungarian; missing predictions are empty masks).

    Args:
        pred_objects, gt_objects: bool ``[N, T, H, W]``.

    Returns:
        (J, F), float64 ``[N, T]``: row i is the i-th matched pair (predictions in order).
    """
    from scipy.optimize import linear_sum_assignment
    num = gt_objects.shape[0]
    j = np.zeros((num, num, gt_objects.shape[1]))
    f = np.zeros_like(j)
    for r in range(num):
        for g in range(num):
            j[r, g], f[r, g] = jf_per_frame(pred_objects[r], gt_objects[g], bound_th=bound_th)
    rows, cols = linear_sum_assignment(-(j.mean(axis=2) + f.mean(axis=2)) / 2)
    return j[rows, cols], f[rows, cols]


@METRICS.register_module()
class RVOSJFMetric(BaseMetric):
    """J&F for referring video object segmentation (Ref-DAVIS17, Ref-YouTube-VOS with masks).

    Each sample is one expression; every evaluated frame of it counts
    (``pred_masks`` vs ``ori_gt_masks``, bool ``[T_out, H0, W0]``). By default per-frame
    J and F are computed in :meth:`process` (in parallel over ranks), only they are
    gathered, and the DAVIS table (mean over expressions of mean / recall / decay over
    frames) is reported. Values are fractions in [0, 1] like the DAVIS evaluator's.

    With ``ref_davis_protocol=True`` the metric reproduces SOC's Ref-DAVIS17 evaluation
    (``infer_davis.py`` + ``eval_davis.py`` with the davis2017 "unsupervised" task) for
    each annotator (metainfo ``annotator``) and averages the four tables: per video, the
    annotator's expressions (one per object, ordered by ``exp_id``) are merged into one
    index map (:func:`merge_object_masks`), matched to the ground-truth objects
    (their ``ori_gt_masks``) by :func:`davis_unsupervised_jf`, and every ground-truth
    object counts once. Masks are gathered as RLE and scored on rank 0.

    Args:
        bound_th (float): boundary tolerance of F (fraction of the diagonal if < 1,
            else pixels). Defaults to 0.008 (DAVIS).
        ref_davis_protocol (bool): see above. Defaults to False.
        num_annotators (int): annotators expected with ``ref_davis_protocol``. Defaults to 4.
        meta_file (str, optional): ``meta_expressions.json`` whose every video and
            expression must have been evaluated (else ValueError).
        collect_device, prefix, collect_dir: see ``mmengine.evaluator.BaseMetric``.
    """
    default_prefix = 'rvos'

    def __init__(self,
                 bound_th: float = 0.008,
                 ref_davis_protocol: bool = False,
                 num_annotators: int = 4,
                 meta_file: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if bound_th <= 0:
            raise ValueError(f'bound_th must be > 0, got {bound_th}')
        self.bound_th = bound_th
        self.ref_davis_protocol = ref_davis_protocol
        self.num_annotators = num_annotators
        self.meta_file = meta_file

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Compute per-frame J and F of each sample; one result per sample."""
        for sample in data_samples:
            sample = sample_as_dict(sample)
            pred, gt = pred_and_gt_masks(sample)
            frames = evaluated_frame_ids(sample, pred.shape[0])
            key = (str(get_field(sample, 'video_id')), str(get_field(sample, 'exp_id')))
            if not self.ref_davis_protocol:
                j, f = jf_per_frame(pred, gt, bound_th=self.bound_th)
                self.results.append(dict(key=key, frames=frames, J=j, F=f))
                continue
            annotator = int(get_field(sample, 'annotator'))
            if not 0 <= annotator < self.num_annotators:
                raise ValueError(f'{sample_name(sample)}: annotator {annotator} not in '
                                 f'[0, {self.num_annotators})')
            scores = to_numpy(get_field(sample, 'pred_scores')).astype(np.float64).reshape(-1)
            check_finite_scores(sample, scores)
            if scores.shape[0] != pred.shape[0]:
                raise ValueError(f'{sample_name(sample)}: {scores.shape[0]} pred_scores for '
                                 f'{pred.shape[0]} frames')
            self.results.append(dict(key=key, annotator=annotator, frames=frames, scores=scores,
                                     pred=[encode_mask(m) for m in pred], gt=[encode_mask(m) for m in gt]))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        results = unique_by_key(results)
        if not results:
            raise ValueError('RVOSJFMetric: no samples were evaluated')
        check_expected_expressions([r['key'] for r in results], self.meta_file, 'RVOSJFMetric')
        if not self.ref_davis_protocol:
            metrics = summarize_jf(results)
            print_log(f'RVOSJFMetric: {len(results)} expressions, ' +
                      ', '.join(f'{k} {v:.4f}' for k, v in metrics.items()), logger='current')
            return metrics

        groups = defaultdict(list)
        for item in results:
            groups[(item['annotator'], item['key'][0])].append(item)
        missing = sorted(set(range(self.num_annotators)) - {a for a, _ in groups})
        if missing:
            raise ValueError(f'RVOSJFMetric (Ref-DAVIS17 protocol): no expressions of annotator(s) {missing}')
        per_object = defaultdict(list)  # annotator -> [dict(J=[T], F=[T])] per ground-truth object
        for (annotator, video_id), items in sorted(groups.items()):
            items = sorted(items, key=lambda it: _exp_order(it['key'][1]))
            frames = items[0]['frames']
            for it in items[1:]:
                if it['frames'] != frames:
                    raise ValueError(f'RVOSJFMetric (Ref-DAVIS17 protocol): video {video_id!r} expressions '
                                     f"{items[0]['key'][1]!r} and {it['key'][1]!r} cover different frames")
            pred = np.stack([np.stack([decode_mask(r) for r in it['pred']]) for it in items])
            gt = np.stack([np.stack([decode_mask(r) for r in it['gt']]) for it in items])
            scores = np.stack([it['scores'] for it in items])
            j, f = davis_unsupervised_jf(merge_object_masks(pred, scores), gt, bound_th=self.bound_th)
            per_object[annotator].extend(dict(J=jo, F=fo) for jo, fo in zip(j, f))
        metrics = {}
        tables = [summarize_jf(per_object[a]) for a in range(self.num_annotators)]
        for key in JF_KEYS:
            metrics[key] = float(np.mean([table[key] for table in tables]))
        for a, table in enumerate(tables):
            metrics[f'J&F_annotator{a}'] = table['J&F']
        print_log('RVOSJFMetric (Ref-DAVIS17, mean over annotators): ' +
                  ', '.join(f'{k} {v:.4f}' for k, v in metrics.items()), logger='current')
        return metrics
