"""The same object across clips (``test_cfg.link_clips``, soc_mm/models/inference/clip_linking.py) and absence
over time (``test_cfg.presence_thr``, ``SOCHead.predict_by_feat``): constructed cases where the right answer is
known, the options off giving SOC's per-clip outputs exactly, and the linking through ``VideoInference`` and the
test loop."""

import pytest
import torch

from soc_mm.models.dense_heads import SOCHead
from soc_mm.models.inference import ClipLinker, RVOSTestOptions, VideoInference, merge_clip_results
from soc_mm.models.inference.clip_linking import FollowedObject, link_affinity, soft_iou

from test_video_inference import build_tiny, clones, make_batch

T, NQ, S = 3, 3, 8  # frames per clip, queries, mask size
LEFT, RIGHT, NOWHERE = 'left', 'right', 'nowhere'
LOOK_ALIKE = torch.tensor([1.0, 0.01, 0.0])  # embeddings of two look-alikes: nearly the same
LOOK_ALIKE_2 = torch.tensor([1.0, -0.01, 0.0])
OTHER = torch.tensor([0.0, 0.0, 1.0])


def region(where):
    """Mask logits [S, S]: columns 0-2 (left) or 5-7 (right) on, the rest off; or nothing."""
    logits = torch.full((S, S), -10.0)
    if where == LEFT:
        logits[:, :3] = 10.0
    elif where == RIGHT:
        logits[:, 5:] = 10.0
    return logits


def clip(*queries):
    """Head outputs of one clip from (place or one place per frame, per-frame probabilities [T], embedding) per
    query -> cls [T, nq, 1], masks [T, nq, S, S], query_feats [nq, C]."""
    probs = torch.tensor([list(q[1]) for q in queries]).T  # [T, nq]
    cls = torch.logit(probs)[..., None]
    places = [[q[0]] * T if isinstance(q[0], str) else list(q[0]) for q in queries]
    masks = torch.stack([torch.stack([region(places[i][t]) for i in range(len(queries))]) for t in range(T)])
    return cls, masks, torch.stack([q[2] for q in queries])


def top1(**changes):
    return RVOSTestOptions(link_clips=True, **changes)


# ---------------------------------------------------------------------- the linker on constructed clips
def test_the_followed_object_is_kept_across_a_boundary_unless_clearly_beaten():
    """Two look-alikes: A on the left, B on the right. Clip 1 prefers A (query 0). In clip 2 the query slots are
    permuted (A is query 2, B query 0) and B scores a little higher: per clip, the answer would jump to B;
    linked, A is followed (its first-frame mask continues A's last one). In clip 3 B is clearly stronger (by more
    than link_margin): the linker switches."""
    from soc_mm.models.dense_heads.soc_head import select_objects
    linker = ClipLinker(top1(link_margin=0.2))
    first = clip((LEFT, [0.8] * 3, LOOK_ALIKE), (RIGHT, [0.6] * 3, LOOK_ALIKE_2), (NOWHERE, [0.05] * 3, OTHER))
    assert linker.select(0, *first).tolist() == [0]  # nothing followed yet: SOC's choice
    second = clip((RIGHT, [0.7] * 3, LOOK_ALIKE_2), (NOWHERE, [0.05] * 3, OTHER), (LEFT, [0.6] * 3, LOOK_ALIKE))
    assert select_objects(second[0].sigmoid().mean(0).max(-1)[0]).tolist() == [0]  # per clip: B
    assert linker.select(0, *second).tolist() == [2]  # linked: still A
    third = clip((LEFT, [0.3] * 3, LOOK_ALIKE), (RIGHT, [0.95] * 3, LOOK_ALIKE_2), (NOWHERE, [0.05] * 3, OTHER))
    assert linker.select(0, *third).tolist() == [1]  # B beats A by 0.65 > 0.2: switch
    # every sample (expression) of a stream has its own memory
    assert linker.select(1, *second).tolist() == [0]


def test_an_object_unseen_at_the_boundary_is_matched_by_its_embedding():
    """A leaves the view on the last frame of clip 1 (its mask is empty there); in clip 2 a candidate with A's
    embedding appears elsewhere: it is followed; the previous position (now taken by B) is not. With
    presence_thr, a frame whose score is not above it does not count as seen either."""
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    linker = ClipLinker(top1())
    linker.select(0, *clip(([LEFT, LEFT, NOWHERE], [0.9] * 3, a), (RIGHT, [0.6] * 3, b),
                           (NOWHERE, [0.05] * 3, OTHER)))
    memory = linker.followed[0][0]
    assert not memory.seen_at_end and torch.equal(memory.mask, region(LEFT).sigmoid())  # frame 1: last seen
    second = clip((LEFT, [0.7] * 3, b), (RIGHT, [0.6] * 3, a), (NOWHERE, [0.05] * 3, OTHER))
    assert linker.select(0, *second).tolist() == [1]
    scored = ClipLinker(top1(presence_thr=0.5))
    scored.select(0, *clip((LEFT, [0.9, 0.9, 0.1], a), (RIGHT, [0.6] * 3, b), (NOWHERE, [0.05] * 3, OTHER)))
    assert not scored.followed[0][0].seen_at_end
    assert scored.select(0, *second).tolist() == [1]


def test_duplicate_queries_of_the_followed_object_give_the_best_scoring_one():
    """Two queries of clip 2 segment A (the followed object: queries 0 and 2, IoU 1 with its last mask), B is
    query 1: the best-scoring of A's queries continues it, not the first one."""
    linker = ClipLinker(top1(link_margin=0.3))
    linker.select(0, *clip((LEFT, [0.8] * 3, LOOK_ALIKE), (RIGHT, [0.6] * 3, LOOK_ALIKE_2),
                           (NOWHERE, [0.05] * 3, OTHER)))
    second = clip((LEFT, [0.3] * 3, LOOK_ALIKE), (RIGHT, [0.7] * 3, LOOK_ALIKE_2), (LEFT, [0.5] * 3, LOOK_ALIKE))
    assert linker.select(0, *second).tolist() == [2]  # A's best query (0.5), B (0.7) within the margin


def test_an_object_unseen_in_a_whole_clip_keeps_its_memory():
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    linker = ClipLinker(top1(presence_thr=0.3))
    linker.select(0, *clip((LEFT, [0.9] * 3, a), (RIGHT, [0.2] * 3, b), (NOWHERE, [0.05] * 3, OTHER)))
    # clip 2: A nowhere to be seen (all frame scores <= presence_thr): still chosen (within the margin), memory
    # of clip 1 kept
    unseen = clip((NOWHERE, [0.25] * 3, a), (RIGHT, [0.3] * 3, b), (NOWHERE, [0.05] * 3, OTHER))
    assert linker.select(0, *unseen).tolist() == [0]
    memory = linker.followed[0][0]
    assert torch.equal(memory.mask, region(LEFT).sigmoid()) and not memory.seen_at_end


def test_threshold_selection_keeps_followed_objects_with_hysteresis():
    """score_thr 0.5, margin 0.2: a followed object stays while above 0.3 and keeps its slot; new objects enter
    above 0.5; a followed object below 0.3 is dropped."""
    a, b, c = (torch.eye(3)[i] for i in range(3))
    options = RVOSTestOptions(object_selection='threshold', score_thr=0.5, link_clips=True, link_margin=0.2)
    linker = ClipLinker(options)
    assert linker.select(0, *clip((LEFT, [0.8] * 3, a), (RIGHT, [0.7] * 3, b), (NOWHERE, [0.1] * 3, c))).tolist() \
        == [0, 1]
    # A continues on query 1 at 0.4 (kept), B on query 2 at 0.6, a new object (query 0) at 0.9
    second = clip((NOWHERE, [0.9] * 3, c), (LEFT, [0.4] * 3, a), (RIGHT, [0.6] * 3, b))
    assert linker.select(0, *second).tolist() == [1, 2, 0]  # followed first (A, B), then the new one
    # A falls to 0.2: dropped
    third = clip((LEFT, [0.2] * 3, a), (RIGHT, [0.6] * 3, b), (NOWHERE, [0.9] * 3, c))
    assert linker.select(0, *third).tolist() == [1, 2]


def test_affinity_and_soft_iou():
    left, right = region(LEFT).sigmoid(), region(RIGHT).sigmoid()
    iou = soft_iou(left, torch.stack([left, right]))
    assert iou[0] == pytest.approx(1.0) and iou[1] < 0.01
    # a smaller mask of candidates is resized to the remembered one
    assert soft_iou(left, left[None, ::2, ::2]).item() > 0.7 > 0.1 > soft_iou(left, right[None, ::2, ::2]).item()
    scores = torch.tensor([0.9, 0.2])
    followed = FollowedObject(query_feat=LOOK_ALIKE, mask=left, seen_at_end=True)
    aff = link_affinity(followed, torch.stack([right, left]), torch.stack([LOOK_ALIKE, LOOK_ALIKE_2]), scores)
    assert aff[1] == pytest.approx(1.2) and aff[0] < 0.01  # the mask decides between look-alikes, not the score
    # nothing overlaps the remembered mask: the embeddings decide
    aff = link_affinity(followed, torch.stack([right, right]), torch.stack([LOOK_ALIKE, OTHER]), scores)
    assert aff[0] == pytest.approx(1.0) and aff[1] == pytest.approx(0.5)
    unseen = FollowedObject(query_feat=LOOK_ALIKE, mask=left, seen_at_end=False)
    aff = link_affinity(unseen, torch.stack([right, left]), torch.stack([LOOK_ALIKE, OTHER]), scores)
    assert aff[0] == pytest.approx(1.0) and aff[1] == pytest.approx(0.5)  # embeddings only


# ---------------------------------------------------------------------- absence over time (the head)
def presence_outputs():
    """One video, T=4 frames, 2 queries: query 0 (the left band) is there on frames 0-1 only (0.9, 0.8, 0.3,
    0.2: 0.55 on average); query 1 (the right band) on frames 1-3 (0.525 on average)."""
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.7], [0.3, 0.7], [0.2, 0.6]])
    cls = torch.logit(probs)[None, ..., None]  # [1, T, nq, 1]
    masks = torch.stack([region(LEFT), region(RIGHT)])[None, None].expand(1, 4, -1, -1, -1).clone()
    return cls, masks, [dict(img_shape=(S, S), ori_shape=(S, S), pad_shape=(S, S))], probs


def test_presence_empties_the_frames_where_the_chosen_object_is_absent():
    head = SOCHead(num_classes=1, embed_dims=8, num_pred_layer=1,
                   mask_head=dict(type='DynamicMaskHead', in_channels=8, channels=8, num_layers=3))
    cls, masks, metas, probs = presence_outputs()
    (always, ) = head.predict_by_feat(cls, masks, metas)
    assert always.masks.flatten(1).any(1).tolist() == [True] * 4  # SOC: the chosen object on every frame
    (present, ) = head.predict_by_feat(cls, masks, metas, options=RVOSTestOptions(presence_thr=0.5))
    assert present.masks.flatten(1).any(1).tolist() == [True, True, False, False]
    assert torch.equal(present.masks[:2], always.masks[:2]) and torch.equal(present.scores, always.scores)
    # threshold selection: each object's slot on its own frames, the union on every frame where one is present
    options = RVOSTestOptions(object_selection='threshold', score_thr=0.4, presence_thr=0.5)
    (multi, ) = head.predict_by_feat(cls, masks, metas, options=options)
    assert multi.object_query_index[0].tolist() == [0, 1]  # 0.55 then 0.525
    assert multi.object_masks.flatten(2).any(2).tolist() == [[True, False], [True, True], [False, True], [False, True]]
    assert multi.masks.flatten(1).any(1).all() and not multi.masks[0, :, 5:].any() and not multi.masks[3, :, :3].any()
    # a caller's selection instead of select_objects (checked)
    (chosen, ) = head.predict_by_feat(cls, masks, metas, options=RVOSTestOptions(presence_thr=0.5),
                                      selected=[torch.tensor([1])])
    assert chosen.query_index.tolist() == [1] * 4 and chosen.masks.flatten(1).any(1).tolist() == [False, True, True,
                                                                                                  True]
    (same, ) = head.predict_by_feat(cls, masks, metas, selected=[torch.tensor([0])])
    for key in ('masks', 'scores', 'query_index'):
        assert torch.equal(same.get(key), always.get(key)), key
    with pytest.raises(ValueError, match='top-1 selection needs one query'):
        head.predict_by_feat(cls, masks, metas, selected=[torch.tensor([0, 1])])
    with pytest.raises(ValueError, match=r'distinct query indices in \[0, 2\)'):
        head.predict_by_feat(cls, masks, metas, options=options, selected=[torch.tensor([1, 1])])
    with pytest.raises(ValueError, match='1 selections for 2 samples'):
        head.predict_by_feat(cls.expand(2, -1, -1, -1), masks.expand(2, -1, -1, -1, -1), metas * 2,
                             selected=[torch.tensor([0])])


# ---------------------------------------------------------------------- through the video inference
@pytest.fixture(scope='module')
def model():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    m = build_tiny()
    m.init_weights()
    return m.eval()


def clip_stream(inputs, samples, clip_len):
    """The (clip, samples, clip_index) batches of a video [1, T, ...] split into clips of ``clip_len``."""
    index = torch.zeros(len(samples), dtype=torch.long)
    return [(part, samples, index) for part in inputs.split(clip_len, dim=1)]


@pytest.mark.parametrize('selection', [dict(), dict(object_selection='threshold', score_thr=0.3)])
def test_options_off_give_the_per_clip_outputs_exactly(model, selection):
    """link_clips off (default) and presence_thr None (default): every clip of a long video chooses on its own,
    exactly as each clip predicted on its own (SOC.predict on that clip)."""
    inputs, samples = make_batch(model, num_frames=6)
    options = model.test_options.replace(**selection)
    explicit = options.replace(link_clips=False, presence_thr=None, link_margin=0.5)
    streamed = list(VideoInference(model, explicit).iter_stream(clip_stream(inputs, clones(samples), 2)))
    default = VideoInference(model, options).predict_stream(clip_stream(inputs, clones(samples), 2))
    separate = []
    saved = model.test_options
    model.test_options = options
    try:
        for part in inputs.split(2, dim=1):
            with torch.no_grad():
                separate.append(VideoInference(model).predict_clip(part, clones(samples),
                                                                   torch.zeros(len(samples), dtype=torch.long)))
    finally:
        model.test_options = saved
    for n in range(len(samples)):
        for streamed_clip, separate_clip in zip(streamed, separate):
            a, b = streamed_clip[n], separate_clip[n]
            assert set(a.keys()) == set(b.keys())
            for key in a.keys():
                assert torch.equal(a.get(key), b.get(key)), key
        merged = merge_clip_results(separate)[n]
        for key in merged.keys():
            assert torch.equal(default[n].get(key), merged.get(key)), key


def constructed_candidates(model, clips):
    """Make ``model.bbox_head.predict_candidates`` return the constructed clips (cls, masks, query_feats), one per
    call, for every sample; returns the undo function."""
    pending = list(clips)
    head = model.bbox_head

    def fake(hidden_states, references, mask_feats, batch_data_samples, options=None):
        cls, masks, feats = pending.pop(0)
        B = len(batch_data_samples)
        return dict(cls=cls[None].expand(B, -1, -1, -1), masks=masks[None].expand(B, -1, -1, -1, -1),
                    query_feats=feats[None].expand(B, -1, -1))

    head.predict_candidates = fake
    return lambda: delattr(head, 'predict_candidates')


@pytest.mark.parametrize('link', [False, True])
def test_video_inference_follows_the_object_across_a_boundary(model, link):
    """A 6-frame video in two clips of 3 whose head outputs are the constructed look-alikes: per clip the answer
    jumps from A (query 0) to B (query 0 of clip 2); linked, it stays on A (query 2 of clip 2)."""
    first = clip((LEFT, [0.8] * 3, LOOK_ALIKE), (RIGHT, [0.6] * 3, LOOK_ALIKE_2), (NOWHERE, [0.05] * 3, OTHER))
    second = clip((RIGHT, [0.7] * 3, LOOK_ALIKE_2), (NOWHERE, [0.05] * 3, OTHER), (LEFT, [0.6] * 3, LOOK_ALIKE))
    inputs, samples = make_batch(model, num_frames=6, expressions=['the circle'])
    undo = constructed_candidates(model, [first, second])
    try:
        (result, ) = VideoInference(model, link_clips=link).predict_stream(clip_stream(inputs, samples, 3))
    finally:
        undo()
    assert result.query_index.tolist() == ([0] * 3 + [2] * 3 if link else [0] * 6)
    w = result.masks.shape[-1]
    on_left = result.masks[..., :w // 2].flatten(1).any(1)
    assert on_left.tolist() == ([True] * 6 if link else [True] * 3 + [False] * 3)


def test_the_test_loop_links_the_clips_of_a_long_video(model):
    """SOC.predict with test_cfg clip_len + link_clips: the same outputs as the stream of clips with a linker
    (the test loop's samples are the stream's)."""
    inputs, samples = make_batch(model, num_frames=6, expressions=['the circle', 'a square'])
    saved = model.test_options
    model.test_options = saved.replace(clip_len=2, link_clips=True, presence_thr=0.4)
    try:
        with torch.no_grad():
            preds = model.predict(inputs.expand(len(samples), -1, -1, -1, -1), clones(samples))
        streamed = list(VideoInference(model).iter_stream(clip_stream(inputs, clones(samples), 2)))
    finally:
        model.test_options = saved
    for n, pred in enumerate(preds):
        assert torch.equal(pred.pred_masks, torch.cat([c[n].masks for c in streamed]))
        assert pred.pred_masks.shape[0] == 6


@pytest.mark.parametrize('changes', [dict(), dict(link_clips=True, presence_thr=0.4, expressions_per_batch=3),
                                     dict(object_selection='threshold', score_thr=0.3, link_clips=True)])
def test_candidates_then_choose_equals_predict_clip(model, changes):
    """``clip_candidates`` + ``choose`` (a tool comparing selection rules on one model run) = ``predict_clip`` over a
    stream of clips, chunked expressions and linking included."""
    inputs, samples = make_batch(model, num_frames=6)
    inference = VideoInference(model, **changes)
    streamed = list(inference.iter_stream(clip_stream(inputs, clones(samples), 2)))
    linker = ClipLinker(inference.options) if inference.options.link_clips else None
    for (part, clip_samples, index), expected in zip(clip_stream(inputs, clones(samples), 2), streamed):
        candidates = inference.clip_candidates(part, clip_samples, index)
        assert candidates['cls'].shape[:3] == (len(samples), 2, model.num_queries)
        assert candidates['query_feats'].shape == (len(samples), model.num_queries, 128)
        chosen = inference.choose(candidates, clip_samples, linker=linker)
        for a, b in zip(chosen, expected):
            assert set(a.keys()) == set(b.keys())
            for key in a.keys():  # scores: the post-processing of 3 + 1 samples vs 4 rounds the mean apart
                if a.get(key).is_floating_point():
                    torch.testing.assert_close(a.get(key), b.get(key), rtol=0, atol=1e-6)
                else:
                    assert torch.equal(a.get(key), b.get(key)), key
