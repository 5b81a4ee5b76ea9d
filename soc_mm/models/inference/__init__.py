"""Video-level inference over SOC's stages (clips, shared text-independent stages, merging)."""
from .video_inference import (VideoInference, expand_clip_feats, group_clips, iter_clips,
                              merge_clip_results)

__all__ = ['VideoInference', 'expand_clip_feats', 'group_clips', 'iter_clips', 'merge_clip_results']
