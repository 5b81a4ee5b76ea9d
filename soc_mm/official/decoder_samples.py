"""The official decoder's ``inter_samples``, recovered from mmdet's deformable decoder.

SOC's deformable encoder and decoder compute exactly what mmdet's
``DeformableDetrTransformerEncoder`` / ``DeformableDetrTransformerDecoder`` compute (same layer
order, post-norms, mmcv ``MultiScaleDeformableAttention``, reference points, valid ratios and
iterative box refinement), so the detector uses those directly. The official decoder additionally
returns, per layer, the sampling locations with the largest attention weights (``inter_samples``,
used only for visualisation); :class:`DecoderSamplingRecorder` recovers them on demand without
touching the decoder's forward, for the comparison with the official model's golden fixtures.
"""
from typing import List

import torch
from mmcv.ops import MultiScaleDeformableAttention
from torch import Tensor, nn


def deformable_sampling(attn: MultiScaleDeformableAttention, query: Tensor, reference_points: Tensor,
                        spatial_shapes: Tensor) -> tuple:
    """Sampling locations and attention weights of one ``MultiScaleDeformableAttention`` call.

    Args:
        attn: the (batch-first) attention module.
        query (Tensor): query incl. its positional encoding [N, Lq, C].
        reference_points (Tensor): [N, Lq, levels, 2 | 4], normalised.
        spatial_shapes (Tensor): [levels, 2] (h, w).

    Returns:
        locations [N, Lq, heads, levels, points, 2], weights [N, Lq, heads, levels, points].
    """
    N, Lq = query.shape[:2]
    heads, levels, points = attn.num_heads, attn.num_levels, attn.num_points
    offsets = attn.sampling_offsets(query).view(N, Lq, heads, levels, points, 2)
    weights = attn.attention_weights(query).view(N, Lq, heads, levels * points).softmax(-1)
    weights = weights.view(N, Lq, heads, levels, points)
    if reference_points.shape[-1] == 2:
        normalizer = torch.stack([spatial_shapes[..., 1], spatial_shapes[..., 0]], -1)
        locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
    else:
        locations = reference_points[:, :, None, :, None, :2] + \
            offsets / points * reference_points[:, :, None, :, None, 2:] * 0.5
    return locations, weights


class DecoderSamplingRecorder:
    """Records the official ``inter_samples`` of a deformable decoder.

    Use as a context manager around the decoder call; afterwards ``samples``
    is ``[L, N, nq, topk, 2]``: per decoder layer, the ``topk`` sampling
    locations with the largest attention weights (over heads, levels and
    points), divided by the valid ratios of their level.

    Args:
        decoder (nn.Module): mmdet ``DeformableDetrTransformerDecoder``.
        topk (int): locations kept per query (official: 30).
    """

    def __init__(self, decoder: nn.Module, topk: int = 30) -> None:
        self.decoder = decoder
        self.topk = topk
        self._handles: List = []
        self._samples: List[Tensor] = []

    def _hook(self, module, args, kwargs, output) -> None:
        query = kwargs['query']
        if kwargs.get('query_pos') is not None:
            query = query + kwargs['query_pos']
        valid_ratios = kwargs['valid_ratios']
        with torch.no_grad():
            locations, weights = deformable_sampling(module, query, kwargs['reference_points'],
                                                     kwargs['spatial_shapes'])
            locations = locations / valid_ratios[:, None, None, :, None, :]
            N, Lq = weights.shape[:2]
            top_idx = weights.reshape(N, Lq, -1).topk(self.topk, dim=2)[1]
            flat = locations.reshape(N, Lq, -1, 2)
            self._samples.append(torch.gather(flat, 2, top_idx[..., None].expand(-1, -1, -1, 2)))

    def __enter__(self) -> 'DecoderSamplingRecorder':
        self._samples = []
        for layer in self.decoder.layers:
            self._handles.append(layer.cross_attn.register_forward_hook(self._hook, with_kwargs=True))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @property
    def samples(self) -> Tensor:
        """[L, N, nq, topk, 2] recorded during the last decoder call."""
        num_layers = len(self.decoder.layers)
        if len(self._samples) < num_layers:
            raise RuntimeError('DecoderSamplingRecorder: no decoder call was recorded')
        return torch.stack(self._samples[-num_layers:])
