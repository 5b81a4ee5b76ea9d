"""Fused kernels for SOC's CPU hot spots (same maths, float-rounding differences only).

* Video-Swin memory layout (``VideoSwinTransformer``): mmaction's ``SwinTransformer3D.forward``
  hands each stage ``x.contiguous()`` in ``[B, C, D, H, W]`` and the stage views it as
  ``[B, D, H, W, C]``, so every block of every stage runs on a channels-first buffer seen
  channels-last: each LayerNorm and Linear input is copied first and every residual add is a
  strided add (whose output keeps the strided layout for the next block). Here the stages get a
  channels-last contiguous buffer: the same operations on the same values, ~1.3x faster backbone.

* Video-Swin window attention (mmaction ``WindowAttention3D``): the reference materialises the
  ``[windows, heads, N, N]`` score tensor (N = 8*7*7 = 392 tokens; ~550 MB for one 8-frame
  360x640 clip at stage 1) and adds the relative-position bias and the shift mask to it in
  separate passes. Here ``F.scaled_dot_product_attention`` takes the bias as its additive mask
  (fused, never materialised); only the windows the shift mask touches (the last row / column of
  windows) get a per-window mask. With gradients (training) the scores are materialised (the bias
  needs its gradient) but updated in place. Either way the shift mask is applied as -inf, not
  -100: no denormal probabilities (~1e-44) reach the next matrix product, which they slow ~10x.
* Dynamic mask head (``DynamicMaskHead``): the per-query 1x1 convs run as one grouped conv with
  ``B*T*nq`` tiny groups, which oneDNN executes ~20x slower on CPU than the equivalent batched
  matrix product (``torch.baddbmm``) used here.
* Multi-scale deformable attention (mmcv ``MultiScaleDeformableAttention`` on CPU uses
  ``multi_scale_deformable_attn_pytorch``: ``grid_sample`` per level, then every sampled value
  stacked into one ``[bs*heads, C/heads, Lq, levels*points]`` tensor before weighting): here the
  bilinear corners are summed with their weights by one ``F.embedding_bag`` over a channels-last
  value table (``msda_gather``). Its backward (``weighted_row_sum``) is two sparse products, not
  ``embedding_bag``'s own backward (which sorts every sample and then loops): one encoder layer's
  forward + backward 2.4x faster than the reference's in a Swin-T training step.
  mmcv looks its CPU kernel up by a module-level name; that name is left alone (replacing it would
  switch every model of the process), the fused module computes the projections itself and calls
  ``msda_gather``.

Each kernel is a subclass of the module it speeds up, with the same parameters and state dict.
``enable_fast_kernels(model)`` turns the modules of one model into these subclasses (SOC does it at
build time when ``model.fast_kernels`` is True, the default; ``soc_mm.apis.init_model(fast_kernels=...)`` sets
that option), ``disable_fast_kernels`` turns them back; other models are not affected. The window
attention and mask head kernels only act in eval mode (or without dropout); CUDA tensors use the
reference code (mmcv's CUDA kernel) everywhere.
"""
import warnings
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttention
from torch import Tensor, nn

from mmaction.models.backbones.swin import WindowAttention3D  # importable: ``import soc_mm`` applied the shims

from ..backbones.video_swin import VideoSwinTransformer
from .dynamic_mask_head import DynamicMaskHead, aligned_bilinear


class FastVideoSwinTransformer(VideoSwinTransformer):
    """``VideoSwinTransformer`` whose stages run on channels-last contiguous buffers."""

    def forward(self, x: Tensor) -> List[Tensor]:
        """x: [B, T, 3, H, W] -> list of 4 [(B*T), C_i, h_i, w_i] (as ``VideoSwinTransformer``)."""
        if x.dim() != 5:
            raise ValueError(f'VideoSwinTransformer expects [B, T, 3, H, W], got {tuple(x.shape)}')
        x = self.pos_drop(self.patch_embed(x.transpose(1, 2)))  # [B, C, T, h, w]
        x = x.permute(0, 2, 3, 4, 1).contiguous()  # [B, T, h, w, C], channels-last memory
        outs = []
        for i, layer in enumerate(self.layers):
            # the stage's own ``b c d h w -> b d h w c`` view gives back this contiguous buffer
            x = layer(x.permute(0, 4, 1, 2, 3), do_downsample=self.out_after_downsample)
            if i in self.out_indices:
                outs.append(rearrange(getattr(self, f'norm{i}')(x), 'b t h w c -> (b t) c h w').contiguous())
            if layer.downsample is not None and not self.out_after_downsample:
                x = layer.downsample(x)
        return outs


class FastWindowAttention3D(WindowAttention3D):
    """``WindowAttention3D`` with fused attention (``F.scaled_dot_product_attention``)."""

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """x: [B*nW, N, C]; mask: [nW, N, N] additive (0 / -100) shift mask or None -> [B*nW, N, C].

        The mask's -100 entries are applied as -inf: softmax then gives exact zeros there instead
        of ~1e-44, which are denormal floats, and matrix products over denormals run ~10x slower on
        x86 CPUs (the reference's attn @ v in a shifted block). Same result to float rounding.
        """
        if self.training and self.attn_drop.p > 0:
            return super().forward(x, mask)
        B_, N, C = x.shape
        nH = self.num_heads
        q, k, v = self.qkv(x).reshape(B_, N, 3, nH, C // nH).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.relative_position_bias_table[self.relative_position_index[:N, :N].reshape(-1)]
        bias = bias.reshape(N, N, nH).permute(2, 0, 1).unsqueeze(0).to(q.dtype)  # [1, nH, N, N]
        if torch.is_grad_enabled():
            # with gradients SDPA takes its math path (the bias needs a gradient), whose safe softmax
            # adds three passes over the scores; the plain products with in-place updates do not
            attn = torch.matmul(q * self.scale, k.transpose(-2, -1)).add_(bias)  # [B_, nH, N, N]
            if mask is not None:
                attn.view(-1, mask.shape[0], nH, N, N).masked_fill_(mask.ne(0)[:, None], float('-inf'))
            out = torch.matmul(attn.softmax(-1), v)
        elif mask is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        else:
            nW = mask.shape[0]
            B = B_ // nW
            # a window holding two regions of the shifted map has -100 in its first token's row (the
            # first token's region differs from some other token's): N values per window, not N * N
            masked = mask[:, 0].ne(0).any(1)
            out = torch.empty_like(q).view(B, nW, nH, N, -1)
            q, k, v = (t.view(B, nW, nH, N, -1) for t in (q, k, v))
            for windows, attn_mask in ((~masked).nonzero().flatten(), None), (masked.nonzero().flatten(), mask):
                if windows.numel() == 0:
                    continue
                sel = [t.index_select(1, windows).flatten(0, 1) for t in (q, k, v)]
                if attn_mask is None:
                    full_mask = bias
                else:  # [B * n, nH, N, N]: the bias, -inf where this window's shift mask is set
                    shift = attn_mask.index_select(0, windows)[:, None].ne(0)
                    full_mask = bias.masked_fill(shift, float('-inf')).repeat(B, 1, 1, 1)
                res = F.scaled_dot_product_attention(*sel, attn_mask=full_mask, scale=self.scale)
                out.index_copy_(1, windows, res.view(B, windows.numel(), nH, N, -1))
            out = out.view(B_, nH, N, -1)
        x = self.proj(out.transpose(1, 2).reshape(B_, N, C))
        return self.proj_drop(x)


#: samples (bilinear corners) gathered per ``msda_gather`` chunk: bounds its index/weight
#: temporaries (8 bytes a sample) to ~128 MB whatever the batch (e.g. K expressions x T frames)
MSDA_CHUNK_SAMPLES = 2**24


def msda_gather(value: Tensor, value_spatial_shapes, sampling_locations: Tensor,
                attention_weights: Tensor) -> Tensor:
    """Multi-scale deformable attention's bilinear sampling and weighting as one weighted gather.

    ``multi_scale_deformable_attn_pytorch`` (mmcv's CPU path, and the official code's) runs
    ``grid_sample`` per level on ``[bs*heads, c, h, w]`` maps (each sample reads ``c`` values
    ``h*w`` apart), stacks every sampled value into ``[bs*heads, c, Lq, levels*points]`` and only
    then weights and sums them. Here each of the ``levels * points * 4`` bilinear corners of a
    (query, head) gets one weight (bilinear weight x attention weight) and one row index into the
    value table ``[bs * S' * heads, c]`` (rows of ``c`` contiguous values), and ``F.embedding_bag``
    sums the weighted rows without building any intermediate: ~6x faster forward, same maths
    (float rounding), differentiable (``embedding_bag`` gives the value and weight gradients).

    value [bs, S, heads, c], value_spatial_shapes [levels, 2] (h, w), sampling_locations
    [bs, Lq, heads, levels, points, 2] (x, y in [0, 1]), attention_weights
    [bs, Lq, heads, levels, points] -> [bs, Lq, heads * c].
    """
    levels, points = sampling_locations.shape[3:5]
    pattern = _level_pattern([(int(w), int(h)) for h, w in value_spatial_shapes], points, sampling_locations)
    pixels = torch.addcmul(torch.tensor(-0.5, dtype=pattern.dtype, device=pattern.device),
                           sampling_locations.reshape(-1, levels * points * 2), pattern)
    return msda_gather_pixels(value, value_spatial_shapes, pixels.view(sampling_locations.shape), attention_weights)


def _level_pattern(values, points: int, like: Tensor) -> Tensor:
    """Per-level values (scalars or pairs) -> each level's value(s) repeated per point, flat:
    [levels * points] or [levels * points * 2], the layout of a ``[..., levels, points(, 2)]``
    tensor's last dims, so that element-wise products with it run over contiguous memory (a
    ``[levels, 1, 2]`` broadcast does not vectorise)."""
    table = torch.tensor(values, dtype=like.dtype, device=like.device)  # [levels] or [levels, 2]
    table = table.view(len(values), 1, -1)
    return table.expand(-1, points, -1).reshape(-1)


def msda_gather_pixels(value: Tensor, value_spatial_shapes, pixels: Tensor, attention_weights: Tensor) -> Tensor:
    """``msda_gather`` with sampling positions given in pixels of each level: ``pixels`` [bs, Lq, heads,
    levels, points, 2] = location * (w, h) - 0.5 (``grid_sample``'s ``align_corners=False``).

    Each level is padded by a zero border (1 before, 2 after), so out-of-map corners need no
    validity mask: pixel coordinates are clamped to ``[-1, w]`` / ``[-1, h]``, where every corner
    outside the map reads a zero (``grid_sample``'s ``padding_mode='zeros'``) and the clamped ones
    get no gradient (as outside the map in ``grid_sample``).
    """
    bs, _, heads, c = value.shape
    _, num_queries, _, num_levels, num_points, _ = pixels.shape
    step = max(1, MSDA_CHUNK_SAMPLES // (num_queries * heads * num_levels * num_points * 4))
    if bs > step:
        return torch.cat([msda_gather_pixels(value[i:i + step], value_spatial_shapes, pixels[i:i + step],
                                             attention_weights[i:i + step]) for i in range(0, bs, step)])
    device = value.device
    shapes = [(int(h), int(w)) for h, w in value_spatial_shapes]
    padded, level_starts, start = [], [], 0
    for (h, w), level in zip(shapes, value.split([h * w for h, w in shapes], dim=1)):
        padded.append(F.pad(level.reshape(bs, h, w, heads * c), (0, 0, 1, 2, 1, 2)).flatten(1, 2))
        level_starts.append(start)
        start += (h + 3) * (w + 3)
    table = torch.cat(padded, 1).view(-1, c)  # row (b, s', head) -> c values
    itype = torch.int32 if table.shape[0] < 2**31 else torch.int64
    n, lp = bs * num_queries * heads, num_levels * num_points
    xy = torch.clamp(pixels.reshape(n, lp * 2), min=torch.tensor(-1.0, dtype=pixels.dtype, device=device),
                     max=_level_pattern([(w, h) for h, w in shapes], num_points, pixels))
    xy0 = xy.floor()
    frac = (xy - xy0).view(n, lp, 2)
    xy0 = xy0.to(itype).view(n, lp, 2)
    # padded-table row of the top-left corner: y0 * row_step + x0 * heads + level + batch/head offsets
    row_step = _level_pattern([(w + 3) * heads for _, w in shapes], num_points, xy0)  # [lp]
    level_first = _level_pattern([s * heads + (w + 3) * heads + heads for s, (_, w) in zip(level_starts, shapes)],
                                 num_points, xy0)
    # the 4 corners of every (query, head): blocks of lp samples (order within a bag is free)
    index = torch.empty(n, 4, lp, dtype=itype, device=device)
    top_left, down = index[:, 0], index[:, 2]
    torch.mul(xy0[..., 1], row_step, out=top_left)
    top_left.add_(xy0[..., 0], alpha=heads).add_(level_first)
    batch_head = (torch.arange(bs, dtype=itype, device=device) * (start * heads))[:, None] + \
        torch.arange(heads, dtype=itype, device=device)  # [bs, heads]
    top_left.view(bs, num_queries, heads, lp).add_(batch_head[:, None, :, None])
    torch.add(top_left, heads, out=index[:, 1])
    torch.add(top_left, row_step, out=down)
    torch.add(down, heads, out=index[:, 3])
    # bilinear weights: corner (dy, dx) gets wy[dy] * wx[dx] * attention weight
    fx, fy = frac[..., 0], frac[..., 1]
    weights = attention_weights.reshape(n, lp)
    up_w, down_w = (1 - fy) * weights, fy * weights
    left_w = 1 - fx
    weight = torch.stack([up_w * left_w, up_w * fx, down_w * left_w, down_w * fx], 1).to(table.dtype)  # [n, 4, lp]
    return weighted_row_sum(table, index.view(n, -1), weight.view(n, -1)).view(bs, num_queries, heads * c)


def weighted_row_sum(table: Tensor, index: Tensor, weight: Tensor) -> Tensor:
    """out[i] = sum_k weight[i, k] * table[index[i, k]]: table [R, c], index [n, K] (int32 / int64),
    weight [n, K] -> [n, c]. One ``F.embedding_bag``; with gradients (float32 / float64 on CPU) the
    backward is two sparse products instead of ``embedding_bag``'s sorting backward."""
    if torch.is_grad_enabled() and (table.requires_grad or weight.requires_grad) and not table.is_cuda and \
            table.dtype in (torch.float32, torch.float64) and weight.dtype == table.dtype:
        return _WeightedRowSum.apply(table, index, weight)
    return F.embedding_bag(index, table, per_sample_weights=weight, mode='sum')


class _WeightedRowSum(torch.autograd.Function):
    """``weighted_row_sum`` with a backward built from sparse products (written here: PyTorch's
    ``embedding_bag`` backward sorts every (bag, sample) pair and then loops over them, ~5x slower):

    * d table = A^T @ d out, with A [n, R] the sparse matrix of the weights (A^T built as CSR from
      one sort of the indices);
    * d weight[i, k] = table[index[i, k]] . d out[i]: ``torch.sparse.sampled_addmm`` on A's pattern.
    """

    csr_notice_shown = False

    @staticmethod
    def forward(ctx, table: Tensor, index: Tensor, weight: Tensor) -> Tensor:
        if not _WeightedRowSum.csr_notice_shown:
            # PyTorch warns once per process that sparse CSR tensors are in beta; the backward runs
            # in the autograd engine, which re-raises its warnings after ``catch_warnings`` is gone,
            # so the one-time notice is spent here, on a 1x1 matrix
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                torch.sparse_csr_tensor(torch.tensor([0, 1]), torch.tensor([0]), torch.ones(1), (1, 1))
            _WeightedRowSum.csr_notice_shown = True
        ctx.save_for_backward(table, index, weight)
        return F.embedding_bag(index, table, per_sample_weights=weight, mode='sum')

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grad_out = grad_out.contiguous()
        table, index, weight = ctx.saved_tensors
        (n, k), rows = index.shape, table.shape[0]
        itype = torch.int32 if max(rows, n) * k < 2**31 else torch.int64
        flat = index.reshape(-1).to(itype)
        grad_table = grad_weight = None
        if ctx.needs_input_grad[0]:
            sorted_rows, order = torch.sort(flat)
            crow = torch.searchsorted(sorted_rows, torch.arange(rows + 1, dtype=itype, device=flat.device),
                                      out_int32=itype == torch.int32)
            a_t = torch.sparse_csr_tensor(crow, torch.div(order, k, rounding_mode='floor').to(itype),
                                          weight.reshape(-1)[order], (rows, n))
            grad_table = a_t @ grad_out
        if ctx.needs_input_grad[2]:
            pattern = torch.sparse_csr_tensor(torch.arange(0, n * k + 1, k, dtype=itype, device=flat.device), flat,
                                              torch.zeros(n * k, dtype=table.dtype, device=flat.device), (n, rows))
            grad_weight = torch.sparse.sampled_addmm(pattern, grad_out, table.t(), beta=0.0).values().view(n, k)
        return grad_table, None, grad_weight


class FastMultiScaleDeformableAttention(MultiScaleDeformableAttention):
    """mmcv ``MultiScaleDeformableAttention`` with ``msda_gather`` as its CPU kernel (batch-first)."""

    def forward(self, query: Tensor, key: Optional[Tensor] = None, value: Optional[Tensor] = None,
                identity: Optional[Tensor] = None, query_pos: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None, reference_points: Optional[Tensor] = None,
                spatial_shapes: Optional[Tensor] = None, level_start_index: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        """query [bs, Lq, C], value [bs, S, C], key_padding_mask [bs, S], reference_points
        [bs, Lq, levels, 2 | 4], spatial_shapes [levels, 2] -> [bs, Lq, C] (as mmcv's forward)."""
        value = query if value is None else value
        if not self.batch_first or value.is_cuda:
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
        pixels, weights = self.sampling_pixels(query, reference_points, spatial_shapes)
        output = self.output_proj(msda_gather_pixels(value, spatial_shapes, pixels, weights))
        return self.dropout(output) + identity

    def sampling_pixels(self, query: Tensor, reference_points: Tensor, spatial_shapes: Tensor) -> tuple:
        """The sampling locations of mmcv's deformable attention as pixels of each level (location * (w, h) - 0.5),
        computed from the offsets directly: reference * size + offset - 0.5 (points) or
        reference_xy * size - 0.5 + offset * reference_wh * size / (2 * points) (boxes).

        query [bs, Lq, C] (with its position), reference_points [bs, Lq, levels, 2 | 4] ->
        pixels [bs, Lq, heads, levels, points, 2], weights [bs, Lq, heads, levels, points].
        """
        bs, num_queries = query.shape[:2]
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        offsets = self.sampling_offsets(query).view(bs, num_queries, heads, levels * points * 2)
        weights = self.attention_weights(query).view(bs, num_queries, heads, levels * points).softmax(-1)
        size = torch.stack([spatial_shapes[:, 1], spatial_shapes[:, 0]], -1).to(query.dtype)  # [levels, 2] (w, h)

        def per_point(t: Tensor) -> Tensor:  # [bs, Lq, levels, 2] -> [bs, Lq, 1, levels * points * 2]
            return t[:, :, None, :, None, :].expand(-1, -1, -1, -1, points, -1).reshape(bs, num_queries, 1, -1)

        if reference_points.shape[-1] == 2:
            pixels = offsets + per_point(reference_points * size - 0.5)
        elif reference_points.shape[-1] == 4:
            pixels = torch.addcmul(per_point(reference_points[..., :2] * size - 0.5), offsets,
                                   per_point(reference_points[..., 2:] * size * (0.5 / points)))
        else:
            raise ValueError(f'reference_points must end with 2 or 4 values, got {tuple(reference_points.shape)}')
        return (pixels.view(bs, num_queries, heads, levels, points, 2),
                weights.view(bs, num_queries, heads, levels, points))


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
    VideoSwinTransformer: FastVideoSwinTransformer,
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
