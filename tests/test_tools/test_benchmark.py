"""soc_mm.testing.synthetic_batch (the inputs of tools/analysis_tools/benchmark.py and gpu_check.py) and
benchmark.py itself on the tiny SOC (a subprocess; plumbing and tables, no timings checked)."""
import os.path as osp
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from conftest import REPO_ROOT, TEXT_ENCODER_DIR, subprocess_env
from soc_mm.models.data_preprocessors import RVOSDataPreprocessor
from soc_mm.testing import moving_ellipse, synthetic_batch, synthetic_expression_batch, synthetic_expressions


def fake_model(pad_size_divisor=1):
    return SimpleNamespace(data_preprocessor=RVOSDataPreprocessor(pad_size_divisor=pad_size_divisor))


def test_moving_ellipse_moves_right_inside_the_frame():
    masks, boxes = moving_ellipse(5, (40, 60))
    assert masks.shape == (1, 5, 40, 60) and masks.dtype == torch.bool and boxes.shape == (1, 5, 4)
    assert all(masks[0, t].any() for t in range(5))
    cx = boxes[0, :, 0]
    assert torch.all(cx[1:] > cx[:-1])
    assert cx[0] == pytest.approx(0.3, abs=0.03) and cx[-1] == pytest.approx(0.7, abs=0.03)
    for t in range(5):  # each box is its mask's extent
        ys, xs = masks[0, t].nonzero(as_tuple=True)
        assert boxes[0, t, 2].item() == pytest.approx((xs.max() - xs.min() + 1).item() / 60)
        assert boxes[0, t, 3].item() == pytest.approx((ys.max() - ys.min() + 1).item() / 40)
    with pytest.raises(ValueError, match='too small'):
        moving_ellipse(2, (1, 1))


def test_synthetic_batch_goes_through_the_preprocessor():
    inputs, samples = synthetic_batch(fake_model(pad_size_divisor=32), 3, (40, 50), batch=2, with_targets=True, seed=1)
    assert inputs.shape == (2, 3, 3, 64, 64) and inputs.dtype == torch.float32  # padded to 32
    assert inputs[:, :, :, 40:].abs().sum() == 0  # zero padding after normalisation
    for sample in samples:
        assert sample.img_shape == (40, 50) and sample.batch_input_shape == (64, 64) and sample.ref_inst_idx == 0
        assert sample.expression and len(sample.frame_ids) == 3
        assert sample.gt_instances.masks.shape == (1, 3, 40, 50) and sample.gt_instances.boxes.shape == (1, 3, 4)
    again, _ = synthetic_batch(fake_model(pad_size_divisor=32), 3, (40, 50), batch=2, with_targets=True, seed=1)
    assert torch.equal(inputs, again)
    other, plain = synthetic_batch(fake_model(), 3, (40, 50), batch=2, seed=2)
    assert not torch.equal(other, inputs[..., :40, :50]) and 'gt_instances' not in plain[0]
    with pytest.raises(ValueError, match='2 clips need 2 expressions, got 1'):
        synthetic_batch(fake_model(), 3, (40, 50), batch=2, expressions=['the red car'])


def test_synthetic_expression_batch_shares_one_clip():
    inputs, samples = synthetic_expression_batch(fake_model(), 2, (24, 32), 4)
    assert inputs.shape == (1, 2, 3, 24, 32)
    assert [s.expression for s in samples] == synthetic_expressions(4)
    assert len(set(synthetic_expressions(4))) == 4
    assert all(s.batch_input_shape == (24, 32) and s.img_shape == (24, 32) for s in samples)


def test_benchmark_prints_its_tables(tmp_path):
    config = tmp_path / 'tiny.py'
    config.write_text(f"_base_ = ['{osp.join(REPO_ROOT, 'configs', 'soc', 'soc_tiny_synthetic.py')}']\n"
                      f"model = dict(text_encoder=dict(model_path='{TEXT_ENCODER_DIR}'))\n")
    proc = subprocess.run([sys.executable, osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'benchmark.py'), str(config),
                           '--frames', '2', '--size', '64', '64', '--expressions', '2', '--threads', '1',
                           '--schedules', '1', '2', '--no-flops', '--skip-reference'],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert '| soc_mm, default (fused kernels) |' in out and '| soc_mm: 2 forwards, fused kernels |' in out
    assert '| soc_mm: backbone once, text stages 1 expression(s) at a time' in out
    assert '| soc_mm: backbone once, text stages 2 expression(s) at a time' in out
    for stage in ('backbone', 'neck', 'text', 'fusion+encoder', 'decoder+VOC', 'heads', 'post-processing'):
        assert f'| {stage} |' in out, stage
    diff = float(re.search(r'max \|diff\| shared vs per-expression hidden states \(head input\): (\S+)', out).group(1))
    assert diff < 1e-4
