"""SOC "back" modules (VOC, spatial decoder, heads, matcher, losses, post-processing) vs the
official golden fixtures (tests/data/soc_reference, see its README)."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import FIXTURE_ROOT, FIXTURE_VARIANTS, MAIN_VARIANT, load_fixture
import soc_mm  # noqa: F401  (shims + registration)
from mmengine.structures import InstanceData
from soc_mm.models.dense_heads import SOCHead
from soc_mm.models.layers import VOC, DynamicMaskHead, SOCSpatialDecoder, aligned_bilinear
from soc_mm.models.task_modules import (QueryTextCost, VideoBoxL1Cost, VideoDiceCost,
                                        VideoFocalClassCost, VideoGIoUCost, VideoHungarianAssigner)
from soc_mm.structures import RVOSDataSample
from soc_mm.official.checkpoint import convert_official_key, convert_official_state_dict
from soc_mm.official.loss_names import to_official_loss_name
from soc_mm.official.reference import load_fixture_state_dict

ROOT = FIXTURE_ROOT
VARIANTS = FIXTURE_VARIANTS
MAIN = MAIN_VARIANT

pytestmark = pytest.mark.skipif(not osp.isdir(ROOT), reason='SOC reference fixtures missing')

load = load_fixture


def official_sd(variant):
    return load_fixture_state_dict(osp.join(ROOT, variant), load(variant, 'config.json'))


def back_sd(variant, prefix):
    sd = convert_official_state_dict(official_sd(variant))
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


# ---------------------------------------------------------------------- state dict
def test_back_key_table_covers_official_and_modules():
    sd = official_sd(MAIN)
    back = convert_official_state_dict(sd)
    assert sum(k.startswith(('voc.', 'spatial_decoder.', 'bbox_head.')) for k in back) == 64 + 28 + 6 + 4 + 12
    assert convert_official_key('transformer.decoder.bbox_embed.0.layers.2.bias') is None
    with pytest.raises(KeyError):
        convert_official_key('voc.unknown.weight')
    voc, head = build_voc(MAIN), build_head(MAIN)
    assert set(back_sd(MAIN, 'voc.')) == set(voc.state_dict())
    dec = SOCSpatialDecoder(128, (128, 128, 16), 8)
    assert set(back_sd(MAIN, 'spatial_decoder.')) == set(dec.state_dict())
    assert head.mask_head.num_gen_params == 169
    bad = dict(sd)
    bad['transformer.decoder.bbox_embed.0.layers.0.bias'] = bad['bbox_embed.0.layers.0.bias'] + 1
    with pytest.raises(ValueError):
        convert_official_state_dict(bad)
    assert to_official_loss_name('loss_iou') == 'loss_giou'
    assert to_official_loss_name('d0.loss_mask') == 'loss_sigmoid_focal_0'


# ---------------------------------------------------------------------- VOC
@pytest.mark.parametrize('variant', VARIANTS)
def test_voc_eval_matches_official(variant):
    torch.set_num_threads(1)
    B, T = dims(variant)
    inter = load(variant, 'intermediates_eval.pt')
    voc = build_voc(variant).eval()
    frame_queries = regroup_official(inter['deformable_transformer']['hs'][-1:], B, T)
    with torch.no_grad():
        out = voc(frame_queries, inter['txt_proj_calls'][1])
    torch.testing.assert_close(out, inter['voc']['voc_hs'][0], rtol=0, atol=1e-5)


@pytest.mark.parametrize('variant', VARIANTS)
def test_voc_train_matches_official(variant):
    """Train mode: plain windows in every layer, VOC on all decoder layers (hs is identical to eval)."""
    torch.set_num_threads(1)
    B, T = dims(variant)
    inter, ref = load(variant, 'intermediates_eval.pt'), load(variant, 'outputs_train.pt')
    hs = inter['deformable_transformer']['hs']
    voc = build_voc(variant).train()
    with torch.no_grad():
        out = voc(regroup_official(hs, B, T), inter['txt_proj_calls'][1].repeat(len(hs), 1))
    out = out.view(len(hs), B, *out.shape[1:])
    torch.testing.assert_close(out[-1], ref['pred_logit'], rtol=0, atol=1e-5)
    torch.testing.assert_close(out[0], ref['aux_outputs'][0]['pred_logit'], rtol=0, atol=1e-5)


# ---------------------------------------------------------------------- spatial decoder
@pytest.mark.parametrize('window_size', [0, 2])
def test_voc_time_code_makes_frame_order_matter(window_size):
    """Official VOC (no time code) gives the same video queries for a clip and the clip played
    backwards, so "moves left" and "moves right" look alike to it; with ``temporal_pos_encoding``
    the order matters. The time code has no weights: official checkpoints load either way."""
    torch.manual_seed(0)
    kwargs = dict(embed_dims=32, num_heads=4, num_queries=3, num_frame_queries=3, num_encoder_layers=2,
                  num_decoder_layers=2, feedforward_channels=32, window_size=window_size)
    official = VOC(**kwargs).eval()
    timed = VOC(**kwargs, temporal_pos_encoding=dict()).eval()
    timed.load_state_dict(official.state_dict(), strict=True)
    frame_queries, sentence = torch.randn(2, 6, 3, 32), torch.randn(2, 32)
    with torch.no_grad():
        if window_size == 0:  # global attention over an unordered set of frames
            torch.testing.assert_close(official(frame_queries.flip(1), sentence), official(frame_queries, sentence),
                                       rtol=1e-5, atol=1e-5)
        forward, backward = timed(frame_queries, sentence), timed(frame_queries.flip(1), sentence)
    assert (forward - backward).abs().max() > 1e-2
    with pytest.raises(ValueError, match='temporal_pos_encoding.num_feats must be embed_dims=32'):
        VOC(**kwargs, temporal_pos_encoding=dict(num_feats=16))


def test_voc_box_encoding_sees_where_frame_queries_are():
    """With ``box_encoding`` the video queries depend on the frame queries' boxes (two trajectories,
    same hidden states, give different video queries); without it (official) the boxes are ignored."""
    torch.manual_seed(0)
    kwargs = dict(embed_dims=32, num_heads=4, num_queries=3, num_frame_queries=3, num_encoder_layers=1,
                  num_decoder_layers=1, feedforward_channels=32, temporal_pos_encoding=dict())
    official, boxed = VOC(**kwargs).eval(), VOC(**kwargs, box_encoding=True).eval()
    boxed.load_state_dict(official.state_dict(), strict=True)  # no weights of its own
    frame_queries, sentence = torch.randn(1, 4, 3, 32), torch.randn(1, 32)
    t = torch.linspace(0.2, 0.8, 4)[None, :, None]
    leftwards = torch.stack([1 - t, 0.5 + 0 * t, 0.1 + 0 * t, 0.1 + 0 * t], -1).expand(1, 4, 3, 4)
    rightwards = torch.stack([t, 0.5 + 0 * t, 0.1 + 0 * t, 0.1 + 0 * t], -1).expand(1, 4, 3, 4)
    with torch.no_grad():
        assert torch.equal(official(frame_queries, sentence, leftwards), official(frame_queries, sentence, rightwards))
        assert (boxed(frame_queries, sentence, leftwards) - boxed(frame_queries, sentence, rightwards)).abs().max() > 1e-2
    with pytest.raises(ValueError, match=r'box_encoding needs frame_boxes \[1, 4, 3, 4\], got None'):
        boxed(frame_queries, sentence)
    with pytest.raises(ValueError, match='box_encoding needs embed_dims divisible by 4'):
        VOC(embed_dims=30, num_heads=3, box_encoding=True)


def test_voc_motion_code_is_each_slots_displacement():
    """``motion_encoding``: each token's code is its box centre's displacement since frame 0 and since
    the previous frame: the same for two trajectories shifted as a whole, different for opposite
    motions, the code of zero displacement in frame 0; the video queries then depend on it."""
    from mmdet.models.layers.transformer.utils import coordinate_to_encoding
    torch.manual_seed(0)
    kwargs = dict(embed_dims=32, num_heads=4, num_queries=3, num_frame_queries=3, num_encoder_layers=1,
                  num_decoder_layers=1, feedforward_channels=32)
    official, moving = VOC(**kwargs).eval(), VOC(**kwargs, motion_encoding=True).eval()
    moving.load_state_dict(official.state_dict(), strict=True)  # no weights of its own
    t = torch.linspace(0.0, 0.3, 4)[None, :, None]  # [1, T, 1]

    def track(x0, direction):  # [1, T, 3, 4]: every slot moving from x0 in ``direction``
        return torch.stack([x0 + direction * t, 0.5 + 0 * t, 0.1 + 0 * t, 0.1 + 0 * t], -1).expand(1, 4, 3, 4)

    left, left_shifted, right = track(0.6, -1), track(0.7, -1), track(0.3, 1)
    code = moving.motion_code(left)
    assert code.shape == (1, 4, 3, 32)
    torch.testing.assert_close(code, moving.motion_code(left_shifted))
    assert (code - moving.motion_code(right)).abs().max() > 0.1
    still = coordinate_to_encoding(torch.full((1, 1, 2), 0.5), num_feats=8)[0, 0]
    torch.testing.assert_close(code[0, 0, 0], torch.cat([still, still]))  # frame 0: no displacement
    expected_start = coordinate_to_encoding(((-0.3 + 1) / 2 * torch.tensor([1.0, 0.0]) +
                                             torch.tensor([0.0, 0.5]))[None, None], num_feats=8)[0, 0]
    torch.testing.assert_close(code[0, 3, 0, :16], expected_start)
    frame_queries, sentence = torch.randn(1, 4, 3, 32), torch.randn(1, 32)
    with torch.no_grad():
        assert torch.equal(official(frame_queries, sentence, left), official(frame_queries, sentence, right))
        assert (moving(frame_queries, sentence, left) - moving(frame_queries, sentence, right)).abs().max() > 1e-2
    with pytest.raises(ValueError, match=r'motion_encoding needs frame_boxes \[1, 4, 3, 4\], got None'):
        moving(frame_queries, sentence)
    with pytest.raises(ValueError, match='motion_encoding needs embed_dims divisible by 4'):
        VOC(embed_dims=30, num_heads=3, motion_encoding=True)


def test_voc_per_slot_clustering_attends_to_its_slot_only():
    """``per_slot_clustering``: video query i's cross-attention weights are on frame-query slot i only
    (in every frame); official VOC spreads them over every slot."""
    torch.manual_seed(0)
    kwargs = dict(embed_dims=32, num_heads=4, num_queries=3, num_frame_queries=3, num_encoder_layers=1,
                  num_decoder_layers=2, feedforward_channels=32)
    T, nq = 4, 3
    slot_of_token = torch.arange(nq).repeat(T)  # tokens are (t, slot), slot fastest
    for per_slot in (False, True):
        voc = VOC(**kwargs, per_slot_clustering=per_slot).eval()
        weights = []
        for layer in voc.decoder_layers:
            layer.cross_attn.attn.register_forward_hook(lambda m, i, out: weights.append(out[1]))
        with torch.no_grad():
            voc(torch.randn(2, T, nq, 32), torch.randn(2, 32))
        assert len(weights) == 2
        for w in weights:  # [B, num_queries, T * nq], averaged over heads
            other_slot = slot_of_token[None] != torch.arange(nq)[:, None]
            off = w[:, other_slot].abs().max()
            assert (off == 0) if per_slot else (off > 1e-3)
            torch.testing.assert_close(w.sum(-1), torch.ones(2, nq))
    with pytest.raises(ValueError, match='per_slot_clustering needs num_queries == num_frame_queries, got 4 and 3'):
        VOC(**dict(kwargs, num_queries=4), per_slot_clustering=True)


def test_voc_sentence_product_starts_as_official_and_adds_a_bilinear_term():
    """``sentence_product``: after ``init_weights`` the VOC predicts exactly as without it (zero output
    projection; the other weights load from a plain VOC's state dict); its term is
    ``W_o((W_q q) * (W_s LN(s)))`` of the decoder's normed video queries q; the output projection gets
    a gradient at the start (so the term can grow)."""
    torch.manual_seed(0)
    kwargs = dict(embed_dims=32, num_heads=4, num_queries=3, num_frame_queries=3, num_encoder_layers=1,
                  num_decoder_layers=1, feedforward_channels=32, dropout=0.0)
    official, product = VOC(**kwargs), VOC(**kwargs, sentence_product=True)
    official.init_weights()
    product.init_weights()
    missing, unexpected = product.load_state_dict(official.state_dict(), strict=False)
    assert sorted(missing) == sorted(f'sentence_product.{n}.{p}' for n in ('query_proj', 'sentence_proj', 'out_proj')
                                     for p in ('weight', 'bias')) and not unexpected
    frame_queries, sentence = torch.randn(2, 4, 3, 32), torch.randn(2, 32) * 3 + 1
    torch.testing.assert_close(product(frame_queries, sentence), official(frame_queries, sentence))
    product(frame_queries, sentence).square().sum().backward()
    terms = product.sentence_product
    assert terms['out_proj'].weight.grad.abs().max() > 0
    with torch.no_grad():
        nn.init.normal_(terms['out_proj'].weight, std=0.3)
        nn.init.normal_(terms['query_proj'].bias, std=0.3)
        queries = official(frame_queries, sentence)  # the plain VOC's output = the decoder's normed queries
        variance = sentence.var(-1, unbiased=False, keepdim=True)
        unit = (sentence - sentence.mean(-1, keepdim=True)) / (variance + 1e-5).sqrt()
        q, s, o = (terms[name] for name in ('query_proj', 'sentence_proj', 'out_proj'))
        term = F.linear(F.linear(queries, q.weight, q.bias) * F.linear(unit, s.weight, s.bias)[:, None],
                        o.weight, o.bias)
        expected = queries + term
        torch.testing.assert_close(product(frame_queries, sentence), expected)


def test_voc_slot_motion_product_reads_each_slots_own_motion():
    """``slot_motion_product``: the product's query side adds ``W_m`` of the time-mean motion code of the
    video query's own slot (moving one slot's boxes changes that query's term only, before the zero
    output projection is trained too); it starts as the plain VOC; it refuses to run without the
    options it reads (motion code, slot = query, the product)."""
    torch.manual_seed(0)
    kwargs = dict(embed_dims=32, num_heads=4, num_queries=3, num_frame_queries=3, num_encoder_layers=1,
                  num_decoder_layers=1, feedforward_channels=32, dropout=0.0, motion_encoding=True,
                  per_slot_clustering=True, sentence_product=True)
    plain, voc = VOC(**kwargs), VOC(**kwargs, slot_motion_product=True)
    plain.init_weights()
    voc.init_weights()
    missing, unexpected = voc.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ['sentence_product.motion_proj.bias', 'sentence_product.motion_proj.weight']
    assert not unexpected
    frame_queries, sentence = torch.randn(2, 4, 3, 32), torch.randn(2, 32)
    boxes = torch.rand(2, 4, 3, 4)
    torch.testing.assert_close(voc(frame_queries, sentence, boxes), plain(frame_queries, sentence, boxes))
    terms = voc.sentence_product
    with torch.no_grad():
        nn.init.normal_(terms['out_proj'].weight, std=0.3)
        queries = plain(frame_queries, sentence, boxes)  # the normed decoder output (no term: zero W_o)
        motion = voc.motion_code(boxes).mean(1)  # [B, nq, C]
        expected = voc.sentence_product_term(queries, sentence) + F.linear(
            F.linear(motion, terms['motion_proj'].weight, terms['motion_proj'].bias)
            * F.linear(F.layer_norm(sentence, (32,)), terms['sentence_proj'].weight,
                       terms['sentence_proj'].bias)[:, None], terms['out_proj'].weight)
        torch.testing.assert_close(voc.sentence_product_term(queries, sentence, terms['motion_proj'](motion)),
                                   expected)
        # the forward pass adds exactly this term to the plain decoder output
        torch.testing.assert_close(voc(frame_queries, sentence, boxes), queries + expected)
        # slot 1 moves right in video 0: only video query (0, 1)'s product term changes through W_m
        moved = boxes.clone()
        moved[0, :, 1, 0] += torch.linspace(0, 0.3, 4)
        delta = (voc.sentence_product_term(queries, sentence, terms['motion_proj'](voc.motion_code(moved).mean(1)))
                 - voc.sentence_product_term(queries, sentence, terms['motion_proj'](motion))).abs().amax(-1)
        assert delta[0, 1] > 1e-3 and delta[0, [0, 2]].max() == 0 and delta[1].max() == 0
    for missing_option in ('motion_encoding', 'per_slot_clustering', 'sentence_product'):
        with pytest.raises(ValueError, match='slot_motion_product needs sentence_product, motion_encoding and '
                                             'per_slot_clustering'):
            VOC(**dict(kwargs, **{missing_option: False}), slot_motion_product=True)


def _trajectory_centres(kind: str, num_frames: int) -> torch.Tensor:
    """Centres [T, 2] of one object over a clip: 'left' (constant speed), 'still', 'stop' (moves right
    during the first half, then stays)."""
    u = torch.linspace(0, 1, num_frames)
    x = {'left': 0.7 - 0.4 * u, 'still': torch.full_like(u, 0.5), 'stop': 0.2 + 0.4 * (2 * u).clamp(max=1)}[kind]
    return torch.stack([x, torch.full_like(u, 0.4)], -1)


def test_voc_slot_trajectory_descriptor():
    """``slot_trajectory``: P = 4 evenly spaced points of each slot's centre -> per segment and for the whole
    clip (dx, dy, length) x STEP_SCALE; the same motion over 7 or 13 frames gives the same descriptor; it
    tells "stays still" (all zero), "stops moving" (last segment zero) and "moves left" (three equal
    negative dx) apart."""
    s = VOC.STEP_SCALE
    for kind in ('left', 'still', 'stop'):
        short, long_ = (_trajectory_centres(kind, t)[None, :, None] for t in (7, 13))
        torch.testing.assert_close(VOC.slot_trajectory(short), VOC.slot_trajectory(long_))
    clip = torch.stack([_trajectory_centres(k, 13) for k in ('left', 'still', 'stop')], 1)[None]  # [1, T, 3, 2]
    desc = VOC.slot_trajectory(torch.cat([clip, torch.full_like(clip, 0.1)], -1)).view(3, 4, 3)  # boxes: w, h
    left, still, stop = desc
    torch.testing.assert_close(left[:3], torch.tensor([[-0.4 / 3 * s, 0, 0.4 / 3 * s]] * 3))
    torch.testing.assert_close(left[3], torch.tensor([-0.4 * s, 0, 0.4 * s]))
    assert still.abs().max() == 0
    torch.testing.assert_close(stop[:, 0], torch.tensor([0.4 / 1.5 * s, 0.4 / 3 * s, 0.0, 0.4 * s]))
    assert stop[:, 1].abs().max() == 0


def test_voc_trajectory_motion_product_reads_each_slots_own_trajectory():
    """``slot_motion_product='trajectory'``: the product's query side adds the trajectory MLP of the video
    query's own slot; it starts as the plain VOC; unknown values are refused."""
    torch.manual_seed(0)
    kwargs = dict(embed_dims=32, num_heads=4, num_queries=3, num_frame_queries=3, num_encoder_layers=1,
                  num_decoder_layers=1, feedforward_channels=32, dropout=0.0, motion_encoding=True,
                  per_slot_clustering=True, sentence_product=True)
    plain, voc = VOC(**kwargs), VOC(**kwargs, slot_motion_product='trajectory')
    plain.init_weights()
    voc.init_weights()
    missing, _ = voc.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == [f'sentence_product.trajectory_mlp.{i}.{p}' for i in (0, 2) for p in ('bias', 'weight')]
    frame_queries, sentence, boxes = torch.randn(2, 5, 3, 32), torch.randn(2, 32), torch.rand(2, 5, 3, 4)
    torch.testing.assert_close(voc(frame_queries, sentence, boxes), plain(frame_queries, sentence, boxes))
    terms = voc.sentence_product
    with torch.no_grad():
        nn.init.normal_(terms['out_proj'].weight, std=0.3)
        queries = plain(frame_queries, sentence, boxes)
        motion = terms['trajectory_mlp'](VOC.slot_trajectory(boxes))
        torch.testing.assert_close(voc(frame_queries, sentence, boxes),
                                   queries + voc.sentence_product_term(queries, sentence, motion))
        # slot 2 of video 1 moves up: only video query (1, 2)'s product term changes through the MLP
        moved = boxes.clone()
        moved[1, :, 2, 1] -= torch.linspace(0, 0.3, 5)
        moved_motion = terms['trajectory_mlp'](VOC.slot_trajectory(moved))
        delta = (voc.sentence_product_term(queries, sentence, moved_motion)
                 - voc.sentence_product_term(queries, sentence, motion)).abs().amax(-1)
        assert delta[1, 2] > 1e-3 and delta[1, :2].max() == 0 and delta[0].max() == 0
    with pytest.raises(ValueError, match="slot_motion_product must be False, True or 'trajectory', got 'mean'"):
        VOC(**kwargs, slot_motion_product='mean')


def test_spatial_decoder_matches_official():
    torch.set_num_threads(1)
    B, T = dims(MAIN)
    inter = load(MAIN, 'intermediates_eval.pt')
    memory = inter['deformable_transformer']['memory']  # strides 8, 16, 32, order (b t)
    f0 = inter['backbone']['features'][0]
    dec = SOCSpatialDecoder(128, (128, 128, f0.shape[1]), 8)
    dec.load_state_dict(back_sd(MAIN, 'spatial_decoder.'), strict=True)
    with torch.no_grad():
        out = dec(memory[2], [memory[1], memory[0], f0])
    expected = inter['spatial_decoder']['decoded_frame_features']  # (t b)
    expected = expected.view(T, B, *expected.shape[1:]).transpose(0, 1).reshape_as(out)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------- heads
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


def assert_layer(ours, ref):
    cls, boxes, masks = ours
    torch.testing.assert_close(cls, tb_to_bt(ref['pred_cls']), rtol=0, atol=1e-5)
    torch.testing.assert_close(boxes, tb_to_bt(ref['pred_boxes']), rtol=0, atol=1e-5)
    torch.testing.assert_close(masks, tb_to_bt(ref['pred_masks']), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize('variant', VARIANTS)
def test_head_eval_outputs_match_official(variant):
    """Eval: last-layer VOC added to every decoder layer, layer-0 heads reported."""
    torch.set_num_threads(1)
    voc = load(variant, 'intermediates_eval.pt')['voc']['voc_hs'][0]
    hidden, refs, feats, sizes = head_inputs(variant, [voc, voc])
    head = build_head(variant).eval()
    with torch.no_grad():
        out = head.forward_single(hidden[0], refs[0], refs[1][..., :2], feats, sizes, 0)
    assert_layer(out, load(variant, 'outputs_eval.pt'))


@pytest.mark.parametrize('variant', VARIANTS)
def test_head_train_outputs_match_official(variant):
    torch.set_num_threads(1)
    ref = load(variant, 'outputs_train.pt')
    hidden, refs, feats, sizes = head_inputs(
        variant, [ref['aux_outputs'][0]['pred_logit'], ref['pred_logit']])
    head = build_head(variant).train()
    with torch.no_grad():
        all_cls, all_boxes, all_masks = head(hidden, refs, feats, sizes)
    assert all_cls.shape[0] == 2
    assert_layer((all_cls[1], all_boxes[1], all_masks[1]), ref)
    assert_layer((all_cls[0], all_boxes[0], all_masks[0]), ref['aux_outputs'][0])
    with pytest.raises(ValueError, match='references'):
        head(hidden, refs[:-1], feats, sizes)


# ---------------------------------------------------------------------- matcher + losses
def train_level_outputs(variant):
    ref = load(variant, 'outputs_train.pt')
    levels = [ref['aux_outputs'][0], ref]
    stack = lambda k: torch.stack([tb_to_bt(o[k]) for o in levels])  # noqa: E731
    return (stack('pred_cls'), stack('pred_boxes'), stack('pred_masks'),
            torch.stack([o['pred_logit'] for o in levels]), ref['text_sentence_feature'])


@pytest.mark.parametrize('variant', VARIANTS)
def test_matcher_and_losses_match_official(variant):
    torch.set_num_threads(1)
    golden = load(variant, 'losses_train.pt')
    cls, boxes, masks, voc, sent = train_level_outputs(variant)
    head = build_head(variant, train_cfg=dict(referred_only=False))
    samples = data_samples(variant)

    indices = head.match(cls, boxes, masks, voc, sent, samples)
    order = {'final': 1, 'aux_0': 0}
    for call, expected in zip(golden['matcher_call_order'], golden['matcher_indices']):
        for (q, g), (eq, eg) in zip(indices[order[call]], expected):
            assert torch.equal(q, eq) and torch.equal(g, eg), (call, q, g, eq, eg)

    losses = head.loss_by_feat(cls, boxes, masks, voc, sent, samples)
    weights = golden['weight_dict']
    assert len(losses) == len(golden['loss_dict'])
    total = 0
    for name, value in losses.items():
        official = to_official_loss_name(name)
        expected = golden['loss_dict'][official] * weights[official]
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6, msg=lambda m: f'{name}: {m}')
        total = total + value
    torch.testing.assert_close(total, golden['total_weighted_loss'], rtol=2e-5, atol=1e-5)


def test_losses_backpropagate_and_referred_only_mode():
    cls, boxes, masks, voc, sent = train_level_outputs('a2d_b2_t3_nc1_w0')
    cls, masks = cls.clone().requires_grad_(), masks.clone().requires_grad_()
    samples = data_samples('a2d_b2_t3_nc1_w0')
    head = build_head('a2d_b2_t3_nc1_w0', train_cfg=dict(referred_only=True))
    losses = head.loss_by_feat(cls, boxes, masks, voc, sent, samples)
    sum(losses.values()).backward()
    assert cls.grad.abs().sum() > 0 and masks.grad.abs().sum() > 0
    # referred-only: every video has one target -> one matched query each
    for q, g in head.match(cls, boxes, masks, voc, sent, samples)[1]:
        assert len(q) == 1 and g.tolist() == [0]


def test_contrastive_loss_temperature():
    """Default = SOC's division by C (the fixtures check the value); a temperature divides instead,
    and a query-free video counts in the mean with 0."""
    from soc_mm.models.losses import QuerySentenceContrastiveLoss
    g = torch.Generator().manual_seed(0)
    q, s = torch.randn(2, 5, 16, generator=g), torch.randn(2, 16, generator=g)
    target = torch.tensor([3, -1])
    expect = lambda t: -torch.log_softmax((q[0] @ s[0]) / t, 0)[3] / 2  # noqa: E731
    assert torch.allclose(QuerySentenceContrastiveLoss()(q, s, target), expect(16.0))
    loss = QuerySentenceContrastiveLoss(loss_weight=2.0, temperature=4.0)
    assert torch.allclose(loss(q, s, target), 2 * expect(4.0))
    with pytest.raises(ValueError, match='temperature'):
        QuerySentenceContrastiveLoss(temperature=0.0)


def test_bad_ref_inst_idx_is_a_clear_error():
    cls, boxes, masks, voc, sent = train_level_outputs(MAIN)
    samples = data_samples(MAIN)
    samples[0].set_metainfo(dict(ref_inst_idx=7))
    with pytest.raises(ValueError, match='ref_inst_idx'):
        build_head(MAIN).loss_by_feat(cls, boxes, masks, voc, sent, samples)


def _video_instances(T=3, N=3, nq=4, H=8, W=8, seed=0):
    """Targets and predictions where query perm[j] reproduces target j exactly."""
    g = torch.Generator().manual_seed(seed)
    gt_masks = torch.zeros(N, T, H, W)
    boxes = torch.zeros(N, T, 4)
    for j in range(N):
        for t in range(T):
            y0, x0 = torch.randint(0, H // 2, (2,), generator=g).tolist()
            gt_masks[j, t, y0:y0 + 3, x0:x0 + 3] = 1
            boxes[j, t] = torch.tensor([(x0 + 1.5) / W, (y0 + 1.5) / H, 3 / W, 3 / H])
    perm = [2, 0, 3][:N]  # target j <- query perm[j]; query 1 is junk
    pred_masks = torch.full((nq, T, H, W), -8.0)
    pred_boxes = torch.rand(nq, T, 4, generator=g) * 0.2 + 0.4
    scores = torch.full((nq, T, 1), -3.0)
    for j, q in enumerate(perm):
        pred_masks[q] = gt_masks[j] * 16 - 8
        pred_boxes[q] = boxes[j]
        scores[q] = 3.0
    gt = InstanceData(masks=gt_masks, boxes=boxes, labels=torch.zeros(N, dtype=torch.long),
                      visible=gt_masks.flatten(2).any(-1))
    pred = InstanceData(masks=pred_masks, boxes=pred_boxes, scores=scores)
    return pred, gt, perm


def test_matcher_multi_instance_multi_frame_known_optimum():
    """Several instances per video with T > 1 (the official matcher cannot do this)."""
    assigner = VideoHungarianAssigner([dict(type='VideoFocalClassCost', weight=2.0),
                                       dict(type='VideoDiceCost', weight=5.0),
                                       dict(type='VideoBoxL1Cost', weight=2.0),
                                       dict(type='VideoGIoUCost', weight=2.0)])
    for seed in range(3):
        pred, gt, perm = _video_instances(seed=seed)
        q, g = assigner.match(pred, gt)
        assert dict(zip(g.tolist(), q.tolist())) == dict(enumerate(perm))
        assert q.tolist() == sorted(q.tolist())
    # more targets than queries: every query is used once
    pred, gt, _ = _video_instances(N=3, nq=4)
    q, g = assigner.match(pred[:2], gt)
    assert len(q) == 2 and len(set(g.tolist())) == 2


def test_video_costs_average_per_frame():
    pred, gt, _ = _video_instances(T=3, N=2, nq=4, seed=1)
    gt.visible[1, 1] = False
    T = 3
    # dice: mean over frames of the per-frame dice coefficient
    dice = VideoDiceCost(weight=1.0)(pred, gt)
    p = pred.masks.sigmoid()
    for q in range(4):
        for j in range(2):
            per_frame = [(2 * (p[q, t] * gt.masks[j, t]).sum() + 1) / (p[q, t].sum() + gt.masks[j, t].sum() + 1)
                         for t in range(T)]
            assert torch.allclose(dice[q, j], -torch.stack(per_frame).mean(), atol=1e-6)
    # class: only visible frames; an instance visible nowhere falls back to all frames
    pred.scores = torch.randn(4, T, 1)
    cost = VideoFocalClassCost(weight=1.0)(pred, gt)
    prob = pred.scores.sigmoid()[..., 0]
    per = 0.25 * (1 - prob) ** 2 * -(prob + 1e-8).log() - 0.75 * prob ** 2 * -(1 - prob + 1e-8).log()
    assert torch.allclose(cost[:, 0], per.mean(1), atol=1e-6)
    assert torch.allclose(cost[:, 1], per[:, [0, 2]].mean(1), atol=1e-6)
    gt.visible[1] = False
    assert torch.allclose(VideoFocalClassCost()(pred, gt)[:, 1], per.mean(1), atol=1e-6)
    # boxes: mean over frames (absent frames included)
    l1 = VideoBoxL1Cost()(pred, gt)
    assert torch.allclose(l1[1, 0], (pred.boxes[1] - gt.boxes[0]).abs().sum(-1).mean(), atol=1e-6)
    giou = VideoGIoUCost()(pred, gt)
    assert giou.shape == (4, 2) and (giou >= -1 - 1e-5).all() and (giou <= 1).all()
    # text: -softmax over queries of <query, sentence>, identical for every target
    pred.query_embeds = torch.randn(4, 6)
    sentence = torch.randn(6)
    pred.sentence_feat = sentence.expand(4, 6)
    text = QueryTextCost(weight=1.0)(pred, gt)
    expected = -(pred.query_embeds @ sentence).softmax(0)
    assert torch.allclose(text[:, 0], expected) and torch.equal(text[:, 0], text[:, 1])


def test_zero_weight_text_cost_keeps_official_assignment():
    cls, boxes, masks, voc, sent = train_level_outputs(MAIN)
    costs = [dict(type='QueryTextCost', weight=0.0), dict(type='VideoFocalClassCost', weight=2.0),
             dict(type='VideoDiceCost', weight=5.0), dict(type='VideoBoxL1Cost', weight=2.0),
             dict(type='VideoGIoUCost', weight=2.0)]
    head = build_head(MAIN, train_cfg=dict(assigner=dict(type='VideoHungarianAssigner', match_costs=costs)))
    indices = head.match(cls, boxes, masks, voc, sent, data_samples(MAIN))
    expected = load(MAIN, 'losses_train.pt')['matcher_indices'][0]  # 'final'
    assert all(torch.equal(q, eq) and torch.equal(g, eg) for (q, g), (eq, eg) in zip(indices[1], expected))


# ---------------------------------------------------------------------- post-processing
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


@pytest.mark.parametrize('variant', VARIANTS)
def test_predict_matches_official_postprocess(variant):
    ref, golden = load(variant, 'outputs_eval.pt'), load(variant, 'postprocess.pt')
    head = build_head(variant, test_cfg=dict(return_all_queries=True))
    metas = [s.metainfo for s in eval_samples(variant)]
    results = head.predict_by_feat(tb_to_bt(ref['pred_cls']), tb_to_bt(ref['pred_masks']), metas)
    B, T = dims(variant)
    assert all(len(r) == T for r in results)  # one item per frame
    if 'ref_youtube_vos' in golden:
        for meta, result, video in zip(metas, results, golden['ref_youtube_vos']['outputs']):
            assert tuple(meta['ori_shape']) == tuple(video['original_frame_size'])
            assert torch.equal(result.masks, video['pred_masks'][:, 0].bool())
            assert result.scores.shape == (T,)
    frames = golden['a2d_sentences']['outputs']
    assert len(frames) == T * B
    for f, frame in enumerate(frames):
        t, b = divmod(f, B)
        result = results[b]
        torch.testing.assert_close(result.query_scores[t], frame['scores'], rtol=0, atol=1e-6)
        assert torch.equal(result.masks[t], result.query_masks[t, result.query_index[t]])
        if 'masks' in frame:
            assert torch.equal(result.query_masks[t], frame['masks'][:, 0].bool())
        else:
            mask_util = pytest.importorskip('pycocotools.mask')
            for q, rle in enumerate(frame['rle_masks']):
                decoded = torch.from_numpy(mask_util.decode(rle)).bool()
                assert torch.equal(result.query_masks[t, q], decoded)


# ---------------------------------------------------------------------- small units
def test_aligned_bilinear_and_dynamic_head_shapes():
    x = torch.randn(2, 3, 5, 7)
    assert aligned_bilinear(x, 1) is x
    up = aligned_bilinear(x, 2)
    assert up.shape == (2, 3, 10, 14)
    # CondInst alignment: odd output pixels (stride-2 centres) reproduce the input exactly
    torch.testing.assert_close(up[..., 1::2, 1::2], x, rtol=0, atol=1e-6)
    from mmdet.models.utils import aligned_bilinear as mmdet_aligned_bilinear
    assert aligned_bilinear is mmdet_aligned_bilinear  # reused, not re-implemented
    # the head only calls it with an integer factor feat_stride // out_stride
    with pytest.raises(ValueError, match='feat_stride 6 must be a multiple of out_stride 4'):
        DynamicMaskHead(feat_stride=6, out_stride=4)
    head = DynamicMaskHead(in_channels=8, channels=8, num_layers=3, rel_coord=True, feat_stride=8, out_stride=4)
    assert head.num_gen_params == (10 * 8 + 8 * 8 + 8) + (8 + 8 + 1)
    out = head(torch.randn(2, 3, 8, 4, 6), torch.randn(2, 3, 5, head.num_gen_params), torch.rand(2, 3, 5, 2),
               torch.tensor([[32, 48], [30, 40]]))
    assert out.shape == (2, 3, 5, 8, 12)
    with pytest.raises(ValueError):
        head(torch.randn(2, 3, 8, 4, 6), torch.randn(2, 3, 5, 7), torch.rand(2, 3, 5, 2), torch.ones(2, 2))


def test_voc_shapes_and_errors():
    voc = VOC(embed_dims=32, num_heads=4, num_queries=3, num_frame_queries=4, num_encoder_layers=2,
              num_decoder_layers=1, feedforward_channels=32, window_size=3)
    voc.init_weights()
    for mode in (voc.train, voc.eval):
        mode()
        assert voc(torch.randn(2, 5, 4, 32), torch.randn(2, 32)).shape == (2, 3, 32)
    with pytest.raises(ValueError, match='num_frame_queries'):
        voc(torch.randn(2, 5, 3, 32), torch.randn(2, 32))


# ---------------------------------------------------------------------- init
def test_init_weights_match_official_init_statistics():
    """Zero / constant patterns and spreads of our init equal the unperturbed official init."""
    torch.manual_seed(0)
    stats = load('common', 'official_init_stats.json')['num_classes_1']
    voc = VOC(embed_dims=128, num_heads=8, num_queries=5, num_frame_queries=5, num_encoder_layers=2,
              num_decoder_layers=2, feedforward_channels=128)
    dec = SOCSpatialDecoder(128, (128, 128, 16), 8)
    head = SOCHead(num_classes=1, embed_dims=128, num_pred_layer=2)
    ours = {}
    for prefix, module in (('voc.', voc), ('spatial_decoder.', dec), ('bbox_head.', head)):
        module.init_weights()
        ours.update({prefix + k: v for k, v in module.state_dict().items()})
    checked = 0
    for key, s in stats.items():
        if not key.startswith(('voc.', 'spatial_decoder.', 'controller.', 'class_embed.', 'bbox_embed.')):
            continue
        x = ours[convert_official_key(key)].float()
        assert list(x.shape) == s['shape'], key
        assert bool((x == 0).all()) == s['all_zero'], key
        assert bool((x == x.flatten()[0]).all()) == s['constant'], key
        if s['constant']:
            assert abs(x.flatten()[0].item() - s['mean']) < 1e-5, key
        elif x.numel() > 16:
            assert abs(x.std().item() - s['std']) < 0.25 * s['std'], (key, x.std().item(), s['std'])
            bound = max(abs(s['min']), abs(s['max']))
            if bound < 2.5 * s['std']:  # uniform init: same bound
                assert x.abs().max().item() <= 1.01 * bound, key
        checked += 1
    assert checked == 64 + 28 + 6 + 4 + 12
    assert torch.equal(head.cls_branches[0].weight,
                       head.cls_branches[1].weight)
    assert torch.equal(head.reg_branches[0].layers[0].weight, head.reg_branches[1].layers[0].weight)
    assert head.reg_branches[0].layers[-1].bias.tolist() == [0, 0, -2, -2]


@pytest.mark.parametrize('variant', [MAIN, 'a2d_b2_t3_nc1_w0'])
def test_head_loss_and_predict_entry_points(variant):
    """``loss``/``predict`` (forward + by_feat) from the official internal tensors."""
    torch.set_num_threads(1)
    ref, golden = load(variant, 'outputs_train.pt'), load(variant, 'losses_train.pt')
    voc = torch.stack([ref['aux_outputs'][0]['pred_logit'], ref['pred_logit']])
    hidden, refs, feats, _ = head_inputs(variant, list(voc))
    head = build_head(variant)
    losses = head.loss(hidden, refs, feats, voc, ref['text_sentence_feature'], data_samples(variant))
    torch.testing.assert_close(sum(losses.values()), golden['total_weighted_loss'], rtol=1e-5, atol=1e-5)

    voc_eval = load(variant, 'intermediates_eval.pt')['voc']['voc_hs'][0]
    hidden, refs, feats, _ = head_inputs(variant, [voc_eval, voc_eval])
    with torch.no_grad():
        results = head.eval().predict(hidden, refs, feats, eval_samples(variant))
    post = load(variant, 'postprocess.pt')
    if 'ref_youtube_vos' in post:
        for result, video in zip(results, post['ref_youtube_vos']['outputs']):
            assert torch.equal(result.masks, video['pred_masks'][:, 0].bool())
    else:
        assert results[0].masks.shape == (1, 90, 135)
