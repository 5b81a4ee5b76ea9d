from .a2d_sentences_metric import A2DSentencesMetric
from .long_rvos_metric import LongRVOSMetric
from .mevis_metric import MeViSMetric, MeViSSubmissionMetric
from .ref_ytvos_submission_metric import RefYTVOSSubmissionMetric
from .refcoco_metric import RefCOCOSegMetric
from .revos_metric import RevosMetric
from .rvos_jf_metric import RVOSJFMetric, davis_unsupervised_jf, merge_object_masks, summarize_jf

__all__ = ['RVOSJFMetric', 'A2DSentencesMetric', 'RefCOCOSegMetric', 'RefYTVOSSubmissionMetric',
           'MeViSMetric', 'MeViSSubmissionMetric', 'summarize_jf', 'merge_object_masks', 'davis_unsupervised_jf',
           'LongRVOSMetric', 'RevosMetric']
