"""PresenceSOCHead (soc_mm/models/dense_heads/presence_soc_head.py): a per-frame presence branch on the frame query
alone and its video query, trained on the matched query's visibility, thresholded by ``presence_thr`` instead of
SOC's frame score, through the head, the clip linker and the video inference."""
import pytest
import torch
from mmengine.structures import InstanceData

from soc_mm.models.dense_heads import PresenceSOCHead, SOCHead
from soc_mm.models.inference import ClipLinker, RVOSTestOptions, VideoInference
from soc_mm.structures import RVOSDataSample

from test_video_inference import clones, make_batch, tiny_model_cfg

L, B, T, NQ, C, H, W = 2, 1, 3, 4, 16, 16, 16
MASK_HEAD = dict(type='DynamicMaskHead', in_channels=8, channels=8, num_layers=3, rel_coord=True)


def make_head():
    torch.manual_seed(0)
    head = PresenceSOCHead(num_classes=1, embed_dims=C, num_pred_layer=L, mask_head=MASK_HEAD,
                           train_cfg=dict(referred_only=True))
    head.init_weights()
    return head


def test_presence_reads_the_frame_query_alone_its_video_query_and_its_heat_map():
    head = make_head()
    g = torch.Generator().manual_seed(1)
    frame, video = torch.randn(B, T, NQ, C, generator=g), torch.randn(B, NQ, C, generator=g)
    mask_feats = torch.randn(B, T, 8, 4, 4, generator=g)
    sizes = torch.tensor([[10, 16]])  # unpadded 10 x 16 of a 16 x 16 canvas: mask-feature rows 0-2 inside
    logits = head.forward_presence(frame + video[:, None], video, mask_feats, sizes, layer=1)
    query_term = head.presence_branches[1](torch.cat([frame, video[:, None].expand_as(frame),
                                                      frame * video[:, None]], -1))[..., 0]
    keys = head.presence_keys[1](mask_feats[:, :, :, :3].permute(0, 1, 3, 4, 2))  # the padding row is not seen
    queries = head.presence_queries[1](video)
    heat = torch.stack([torch.stack([torch.stack([(keys[0, t] @ queries[0, q]).max() for q in range(NQ)])
                                     for t in range(T)])]) / head.key_dims ** 0.5
    assert logits.shape == (B, T, NQ)
    torch.testing.assert_close(logits, query_term + heat, rtol=1e-5, atol=1e-5)
    # the heat map follows the frames: a frame whose features answer the video query scores higher there
    hot = mask_feats.clone()
    direction = torch.linalg.pinv(head.presence_keys[1].weight) @ queries[0, 2]  # key along query 2's vector
    hot[0, 1, :, 1, 1] = direction * 50
    raised = head.forward_presence(frame + video[:, None], video, hot, sizes, layer=1)
    assert raised[0, 1, 2] > logits[0, 1, 2] + 1 and torch.equal(raised[0, [0, 2]], logits[0, [0, 2]])
    # the prior of SOC's class branch: 0.01 before training
    assert torch.sigmoid(head.presence_branches[0].layers[-1].bias).item() == pytest.approx(0.01)
    # the video queries added to a layer: that layer's in training (one per layer), the last one in eval
    stacked = torch.arange(3.0)[:, None, None, None].expand(3, B, NQ, C)
    assert head._added_video_queries(stacked, 1)[0, 0, 0] == 1
    assert head._added_video_queries(stacked[2:], 0)[0, 0, 0] == 2


def test_presence_loss_is_positive_for_the_matched_query_on_the_visible_frames_only():
    head = make_head()
    g = torch.Generator().manual_seed(2)
    masks = torch.zeros(1, T, H, W, dtype=torch.bool)
    masks[0, 0, 2:8, 2:8] = True
    masks[0, 2, 6:12, 6:12] = True  # absent on frame 1
    sample = RVOSDataSample(metainfo=dict(img_shape=(H, W), pad_shape=(H, W), ref_inst_idx=0))
    boxes = torch.tensor([[0.3, 0.3, 0.4, 0.4], [0.5, 0.5, 0.0, 0.0], [0.55, 0.55, 0.4, 0.4]])[None]
    sample.gt_instances = InstanceData(masks=masks, boxes=boxes, labels=torch.zeros(1, dtype=torch.long),
                                       visible=masks.flatten(2).any(-1))
    hidden = torch.randn(L, B, T, NQ, C, generator=g).requires_grad_()
    video_queries = torch.randn(L, B, NQ, C, generator=g).requires_grad_()
    references = [torch.rand(B, T, NQ, 2, generator=g) * 0.5 + 0.25 for _ in range(L + 1)]
    mask_feats = torch.randn(B, T, 8, H // 4, W // 4, generator=g)
    sentence = torch.randn(B, C, generator=g)
    matches, built = [], []
    match, get_targets = head.assigner.match, head.get_targets
    head.assigner.match = lambda *args, **kwargs: matches.append(1) or match(*args, **kwargs)
    head.get_targets = lambda *args, **kwargs: built.append(1) or get_targets(*args, **kwargs)
    losses = head.loss(hidden, references, mask_feats, video_queries, sentence, [sample])
    assert len(matches) == L * B  # one assignment per layer and video, shared by SOC's losses and the presence
    assert len(built) == 1  # and one set of targets
    head.assigner.match, head.get_targets = match, get_targets
    with pytest.raises(ValueError, match='SOCHead.loss_by_feat: 2 targets for 1 samples'):
        cls, box, mask = head(hidden, references, mask_feats, head._img_sizes([sample], mask_feats.device))
        targets, refs = head.get_targets([sample, sample], head._canvas_size([sample]), cls.device)
        head.loss_by_feat(cls, box, mask, video_queries, sentence, [sample], targets=(targets, refs))
    soc_losses = SOCHead.loss(head, hidden, references, mask_feats, video_queries, sentence, [sample])
    assert set(losses) == set(soc_losses) | {'loss_presence', 'd0.loss_presence'}
    for name, value in soc_losses.items():  # SOC's losses are untouched
        assert torch.equal(losses[name], value), name
    # the expected target: the query matched to the referred object, on frames 0 and 2
    cls, box, mask = head(hidden, references, mask_feats, torch.tensor([[H, W]]))
    targets, _ = head.get_targets([sample], (H, W), cls.device)
    for l in range(L):
        ((q_idx, g_idx), ) = head._match_layer(cls[l].detach(), box[l].detach(), mask[l].detach(),
                                               video_queries[l].detach(), sentence, targets, [sample])
        target = torch.zeros(B, T, NQ)
        target[0, [0, 2], int(q_idx[0])] = 1
        logits = head.forward_presence(hidden[l], video_queries[l], mask_feats, torch.tensor([[H, W]]), l)
        expected = head.loss_presence(logits.reshape(-1, 1), target.reshape(-1, 1), avg_factor=head._num_masks(targets))
        name = 'loss_presence' if l == L - 1 else f'd{l}.loss_presence'
        torch.testing.assert_close(losses[name], expected, rtol=0, atol=0)
    losses['loss_presence'].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.presence_branches[1].parameters())
    assert hidden.grad[1].abs().sum() > 0 and video_queries.grad[1].abs().sum() > 0


def presence_model(bias=0.0):
    """The tiny SOC with PresenceSOCHead, random weights; the presence bias at ``bias`` so that random
    presences fall on both sides of 0.5."""
    import soc_mm  # noqa: F401
    from mmengine.registry import init_default_scope
    from soc_mm.registry import MODELS
    init_default_scope('soc_mm')
    cfg = tiny_model_cfg().model
    cfg.bbox_head.type = 'PresenceSOCHead'
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    for branch in model.bbox_head.presence_branches:
        torch.nn.init.normal_(branch.layers[-1].weight, std=0.5)
        torch.nn.init.constant_(branch.layers[-1].bias, bias)
    return model.eval()


def test_presence_thr_thresholds_the_presence_branch_not_the_frame_score():
    torch.set_num_threads(1)
    model = presence_model()
    inputs, samples = make_batch(model, num_frames=4)
    index = torch.zeros(len(samples), dtype=torch.long)
    inference = VideoInference(model, presence_thr=0.5)
    candidates = inference.clip_candidates(inputs, clones(samples), index)
    presence = candidates['presence']
    assert presence.shape == candidates['cls'].shape[:3] and ((presence > 0) & (presence < 1)).all()
    absent = presence <= 0.5
    assert absent.any() and (~absent).any()  # the check below sees both sides
    off = VideoInference(model).choose(candidates, clones(samples))
    on = inference.choose(candidates, clones(samples))
    for n, (a, b) in enumerate(zip(off, on)):
        q = int(a.query_index[0])
        gone = absent[n, :, q]
        assert not b.masks[gone].any()  # absent by the presence branch: empty
        assert torch.equal(b.masks[~gone], a.masks[~gone]) and torch.equal(b.scores, a.scores)
    # the prediction path without a linker (PresenceSOCHead.predict) reads the same presence
    for a, b in zip(inference.predict_clip(inputs, clones(samples), index), on):
        assert torch.equal(a.masks, b.masks)
    # the linker remembers a chosen object where its presence says it is seen
    linker = ClipLinker(RVOSTestOptions(link_clips=True, presence_thr=0.5))
    cls, masks, feats = candidates['cls'][0], candidates['masks'][0], candidates['query_feats'][0]
    q = int(linker.select(0, cls, masks, feats, presence=torch.zeros_like(presence[0]))[0])
    assert linker.followed[0][0].mask is None  # never present: nothing seen to follow by its mask
    linker.select(1, cls, masks, feats, presence=torch.ones_like(presence[0]))
    seen = (masks[:, q].flatten(1) > 0).any(1).nonzero().flatten()
    if len(seen):
        torch.testing.assert_close(linker.followed[1][0].mask, masks[int(seen[-1]), q].sigmoid())


def test_presence_inputs_are_checked():
    model = presence_model()
    head = model.bbox_head
    with pytest.raises(ValueError, match='needs the video_queries'):
        head.predict_candidates(torch.zeros(L, B, T, NQ, C), [torch.zeros(B, T, NQ, 2)] * (L + 1),
                                torch.zeros(B, T, 8, 4, 4), [])
    cls = torch.zeros(1, T, NQ, 1)
    masks = torch.zeros(1, T, NQ, 4, 4)
    metas = [dict(img_shape=(16, 16), ori_shape=(16, 16), pad_shape=(16, 16))]
    with pytest.raises(ValueError, match=r'presence must be \[B, T, nq\]'):
        SOCHead.predict_by_feat(head, cls, masks, metas, options=RVOSTestOptions(presence_thr=0.5),
                                presence=torch.zeros(1, T, NQ + 1))
    assert SOCHead.predict_inputs == ('hidden_states', 'references', 'mask_feats')
    assert PresenceSOCHead.predict_inputs == SOCHead.predict_inputs + ('video_queries', )
