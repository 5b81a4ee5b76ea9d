"""RVOS datasets (registered in ``soc_mm.registry.DATASETS``) and their transforms."""
from .a2d_sentences import A2DSentencesDataset, a2d_image_id, create_a2d_coco_gt
from .jhmdb_sentences import JHMDBSentencesDataset, create_jhmdb_coco_gt, jhmdb_image_id
from .long_rvos import LoadLongRVOSMasks, LongRVOSDataset
from .mevis import MeViSDataset
from .mevis_all_referred_windows import MeViSAllReferredWindowsDataset
from .ref_davis import RefDAVIS17Dataset
from .ref_youtube_vos import YTVOS_CATEGORIES, RefYouTubeVOSDataset
from .refcoco_video import RefCOCOVideoDataset
from .revos import ReVOSDataset
from .transforms import *  # noqa: F401,F403
from .video_batch_sampler import RVOSVideoBatchSampler

__all__ = [
    'RefYouTubeVOSDataset', 'RefDAVIS17Dataset', 'A2DSentencesDataset', 'JHMDBSentencesDataset',
    'RefCOCOVideoDataset', 'MeViSDataset', 'YTVOS_CATEGORIES', 'create_a2d_coco_gt', 'create_jhmdb_coco_gt',
    'a2d_image_id', 'jhmdb_image_id', 'RVOSVideoBatchSampler', 'MeViSAllReferredWindowsDataset',
    'LongRVOSDataset', 'LoadLongRVOSMasks', 'ReVOSDataset'
]
