"""Synthetic model inputs for benchmarks and hardware checks (``tools/analysis_tools/benchmark.py``,
``tools/analysis_tools/gpu_check.py``): random uint8 clips through the model's data preprocessor, with
referring expressions and, for training steps, one referred object (an ellipse moving right)."""
from typing import List, Optional, Sequence, Tuple

import torch

#: words of ``synthetic_expressions``
EXPRESSION_WORDS = ('the', 'red', 'car', 'on', 'left', 'person', 'riding', 'a', 'bike', 'dog', 'running', 'white')
DEFAULT_EXPRESSION = 'the person riding a bike on the left'


def synthetic_expressions(num: int) -> List[str]:
    """``num`` expressions of 3 to 8 words from ``EXPRESSION_WORDS`` (lengths and words vary with the index)."""
    out = []
    for k in range(num):
        n = 3 + (k * 2) % 6
        out.append(' '.join(EXPRESSION_WORDS[(k * 5 + i) % len(EXPRESSION_WORDS)] for i in range(n)))
    return out


def moving_ellipse(frames: int, size: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """One object: an ellipse (radii 0.2 H and 0.12 W) at mid-height whose centre moves from 0.3 W to
    0.7 W over the ``frames`` frames of ``size`` (H, W).

    Returns:
        masks bool [1, T, H, W] and boxes float [1, T, 4] (cx, cy, w, h of each mask, in [0, 1]).
    """
    h, w = size
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing='ij')
    centres = [w * (0.3 + 0.4 * t / max(1, frames - 1)) for t in range(frames)]
    masks = torch.stack([((yy - h / 2) / (h * 0.2))**2 + ((xx - c) / (w * 0.12))**2 <= 1 for c in centres])
    boxes = []
    for mask in masks:
        ys, xs = mask.nonzero(as_tuple=True)
        if not len(ys):
            raise ValueError(f'moving_ellipse: size {size} is too small for an ellipse')
        x0, x1, y0, y1 = xs.min().item(), xs.max().item() + 1, ys.min().item(), ys.max().item() + 1
        boxes.append([(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h])
    return masks[None], torch.tensor([boxes])


def synthetic_batch(model, frames: int, size: Tuple[int, int], batch: int = 1,
                    expressions: Optional[Sequence[str]] = None, with_targets: bool = False, seed: int = 0):
    """``batch`` random uint8 clips [T, 3, H, W] (``torch.Generator`` seeded with ``seed``) and their data
    samples through ``model.data_preprocessor``.

    Args:
        model: a SOC model (its ``data_preprocessor``; a pass-through one, as the official tiny config's,
            gets the clips normalised here: (x - 127.5) / 64, no padding).
        frames (int): T.
        size (tuple): (H, W).
        batch (int): B, one clip and one expression each.
        expressions (list[str], optional): B expressions (default: ``DEFAULT_EXPRESSION`` each).
        with_targets (bool): each clip refers to one object, ``moving_ellipse`` (``gt_instances``: masks
            [1, T, H, W], boxes [1, T, 4], labels [1], visible [1, T]; ``ref_inst_idx`` 0), for training steps.
        seed (int): seed of the clips.

    Returns:
        inputs float [B, T, 3, H', W'] and the B data samples (with ``batch_input_shape`` / ``pad_shape``).
    """
    from mmengine.structures import InstanceData

    from soc_mm.structures import RVOSDataSample
    expressions = list(expressions) if expressions is not None else [DEFAULT_EXPRESSION] * batch
    if len(expressions) != batch:
        raise ValueError(f'synthetic_batch: {batch} clips need {batch} expressions, got {len(expressions)}')
    g = torch.Generator().manual_seed(seed)
    h, w = size
    target = moving_ellipse(frames, size) if with_targets else None
    clips, samples = [], []
    for expression in expressions:
        clips.append(torch.randint(0, 256, (frames, 3, h, w), dtype=torch.uint8, generator=g))
        meta = dict(img_shape=(h, w), ori_shape=(h, w), expression=expression,
                    frame_ids=[str(t) for t in range(frames)])
        sample = RVOSDataSample(metainfo=dict(meta, ref_inst_idx=0) if with_targets else meta)
        if with_targets:
            masks, boxes = target
            sample.gt_instances = InstanceData(masks=masks.clone(), boxes=boxes.clone(),
                                               labels=torch.zeros(1, dtype=torch.long),
                                               visible=torch.ones(1, frames, dtype=torch.bool))
        samples.append(sample)
    data = model.data_preprocessor(dict(inputs=clips, data_samples=samples), with_targets)
    if isinstance(data['inputs'], torch.Tensor):
        return data['inputs'], data['data_samples']
    for sample in samples:  # a pass-through preprocessor
        sample.set_metainfo(dict(batch_input_shape=(h, w), pad_shape=(h, w)))
    return torch.stack([(c.float() - 127.5) / 64.0 for c in clips]), samples


def synthetic_expression_batch(model, frames: int, size: Tuple[int, int], num_expressions: int, seed: int = 0):
    """One random clip and ``num_expressions`` expressions about it (``synthetic_expressions``): the
    K-expression protocol of Ref-YouTube-VOS.

    Returns:
        inputs float [1, T, 3, H', W'] (``synthetic_batch``) and K data samples with the clip's metainfo.
    """
    from soc_mm.structures import RVOSDataSample
    expressions = synthetic_expressions(num_expressions)
    inputs, samples = synthetic_batch(model, frames, size, 1, expressions[:1], seed=seed)
    meta = samples[0].metainfo
    return inputs, [RVOSDataSample(metainfo=dict(meta, expression=e)) for e in expressions]
