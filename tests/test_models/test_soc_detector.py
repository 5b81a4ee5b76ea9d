"""The SOC detector with the official weights reproduces the official fixtures; its stage contract."""
import json
import os.path as osp

import pytest
import torch
from einops import rearrange
from torch import nn

from conftest import FIXTURE_ROOT, FIXTURE_VARIANTS, MAIN_VARIANT, load_fixture
import soc_mm  # noqa: F401  (shims + registries)
from soc_mm.models.dense_heads import SOCHead
from soc_mm.registry import MODELS
from soc_mm.structures import RVOSDataSample
from soc_mm.structures.batch_metainfo import get_texts
from soc_mm.official.checkpoint import convert_official_key
from soc_mm.official.config import official_model_cfg
from soc_mm.official.decoder_samples import DecoderSamplingRecorder
from soc_mm.official.reference import fixture_batch as official_fixture_batch
from soc_mm.official.outputs import official_outputs
from soc_mm.official.reference import build_reference_model, zero_dropout

FIXTURES = FIXTURE_ROOT
MAIN = MAIN_VARIANT
VARIANTS = FIXTURE_VARIANTS
ATOL = 1e-5  # boxes / class logits / embeddings (fixture README)
MASK_TOL = dict(rtol=1e-4, atol=1e-3)  # mask logits


load = load_fixture


def soc_config(variant: str) -> dict:
    """Our config of the tiny fixture model (official hyper-parameters in config.json)."""
    official = json.load(open(osp.join(FIXTURES, variant, 'config.json')))['official_config']
    return official_model_cfg(official, osp.join(FIXTURES, 'common', 'text_encoder'),
                              referred_only=variant.startswith('ytvos'))


def build_soc(variant: str, batch_regroup: bool = True, **overrides) -> nn.Module:
    """The fixture model with the official weights (converted by our converter), eval mode; with
    ``batch_regroup`` the official VOC batch regrouping (``BatchRegroupSOC``, as the fixtures were made)."""
    torch.set_num_threads(1)
    model, _ = build_reference_model(osp.join(FIXTURES, variant), batch_regroup, **overrides)
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
def run_stages(model, inputs, samples):
    """SOC's stages one by one (what ``forward_transformer`` chains), keeping every intermediate."""
    text = model.extract_text_feat(get_texts(samples))
    visual = model.extract_feat(inputs, samples)
    fusion = model.fuse(visual['mlvl_feats'], visual['mlvl_masks'], visual['mlvl_pos_embeds'],
                        text['word_feats'], text['word_padding_mask'])
    encoder_inputs, decoder_inputs = model.pre_transformer(fusion['mlvl_feats'], visual['mlvl_masks'],
                                                           visual['mlvl_pos_embeds'])
    encoder_outputs = model.forward_encoder(**encoder_inputs)
    decoder_inputs.update(model.pre_decoder(**encoder_outputs))
    decoder_outputs = model.forward_decoder(**decoder_inputs)
    head_inputs = model.forward_cluster(**decoder_outputs, sentence_feat=text['sentence_feat'])
    head_inputs['mask_feats'] = model.forward_mask_feats(encoder_outputs['memory'], encoder_outputs['spatial_shapes'],
                                                         visual['backbone_feats'][0], len(samples))
    head_inputs['fused_sentence_feat'] = fusion['fused_sentence_feat']
    return dict(text=text, visual=visual, encoder=encoder_outputs, decoder=decoder_outputs, head_inputs=head_inputs)


@pytest.mark.parametrize('variant', ['ytvos_b2_t3_nc1_w0', 'a2d_b2_t3_nc1_w0', 'ytvos_b1_t10_nc1_w2'])
def test_intermediates_match_official(variant):
    model = build_soc(variant)
    inputs, samples = fixture_batch(variant)
    ref = load(variant, 'intermediates_eval.pt')
    with torch.no_grad(), DecoderSamplingRecorder(model.decoder) as sampling:
        stages = run_stages(model, inputs, samples)
    with torch.no_grad():  # forward_transformer is exactly that chain, its dict feeds the head by keyword
        head_inputs = model.forward_transformer(**stages['visual'], **stages['text'])
    assert set(head_inputs) == {'hidden_states', 'references', 'mask_feats', 'video_queries', 'fused_sentence_feat'}
    for key, value in stages['head_inputs'].items():
        for ours, chained in zip(value if isinstance(value, list) else [value],
                                 head_inputs[key] if isinstance(value, list) else [head_inputs[key]]):
            assert torch.equal(ours, chained), key
    B = inputs.shape[0]
    assert_close(stages['text']['word_feats'], ref['txt_proj_calls'][0].transpose(0, 1))
    assert_close(stages['text']['sentence_feat'], ref['txt_proj_calls'][1])
    dt = ref['deformable_transformer']
    frame_queries = stages['decoder']['hidden_states']  # [L, (b t), nq, C]
    assert_close(frame_queries, dt['hs'])
    references = stages['decoder']['references']
    assert len(references) == frame_queries.shape[0] + 1
    assert_close(references[0], dt['init_reference'])
    assert_close(torch.stack(references[1:]), dt['inter_references'])
    assert_close(head_inputs['video_queries'], ref['voc']['voc_hs'])
    # head input: the frame queries of every layer plus the (eval: last layer's) video queries
    assert_close(head_inputs['hidden_states'],
                 rearrange(frame_queries, 'l (b t) q c -> l b t q c', b=B) + head_inputs['video_queries'][:, :, None])
    assert_close(rearrange(head_inputs['mask_feats'], 'b t d h w -> (t b) d h w'),
                 ref['spatial_decoder']['decoded_frame_features'], rtol=1e-4, atol=1e-4)
    assert_close(head_inputs['fused_sentence_feat'], load(variant, 'outputs_eval.pt')['text_sentence_feature'])
    if 'memory' in dt:  # main variant only
        memory, start = stages['encoder']['memory'], 0
        for (h, w), theirs in zip(stages['encoder']['spatial_shapes'].tolist(), dt['memory']):
            ours = rearrange(memory[:, start:start + h * w], 'n (h w) c -> n c h w', h=h, w=w)
            start += h * w
            assert_close(ours, theirs, rtol=0, atol=1e-4)
        assert_close(sampling.samples, dt['inter_samples'], rtol=0, atol=1e-4)
        with torch.no_grad():
            full = model.backbone(inputs)  # features of all frames, before frame selection
        for ours, theirs in zip(full, ref['backbone']['features']):
            assert_close(ours, theirs)
    assert head_inputs['hidden_states'].shape[:3] == (2, B, dt['hs'].shape[1] // B)


# ---------------------------------------------------------------- full outputs
@pytest.mark.parametrize('variant', VARIANTS)
def test_eval_outputs_match_official(variant):
    model = build_soc(variant)
    inputs, samples = fixture_batch(variant)
    with torch.no_grad():
        outs = official_outputs(model, inputs, samples)
    assert_outputs_close(outs, load(variant, 'outputs_eval.pt'))


@pytest.mark.parametrize('variant', VARIANTS)
def test_train_outputs_match_official(variant):
    model = zero_dropout(build_soc(variant)).train()
    inputs, samples = fixture_batch(variant)
    with torch.no_grad():
        outs = official_outputs(model, inputs, samples)
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


def test_golden_losses_unchanged_with_a_list_of_one_referred_object():
    """The official model's golden losses (tests/data/soc_reference) are reproduced whether the referred
    instance is given as an int ``ref_inst_idx`` or as a one-element list (bit for bit)."""
    from soc_mm.official.reference import _load, _loss_rows, build_reference_model, fixture_batch, zero_dropout
    fixture = osp.join(FIXTURE_ROOT, MAIN_VARIANT)
    torch.set_num_threads(1)
    model, _ = build_reference_model(fixture)
    zero_dropout(model).train()
    clips, samples = fixture_batch(_load(osp.join(fixture, 'inputs.pt')), with_targets=True)
    listed = []
    for s in samples:
        meta = dict(s.metainfo)
        meta['ref_inst_idx'] = [meta['ref_inst_idx']]
        listed.append(RVOSDataSample(metainfo=meta, gt_instances=s.gt_instances))
    by_index = model(clips, samples, mode='loss')
    by_list = model(clips, listed, mode='loss')
    assert by_index.keys() == by_list.keys()
    for name in by_index:
        assert torch.equal(by_index[name], by_list[name]), name
    rows = _loss_rows(model, by_list, _load(osp.join(fixture, 'losses_train.pt')))
    assert rows and all(r.ok for r in rows), [r for r in rows if not r.ok]


@pytest.mark.parametrize('variant', ['ytvos_b2_t3_nc1_w0', 'ytvos_b1_t10_nc1_w2'])
def test_fast_kernels_train_like_the_reference_kernels(variant):
    """The fused kernels (the model's default) also serve training: the reference kernels' losses
    and gradients, the relative-position bias tables (the fused window attention's mask) included."""
    inputs, samples = fixture_batch(variant, with_targets=True)
    results = []
    for fast in (False, True):
        model = zero_dropout(build_soc(variant, fast_kernels=fast)).train()
        losses = model(inputs, samples, mode='loss')
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        results.append((losses, {k: p.grad for k, p in model.named_parameters() if p.grad is not None}))
    (ref_losses, ref_grads), (fast_losses, fast_grads) = results
    assert ref_losses.keys() == fast_losses.keys() and ref_grads.keys() == fast_grads.keys()
    for k in ref_losses:
        torch.testing.assert_close(fast_losses[k], ref_losses[k], rtol=1e-4, atol=1e-6, msg=k)
    assert any('relative_position_bias_table' in k for k in ref_grads)
    assert any('sampling_offsets' in k for k in ref_grads)
    # float rounding: relative to each gradient's norm, with a floor of 1e-5 of the largest gradient
    floor = 1e-5 * max(float(g.norm()) for g in ref_grads.values())
    for k in ref_grads:
        assert float((fast_grads[k] - ref_grads[k]).norm()) <= 1e-3 * float(ref_grads[k].norm()) + floor, k


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
def test_output_layer_last_uses_last_layer_heads():
    variant = MAIN
    inputs, samples = fixture_batch(variant)
    model = build_soc(variant, test_cfg=dict(output_layer='last'))
    assert model.output_layer == 1 and model.bbox_head.test_options is model.test_options  # one object, parsed once
    with torch.no_grad():
        outs = official_outputs(model, inputs, samples)
        raw = model(inputs, samples, mode='tensor')
        predicted = model.predict(inputs, [s.clone() for s in samples])
        first = build_soc(variant).predict(inputs, [s.clone() for s in samples])
    assert_close(outs['pred_cls'], raw['cls'][1].transpose(0, 1))
    assert_close(outs['pred_boxes'], raw['boxes'][1].transpose(0, 1))
    # layer 0 (official eval output) differs
    assert (raw['cls'][0] - raw['cls'][1]).abs().max() > 1e-3
    prob = raw['cls'][1].sigmoid()  # [B, T, nq, K]: the scores predict reports come from layer 1
    for b, sample in enumerate(predicted):
        q = int(prob[b].mean(0).max(-1)[0].argmax())
        assert_close(sample.pred_scores, prob[b, :, q].max(-1)[0])
    assert any(not torch.equal(a.pred_scores, b.pred_scores) for a, b in zip(predicted, first))
    with pytest.raises(ValueError, match='output_layer'):
        build_soc(variant, test_cfg=dict(output_layer='middle'))


def test_old_output_level_name_is_an_error_naming_the_new_one():
    for build in (lambda cfg: build_soc(MAIN, test_cfg=cfg), lambda cfg: SOCHead(num_pred_layer=2, test_cfg=cfg)):
        with pytest.raises(ValueError, match=r'output_level was renamed test_cfg\.output_layer'):
            build(dict(output_level='first'))


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
