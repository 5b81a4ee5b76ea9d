"""ReVOS metric: J, F, A, R and JF of the referring, reasoning and overall tables, equal to VISA's
``tools/eval_revos.py`` on the PNGs of the same masks."""
import logging
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from PIL import Image

from soc_mm.registry import METRICS
from ..functional.revos import (REVOS_BOUND_TH, REVOS_METRICS, REVOS_TABLES, RULE_COUNTS_KEY,
                                RevosExpressionScorer, RevosPredictionError, RevosTruth, check_revos_annotation_keys,
                                load_revos_meta, open_revos_masks, revos_row, revos_summary)
from .sample_utils import (check_frame_size, evaluated_frame_ids, get_field, get_masks, sample_as_dict, sample_name,
                           unique_by_key)


@METRICS.register_module()
class RevosMetric(BaseMetric):
    """ReVOS J, F, A (accuracy), R (robustness) and JF for ``referring`` (``type_id`` 0), ``reason`` (1) and
    ``overall`` (their mean), in percent, computed by :mod:`soc_mm.evaluation.functional.revos` with the
    official rules (its module docstring): the numbers ``evaluate_revos_predictions`` gives for these masks
    saved as PNGs whose object pixels hold ``pred_value``.

    Each sample is one expression with ``pred_masks`` bool ``[T, H0, W0]`` for every frame of its video
    (``frame_ids`` in the order of the meta file; several selected objects as their union). The ground truth
    and the foreground are read from the split's ``mask_dict.json`` and ``mask_dict_foreground.json``
    (indexed, each expression reads its own objects), not from the samples. :meth:`process` scores each
    expression on its rank; only these numbers are gathered; duplicates of padded samplers are dropped, and
    rank 0 builds the tables over every expression of the meta file. As officially, every expression of a
    video without any prediction scores 0 (logged); a video with some but not all of its expressions
    predicted is an error. No-target expressions (``type_id`` 2) are scored but in no table.

    Args:
        meta_file (str): the split's ``meta_expressions_valid_.json``.
        mask_dict_file (str): ``mask_dict.json``.
        foreground_file (str, optional): ``mask_dict_foreground.json``; default: beside ``mask_dict_file``.
        pred_value (int): the 8-bit value of a predicted object pixel, as the PNGs would hold it: A and R
            depend on it (official rule 3). Default 255: what SOC's PNG writers and VISA's inference save;
            1 gives the numbers of 0/1 PNGs.
        union_overlaps (bool): ground truth as the union of the objects (not the official ``uint8`` sum).
        round_expressions (bool): round each expression's numbers as officially (default True).
        bound_th (float): F boundary tolerance (official 0.008).
        output_dir (str, optional): also write each expression's masks as 8-bit PNGs
            ``<output_dir>/<video>/<exp_id>/<frame>.png`` (``pred_value`` on the object, 0 elsewhere; a video
            name with ``/`` gives nested folders, as ReVOS's), the layout ``eval_rvos.py revos`` and VISA's
            ``eval_revos.py`` read: they give the numbers of this metric.
        collect_device, prefix, collect_dir: see ``mmengine.evaluator.BaseMetric``.
    """
    default_prefix = 'revos'

    def __init__(self,
                 meta_file: str,
                 mask_dict_file: str,
                 foreground_file: Optional[str] = None,
                 pred_value: int = 255,
                 union_overlaps: bool = False,
                 round_expressions: bool = True,
                 bound_th: float = REVOS_BOUND_TH,
                 output_dir: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if isinstance(pred_value, bool) or not isinstance(pred_value, int) or not 1 <= pred_value <= 255:
            raise ValueError(f'pred_value must be an 8-bit object value 1..255, got {pred_value!r}')
        if bound_th <= 0:
            raise ValueError(f'bound_th must be > 0, got {bound_th}')
        self.meta_file = meta_file
        self.mask_dict_file = mask_dict_file
        self.foreground_file = foreground_file
        self.pred_value = pred_value
        self.union_overlaps = union_overlaps
        self.round_expressions = round_expressions
        self.bound_th = bound_th
        self.output_dir = output_dir
        self._videos: Optional[dict] = None
        self._masks = None

    @property
    def videos(self) -> dict:
        """Checked meta file (read on first use)."""
        if self._videos is None:
            self._videos = load_revos_meta(self.meta_file)
        return self._videos

    @property
    def masks(self) -> tuple:
        """``(mask dict, foreground dict)``, indexed on first use by every rank that scores samples."""
        if self._masks is None:
            self._masks = open_revos_masks(self.mask_dict_file, self.foreground_file)
            check_revos_annotation_keys(self.videos, *self._masks, meta_file=self.meta_file)
        return self._masks

    def score(self, sample: dict) -> dict:
        """The result of one sample: ``key=(video_id, exp_id)``, ``J``, ``F``, ``A``, ``R`` (fractions) and the
        flags ``pixel_values`` / ``overlap_sum``."""
        pred = get_masks(sample, 'pred_masks')
        check_frame_size(sample, pred, 'pred_masks')
        video_id, exp_id = str(get_field(sample, 'video_id')), str(get_field(sample, 'exp_id'))
        video = self.videos.get(video_id)
        if video is None or exp_id not in video['expressions']:
            raise ValueError(f'{sample_name(sample)}: no such video/expression in {self.meta_file}')
        where = f'{sample_name(sample)} ({self.meta_file})'
        frames = evaluated_frame_ids(sample, pred.shape[0])
        if list(frames) != video['frames']:
            raise ValueError(f'{where}: predicted frames {list(frames)[:3]}... ({len(frames)}) are not the video\'s '
                             f"{len(video['frames'])} frames {video['frames'][:3]}... of the meta file; ReVOS scores "
                             'every frame')
        exp_dir = None if self.output_dir is None else self.png_dir(sample, video_id, exp_id, frames)
        masks, foreground = self.masks
        truth = RevosTruth(masks, foreground, video_id, video, exp_id, union_overlaps=self.union_overlaps)
        scorer = RevosExpressionScorer(self.bound_th, binary_predictions=False)
        shape = tuple(pred.shape[1:])
        for t in range(pred.shape[0]):
            try:
                gt, fg = truth.frame(t, shape)
            except RevosPredictionError as error:
                raise ValueError(f'{where}: {error}') from None
            scorer.add(pred[t].view(np.uint8) * np.uint8(self.pred_value), gt, fg)
        if exp_dir is not None:
            self.write_pngs(exp_dir, frames, pred)
        j, f, a, r = scorer.result()
        return dict(key=(video_id, exp_id), J=j, F=f, A=a, R=r, pixel_values=scorer.pixel_values,
                    overlap_sum=scorer.overlap)

    def png_dir(self, sample: dict, video_id: str, exp_id: str, frames: Sequence[str]) -> str:
        """``<output_dir>/<video>/<exp_id>``, checked to stay inside ``output_dir`` (a video name may have ``/``:
        nested folders, as ReVOS's)."""
        names = [exp_id] + [str(f) for f in frames]
        bad = [p for p in video_id.split('/') + names
               if p in ('', '.', '..') or '\\' in p or '\x00' in p or (os.altsep and os.altsep in p)]
        bad += [p for p in names if '/' in p]
        if bad:
            raise ValueError(f'{sample_name(sample)}: video / expression / frame name {bad[0]!r} would write outside '
                             f'{self.output_dir}')
        return osp.join(self.output_dir, video_id, exp_id)

    def write_pngs(self, exp_dir: str, frames: Sequence[str], pred: np.ndarray) -> None:
        """``pred`` (bool ``[T, H, W]``) as ``<exp_dir>/<frame>.png`` (``pred_value`` on the object)."""
        os.makedirs(exp_dir, exist_ok=True)
        for frame, mask in zip(frames, pred):
            Image.fromarray(mask.view(np.uint8) * np.uint8(self.pred_value)).save(osp.join(exp_dir, f'{frame}.png'))

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            self.results.append(self.score(sample_as_dict(sample)))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        scored = {r['key']: r for r in unique_by_key(results)}
        rows, missing_videos, partial = [], [], []
        for video_id, video in self.videos.items():
            keys = [(video_id, exp_id) for exp_id in video['expressions']]
            have = [k for k in keys if k in scored]
            if have and len(have) < len(keys):
                partial.extend(k for k in keys if k not in scored)
            if not have:
                missing_videos.append(video_id)
            for key in keys:
                expression = video['expressions'][key[1]]
                result = scored.get(key)
                if result is None:
                    rows.append(revos_row(*key, expression, None, 'missing_video', 'no prediction',
                                          round_expressions=self.round_expressions))
                else:
                    rows.append(revos_row(*key, expression, (result['J'], result['F'], result['A'], result['R']),
                                          'scored', pixel_values=result['pixel_values'],
                                          overlap_sum=result['overlap_sum'], round_expressions=self.round_expressions))
        if partial:
            raise ValueError(f'RevosMetric: {len(partial)} expression(s) of {self.meta_file} have no prediction '
                             f'although other expressions of their video do, e.g. (video_id, exp_id) {partial[:5]}')
        summary = revos_summary(rows)
        if missing_videos:
            names = ', '.join(missing_videos[:10]) + (', ...' if len(missing_videos) > 10 else '')
            print_log(f'RevosMetric: {len(missing_videos)} of {len(self.videos)} videos have no prediction; their '
                      f'{summary[RULE_COUNTS_KEY]["missing_video"]} expressions score 0 (official rule): {names}',
                      logger='current', level=logging.WARNING)
        counts = ', '.join(f'{k} {v}' for k, v in summary[RULE_COUNTS_KEY].items())
        print_log(f'RevosMetric: expressions touched by the official rules: {counts}', logger='current')
        return {f'{table}/{k}': summary[table][k] for table in REVOS_TABLES for k in REVOS_METRICS}
