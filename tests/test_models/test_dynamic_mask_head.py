"""DynamicMaskHead and aligned_bilinear (soc_mm/models/layers/dynamic_mask_head.py)."""
import pytest
import torch

import soc_mm  # noqa: F401  (shims + registration)
from soc_mm.models.layers import DynamicMaskHead, aligned_bilinear


def test_aligned_bilinear_and_dynamic_head_shapes():
    x = torch.randn(2, 3, 5, 7)
    assert aligned_bilinear(x, 1) is x
    up = aligned_bilinear(x, 2)
    assert up.shape == (2, 3, 10, 14)
    # CondInst alignment: odd output pixels (stride-2 centres) reproduce the input exactly
    torch.testing.assert_close(up[..., 1::2, 1::2], x, rtol=0, atol=1e-6)
    from mmdet.models.utils import aligned_bilinear as mmdet_aligned_bilinear
    assert aligned_bilinear is mmdet_aligned_bilinear  # reused, not re-implemented
    # the head only calls it with an integer factor feat_stride // out_stride
    with pytest.raises(ValueError, match='feat_stride 6 must be a multiple of out_stride 4'):
        DynamicMaskHead(feat_stride=6, out_stride=4)
    head = DynamicMaskHead(in_channels=8, channels=8, num_layers=3, rel_coord=True, feat_stride=8, out_stride=4)
    assert head.num_gen_params == (10 * 8 + 8 * 8 + 8) + (8 + 8 + 1)
    out = head(torch.randn(2, 3, 8, 4, 6), torch.randn(2, 3, 5, head.num_gen_params), torch.rand(2, 3, 5, 2),
               torch.tensor([[32, 48], [30, 40]]))
    assert out.shape == (2, 3, 5, 8, 12)
    with pytest.raises(ValueError):
        head(torch.randn(2, 3, 8, 4, 6), torch.randn(2, 3, 5, 7), torch.rand(2, 3, 5, 2), torch.ones(2, 2))
