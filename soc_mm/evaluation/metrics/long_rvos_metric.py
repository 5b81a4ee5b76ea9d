"""Long-RVOS metric: J, F, J&F, tIoU and vIoU per description type and overall (:class:`LongRVOSMetric`)."""
import logging
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from soc_mm.registry import METRICS
from ..functional.jf import jf_per_frame
from ..functional.long_rvos import (EXPRESSION_SCORES, LONG_RVOS_BOUND_TH, LONG_RVOS_METRICS, load_long_rvos_meta,
                                    long_rvos_counts, long_rvos_summary, read_png_mask, scores_from_frames)
from .sample_utils import (check_frame_size, evaluated_frame_ids, get_field, get_masks, sample_as_dict, sample_name,
                           unique_by_key)


@METRICS.register_module()
class LongRVOSMetric(BaseMetric):
    """Long-RVOS J, F, J&F, tIoU and vIoU of the ``static``, ``dynamic``, ``hybrid`` and ``overall`` tables,
    equal to the official ``eval/eval_long_rvos/`` scripts and to
    :func:`soc_mm.evaluation.functional.long_rvos.evaluate_long_rvos_predictions` on the same masks (the
    definitions are in that module's docstring).

    Each sample is one expression with ``pred_masks`` bool ``[T, H0, W0]`` and its ``frame_ids``: every frame
    of its video in the order of ``meta_expressions.json`` (default), or, with ``only_predicted_frames=True``
    (``eval_pred_frame.py``, key-frame evaluation), the frames that were predicted -- those are the frames
    scored. The ground truth is read from ``annotations_dir`` (``<video>/<obj_id>/<frame>.png``; no file: the
    object is absent), one frame at a time, not from the samples: the metric scores exactly what the official
    scripts score whatever the pipeline loaded.

    :meth:`process` computes each expression's four numbers (in parallel over ranks); only these are
    gathered, duplicates of padded samplers are dropped, and rank 0 averages over the expressions of the
    meta file. Every expression of a video with no prediction at all scores 0 (the official rule for a
    missing video folder; logged). A video with some but not all of its expressions predicted is an error.

    Metrics: ``<table>/<name>`` for table in ``static``, ``dynamic``, ``hybrid``, ``overall`` and name in
    ``J``, ``F``, ``J&F``, ``tIoU``, ``vIoU`` (fractions; NaN for a type without expressions, as the
    official scripts print), e.g. ``long_rvos/overall/J&F``.

    Args:
        meta_file (str): the split's ``meta_expressions.json``.
        annotations_dir (str): the split's ``Annotations`` folder.
        only_predicted_frames (bool): score only the predicted frames; ``overall`` then pools every expression
            (``eval_pred_frame.py``) and ``"type"`` is not required.
        bound_th (float): F boundary tolerance. Defaults to the official 0.008.
        collect_device, prefix, collect_dir: see ``mmengine.evaluator.BaseMetric``.
    """
    default_prefix = 'long_rvos'

    def __init__(self,
                 meta_file: str,
                 annotations_dir: str,
                 only_predicted_frames: bool = False,
                 bound_th: float = LONG_RVOS_BOUND_TH,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if bound_th <= 0:
            raise ValueError(f'bound_th must be > 0, got {bound_th}')
        self.meta_file = meta_file
        self.annotations_dir = annotations_dir
        self.only_predicted_frames = bool(only_predicted_frames)
        self.bound_th = bound_th
        self._videos: Optional[dict] = None

    @property
    def videos(self) -> dict:
        """Checked ``meta_expressions.json`` videos (read on first use)."""
        if self._videos is None:
            self._videos = load_long_rvos_meta(self.meta_file, require_type=not self.only_predicted_frames)
        return self._videos

    def _scored_frames(self, sample: dict, frame_ids: List[str], video: dict, where: str) -> List[str]:
        """The sample's frames, checked: all frames of the video in order, or (``only_predicted_frames``)
        distinct frames of the video."""
        if not self.only_predicted_frames:
            if frame_ids != video['frames']:
                raise ValueError(f'{where}: predicted frames {frame_ids[:3]}... ({len(frame_ids)}) are not the '
                                 f"video's {len(video['frames'])} frames {video['frames'][:3]}... of the meta file; "
                                 'Long-RVOS scores every frame (only_predicted_frames=True scores the predicted ones)')
            return frame_ids
        known = set(video['frames'])
        unknown = [f for f in frame_ids if f not in known]
        if unknown or len(set(frame_ids)) != len(frame_ids):
            raise ValueError(f'{where}: predicted frames must be distinct frames of the video, got '
                             f'{len(frame_ids)} frames ({len(set(frame_ids))} distinct), unknown {unknown[:3]}')
        return frame_ids

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """J, F, tIoU, vIoU of each sample (= expression); one result ``dict(key=(video, exp_id), ...)`` each."""
        for sample in data_samples:
            sample = sample_as_dict(sample)
            pred = get_masks(sample, 'pred_masks')
            check_frame_size(sample, pred, 'pred_masks')
            video_id, exp_id = str(get_field(sample, 'video_id')), str(get_field(sample, 'exp_id'))
            video = self.videos.get(video_id)
            if video is None or exp_id not in video['expressions']:
                raise ValueError(f'{sample_name(sample)}: no such video/expression in {self.meta_file}')
            where = f'{sample_name(sample)} ({self.meta_file})'
            frames = self._scored_frames(sample, evaluated_frame_ids(sample, pred.shape[0]), video, where)
            gt_dir = osp.join(self.annotations_dir, video_id, video['expressions'][exp_id]['obj_id'])
            j_frames, f_frames = np.empty(len(frames)), np.empty(len(frames))
            gt_present = np.zeros(len(frames), bool)
            for t, frame in enumerate(frames):  # one ground-truth frame at a time
                path = osp.join(gt_dir, f'{frame}.png')
                gt = read_png_mask(path, 'ground truth') if osp.exists(path) else np.zeros(pred.shape[1:], bool)
                if gt.shape != pred.shape[1:]:
                    raise ValueError(f'{where}: ground truth {path} is {gt.shape[0]}x{gt.shape[1]} (H x W) but the '
                                     f'predicted masks are {pred.shape[1]}x{pred.shape[2]}')
                j, f = jf_per_frame(pred[t], gt, bound_th=self.bound_th)
                j_frames[t], f_frames[t], gt_present[t] = j[0], f[0], gt.any()
            scores = scores_from_frames(j_frames, f_frames, gt_present, pred.any(axis=(1, 2)))
            self.results.append(dict(key=(video_id, exp_id), **scores))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        scored = {r['key']: r for r in unique_by_key(results)}
        rows, partial = [], []
        for video_id, video in self.videos.items():
            keys = [(video_id, exp_id) for exp_id in video['expressions']]
            have = [k for k in keys if k in scored]
            if have and len(have) < len(keys):
                partial.extend(k for k in keys if k not in scored)
            for key in keys:
                expression = video['expressions'][key[1]]
                result = scored.get(key)
                row = dict(video=video_id, exp_id=key[1], type=expression['type'], frames_without_prediction=0,
                           prediction='scored' if result is not None else 'missing')
                row.update({name: (result[name] if result is not None else 0.0) for name in EXPRESSION_SCORES})
                rows.append(row)
        if partial:
            raise ValueError(f'LongRVOSMetric: {len(partial)} expression(s) of {self.meta_file} have no prediction '
                             f'although other expressions of their video do, e.g. (video_id, exp_id) {partial[:5]}')
        summary = long_rvos_summary(rows, self.only_predicted_frames)
        counts = long_rvos_counts(rows)
        if counts['missing_videos']:
            names = ', '.join(counts['missing_videos'][:10])
            print_log(f"LongRVOSMetric: {len(counts['missing_videos'])} of {len(self.videos)} videos have no "
                      f"prediction ({counts['expressions_of_missing_videos']} expressions scored 0): {names}",
                      logger='current', level=logging.WARNING)
        print_log(f"LongRVOSMetric: {counts['expressions']} expressions (static {counts['static']}, dynamic "
                  f"{counts['dynamic']}, hybrid {counts['hybrid']}, other types {counts['other_type']}); "
                  + '; '.join(f'{table} ' + ', '.join(f'{k} {v:.4f}' for k, v in values.items())
                              for table, values in summary.items()), logger='current')
        return {f'{table}/{name}': summary[table][name] for table in summary for name in LONG_RVOS_METRICS}
