"""Evaluation: DAVIS J&F, MeViS J&F, A2D/JHMDB IoU + COCO mAP, RefCOCO, Ref-YouTube-VOS / MeViS submissions."""
from .functional import (boundary_f_measure, boundary_map, boundary_tolerance, coco_segm_eval, disk_kernel,
                         evaluate_mevis_predictions, iou_from_counts, jf_per_frame, jf_statistics, load_coco_gt,
                         referring_iou, referring_iou_summary, region_similarity)
from .metrics import (A2DSentencesMetric, MeViSMetric, MeViSSubmissionMetric, RefCOCOSegMetric,
                      RefYTVOSSubmissionMetric, RVOSJFMetric, davis_unsupervised_jf, merge_object_masks,
                      summarize_jf)

__all__ = [
    'region_similarity', 'boundary_f_measure', 'boundary_map', 'boundary_tolerance', 'disk_kernel',
    'jf_per_frame', 'jf_statistics', 'referring_iou', 'referring_iou_summary', 'iou_from_counts',
    'load_coco_gt', 'coco_segm_eval', 'RVOSJFMetric', 'A2DSentencesMetric',
    'RefCOCOSegMetric', 'RefYTVOSSubmissionMetric', 'MeViSMetric', 'MeViSSubmissionMetric',
    'evaluate_mevis_predictions', 'summarize_jf', 'merge_object_masks', 'davis_unsupervised_jf'
]
