"""Batches RVOS clips: normalise, pad to a common size, stack ``[B, T, 3, H, W]``."""
import math
from numbers import Number
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor

from soc_mm.registry import MODELS


@MODELS.register_module()
class RVOSDataPreprocessor(BaseDataPreprocessor):
    """Data pre-processor for referring video object segmentation.

    Each sample's ``inputs`` is a clip, uint8/float ``[T, 3, h, w]`` (or a list of
    T ``[3, h, w]`` frames). Clips are converted to float, optionally swapped
    BGR -> RGB, normalised, then zero-padded at the bottom/right (after
    normalisation, as SOC pads) to the largest size of the batch rounded up to
    ``pad_size_divisor``. The padding mask is derived downstream from each
    sample's ``img_shape`` and ``batch_input_shape`` (set here).

    Args:
        mean, std: per-channel statistics in the 0-255 range (RGB order when
            ``bgr_to_rgb``). Defaults are ImageNet's, as SOC uses.
        bgr_to_rgb: swap the channel order of the inputs.
        pad_size_divisor: the padded size is a multiple of this.
        pad_value: value of padded pixels in the normalised space.
    """

    def __init__(self,
                 mean: Sequence[Number] = (123.675, 116.28, 103.53),
                 std: Sequence[Number] = (58.395, 57.12, 57.375),
                 bgr_to_rgb: bool = True,
                 pad_size_divisor: int = 1,
                 pad_value: float = 0.0,
                 non_blocking: bool = False):
        super().__init__(non_blocking)
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f'mean and std need 3 values, got {mean} and {std}')
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.bgr_to_rgb = bgr_to_rgb
        self.pad_size_divisor = pad_size_divisor
        self.pad_value = pad_value

    @staticmethod
    def _as_clip(clip, index: int) -> torch.Tensor:
        """Return ``[T, 3, h, w]``; raise if the frames of the clip differ in size."""
        if isinstance(clip, (list, tuple)):
            sizes = {tuple(f.shape) for f in clip}
            if len(sizes) != 1:
                raise ValueError(f'sample {index}: the frames of a clip must share one size, '
                                 f'got frame shapes {sorted(sizes)}')
            clip = torch.stack(list(clip))
        if clip.dim() != 4 or clip.shape[1] != 3:
            raise ValueError(f'sample {index}: expected a clip [T, 3, h, w], got {tuple(clip.shape)}')
        if clip.shape[0] == 0:
            raise ValueError(f'sample {index}: the clip has no frames')
        return clip

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        clips = data['inputs']
        if isinstance(clips, torch.Tensor) and clips.dim() == 5:
            clips = list(clips)
        clips = [self._as_clip(c, i) for i, c in enumerate(clips)]
        num_frames = {c.shape[0] for c in clips}
        if len(num_frames) != 1:
            raise ValueError(f'all clips of a batch need the same number of frames, got {num_frames}')

        max_h = max(c.shape[-2] for c in clips)
        max_w = max(c.shape[-1] for c in clips)
        div = self.pad_size_divisor
        pad_h, pad_w = math.ceil(max_h / div) * div, math.ceil(max_w / div) * div
        batch = []
        for clip in clips:
            clip = clip.float()
            if self.bgr_to_rgb:
                clip = clip[:, [2, 1, 0]]
            clip = (clip - self.mean) / self.std
            clip = F.pad(clip, (0, pad_w - clip.shape[-1], 0, pad_h - clip.shape[-2]),
                         value=self.pad_value)
            batch.append(clip)
        inputs = torch.stack(batch)

        data_samples: Optional[list] = data.get('data_samples', None)
        if data_samples is not None:
            for clip, sample in zip(clips, data_samples):
                meta = dict(batch_input_shape=(pad_h, pad_w), pad_shape=(pad_h, pad_w))
                if 'img_shape' not in sample:
                    meta['img_shape'] = tuple(clip.shape[-2:])
                sample.set_metainfo(meta)
        return dict(inputs=inputs, data_samples=data_samples)
