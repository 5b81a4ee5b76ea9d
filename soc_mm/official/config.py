"""Official SOC configurations (RobertLuo1/NeurIPS2023_SOC) -> our ``SOC`` model config.

The official code reads one flat namespace: the ``value`` of every entry of
``configs/<dataset>.yaml`` merged with the command-line arguments (``--backbone``,
``--window_size`` ...). :func:`official_model_cfg` translates every setting of it that
changes what the model computes (architecture, dropout, text encoder, matcher costs, loss
coefficients, target mode) and refuses, naming them,

* keys it does not know: neither translated nor in :data:`NOT_AFFECTING_COMPUTATION`
  (paths, logging, devices, the optimiser/schedule/data-pipeline settings that our schedule
  and dataset configs hold, and settings the official code does not use);
* values our model cannot reproduce (e.g. ``aux_loss: false``), and missing keys.

So an official configuration is either reproduced or rejected, never silently changed.
"""
import json
import os.path as osp
from typing import Any, Dict, Mapping, Optional

__all__ = ['OfficialConfigError', 'NOT_AFFECTING_COMPUTATION', 'NESTED_NOT_AFFECTING_COMPUTATION',
           'TRANSLATED_KEYS', 'NESTED_TRANSLATED_KEYS', 'SOCPP_KEYS', 'is_socpp_config', 'SWIN_ARCHS', 'DATASET_MODES',
           'official_model_cfg', 'load_official_config']


class OfficialConfigError(ValueError):
    """An official configuration that cannot be translated exactly."""


_TRAINING = ('training run, not the model: our schedule/runtime config '
             '(optim_wrapper, param_scheduler, train_cfg, --amp) holds it')
_DATA = 'data pipeline / sampling, not the model: our dataset configs hold it'
_PATHS = 'file or folder path, logging or bookkeeping'
_DEVICES = 'devices / processes; same computation'

#: top-level official keys known to leave the model's computation unchanged -> why.
NOT_AFFECTING_COMPUTATION: Dict[str, str] = {
    # optimisation and schedule
    **{k: _TRAINING for k in ('lr', 'lr_backbone', 'text_encoder_lr', 'weight_decay', 'clip_max_norm',
                              'epochs', 'lr_drop', 'enable_amp', 'seed', 'batch_size', 'eval_batch_size')},
    # data pipeline
    **{k: _DATA for k in ('window_size', 'resize_and_crop_augmentations', 'horizontal_flip_augmentations',
                          'random_color', 'train_short_size', 'train_max_size', 'eval_short_size',
                          'eval_max_size', 'use_random_sample', 'generate_new_samples_metadata', 'num_workers')},
    # paths, logging, run control
    **{k: _PATHS for k in ('output_dir', 'out_dir', 'checkpoint_path', 'pretrained_weights', 'img_folder',
                           'ann_file', 'davis_path', 'dataset_coco_gt_format_path', 'wandb_mode', 'version',
                           'config_path', 'running_mode', 'visualize', 'video_dir',
                           'calculate_precision_and_iou_metrics')},
    **{k: _DEVICES for k in ('device', 'device_ids', 'num_devices', 'num_gpus', 'gpu_ids', 'cpu',
                             'distributed', 'rank', 'world_size')},
    # weight initialisation only (a converted checkpoint replaces every weight)
    'backbone_pretrained': 'initial weights only (our backbone.init_cfg); a loaded checkpoint replaces them',
    'backbone_pretrained_path': 'initial weights only (our backbone.init_cfg); a loaded checkpoint replaces them',
    # settings that do not change the numbers
    'use_checkpoint': 'gradient checkpointing: memory only, same numbers',
    'train_backbone': 'not read by the official Video-Swin backbone (always trainable there)',
    'eos_coef': ('official SetCriterion multiplies it into loss_con terms whose target is 0 '
                 '(no effect on any loss)'),
}

#: keys inside the official nested dicts known to leave the computation unchanged -> why.
NESTED_NOT_AFFECTING_COMPUTATION: Dict[str, Dict[str, str]] = {
    'VOC': {'num_frames': 'stored but never read by the official VOC (it works with any T)'},
    'DeformTransformer': {},
    'backbone_swin_config': {'use_checkpoint': 'gradient checkpointing: memory only, same numbers'},
}

#: top-level official keys that official_model_cfg translates.
TRANSLATED_KEYS = (
    'backbone', 'backbone_swin_config', 'with_box_refine', 'DeformTransformer', 'VOC', 'freeze_text_encoder',
    'text_encoder_type', 'num_classes', 'mask_kernels_dim', 'controller_layers', 'dynamic_mask_channels',
    'rel_coord', 'aux_loss', 'vl_loss', 'dataset_name', 'set_cost_con', 'set_cost_cls', 'set_cost_dice',
    'set_costs_box', 'set_costs_giou', 'class_loss_coef', 'con_loss_coef', 'sigmoid_focal_loss_coef',
    'dice_loss_coef', 'box_loss_coef', 'giou_coef')
_OPTIONAL_KEYS = ('backbone_swin_config', )
#: SOC++ (yongliu20/MRVS_SOC) keys: a configuration that has them is SOC++'s (both or neither).
SOCPP_KEYS = ('use_proxymmf', 'num_proxy_query')

#: keys of the nested official dicts that official_model_cfg translates.
NESTED_TRANSLATED_KEYS: Dict[str, tuple] = {
    'DeformTransformer': ('enc_layers', 'dec_layers', 'dim_feedforward', 'd_model', 'dropout', 'nheads',
                          'num_queries', 'num_feature_levels', 'dec_n_points', 'enc_n_points', 'two_stage'),
    'VOC': ('input_dim', 'window_size', 'num_frame_queries', 'num_queries', 'nheads', 'dim_feedforward',
            'enc_layers', 'dec_layers'),
    'backbone_swin_config': ('patch_size', 'embed_dim', 'depths', 'num_heads', 'window_size', 'mlp_ratio',
                             'qkv_bias', 'qk_scale', 'drop_rate', 'attn_drop_rate', 'drop_path_rate',
                             'patch_norm'),
}

#: the official ``--backbone`` names and their Video-Swin settings (official backbone table).
SWIN_ARCHS: Dict[str, Dict[str, Any]] = {
    name: dict(patch_size=(1, 4, 4), embed_dim=embed, depths=depths, num_heads=heads, window_size=(8, 7, 7),
               mlp_ratio=4.0, qkv_bias=True, qk_scale=None, drop_rate=0.0, attn_drop_rate=0.0,
               drop_path_rate=0.2, patch_norm=True)
    for name, embed, depths, heads in (('video-swin-t', 96, [2, 2, 6, 2], [3, 6, 12, 24]),
                                       ('video-swin-s', 96, [2, 2, 18, 2], [3, 6, 12, 24]),
                                       ('video-swin-b', 128, [2, 2, 18, 2], [4, 8, 16, 32]))
}

#: official ``dataset_name`` -> (targets hold only the referred object, evaluation reports every
#: query's mask). Ref-YouTube-VOS/DAVIS targets hold the referred object only; A2D/JHMDB keep
#: every instance of the annotated frame and their mAP uses every query.
DATASET_MODES: Dict[str, Dict[str, bool]] = {
    'ref_youtube_vos': dict(referred_only=True, return_all_queries=False),
    'joint': dict(referred_only=True, return_all_queries=False),
    'davis': dict(referred_only=True, return_all_queries=False),
    'a2d_sentences': dict(referred_only=False, return_all_queries=True),
    'jhmdb_sentences': dict(referred_only=False, return_all_queries=True),
    'coco': dict(referred_only=True, return_all_queries=True),
    'mevis': dict(referred_only=True, return_all_queries=False),  # SOC++ only
}


def _check_keys(official: Mapping) -> None:
    """Raise naming every unknown and every missing key (top level and nested)."""
    unknown, missing = [], []
    for key in official:
        if key not in TRANSLATED_KEYS and key not in NOT_AFFECTING_COMPUTATION and key not in SOCPP_KEYS:
            unknown.append(key)
    missing += [k for k in TRANSLATED_KEYS if k not in official and k not in _OPTIONAL_KEYS]
    for name, translated in NESTED_TRANSLATED_KEYS.items():
        if name not in official:
            continue
        nested = official[name]
        if not isinstance(nested, Mapping):
            raise OfficialConfigError(f'official configuration: "{name}" must be a dict, got '
                                      f'{type(nested).__name__}')
        known = NESTED_NOT_AFFECTING_COMPUTATION.get(name, {})
        unknown += [f'{name}.{k}' for k in nested if k not in translated and k not in known]
        missing += [f'{name}.{k}' for k in translated if k not in nested]
    if unknown or missing:
        msg = ['official configuration:']
        if unknown:
            msg.append(f'unknown key(s) {unknown}: neither translated to our model nor known to leave '
                       'the computation unchanged (soc_mm.official.config.NOT_AFFECTING_COMPUTATION)')
        if missing:
            msg.append(f'missing key(s) {missing}')
        raise OfficialConfigError(' '.join(msg))


def _number(official: Mapping, key: str, minimum: float = 0.0) -> float:
    value = official[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise OfficialConfigError(f'official configuration: "{key}" must be a number >= {minimum}, got {value!r}')
    return float(value)


def _int(cfg: Mapping, key: str, where: str = '', minimum: int = 1) -> int:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OfficialConfigError(f'official configuration: "{where}{key}" must be an integer >= {minimum}, '
                                  f'got {value!r}')
    return value


def _flag(cfg: Mapping, key: str, where: str = '') -> bool:
    value = cfg[key]
    if not isinstance(value, bool):
        raise OfficialConfigError(f'official configuration: "{where}{key}" must be true or false, got {value!r}')
    return value


def _unsupported(key: str, value, why: str) -> OfficialConfigError:
    return OfficialConfigError(f'official configuration: {key}={value!r} is not supported by soc_mm: {why}')


def is_socpp_config(official: Mapping) -> bool:
    """Whether an official configuration is SOC++'s (it has ``use_proxymmf`` and ``num_proxy_query``).

    Raises:
        OfficialConfigError: only one of the two keys.
    """
    present = [k for k in SOCPP_KEYS if k in official]
    if present and len(present) != len(SOCPP_KEYS):
        missing = [k for k in SOCPP_KEYS if k not in official]
        raise OfficialConfigError(f'official configuration: {present} without {missing}: a SOC++ configuration '
                                  f'has both {list(SOCPP_KEYS)}, a SOC configuration neither')
    return bool(present)


def _socpp_cfg(cfg: Dict, official: Mapping) -> Dict:
    """SOC's translated config -> SOC++'s (``SOCPlusPlus``, ``FrameScoredVOC``, last-layer evaluation)."""
    if not _flag(official, 'use_proxymmf'):
        raise _unsupported('use_proxymmf', False, "SOC++'s forward needs the proxies (every SOC++ training "
                           'script passes --use_proxymmf; without it the official forward fails)')
    if cfg['voc']['window_size'] != 0:
        raise _unsupported('VOC.window_size', cfg['voc']['window_size'],
                           "SOC++'s windowed cluster-decoder path does not run (its cross-attention layers are "
                           'called with self-attention arguments): use 0')
    cfg.update(type='SOCPlusPlus', num_proxy_queries=_int(official, 'num_proxy_query'),
               query_fusion=dict(num_heads=8, dropout=0.1))  # hard-coded in the official model
    cfg['voc']['type'] = 'FrameScoredVOC'
    if cfg['bbox_head']['num_classes'] > 1:  # SOC++'s criterion has no class positives then
        cfg['bbox_head']['type'] = 'SOCPlusPlusOfficialHead'
    cfg['test_cfg']['output_layer'] = 'last'  # the official output is the last decoder layer's
    return cfg


def official_model_cfg(official: Mapping, text_encoder_dir: Optional[str] = None,
                       referred_only: Optional[bool] = None) -> Dict:
    """Our ``SOC`` (or, for a SOC++ configuration, ``SOCPlusPlus``) model config for an official
    configuration.

    Args:
        official (Mapping): the official configuration, flat (``value`` of every yaml entry
            merged with the command-line arguments; the fixtures' ``config.json["official_config"]``;
            :func:`load_official_config`). ``backbone_swin_config`` (optional) replaces the
            Video-Swin settings of the ``backbone`` name.
        text_encoder_dir (str, optional): local folder of the RoBERTa model; default
            ``official["text_encoder_type"]``.
        referred_only (bool, optional): must agree with ``dataset_name`` when given (kept for
            callers that pass it); by default taken from ``dataset_name``.

    Returns:
        dict: ``type='SOC'`` config (no data_preprocessor; the reference harness feeds tensors).

    Raises:
        OfficialConfigError: an unknown or missing key (named), a malformed value, or a value
            our model cannot reproduce.
    """
    _check_keys(official)
    socpp = is_socpp_config(official)
    dt, voc = official['DeformTransformer'], official['VOC']

    # ---- backbone
    backbone = official['backbone']
    if 'backbone_swin_config' in official:
        swin = official['backbone_swin_config']
        if not str(backbone).startswith('video-swin'):
            raise _unsupported('backbone', backbone, 'backbone_swin_config needs a video-swin backbone')
    elif backbone in SWIN_ARCHS:
        swin = dict(SWIN_ARCHS[backbone])
    else:
        raise _unsupported('backbone', backbone, f'soc_mm implements the Video-Swin backbones {sorted(SWIN_ARCHS)}')
    channels = [swin['embed_dim'] * 2**i for i in range(4)]

    # ---- deformable transformer
    where = 'DeformTransformer.'
    C = _int(dt, 'd_model', where)
    nheads, levels = _int(dt, 'nheads', where), _int(dt, 'num_feature_levels', where)
    num_queries, dropout = _int(dt, 'num_queries', where), dt['dropout']
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise OfficialConfigError(f'official configuration: "DeformTransformer.dropout" must be in [0, 1), '
                                  f'got {dropout!r}')
    if _flag(dt, 'two_stage', where):
        raise _unsupported('DeformTransformer.two_stage', True, 'SOC uses the single-stage Deformable-DETR decoder')
    if levels < 3:
        raise _unsupported('DeformTransformer.num_feature_levels', levels,
                           'the official model projects the last 3 backbone stages (+ extra stride-2 levels), '
                           'so it needs >= 3 levels')
    if not _flag(official, 'with_box_refine'):
        raise _unsupported('with_box_refine', False, 'the official model then shares ONE class/box head across '
                           'decoder levels, SOCHead has one per level (training would differ)')

    # ---- VOC: its width and query count are tied to the deformable decoder's in the official code
    where = 'VOC.'
    if _int(voc, 'input_dim', where) != C:
        raise _unsupported('VOC.input_dim', voc['input_dim'], f'must equal DeformTransformer.d_model ({C})')
    for key in ('num_frame_queries', 'num_queries'):
        if _int(voc, key, where) != num_queries:
            raise _unsupported(f'VOC.{key}', voc[key], f'must equal DeformTransformer.num_queries ({num_queries}): '
                               'VOC outputs are added to the per-frame queries')
    window = _int(voc, 'window_size', where, minimum=0)

    # ---- heads, losses, matcher
    if not _flag(official, 'aux_loss'):
        raise _unsupported('aux_loss', False, 'SOCHead always computes the losses of every decoder level')
    if not _flag(official, 'vl_loss'):
        raise _unsupported('vl_loss', False, 'without it the official model returns no boxes / VOC embeddings; '
                           'SOCHead always predicts and supervises them')
    dataset = official['dataset_name']
    if dataset not in DATASET_MODES:
        raise OfficialConfigError(f'official configuration: unknown dataset_name {dataset!r} '
                                  f'(known: {sorted(DATASET_MODES)})')
    if dataset == 'mevis' and not socpp:
        raise _unsupported('dataset_name', dataset, 'the official SOC code has no mevis dataset_name (SOC++ has)')
    mode = DATASET_MODES[dataset]
    if referred_only is not None and bool(referred_only) != mode['referred_only']:
        raise OfficialConfigError(f'official_model_cfg: referred_only={referred_only} contradicts '
                                  f'dataset_name {dataset!r} (referred_only={mode["referred_only"]})')
    coef = {k: _number(official, k) for k in ('class_loss_coef', 'sigmoid_focal_loss_coef', 'dice_loss_coef',
                                              'box_loss_coef', 'giou_coef', 'con_loss_coef')}
    # official HungarianMatcher: a cost whose coefficient is 0 is not computed
    costs = [(type_, _number(official, key)) for type_, key in (
        ('QueryTextCost', 'set_cost_con'), ('VideoFocalClassCost', 'set_cost_cls'),
        ('VideoDiceCost', 'set_cost_dice'), ('VideoBoxL1Cost', 'set_costs_box'), ('VideoGIoUCost', 'set_costs_giou'))]
    match_costs = [dict(type=type_, weight=weight) for type_, weight in costs if weight > 0]
    if not match_costs:
        raise OfficialConfigError('official configuration: every set_cost* is 0 (the matcher has no cost)')

    msda = dict(embed_dims=C, num_heads=nheads, num_levels=levels, dropout=dropout, batch_first=True)
    ffn = dict(embed_dims=C, feedforward_channels=_int(dt, 'dim_feedforward', 'DeformTransformer.'),
               ffn_drop=dropout)
    focal = dict(type='mmdet.FocalLoss', use_sigmoid=True, alpha=0.25, gamma=2.0)
    mask_dims = _int(official, 'mask_kernels_dim')
    cfg = dict(
        type='SOC', num_queries=num_queries, num_feature_levels=levels, with_box_refine=True,
        backbone=dict(type='VideoSwinTransformer',
                      arch=dict(embed_dims=swin['embed_dim'], depths=list(swin['depths']),
                                num_heads=list(swin['num_heads'])),
                      patch_size=tuple(swin['patch_size']), window_size=tuple(swin['window_size']),
                      mlp_ratio=swin['mlp_ratio'], qkv_bias=swin['qkv_bias'], qk_scale=swin['qk_scale'],
                      drop_rate=swin['drop_rate'], attn_drop_rate=swin['attn_drop_rate'],
                      drop_path_rate=swin['drop_path_rate'], patch_norm=swin['patch_norm']),
        # txt_proj: FeatureResizer with dropout 0.1 (hard-coded in the official model)
        text_encoder=dict(type='RoBERTaTextEncoder',
                          model_path=official['text_encoder_type'] if text_encoder_dir is None else text_encoder_dir,
                          embed_dims=C, freeze=_flag(official, 'freeze_text_encoder'), proj_dropout=0.1),
        neck=dict(type='mmdet.ChannelMapper', in_channels=channels[1:], kernel_size=1, out_channels=C,
                  act_cfg=None, bias=True, norm_cfg=dict(type='GN', num_groups=32), num_outs=levels),
        positional_encoding=dict(num_feats=C // 2, normalize=True, offset=-0.5),
        text_positional_encoding=dict(num_feats=C),
        fusion=dict(embed_dims=C, num_heads=8),  # vlf/lvf: 8 heads hard-coded in the official model
        encoder=dict(num_layers=_int(dt, 'enc_layers', 'DeformTransformer.'), layer_cfg=dict(
            self_attn_cfg=dict(msda, num_points=_int(dt, 'enc_n_points', 'DeformTransformer.')), ffn_cfg=ffn)),
        decoder=dict(num_layers=_int(dt, 'dec_layers', 'DeformTransformer.'), return_intermediate=True,
                     post_norm_cfg=None, layer_cfg=dict(
                         self_attn_cfg=dict(embed_dims=C, num_heads=nheads, dropout=dropout, batch_first=True),
                         cross_attn_cfg=dict(msda, num_points=_int(dt, 'dec_n_points', 'DeformTransformer.')),
                         ffn_cfg=ffn)),
        # VOC layers: dropout 0.1 hard-coded in the official model
        voc=dict(type='VOC', embed_dims=C, num_heads=_int(voc, 'nheads', where), num_queries=num_queries,
                 num_frame_queries=num_queries, num_encoder_layers=_int(voc, 'enc_layers', where, minimum=0),
                 num_decoder_layers=_int(voc, 'dec_layers', where),
                 feedforward_channels=_int(voc, 'dim_feedforward', where), window_size=window, dropout=0.1),
        spatial_decoder=dict(type='SOCSpatialDecoder', in_channels=C, skip_channels=[C, C, channels[0]],
                             out_channels=mask_dims),
        bbox_head=dict(
            type='SOCHead', num_classes=_int(official, 'num_classes'), embed_dims=C, num_pred_layer=dt['dec_layers'],
            mask_head=dict(type='DynamicMaskHead', in_channels=mask_dims,
                           channels=_int(official, 'dynamic_mask_channels'),
                           num_layers=_int(official, 'controller_layers'), rel_coord=_flag(official, 'rel_coord')),
            loss_cls=dict(focal, loss_weight=coef['class_loss_coef']),
            loss_mask=dict(focal, loss_weight=coef['sigmoid_focal_loss_coef']),
            loss_dice=dict(type='mmdet.DiceLoss', use_sigmoid=True, activate=True, naive_dice=True, eps=1.0,
                           loss_weight=coef['dice_loss_coef']),
            loss_bbox=dict(type='mmdet.L1Loss', loss_weight=coef['box_loss_coef']),
            loss_iou=dict(type='SOCGIoULoss', loss_weight=coef['giou_coef']),
            loss_con=dict(type='QuerySentenceContrastiveLoss', loss_weight=coef['con_loss_coef'])),
        train_cfg=dict(referred_only=mode['referred_only'],
                       assigner=dict(type='VideoHungarianAssigner', match_costs=match_costs)),
        # no output level/layer key: SOC's default is the official evaluation (the first decoder
        # level's heads with the last level's VOC output)
        test_cfg=dict(return_all_queries=mode['return_all_queries']))
    return _socpp_cfg(cfg, official) if socpp else cfg


def load_official_config(path: str, **overrides) -> Dict:
    """Read an official configuration: an official ``configs/*.yaml`` (``{key: {value: ...}}``),
    a fixture ``config.json`` (its ``official_config``) or a flat json/yaml dict.

    ``overrides`` are the command-line arguments of the official scripts (e.g. ``backbone``).
    """
    if not osp.isfile(path):
        raise OfficialConfigError(f'{path}: no such file')
    with open(path, encoding='utf-8') as f:
        text = f.read()
    try:
        if path.endswith(('.yaml', '.yml')):
            import yaml
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as err:  # noqa: BLE001 (any parse error -> one clear message)
        raise OfficialConfigError(f'{path}: not a valid {"yaml" if path.endswith(("yaml", "yml")) else "json"} '
                                  f'file ({type(err).__name__}: {err})') from None
    if not isinstance(data, dict):
        raise OfficialConfigError(f'{path}: expected a mapping of configuration keys, got {type(data).__name__}')
    if 'official_config' in data:
        data = data['official_config']
    flat = {k: (v['value'] if isinstance(v, dict) and 'value' in v and set(v) <= {'value', 'desc'} else v)
            for k, v in data.items()}
    flat.update(overrides)
    return flat
