"""The fused CPU kernels compute the reference kernels' maths (outputs and gradients)."""
import pytest
import torch
from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch

from soc_mm.models.layers import fast_kernels
from soc_mm.models.layers.fast_kernels import msda_gather


def _msda_inputs(bs=2, heads=3, c=4, points=2, shapes=((5, 7), (3, 4), (1, 2)), seed=0):
    g = torch.Generator().manual_seed(seed)
    S = sum(h * w for h, w in shapes)
    value = torch.randn(bs, S, heads, c, generator=g, dtype=torch.float64)
    # locations spread beyond [0, 1] on every side: corners outside the maps read zeros
    locations = torch.rand(bs, 11, heads, len(shapes), points, 2, generator=g, dtype=torch.float64) * 1.6 - 0.3
    # exact pixel centres, borders and far outside
    locations[0, 0, 0, :, 0] = torch.tensor([0.0, 0.0], dtype=torch.float64)
    locations[0, 1, 0, :, 0] = torch.tensor([1.0, 1.0], dtype=torch.float64)
    locations[0, 2, 0, :, 0] = torch.tensor([-5.0, 0.5], dtype=torch.float64)
    weights = torch.rand(bs, 11, heads, len(shapes), points, generator=g, dtype=torch.float64)
    return value, torch.tensor(shapes), locations, weights


@pytest.mark.parametrize('chunk', [None, 1])
def test_msda_gather_equals_mmcv_pytorch_kernel_and_its_gradients(monkeypatch, chunk):
    if chunk is not None:  # one batch element per embedding_bag call
        monkeypatch.setattr(fast_kernels, 'MSDA_CHUNK_SAMPLES', chunk)
    results = []
    for kernel in (multi_scale_deformable_attn_pytorch, msda_gather):
        value, shapes, locations, weights = (t.requires_grad_() if t.is_floating_point() else t
                                             for t in _msda_inputs())
        out = kernel(value, shapes, locations, weights)
        grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
        value_grad, loc_grad, weight_grad = torch.autograd.grad((out * grad_out).sum(), (value, locations, weights))
        results.append((out, value_grad, loc_grad, weight_grad))
    assert results[1][0].shape == (2, 11, 3 * 4)
    for name, ref, got in zip(('output', 'value grad', 'location grad', 'weight grad'), *results):
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10, msg=name)


def test_msda_gather_reads_zero_outside_and_exact_pixels_at_centres():
    value = torch.arange(6, dtype=torch.float64).view(1, 6, 1, 1) + 1  # one 2x3 map, values 1..6
    shapes = torch.tensor([[2, 3]])
    # centre of pixel (y=1, x=2) -> 6; far outside -> 0; between (y=0, x=0) and (0, 1) -> 1.5;
    # half a pixel outside the top-left corner -> a quarter of pixel (0, 0)
    locations = torch.tensor([[2.5 / 3, 1.5 / 2], [4.0, -3.0], [1.0 / 3, 0.5 / 2], [0.0, 0.0]], dtype=torch.float64)
    locations = locations.view(1, 4, 1, 1, 1, 2)
    out = msda_gather(value, shapes, locations, torch.ones(1, 4, 1, 1, 1, dtype=torch.float64))
    assert out.flatten().tolist() == [6.0, 0.0, 1.5, 0.25]
    torch.testing.assert_close(out, multi_scale_deformable_attn_pytorch(
        value, shapes, locations, torch.ones(1, 4, 1, 1, 1, dtype=torch.float64)), rtol=0, atol=1e-12)
