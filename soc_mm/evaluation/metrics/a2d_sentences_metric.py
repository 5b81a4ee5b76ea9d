"""A2D-Sentences / JHMDB-Sentences metrics of SOC: IoU metrics on the top-scoring mask and
COCO segm mAP over all queries' masks."""
import os.path as osp
from typing import Dict, Hashable, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from soc_mm.registry import METRICS
from soc_mm.structures import COCO_GT_CATEGORY, coco_gt_dict, decode_mask, encode_mask
from ..functional import coco_segm_eval, iou_from_counts, load_coco_gt, referring_iou, referring_iou_summary
from .sample_utils import (check_finite_scores, check_frame_size, evaluated_frame_ids, get_field, get_masks,
                           sample_as_dict, sample_name, unique_by_key)


def _last_argmax(scores: np.ndarray) -> int:
    """Index of the highest score; ties go to the last one (SOC sorts by score and takes the last)."""
    return len(scores) - 1 - int(np.argmax(scores[::-1]))


def _scores_array(sample: dict, scores) -> np.ndarray:
    """Scores as a float numpy array, with a clear error for non-finite values."""
    scores = scores.detach().cpu().float().numpy() if hasattr(scores, 'detach') else np.asarray(scores)
    return check_finite_scores(sample, scores)


@METRICS.register_module()
class A2DSentencesMetric(BaseMetric):
    """Overall / mean IoU, P@0.5:0.9 and COCO segm mAP (A2D-Sentences, JHMDB-Sentences).

    Per evaluated frame (one COCO "image"):

    * IoU metrics use the top-scoring mask: the query with the highest
      ``pred_instances.scores[:, t]`` (ties: the last query), or ``pred_masks[t]`` when the
      sample has no ``pred_instances``. IoU = (I + 1e-6) / (U + 1e-6) in float32,
      ``P@k`` counts IoU > k, overall IoU = sum I / sum U.
    * mAP: pycocotools COCOeval (segm, ``useCats=0``) over the masks of all queries with
      their scores (``pred_instances``), or the single ``pred_masks[t]`` with ``pred_scores[t]``.

    Ground truth: ``ann_file`` (COCO json, e.g. from SOC's ``create_gt_in_coco_format``; one
    annotation per image) or, when None, built in memory from ``ori_gt_masks``.
    COCO image ids come from metainfo ``coco_img_ids`` (one per evaluated frame) or
    ``img_id`` (one evaluated frame); without ``ann_file`` they default to
    ``'<video_id>/<exp_id>/<frame_id>'``. Values are fractions in [0, 1].

    Args:
        ann_file (str, optional): COCO-format ground truth json.
        metric (Sequence[str]): any of ``'iou'`` and ``'map'``. Defaults to both.
        iou_thrs (Sequence[float]): precision thresholds. Defaults to 0.5, 0.6, ..., 0.9.
        collect_device, prefix, collect_dir: see ``mmengine.evaluator.BaseMetric``.
    """
    default_prefix = 'a2d'

    def __init__(self,
                 ann_file: Optional[str] = None,
                 metric: Sequence[str] = ('iou', 'map'),
                 iou_thrs: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        metric = [metric] if isinstance(metric, str) else list(metric)
        if not metric or not set(metric) <= {'iou', 'map'}:
            raise ValueError(f"metric must be a non-empty subset of ('iou', 'map'), got {metric}")
        if ann_file is not None and not osp.isfile(ann_file):
            raise FileNotFoundError(f'{type(self).__name__}: ann_file {ann_file} not found '
                                    '(expected a COCO-format ground-truth json)')
        self.ann_file = ann_file
        self.metrics = metric
        self.iou_thrs = tuple(iou_thrs)

    # ------------------------------------------------------------------ process
    def _image_ids(self, sample: dict, frames: List[str]) -> List[Hashable]:
        if sample.get('coco_img_ids') is not None:
            ids = list(sample['coco_img_ids'])
        elif sample.get('img_id') is not None:
            ids = sample['img_id']
            ids = list(ids) if isinstance(ids, (list, tuple)) else [ids]
        elif self.ann_file is None:
            return [f"{sample.get('video_id')}/{sample.get('exp_id')}/{frame}" for frame in frames]
        else:
            raise ValueError(f"{sample_name(sample)} has no 'coco_img_ids' / 'img_id' metainfo, needed to "
                             f'match its frames to the images of {self.ann_file}')
        if len(ids) != len(frames):
            raise ValueError(f'{sample_name(sample)}: {len(ids)} COCO image ids for {len(frames)} '
                             'evaluated frames')
        return [i.item() if hasattr(i, 'item') else i for i in ids]

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Encode every evaluated frame's masks as RLE (+ its top-mask I/U); one result per sample."""
        for sample in data_samples:
            sample = sample_as_dict(sample)
            pred_top = get_masks(sample, 'pred_masks')
            num_frames = pred_top.shape[0]
            check_frame_size(sample, pred_top, 'pred_masks')
            frames = evaluated_frame_ids(sample, num_frames)
            img_ids = self._image_ids(sample, frames)

            instances = sample.get('pred_instances')
            if instances is not None and instances.get('masks') is not None:
                masks = get_masks(sample, 'pred_instances.masks', ndim=4, value=instances['masks'])
                scores = np.asarray(_scores_array(sample, instances['scores']), dtype=np.float64)
                if masks.shape[1:] != pred_top.shape or scores.shape != masks.shape[:2]:
                    raise ValueError(f'{sample_name(sample)}: pred_instances masks {masks.shape} / scores '
                                     f'{scores.shape} do not match pred_masks {pred_top.shape}')
            else:
                masks = pred_top[None]
                scores = np.asarray(_scores_array(sample, get_field(sample, 'pred_scores')),
                                    dtype=np.float64).reshape(1, -1)
                if scores.shape[1] != num_frames:
                    raise ValueError(f'{sample_name(sample)}: {scores.shape[1]} pred_scores for '
                                     f'{num_frames} frames')

            gt = None
            if self.ann_file is None or sample.get('ori_gt_masks') is not None:
                gt = get_masks(sample, 'ori_gt_masks')
                if gt.shape != pred_top.shape:
                    raise ValueError(f'{sample_name(sample)}: pred_masks {pred_top.shape} and ori_gt_masks '
                                     f'{gt.shape} differ in shape')

            entries = []
            for t, (frame, img_id) in enumerate(zip(frames, img_ids)):
                top = _last_argmax(scores[:, t])
                entry = dict(key=(str(sample.get('video_id')), str(sample.get('exp_id')), frame),
                             img_id=img_id, name=sample_name(sample), expression=sample.get('expression'),
                             top_rle=encode_mask(masks[top, t]),
                             dets=[(encode_mask(masks[q, t]), float(scores[q, t]))
                                   for q in range(masks.shape[0])] if 'map' in self.metrics else [])
                if gt is not None:
                    entry['gt_rle'] = encode_mask(gt[t])
                    _, entry['inter'], entry['union'] = referring_iou(masks[top, t], gt[t])
                entries.append(entry)
            self.results.append(entries)

    # ---------------------------------------------------------------- compute
    def _load_gt(self, frames: List[dict]):
        if self.ann_file is None:
            return load_coco_gt(coco_gt_dict([(e['img_id'], e['gt_rle'], None) for e in frames],
                                             source=type(self).__name__))
        return load_coco_gt(self.ann_file)

    def compute_metrics(self, results: List[List[dict]]) -> Dict[str, float]:
        name = type(self).__name__
        # duplicates from padded samplers count once; two expressions with the same ids are an error
        frames = unique_by_key([entry for entries in results for entry in entries], source='expression',
                               metric=name, hint=(
                                   ' (key = video_id, exp_id, frame). A2D-Sentences names a sample by its video, '
                                   'instance and frame: two queries of one (video, instance) in '
                                   'a2d_annotation.txt cannot be told apart (create_coco_gt.py refuses them '
                                   'too); keep one query per (video, instance)'))
        if not frames:
            raise ValueError(f'{name}: no samples were evaluated')
        by_img = {}
        for entry in frames:
            if entry['img_id'] in by_img:
                raise ValueError(f"{name}: COCO image id {entry['img_id']!r} used by two frames "
                                 f"({by_img[entry['img_id']]['key']} and {entry['key']})")
            by_img[entry['img_id']] = entry
        coco_gt = self._load_gt(frames)
        gt_ids = list(coco_gt.getImgIds())
        missing = [i for i in gt_ids if i not in by_img]
        if missing:
            raise ValueError(f'{name}: {len(missing)} ground-truth image(s) have no prediction, '
                             f'e.g. {missing[:5]} (a video or sample missing in the predictions?)')
        unknown = [e['key'] for i, e in by_img.items() if i not in coco_gt.imgs]
        if unknown:
            raise ValueError(f'{name}: {len(unknown)} predicted frame(s) have no image in '
                             f'{self.ann_file}, e.g. {unknown[:5]}')

        metrics = {}
        if 'map' in self.metrics:
            predictions = [dict(image_id=e['img_id'], category_id=COCO_GT_CATEGORY['id'], segmentation=rle,
                                score=score)
                           for e in frames for rle, score in e['dets']]
            coco_metrics, summary = coco_segm_eval(coco_gt, predictions)
            print_log(f'{name} COCO segm evaluation:\n{summary}', logger='current')
            metrics.update(coco_metrics)
        if 'iou' in self.metrics:
            ious, inters, unions = [], [], []
            for img_id in gt_ids:  # SOC's order: the ground truth's images
                entry = by_img[img_id]
                if self.ann_file is None:  # I/U against ori_gt_masks, computed in process()
                    inter, union = entry['inter'], entry['union']
                    iou = iou_from_counts(inter, union)
                else:  # as SOC: against the json's (single) annotation of this image
                    anns = coco_gt.imgToAnns[img_id]
                    if len(anns) != 1:
                        raise ValueError(f'{name}: image {img_id!r} of {self.ann_file} has {len(anns)} '
                                         'annotations, expected exactly one referred object')
                    gt_mask = decode_mask(coco_gt.annToRLE(anns[0]))
                    top = decode_mask(entry['top_rle'])
                    if gt_mask.shape != top.shape:
                        raise ValueError(f"{entry['name']}: frame {entry['key'][2]} predicted at "
                                         f'{top.shape}, ground truth {img_id!r} is {gt_mask.shape}')
                    iou, inter, union = referring_iou(top, gt_mask)
                ious.append(iou)
                inters.append(inter)
                unions.append(union)
            metrics.update(referring_iou_summary(ious, inters, unions, self.iou_thrs))
        print_log(f'{name}: {len(frames)} frames, ' + ', '.join(f'{k} {v:.4f}' for k, v in metrics.items()),
                  logger='current')
        return metrics

