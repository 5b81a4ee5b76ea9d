"""Fused inference kernels for SOC's three CPU hot spots (same maths, float-rounding differences only).

* Video-Swin window attention (mmaction ``WindowAttention3D``): the reference materialises the
  ``[windows, heads, N, N]`` score tensor (N = 8*7*7 = 392 tokens; ~550 MB for one 8-frame
  360x640 clip at stage 1) and adds the relative-position bias and the shift mask to it in
  separate passes. Here ``F.scaled_dot_product_attention`` takes the bias as its additive mask
  (fused, never materialised); only the windows the shift mask touches (the last row / column of
  windows) get a per-window mask.
* Dynamic mask head (``DynamicMaskHead``): the per-query 1x1 convs run as one grouped conv with
  ``B*T*nq`` tiny groups, which oneDNN executes ~20x slower on CPU than the equivalent batched
  matrix product (``torch.baddbmm``) used here.
* Multi-scale deformable attention (mmcv ``MultiScaleDeformableAttention`` on CPU uses
  ``multi_scale_deformable_attn_pytorch``, which stacks every level's sampled values into one
  ``[bs*heads, C/heads, Lq, levels*points]`` tensor before weighting): here each level is weighted
  and summed as soon as it is sampled, so the stacked tensor is never built. mmcv looks its CPU
  kernel up by a module-level name; that name is left alone (replacing it would switch every model
  of the process), the fused module computes the projections itself and calls ``msda_accumulate``.

Each kernel is a subclass of the module it speeds up, with the same parameters and state dict.
``enable_fast_kernels(model)`` turns the modules of one model into these subclasses (SOC does it at
build time when ``test_cfg.fast_kernels`` is True; ``soc_mm.apis.init_model(fast_kernels=...)`` sets
that option), ``disable_fast_kernels`` turns them back; other models are not affected. The fused
kernels only act in eval mode (or without dropout) on CPU tensors; training, dropout and CUDA tensors
(mmcv's CUDA kernel) use the reference code.
"""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttention
from torch import Tensor, nn

from mmaction.models.backbones.swin import WindowAttention3D  # importable: ``import soc_mm`` applied the shims

from .deformable_transformer import deformable_sampling
from .dynamic_mask_head import DynamicMaskHead, aligned_bilinear


class FastWindowAttention3D(WindowAttention3D):
    """``WindowAttention3D`` with fused attention (``F.scaled_dot_product_attention``)."""

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """x: [B*nW, N, C]; mask: [nW, N, N] additive (0 / -100) shift mask or None -> [B*nW, N, C]."""
        if self.training and self.attn_drop.p > 0:
            return super().forward(x, mask)
        B_, N, C = x.shape
        nH = self.num_heads
        q, k, v = self.qkv(x).reshape(B_, N, 3, nH, C // nH).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.relative_position_bias_table[self.relative_position_index[:N, :N].reshape(-1)]
        bias = bias.reshape(N, N, nH).permute(2, 0, 1).unsqueeze(0).to(q.dtype)  # [1, nH, N, N]
        if mask is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        else:
            nW = mask.shape[0]
            B = B_ // nW
            masked = mask.flatten(1).ne(0).any(1)
            out = torch.empty_like(q).view(B, nW, nH, N, -1)
            q, k, v = (t.view(B, nW, nH, N, -1) for t in (q, k, v))
            for windows, attn_mask in ((~masked).nonzero().flatten(), None), (masked.nonzero().flatten(), mask):
                if windows.numel() == 0:
                    continue
                sel = [t.index_select(1, windows).flatten(0, 1) for t in (q, k, v)]
                if attn_mask is None:
                    full_mask = bias
                else:  # [B * n, nH, N, N]: bias + this window's shift mask
                    full_mask = (bias + attn_mask.index_select(0, windows)[:, None].to(q.dtype)).repeat(B, 1, 1, 1)
                res = F.scaled_dot_product_attention(*sel, attn_mask=full_mask, scale=self.scale)
                out.index_copy_(1, windows, res.view(B, windows.numel(), nH, N, -1))
            out = out.view(B_, nH, N, -1)
        x = self.proj(out.transpose(1, 2).reshape(B_, N, C))
        return self.proj_drop(x)


def msda_accumulate(value: Tensor, value_spatial_shapes, sampling_locations: Tensor,
                    attention_weights: Tensor) -> Tensor:
    """``multi_scale_deformable_attn_pytorch`` weighting each level right after sampling it.

    value [bs, S, heads, c], sampling_locations [bs, Lq, heads, levels, points, 2],
    attention_weights [bs, Lq, heads, levels, points] -> [bs, Lq, heads * c].
    """
    bs, _, num_heads, c = value.shape
    _, num_queries, _, num_levels, num_points, _ = sampling_locations.shape
    shapes = [(int(h), int(w)) for h, w in value_spatial_shapes]
    value_list = value.split([h * w for h, w in shapes], dim=1)
    grids = 2 * sampling_locations - 1
    weights = attention_weights.transpose(1, 2).reshape(bs * num_heads, 1, num_queries, num_levels, num_points)
    output = None
    for level, (h, w) in enumerate(shapes):
        value_l = value_list[level].flatten(2).transpose(1, 2).reshape(bs * num_heads, c, h, w)
        grid_l = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)  # [bs*heads, Lq, P, 2]
        sampled = F.grid_sample(value_l, grid_l, mode='bilinear', padding_mode='zeros', align_corners=False)
        level_out = (sampled * weights[..., level, :]).sum(-1)  # [bs*heads, c, Lq]
        output = level_out if output is None else output.add_(level_out)
    return output.view(bs, num_heads * c, num_queries).transpose(1, 2).contiguous()


class FastMultiScaleDeformableAttention(MultiScaleDeformableAttention):
    """mmcv ``MultiScaleDeformableAttention`` with ``msda_accumulate`` as its CPU kernel (batch-first)."""

    def forward(self, query: Tensor, key: Optional[Tensor] = None, value: Optional[Tensor] = None,
                identity: Optional[Tensor] = None, query_pos: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None, reference_points: Optional[Tensor] = None,
                spatial_shapes: Optional[Tensor] = None, level_start_index: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        """query [bs, Lq, C], value [bs, S, C], key_padding_mask [bs, S], reference_points
        [bs, Lq, levels, 2 | 4], spatial_shapes [levels, 2] -> [bs, Lq, C] (as mmcv's forward)."""
        value = query if value is None else value
        if (self.training and self.dropout.p > 0) or not self.batch_first or value.is_cuda:
            return super().forward(query, key, value, identity, query_pos, key_padding_mask, reference_points,
                                   spatial_shapes, level_start_index, **kwargs)
        identity = query if identity is None else identity
        if query_pos is not None:
            query = query + query_pos
        bs, num_value, _ = value.shape
        value = self.value_proj(value)
        if key_padding_mask is not None:
            value = value.masked_fill(key_padding_mask[..., None], 0.0)
        value = value.view(bs, num_value, self.num_heads, -1)
        locations, weights = deformable_sampling(self, query, reference_points, spatial_shapes)
        output = self.output_proj(msda_accumulate(value, spatial_shapes, locations, weights))
        return self.dropout(output) + identity


class FastDynamicMaskHead(DynamicMaskHead):
    """``DynamicMaskHead`` with the per-query 1x1 convs as batched matrix products."""

    def forward(self, mask_feats: Tensor, params: Tensor, ref_points: Tensor, img_sizes: Tensor) -> Tensor:
        """mask_feats [B, T, D, h, w], params [B, T, nq, P], ref_points [B, T, nq, 2], img_sizes [B, 2]
        -> mask logits [B, T, nq, h', w']."""
        B, T, D, h, w = mask_feats.shape
        nq = params.shape[2]
        feats = self.query_features(mask_feats, params, ref_points, img_sizes)
        n = B * T * nq
        x = feats.reshape(n, -1, h * w)
        weights, biases = self.parse_params(params.reshape(n, -1))
        for i, (weight, bias) in enumerate(zip(weights, biases)):
            c_out = bias.numel() // n
            x = torch.baddbmm(bias.view(n, c_out, 1), weight.view(n, c_out, -1), x)
            if i < len(weights) - 1:
                x = F.relu(x)
        x = aligned_bilinear(x.reshape(n, 1, h, w), self.feat_stride // self.out_stride)
        return x.reshape(B, T, nq, *x.shape[-2:])


# reference module class -> its fused subclass (exact types: subclasses of the references are left alone)
FAST_KERNELS: Dict[type, type] = {
    WindowAttention3D: FastWindowAttention3D,
    MultiScaleDeformableAttention: FastMultiScaleDeformableAttention,
    DynamicMaskHead: FastDynamicMaskHead,
}
_REFERENCE_KERNELS = {fast: ref for ref, fast in FAST_KERNELS.items()}


def enable_fast_kernels(model: nn.Module) -> int:
    """Turn every window attention / deformable attention / dynamic mask head of ``model`` into its
    fused subclass (parameters and state dict unchanged). Returns the number of modules switched."""
    count = 0
    for module in model.modules():
        fast = FAST_KERNELS.get(type(module))
        if fast is not None:
            module.__class__ = fast
            count += 1
    return count


def disable_fast_kernels(model: nn.Module) -> int:
    """Back to the reference kernels; returns the number of modules switched back."""
    count = 0
    for module in model.modules():
        reference = _REFERENCE_KERNELS.get(type(module))
        if reference is not None:
            module.__class__ = reference
            count += 1
    return count


def uses_fast_kernels(model: nn.Module) -> bool:
    """Whether any module of ``model`` runs a fused kernel."""
    return any(type(m) in _REFERENCE_KERNELS for m in model.modules())
