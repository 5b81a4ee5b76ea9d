"""SOCHead (soc_mm/models/dense_heads/soc_head.py: class/box/mask heads, losses, predict) vs the official
golden fixtures (tests/data/soc_reference, see its README); several referred objects per expression, or
none (MeViS): training targets and losses; the object selection at inference (``test_cfg.object_selection``)."""
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

from conftest import FIXTURE_VARIANTS, MAIN_VARIANT
from soc_reference_helpers import (ROOT, build_head, data_samples, dims, eval_samples, head_inputs, load, tb_to_bt,
                                   train_level_outputs)
from mmengine.structures import InstanceData
from soc_mm.models.dense_heads.soc_head import SOCHead, query_scores, select_objects
from soc_mm.models.inference import RVOSTestOptions
from soc_mm.official.loss_names import to_official_loss_name
from soc_mm.structures import RVOSDataSample

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


# ---------------------------------------------------------------------- several referred objects or none (MeViS)
L, T, NQ, C, H, W = 2, 3, 4, 16, 16, 16
MASK_HEAD = dict(type='DynamicMaskHead', in_channels=8, channels=8, num_layers=3, rel_coord=True)


def make_head(**test_cfg):
    torch.manual_seed(0)
    return SOCHead(num_classes=1, embed_dims=C, num_pred_layer=L, mask_head=MASK_HEAD,
                   train_cfg=dict(referred_only=True), test_cfg=test_cfg)


def block_masks(num, seed):
    """num objects, each a 5x5 square at a random place per frame: masks [num, T, H, W], boxes [num, T, 4]."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(num, T, H, W, dtype=torch.bool)
    boxes = torch.zeros(num, T, 4)
    for j in range(num):
        for t in range(T):
            y, x = torch.randint(0, H - 5, (2, ), generator=g).tolist()
            masks[j, t, y:y + 5, x:x + 5] = True
            boxes[j, t] = torch.tensor([(x + 2) / W, (y + 2) / H, 4 / W, 4 / H])
    return masks, boxes


def sample_with(num_objects, referred, seed=0):
    """A sample of ``num_objects`` instances whose metainfo ``ref_inst_idx`` is ``referred`` (int or list)."""
    masks, boxes = block_masks(num_objects, seed)
    sample = RVOSDataSample(metainfo=dict(img_shape=(H, W), pad_shape=(H, W), ref_inst_idx=referred))
    sample.gt_instances = InstanceData(masks=masks, boxes=boxes, labels=torch.zeros(num_objects, dtype=torch.long),
                                       visible=masks.flatten(2).any(-1))
    return sample


def head_outputs(batch, seed=1, queries_like=None):
    """Random head outputs for ``batch`` videos: cls [L, B, T, nq, 1], boxes, masks [L, B, T, nq, H/4, W/4]
    (requiring grad), video queries [L, B, nq, C], sentence [B, C]. ``queries_like`` {(b, q): masks [T, H, W]}
    makes query q of video b predict those masks (so that the matching is known)."""
    g = torch.Generator().manual_seed(seed)
    cls = torch.randn(L, batch, T, NQ, 1, generator=g) - 2
    boxes = torch.rand(L, batch, T, NQ, 4, generator=g) * 0.5 + 0.25
    masks = torch.randn(L, batch, T, NQ, H // 4, W // 4, generator=g) - 4
    for (b, q), target in (queries_like or {}).items():
        masks[:, b, :, q] = F.avg_pool2d(target.float()[:, None], 4)[:, 0] * 16 - 8
        cls[:, b, :, q] = 3.0
    video_queries = torch.randn(L, batch, NQ, C, generator=g)
    sentence = torch.randn(batch, C, generator=g)
    return [x.requires_grad_() for x in (cls, boxes, masks, video_queries, sentence)]


def old_class_and_contrastive_losses(head, cls, boxes, masks, video_queries, sentence, samples):
    """The single-object losses as SOCHead computed them before several referred objects existed:
    one positive (the query matched to ``ref_inst_idx``) per video, contrastive loss by ``gather``."""
    targets, _ = head.get_targets(samples, (H, W), cls.device)
    num_masks = head._num_masks(targets)
    layers = head.match(cls, boxes, masks, video_queries, sentence, samples)
    out = []
    for l, indices in enumerate(layers):
        B, _, nq, K = cls[l].shape
        cls_target = torch.zeros_like(cls[l])
        target_query = torch.full((B, ), -1, dtype=torch.long)
        for b, ((q_idx, g_idx), target) in enumerate(zip(indices, targets)):
            hit = (g_idx == 0).nonzero().flatten()  # referred_only: the referred target is target 0
            if len(hit):
                target_query[b] = q = int(q_idx[hit[0]])
                cls_target[b, target.visible[0], q, 0] = 1
        loss_cls = head.loss_cls(cls[l].reshape(-1, K), cls_target.reshape(-1, K), avg_factor=num_masks)
        log_prob = F.log_softmax(head.loss_con.similarity(video_queries[l], sentence), dim=-1)
        picked = log_prob.gather(1, target_query.clamp(min=0)[:, None]).squeeze(1)
        loss_con = -(picked * (target_query >= 0).to(picked)).sum() / B
        out.append((loss_cls, loss_con))
    return out


def test_one_referred_object_gives_exactly_the_single_object_losses():
    head = make_head()
    samples = [sample_with(1, 0, seed=0), sample_with(1, 0, seed=1)]
    cls, boxes, masks, video_queries, sentence = head_outputs(2)
    losses = head.loss_by_feat(cls, boxes, masks, video_queries, sentence, samples)
    old = old_class_and_contrastive_losses(head, cls, boxes, masks, video_queries, sentence, samples)
    for l, (loss_cls, loss_con) in enumerate(old):
        prefix = '' if l == L - 1 else f'd{l}.'
        assert torch.equal(losses[prefix + 'loss_cls'], loss_cls)
        assert torch.equal(losses[prefix + 'loss_con'], loss_con)
    # the MeViS contract (a list of one referred instance) gives the same losses, bit for bit
    as_list = [sample_with(1, [0], seed=0), sample_with(1, [0], seed=1)]
    listed = head.loss_by_feat(cls, boxes, masks, video_queries, sentence, as_list)
    assert listed.keys() == losses.keys()
    for name in losses:
        assert torch.equal(listed[name], losses[name]), name


def test_two_referred_objects_are_both_positives():
    head = make_head()
    sample = sample_with(2, [0, 1], seed=3)
    gt = sample.gt_instances.masks
    outs = head_outputs(1, queries_like={(0, 2): gt[0], (0, 0): gt[1]})  # object 0 -> query 2, 1 -> query 0
    cls, boxes, masks, video_queries, sentence = outs
    for q, g in head.match(cls, boxes, masks, video_queries, sentence, [sample])[-1]:
        assert dict(zip(g.tolist(), q.tolist())) == {0: 2, 1: 0}
    losses = head.loss_by_feat(cls, boxes, masks, video_queries, sentence, [sample])
    assert all(torch.isfinite(v) for v in losses.values())
    # class loss: both matched queries are positive on their visible frames (here every frame)
    expected_target = torch.zeros(1, T, NQ, 1)
    expected_target[0, :, [0, 2]] = 1
    num_masks = 2 * T
    torch.testing.assert_close(losses['loss_cls'],
                               head.loss_cls(cls[-1].reshape(-1, 1), expected_target.reshape(-1, 1),
                                             avg_factor=num_masks), rtol=0, atol=0)
    # contrastive loss: multi-positive InfoNCE, -log(p_0 + p_2)
    prob = F.softmax(head.loss_con.similarity(video_queries[-1], sentence), dim=-1)[0]
    assert losses['loss_con'].item() == pytest.approx(-math.log(prob[0].item() + prob[2].item()), rel=1e-5)
    assert losses['loss_mask'] > 0 and losses['loss_dice'] > 0
    sum(losses.values()).backward()
    for x in (cls, boxes, masks, video_queries, sentence):
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_no_referred_object_pushes_every_query_to_no_object():
    head = make_head()
    empty = sample_with(0, [], seed=0)
    one = sample_with(1, [0], seed=1)
    cls, boxes, masks, video_queries, sentence = head_outputs(2)
    losses = head.loss_by_feat(cls, boxes, masks, video_queries, sentence, [empty, one])
    alone = head.loss_by_feat(cls[:, :1], boxes[:, :1], masks[:, :1], video_queries[:, :1], sentence[:1], [empty])
    assert all(torch.isfinite(v) for v in list(losses.values()) + list(alone.values()))
    # alone: no target at all -> no mask / box / contrastive term, every query's class target is 0
    for name in ('loss_bbox', 'loss_iou', 'loss_mask', 'loss_dice', 'loss_con'):
        assert alone[name].item() == 0.0, name
    torch.testing.assert_close(alone['loss_cls'], head.loss_cls(cls[-1, :1].reshape(-1, 1),
                                                                torch.zeros(T * NQ, 1), avg_factor=1.0),
                               rtol=0, atol=0)
    # in a batch, the no-target video adds no contrastive term but counts in the mean
    with_one = head.loss_by_feat(cls[:, 1:], boxes[:, 1:], masks[:, 1:], video_queries[:, 1:], sentence[1:], [one])
    torch.testing.assert_close(losses['loss_con'], with_one['loss_con'] / 2, rtol=1e-6, atol=0)
    sum(losses.values()).backward()
    for x in (cls, boxes, masks, video_queries, sentence):
        assert torch.isfinite(x.grad).all()
    assert cls.grad[:, 0].abs().sum() > 0  # the no-target video's queries are pushed down
    assert video_queries.grad[:, 0].abs().sum() == 0 and video_queries.grad[:, 1].abs().sum() > 0


def test_referred_instances_are_checked():
    head = make_head()
    cls, boxes, masks, video_queries, sentence = head_outputs(1)
    for referred, match in (([0, 2], r'ref_inst_idx 2 of sample 0 out of range for 2 instances'),
                            ([1, 1], r'ref_inst_idx of sample 0 repeats an instance: \[1, 1\]'),
                            (5, r'ref_inst_idx 5 of sample 0 out of range')):
        with pytest.raises(ValueError, match=match):
            head.loss_by_feat(cls, boxes, masks, video_queries, sentence, [sample_with(2, referred)])
    bare = sample_with(1, [0])
    bare = RVOSDataSample(metainfo={k: v for k, v in bare.metainfo.items() if k != 'ref_inst_idx'},
                          gt_instances=bare.gt_instances)
    with pytest.raises(ValueError, match='SOCHead: data sample 0: .*no "ref_inst_idx"'):
        head.loss_by_feat(cls, boxes, masks, video_queries, sentence, [bare])


# ---------------------------------------------------------------------- object selection at inference
def selection_outputs():
    """Hand-made head outputs of one video (T=2 frames, 4 queries, 8x8): query q's mask is the q-th 2-row
    band; per-frame probabilities (time-averaged: 0.9, 0.6, 0.1, 0.45): query 3 passes 0.5 on frame 0 only."""
    probs = torch.tensor([[0.9, 0.9, 0.1, 0.7],
                          [0.9, 0.3, 0.1, 0.2]])  # [T, nq]
    cls = torch.logit(probs)[None, :, :, None]  # [1, T, nq, 1]
    masks = torch.full((1, 2, 4, 8, 8), -10.0)
    for q in range(4):
        masks[0, :, q, 2 * q:2 * q + 2] = 10.0
    meta = dict(img_shape=(8, 8), ori_shape=(8, 8), pad_shape=(8, 8))
    return cls, masks, [meta], probs


def band(*queries):
    out = torch.zeros(2, 8, 8, dtype=torch.bool)
    for q in queries:
        out[:, 2 * q:2 * q + 2] = True
    return out


def test_top1_selection_is_unchanged():
    cls, masks, metas, probs = selection_outputs()
    (result, ) = make_head().predict_by_feat(cls, masks, metas)
    assert torch.equal(result.masks, band(0))
    assert torch.equal(result.scores, probs[:, 0]) and result.query_index.tolist() == [0, 0]
    assert not [k for k in result.keys() if k.startswith('object_')]
    # the rule SOC's post-process applies: argmax of the time-averaged max class probability
    assert int(cls.sigmoid().mean(1).max(-1)[0].argmax(-1)) == 0


def test_threshold_selects_every_query_above_it_and_unites_their_masks():
    cls, masks, metas, probs = selection_outputs()
    (result, ) = make_head(object_selection='threshold', score_thr=0.5).predict_by_feat(cls, masks, metas)
    assert torch.equal(result.masks, band(0, 1))  # queries 0 (0.9) and 1 (0.6); not 3 (0.45 averaged)
    assert torch.equal(result.scores, probs[:, [0, 1]].max(1)[0])
    assert result.query_index.tolist() == [0, 0]
    assert result.object_query_index.tolist() == [[0, 1], [0, 1]]  # best first
    assert torch.equal(result.object_masks, torch.stack([band(0), band(1)], 1))
    assert torch.equal(result.object_scores, probs[:, [0, 1]])
    (lower, ) = make_head(object_selection='threshold', score_thr=0.4).predict_by_feat(cls, masks, metas)
    assert torch.equal(lower.masks, band(0, 1, 3)) and lower.object_query_index[0].tolist() == [0, 1, 3]


def test_threshold_falls_back_to_top1_or_to_nothing():
    cls, masks, metas, _ = selection_outputs()
    (top1, ) = make_head().predict_by_feat(cls, masks, metas)
    (fallback, ) = make_head(object_selection='threshold', score_thr=0.95).predict_by_feat(cls, masks, metas)
    for key in ('masks', 'scores', 'query_index'):
        assert torch.equal(fallback.get(key), top1.get(key)), key
    assert fallback.object_query_index.tolist() == [[0], [0]]
    ori = [dict(metas[0], ori_shape=(16, 12))]
    (empty, ) = make_head(object_selection='threshold', score_thr=0.95,
                          allow_no_target=True).predict_by_feat(cls, masks, ori)
    assert empty.masks.shape == (2, 16, 12) and not empty.masks.any()
    assert empty.scores.tolist() == [0.0, 0.0] and empty.query_index.tolist() == [-1, -1]
    assert empty.object_masks.shape == (2, 0, 16, 12) and empty.object_scores.shape == (2, 0)
    assert select_objects(torch.tensor([0.2, 0.7, 0.7]), 'threshold', 0.5).tolist() == [1, 2]  # ties: query order


def test_query_scores_average_over_time_before_the_best_class():
    """The clip score is the time-averaged probability of the best class, not the average of each frame's best
    class: a query that is class 0 on one frame and class 1 on the other scores low; the frame scores are each
    frame's best class. The same for a clip [T, nq, K] (the linker) and a batch [B, T, nq, K] (the head)."""
    hi, lo = 4.0, -4.0
    cls = torch.tensor([[[hi, lo], [1.0, 1.0]],
                        [[lo, hi], [1.0, 1.0]]])  # [T=2, nq=2, K=2]
    clip, frame = query_scores(cls)
    p_hi, p_lo, p_one = (torch.tensor(v).sigmoid().item() for v in (hi, lo, 1.0))
    torch.testing.assert_close(clip, torch.tensor([(p_hi + p_lo) / 2, p_one]))
    torch.testing.assert_close(frame, torch.tensor([[p_hi, p_one], [p_hi, p_one]]))
    assert select_objects(clip).tolist() == [1]  # max-then-mean would pick query 0 (0.98 > 0.73)
    batch_clip, batch_frame = query_scores(torch.stack([cls, cls.flip(1)]))
    torch.testing.assert_close(batch_clip, torch.stack([clip, clip.flip(0)]))
    torch.testing.assert_close(batch_frame, torch.stack([frame, frame.flip(1)]))


def test_object_selection_options_are_checked():
    for options, match in ((dict(object_selection='top2'), "test_cfg.object_selection must be one of"),
                           (dict(object_selection='threshold'), 'test_cfg.score_thr is required'),
                           (dict(object_selection='threshold', score_thr=1.5), 'test_cfg.score_thr must be'),
                           (dict(object_selection='threshold', score_thr=True), 'test_cfg.score_thr must be'),
                           (dict(allow_no_target=True), 'test_cfg.allow_no_target=True needs'),
                           (dict(object_selection='threshold', score_thr=0.2, allow_no_target='yes'),
                            'test_cfg.allow_no_target must be True or False')):
        with pytest.raises(ValueError, match=match):
            RVOSTestOptions.from_cfg(options)
        with pytest.raises(ValueError, match=match):
            make_head(**options)
    head = make_head(object_selection='threshold', score_thr=0.2, allow_no_target=True)
    assert head.test_options == RVOSTestOptions(object_selection='threshold', score_thr=0.2, allow_no_target=True)
    assert make_head(score_thr=0.2).test_options.object_selection == 'top1'  # unused by top-1, allowed
