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


def test_voc_time_and_box_codes_run_in_soc_and_load_official_weights():
    """The VOC options of the MeViS experiments inside the whole model: official weights load strictly
    (no weights of their own), training and eval run, and the boxes reach VOC (outputs change)."""
    variant = MAIN_VARIANT
    inputs, samples = fixture_batch(variant, with_targets=True)
    official = zero_dropout(build_soc(variant))
    cfg = soc_config(variant)
    cfg['voc'] = dict(cfg['voc'], temporal_pos_encoding=dict(), box_encoding=True)
    coded = zero_dropout(MODELS.build(cfg))
    coded.load_state_dict(official.state_dict(), strict=True)
    coded.eval()
    with torch.no_grad():
        ref, out = official(inputs, samples, mode='tensor'), coded(inputs, samples, mode='tensor')
    assert (ref['video_queries'] - out['video_queries']).abs().max() > 1e-3
    losses = coded.train()(inputs, samples, mode='loss')
    assert all(torch.isfinite(v).all() for k, v in losses.items() if 'loss' in k)


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
        voc = model(inputs, samples, mode='tensor')['video_queries']
        alone = [model(inputs[b:b + 1], samples[b:b + 1], mode='tensor')['video_queries'] for b in range(2)]
    # per video by default: each video's result equals running it alone
    assert_close(voc, torch.cat(alone, 1), rtol=0, atol=1e-4)
    # ... and therefore differs from the official regrouped batch (README: up to ~0.18)
    assert (voc - ref).abs().max() > 1e-2


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


def test_query_propagation_decodes_each_frame_from_the_previous_one():
    """query_propagation: frame 0 is decoded as SOC does, frame t from frame t-1's last-layer queries
    and box centres (so a change in frame 0's memory reaches frame 1 of that video only); without it
    the frames are independent. Official weights load strictly (no weights of its own)."""
    variant = MAIN
    official = build_soc(variant)
    cfg = soc_config(variant)
    propagating = MODELS.build(dict(cfg, query_propagation=True))
    propagating.load_state_dict(official.state_dict(), strict=True)
    propagating.eval()
    B, T, S, C = 2, 3, 30, official.embed_dims
    g = torch.Generator().manual_seed(0)
    shapes = torch.tensor([[5, 4], [2, 3], [1, 2], [1, 2]])[:official.num_feature_levels]
    S = int((shapes[:, 0] * shapes[:, 1]).sum())
    memory = torch.randn(B * T, S, C, generator=g)
    level_start = torch.cat([shapes.new_zeros(1), (shapes[:, 0] * shapes[:, 1]).cumsum(0)[:-1]])

    def decode(model, mem):
        inputs = model.pre_decoder(mem, None, shapes)
        del inputs['memory']
        with torch.no_grad():
            return model.forward_decoder(**inputs, memory=mem, memory_mask=None, spatial_shapes=shapes,
                                         level_start_index=level_start,
                                         valid_ratios=torch.ones(B * T, len(shapes), 2), num_videos=B)

    plain, prop = decode(official, memory), decode(propagating, memory)
    frame = lambda out, b, t: out['hidden_states'][:, b * T + t]  # noqa: E731
    for b in range(B):
        torch.testing.assert_close(frame(prop, b, 0), frame(plain, b, 0))
        assert not torch.allclose(frame(prop, b, 1), frame(plain, b, 1))
    # frame 1 decoded alone from frame 0's outputs gives the propagated frame 1
    alone = official.decoder(query=prop['hidden_states'][-1, 0::T], query_pos=official.query_embedding.weight[None]
                             .expand(B, -1, -1), value=memory[1::T], key_padding_mask=None,
                             reference_points=prop['references'][-1][0::T, :, :2], spatial_shapes=shapes,
                             level_start_index=level_start, valid_ratios=torch.ones(B, len(shapes), 2),
                             reg_branches=official.bbox_head.reg_branches)[0]
    torch.testing.assert_close(alone.detach(), prop['hidden_states'][:, 1::T])
    assert len(prop['references']) == len(plain['references'])
    for ours, ref in zip(prop['references'], plain['references']):
        assert ours.shape == ref.shape
    # a change in video 0's frame 0 reaches its frame 1 (propagation) but not video 1, and not without it
    changed = memory.clone()
    changed[0] += 1.0
    plain2, prop2 = decode(official, changed), decode(propagating, changed)
    assert not torch.allclose(frame(prop2, 0, 1), frame(prop, 0, 1))
    torch.testing.assert_close(frame(prop2, 1, 1), frame(prop, 1, 1))
    torch.testing.assert_close(frame(plain2, 0, 1), frame(plain, 0, 1))
    # the whole model trains with it
    inputs, samples = fixture_batch(variant, with_targets=True)
    losses = zero_dropout(propagating).train()(inputs, samples, mode='loss')
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert propagating.query_embedding.weight.grad is not None
