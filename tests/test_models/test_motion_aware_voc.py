"""MotionAwareVOC (soc_mm/models/layers/motion_aware_voc.py), SOC's VOC with the options of the MeViS
experiments: temporal_pos_encoding, box_encoding, motion_encoding, per_slot_clustering, sentence_product,
slot_motion_product (True / 'trajectory'); the paper's VOC takes none of them."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import soc_mm  # noqa: F401  (shims + registration)
from soc_mm.models.layers import VOC, MotionAwareVOC
from soc_mm.registry import MODELS


@pytest.mark.parametrize('window_size', [0, 2])
def test_voc_time_code_makes_frame_order_matter(window_size):
    """Official VOC (no time code) gives the same video queries for a clip and the clip played
    backwards, so "moves left" and "moves right" look alike to it; with ``temporal_pos_encoding``
    the order matters. The time code has no weights: official checkpoints load either way."""
    torch.manual_seed(0)
    kwargs = dict(embed_dims=32, num_heads=4, num_queries=3, num_frame_queries=3, num_encoder_layers=2,
                  num_decoder_layers=2, feedforward_channels=32, window_size=window_size)
    official = VOC(**kwargs).eval()
    timed = MotionAwareVOC(**kwargs, temporal_pos_encoding=dict()).eval()
    timed.load_state_dict(official.state_dict(), strict=True)
    frame_queries, sentence = torch.randn(2, 6, 3, 32), torch.randn(2, 32)
    with torch.no_grad():
        if window_size == 0:  # global attention over an unordered set of frames
            torch.testing.assert_close(official(frame_queries.flip(1), sentence), official(frame_queries, sentence),
                                       rtol=1e-5, atol=1e-5)
        forward, backward = timed(frame_queries, sentence), timed(frame_queries.flip(1), sentence)
    assert (forward - backward).abs().max() > 1e-2
    with pytest.raises(ValueError, match='temporal_pos_encoding.num_feats must be embed_dims=32'):
        MotionAwareVOC(**kwargs, temporal_pos_encoding=dict(num_feats=16))


def test_voc_box_encoding_sees_where_frame_queries_are():
    """With ``box_encoding`` the video queries depend on the frame queries' boxes (two trajectories,
    same hidden states, give different video queries); without it (official) the boxes are ignored."""
    torch.manual_seed(0)
    kwargs = dict(embed_dims=32, num_heads=4, num_queries=3, num_frame_queries=3, num_encoder_layers=1,
                  num_decoder_layers=1, feedforward_channels=32, temporal_pos_encoding=dict())
    official, boxed = MotionAwareVOC(**kwargs).eval(), MotionAwareVOC(**kwargs, box_encoding=True).eval()
    boxed.load_state_dict(official.state_dict(), strict=True)  # no weights of its own
    frame_queries, sentence = torch.randn(1, 4, 3, 32), torch.randn(1, 32)
    t = torch.linspace(0.2, 0.8, 4)[None, :, None]
    leftwards = torch.stack([1 - t, 0.5 + 0 * t, 0.1 + 0 * t, 0.1 + 0 * t], -1).expand(1, 4, 3, 4)
    rightwards = torch.stack([t, 0.5 + 0 * t, 0.1 + 0 * t, 0.1 + 0 * t], -1).expand(1, 4, 3, 4)
    with torch.no_grad():
        assert torch.equal(official(frame_queries, sentence, leftwards), official(frame_queries, sentence, rightwards))
        difference = boxed(frame_queries, sentence, leftwards) - boxed(frame_queries, sentence, rightwards)
        assert difference.abs().max() > 1e-2
    with pytest.raises(ValueError, match=r'box_encoding needs frame_boxes \[1, 4, 3, 4\], got None'):
        boxed(frame_queries, sentence)
    with pytest.raises(ValueError, match='box_encoding needs embed_dims divisible by 4'):
        MotionAwareVOC(embed_dims=30, num_heads=3, box_encoding=True)


def test_voc_motion_code_is_each_slots_displacement():
    """``motion_encoding``: each token's code is its box centre's displacement since frame 0 and since
    the previous frame: the same for two trajectories shifted as a whole, different for opposite
    motions, the code of zero displacement in frame 0; the video queries then depend on it."""
    from mmdet.models.layers.transformer.utils import coordinate_to_encoding
    torch.manual_seed(0)
    kwargs = dict(embed_dims=32, num_heads=4, num_queries=3, num_frame_queries=3, num_encoder_layers=1,
                  num_decoder_layers=1, feedforward_channels=32)
    official, moving = VOC(**kwargs).eval(), MotionAwareVOC(**kwargs, motion_encoding=True).eval()
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
        MotionAwareVOC(embed_dims=30, num_heads=3, motion_encoding=True)


def test_voc_per_slot_clustering_attends_to_its_slot_only():
    """``per_slot_clustering``: video query i's cross-attention weights are on frame-query slot i only
    (in every frame); official VOC spreads them over every slot."""
    torch.manual_seed(0)
    kwargs = dict(embed_dims=32, num_heads=4, num_queries=3, num_frame_queries=3, num_encoder_layers=1,
                  num_decoder_layers=2, feedforward_channels=32)
    T, nq = 4, 3
    slot_of_token = torch.arange(nq).repeat(T)  # tokens are (t, slot), slot fastest
    for per_slot in (False, True):
        voc = MotionAwareVOC(**kwargs, per_slot_clustering=per_slot).eval()
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
        MotionAwareVOC(**dict(kwargs, num_queries=4), per_slot_clustering=True)


def test_voc_sentence_product_starts_as_official_and_adds_a_bilinear_term():
    """``sentence_product``: after ``init_weights`` the VOC predicts exactly as without it (zero output
    projection; the other weights load from a plain VOC's state dict); its term is
    ``W_o((W_q q) * (W_s LN(s)))`` of the decoder's normed video queries q; the output projection gets
    a gradient at the start (so the term can grow)."""
    torch.manual_seed(0)
    kwargs = dict(embed_dims=32, num_heads=4, num_queries=3, num_frame_queries=3, num_encoder_layers=1,
                  num_decoder_layers=1, feedforward_channels=32, dropout=0.0)
    official, product = VOC(**kwargs), MotionAwareVOC(**kwargs, sentence_product=True)
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
    plain, voc = MotionAwareVOC(**kwargs), MotionAwareVOC(**kwargs, slot_motion_product=True)
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
            MotionAwareVOC(**dict(kwargs, **{missing_option: False}), slot_motion_product=True)


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
    s = MotionAwareVOC.STEP_SCALE
    for kind in ('left', 'still', 'stop'):
        short, long_ = (_trajectory_centres(kind, t)[None, :, None] for t in (7, 13))
        torch.testing.assert_close(MotionAwareVOC.slot_trajectory(short), MotionAwareVOC.slot_trajectory(long_))
    clip = torch.stack([_trajectory_centres(k, 13) for k in ('left', 'still', 'stop')], 1)[None]  # [1, T, 3, 2]
    boxes = torch.cat([clip, torch.full_like(clip, 0.1)], -1)  # w, h
    desc = MotionAwareVOC.slot_trajectory(boxes).view(3, 4, 3)
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
    plain, voc = MotionAwareVOC(**kwargs), MotionAwareVOC(**kwargs, slot_motion_product='trajectory')
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
        motion = terms['trajectory_mlp'](MotionAwareVOC.slot_trajectory(boxes))
        torch.testing.assert_close(voc(frame_queries, sentence, boxes),
                                   queries + voc.sentence_product_term(queries, sentence, motion))
        # slot 2 of video 1 moves up: only video query (1, 2)'s product term changes through the MLP
        moved = boxes.clone()
        moved[1, :, 2, 1] -= torch.linspace(0, 0.3, 5)
        moved_motion = terms['trajectory_mlp'](MotionAwareVOC.slot_trajectory(moved))
        delta = (voc.sentence_product_term(queries, sentence, moved_motion)
                 - voc.sentence_product_term(queries, sentence, motion)).abs().amax(-1)
        assert delta[1, 2] > 1e-3 and delta[1, :2].max() == 0 and delta[0].max() == 0
    with pytest.raises(ValueError, match="slot_motion_product must be False, True or 'trajectory', got 'mean'"):
        MotionAwareVOC(**kwargs, slot_motion_product='mean')


OPTIONS = dict(temporal_pos_encoding=dict(), box_encoding=True, motion_encoding=True, per_slot_clustering=True,
               sentence_product=True, slot_motion_product='trajectory')
SIZES = dict(embed_dims=32, num_heads=4, num_queries=3, num_frame_queries=3, num_encoder_layers=1,
             num_decoder_layers=1, feedforward_channels=32, dropout=0.0)


def test_paper_voc_takes_none_of_the_options():
    """The options are MotionAwareVOC's: the paper's VOC refuses them, and its source does not name them."""
    import inspect

    from soc_mm.models.layers import voc as voc_module
    for option, value in OPTIONS.items():
        with pytest.raises(TypeError, match=option):
            VOC(**SIZES, **{option: value})
    source = inspect.getsource(voc_module)
    for name in (*OPTIONS, 'STEP_SCALE', 'TRAJECTORY', 'slot_trajectory', 'motion_code', 'frame_time_pos'):
        assert name not in source, name
    assert VOC.needs_frame_boxes is False and VOC(**SIZES).needs_frame_boxes is False


def test_motion_aware_voc_without_options_is_the_paper_voc():
    """All options off: VOC's state dict loads strictly and the video queries are VOC's (bit for bit); the
    boxes are not needed. Built by type from the registry."""
    torch.manual_seed(0)
    paper = VOC(**SIZES).eval()
    variant = MODELS.build(dict(type='MotionAwareVOC', **SIZES)).eval()
    assert type(variant) is MotionAwareVOC and not variant.needs_frame_boxes
    variant.load_state_dict(paper.state_dict(), strict=True)
    frame_queries, sentence = torch.randn(2, 4, 3, 32), torch.randn(2, 32)
    with torch.no_grad():
        assert torch.equal(variant(frame_queries, sentence), paper(frame_queries, sentence))


def test_motion_aware_voc_parameter_names_and_needs_frame_boxes():
    """The parameter names of checkpoints trained with the options (``sentence_product.*``) and when the
    detector must pass the frame boxes."""
    voc = MotionAwareVOC(**SIZES, **OPTIONS)
    extra = sorted(set(voc.state_dict()) - set(VOC(**SIZES).state_dict()))
    assert extra == sorted(f'sentence_product.{m}.{p}' for m in ('query_proj', 'sentence_proj', 'out_proj',
                                                                 'trajectory_mlp.0', 'trajectory_mlp.2')
                           for p in ('weight', 'bias'))
    assert voc.needs_frame_boxes
    assert MotionAwareVOC(**SIZES, box_encoding=True).needs_frame_boxes
    assert not MotionAwareVOC(**SIZES, per_slot_clustering=True, sentence_product=True).needs_frame_boxes


def test_motion_aware_voc_runs_in_soc_and_loads_official_weights():
    """Inside the whole model (``voc.type='MotionAwareVOC'``, time and box codes): official weights load
    strictly (no weights of their own), training and eval run, and the boxes reach VOC (outputs change)."""
    import json
    import os.path as osp

    from conftest import FIXTURE_ROOT, MAIN_VARIANT, TEXT_ENCODER_DIR, load_fixture
    from soc_mm.official.config import official_model_cfg
    from soc_mm.official.reference import build_reference_model, fixture_batch, zero_dropout
    torch.set_num_threads(1)
    fixture = osp.join(FIXTURE_ROOT, MAIN_VARIANT)
    inputs, samples = fixture_batch(load_fixture(MAIN_VARIANT, 'inputs.pt'), with_targets=True)
    official = zero_dropout(build_reference_model(fixture, batch_regroup=False)[0])
    with open(osp.join(fixture, 'config.json')) as f:
        cfg = official_model_cfg(json.load(f)['official_config'], TEXT_ENCODER_DIR)
    cfg['voc'] = dict(cfg['voc'], type='MotionAwareVOC', temporal_pos_encoding=dict(), box_encoding=True)
    coded = zero_dropout(MODELS.build(cfg))
    assert type(coded.voc) is MotionAwareVOC
    coded.load_state_dict(official.state_dict(), strict=True)
    official.eval(), coded.eval()
    with torch.no_grad():
        ref, out = official(inputs, samples, mode='tensor'), coded(inputs, samples, mode='tensor')
    assert (ref['video_queries'] - out['video_queries']).abs().max() > 1e-3
    losses = coded.train()(inputs, samples, mode='loss')
    assert all(torch.isfinite(v).all() for k, v in losses.items() if 'loss' in k)
