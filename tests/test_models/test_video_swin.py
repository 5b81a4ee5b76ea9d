"""VideoSwinTransformer (soc_mm/models/backbones/video_swin.py) vs the official fixtures; K400 checkpoints."""
import os.path as osp

import pytest
import torch
from torch import nn

from conftest import FIXTURE_ROOT
from soc_reference_helpers import sub_state_dict
import soc_mm  # noqa: F401  (shims + registries)
from soc_mm.models.backbones import VideoSwinTransformer

FIXTURES = FIXTURE_ROOT
MAIN = osp.join(FIXTURES, 'ytvos_b2_t3_nc1_w0')
TINY_SWIN = dict(arch=dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 8]), drop_path_rate=0.)


def build_tiny_swin(**kwargs):
    cfg = dict(TINY_SWIN)
    cfg.update(kwargs)
    return VideoSwinTransformer(**cfg)


def test_backbone_has_no_output_norms(official_sd):
    backbone = build_tiny_swin()
    for i in range(4):
        assert isinstance(getattr(backbone, f'norm{i}'), nn.Identity)
    keys = set(backbone.state_dict())
    assert not any(k.startswith('norm') for k in keys)
    official = {k for k in official_sd if k.startswith('backbone.')}
    assert len(keys) == len(official)
    assert backbone.out_channels == [16, 32, 64, 128] and backbone.strides == [4, 8, 16, 32]


def test_backbone_matches_official_features(front_sd):
    torch.set_num_threads(1)
    backbone = build_tiny_swin().eval()
    backbone.load_state_dict(sub_state_dict(front_sd, 'backbone.'), strict=True)
    inputs = torch.load(osp.join(MAIN, 'inputs.pt'))['samples'].transpose(0, 1).contiguous()
    ref = torch.load(osp.join(MAIN, 'intermediates_eval.pt'))['backbone']['features']
    with torch.no_grad():
        feats = backbone(inputs)
    assert len(feats) == 4
    for ours, theirs in zip(feats, ref):
        assert ours.shape == theirs.shape
        torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-5)


def test_backbone_rejects_bad_input():
    with pytest.raises(ValueError, match=r'\[B, T, 3, H, W\]'):
        build_tiny_swin()(torch.zeros(2, 3, 32, 32))


def test_k400_checkpoint_sums_temporal_kernel(tmp_path):
    # a fake Video-Swin K400 classification checkpoint: temporal patch 2, final norm, class head
    source = build_tiny_swin(patch_size=(2, 4, 4))
    state = {f'backbone.{k}': v.clone().normal_() if v.is_floating_point() else v
             for k, v in source.state_dict().items()}
    state['backbone.norm.weight'] = torch.ones(128)
    state['backbone.norm.bias'] = torch.zeros(128)
    state['backbone.norm3.weight'] = torch.ones(128)  # mmaction2-style output norm
    state['cls_head.fc_cls.weight'] = torch.zeros(400, 128)
    ckpt = tmp_path / 'swin_k400.pth'
    torch.save(dict(meta=dict(epoch=30), state_dict=state), ckpt)

    backbone = build_tiny_swin(init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)))
    backbone.init_weights()
    kernel = state['backbone.patch_embed.proj.weight']
    assert kernel.shape[2] == 2 and backbone.patch_embed.proj.weight.shape[2] == 1
    torch.testing.assert_close(backbone.patch_embed.proj.weight, kernel.sum(2, keepdim=True))
    torch.testing.assert_close(backbone.layers[1].blocks[1].attn.qkv.weight,
                               state['backbone.layers.1.blocks.1.attn.qkv.weight'])
    torch.testing.assert_close(backbone.layers[2].downsample.reduction.weight,
                               state['backbone.layers.2.downsample.reduction.weight'])

    with pytest.raises(FileNotFoundError, match='not found'):
        build_tiny_swin(init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'nope.pth'))).init_weights()
    with pytest.raises(ValueError, match='no key starts with prefix'):
        build_tiny_swin().load_kinetics_checkpoint(str(ckpt), prefix='model.')
