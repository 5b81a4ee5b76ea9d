"""RVOS data transforms: loading, clip-consistent augmentation and packing (registered in ``TRANSFORMS``)."""
from .clip_transforms import (ClipPhotometricDistortion, ImageToPseudoClip, RVOSRandomCrop, RVOSRandomFlip,
                              RVOSRandomResize, resize_masks, soc_resize_shape, swap_left_right)
from .formatting import PackRVOSInputs, masks_to_boxes
from .loading import (LoadA2DInstanceMasks, LoadJHMDBPuppetMask, LoadPaletteMasks, LoadRefCocoMasks,
                      LoadRLEMasks, LoadRVOSFrames, decode_video_frames)
from .merge_referred_objects import MergeReferredObjects, referred_union_boxes

__all__ = [
    'LoadRVOSFrames', 'LoadPaletteMasks', 'LoadA2DInstanceMasks', 'LoadJHMDBPuppetMask', 'LoadRefCocoMasks',
    'LoadRLEMasks',
    'RVOSRandomResize', 'RVOSRandomFlip', 'RVOSRandomCrop', 'ClipPhotometricDistortion', 'ImageToPseudoClip',
    'PackRVOSInputs', 'masks_to_boxes', 'resize_masks', 'soc_resize_shape', 'swap_left_right',
    'decode_video_frames', 'MergeReferredObjects', 'referred_union_boxes'
]
