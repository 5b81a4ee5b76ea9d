"""Every SOC++ config (configs/soc_plus_plus) holds SOC++'s official values (its configs/*.yaml and
scripts/*.sh, written out below), builds its full-size model, and runs one shrunk training iteration (with
validation when it has one) or one test pass on generated data through mmengine's Runner, as
tools/train.py / tools/test.py do. The shrinking and the generated data are test_configs.py's (SOC's
configs)."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmengine.structures import InstanceData

from conftest import REPO_ROOT, TEXT_ENCODER_DIR
import soc_mm  # noqa: F401  (registries)
from soc_mm.registry import MODELS
from soc_mm.structures import RVOSDataSample
from test_configs import SUBMISSION_METRICS, check_trained, env, rebase, shrink_data, shrink_model  # noqa: F401

CONFIG_DIR = osp.join(REPO_ROOT, 'configs', 'soc_plus_plus')
CONFIGS = sorted(p for p in glob.glob(osp.join(CONFIG_DIR, '*.py')) if not osp.basename(p).startswith('socpp_tiny'))


def config_id(path):
    return osp.splitext(osp.basename(path))[0]


def load(name):
    return Config.fromfile(osp.join(CONFIG_DIR, name + '.py'))


# ------------------------------------------------------------------ SOC++'s official values
# Training settings: configs/{mevis,refer_youtube_vos,a2d_sentences}.yaml (lr, lr_backbone, text_encoder_lr,
# freeze_text_encoder, train/eval sizes) and scripts/train_{mevis,ytb,a2d}.sh (-ng GPUs, -bs clips per GPU,
# -ws frames, --epochs, --lr_drop; the trainer's MultiStepLR gamma: 0.2 for A2D, 0.1 otherwise).
TRAINING = {
    'socpp_swin-t_8xb1-30e_mevis': dict(lr=2e-5, backbone_lr=2e-6, text_encoder_lr=2e-6, freeze_text=True,
                                        gpus=8, batch=1, frames=8, epochs=30, drops=[20], gamma=0.1,
                                        train_size=(360, 640), eval_size=(360, 640)),
    'socpp_swin-t_8xb1-30e_refytvos': dict(lr=1e-4, backbone_lr=1e-5, text_encoder_lr=1e-5, freeze_text=False,
                                           gpus=8, batch=1, frames=8, epochs=30, drops=[20], gamma=0.1,
                                           train_size=(360, 640), eval_size=(360, 640)),
    'socpp_swin-t_8xb2-40e_a2d': dict(lr=1e-4, backbone_lr=5e-6, text_encoder_lr=5e-6, freeze_text=True,
                                      gpus=8, batch=2, frames=8, epochs=40, drops=[20], gamma=0.2,
                                      train_size=(320, 576), eval_size=(320, 576)),
}
# Evaluation-only configs: (the training config whose checkpoint they test, eval size from
# configs/{jhmdb_sentences,davis,mevis}.yaml, clip length of the official inference script)
TESTING = {
    'socpp_swin-t_a2d_test-jhmdb': ('socpp_swin-t_8xb2-40e_a2d', (320, 576), None),
    'socpp_swin-t_refytvos_test-refdavis17': ('socpp_swin-t_8xb1-30e_refytvos', (360, 640), 36),
    'socpp_swin-t_mevis_test-valid': ('socpp_swin-t_8xb1-30e_mevis', (360, 640), None),
    'socpp_swin-t_mevis_test-valid_u': ('socpp_swin-t_8xb1-30e_mevis', (360, 640), None),
}
# Model values shared by every SOC++ yaml (DeformTransformer, VOC, mask head, matcher, loss coefficients)
# and the training scripts (--use_proxymmf, --backbone video-swin-t with the Kinetics-400 1k weights).
MODEL = dict(d_model=256, nheads=8, enc_layers=3, dec_layers=3, dim_feedforward=2048, dropout=0.1, num_queries=20,
             num_feature_levels=4, n_points=4, num_proxy_query=20, voc_window_size=0, voc_num_queries=20,
             voc_num_frame_queries=20, voc_enc_layers=3, voc_dec_layers=3, mask_kernels_dim=8, controller_layers=3,
             dynamic_mask_channels=8, num_classes=1, set_cost_cls=2, set_cost_dice=5, set_costs_box=2,
             set_costs_giou=2, class_loss_coef=2, sigmoid_focal_loss_coef=2, dice_loss_coef=5, box_loss_coef=2,
             giou_coef=2, con_loss_coef=1)


def test_every_setting_has_a_config():
    assert {config_id(p) for p in CONFIGS} == set(TRAINING) | set(TESTING)
    assert osp.isfile(osp.join(CONFIG_DIR, 'socpp_tiny_synthetic.py'))
    assert osp.isfile(osp.join(CONFIG_DIR, 'README.md'))


def resize(pipeline):
    (step, ) = [t for t in pipeline if t['type'] == 'RVOSRandomResize']
    (short, ) = step['short_side']
    return short, step['max_size']


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_model_holds_the_official_values(path):
    m = Config.fromfile(path).model
    msda = m.encoder.layer_cfg.self_attn_cfg
    assert m.type == 'SOCPlusPlus' and m.num_proxy_queries == MODEL['num_proxy_query']
    assert m.query_fusion == dict(num_heads=8, dropout=0.1)
    assert m.num_queries == MODEL['num_queries'] and m.num_feature_levels == MODEL['num_feature_levels']
    assert m.with_box_refine is True
    assert m.encoder.num_layers == MODEL['enc_layers'] and m.decoder.num_layers == MODEL['dec_layers']
    for attn in (msda, m.decoder.layer_cfg.cross_attn_cfg):
        assert (attn.embed_dims, attn.num_heads, attn.num_levels, attn.num_points, attn.dropout) == (
            MODEL['d_model'], MODEL['nheads'], MODEL['num_feature_levels'], MODEL['n_points'], MODEL['dropout'])
    assert m.decoder.layer_cfg.self_attn_cfg.num_heads == MODEL['nheads']
    for ffn in (m.encoder.layer_cfg.ffn_cfg, m.decoder.layer_cfg.ffn_cfg):
        assert (ffn.feedforward_channels, ffn.ffn_drop) == (MODEL['dim_feedforward'], MODEL['dropout'])
    voc = m.voc
    assert voc.type == 'FrameScoredVOC' and voc.window_size == MODEL['voc_window_size']
    assert (voc.embed_dims, voc.num_heads, voc.num_queries, voc.num_frame_queries, voc.num_encoder_layers,
            voc.num_decoder_layers, voc.feedforward_channels) == (
        MODEL['d_model'], MODEL['nheads'], MODEL['voc_num_queries'], MODEL['voc_num_frame_queries'],
        MODEL['voc_enc_layers'], MODEL['voc_dec_layers'], MODEL['dim_feedforward'])
    head = m.bbox_head
    assert m.spatial_decoder.out_channels == MODEL['mask_kernels_dim'] == head.mask_head.in_channels
    assert (head.mask_head.num_layers, head.mask_head.channels, head.mask_head.rel_coord) == (
        MODEL['controller_layers'], MODEL['dynamic_mask_channels'], True)
    assert head.num_classes == MODEL['num_classes'] and head.num_pred_layer == MODEL['dec_layers']  # aux_loss
    assert [head[k].loss_weight for k in ('loss_cls', 'loss_mask', 'loss_dice', 'loss_bbox', 'loss_iou',
                                          'loss_con')] == [
        MODEL['class_loss_coef'], MODEL['sigmoid_focal_loss_coef'], MODEL['dice_loss_coef'], MODEL['box_loss_coef'],
        MODEL['giou_coef'], MODEL['con_loss_coef']]
    assert [(c.type, c.weight) for c in m.train_cfg.assigner.match_costs] == [
        ('VideoFocalClassCost', MODEL['set_cost_cls']), ('VideoDiceCost', MODEL['set_cost_dice']),
        ('VideoBoxL1Cost', MODEL['set_costs_box']), ('VideoGIoUCost', MODEL['set_costs_giou'])]
    assert m.test_cfg.output_layer == 'last'  # SOC++ evaluates the last decoder layer
    assert m.backbone.arch == 'tiny' and m.backbone.drop_path_rate == 0.2
    assert 'swin_tiny_patch244_window877_kinetics400_1k' in m.backbone.init_cfg.checkpoint


@pytest.mark.parametrize('name', sorted(TRAINING))
def test_training_holds_the_official_values(name):
    v = TRAINING[name]
    cfg = load(name)
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.weight_decay) == ('AdamW', 1e-4)
    assert cfg.optim_wrapper.clip_grad.max_norm == 0.1 and cfg.optim_wrapper.type == 'OptimWrapper'  # no AMP
    assert cfg.randomness.seed == 42
    keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    assert optimizer.lr == pytest.approx(v['lr']) and cfg.lr == pytest.approx(v['lr'])
    assert keys['backbone'].lr_mult * optimizer.lr == pytest.approx(v['backbone_lr']) == cfg.backbone_lr
    assert keys['text_encoder.model'].lr_mult * optimizer.lr == pytest.approx(v['text_encoder_lr'])
    assert cfg.text_encoder_lr == pytest.approx(v['text_encoder_lr'])
    assert cfg.model.text_encoder['freeze'] == v['freeze_text']
    assert cfg.train_cfg == dict(type='EpochBasedTrainLoop', max_epochs=v['epochs'], val_interval=1)
    assert cfg.max_epochs == v['epochs'] and cfg.lr_drop_epochs == v['drops'] and cfg.lr_gamma == v['gamma']
    (sched, ) = cfg.param_scheduler
    assert (sched.type, sched.by_epoch, sched.end, sched.milestones, sched.gamma) == (
        'MultiStepLR', True, v['epochs'], v['drops'], v['gamma'])
    loader = cfg.train_dataloader
    assert loader.batch_size == v['batch'] and cfg.auto_scale_lr.base_batch_size == v['gpus'] * v['batch']
    assert loader.dataset.num_frames == v['frames']
    assert resize(loader.dataset.pipeline) == v['train_size']
    flip = [t for t in loader.dataset.pipeline if t['type'] == 'RVOSRandomFlip']
    assert [t['prob'] for t in flip] == [0.3085]  # torch.randn(1) > 0.5
    assert not [t for t in loader.dataset.pipeline if t['type'] in ('ClipPhotometricDistortion', 'RVOSRandomCrop')]
    test = cfg.test_dataloader.dataset
    assert resize(test.pipeline) == v['eval_size']
    if name.endswith('a2d'):
        assert cfg.model.train_cfg.referred_only is False and cfg.model.test_cfg.return_all_queries is True
    else:
        assert cfg.model.train_cfg.referred_only is True


def test_mevis_data_and_inference_are_soc_plus_plus():
    cfg = load('socpp_swin-t_8xb1-30e_mevis')
    train = cfg.train_dataloader.dataset
    # consecutive 8-frame windows in which every referred object appears, merged into one target
    assert (train.type, train.split, train.num_frames) == ('MeViSAllReferredWindowsDataset', 'train', 8)
    assert train.get('frame_sampling', 'consecutive') == 'consecutive'
    assert [t['type'] for t in train.pipeline] == ['LoadRVOSFrames', 'LoadRLEMasks', 'RVOSRandomFlip',
                                                   'RVOSRandomResize', 'PackRVOSInputs', 'MergeReferredObjects']
    assert cfg.train_dataloader.sampler == dict(type='DefaultSampler', shuffle=True)  # epochs
    # infer_mevis.py: whole video, top-1 query by the time-averaged score, the last layer
    assert cfg.model.test_cfg == dict(output_layer='last', object_selection='top1', clip_len=None,
                                      return_all_queries=False)
    for loader, evaluator in ((cfg.val_dataloader, cfg.val_evaluator), (cfg.test_dataloader, cfg.test_evaluator)):
        assert loader.dataset.type == 'MeViSDataset' and loader.dataset.split == 'valid_u'
        assert loader.sampler.round_up is False
        assert evaluator == dict(type='MeViSMetric', meta_file='data/mevis/valid_u/meta_expressions.json',
                                 mask_dict_file='data/mevis/valid_u/mask_dict.json')


@pytest.mark.parametrize('name', sorted(TESTING))
def test_evaluation_configs_test_their_training_configs_model(name):
    trained, eval_size, clip_len = TESTING[name]
    cfg, source = load(name), load(trained)
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper', 'val_dataloader', 'val_evaluator', 'load_from'):
        assert cfg.get(key) is None, key
    model, expected = cfg.model.to_dict(), source.model.to_dict()
    model.pop('train_cfg'), expected.pop('train_cfg')  # unused at test time (A2D: referred_only=False)
    if clip_len:
        assert model['test_cfg'].pop('clip_len') == clip_len
    assert model == expected  # the checkpoint of the training config loads
    assert resize(cfg.test_dataloader.dataset.pipeline) == eval_size
    assert cfg.test_dataloader.sampler.round_up is False
    if name.endswith('test-valid'):
        assert cfg.test_dataloader.dataset.split == 'valid'
        assert cfg.test_evaluator == dict(type='MeViSSubmissionMetric', output_dir='work_dirs/mevis_submission/',
                                          meta_file='data/mevis/valid/meta_expressions.json')
    if name.endswith('test-valid_u'):
        assert cfg.test_dataloader.dataset.split == 'valid_u'
        metric, pngs = cfg.test_evaluator
        assert metric == dict(type='MeViSMetric', meta_file='data/mevis/valid_u/meta_expressions.json',
                              mask_dict_file='data/mevis/valid_u/mask_dict.json')
        assert (pngs.type, pngs.keep_pngs, pngs.meta_file) == ('MeViSSubmissionMetric', True, metric.meta_file)


@pytest.mark.parametrize('name', sorted(TRAINING))
def test_schedule_entries_follow_the_config_variables(name):
    cfg = load(name)
    keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    assert cfg.optim_wrapper.optimizer.lr == cfg.lr
    assert keys['backbone'].lr_mult * cfg.lr == pytest.approx(cfg.backbone_lr)
    assert keys['text_encoder.model'].lr_mult * cfg.lr == pytest.approx(cfg.text_encoder_lr)


# ------------------------------------------------------------------ the models build and train
def build_full_size(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.text_encoder.model_path = TEXT_ENCODER_DIR
    model_cfg.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('soc_mm'):
        return MODELS.build(model_cfg)


def test_full_size_models_build_and_the_mevis_model_trains_on_a_merged_target():
    torch.set_num_threads(1)
    from soc_mm.datasets.transforms import MergeReferredObjects
    from soc_mm.models.detectors import SOCPlusPlus
    built = {}
    for path in CONFIGS:
        cfg = Config.fromfile(path)
        key = repr(cfg.model.to_dict())
        if key in built:
            continue
        model = built[key] = build_full_size(cfg)
        assert isinstance(model, SOCPlusPlus) and model.num_proxy_queries == 20
        assert type(model.voc).__name__ == 'FrameScoredVOC'
        assert model.embed_dims == 256 and model.num_queries == 20 and model.decoder.num_layers == 3
        assert model.test_options.output_layer == 'last'
        assert not any(p.requires_grad for p in model.text_encoder.model.pooler.parameters())  # SOC++: frozen
        roberta = model.text_encoder.model.embeddings.word_embeddings.weight
        assert roberta.requires_grad == (not cfg.model.text_encoder['freeze'])
    model = build_full_size(load('socpp_swin-t_8xb1-30e_mevis'))
    masks = torch.zeros(2, 2, 64, 64, dtype=torch.bool)
    masks[0, :, 10:30, 20:40] = True
    masks[1, 1, 40:60, 5:25] = True   # the second referred object appears on the second frame only
    sample = RVOSDataSample(metainfo=dict(expression='the two cars', img_shape=(64, 64), ori_shape=(64, 64),
                                          ref_inst_idx=[0, 1], flip=False, valid_frame_idx=None))
    sample.gt_instances = InstanceData(masks=masks, boxes=torch.zeros(2, 2, 4), labels=torch.zeros(2).long(),
                                       visible=masks.flatten(2).any(-1))
    packed = MergeReferredObjects()(dict(inputs=torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8),
                                         data_samples=sample))
    assert len(packed['data_samples'].gt_instances) == 1
    data = model.data_preprocessor(dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']]), True)
    losses = model(**data, mode='loss')
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.proxy_queries.weight.grad is not None


def shrunk_config(path, env, tmp_path) -> tuple:
    """(full config, config shrunk to the generated data): test_configs.tiny_config's steps, for evaluator
    lists too."""
    full = Config.fromfile(path)
    cfg = Config(rebase(full.to_dict(), env['roots']))
    shrink_model(cfg.model, env)
    shrink_data(cfg)
    if cfg.get('train_cfg'):
        cfg.train_cfg.max_epochs = 1
        for s in cfg.param_scheduler:
            s.end = 1
    evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
    for k, evaluator in enumerate(evaluators):
        if evaluator.type in SUBMISSION_METRICS:
            evaluator.output_dir = str(tmp_path / f'submission_{k}')
    cfg.work_dir = str(tmp_path / 'work')
    cfg.default_hooks.logger.interval = 1
    return full, cfg


def socpp_checkpoint(env, cfg) -> str:
    """A checkpoint of the shrunk SOC++ model of ``cfg`` (every SOC++ config has the same shrunk model)."""
    if 'socpp' not in env['soc_ckpts']:
        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.backbone.init_cfg = None
        with DefaultScope.overwrite_default_scope('soc_mm'):
            model = MODELS.build(model_cfg)
        path = str(env['root'] / 'socpp.pth')
        torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
        env['soc_ckpts']['socpp'] = path
    return env['soc_ckpts']['socpp']


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_config_runs(path, env, tmp_path):
    full, cfg = shrunk_config(path, env, tmp_path)
    for key in ('val_dataloader', 'test_dataloader'):
        if full.get(key):
            assert full[key].sampler.get('round_up') is False, key
    if full.get('train_dataloader'):
        runner = Runner.from_cfg(cfg)
        runner.train()
        check_trained(runner, full, cfg, env)
        if full.get('val_dataloader'):
            return
    else:
        cfg.load_from = socpp_checkpoint(env, cfg)
        runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
    for evaluator in evaluators:
        if evaluator.type in SUBMISSION_METRICS:
            assert osp.isfile(osp.join(evaluator.output_dir, 'submission.zip'))
    if any(e.type not in SUBMISSION_METRICS for e in evaluators):
        assert metrics and all(isinstance(v, float) for v in metrics.values()), metrics
