from .coco_segm import coco_segm_eval, load_coco_gt
from .jf import (boundary_f_measure, boundary_map, boundary_tolerance, disk_kernel, jf_per_frame,
                 jf_statistics, region_similarity)
from .referring_iou import iou_from_counts, referring_iou, referring_iou_summary

__all__ = [
    'region_similarity', 'boundary_f_measure', 'boundary_map', 'boundary_tolerance', 'disk_kernel',
    'jf_per_frame', 'jf_statistics', 'referring_iou', 'iou_from_counts', 'referring_iou_summary', 'load_coco_gt',
    'coco_segm_eval'
]
