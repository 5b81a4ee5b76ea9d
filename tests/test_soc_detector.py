"""The SOC detector with the official weights reproduces the official fixtures."""
import json
import os.path as osp

import pytest
import torch
from einops import rearrange
from torch import nn

import soc_mm  # noqa: F401  (shims + registries)
from soc_mm.models.layers import DecoderSamplingRecorder
from soc_mm.registry import MODELS
from soc_mm.structures import RVOSDataSample
from soc_mm.official.checkpoint import convert_official_key
from soc_mm.official.config import official_model_cfg
from soc_mm.official.reference import fixture_batch as official_fixture_batch
from soc_mm.official.reference import build_reference_model, zero_dropout

FIXTURES = osp.join(osp.dirname(osp.abspath(__file__)), 'data', 'soc_reference')
MAIN = 'ytvos_b2_t3_nc1_w0'
VARIANTS = ['ytvos_b2_t3_nc1_w0', 'ytvos_b2_t3_nc1_w2', 'ytvos_b2_t3_nc65_w0', 'a2d_b2_t3_nc1_w0',
            'ytvos_b1_t10_nc1_w2']
ATOL = 1e-5  # boxes / class logits / embeddings (fixture README)
MASK_TOL = dict(rtol=1e-4, atol=1e-3)  # mask logits


def load(variant, name):
    return torch.load(osp.join(FIXTURES, variant, name))


def soc_config(variant: str, voc_batch_regroup_compat: bool = True) -> dict:
    """Our config of the tiny fixture model (official hyper-parameters in config.json)."""
    official = json.load(open(osp.join(FIXTURES, variant, 'config.json')))['official_config']
    return official_model_cfg(official, osp.join(FIXTURES, 'common', 'text_encoder'),
                              referred_only=variant.startswith('ytvos'),
                              voc_batch_regroup_compat=voc_batch_regroup_compat)


def build_soc(variant: str, voc_batch_regroup_compat: bool = True, **overrides) -> nn.Module:
    """The fixture model with the official weights (converted by our converter), eval mode."""
    torch.set_num_threads(1)
    model, _ = build_reference_model(osp.join(FIXTURES, variant), voc_batch_regroup_compat, **overrides)
    return model.eval()


def fixture_batch(variant: str, with_targets: bool = False):
    """Fixture inputs -> (inputs [B, T, 3, H, W], data samples)."""
    return official_fixture_batch(load(variant, 'inputs.pt'), with_targets=with_targets)


def assert_close(ours, theirs, **tol):
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    torch.testing.assert_close(ours, theirs, **(tol or dict(rtol=0, atol=ATOL)))


def assert_outputs_close(ours: dict, theirs: dict):
    assert_close(ours['pred_masks'], theirs['pred_masks'], **MASK_TOL)
    for key in ('pred_cls', 'pred_boxes', 'pred_logit', 'text_sentence_feature'):
        assert_close(ours[key], theirs[key])
    assert len(ours['aux_outputs']) == len(theirs['aux_outputs'])
    for aux_ours, aux_theirs in zip(ours['aux_outputs'], theirs['aux_outputs']):
        assert_outputs_close(dict(aux_ours, aux_outputs=[]), dict(aux_theirs, aux_outputs=[]))


# ---------------------------------------------------------------- intermediates
@pytest.mark.parametrize('variant', ['ytvos_b2_t3_nc1_w0', 'a2d_b2_t3_nc1_w0', 'ytvos_b1_t10_nc1_w2'])
def test_intermediates_match_official(variant):
    model = build_soc(variant)
    inputs, samples = fixture_batch(variant)
    ref = load(variant, 'intermediates_eval.pt')
    with torch.no_grad(), DecoderSamplingRecorder(model.decoder) as sampling:
        feats = model.forward_features(inputs, samples)
    B = inputs.shape[0]
    assert_close(feats['text_words'], ref['txt_proj_calls'][0].transpose(0, 1))
    assert_close(feats['text_sentence'], ref['txt_proj_calls'][1])
    dt = ref['deformable_transformer']
    assert_close(rearrange(feats['hs'], 'l b t q c -> l (b t) q c'), dt['hs'])
    assert_close(rearrange(feats['init_reference'], 'b t q n -> (b t) q n'), dt['init_reference'])
    assert_close(rearrange(feats['inter_references'], 'l b t q n -> l (b t) q n'), dt['inter_references'])
    assert_close(feats['voc_hs'], ref['voc']['voc_hs'])
    assert_close(rearrange(feats['mask_features'], 'b t d h w -> (t b) d h w'),
                 ref['spatial_decoder']['decoded_frame_features'], rtol=1e-4, atol=1e-4)
    assert_close(feats['text_sentence_feature'], load(variant, 'outputs_eval.pt')['text_sentence_feature'])
    if 'memory' in dt:  # main variant only
        for ours, theirs in zip(feats['memory'], dt['memory']):
            assert_close(ours, theirs, rtol=0, atol=1e-4)
        assert_close(sampling.samples, dt['inter_samples'], rtol=0, atol=1e-4)
        with torch.no_grad():
            full = model.backbone(inputs)  # features of all frames, before frame selection
        for ours, theirs in zip(full, ref['backbone']['features']):
            assert_close(ours, theirs)
    assert feats['hs'].shape[:3] == (2, B, dt['hs'].shape[1] // B)


# ---------------------------------------------------------------- full outputs
@pytest.mark.parametrize('variant', VARIANTS)
def test_eval_outputs_match_official(variant):
    model = build_soc(variant)
    inputs, samples = fixture_batch(variant)
    with torch.no_grad():
        outs = model.official_outputs(inputs, samples)
    assert_outputs_close(outs, load(variant, 'outputs_eval.pt'))


@pytest.mark.parametrize('variant', VARIANTS)
def test_train_outputs_match_official(variant):
    model = zero_dropout(build_soc(variant)).train()
    inputs, samples = fixture_batch(variant)
    with torch.no_grad():
        outs = model.official_outputs(inputs, samples)
    assert len(outs['aux_outputs']) == 1
    assert_outputs_close(outs, load(variant, 'outputs_train.pt'))


@pytest.mark.parametrize('variant', ['ytvos_b2_t3_nc1_w0', 'a2d_b2_t3_nc1_w0', 'ytvos_b1_t10_nc1_w2'])
def test_train_loss_matches_official(variant):
    model = zero_dropout(build_soc(variant)).train()
    inputs, samples = fixture_batch(variant, with_targets=True)
    losses = model(inputs, samples, mode='loss')
    ref = load(variant, 'losses_train.pt')
    total = sum(v for v in losses.values())
    torch.testing.assert_close(total, ref['total_weighted_loss'].to(total), rtol=1e-5, atol=1e-4)
    total.backward()
    assert model.backbone.patch_embed.proj.weight.grad is not None
    assert model.level_embed.grad is not None and model.vlf.attn.in_proj_weight.grad is not None
    assert all(p.grad is None for p in model.text_encoder.model.parameters())  # frozen


def test_init_weights_follows_official_init():
    """Random init of the non-backbone front modules has the official init's structure
    (zero/constant tensors, std); the pretrained text encoder is left untouched.
    (The backbone uses Video-Swin's TruncNormal init; SOC always loads Kinetics weights.)"""
    torch.manual_seed(0)
    model = MODELS.build(soc_config(MAIN))
    text_before = {k: v.clone() for k, v in model.text_encoder.model.state_dict().items()}
    model.init_weights()
    for k, v in model.text_encoder.model.state_dict().items():
        assert torch.equal(v, text_before[k]), k
    stats = json.load(open(osp.join(FIXTURES, 'common', 'official_init_stats.json')))['num_classes_1']
    ours = model.state_dict()
    checked = 0
    for key, st in stats.items():
        if 'std' not in st or not key.startswith(('transformer.', 'input_proj.', 'query_embed.', 'vlf.', 'lvf.',
                                                  'txt_proj.')):
            continue
        new_key = convert_official_key(key)
        if not new_key:
            continue
        value = ours[new_key].float()
        assert bool((value == 0).all()) == st['all_zero'], key
        assert bool((value == value.flatten()[0]).all()) == st['constant'], key
        if st['constant']:
            assert abs(value.flatten()[0].item() - st['mean']) < 1e-6, key
        elif value.numel() > 50:
            assert abs(value.std().item() - st['std']) < 0.3 * st['std'], key
        checked += 1
    assert checked > 80


# ---------------------------------------------------------------- quirks / options
def test_voc_batch_regroup_is_opt_in():
    variant = MAIN
    inputs, samples = fixture_batch(variant)
    ref = load(variant, 'intermediates_eval.pt')['voc']['voc_hs']
    model = build_soc(variant, voc_batch_regroup_compat=False)
    with torch.no_grad():
        voc = model.forward_features(inputs, samples)['voc_hs']
        alone = [model.forward_features(inputs[b:b + 1], samples[b:b + 1])['voc_hs'] for b in range(2)]
    # per video by default: each video's result equals running it alone
    assert_close(voc, torch.cat(alone, 1), rtol=0, atol=1e-4)
    # ... and therefore differs from the official regrouped batch (README: up to ~0.18)
    assert (voc - ref).abs().max() > 1e-2


def test_output_level_last_uses_last_level_heads():
    variant = MAIN
    inputs, samples = fixture_batch(variant)
    model = build_soc(variant, test_cfg=dict(output_level='last'))
    assert model.output_level == 1 and model.bbox_head.test_cfg['output_level'] == 1
    with torch.no_grad():
        outs = model.official_outputs(inputs, samples)
        raw = model(inputs, samples, mode='tensor')
    assert_close(outs['pred_cls'], raw['cls'][1].transpose(0, 1))
    assert_close(outs['pred_boxes'], raw['boxes'][1].transpose(0, 1))
    # level 0 (official eval output) differs
    assert (raw['cls'][0] - raw['cls'][1]).abs().max() > 1e-3
    with pytest.raises(ValueError, match='output_level'):
        build_soc(variant, test_cfg=dict(output_level='middle'))


def test_predict_fills_data_samples():
    variant = MAIN
    model = build_soc(variant)
    inputs, samples = fixture_batch(variant)
    with torch.no_grad():
        results = model(inputs, samples, mode='predict')
    post = load(variant, 'postprocess.pt')['ref_youtube_vos']['outputs']
    for sample, theirs in zip(results, post):
        expected = theirs['pred_masks'][:, 0].bool()
        assert sample.pred_masks.shape == expected.shape
        assert sample.pred_scores.shape == (expected.shape[0], )
        assert (sample.pred_masks != expected).float().mean() < 1e-3


def test_bad_inputs_give_clear_errors():
    model = build_soc(MAIN)
    inputs, samples = fixture_batch(MAIN)
    with pytest.raises(ValueError, match=r'\[B, T, 3, H, W\]'):
        model(inputs[0], samples)
    with pytest.raises(ValueError, match='data samples for a batch'):
        model(inputs, samples[:1])
    no_text = [RVOSDataSample(metainfo=dict(img_shape=(64, 96))) for _ in range(2)]
    with pytest.raises(ValueError, match='expression'):
        model(inputs, no_text)
    no_shape = [RVOSDataSample(metainfo=dict(expression='a dog')) for _ in range(2)]
    with pytest.raises(ValueError, match='img_shape'):
        model(inputs, no_shape)
    bad_idx = [RVOSDataSample(metainfo=dict(s.metainfo, valid_frame_idx=[3])) for s in samples]
    with pytest.raises(ValueError, match='valid_frame_idx'):
        model(inputs, bad_idx)
    with pytest.raises(ValueError, match='Invalid mode'):
        model(inputs, samples, mode='nope')
