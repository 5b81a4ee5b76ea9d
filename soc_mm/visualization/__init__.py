"""Visualisation of referring video segmentation (registered in ``soc_mm.registry.VISUALIZERS``)."""
from .rvos_visualizer import PALETTE, RVOSVisualizer, resize_masks_nearest, write_video

__all__ = ['RVOSVisualizer', 'PALETTE', 'resize_masks_nearest', 'write_video']
