"""Official SOC configuration -> our model config: every computational setting carried, the rest refused."""
import ast
import copy
import glob
import json
import os.path as osp

import pytest
import yaml
from mmengine.registry import DefaultScope
from torch import nn

import soc_mm  # noqa: F401  (registries)
from conftest import FIXTURE_ROOT, REPO_ROOT
from soc_mm.official.config import (NOT_AFFECTING_COMPUTATION, OfficialConfigError, load_official_config,
                                    official_model_cfg)
from soc_mm.registry import MODELS

TEXT_ENCODER = osp.join(FIXTURE_ROOT, 'common', 'text_encoder')
MAIN = 'ytvos_b2_t3_nc1_w0'


def fixture_official(variant: str = MAIN) -> dict:
    with open(osp.join(FIXTURE_ROOT, variant, 'config.json')) as f:
        return json.load(f)['official_config']


def build(cfg: dict):
    with DefaultScope.overwrite_default_scope('soc_mm'):
        return MODELS.build(cfg)


def test_matcher_costs_and_loss_coefficients_reach_the_built_model():
    """Values different from SOC's defaults (cls 2, dice 5, box 2, giou 2, con 0; coefs 2/2/5/2/2/1)."""
    official = fixture_official()
    official.update(set_cost_con=0.5, set_cost_cls=3, set_cost_dice=4, set_costs_box=1.5, set_costs_giou=0.25,
                    class_loss_coef=3, sigmoid_focal_loss_coef=7, dice_loss_coef=4, box_loss_coef=1,
                    giou_coef=6, con_loss_coef=0.5)
    model = build(official_model_cfg(official, TEXT_ENCODER))
    head = model.bbox_head
    costs = [(type(c).__name__, c.weight) for c in head.assigner.match_costs]
    assert costs == [('QueryTextCost', 0.5), ('VideoFocalClassCost', 3.0), ('VideoDiceCost', 4.0),
                     ('VideoBoxL1Cost', 1.5), ('VideoGIoUCost', 0.25)]
    weights = {name: getattr(head, name).loss_weight
               for name in ('loss_cls', 'loss_mask', 'loss_dice', 'loss_bbox', 'loss_iou', 'loss_con')}
    assert weights == dict(loss_cls=3.0, loss_mask=7.0, loss_dice=4.0, loss_bbox=1.0, loss_iou=6.0, loss_con=0.5)


def test_architecture_settings_reach_the_built_model():
    official = fixture_official('ytvos_b2_t3_nc65_w0')
    official['DeformTransformer'] = dict(official['DeformTransformer'], num_queries=3, dec_layers=3, enc_layers=1,
                                         dropout=0.2, enc_n_points=2)
    official['VOC'] = dict(official['VOC'], num_queries=3, num_frame_queries=3, window_size=2, enc_layers=1)
    official.update(dynamic_mask_channels=4, controller_layers=2, dataset_name='a2d_sentences')
    cfg = official_model_cfg(official, TEXT_ENCODER)
    assert cfg['train_cfg']['referred_only'] is False and cfg['test_cfg']['return_all_queries'] is True
    model = build(cfg)
    assert model.query_embedding.weight.shape == (3, 128) and model.voc.query_pos.weight.shape == (3, 128)
    assert len(model.decoder.layers) == 3 and len(model.encoder.layers) == 1 and model.voc.window_size == 2
    assert model.bbox_head.cls_branches[0].out_features == 65 and len(model.bbox_head.cls_branches) == 3
    assert model.encoder.layers[0].self_attn.num_points == 2
    # official DeformTransformer.dropout: attention, residual and FFN dropouts of the encoder/decoder
    for module in (model.encoder, model.decoder):
        assert {m.p for m in module.modules() if isinstance(m, nn.Dropout)} - {0.0} == {0.2}
    assert model.decoder.layers[0].self_attn.attn.dropout == 0.2
    # dynamic mask head: 2 layers of 4 channels, rel coords: (8 + 2) * 4 + 4 + 4 * 1 + 1 = 49 parameters
    assert model.bbox_head.mask_head.num_gen_params == 49


def test_zero_cost_is_not_computed_like_the_official_matcher():
    cfg = official_model_cfg(fixture_official(), TEXT_ENCODER)  # set_cost_con 0
    assert [c['type'] for c in cfg['train_cfg']['assigner']['match_costs']] == [
        'VideoFocalClassCost', 'VideoDiceCost', 'VideoBoxL1Cost', 'VideoGIoUCost']


@pytest.mark.parametrize('variant', sorted(osp.basename(osp.dirname(p))
                                           for p in glob.glob(osp.join(FIXTURE_ROOT, '*', 'config.json'))))
def test_every_fixture_configuration_is_translated(variant):
    cfg = official_model_cfg(fixture_official(variant), TEXT_ENCODER)
    assert cfg['bbox_head']['num_classes'] == fixture_official(variant)['num_classes']
    assert cfg['voc']['window_size'] == fixture_official(variant)['VOC']['window_size']


def test_unknown_keys_are_named():
    official = fixture_official()
    official['set_cost_mask'] = 3
    official['VOC'] = dict(official['VOC'], pre_norm=True)
    with pytest.raises(OfficialConfigError) as err:
        official_model_cfg(official, TEXT_ENCODER)
    assert "unknown key(s) ['set_cost_mask', 'VOC.pre_norm']" in str(err.value)


def test_missing_keys_are_named():
    official = fixture_official()
    del official['giou_coef']
    del official['DeformTransformer']['enc_n_points']
    with pytest.raises(OfficialConfigError) as err:
        official_model_cfg(official, TEXT_ENCODER)
    assert "missing key(s) ['giou_coef', 'DeformTransformer.enc_n_points']" in str(err.value)


@pytest.mark.parametrize('change, message', [
    (dict(aux_loss=False), 'aux_loss=False is not supported'),
    (dict(vl_loss=False), 'vl_loss=False is not supported'),
    (dict(with_box_refine=False), 'with_box_refine=False is not supported'),
    (dict(backbone='resnet50'), "backbone='resnet50' is not supported"),
    (dict(dataset_name='kinetics'), "unknown dataset_name 'kinetics'"),
    (dict(set_cost_dice='5'), '"set_cost_dice" must be a number >= 0.0, got \'5\''),
    (dict(DeformTransformer=dict(two_stage=True)), 'DeformTransformer.two_stage=True is not supported'),
    (dict(VOC=dict(num_frame_queries=4)), 'VOC.num_frame_queries=4 is not supported by soc_mm: must equal '
                                          'DeformTransformer.num_queries (5)'),
])
def test_settings_our_model_cannot_reproduce_are_refused(change, message):
    official = fixture_official()
    for key, value in change.items():
        official[key] = dict(official[key], **value) if isinstance(value, dict) else value
    with pytest.raises(OfficialConfigError) as err:
        official_model_cfg(official, TEXT_ENCODER)
    assert message in str(err.value)


def test_referred_only_must_agree_with_the_dataset():
    with pytest.raises(OfficialConfigError, match="referred_only=False contradicts dataset_name 'ref_youtube_vos'"):
        official_model_cfg(fixture_official(), TEXT_ENCODER, referred_only=False)


def test_official_yaml_with_command_line_arguments(tmp_path):
    """An official configs/*.yaml ({key: {desc, value}}) + --backbone: the named Video-Swin is used."""
    official = fixture_official()
    official.pop('backbone_swin_config')
    backbone = official.pop('backbone')
    path = tmp_path / 'refer_youtube_vos.yaml'
    path.write_text(yaml.safe_dump({k: dict(desc='...', value=v) for k, v in official.items()}))
    loaded = load_official_config(str(path), backbone='video-swin-b')
    assert loaded == dict(official, backbone='video-swin-b') and backbone == 'video-swin-t'
    cfg = official_model_cfg(loaded, TEXT_ENCODER)
    assert cfg['backbone']['arch'] == dict(embed_dims=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32])
    assert cfg['backbone']['drop_path_rate'] == 0.2 and cfg['neck']['in_channels'] == [256, 512, 1024]
    assert cfg['spatial_decoder']['skip_channels'] == [128, 128, 128]
    bad = tmp_path / 'bad.yaml'
    bad.write_text('lr: [1, 2\n')
    with pytest.raises(OfficialConfigError, match='bad.yaml: not a valid yaml file'):
        load_official_config(str(bad))


def test_known_keys_are_documented_with_a_reason():
    assert {'lr', 'eos_coef', 'backbone_pretrained_path', 'wandb_mode', 'window_size'} <= set(NOT_AFFECTING_COMPUTATION)
    assert all(isinstance(r, str) and r for r in NOT_AFFECTING_COMPUTATION.values())
    official = copy.deepcopy(fixture_official())
    official.update(lr=1.0, eos_coef=0.5, wandb_mode='online', output_dir='/x', window_size=12)
    assert official_model_cfg(official, TEXT_ENCODER) == official_model_cfg(fixture_official(), TEXT_ENCODER)


def _imports_official(path: str) -> bool:
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    package = osp.relpath(osp.dirname(path), REPO_ROOT).replace(osp.sep, '.')
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            if any(a.name == 'soc_mm.official' or a.name.startswith('soc_mm.official.') for a in node.names):
                return True
        elif isinstance(node, ast.ImportFrom):
            base = package.split('.')[:len(package.split('.')) - node.level + 1] if node.level else []
            module = '.'.join(base + ([node.module] if node.module else []))
            names = [module] + [f'{module}.{a.name}' for a in node.names]
            if any(n == 'soc_mm.official' or n.startswith('soc_mm.official.') for n in names):
                return True
    return False


def test_official_package_sits_above_the_library():
    """Nothing in soc_mm outside soc_mm/official imports it (tools and tests do)."""
    files = [p for p in glob.glob(osp.join(REPO_ROOT, 'soc_mm', '**', '*.py'), recursive=True)
             if not p.startswith(osp.join(REPO_ROOT, 'soc_mm', 'official') + osp.sep)]
    assert len(files) > 30
    assert [osp.relpath(p, REPO_ROOT) for p in files if _imports_official(p)] == []
    assert _imports_official(osp.join(REPO_ROOT, 'tools', 'model_converters', 'soc_official_to_mm.py'))
    assert not glob.glob(osp.join(REPO_ROOT, 'soc_mm', 'utils', 'official_*.py'))
