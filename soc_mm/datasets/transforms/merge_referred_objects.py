"""SOC++'s MeViS training target: the objects an expression refers to, merged into one instance.

SOC++ (the follow-up of SOC, trained on MeViS) does not match each referred object with its own query:
per frame it takes the union of the referred objects' masks as ONE target, whose box is the smallest
box holding the referred objects' boxes *including the all-zero box of an object absent from that
frame* (so an absent object pulls the box's top-left corner to the image origin), and which is visible
where the union is not empty. :class:`MergeReferredObjects` builds that target from the packed sample
of ``MeViSDataset`` (``PackRVOSInputs``' ``gt_instances`` and ``ref_inst_idx``);
:func:`referred_union_boxes` is the box rule.
"""
import numbers
from typing import List, Sequence

import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import InstanceData
from torch import Tensor

from soc_mm.registry import TRANSFORMS
from soc_mm.structures import RVOSDataSample

#: the fields of ``gt_instances`` the merge knows how to combine
MERGED_FIELDS = ('masks', 'boxes', 'labels', 'visible')


def referred_union_boxes(masks: Tensor, flipped: bool = False) -> Tensor:
    """SOC++'s box of the merged target per frame, normalised ``(cx, cy, w, h)``.

    Each object's box on a frame is its mask's extent (x1/y1 = first, x2/y2 = last occupied column/row,
    inclusive, as ``masks_to_boxes``); an object absent from the frame has SOC++'s all-zero box
    ``(0, 0, 0, 0)``, computed before the horizontal flip, which the flip maps to ``(w, 0, w, 0)``
    (``flipped=True``). The merged box is ``(min x1, min y1, max x2, max y2)`` over the objects, so on a
    frame where some object is absent its corner at the origin (or at ``(w, 0)`` after a flip) belongs
    to the box. A frame where no object is present gets the all-zero box (as ``PackRVOSInputs`` gives
    every invisible instance).

    Args:
        masks (Tensor): bool ``[K, T, h, w]``, the K >= 1 referred objects' masks on the T frames.
        flipped (bool): whether the clip was flipped horizontally (``metainfo['flip']``).

    Returns:
        Tensor: float32 ``[T, 4]`` ``(cx, cy, w, h)`` normalised by ``(w, h, w, h)``.
    """
    if masks.dim() != 4 or masks.dtype != torch.bool or masks.shape[0] == 0:
        raise ValueError(f'referred_union_boxes: masks must be bool [K, T, h, w] with K >= 1, got '
                         f'{masks.dtype} {tuple(masks.shape)}')
    h, w = masks.shape[-2:]
    rows, cols = masks.any(-1), masks.any(-2)  # [K, T, h], [K, T, w]
    present = rows.any(-1)  # [K, T]
    y1 = rows.int().argmax(-1)  # first occupied row (argmax returns the first maximum)
    y2 = h - 1 - rows.flip(-1).int().argmax(-1)
    x1 = cols.int().argmax(-1)
    x2 = w - 1 - cols.flip(-1).int().argmax(-1)
    corner_x = w if flipped else 0  # the absent object's zero box, after the clip's flip
    x1, x2 = (torch.where(present, v, torch.full_like(v, corner_x)) for v in (x1, x2))
    y1, y2 = (torch.where(present, v, torch.zeros_like(v)) for v in (y1, y2))
    x1, y1 = x1.min(0)[0].float(), y1.min(0)[0].float()  # [T]
    x2, y2 = x2.max(0)[0].float(), y2.max(0)[0].float()
    boxes = torch.stack([(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h], dim=-1)
    boxes[~present.any(0)] = 0
    return boxes


@TRANSFORMS.register_module()
class MergeReferredObjects(BaseTransform):
    """Merge the referred objects of a packed sample into ONE target instance, as SOC++ trains on MeViS.

    Placed after ``PackRVOSInputs`` (it reads the packed ``gt_instances``, whose masks are those of the
    final, resized and possibly flipped clip). When the sample's ``ref_inst_idx`` lists K >= 2 referred
    instances, they are replaced by one instance (at index 0; the other instances, if any, follow in
    their order):

    * ``masks`` bool ``[T, h, w]``: the union of the referred objects' masks per frame;
    * ``boxes`` ``[T, 4]``: :func:`referred_union_boxes` (SOC++'s rule: the absent objects' all-zero
      boxes take part in the min/max, see there);
    * ``visible`` ``[T]``: where any referred object is visible (= where the union is not empty);
    * ``labels``: the referred objects' label (they must all have the same one);

    and ``ref_inst_idx`` becomes ``[0]``. ``ori_gt_masks`` (already the union) is left as it is. A sample
    whose ``ref_inst_idx`` is an int (one referred object) or a list of at most one index (MeViS: no
    target, or a single object) is returned unchanged: its target already is SOC++'s.

    Required: ``results['data_samples']`` an ``RVOSDataSample`` with ``gt_instances`` (``masks`` bool
    ``[N, T, h, w]``, ``boxes`` ``[N, T, 4]``, ``labels`` ``[N]``, optional ``visible`` ``[N, T]``) and
    metainfo ``ref_inst_idx``, and ``flip`` when there is something to merge. Anything else is a
    ValueError naming the sample and what was expected.
    """

    def transform(self, results: dict) -> dict:
        sample = results.get('data_samples') if isinstance(results, dict) else None
        if not isinstance(sample, RVOSDataSample):
            keys = sorted(results) if isinstance(results, dict) else type(results).__name__
            raise ValueError(f'{type(self).__name__}: expects the packed sample (put it after PackRVOSInputs in the '
                             f'pipeline), got results with keys {keys}')
        meta = sample.metainfo
        name = f"{type(self).__name__}: video {meta.get('video_id', '?')!r} expression {meta.get('exp_id', '?')!r}"
        if 'gt_instances' not in sample:
            raise ValueError(f'{name}: the sample has no gt_instances (load the masks before PackRVOSInputs, '
                             'e.g. LoadRLEMasks)')
        if 'ref_inst_idx' not in meta:
            raise ValueError(f'{name}: the sample has no metainfo ref_inst_idx (the referred instances)')
        gt = sample.gt_instances
        num = self._check_instances(gt, name)
        ref = meta['ref_inst_idx']
        if not isinstance(ref, (list, tuple)):
            self._check_index(ref, num, name)
            return results  # one referred object
        ids = [self._check_index(i, num, name) for i in ref]
        if len(set(ids)) != len(ids):
            raise ValueError(f'{name}: ref_inst_idx {list(ref)} lists an instance twice')
        if len(ids) <= 1:
            return results  # no target, or a single object: already one target
        if 'flip' not in meta or not isinstance(meta['flip'], bool):
            raise ValueError(f'{name}: the merged box needs metainfo flip (True/False; PackRVOSInputs packs it '
                             f'from LoadRVOSFrames / RVOSRandomFlip), got {meta.get("flip", "nothing")!r}')
        labels = gt.labels[ids]
        if not bool((labels == labels[0]).all()):
            raise ValueError(f'{name}: the referred instances {ids} have different labels {labels.tolist()}; '
                             'one merged target has one label')
        others = [i for i in range(num) if i not in ids]
        masks = gt.masks[ids]  # [K, T, h, w]
        visible = gt.visible[ids] if 'visible' in gt else masks.flatten(2).any(-1)
        merged = InstanceData(
            masks=torch.cat([masks.any(0, keepdim=True), gt.masks[others]]),
            boxes=torch.cat([referred_union_boxes(masks, meta['flip'])[None].to(gt.boxes.dtype), gt.boxes[others]]),
            labels=torch.cat([labels[:1], gt.labels[others]]))
        if 'visible' in gt:
            merged.visible = torch.cat([visible.any(0, keepdim=True), gt.visible[others]])
        else:
            merged.visible = merged.masks.flatten(2).any(-1)
        sample.gt_instances = merged
        sample.set_metainfo(dict(ref_inst_idx=[0]))
        return results

    @staticmethod
    def _check_index(index, num: int, name: str) -> int:
        if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not 0 <= index < num:
            raise ValueError(f'{name}: ref_inst_idx entries must be instance indices in [0, {num}), got {index!r}')
        return int(index)

    @staticmethod
    def _check_instances(gt: InstanceData, name: str) -> int:
        """Number N of instances after checking the fields' types and shapes."""
        unknown: List[str] = [k for k in gt.keys() if k not in MERGED_FIELDS]
        missing: Sequence[str] = [k for k in ('masks', 'boxes', 'labels') if k not in gt]
        if unknown or missing:
            raise ValueError(f'{name}: gt_instances must hold {list(MERGED_FIELDS[:3])} (and optionally visible), '
                             f'got fields {sorted(gt.keys())}')
        masks = gt.masks
        if not isinstance(masks, Tensor) or masks.dim() != 4 or masks.dtype != torch.bool:
            raise ValueError(f'{name}: gt_instances.masks must be a bool Tensor [N, T, h, w], got '
                             f'{getattr(masks, "dtype", type(masks).__name__)} {tuple(getattr(masks, "shape", ()))}')
        num, frames = masks.shape[:2]
        expected = dict(boxes=(num, frames, 4), labels=(num, ), visible=(num, frames))
        for key, shape in expected.items():
            if key in gt and (not isinstance(gt[key], Tensor) or tuple(gt[key].shape) != shape):
                raise ValueError(f'{name}: gt_instances.{key} must be a Tensor of shape {list(shape)} (masks are '
                                 f'{list(masks.shape)}), got {tuple(getattr(gt[key], "shape", ()))}')
        return num
