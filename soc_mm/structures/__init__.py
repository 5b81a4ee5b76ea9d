from .batch_metainfo import clip_key
from .bbox import soc_generalized_box_iou
from .mask import COCO_GT_CATEGORY, coco_gt_dict, decode_mask, encode_mask
from .rvos_data_sample import RVOSDataSample

__all__ = ['RVOSDataSample', 'clip_key', 'soc_generalized_box_iou', 'encode_mask', 'decode_mask', 'coco_gt_dict',
           'COCO_GT_CATEGORY']
