"""SOC's FPN-like spatial decoder producing the stride-4 mask features."""
from typing import List, Sequence

import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule, ModuleList
from torch import Tensor, nn

from soc_mm.registry import MODELS


@MODELS.register_module()
class SOCSpatialDecoder(BaseModule):
    """FPN-style decoder (official ``FPNSpatialDecoder``).

    Channels shrink as ``C, C/2, C/4, C/8, C/16`` from the coarsest input to the finest; each
    stage is conv3x3 + GroupNorm(8) + ReLU, skips enter through 1x1 lateral convs and are added to
    the nearest-upsampled coarser map. mmdet/mmseg FPNs fuse differently (top-down on laterals,
    no GN chain), hence this module.

    Args:
        in_channels (int): C of the coarsest input ``x`` (must be divisible by 128 so that every
            stage has a multiple of 8 channels).
        skip_channels (Sequence[int]): channels of the 2 or 3 skips, coarse to fine.
        out_channels (int): mask-feature channels D.
    """

    def __init__(self, in_channels: int = 256, skip_channels: Sequence[int] = (256, 256, 96),
                 out_channels: int = 8, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if len(skip_channels) not in (2, 3):
            raise ValueError(f'SOCSpatialDecoder: expects 2 or 3 skip_channels, got {skip_channels}')
        if in_channels % 128:
            raise ValueError(f'SOCSpatialDecoder: in_channels must be a multiple of 128 '
                             f'(GroupNorm(8, C/16)), got {in_channels}')
        dims = [in_channels // (2 ** i) for i in range(len(skip_channels) + 2)]
        gn = dict(type='GN', num_groups=8)  # convs keep their bias (official), ConvModule's 'auto' drops it
        self.context_convs = ModuleList([
            ConvModule(dims[0], dims[0], 3, padding=1, bias=True, norm_cfg=gn),
            ConvModule(dims[0], dims[1], 3, padding=1, bias=True, norm_cfg=gn),
        ])
        self.lateral_convs = ModuleList(
            [nn.Conv2d(c, dims[i + 1], 1) for i, c in enumerate(skip_channels)])
        self.fuse_convs = ModuleList([
            ConvModule(dims[i + 1], dims[i + 2], 3, padding=1, bias=True, norm_cfg=gn)
            for i in range(len(skip_channels))
        ])
        self.out_conv = nn.Conv2d(dims[-1], out_channels, 3, padding=1)

    def init_weights(self) -> None:
        """Official init: kaiming-uniform (a=1) weights, zero biases for every conv."""
        super().init_weights()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor, skips: List[Tensor]) -> Tensor:
        """Decode.

        Args:
            x (Tensor): [N, C, h32, w32] coarsest feature.
            skips (list[Tensor]): coarse to fine, e.g. stride-16 and stride-8 encoder memory
                [N, C, h, w] and the stride-4 backbone feature [N, c0, H/4, W/4].

        Returns:
            Tensor: [N, out_channels, H/4, W/4].
        """
        if len(skips) != len(self.lateral_convs):
            raise ValueError(f'SOCSpatialDecoder: expected {len(self.lateral_convs)} skips, '
                             f'got {len(skips)}')
        for conv in self.context_convs:
            x = conv(x)
        for lateral, fuse, skip in zip(self.lateral_convs, self.fuse_convs, skips):
            skip = lateral(skip)
            x = fuse(skip + F.interpolate(x, size=skip.shape[-2:], mode='nearest'))
        return self.out_conv(x)
