"""CondInst-style dynamic mask head with relative coordinates (as used by SOC)."""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.utils import aligned_bilinear
from mmengine.model import BaseModule
from torch import Tensor

from soc_mm.registry import MODELS


def compute_locations(h: int, w: int, stride: int, device=None) -> Tensor:
    """Pixel centres (x, y) of an h x w map with the given stride -> [h * w, 2]."""
    xs = torch.arange(0, w * stride, step=stride, dtype=torch.float32, device=device)
    ys = torch.arange(0, h * stride, step=stride, dtype=torch.float32, device=device)
    yy, xx = torch.meshgrid(ys, xs, indexing='ij')
    return torch.stack((xx.reshape(-1), yy.reshape(-1)), dim=1) + stride // 2


@MODELS.register_module()
class DynamicMaskHead(BaseModule):
    """Per-query 1x1-conv mask head whose weights come from a controller.

    The input of the first layer is the mask feature concatenated (optionally) with the
    relative coordinates ``reference point (pixels) - location`` (not normalised, as SOC).
    Parameter layout per query: all weights of layer 0..n-1, then all biases.

    Args:
        in_channels (int): D, mask-feature channels.
        channels (int): hidden channels of the dynamic convs.
        num_layers (int): number of dynamic conv layers (last one outputs 1 channel).
        rel_coord (bool): concatenate relative coordinates.
        feat_stride (int): stride of the mask features w.r.t. the input image.
        out_stride (int): stride of the output logits (feat_stride must be a multiple).
    """

    def __init__(self, in_channels: int = 8, channels: int = 8, num_layers: int = 3,
                 rel_coord: bool = True, feat_stride: int = 4, out_stride: int = 4, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if num_layers < 1:
            raise ValueError(f'DynamicMaskHead: num_layers must be >= 1, got {num_layers}')
        if feat_stride % out_stride:
            raise ValueError(f'DynamicMaskHead: feat_stride {feat_stride} must be a multiple of '
                             f'out_stride {out_stride}')
        self.in_channels = in_channels
        self.channels = channels
        self.rel_coord = rel_coord
        self.feat_stride = feat_stride
        self.out_stride = out_stride
        self.weight_nums: List[int] = []
        self.bias_nums: List[int] = []
        for i in range(num_layers):
            c_in = (in_channels + 2 if rel_coord else in_channels) if i == 0 else channels
            c_out = 1 if i == num_layers - 1 else channels
            self.weight_nums.append(c_in * c_out)
            self.bias_nums.append(c_out)

    @property
    def num_gen_params(self) -> int:
        """Number of parameters the controller must produce per query."""
        return sum(self.weight_nums) + sum(self.bias_nums)

    def parse_params(self, params: Tensor) -> Tuple[List[Tensor], List[Tensor]]:
        """params [n, P] -> per-layer grouped-conv weights [n * c_out, c_in, 1, 1], biases [n * c_out]."""
        n = params.shape[0]
        splits = torch.split_with_sizes(params, self.weight_nums + self.bias_nums, dim=1)
        num_layers = len(self.weight_nums)
        weights, biases = [], []
        for i in range(num_layers):
            c_out = self.bias_nums[i]
            weights.append(splits[i].reshape(n * c_out, -1, 1, 1))
            biases.append(splits[num_layers + i].reshape(n * c_out))
        return weights, biases

    def query_features(self, mask_feats: Tensor, params: Tensor, ref_points: Tensor,
                       img_sizes: Tensor) -> Tensor:
        """Per-query input of the dynamic convs: the mask features, with the relative
        coordinates (pixels) to the query's reference point appended when ``rel_coord``.

        Returns [B, T, nq, D (+2), h, w]; raises on shape mismatches.
        """
        B, T, D, h, w = mask_feats.shape
        nq = params.shape[2]
        if params.shape[:2] != (B, T) or params.shape[-1] != self.num_gen_params:
            raise ValueError(f'DynamicMaskHead: params must be [{B}, {T}, nq, {self.num_gen_params}], '
                             f'got {tuple(params.shape)}')
        if D != self.in_channels:
            raise ValueError(f'DynamicMaskHead: mask_feats have {D} channels, expected {self.in_channels}')
        feats = mask_feats[:, :, None].expand(B, T, nq, D, h, w)
        if self.rel_coord:
            scale = img_sizes.flip(-1).to(ref_points)  # (w, h)
            points = ref_points * scale[:, None, None, :]
            locations = compute_locations(h, w, self.feat_stride, mask_feats.device)
            rel = points.reshape(B, T, nq, 1, 1, 2) - locations.reshape(1, 1, 1, h, w, 2)
            feats = torch.cat([feats, rel.permute(0, 1, 2, 5, 3, 4)], dim=3)
        return feats

    def forward(self, mask_feats: Tensor, params: Tensor, ref_points: Tensor,
                img_sizes: Tensor) -> Tensor:
        """Predict one mask per query and frame.

        Args:
            mask_feats (Tensor): [B, T, D, h, w] mask features.
            params (Tensor): [B, T, nq, P] dynamic parameters.
            ref_points (Tensor): [B, T, nq, 2] normalised (cx, cy) reference points.
            img_sizes (Tensor): [B, 2] unpadded (h, w) in pixels; scales the reference points.

        Returns:
            Tensor: [B, T, nq, h * feat_stride / out_stride, w * ...] mask logits.
        """
        B, T, D, h, w = mask_feats.shape
        nq = params.shape[2]
        feats = self.query_features(mask_feats, params, ref_points, img_sizes)
        x = feats.reshape(1, -1, h, w)
        n = B * T * nq
        weights, biases = self.parse_params(params.reshape(n, -1))
        for i, (weight, bias) in enumerate(zip(weights, biases)):
            x = F.conv2d(x, weight, bias=bias, groups=n)
            if i < len(weights) - 1:
                x = F.relu(x)
        x = aligned_bilinear(x.reshape(n, 1, h, w), self.feat_stride // self.out_stride)
        return x.reshape(B, T, nq, *x.shape[-2:])
