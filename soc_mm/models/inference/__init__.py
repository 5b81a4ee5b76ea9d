"""Video-level inference over SOC's stages (clips, shared text-independent stages, merging) and the
test-time options (``model.test_cfg``) it and the head read."""
from .clip_linking import ClipLinker
from .test_options import STREAM_CLIP_LEN, RVOSTestOptions
from .video_inference import (VideoInference, expand_clip_feats, group_clips, iter_clips,
                              merge_clip_results)

__all__ = ['ClipLinker', 'RVOSTestOptions', 'STREAM_CLIP_LEN', 'VideoInference', 'expand_clip_feats', 'group_clips',
           'iter_clips', 'merge_clip_results']
