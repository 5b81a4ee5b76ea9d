"""Golden-fixture helpers shared by the tests of SOC's "back" modules (VOC, spatial decoder, head,
matcher, losses; tests/test_models/): our modules built from a fixture variant's official weights, and
the official tensors regrouped to our layouts (tests/data/soc_reference, see its README)."""
import os.path as osp

import torch

from conftest import FIXTURE_ROOT, load_fixture
import soc_mm  # noqa: F401  (shims + registration)
from mmengine.structures import InstanceData
from soc_mm.models.dense_heads import SOCHead
from soc_mm.models.layers import VOC
from soc_mm.official.checkpoint import convert_official_state_dict
from soc_mm.official.reference import load_fixture_state_dict
from soc_mm.structures import RVOSDataSample

ROOT = FIXTURE_ROOT

load = load_fixture


def variant_official_sd(variant):
    """A fixture variant's official weights (official keys)."""
    return load_fixture_state_dict(osp.join(ROOT, variant), load(variant, 'config.json'))


def sub_state_dict(state_dict, prefix):
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def back_sd(variant, prefix):
    sd = convert_official_state_dict(variant_official_sd(variant))
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def cfg(variant):
    return load(variant, 'config.json')['official_config']


def build_voc(variant):
    c = cfg(variant)['VOC']
    voc = VOC(embed_dims=c['input_dim'], num_heads=c['nheads'], num_queries=c['num_queries'],
              num_frame_queries=c['num_frame_queries'], num_encoder_layers=c['enc_layers'],
              num_decoder_layers=c['dec_layers'], feedforward_channels=c['dim_feedforward'],
              window_size=c['window_size'], dropout=0.0)
    voc.load_state_dict(back_sd(variant, 'voc.'), strict=True)
    return voc


def build_head(variant, **kwargs):
    c = cfg(variant)
    head = SOCHead(num_classes=c['num_classes'], embed_dims=c['DeformTransformer']['d_model'],
                   num_pred_layer=c['DeformTransformer']['dec_layers'],
                   mask_head=dict(type='DynamicMaskHead', in_channels=c['mask_kernels_dim'],
                                  channels=c['dynamic_mask_channels'], num_layers=c['controller_layers'],
                                  rel_coord=c['rel_coord']), **kwargs)
    head.load_state_dict(back_sd(variant, 'bbox_head.'), strict=True)
    return head


def dims(variant):
    inp = load(variant, 'inputs.pt')
    B = len(inp['text_queries'])
    T = 1 if inp['valid_indices'] is not None else inp['samples'].shape[0]
    return B, T


def regroup_official(hs, B, T):
    """Official VOC input: [L, (b t), nq, C] -> [L, T, B, nq, C] -> *reshaped* [L * B, T, nq, C]."""
    L, _, nq, C = hs.shape
    return hs.view(L, B, T, nq, C).transpose(1, 2).reshape(L * B, T, nq, C)


def bt(x, B, T):
    """[(b t), ...] -> [B, T, ...]."""
    return x.reshape(B, T, *x.shape[1:])


def tb_to_bt(x):
    """[T, B, ...] -> [B, T, ...]."""
    return x.transpose(0, 1)


def data_samples(variant):
    """RVOSDataSample per video from the official training targets."""
    inp = load(variant, 'inputs.pt')
    B, _ = dims(variant)
    H, W = inp['samples'].shape[-2:]
    samples = []
    for b in range(B):
        steps = [step[b] for step in inp['targets']]
        masks = torch.stack([t['masks'] for t in steps], dim=1)  # [N, T, h, w]
        boxes = torch.stack([t['boxes'] for t in steps], dim=1)
        visible = masks.flatten(2).any(-1)
        ref = int(steps[0]['referred_instance_idx'])
        visible[ref] = torch.stack([t['is_ref_inst_visible'] for t in steps]).bool()
        labels = steps[0]['labels'].reshape(-1)
        labels = labels.expand(len(masks)) if labels.numel() == 1 else labels
        sample = RVOSDataSample(metainfo=dict(img_shape=tuple(steps[0]['size'].tolist()),
                                              ori_shape=tuple(steps[0]['orig_size']),
                                              pad_shape=(H, W), ref_inst_idx=ref))
        sample.gt_instances = InstanceData(masks=masks, boxes=boxes, labels=labels.clone(), visible=visible)
        samples.append(sample)
    return samples


def head_inputs(variant, voc_per_layer):
    """The head's inputs from the official intermediates: hidden states [L, B, T, nq, C] (frame
    queries + the given video queries of each layer), references (L+1: initial, then refined by
    each layer), mask features [B, T, D, h, w], image sizes [B, 2]."""
    B, T = dims(variant)
    inter = load(variant, 'intermediates_eval.pt')
    hs = inter['deformable_transformer']['hs']
    L = len(hs)
    hidden = torch.stack([bt(hs[l], B, T) + voc_per_layer[l][:, None] for l in range(L)])
    init_ref = bt(inter['deformable_transformer']['init_reference'], B, T)
    inter_ref = inter['deformable_transformer']['inter_references']
    refs = [init_ref] + [bt(inter_ref[l], B, T) for l in range(L)]
    feats = inter['spatial_decoder']['decoded_frame_features']
    feats = feats.view(T, B, *feats.shape[1:]).transpose(0, 1)
    sizes = torch.stack([t['size'] for t in load(variant, 'inputs.pt')['eval_targets'][0]])
    return hidden, refs, feats, sizes


def train_level_outputs(variant):
    ref = load(variant, 'outputs_train.pt')
    levels = [ref['aux_outputs'][0], ref]
    stack = lambda k: torch.stack([tb_to_bt(o[k]) for o in levels])  # noqa: E731
    return (stack('pred_cls'), stack('pred_boxes'), stack('pred_masks'),
            torch.stack([o['pred_logit'] for o in levels]), ref['text_sentence_feature'])


def eval_samples(variant):
    inp = load(variant, 'inputs.pt')
    B, _ = dims(variant)
    H, W = inp['samples'].shape[-2:]
    out = []
    for b in range(B):
        size = inp['eval_targets'][0][b]['size'].tolist()
        orig = inp['targets'][0][b]['orig_size']
        out.append(RVOSDataSample(metainfo=dict(img_shape=tuple(size), ori_shape=tuple(orig),
                                                pad_shape=(H, W))))
    return out
