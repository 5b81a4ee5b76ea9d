"""SOCHead (soc_mm/models/dense_heads/soc_head.py: class/box/mask heads, losses, predict) vs the official
golden fixtures (tests/data/soc_reference, see its README)."""
import os.path as osp

import pytest
import torch

from conftest import FIXTURE_VARIANTS, MAIN_VARIANT
from soc_reference_helpers import (ROOT, build_head, data_samples, dims, eval_samples, head_inputs, load, tb_to_bt,
                                   train_level_outputs)
from soc_mm.official.loss_names import to_official_loss_name

VARIANTS = FIXTURE_VARIANTS
MAIN = MAIN_VARIANT

pytestmark = pytest.mark.skipif(not osp.isdir(ROOT), reason='SOC reference fixtures missing')


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


def test_bad_ref_inst_idx_is_a_clear_error():
    cls, boxes, masks, voc, sent = train_level_outputs(MAIN)
    samples = data_samples(MAIN)
    samples[0].set_metainfo(dict(ref_inst_idx=7))
    with pytest.raises(ValueError, match='ref_inst_idx'):
        build_head(MAIN).loss_by_feat(cls, boxes, masks, voc, sent, samples)


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
