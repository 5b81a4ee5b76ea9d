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


@pytest.mark.parametrize('needs', [(True, True), (True, False), (False, True)])
def test_weighted_row_sum_backward_equals_embedding_bag_autograd(needs):
    """The sparse-product backward gives embedding_bag's gradients, for any subset of inputs that need
    them: rows referenced many times, rows never referenced, repeated rows within one bag."""
    from soc_mm.models.layers.fast_kernels import weighted_row_sum
    g = torch.Generator().manual_seed(0)
    table = torch.randn(9, 5, generator=g, dtype=torch.float64)
    index = torch.randint(0, 6, (7, 4), generator=g, dtype=torch.int32)  # rows 6..8 never read
    index[0] = 2  # one bag reading one row 4 times
    weight = torch.randn(7, 4, generator=g, dtype=torch.float64)
    grad_out = torch.randn(7, 5, generator=g, dtype=torch.float64)
    results = []
    for fn in (weighted_row_sum, lambda t, i, w: torch.nn.functional.embedding_bag(i, t, per_sample_weights=w,
                                                                                   mode='sum')):
        t, w = table.clone().requires_grad_(needs[0]), weight.clone().requires_grad_(needs[1])
        out = fn(t, index, w)
        inputs = [x for x in (t, w) if x.requires_grad]
        results.append((out, *torch.autograd.grad(out, inputs, grad_out)))
    assert len(results[0]) == 1 + sum(needs)
    for got, ref in zip(*results):
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('grad', [False, True])
@pytest.mark.parametrize('size', [(4, 9, 10), (4, 14, 14)])
def test_window_attention_equals_mmaction_with_shift_masks(grad, size):
    """The fused window attention (SDPA without gradients, plain products with them) gives
    mmaction's outputs and gradients, for shifted windows whose mask separates regions (applied as
    -inf instead of -100: the same softmax to float rounding)."""
    from mmaction.models.backbones.swin import WindowAttention3D, compute_mask, window_partition
    from soc_mm.models.layers.fast_kernels import FastWindowAttention3D
    torch.manual_seed(0)
    ref = WindowAttention3D(16, (2, 7, 7), num_heads=2)
    torch.nn.init.normal_(ref.relative_position_bias_table, std=0.5)
    fast = FastWindowAttention3D(16, (2, 7, 7), num_heads=2)
    fast.load_state_dict(ref.state_dict())
    D, H, W = size
    window, shift = (2, 7, 7), (1, 3, 3)
    Hp, Wp = -(-H // 7) * 7, -(-W // 7) * 7
    mask = compute_mask(D, Hp, Wp, window, shift, 'cpu')  # [nW, N, N], 0 / -100
    assert (mask != 0).any() and (mask == 0).all(-1).all(-1).any()  # masked and unmasked windows
    x = window_partition(torch.randn(2, D, Hp, Wp, 16) * 3, window)  # [2 * nW, N, C]
    outs = []
    for module in (ref, fast):
        xi = x.clone().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            out = module(xi, mask)
        if grad:
            params = (xi, module.relative_position_bias_table, module.qkv.weight)
            outs.append((out, *torch.autograd.grad((out * out).sum(), params)))
        else:
            outs.append((out, ))
    for got, expected in zip(outs[1], outs[0]):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
