"""SOC built from configs/_base_/models/soc_swin-t.py: one loss step and one predict step on CPU."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from conftest import REPO_ROOT


def _make_tiny_text_encoder(out_dir):
    from soc_mm.testing.tiny_text_encoder import make_tiny_text_encoder
    return make_tiny_text_encoder(
        ['the red circle on the left', 'a blue square moving right', 'the green triangle'], str(out_dir))


@pytest.fixture(scope='module')
def tiny_cfg(tmp_path_factory):
    import soc_mm  # noqa: F401
    text_dir = _make_tiny_text_encoder(tmp_path_factory.mktemp('text_encoder'))
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', '_base_', 'models', 'soc_swin-t.py'))
    # size-only overrides: a small backbone and transformer, same architecture
    cfg.merge_from_dict({
        'model.text_encoder.model_path': text_dir,
        'model.backbone.arch': dict(_delete_=True, embed_dims=16, depths=[1, 1, 1, 1],
                                    num_heads=[1, 2, 4, 8]),
        'model.backbone.init_cfg': None,
        'model.neck.in_channels': [32, 64, 128],
        'model.spatial_decoder.skip_channels': [256, 256, 16],
        'model.num_queries': 3, 'model.voc.num_queries': 3, 'model.voc.num_frame_queries': 3,
    })
    init_default_scope('soc_mm')
    return cfg


def _batch(num_frames=2, size=(64, 80)):
    from soc_mm.structures import RVOSDataSample
    h, w = size
    clip = torch.randint(0, 255, (num_frames, 3, h, w), dtype=torch.uint8)
    masks = torch.zeros(1, num_frames, h, w, dtype=torch.bool)
    masks[0, :, 10:30, 20:50] = True
    sample = RVOSDataSample(metainfo=dict(
        expression='the red circle on the left', img_shape=(h, w), ori_shape=(2 * h, 2 * w),
        ref_inst_idx=0, video_id='v0', exp_id='0', frame_ids=[f'{i:05d}' for i in range(num_frames)]))
    boxes = torch.tensor([35 / w, 20 / h, 30 / w, 20 / h]).expand(1, num_frames, 4).clone()
    sample.gt_instances = InstanceData(masks=masks, boxes=boxes, labels=torch.zeros(1, dtype=torch.long),
                                       visible=torch.ones(1, num_frames, dtype=torch.bool))
    return dict(inputs=[clip], data_samples=[sample])


def test_loss_step_reaches_every_trainable_parameter_and_not_the_frozen_text_encoder(tiny_cfg):
    from soc_mm.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(tiny_cfg.model)
    model.init_weights()
    model.train()
    data = model.data_preprocessor(_batch(), training=True)
    losses = model(**data, mode='loss')
    assert {'loss_cls', 'loss_bbox', 'loss_iou', 'loss_mask', 'loss_dice', 'loss_con',
            'd0.loss_cls', 'd1.loss_dice'} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    frozen = {n for n, _ in model.text_encoder.model.named_parameters()}
    assert frozen and all(not p.requires_grad for p in model.text_encoder.model.parameters())
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []
    assert all(p.grad is None for p in model.text_encoder.model.parameters())
    # the text projection is trained even with a frozen RoBERTa
    assert model.text_encoder.proj.fc.weight.grad.abs().sum() > 0


def test_unfrozen_text_encoder_is_trained(tiny_cfg):
    from soc_mm.registry import MODELS
    cfg = tiny_cfg.model.copy()
    cfg.text_encoder = dict(cfg.text_encoder, freeze=False)
    model = MODELS.build(cfg).train()
    data = model.data_preprocessor(_batch(), training=True)
    sum(model(**data, mode='loss').values()).backward()
    grads = [p.grad for p in model.text_encoder.model.parameters()]
    assert all(g is not None for g in grads[:5])


def test_predict_step_restores_original_size(tiny_cfg):
    from soc_mm.registry import MODELS
    model = MODELS.build(tiny_cfg.model).eval()
    data = model.data_preprocessor(_batch(num_frames=3), training=False)
    with torch.no_grad():
        (sample,) = model(**data, mode='predict')
    assert sample.pred_masks.shape == (3, 128, 160) and sample.pred_masks.dtype == torch.bool
    assert sample.pred_scores.shape == (3,)
    assert ((sample.pred_scores >= 0) & (sample.pred_scores <= 1)).all()
