"""Data sample exchanged between RVOS datasets, the SOC model and the metrics.

One sample = one (video clip, referring expression) pair.

Meta information (``sample.metainfo`` / keys of ``to_dict()``):
    video_id (str), exp_id (str), expression (str), dataset (str),
    frame_ids (list[str]): names of the T frames of the clip, in clip order,
    ori_shape (tuple[int, int]): original frame size (H0, W0),
    img_shape (tuple[int, int]): resized, unpadded frame size (h, w),
    pad_shape (tuple[int, int]): padded size of the batch (set by the preprocessor),
    ref_inst_idx (int | list[int]): index of the referred instance in
        ``gt_instances`` (an int: datasets whose expressions refer to exactly one
        object), or the indices of ALL referred instances (a list, possibly
        empty: datasets where an expression may refer to several objects or to
        none, i.e. MeViS, whose samples always carry a list). Read it with
        ``referred_instance_ids``,
    anno_ids (list[int] | None): MeViS only: the expression's ``anno_id`` list
        (keys of ``mask_dict.json``; ``[]`` = no target; None when the split's
        file gives none),
    valid_frame_idx (list[int] | None): clip indices of the supervised /
        evaluated frames (A2D/JHMDB: the annotated frame); None = all frames,
    flip (bool): whether the clip was horizontally flipped.

Data fields:
    Every per-frame field below covers the T_out frames ``valid_frame_idx``
    (all T frames when it is None), in clip order.
    inputs (in the data batch, not the sample): uint8 Tensor [T, 3, h, w], BGR.
    gt_instances (InstanceData), training targets at the resized unpadded size
        (N >= 0: N = 0 for a MeViS expression that refers to no object):
        masks  bool  [N, T_out, h, w]
        boxes  float [N, T_out, 4]  (cx, cy, w, h) normalised by (w, h, w, h)
        labels long  [N]  (category id; 0 when the dataset has none)
        visible bool [N, T_out]
    ori_gt_masks bool Tensor [T_out, H0, W0]: the referred object's masks at
        original resolution (evaluation pipelines only, for the metrics); with a
        list ``ref_inst_idx``, the union of the referred objects' masks (all
        False when there is none).
    pred_masks bool Tensor [T_out, H0, W0]: the referred object's mask per frame
        (the union of the referred objects with a list ``ref_inst_idx``).
    pred_scores float Tensor [T_out]: its score per frame.
    pred_instances (InstanceData, optional, ``test_cfg.return_all_queries``):
        masks  bool  [nq, T_out, H0, W0], scores float [nq, T_out].
"""
from typing import List, Mapping

from mmengine.structures import BaseDataElement, InstanceData


def referred_instance_ids(meta: Mapping) -> List[int]:
    """Indices in ``gt_instances`` of the instances the expression refers to.

    Args:
        meta (Mapping): a sample's metainfo, or the results dict of a pipeline.

    Returns:
        list[int]: ``[ref_inst_idx]`` for an int ``ref_inst_idx`` (one referred instance), the list
        itself for a list (any number of referred instances, possibly none).

    Raises:
        KeyError: the sample has no ``ref_inst_idx``.
    """
    if 'ref_inst_idx' not in meta:
        raise KeyError('the sample names no referred instance (no "ref_inst_idx")')
    value = meta['ref_inst_idx']
    if isinstance(value, (list, tuple)):
        return [int(i) for i in value]
    return [int(value)]


class RVOSDataSample(BaseDataElement):
    """Data sample for referring video object segmentation."""

    @property
    def gt_instances(self) -> InstanceData:
        return self._gt_instances

    @gt_instances.setter
    def gt_instances(self, value: InstanceData):
        self.set_field(value, '_gt_instances', dtype=InstanceData)

    @gt_instances.deleter
    def gt_instances(self):
        del self._gt_instances

    @property
    def pred_instances(self) -> InstanceData:
        return self._pred_instances

    @pred_instances.setter
    def pred_instances(self, value: InstanceData):
        self.set_field(value, '_pred_instances', dtype=InstanceData)

    @pred_instances.deleter
    def pred_instances(self):
        del self._pred_instances
