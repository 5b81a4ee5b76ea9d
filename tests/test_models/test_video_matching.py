"""VideoHungarianAssigner and the video match costs (soc_mm/models/task_modules/)."""
import os.path as osp

import pytest
import torch

from conftest import MAIN_VARIANT
from soc_reference_helpers import ROOT, build_head, data_samples, load, train_level_outputs
from mmengine.structures import InstanceData
from soc_mm.models.task_modules import (QueryTextCost, VideoBoxL1Cost, VideoDiceCost,
                                        VideoFocalClassCost, VideoGIoUCost, VideoHungarianAssigner)

MAIN = MAIN_VARIANT

pytestmark = pytest.mark.skipif(not osp.isdir(ROOT), reason='SOC reference fixtures missing')


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
