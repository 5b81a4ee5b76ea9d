"""Every config of configs/soc loads, builds its model and datasets on generated data and runs one
training epoch of one iteration (with validation when it has one) or one test pass, through
mmengine's Runner exactly as tools/train.py / tools/test.py do.

Only sizes are shrunk (backbone width/depth, d_model 128, FFN 256, 4 frames, 32-pixel short side,
<= 2 clips per batch, the first samples of each training set); paths point to generated data, a
tiny RoBERTa and fake pretrained checkpoints written here.
"""
import copy
import glob
import json
import os
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from conftest import REPO_ROOT, TEXT_ENCODER_DIR
import soc_mm  # noqa: F401  (registries, compat shims)
from soc_mm.datasets import synthetic
from soc_mm.registry import DATASETS, MODELS

REPO = REPO_ROOT
TEXT_ENCODER = TEXT_ENCODER_DIR
CONFIGS = sorted(p for p in glob.glob(osp.join(REPO, 'configs', 'soc', '*.py'))
                 if not osp.basename(p).startswith('soc_tiny_synthetic'))  # owned and tested by the demos
T = 4                      # frames per clip
SHORT, LONG = 32, 64       # resize: short side, max long side
C = 128                    # d_model
TINY_SWIN = dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 8])
DATA_ROOTS = {  # config data root -> generator key
    'data/refer_youtube_vos/': 'ytvos', 'data/a2d_sentences/': 'a2d', 'data/jhmdb_sentences/': 'jhmdb',
    'data/ref_davis/': 'davis', 'data/coco/': 'coco', 'data/mevis/': 'mevis'}


SUBMISSION_METRICS = ('RefYTVOSSubmissionMetric', 'MeViSSubmissionMetric')  # write a zip, report no number


def config_id(path):
    return osp.splitext(osp.basename(path))[0]


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope='module')
def env(tmp_path_factory):
    """Generated datasets (every format) and a fake Kinetics checkpoint of the tiny Video-Swin."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp('cfg_data')
    roots = {k: str(root / k) + '/' for k in ('ytvos', 'a2d', 'jhmdb', 'davis', 'coco', 'mevis')}
    synthetic.generate_ref_youtube_vos(roots['ytvos'], num_train=1, num_valid=1, num_test=1, num_frames=5,
                                       size=(32, 40), seed=0)
    synthetic.generate_a2d_sentences(roots['a2d'], num_train=1, num_test=1, num_frames=6, size=(32, 40),
                                     annotated_frames=1, seed=0)
    synthetic.generate_jhmdb_sentences(roots['jhmdb'], num_videos=1, num_frames=6, size=(32, 40), seed=0)
    synthetic.generate_ref_davis(roots['davis'], num_valid=1, num_frames=4, size=(32, 40), num_objects=(2, ),
                                 seed=0)
    synthetic.generate_refcoco(roots['coco'], num_images=dict(train=2, val=1), size=(32, 40),
                               datasets=('refcoco', 'refcoco+', 'refcocog'), seed=0)
    # multi-object and no-target expressions; valid_u has masks (MeViSMetric), valid none (submission)
    synthetic.generate_mevis(roots['mevis'], num_train=1, num_valid_u=1, num_valid=1, num_frames=5, size=(32, 40),
                             seed=0)
    # a Video-Swin Kinetics-style checkpoint (``backbone.`` prefix, temporal patch kernel 2)
    swin = MODELS.build(dict(type='VideoSwinTransformer', arch=TINY_SWIN))
    state = {f'backbone.{k}': v.clone() for k, v in swin.state_dict().items()}
    state['backbone.patch_embed.proj.weight'] = state['backbone.patch_embed.proj.weight'].repeat(1, 1, 2, 1, 1) / 2
    state['cls_head.fc_cls.weight'] = torch.zeros(400, 8 * TINY_SWIN['embed_dims'])
    swin_ckpt = str(root / 'swin_kinetics.pth')
    torch.save(dict(state_dict=state), swin_ckpt)
    return dict(root=root, roots=roots, swin_ckpt=swin_ckpt, swin_state=state, soc_ckpts={})


def soc_checkpoint(env, cfg) -> tuple:
    """(path, state dict) of a checkpoint of the (shrunk) model of ``cfg`` (for ``load_from`` / testing),
    cached by its number of classes; one RoBERTa weight is shifted by +1 to see that it was loaded."""
    nc = cfg.model.bbox_head.num_classes
    if nc not in env['soc_ckpts']:
        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.backbone.init_cfg = None
        with DefaultScope.overwrite_default_scope('soc_mm'):
            model = MODELS.build(model_cfg)
        state = model.state_dict()
        state['text_encoder.model.embeddings.word_embeddings.weight'] += 1.0
        path = str(env['root'] / f'soc_nc{nc}.pth')
        torch.save(dict(state_dict=state, meta=dict()), path)
        env['soc_ckpts'][nc] = (path, state)
    return env['soc_ckpts'][nc]


# ------------------------------------------------------------------------------------------ shrinking
def walk(node, fn):
    """Apply ``fn`` to every dict of a config tree (depth first)."""
    if isinstance(node, dict):
        fn(node)
        for v in node.values():
            walk(v, fn)
    elif isinstance(node, (list, tuple)):
        for v in node:
            walk(v, fn)


def rebase(node, roots):
    """Point every path under a real data root to the generated copy."""
    if isinstance(node, dict):
        for k, v in node.items():
            node[k] = rebase(v, roots)
        return node
    if isinstance(node, list):
        return [rebase(v, roots) for v in node]
    if isinstance(node, str):
        for real, key in DATA_ROOTS.items():
            if node.startswith(real):
                return roots[key] + node[len(real):]
    return node


def shrink_model(model, env):
    model.backbone.arch = TINY_SWIN
    model.backbone.init_cfg.checkpoint = env['swin_ckpt']
    model.neck.in_channels = [TINY_SWIN['embed_dims'] * 2**i for i in (1, 2, 3)]
    model.neck.out_channels = C
    model.text_encoder.model_path = TEXT_ENCODER

    def dims(d):
        if d.get('embed_dims') == 256:
            d['embed_dims'] = C
        if d.get('feedforward_channels') == 2048:
            d['feedforward_channels'] = 2 * C
    walk(model, dims)
    model.positional_encoding.num_feats = C // 2
    model.text_positional_encoding.num_feats = C
    model.spatial_decoder.in_channels = C
    model.spatial_decoder.skip_channels = [C, C, TINY_SWIN['embed_dims']]


def shrink_data(cfg):
    def fn(d):
        if d.get('type') == 'RVOSRandomResize':
            d['short_side'], d['max_size'] = [SHORT], LONG
        if 'num_frames' in d:
            d['num_frames'] = T
        if 'batch_size' in d and 'dataset' in d:
            d['batch_size'] = min(d['batch_size'], 2)
            d['num_workers'], d['persistent_workers'] = 0, False
    for key in cfg.keys():
        walk(cfg[key], fn)
    train = cfg.get('train_dataloader')
    if train:  # one batch of each training set: one iteration per epoch (two for the joint concat)
        datasets = train.dataset.datasets if 'datasets' in train.dataset else [train.dataset]
        for ds in datasets:
            ds.indices = train.batch_size if ds.type != 'RefCOCOVideoDataset' else 1


def tiny_config(path, env, tmp_path) -> Config:
    cfg = Config.fromfile(path)
    full = copy.deepcopy(cfg)
    cfg = Config(rebase(cfg.to_dict(), env['roots']))
    shrink_model(cfg.model, env)
    shrink_data(cfg)
    if cfg.get('train_cfg'):
        if cfg.train_cfg.type == 'IterBasedTrainLoop':  # MeViS: one iteration, then validation
            cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = 1
            cfg.default_hooks.checkpoint.interval = 1
        else:
            cfg.train_cfg.max_epochs = 1
        for s in cfg.param_scheduler:
            s.end = 1
    if cfg.test_evaluator.get('type') in SUBMISSION_METRICS:
        cfg.test_evaluator.output_dir = str(tmp_path / 'submission')
    if cfg.get('load_from'):
        cfg.load_from = soc_checkpoint(env, cfg)[0]
    cfg.work_dir = str(tmp_path / 'work')
    cfg.default_hooks.logger.interval = 1
    # paint every val/test batch (what tools/test.py --show-dir switches on)
    cfg.visualizer = dict(type='RVOSVisualizer', name=f'vis_{config_id(path)}_{id(cfg)}',
                          vis_backends=[dict(type='LocalVisBackend')])
    cfg.default_hooks.visualization = dict(type='RVOSVisualizationHook', draw=True, interval=1, test_out_dir='vis')
    return full, cfg


# ------------------------------------------------------------------------------------------ tests
def test_every_setting_has_a_config():
    from soc_mm.models.detectors import SOC
    for path in glob.glob(osp.join(REPO, 'configs', 'soc', '*.py')):  # every config loads: SOC or a variant
        model_type = Config.fromfile(path).model.type
        assert model_type == 'SOC' or issubclass(MODELS.get(model_type), SOC), (path, model_type)
    names = {config_id(p) for p in CONFIGS}
    expected = {
        'soc_swin-t_2xb2-40e_a2d', 'soc_swin-t_refcoco-pre_8xb1-20e_a2d', 'soc_swin-b_refcoco-pre_8xb1-20e_a2d',
        'soc_swin-t_8xb1-30e_refytvos', 'soc_swin-t_refcoco-pre_8xb8-25e_refytvos',
        'soc_swin-b_refcoco-pre_8xb8-25e_refytvos', 'soc_swin-t_refcoco-joint_8xb1-30e_refytvos',
        'soc_swin-b_refcoco-joint_8xb1-30e_refytvos', 'soc_swin-t_8xb8-30e_refcoco', 'soc_swin-b_8xb8-30e_refcoco',
        'soc_swin-t_refcoco-pre_a2d_test-jhmdb', 'soc_swin-b_refcoco-joint_refytvos_test-refdavis17',
        'soc_swin-t_refytvos'}  # the default Ref-YTVOS setting's short name
    assert expected <= names, expected - names


def test_short_name_is_the_default_refytvos_setting():
    short = Config.fromfile(osp.join(REPO, 'configs', 'soc', 'soc_swin-t_refytvos.py'))
    full = Config.fromfile(osp.join(REPO, 'configs', 'soc', 'soc_swin-t_8xb1-30e_refytvos.py'))
    assert short.to_dict() == full.to_dict()


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_losses_and_matching_costs_come_from_the_base_model(path):
    """One place for SOC's loss terms and matching costs: no config restates or changes them."""
    base = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'models', 'soc_swin-t.py')).model
    model = Config.fromfile(path).model
    loss_keys = sorted(k for k in base.bbox_head if k.startswith('loss_'))
    assert loss_keys == ['loss_bbox', 'loss_cls', 'loss_con', 'loss_dice', 'loss_iou', 'loss_mask']
    for key in loss_keys:
        assert model.bbox_head[key] == base.bbox_head[key], key
    assert model.train_cfg.assigner == base.train_cfg.assigner


@pytest.mark.parametrize('path', [p for p in CONFIGS if 'test-' not in config_id(p)], ids=config_id)
def test_schedule_entries_follow_the_config_variables(path):
    """The base schedule computes its entries from its own variables; a config that changes a variable
    must restate the entries computed from it (mmengine evaluates the base file first)."""
    cfg = Config.fromfile(path)
    lr = cfg.optim_wrapper.optimizer.lr
    keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    assert lr == cfg.lr
    assert keys['backbone'].lr_mult * lr == pytest.approx(cfg.backbone_lr)
    assert keys['text_encoder.model'].lr_mult * lr == pytest.approx(cfg.text_encoder_lr)
    if cfg.train_cfg.type == 'IterBasedTrainLoop':  # MeViS (../_base_/schedules/soc_adamw_100k.py)
        assert cfg.max_epochs is None and cfg.lr_drop_epochs is None
        assert cfg.train_cfg.max_iters == cfg.max_iters and cfg.train_cfg.val_interval == cfg.max_iters
        (sched, ) = cfg.param_scheduler
        assert (sched.type, sched.by_epoch, sched.end, sched.milestones, sched.gamma) == \
            ('MultiStepLR', False, cfg.max_iters, cfg.lr_drop_iters, cfg.lr_gamma)
        # checkpoints and log windows count iterations too
        assert cfg.default_hooks.checkpoint.by_epoch is False and cfg.log_processor.by_epoch is False
        return
    assert cfg.train_cfg.max_epochs == cfg.max_epochs
    if cfg.lr_drop_epochs:
        (sched, ) = cfg.param_scheduler
        assert (sched.type, sched.end, sched.milestones, sched.gamma) == \
            ('MultiStepLR', cfg.max_epochs, cfg.lr_drop_epochs, cfg.lr_gamma)
    else:
        assert cfg.param_scheduler == []


def config_diff(base, other, prefix='') -> set:
    """Dotted keys where two config trees differ (lists of dicts compared item by item)."""
    if isinstance(base, dict) and isinstance(other, dict):
        keys = set(base) | set(other)
        return set().union(*(config_diff(base.get(k), other.get(k), f'{prefix}{k}.') for k in keys))
    if isinstance(base, list) and isinstance(other, list) and len(base) == len(other) and \
            any(isinstance(v, dict) for v in base):
        return set().union(*(config_diff(a, b, f'{prefix}{i}.') for i, (a, b) in enumerate(zip(base, other))))
    return set() if base == other else {prefix[:-1]}


# What configs/soc/soc_tiny_synthetic.py (make demo) changes in the base model: sizes, the random-init
# 16-channel Video-Swin, the tiny RoBERTa (trained). Everything else (losses, matching costs, heads,
# pre-processing, test settings) is the base model's.
TINY_MODEL_OVERRIDES = {
    'num_queries', 'backbone.arch', 'backbone.drop_path_rate', 'backbone.init_cfg',
    'text_encoder.model_path', 'text_encoder.embed_dims', 'text_encoder.freeze',
    'neck.in_channels', 'neck.out_channels', 'positional_encoding.num_feats',
    'text_positional_encoding.num_feats', 'fusion.embed_dims',
    'encoder.num_layers', 'encoder.layer_cfg.self_attn_cfg.embed_dims', 'encoder.layer_cfg.ffn_cfg.embed_dims',
    'encoder.layer_cfg.ffn_cfg.feedforward_channels',
    'decoder.num_layers', 'decoder.layer_cfg.self_attn_cfg.embed_dims', 'decoder.layer_cfg.cross_attn_cfg.embed_dims',
    'decoder.layer_cfg.ffn_cfg.embed_dims', 'decoder.layer_cfg.ffn_cfg.feedforward_channels',
    'voc.embed_dims', 'voc.num_queries', 'voc.num_frame_queries', 'voc.num_encoder_layers',
    'voc.num_decoder_layers', 'voc.feedforward_channels',
    'spatial_decoder.in_channels', 'spatial_decoder.skip_channels',
    'bbox_head.embed_dims', 'bbox_head.num_pred_layer'}


def test_tiny_config_is_the_base_model_at_the_official_tiny_sizes():
    """The demo model = the base model with only the listed overrides, and it equals the official tiny SOC
    of the golden fixtures (built from the fixtures' own official configuration, which holds the official
    loss / matching coefficients): an edit of the base model that changes the demo fails here."""
    from soc_mm.official.config import official_model_cfg
    base = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'models', 'soc_swin-t.py')).model.to_dict()
    tiny = Config.fromfile(osp.join(REPO, 'configs', 'soc', 'soc_tiny_synthetic.py')).model.to_dict()
    assert config_diff(base, tiny) == TINY_MODEL_OVERRIDES
    assert tiny['backbone']['init_cfg'] is None and tiny['text_encoder']['freeze'] is False

    fixture = osp.join(REPO, 'tests', 'data', 'soc_reference', 'ytvos_b2_t3_nc1_w0', 'config.json')
    with open(fixture) as f:
        official = json.load(f)['official_config']
    reference_cfg = official_model_cfg(official, TEXT_ENCODER, referred_only=True)
    reference_cfg['data_preprocessor'] = tiny['data_preprocessor']  # not part of the official model
    tiny['text_encoder']['model_path'] = TEXT_ENCODER
    with DefaultScope.overwrite_default_scope('soc_mm'):
        ours, reference = MODELS.build(tiny), MODELS.build(reference_cfg)
    # same modules, sizes, dropouts and norms; the fixtures freeze RoBERTa, the demo trains it
    assert repr(ours) == repr(reference)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in reference.state_dict().items()}
    for name in ('loss_cls', 'loss_mask', 'loss_dice', 'loss_bbox', 'loss_iou', 'loss_con'):
        mine, theirs = getattr(ours.bbox_head, name), getattr(reference.bbox_head, name)
        assert type(mine) is type(theirs), name
        assert {k: v for k, v in vars(mine).items() if not k.startswith('_')} == \
            {k: v for k, v in vars(theirs).items() if not k.startswith('_')}, name

    def match_costs(model):
        return [(type(c).__name__, c.weight) for c in model.bbox_head.assigner.match_costs]
    assert match_costs(ours) == match_costs(reference) == [
        ('VideoFocalClassCost', 2), ('VideoDiceCost', 5), ('VideoBoxL1Cost', 2), ('VideoGIoUCost', 2)]


# SOC README tables: (lr, backbone_lr, text_encoder_lr or None when frozen, epochs, drops, gamma,
# clips per GPU, classes)
TABLE = {
    'soc_swin-t_2xb2-40e_a2d': (5e-5, 5e-6, None, 40, [15], 0.2, 2, 1),
    'soc_swin-t_refcoco-pre_8xb1-20e_a2d': (3e-5, 3e-6, None, 20, None, None, 1, 1),
    'soc_swin-t_8xb1-30e_refytvos': (1e-4, 1e-5, None, 30, [20], 0.1, 1, 65),
    'soc_swin-t_refcoco-pre_8xb8-25e_refytvos': (1e-4, 1e-5, 5e-6, 25, [10], 0.1, 8, 1),
    'soc_swin-t_refcoco-joint_8xb1-30e_refytvos': (1e-4, 1e-5, None, 30, [20], 0.1, 1, 1),
    'soc_swin-t_8xb8-30e_refcoco': (1e-4, 1e-5, 5e-6, 30, [15, 20], 0.1, 8, 1),
}
TABLE['soc_swin-t_refytvos'] = TABLE['soc_swin-t_8xb1-30e_refytvos']
for _name in list(TABLE):
    if 'swin-t' in _name and _name.replace('swin-t', 'swin-b') in {config_id(p) for p in CONFIGS}:
        TABLE[_name.replace('swin-t', 'swin-b')] = TABLE[_name]


@pytest.mark.parametrize('name', sorted(TABLE))
def test_official_hyper_parameters(name):
    lr, backbone_lr, text_lr, epochs, drops, gamma, batch, num_classes = TABLE[name]
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'soc', name + '.py'))
    assert cfg.optim_wrapper.optimizer.type == 'AdamW' and cfg.optim_wrapper.optimizer.weight_decay == 1e-4
    assert cfg.optim_wrapper.clip_grad.max_norm == 0.1
    assert cfg.optim_wrapper.type == 'OptimWrapper'  # AMP off by default, as SOC
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(lr)
    keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    assert keys['backbone'].lr_mult * lr == pytest.approx(backbone_lr)
    assert cfg.model.text_encoder['freeze'] == (text_lr is None)
    if text_lr is not None:
        assert keys['text_encoder.model'].lr_mult * lr == pytest.approx(text_lr)
    assert cfg.train_cfg.max_epochs == epochs and cfg.train_dataloader.batch_size == batch
    if drops is None:
        assert cfg.param_scheduler == []
    else:
        (sched, ) = cfg.param_scheduler
        assert sched.type == 'MultiStepLR' and sched.milestones == drops and sched.gamma == gamma
    assert cfg.model.bbox_head.num_classes == num_classes
    arch = 'base' if 'swin-b' in name else 'tiny'
    width = dict(tiny=96, base=128)[arch]
    assert cfg.model.backbone.arch == arch and cfg.model.backbone.drop_path_rate == 0.2
    assert cfg.model.neck.in_channels == [width * 2, width * 4, width * 8]
    assert cfg.model.spatial_decoder.skip_channels == [256, 256, width]
    expected_ckpt = 'swin_base_patch244_window877_kinetics400_22k' if arch == 'base' else \
        'swin_tiny_patch244_window877_kinetics400_1k'
    assert expected_ckpt in cfg.model.backbone.init_cfg.checkpoint
    if 'refcoco-pre' in name:  # fine-tuned from the matching RefCOCO pretraining
        assert cfg.load_from and name.split('_')[1] in cfg.load_from


# MeViS (SOC publishes no MeViS setting): (iterations, lr drops, config of the load_from weights or None,
# RoBERTa trained) of each training config. Schedules: LMPM's (MeViS paper) from the Kinetics Video-Swin,
# DsHmp's from Ref-YouTube-VOS weights; learning rates, weight decay, clipping and batch: SOC's.
MEVIS = {
    'soc_swin-t_8xb1-100k_mevis': (100000, [40000, 85000], None, False),
    'soc_swin-t_refytvos-pre_8xb1-55k_mevis': (55000, [40000, 50000], 'soc_swin-t_refcoco-pre_8xb8-25e_refytvos',
                                               True),
}
for _name in list(MEVIS):
    MEVIS[_name.replace('swin-t', 'swin-b')] = MEVIS[_name][:2] + (
        MEVIS[_name][2] and MEVIS[_name][2].replace('swin-t', 'swin-b'), MEVIS[_name][3])
MEVIS_TEST = 'soc_swin-t_mevis_test-valid'


@pytest.mark.parametrize('name', sorted(MEVIS))
def test_mevis_hyper_parameters(name):
    iters, drops, pretrained, text_trained = MEVIS[name]
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'soc', name + '.py'))
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', 1e-4, 1e-4)
    assert cfg.optim_wrapper.clip_grad.max_norm == 0.1 and cfg.optim_wrapper.type == 'OptimWrapper'
    keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    assert keys['backbone'].lr_mult * optimizer.lr == pytest.approx(1e-5)
    assert cfg.model.text_encoder['freeze'] == (not text_trained)
    if text_trained:
        assert keys['text_encoder.model'].lr_mult * optimizer.lr == pytest.approx(5e-6)
    assert cfg.train_cfg == dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
    (sched, ) = cfg.param_scheduler
    assert (sched.type, sched.by_epoch, sched.milestones, sched.gamma) == ('MultiStepLR', False, drops, 0.1)
    assert cfg.train_dataloader.batch_size == 1 and cfg.auto_scale_lr.base_batch_size == 8  # 8 GPUs x 1 clip
    train = cfg.train_dataloader.dataset
    assert (train.type, train.split, train.num_frames, train.frame_sampling) == ('MeViSDataset', 'train', 8, 'global')
    assert cfg.train_dataloader.sampler.type == 'InfiniteSampler'
    # every referred object is a target; one class ("is referred")
    assert cfg.model.bbox_head.num_classes == 1 and cfg.model.train_cfg.referred_only is True
    # ReferDINO's MeViS selection: time-averaged sigmoid score above 0.2, else the top-1 query
    assert cfg.model.test_cfg.object_selection == 'threshold' and cfg.model.test_cfg.score_thr == 0.2
    assert cfg.model.test_cfg.allow_no_target is False and cfg.model.test_cfg.get('clip_len') is None
    for loader, evaluator in ((cfg.val_dataloader, cfg.val_evaluator), (cfg.test_dataloader, cfg.test_evaluator)):
        assert loader.dataset.split == 'valid_u' and loader.sampler.round_up is False
        assert evaluator == dict(type='MeViSMetric', meta_file='data/mevis/valid_u/meta_expressions.json',
                                 mask_dict_file='data/mevis/valid_u/mask_dict.json')
    arch = 'base' if 'swin-b' in name else 'tiny'
    assert cfg.model.backbone.arch == arch
    assert cfg.model.neck.in_channels == [w * 2**i for w in [dict(tiny=96, base=128)[arch]] for i in (1, 2, 3)]
    if pretrained is None:
        assert cfg.load_from is None
    else:  # weights of a one-class Ref-YouTube-VOS model of the same backbone
        assert osp.basename(cfg.load_from) == pretrained + '.pth'
        source = Config.fromfile(osp.join(REPO, 'configs', 'soc', pretrained + '.py'))
        assert source.model.bbox_head.num_classes == 1 and source.model.backbone.arch == arch


def test_mevis_configs_exist_and_the_submission_config_tests_only():
    assert set(MEVIS) | {MEVIS_TEST} <= {config_id(p) for p in CONFIGS}
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'soc', MEVIS_TEST + '.py'))
    trained = Config.fromfile(osp.join(REPO, 'configs', 'soc', 'soc_swin-t_8xb1-100k_mevis.py'))
    assert cfg.model == trained.model  # any Swin-T MeViS checkpoint
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper', 'val_dataloader', 'val_evaluator', 'load_from'):
        assert cfg.get(key) is None, key
    assert cfg.test_dataloader.dataset.split == 'valid' and cfg.test_dataloader.sampler.round_up is False
    assert cfg.test_evaluator == dict(type='MeViSSubmissionMetric', output_dir='work_dirs/mevis_submission/',
                                      meta_file='data/mevis/valid/meta_expressions.json')


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_config_runs(path, env, tmp_path):
    full, cfg = tiny_config(path, env, tmp_path)
    # eval samplers never pad with duplicates (video metrics would count them twice)
    for key in ('val_dataloader', 'test_dataloader'):
        if full.get(key):
            assert full[key].sampler.get('round_up') is False, key
    trains = bool(full.get('train_dataloader'))
    if trains:
        runner = Runner.from_cfg(cfg)
        runner.train()
        check_trained(runner, full, cfg, env)
    if not trains or not full.get('val_dataloader'):  # test-only configs and Ref-YTVOS (no val)
        if not trains:
            cfg.load_from = soc_checkpoint(env, cfg)[0]
            runner = Runner.from_cfg(cfg)
        metrics = runner.test()
        painted = glob.glob(osp.join(cfg.work_dir, runner.timestamp, 'vis', '*.jpg'))
        assert len(painted) == len(runner.test_dataloader.dataset), painted
        if cfg.test_evaluator.type in SUBMISSION_METRICS:
            assert osp.isfile(osp.join(cfg.test_evaluator.output_dir, 'submission.zip'))
        else:
            assert metrics and all(isinstance(v, float) for v in metrics.values()), metrics


def check_trained(runner, full, cfg, env):
    # per-part learning rates (the RoBERTa weights appear only when trained)
    lrs = {}
    for group in runner.optim_wrapper.optimizer.param_groups:
        for p in group['params']:
            lrs[id(p)] = group['lr']
    model = runner.model
    lr = full.optim_wrapper.optimizer.lr
    assert lrs[id(model.backbone.patch_embed.proj.weight)] == pytest.approx(full.backbone_lr)
    assert lrs[id(model.text_encoder.proj.fc.weight)] == pytest.approx(lr)
    assert lrs[id(model.bbox_head.cls_branches[0].weight)] == pytest.approx(lr)
    roberta = model.text_encoder.model.embeddings.word_embeddings.weight
    assert roberta.requires_grad == (not full.model.text_encoder['freeze'])
    if roberta.requires_grad:
        assert lrs[id(roberta)] == pytest.approx(full.text_encoder_lr)
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert torch.isfinite(torch.tensor(loss)) and loss > 0
    by_iter = cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert osp.isfile(osp.join(cfg.work_dir, 'iter_1.pth' if by_iter else 'epoch_1.pth'))
    if full.default_hooks.checkpoint.get('save_best'):
        assert glob.glob(osp.join(cfg.work_dir, 'best_*epoch_1.pth'))
    if cfg.get('load_from'):  # the fine-tuning starts from the given weights
        _, state = soc_checkpoint(env, cfg)
        torch.testing.assert_close(roberta.detach(), state['text_encoder.model.embeddings.word_embeddings.weight'],
                                   atol=1e-3, rtol=0)
    else:  # the Video-Swin starts from the Kinetics weights (trained one step)
        torch.testing.assert_close(model.backbone.layers[0].blocks[0].mlp.fc1.weight.detach(),
                                   env['swin_state']['backbone.layers.0.blocks.0.mlp.fc1.weight'],
                                   atol=1e-3, rtol=0)
    if full.get('val_dataloader'):
        metrics = {k for k in runner.message_hub.log_scalars if k.startswith('val/')}
        assert metrics, 'validation ran but reported no metric'


@pytest.mark.parametrize('name', ['soc_swin-t_refcoco-pre_8xb8-25e_refytvos', 'soc_swin-b_8xb8-30e_refcoco'])
def test_full_size_model_runs(name):
    """The unshrunk models (d_model 256, Swin-T / Swin-B) build and train one step on a small clip
    (only the RoBERTa folder is replaced by the tiny one; its projection maps to d_model)."""
    torch.set_num_threads(1)
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'soc', name + '.py'))
    cfg.model.text_encoder.model_path = TEXT_ENCODER
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('soc_mm'):
        model = MODELS.build(cfg.model)
    assert model.embed_dims == 256 and model.num_queries == 20 and model.decoder.num_layers == 3
    assert model.backbone.embed_dims == (128 if 'swin-b' in name else 96)
    from mmengine.structures import InstanceData

    from soc_mm.structures import RVOSDataSample
    masks = torch.zeros(1, 2, 64, 64, dtype=torch.bool)
    masks[..., 10:40, 20:50] = True
    sample = RVOSDataSample(metainfo=dict(expression='the red circle', img_shape=(64, 64), ori_shape=(64, 64),
                                          ref_inst_idx=0, valid_frame_idx=None))
    sample.gt_instances = InstanceData(masks=masks, boxes=torch.tensor([[[0.55, 0.39, 0.47, 0.47]] * 2]),
                                       labels=torch.zeros(1, dtype=torch.long), visible=torch.ones(1, 2).bool())
    data = model.data_preprocessor(dict(inputs=[torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8)],
                                        data_samples=[sample]), True)
    losses = model(**data, mode='loss')
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.patch_embed.proj.weight.grad is not None


def test_resume_matches_uninterrupted_run(env, tmp_path):
    """3 epochs in one go == 1 epoch, interrupted, then ``resume`` to epoch 3 (same weights), with
    ``IterationSeedHook`` re-seeding dropout / augmentation from the iteration number."""
    _, cfg = tiny_config(osp.join(REPO, 'configs', 'soc', 'soc_swin-t_2xb2-40e_a2d.py'), env, tmp_path)
    cfg.train_cfg.max_epochs = 3
    cfg.param_scheduler[0].update(end=3, milestones=[2])
    cfg.custom_hooks = [dict(type='IterationSeedHook')]

    def train(work_dir, **overrides):
        run_cfg = copy.deepcopy(cfg)
        run_cfg.work_dir = str(tmp_path / work_dir)
        run_cfg.merge_from_dict(overrides)
        runner = Runner.from_cfg(run_cfg)
        runner.train()
        return {k: v.detach().clone() for k, v in runner.model.state_dict().items()}

    full = train('full')
    resumed = train('resumed', resume=True, load_from=str(tmp_path / 'full' / 'epoch_1.pth'))
    for key, value in full.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0, msg=key)
    other = train('other_seed', randomness=dict(seed=7))  # the comparison can fail
    assert any(not torch.equal(other[k], v) for k, v in full.items())


def test_two_process_train_and_test_on_cpu(env, tmp_path):
    """tools/dist_train.sh and tools/dist_test.sh with 2 gloo processes on a (shrunk) SOC config with
    validation: DDP over the real model, distributed sampling without padding, metrics gathered."""
    import subprocess
    import sys

    from conftest import subprocess_env
    _, cfg = tiny_config(osp.join(REPO, 'configs', 'soc', 'soc_swin-t_2xb2-40e_a2d.py'), env, tmp_path)
    cfg.train_dataloader.batch_size = 1  # 2 samples: one per process
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg_file = str(tmp_path / 'tiny_a2d.py')
    cfg.dump(cfg_file)
    run_env = subprocess_env()
    run_env['PYTHON'] = sys.executable
    work_dir = str(tmp_path / 'dist')
    summaries = []
    for port, cmd in ((29531, ['tools/dist_train.sh', cfg_file, '2', '--work-dir', work_dir]),
                      (29532, ['tools/dist_test.sh', cfg_file, osp.join(work_dir, 'epoch_1.pth'), '2',
                               '--work-dir', work_dir])):
        run_env['PORT'] = str(port)
        proc = subprocess.run(['bash', *cmd], cwd=REPO, env=run_env, capture_output=True, text=True, timeout=600)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-4000:]
        summaries += re.findall(r'A2DSentencesMetric: (\d+) frames, (.*)', out)
    with DefaultScope.overwrite_default_scope('soc_mm'):
        num_samples = len(DATASETS.build(cfg.test_dataloader.dataset))
    # validation after epoch 1 and the test of epoch_1.pth: every sample once (no padding), same numbers
    assert len(summaries) == 2 and summaries[0] == summaries[1], summaries
    assert int(summaries[0][0]) == num_samples
    # the test run's metrics json (written by rank 0 alone) is readable
    test_runs = sorted(d for d in os.listdir(work_dir) if re.fullmatch(r'\d{8}_\d{6}', d))
    with open(osp.join(work_dir, test_runs[-1], f'{test_runs[-1]}.json')) as f:
        assert 'a2d/mAP' in json.load(f)


def test_mevis_two_process_test_equals_one_process(env, tmp_path):
    """``tools/dist_test.sh`` with 2 gloo processes on MeViS valid_u gives the J&F of one process (every
    expression predicted once, threshold selection of several objects)."""
    import subprocess
    import sys

    from conftest import subprocess_env
    root = str(tmp_path / 'mevis') + '/'
    synthetic.generate_mevis(root, num_train=1, num_valid_u=3, num_valid=1, num_frames=4, size=(32, 40), seed=3)
    _, cfg = tiny_config(osp.join(REPO, 'configs', 'soc', 'soc_swin-t_8xb1-100k_mevis.py'), env, tmp_path)
    cfg.test_dataloader.dataset.data_root = root
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    cfg.test_evaluator.meta_file = root + 'valid_u/meta_expressions.json'
    cfg.test_evaluator.mask_dict_file = root + 'valid_u/mask_dict.json'
    cfg.default_hooks.visualization.draw = False
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.model.test_cfg.update(object_selection='threshold', score_thr=0.2)
    cfg_file = str(tmp_path / 'tiny_mevis.py')
    cfg.dump(cfg_file)
    checkpoint = soc_checkpoint(env, cfg)[0]
    run_env = subprocess_env()
    run_env['PYTHON'] = sys.executable
    results = []
    for port, cmd in ((None, [sys.executable, 'tools/test.py', cfg_file, checkpoint]),
                      (29541, ['bash', 'tools/dist_test.sh', cfg_file, checkpoint, '2'])):
        work_dir = str(tmp_path / f'test_{len(results)}')
        if port:
            run_env['PORT'] = str(port)
        proc = subprocess.run(cmd + ['--work-dir', work_dir], cwd=REPO, env=run_env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        run = sorted(d for d in os.listdir(work_dir) if re.fullmatch(r'\d{8}_\d{6}', d))[-1]
        with open(osp.join(work_dir, run, f'{run}.json')) as f:
            results.append(json.load(f))
    one, two = results
    assert {k for k in one if k.startswith('mevis/')} >= {'mevis/J', 'mevis/F', 'mevis/J&F'}
    for key in ('mevis/J', 'mevis/F', 'mevis/J&F'):
        assert two[key] == pytest.approx(one[key], abs=1e-9), (key, one, two)
