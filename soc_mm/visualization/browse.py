"""Dataset samples drawn as the model gets them (``tools/analysis_tools/browse_dataset.py``): the clip after
the pipeline, every ground-truth instance (the referred ones first, with the expression) and the metainfo."""
from typing import List, Optional, Tuple

import numpy as np

from soc_mm.structures.rvos_data_sample import referred_instance_ids
from .rvos_visualizer import RVOSVisualizer


def instance_masks(sample) -> Tuple[List[Optional[object]], List[str]]:
    """(masks, texts) to draw for a data sample: the referred instances first (the expression as their text;
    several for a MeViS expression that refers to several objects), then the other instances
    (``object <i>``). An expression that refers to nothing (MeViS v2) gets ``None`` as its mask, a sample
    without ground-truth masks ``[None]`` and ``[expression]``. Masks are ``gt_instances.masks[i]``
    bool [T, H, W]."""
    meta = sample.metainfo
    expression = meta.get('expression', '')
    if 'gt_instances' not in sample or 'masks' not in sample.gt_instances or not len(sample.gt_instances.masks):
        return [None], [expression]
    masks = sample.gt_instances.masks
    refs = referred_instance_ids(meta) if 'ref_inst_idx' in meta else [0]
    if not refs:  # an expression that refers to nothing (MeViS v2)
        return [None] + list(masks), [f'{expression}  (refers to nothing)'] + [f'object {i}' for i in range(len(masks))]
    order = refs + [i for i in range(len(masks)) if i not in refs]
    texts = [f'{expression}  (referred)'] * len(refs) + [f'object {i}' for i in order[len(refs):]]
    return [masks[i] for i in order], texts


def browse_sample(vis: RVOSVisualizer, item: dict) -> List[np.ndarray]:
    """Painted RGB uint8 frames [H, W, 3] of one pipeline output ``{'inputs', 'data_samples'}``; only the
    annotated frames (``valid_frame_idx``) get masks when the sample names them."""
    sample = item['data_samples']
    meta = sample.metainfo
    frames = vis.clip_frames(item['inputs'], meta.get('img_shape'))
    valid = meta.get('valid_frame_idx')
    masks, texts = instance_masks(sample)
    if valid is not None:  # masks exist for the supervised frames only: mark those frames
        painted = []
        for t, frame in enumerate(frames):
            if t in valid:
                k = list(valid).index(t)
                painted += vis.draw_clip([frame], [None if m is None else m[k:k + 1] for m in masks], texts,
                                         title=f'frame {t} (annotated)')
            else:
                painted += vis.draw_clip([frame], [None], [''], title=f'frame {t}')
        return painted
    title = f"{meta.get('video_id', '')}/{meta.get('exp_id', '')}" + ('  flipped' if meta.get('flip') else '')
    return vis.draw_clip(frames, masks, texts, title=title)
