"""MeViS metrics: J&F on ``valid_u`` (:class:`MeViSMetric`) and the ``valid`` submission zip
(:class:`MeViSSubmissionMetric`)."""
import logging
from typing import Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from soc_mm.registry import METRICS
from ..functional.mevis import (MEVIS_BOUND_TH, check_mevis_frames, load_mevis_mask_dict, load_mevis_meta,
                                mevis_expression_jf, mevis_gt_masks, mevis_missing_summary, mevis_summary)
from .ref_ytvos_submission_metric import RefYTVOSSubmissionMetric
from .sample_utils import (check_frame_size, evaluated_frame_ids, get_field, get_masks, sample_as_dict,
                           sample_name, unique_by_key)


@METRICS.register_module()
class MeViSMetric(BaseMetric):
    """MeViS J, F and J&F (``valid_u``), equal to the official ``tools/eval_mevis.py`` and to
    ``tools/analysis_tools/eval_mevis.py`` on the same masks (both use
    :mod:`soc_mm.evaluation.functional.mevis`).

    Each sample is one expression with ``pred_masks`` bool ``[T, H0, W0]`` for every frame of its
    video (``frame_ids``, in the order of ``meta_expressions.json``; several selected objects are
    given as their union). The ground truth is read from the split's ``mask_dict.json`` (union of
    the expression's ``anno_id`` masks), not from the samples' ``ori_gt_masks``: the metric then
    scores exactly what the official evaluator scores whatever the dataset pipeline loaded, and it
    needs the meta file anyway for the expressions that got no prediction.

    :meth:`process` computes each expression's J and F (in parallel over ranks); only these numbers
    are gathered, duplicates of padded samplers are dropped, and rank 0 averages over every
    expression of the meta file. As in the official evaluation, every expression of a video with no
    prediction at all scores ``J = F = 0``; those videos are reported in the log. A video with some
    but not all of its expressions predicted is an error (the official script cannot score it).

    Args:
        meta_file (str): the split's ``meta_expressions.json`` (with ``anno_id``).
        mask_dict_file (str): the split's ``mask_dict.json``.
        bound_th (float): F boundary tolerance. Defaults to the official 0.008.
        collect_device, prefix, collect_dir: see ``mmengine.evaluator.BaseMetric``.
    """
    default_prefix = 'mevis'

    def __init__(self,
                 meta_file: str,
                 mask_dict_file: str,
                 bound_th: float = MEVIS_BOUND_TH,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if bound_th <= 0:
            raise ValueError(f'bound_th must be > 0, got {bound_th}')
        self.meta_file = meta_file
        self.mask_dict_file = mask_dict_file
        self.bound_th = bound_th
        self._videos: Optional[dict] = None
        self._mask_dict: Optional[dict] = None

    @property
    def videos(self) -> dict:
        """Checked ``meta_expressions.json`` videos (read on first use)."""
        if self._videos is None:
            self._videos = load_mevis_meta(self.meta_file)
        return self._videos

    @property
    def mask_dict(self) -> dict:
        """``mask_dict.json`` (read on first use, by every rank that processes samples)."""
        if self._mask_dict is None:
            self._mask_dict = load_mevis_mask_dict(self.mask_dict_file)
        return self._mask_dict

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """J and F of each sample (= expression); one result ``dict(key=(video, exp_id), J, F)`` each."""
        for sample in data_samples:
            sample = sample_as_dict(sample)
            pred = get_masks(sample, 'pred_masks')
            check_frame_size(sample, pred, 'pred_masks')
            video_id, exp_id = str(get_field(sample, 'video_id')), str(get_field(sample, 'exp_id'))
            video = self.videos.get(video_id)
            if video is None or exp_id not in video['expressions']:
                raise ValueError(f'{sample_name(sample)}: no such video/expression in {self.meta_file}')
            where = f'{sample_name(sample)} ({self.meta_file})'
            check_mevis_frames(evaluated_frame_ids(sample, pred.shape[0]), video, where)
            gt = mevis_gt_masks(self.mask_dict, video['expressions'][exp_id]['anno_id'], pred.shape[0],
                                tuple(pred.shape[1:]), where=where)
            j, f = mevis_expression_jf(pred, gt, bound_th=self.bound_th)
            self.results.append(dict(key=(video_id, exp_id), J=j, F=f))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        scored = {r['key']: (r['J'], r['F']) for r in unique_by_key(results)}
        missing_videos, partial = [], []
        per_expression = []
        for video_id, video in self.videos.items():
            keys = [(video_id, exp_id) for exp_id in video['expressions']]
            have = [k for k in keys if k in scored]
            if not have:
                missing_videos.append(video_id)
            elif len(have) < len(keys):
                partial.extend(k for k in keys if k not in scored)
            per_expression.extend(scored.get(k, (0.0, 0.0)) for k in keys)
        if partial:
            raise ValueError(f'MeViSMetric: {len(partial)} expression(s) of {self.meta_file} have no prediction '
                             f'although other expressions of their video do, e.g. (video_id, exp_id) {partial[:5]}')
        metrics = mevis_summary(per_expression)
        if missing_videos:
            num_missing = sum(len(self.videos[v]['expressions']) for v in missing_videos)
            line = mevis_missing_summary(missing_videos, len(self.videos), num_missing)
            print_log(f'MeViSMetric: {line}', logger='current', level=logging.WARNING)
        print_log(f'MeViSMetric: {len(per_expression)} expressions, ' +
                  ', '.join(f'{k} {v:.4f}' for k, v in metrics.items()), logger='current')
        return metrics


@METRICS.register_module()
class MeViSSubmissionMetric(RefYTVOSSubmissionMetric):
    """Write the MeViS ``valid`` submission: 8-bit PNGs (255 = object) of every frame of every
    expression, zipped with ``<video_id>/<exp_id>/<frame>.png`` at the zip's top level (no enclosing
    folder), as the CodaLab server takes it. The PNGs are written under ``<output_dir>/Annotations``
    (kept with ``keep_pngs=True``; that folder is also what ``tools/analysis_tools/eval_mevis.py``
    reads). Everything else is :class:`RefYTVOSSubmissionMetric`."""
    default_prefix = 'mevis'
    zip_root = ''
