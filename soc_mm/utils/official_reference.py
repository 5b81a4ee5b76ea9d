"""Compare ``soc_mm``'s SOC with golden tensors of the official model.

A fixture folder (layout documented in ``tests/data/soc_reference/README.md``) holds
the official configuration (``config.json``), inputs, eval/train outputs and losses
of the official model with known weights. :func:`compare_fixture` builds our model
from that configuration, converts the official weights with our converter, runs the
same forwards and the loss, and reports the max |diff| of every tensor.
"""
import json
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.structures import InstanceData
from torch import nn

from soc_mm.structures import RVOSDataSample
from .official_checkpoint import convert_official_state_dict


@dataclass
class Row:
    """One compared quantity."""
    name: str
    max_abs_diff: float
    tolerance: float
    ok: bool


def official_model_cfg(official: Dict, text_encoder_dir: str, referred_only: bool,
                       voc_batch_regroup_compat: bool = False) -> Dict:
    """Our ``SOC`` config for an official configuration (official argument names)."""
    swin, dt, voc = official['backbone_swin_config'], official['DeformTransformer'], official['VOC']
    C, levels = dt['d_model'], dt['num_feature_levels']
    channels = [swin['embed_dim'] * 2**i for i in range(4)]
    msda = dict(embed_dims=C, num_heads=dt['nheads'], num_levels=levels, dropout=dt['dropout'],
                batch_first=True)
    ffn = dict(embed_dims=C, feedforward_channels=dt['dim_feedforward'], ffn_drop=dt['dropout'])
    coef = {k: official[k] for k in ('class_loss_coef', 'sigmoid_focal_loss_coef', 'dice_loss_coef',
                                      'box_loss_coef', 'giou_coef', 'con_loss_coef')}
    return dict(
        type='SOC', num_queries=dt['num_queries'], num_feature_levels=levels,
        with_box_refine=official['with_box_refine'], voc_batch_regroup_compat=voc_batch_regroup_compat,
        backbone=dict(type='VideoSwinTransformer',
                      arch=dict(embed_dims=swin['embed_dim'], depths=swin['depths'],
                                num_heads=swin['num_heads']),
                      patch_size=swin['patch_size'], window_size=swin['window_size'],
                      mlp_ratio=swin['mlp_ratio'], qkv_bias=swin['qkv_bias'],
                      drop_path_rate=swin['drop_path_rate'], patch_norm=swin['patch_norm']),
        text_encoder=dict(type='RoBERTaTextEncoder', model_path=text_encoder_dir, embed_dims=C,
                          freeze=official['freeze_text_encoder']),
        neck=dict(type='mmdet.ChannelMapper', in_channels=channels[1:], kernel_size=1, out_channels=C,
                  act_cfg=None, bias=True, norm_cfg=dict(type='GN', num_groups=32), num_outs=levels),
        encoder=dict(num_layers=dt['enc_layers'], layer_cfg=dict(
            self_attn_cfg=dict(msda, num_points=dt['enc_n_points']), ffn_cfg=ffn)),
        decoder=dict(num_layers=dt['dec_layers'], return_intermediate=True, post_norm_cfg=None,
                     layer_cfg=dict(
                         self_attn_cfg=dict(embed_dims=C, num_heads=dt['nheads'], dropout=dt['dropout'],
                                            batch_first=True),
                         cross_attn_cfg=dict(msda, num_points=dt['dec_n_points']), ffn_cfg=ffn)),
        voc=dict(type='VOC', embed_dims=C, num_heads=voc['nheads'], num_queries=voc['num_queries'],
                 num_frame_queries=voc['num_frame_queries'], num_encoder_layers=voc['enc_layers'],
                 num_decoder_layers=voc['dec_layers'], feedforward_channels=voc['dim_feedforward'],
                 window_size=voc['window_size']),
        spatial_decoder=dict(type='SOCSpatialDecoder', in_channels=C, skip_channels=[C, C, channels[0]],
                             out_channels=official['mask_kernels_dim']),
        bbox_head=dict(
            type='SOCHead', num_classes=official['num_classes'], embed_dims=C,
            num_pred_layer=dt['dec_layers'],
            mask_head=dict(type='DynamicMaskHead', in_channels=official['mask_kernels_dim'],
                           channels=official['dynamic_mask_channels'],
                           num_layers=official['controller_layers'], rel_coord=official['rel_coord']),
            loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, alpha=0.25, gamma=2.0,
                          loss_weight=coef['class_loss_coef']),
            loss_mask=dict(type='mmdet.FocalLoss', use_sigmoid=True, alpha=0.25, gamma=2.0,
                           loss_weight=coef['sigmoid_focal_loss_coef']),
            loss_dice=dict(type='mmdet.DiceLoss', use_sigmoid=True, activate=True, naive_dice=True,
                           eps=1.0, loss_weight=coef['dice_loss_coef']),
            loss_bbox=dict(type='mmdet.L1Loss', loss_weight=coef['box_loss_coef']),
            loss_iou=dict(type='SOCGIoULoss', loss_weight=coef['giou_coef']),
            loss_con=dict(type='QuerySentenceContrastiveLoss', loss_weight=coef['con_loss_coef'])),
        train_cfg=dict(referred_only=referred_only))


def load_fixture_state_dict(fixture_dir: str, config: Dict) -> Dict[str, torch.Tensor]:
    """The variant's official weights (shared state dict + the variant's overrides)."""
    weights = config['weights']
    state_dict = torch.load(osp.join(fixture_dir, weights['state_dict']), weights_only=True)
    for extra in weights.get('state_dict_overrides', []):
        state_dict.update(torch.load(osp.join(fixture_dir, extra), weights_only=True))
    return state_dict


def fixture_batch(inputs: Dict, with_targets: bool = False) -> Tuple[torch.Tensor, List[RVOSDataSample]]:
    """Official inputs -> (clips [B, T, 3, H, W], data samples)."""
    T, B = inputs['samples'].shape[:2]
    pad_hw = tuple(inputs['samples'].shape[-2:])
    valid = inputs['valid_indices']
    samples = []
    for b in range(B):
        target = inputs['targets'][0][b]
        meta = dict(img_shape=tuple(target['size'].tolist()), ori_shape=tuple(target['orig_size']),
                    expression=inputs['text_queries'][b], batch_input_shape=pad_hw, pad_shape=pad_hw,
                    ref_inst_idx=int(target['referred_instance_idx']))
        if valid is not None:
            meta['valid_frame_idx'] = [int(valid[b]) - b * T]
        sample = RVOSDataSample(metainfo=meta)
        if with_targets:
            steps = [inputs['targets'][t][b] for t in range(len(inputs['targets']))]
            labels = steps[0]['labels'].reshape(-1)
            num = steps[0]['masks'].shape[0]
            masks = torch.stack([s['masks'] for s in steps], 1)
            sample.gt_instances = InstanceData(
                masks=masks, boxes=torch.stack([s['boxes'] for s in steps], 1),
                labels=labels.expand(num) if labels.numel() == 1 else labels,
                visible=masks.flatten(2).any(-1))
        samples.append(sample)
    return inputs['samples'].transpose(0, 1).contiguous(), samples


def zero_dropout(model: nn.Module) -> nn.Module:
    """Every dropout probability 0 (the official train-mode fixtures were made so)."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(m, nn.MultiheadAttention):
            m.dropout = 0.0
    return model


def build_reference_model(fixture_dir: str, voc_batch_regroup_compat: Optional[bool] = None,
                          **cfg_overrides) -> Tuple[nn.Module, Dict]:
    """Our model for a fixture folder, with the official weights converted by our converter.

    ``voc_batch_regroup_compat`` None = on exactly when the official regrouping mixes videos
    (B > 1 and T > 1); ``cfg_overrides`` update the model config (e.g. ``test_cfg``).
    """
    from soc_mm.registry import MODELS
    config = json.load(open(osp.join(fixture_dir, 'config.json')))
    official = config['official_config']
    inputs = config['input']
    T_out = 1 if inputs['valid_indices'] is not None else inputs['T']
    cfg = official_model_cfg(
        official, osp.normpath(osp.join(fixture_dir, official['text_encoder_type'])),
        referred_only=inputs['mode'] != 'a2d',
        # the official VOC mixes videos when B > 1 and T > 1: reproduce it only here
        voc_batch_regroup_compat=(inputs['B'] > 1 and T_out > 1) if voc_batch_regroup_compat is None
        else voc_batch_regroup_compat)
    cfg.update(cfg_overrides)
    model = MODELS.build(cfg)
    state_dict = convert_official_state_dict(load_fixture_state_dict(fixture_dir, config))
    model.load_state_dict(state_dict, strict=True)
    return model, config


def _row(name: str, ours: torch.Tensor, ref: torch.Tensor, rel: float = 1e-4) -> Row:
    if ours.shape != ref.shape:
        return Row(f'{name} (shape {tuple(ours.shape)} vs {tuple(ref.shape)})', float('inf'), 0.0, False)
    ours, ref = ours.detach().double(), ref.detach().double()
    diff = (ours - ref).abs().max().item() if ref.numel() else 0.0
    tol = rel * max(1.0, ref.abs().max().item() if ref.numel() else 0.0)
    return Row(name, diff, tol, diff <= tol)


def _compare_outputs(prefix: str, ours: Dict, ref: Dict) -> List[Row]:
    rows = [_row(f'{prefix}.{k}', ours[k], ref[k])
            for k in ('pred_masks', 'pred_cls', 'pred_boxes', 'pred_logit', 'text_sentence_feature')]
    if len(ours['aux_outputs']) != len(ref['aux_outputs']):
        rows.append(Row(f'{prefix}.aux_outputs (count)', float('inf'), 0.0, False))
    for i, (a, r) in enumerate(zip(ours['aux_outputs'], ref['aux_outputs'])):
        rows += _compare_outputs(f'{prefix}.aux_outputs[{i}]', dict(a, aux_outputs=[]),
                                 dict(r, aux_outputs=[]))
    return rows


def compare_fixture(fixture_dir: str) -> List[Row]:
    """Run eval and train forwards and the loss; one :class:`Row` per compared tensor."""
    from soc_mm.models.dense_heads.soc_head import OFFICIAL_LOSS_NAMES
    model, _ = build_reference_model(fixture_dir)
    load = lambda name: torch.load(osp.join(fixture_dir, name), weights_only=True)  # noqa: E731
    inputs = load('inputs.pt')
    clips, samples = fixture_batch(inputs)
    rows = []
    model.eval()
    with torch.no_grad():
        rows += _compare_outputs('eval', model.official_outputs(clips, samples), load('outputs_eval.pt'))
    zero_dropout(model).train()
    with torch.no_grad():
        rows += _compare_outputs('train', model.official_outputs(clips, samples), load('outputs_train.pt'))

    clips, samples = fixture_batch(inputs, with_targets=True)
    ref = load('losses_train.pt')
    losses = model(clips, samples, mode='loss')
    for name, value in sorted(losses.items()):
        level, _, base = name.rpartition('.')
        official = OFFICIAL_LOSS_NAMES[base] + (f'_{level[1:]}' if level else '')
        expected = ref['loss_dict'][official] * ref['weight_dict'][official]
        rows.append(_row(f'loss.{name} ({official})', value, torch.as_tensor(expected), rel=1e-4))
        rows[-1].tolerance = 1e-4 * abs(float(expected))
        rows[-1].ok = rows[-1].max_abs_diff <= rows[-1].tolerance
    with torch.no_grad():
        feats = model(clips, samples, mode='tensor')
        levels = model.bbox_head.match(feats['cls'], feats['boxes'], feats['masks'], feats['voc_hs'],
                                       feats['text_sentence_feature'], samples)
    num_levels = len(levels)
    for call, indices in zip(ref['matcher_call_order'], ref['matcher_indices']):
        level = num_levels - 1 if call == 'final' else int(call.split('_')[1])
        same = all(torch.equal(q.cpu(), rq) and torch.equal(g.cpu(), rg)
                   for (q, g), (rq, rg) in zip(levels[level], indices))
        rows.append(Row(f'matcher_indices.{call}', 0.0 if same else float('inf'), 0.0, same))
    return rows
