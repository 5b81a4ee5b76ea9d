"""Visualisation of referring video segmentation (registered in ``soc_mm.registry.VISUALIZERS``)."""
from .rvos_visualizer import (PALETTE, VIDEO_EXTENSIONS, RVOSVisualizer, check_video_output_path,
                              resize_masks_nearest, write_video)

__all__ = ['RVOSVisualizer', 'PALETTE', 'VIDEO_EXTENSIONS', 'check_video_output_path', 'resize_masks_nearest',
           'write_video']
