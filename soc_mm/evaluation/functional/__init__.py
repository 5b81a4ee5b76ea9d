from .coco_segm import coco_segm_eval, load_coco_gt
from .jf import (boundary_f_measure, boundary_map, boundary_tolerance, disk_kernel, jf_per_frame,
                 jf_statistics, region_similarity)
from .mevis import (MEVIS_BOUND_TH, MeViSResult, check_mevis_frames, evaluate_mevis_predictions,
                    load_mevis_mask_dict, load_mevis_meta, mevis_expression_jf, mevis_gt_masks,
                    mevis_missing_summary, mevis_summary, per_expression_json, read_mask_png,
                    read_mevis_prediction)
from .referring_iou import iou_from_counts, referring_iou, referring_iou_summary

__all__ = [
    'region_similarity', 'boundary_f_measure', 'boundary_map', 'boundary_tolerance', 'disk_kernel',
    'jf_per_frame', 'jf_statistics', 'referring_iou', 'iou_from_counts', 'referring_iou_summary', 'load_coco_gt',
    'coco_segm_eval', 'MEVIS_BOUND_TH', 'MeViSResult', 'evaluate_mevis_predictions', 'load_mevis_meta',
    'load_mevis_mask_dict', 'mevis_gt_masks', 'mevis_expression_jf', 'mevis_summary', 'read_mask_png',
    'read_mevis_prediction', 'per_expression_json', 'check_mevis_frames', 'mevis_missing_summary'
]
