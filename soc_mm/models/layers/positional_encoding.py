"""1-D sine positional encoding of word sequences (SOC's text position code).

The 2-D encoding of visual features is mmdet's ``SinePositionalEncoding``
(``num_feats=C/2, normalize=True, offset=-0.5``), which computes exactly SOC's.
"""
import math
from typing import Optional

import torch
from mmengine.model import BaseModule
from torch import Tensor

from soc_mm.registry import MODELS


@MODELS.register_module()
class SinePositionalEncoding1D(BaseModule):
    """Sine/cosine encoding of token positions, padding-aware.

    Positions are the cumulative count of non-padded tokens; with
    ``normalize`` they are divided by the count at the last position (the
    number of valid tokens when padding is at the end) and scaled to
    ``[0, scale]``. Channels alternate sin/cos (DETR style), ``num_feats``
    channels in all (SOC uses ``num_feats = d_model``).

    Args:
        num_feats (int): output channels.
        temperature (int): frequency base.
        normalize (bool): normalise positions by the sequence length.
        scale (float): scale of normalised positions; default 2*pi.
        eps (float): added to the normaliser.
    """

    def __init__(self,
                 num_feats: int,
                 temperature: int = 10000,
                 normalize: bool = True,
                 scale: float = 2 * math.pi,
                 eps: float = 1e-6,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_feats % 2 != 0:
            raise ValueError(f'num_feats must be even, got {num_feats}')
        self.num_feats = num_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = scale
        self.eps = eps

    def forward(self, mask: Tensor) -> Tensor:
        """mask: bool [B, S], True on padded tokens -> encoding [B, S, num_feats]."""
        if mask.dim() != 2:
            raise ValueError(f'mask must be [B, S], got shape {tuple(mask.shape)}')
        not_mask = (~mask.bool()).to(torch.int)
        pos = not_mask.cumsum(1, dtype=torch.float32)
        if self.normalize:
            pos = pos / (pos[:, -1:] + self.eps) * self.scale
        dim_t = torch.arange(self.num_feats, dtype=torch.float32, device=mask.device)
        dim_t = self.temperature**(2 * (dim_t // 2) / self.num_feats)
        pos = pos[:, :, None] / dim_t
        return torch.stack((pos[:, :, 0::2].sin(), pos[:, :, 1::2].cos()), dim=3).flatten(2)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_feats={self.num_feats}, temperature={self.temperature}, '
                f'normalize={self.normalize}, scale={self.scale}, eps={self.eps})')
