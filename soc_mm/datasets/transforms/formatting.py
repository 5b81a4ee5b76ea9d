"""Packing a clip into the model's inputs and an ``RVOSDataSample`` (see its contract docstring)."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import InstanceData

from soc_mm.registry import TRANSFORMS
from soc_mm.structures import RVOSDataSample


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Boxes of bool masks [..., H, W] as (cx, cy, w, h) normalised by (W, H, W, H), float32 [..., 4].

    As SOC: x1/y1 = first and x2/y2 = last occupied column/row index (inclusive, no +1);
    an empty mask gives the all-zero box.
    """
    h, w = masks.shape[-2:]
    rows, cols = masks.any(-1), masks.any(-2)  # [..., H], [..., W]
    present = rows.any(-1)
    y1 = rows.argmax(-1)
    y2 = h - 1 - rows[..., ::-1].argmax(-1)
    x1 = cols.argmax(-1)
    x2 = w - 1 - cols[..., ::-1].argmax(-1)
    boxes = np.stack([(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h], axis=-1)
    boxes[~present] = 0
    return boxes.astype(np.float32)


@TRANSFORMS.register_module()
class PackRVOSInputs(BaseTransform):
    """Pack a clip: ``inputs`` uint8 Tensor [T, 3, h, w] (BGR) and an ``RVOSDataSample``.

    ``gt_instances`` (when masks were loaded): ``masks`` bool [N, T_out, h, w], ``boxes`` float
    [N, T_out, 4] (cx, cy, w, h normalised, derived from the final masks), ``labels`` long [N],
    ``visible`` bool [N, T_out]. ``ori_gt_masks`` bool [T_out, H0, W0] when ``pack_ori_gt_masks`` and
    the masks exist (evaluation). Meta keys missing from the results are skipped.

    Args:
        meta_keys (Sequence[str]): results keys copied to the sample's metainfo.
        pack_ori_gt_masks (bool): pack the referred object's masks at original size (for metrics; the
            union of the referred objects for a list ``ref_inst_idx``).
    """
    DEFAULT_META_KEYS = ('video_id', 'exp_id', 'expression', 'dataset', 'frame_ids', 'ori_shape', 'img_shape',
                         'ref_inst_idx', 'valid_frame_idx', 'flip', 'annotator', 'img_id', 'anno_ids')

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS, pack_ori_gt_masks: bool = False):
        self.meta_keys = tuple(meta_keys)
        self.pack_ori_gt_masks = pack_ori_gt_masks

    def transform(self, results: dict) -> dict:
        imgs = np.stack(results['imgs'])  # [T, h, w, 3]
        if imgs.dtype != np.uint8:  # e.g. after the photometric distortion
            imgs = np.clip(np.round(imgs), 0, 255).astype(np.uint8)
        inputs = torch.from_numpy(np.ascontiguousarray(imgs.transpose(0, 3, 1, 2)))

        sample = RVOSDataSample()
        if 'gt_masks' in results:
            masks = results['gt_masks']
            gt = InstanceData()
            gt.masks = torch.from_numpy(np.ascontiguousarray(masks, dtype=bool))
            gt.boxes = torch.from_numpy(masks_to_boxes(masks))
            gt.labels = torch.as_tensor(results['gt_labels'], dtype=torch.long).reshape(len(masks))
            gt.visible = torch.from_numpy(masks.any(axis=(-2, -1)))
            sample.gt_instances = gt
        if self.pack_ori_gt_masks and 'ori_gt_masks' in results:
            sample.ori_gt_masks = torch.from_numpy(np.ascontiguousarray(results['ori_gt_masks'], dtype=bool))
        meta = {}
        for key in self.meta_keys:
            if key in results:
                value = results[key]
                meta[key] = tuple(value) if key in ('ori_shape', 'img_shape') else value
        sample.set_metainfo(meta)
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys}, pack_ori_gt_masks={self.pack_ori_gt_masks})'
