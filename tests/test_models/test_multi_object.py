"""Several referred objects per expression, or none (MeViS): training targets and losses of ``SOCHead``,
the contrastive loss, and the object selection at inference (``test_cfg.object_selection``)."""
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData

import soc_mm  # noqa: F401  (registration)
from conftest import FIXTURE_ROOT, MAIN_VARIANT
from soc_mm.models.dense_heads.soc_head import SOCHead, check_object_selection_options, select_objects
from soc_mm.models.inference import VideoInference, merge_clip_results
from soc_mm.models.losses import QuerySentenceContrastiveLoss
from soc_mm.structures import RVOSDataSample

L, T, NQ, C, H, W = 2, 3, 4, 16, 16, 16
MASK_HEAD = dict(type='DynamicMaskHead', in_channels=8, channels=8, num_layers=3, rel_coord=True)


def make_head(**test_cfg):
    torch.manual_seed(0)
    return SOCHead(num_classes=1, embed_dims=C, num_pred_layer=L, mask_head=MASK_HEAD,
                   train_cfg=dict(referred_only=True), test_cfg=test_cfg)


# ------------------------------------------------------------------------------------------ training
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


def test_contrastive_loss_multi_positive_infonce():
    loss = QuerySentenceContrastiveLoss(loss_weight=2.0)
    g = torch.Generator().manual_seed(0)
    queries = torch.randn(3, 5, 8, generator=g, requires_grad=True)
    sentence = torch.randn(3, 8, generator=g)
    index = torch.tensor([4, -1, 1])
    positives = torch.zeros(3, 5, dtype=torch.bool)
    positives[0, 4] = positives[2, 1] = True
    # one positive per video: the index form (SOC) and the mask form give the same value and gradient, bit for bit
    by_index, by_mask = loss(queries, sentence, index), loss(queries, sentence, positives)
    assert torch.equal(by_index, by_mask)
    log_prob = F.log_softmax(loss.similarity(queries, sentence), dim=-1)
    assert torch.equal(by_index, 2.0 * -(log_prob[0, 4] + log_prob[2, 1]) / 3)
    assert torch.equal(*(torch.autograd.grad(x, queries)[0] for x in (loss(queries, sentence, index),
                                                                       loss(queries, sentence, positives))))
    # several positives: -log of their summed probability; none: 0 (counted in the mean), finite gradient
    positives[2, 3] = True
    prob = log_prob.exp()
    expected = 2.0 * -(log_prob[0, 4] + torch.log(prob[2, 1] + prob[2, 3])) / 3
    several = loss(queries, sentence, positives)
    torch.testing.assert_close(several, expected)
    assert loss(queries, sentence, torch.zeros(3, 5, dtype=torch.bool)).item() == 0.0
    several.backward()
    assert torch.isfinite(queries.grad).all() and queries.grad[1].abs().sum() == 0
    with pytest.raises(ValueError, match=r'must lie in \[-1, 5\)'):
        loss(queries, sentence, torch.tensor([5, 0, 0]))
    with pytest.raises(ValueError, match=r'bool target_query must be \[B, 5\]'):
        loss(queries, sentence, torch.zeros(3, 4, dtype=torch.bool))


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


# ------------------------------------------------------------------------------------------ inference
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


def test_object_selection_options_are_checked():
    for options, match in ((dict(object_selection='top2'), "test_cfg.object_selection must be one of"),
                           (dict(object_selection='threshold'), 'test_cfg.score_thr is required'),
                           (dict(object_selection='threshold', score_thr=1.5), 'test_cfg.score_thr must be'),
                           (dict(object_selection='threshold', score_thr=True), 'test_cfg.score_thr must be'),
                           (dict(allow_no_target=True), 'test_cfg.allow_no_target=True needs'),
                           (dict(object_selection='threshold', score_thr=0.2, allow_no_target='yes'),
                            'test_cfg.allow_no_target must be True or False')):
        with pytest.raises(ValueError, match=match):
            VideoInference.check_options(options)
        with pytest.raises(ValueError, match=match):
            make_head(**options)
    check_object_selection_options(dict(object_selection='threshold', score_thr=0.2, allow_no_target=True))
    check_object_selection_options(dict(score_thr=0.2))  # unused by top-1, allowed


def test_clips_with_different_object_counts_merge_padded():
    def clip(query_lists):
        k = len(query_lists)
        return InstanceData(masks=torch.ones(1, 2, 2, dtype=torch.bool), scores=torch.ones(1),
                            object_masks=torch.ones(1, k, 2, 2, dtype=torch.bool),
                            object_scores=torch.full((1, k), 0.5),
                            object_query_index=torch.tensor([query_lists], dtype=torch.long))
    (merged, ) = merge_clip_results([[clip([3, 1])], [clip([])], [clip([0])]])
    assert merged.object_query_index.tolist() == [[3, 1], [-1, -1], [0, -1]]
    assert merged.object_scores.tolist() == [[0.5, 0.5], [0.0, 0.0], [0.5, 0.0]]
    assert merged.object_masks.flatten(2).any(-1).tolist() == [[True, True], [False, False], [True, False]]


def test_soc_predict_with_threshold_selection_unites_the_selected_queries():
    """Through SOC.predict (VideoInference, clips of 2 frames): score_thr 0 selects every query, so
    pred_masks is the union of every query's mask (return_all_queries) in every clip."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from conftest import REPO_ROOT, TEXT_ENCODER_DIR
    from soc_mm.registry import MODELS
    torch.set_num_threads(1)
    init_default_scope('soc_mm')
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'soc', 'soc_tiny_synthetic.py')).model
    cfg.text_encoder.model_path = TEXT_ENCODER_DIR
    cfg.test_cfg = dict(cfg.test_cfg, object_selection='threshold', score_thr=0.0, return_all_queries=True,
                        clip_len=2)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    model.eval()
    clip = torch.randint(0, 256, (4, 3, 32, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    sample = RVOSDataSample(metainfo=dict(img_shape=(32, 48), ori_shape=(64, 96), expression='the two red squares',
                                          video_id='v', frame_ids=['0', '1', '2', '3']))
    data = model.data_preprocessor(dict(inputs=[clip], data_samples=[sample]), False)
    with torch.no_grad():
        (pred, ) = model.predict(**data)
    nq = cfg.num_queries
    assert pred.pred_masks.shape == (4, 64, 96)
    assert pred.pred_instances.masks.shape == (nq, 4, 64, 96)
    assert torch.equal(pred.pred_masks, pred.pred_instances.masks.any(0))
    torch.testing.assert_close(pred.pred_scores, pred.pred_instances.scores.max(0)[0])  # K = 1
    # the selected objects themselves reach the data sample (every query: score_thr 0)
    objects = pred.pred_objects
    assert objects.masks.shape == (nq, 4, 64, 96) and objects.scores.shape == (nq, 4)
    assert torch.equal(objects.masks.any(0), pred.pred_masks)
    assert sorted(objects.query_index[:, 0].tolist()) == list(range(nq))
