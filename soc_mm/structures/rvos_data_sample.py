"""Data sample exchanged between RVOS datasets, the SOC model and the metrics.

One sample = one (video clip, referring expression) pair.

Meta information (``sample.metainfo`` / keys of ``to_dict()``):
    video_id (str), exp_id (str), expression (str), dataset (str),
    frame_ids (list[str]): names of the T frames of the clip, in clip order,
    ori_shape (tuple[int, int]): original frame size (H0, W0),
    img_shape (tuple[int, int]): resized, unpadded frame size (h, w),
    pad_shape (tuple[int, int]): padded size of the batch (set by the preprocessor),
    ref_inst_idx (int): index of the referred instance in ``gt_instances``,
    valid_frame_idx (list[int] | None): clip indices of the supervised /
        evaluated frames (A2D/JHMDB: the annotated frame); None = all frames,
    flip (bool): whether the clip was horizontally flipped.

Data fields:
    Every per-frame field below covers the T_out frames ``valid_frame_idx``
    (all T frames when it is None), in clip order.
    inputs (in the data batch, not the sample): uint8 Tensor [T, 3, h, w], BGR.
    gt_instances (InstanceData), training targets at the resized unpadded size:
        masks  bool  [N, T_out, h, w]
        boxes  float [N, T_out, 4]  (cx, cy, w, h) normalised by (w, h, w, h)
        labels long  [N]  (category id; 0 when the dataset has none)
        visible bool [N, T_out]
    ori_gt_masks bool Tensor [T_out, H0, W0]: the referred object's masks at
        original resolution (evaluation pipelines only, for the metrics).
    pred_masks bool Tensor [T_out, H0, W0]: the referred object's mask per frame.
    pred_scores float Tensor [T_out]: its score per frame.
    pred_instances (InstanceData, optional, ``test_cfg.return_all_queries``):
        masks  bool  [nq, T_out, H0, W0], scores float [nq, T_out].
"""
from mmengine.structures import BaseDataElement, InstanceData


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
