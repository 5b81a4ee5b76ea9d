"""Shared inference path of SOC: one backbone pass per clip for all expressions, long videos in clips,
fused inference kernels, and the batch sampler that groups a video's expressions."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import FIXTURE_ROOT, REPO_ROOT

TEXT_ENCODER = osp.join(FIXTURE_ROOT, 'common', 'text_encoder')
EXPRESSIONS = ['the red circle on the left', 'a blue square', 'the small green triangle moving right',
               'square']


def tiny_model_cfg():
    """configs/soc/soc_tiny_synthetic.py's model (d 128, 16-channel Video-Swin) with the fixture RoBERTa."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'soc', 'soc_tiny_synthetic.py'))
    cfg.model.text_encoder.model_path = TEXT_ENCODER
    return cfg


@pytest.fixture(scope='module')
def model():
    import soc_mm  # noqa: F401
    from soc_mm.registry import MODELS
    init_default_scope('soc_mm')
    torch.set_num_threads(1)
    torch.manual_seed(0)
    m = MODELS.build(tiny_model_cfg().model)
    m.init_weights()
    return m.eval()


def make_batch(model, num_frames=4, size=(64, 96), expressions=EXPRESSIONS, seed=0):
    """One random clip through the data preprocessor -> inputs [1, T, 3, H, W], one sample per expression."""
    from soc_mm.structures import RVOSDataSample
    g = torch.Generator().manual_seed(seed)
    h, w = size
    clip = torch.randint(0, 256, (num_frames, 3, h, w), dtype=torch.uint8, generator=g)
    samples = [RVOSDataSample(metainfo=dict(img_shape=(h, w - 6), ori_shape=(2 * h, 2 * w), expression=e,
                                            frame_ids=[str(i) for i in range(num_frames)]))
               for e in expressions]
    data = model.data_preprocessor(dict(inputs=[clip], data_samples=[samples[0]]), False)
    meta = data['data_samples'][0].metainfo
    for s in samples:
        s.set_metainfo({k: meta[k] for k in ('batch_input_shape', 'pad_shape')})
    return data['inputs'], samples


def head_logits(model, feats, b):
    hidden, refs, mask_refs, mask_feats = model.head_inputs(feats)
    lvl = model.output_level
    cls, _, masks = model.bbox_head.forward_single(hidden[lvl, b:b + 1], refs[lvl][b:b + 1],
                                                   mask_refs[lvl, b:b + 1], mask_feats[b:b + 1],
                                                   feats['img_shapes'][b:b + 1], lvl)
    return cls, masks


@pytest.mark.parametrize('num_expressions', [1, 4])
def test_shared_path_equals_per_expression_path(model, num_expressions):
    inputs, samples = make_batch(model, expressions=EXPRESSIONS[:num_expressions])
    with torch.no_grad():
        shared = model.forward_features_shared(inputs, samples, torch.zeros(num_expressions, dtype=torch.long))
        shared_preds = model.predict_shared(inputs, [s.clone() for s in samples],
                                            torch.zeros(num_expressions, dtype=torch.long))
        for k, sample in enumerate(samples):
            single = model.forward_features(inputs, [sample])
            cls_s, masks_s = head_logits(model, shared, k)
            cls_1, masks_1 = head_logits(model, single, 0)
            assert (cls_s - cls_1).abs().max() <= 1e-5
            # mask logits reach |x| ~ 1e2 with random weights: 1e-5 relative to their scale
            assert (masks_s - masks_1).abs().max() <= 1e-5 * max(1.0, float(masks_1.abs().max()))
            pred = model.predict(inputs, [sample.clone()])[0]
            assert torch.equal(shared_preds[k].pred_masks, pred.pred_masks)
            assert (shared_preds[k].pred_scores - pred.pred_scores).abs().max() <= 1e-5
            assert pred.pred_masks.shape == (4, 128, 192) and pred.pred_masks.dtype == torch.bool


def test_expressions_per_batch_chunks_the_text_stages(model):
    inputs, samples = make_batch(model)
    index = torch.zeros(len(samples), dtype=torch.long)
    with torch.no_grad():
        full = model.predict_shared(inputs, [s.clone() for s in samples], index)
        model.test_cfg['expressions_per_batch'] = 3
        try:
            chunked = model.predict_shared(inputs, [s.clone() for s in samples], index)
        finally:
            del model.test_cfg['expressions_per_batch']
    assert len(chunked) == len(samples)
    for a, b, s in zip(full, chunked, samples):
        assert a.expression == b.expression == s.expression
        assert torch.equal(a.pred_masks, b.pred_masks)
        assert (a.pred_scores - b.pred_scores).abs().max() <= 1e-5


def test_predict_groups_identical_clips_of_a_batch(model):
    """predict() shares the backbone between samples with identical clips (the test-loop batches)."""
    inputs, samples = make_batch(model, expressions=EXPRESSIONS[:3])
    other, other_samples = make_batch(model, expressions=EXPRESSIONS[3:], seed=1)
    batch = torch.cat([inputs, other, inputs, inputs])  # clips a, b, a, a
    batch_samples = [samples[0], other_samples[0], samples[1], samples[2]]
    unique, clip_index = model.group_identical_clips(batch, batch_samples)
    assert unique == [0, 1] and clip_index.tolist() == [0, 1, 0, 0]
    calls = []
    handle = model.backbone.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    try:
        with torch.no_grad():
            grouped = model.predict(batch, [s.clone() for s in batch_samples])
            assert calls == [2]  # one backbone pass over the 2 distinct clips
            for b, sample in enumerate(batch_samples):
                alone = model.predict(batch[b:b + 1], [sample.clone()])[0]
                assert torch.equal(grouped[b].pred_masks, alone.pred_masks)
                assert (grouped[b].pred_scores - alone.pred_scores).abs().max() <= 1e-5
    finally:
        handle.remove()


def test_long_video_equals_separate_clips(model):
    clip_len = 2
    inputs, samples = make_batch(model, num_frames=3 * clip_len, expressions=EXPRESSIONS[:2])
    inputs = inputs.expand(2, -1, -1, -1, -1)  # one clip per sample, as a test-loop batch
    model.test_cfg['clip_len'] = clip_len
    try:
        with torch.no_grad():
            whole = model.predict(inputs, [s.clone() for s in samples])
            del model.test_cfg['clip_len']
            parts = [model.predict(inputs[:, t:t + clip_len], [s.clone() for s in samples])
                     for t in range(0, 3 * clip_len, clip_len)]
    finally:
        model.test_cfg.pop('clip_len', None)
    for k in range(len(samples)):
        assert whole[k].pred_masks.shape[0] == 3 * clip_len
        assert torch.equal(whole[k].pred_masks, torch.cat([p[k].pred_masks for p in parts]))
        assert torch.allclose(whole[k].pred_scores, torch.cat([p[k].pred_scores for p in parts]), atol=1e-6)


def test_clip_len_longer_than_video_is_the_single_forward_path(model):
    inputs, samples = make_batch(model, expressions=EXPRESSIONS[:1])
    with torch.no_grad():
        ref = model.predict(inputs, [samples[0].clone()])[0]
        model.test_cfg['clip_len'] = 8
        try:
            out = model.predict(inputs, [samples[0].clone()])[0]
        finally:
            del model.test_cfg['clip_len']
    assert torch.equal(ref.pred_masks, out.pred_masks) and torch.equal(ref.pred_scores, out.pred_scores)


def test_fast_kernels_match_reference_kernels(model):
    from soc_mm.apis import disable_fast_kernels, enable_fast_kernels
    # 64x96 -> stage-1 16x24 tokens: padded, shifted windows with masks are exercised
    inputs, samples = make_batch(model, expressions=EXPRESSIONS[:1])
    with torch.no_grad():
        ref = model._forward(inputs, samples)
        try:
            # 5 Swin blocks, 2 + 2 deformable attentions, 1 dynamic mask head
            assert enable_fast_kernels(model) == 5 + 4 + 1
            fast = model._forward(inputs, samples)
        finally:
            assert disable_fast_kernels(model) == 10
        again = model._forward(inputs, samples)
    for key in ('cls', 'boxes', 'masks', 'hs'):
        scale = max(1.0, float(ref[key].abs().max()))
        assert (ref[key] - fast[key]).abs().max() <= 1e-5 * scale, key
        assert torch.equal(ref[key], again[key])  # disabling restores the reference exactly
    # test_cfg.fast_kernels switches them on inside predict (the test-loop path)
    model.test_cfg['fast_kernels'] = True
    try:
        with torch.no_grad():
            model.predict(inputs, [samples[0].clone()])
        assert getattr(model.backbone.layers[0].blocks[0].attn, 'forward').__func__.__name__ == \
            'window_attention_sdpa'
    finally:
        del model.test_cfg['fast_kernels']
        disable_fast_kernels(model)
        model._fast_kernels_enabled = False


def test_shared_inputs_are_checked(model):
    inputs, samples = make_batch(model, expressions=EXPRESSIONS[:2])
    with pytest.raises(ValueError, match='clip_index'):
        model.forward_features_shared(inputs, samples, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match='clip_index must lie'):
        model.forward_features_shared(inputs, samples, torch.tensor([0, 1]))
    samples[1].set_metainfo(dict(img_shape=(10, 10)))
    with pytest.raises(ValueError, match='differ in img_shape'):
        model.forward_features_shared(inputs, samples, torch.zeros(2, dtype=torch.long))
    model.test_cfg['clip_len'] = 0
    try:
        with pytest.raises(ValueError, match='clip_len'):
            model.predict(inputs, samples[:1])
    finally:
        del model.test_cfg['clip_len']


class _Dataset:
    def __init__(self, infos):
        self.infos = infos

    def get_data_info(self, i):
        return self.infos[i]

    def __len__(self):
        return len(self.infos)


def test_video_batch_sampler_groups_expressions_of_a_clip():
    from mmengine.dataset import DefaultSampler
    from soc_mm.datasets.video_batch_sampler import RVOSVideoBatchSampler
    frames = ['0', '1']
    infos = [dict(video_id='a', frame_ids=frames)] * 3 + [dict(video_id='b', frame_ids=frames)] + \
        [dict(video_id='c', frame_ids=frames)] * 5 + [dict(video_id='c', frame_ids=['9'])]
    sampler = DefaultSampler(_Dataset(infos), shuffle=False, round_up=False)
    batches = list(RVOSVideoBatchSampler(sampler, batch_size=1, max_expressions=3))
    assert batches == [[0, 1, 2], [3], [4, 5, 6], [7, 8], [9]]
    assert len(RVOSVideoBatchSampler(sampler, max_expressions=3)) == 5
    with pytest.raises(ValueError, match='drop_last'):
        RVOSVideoBatchSampler(sampler, drop_last=True)


def test_test_loop_with_video_batch_sampler_shares_the_backbone(tmp_path):
    """tools/test.py path: TestLoop + RVOSVideoBatchSampler = one backbone pass per video, same metrics."""
    import soc_mm.datasets.video_batch_sampler  # noqa: F401  (registers the sampler)
    from mmengine.runner import Runner
    from soc_mm.datasets import synthetic
    data_root = str(tmp_path / 'syn')
    synthetic.generate_ref_youtube_vos(data_root, num_train=1, num_valid=3, num_test=0, num_frames=3,
                                       size=(48, 64), seed=0)
    results = {}
    for grouped in (False, True):
        cfg = tiny_model_cfg()
        cfg.test_dataloader.dataset.data_root = data_root
        cfg.test_dataloader.num_workers = 0
        cfg.test_dataloader.persistent_workers = False
        if grouped:
            cfg.test_dataloader.batch_sampler = dict(type='RVOSVideoBatchSampler')
        cfg.update(work_dir=str(tmp_path / f'work_{grouped}'), train_dataloader=None, train_cfg=None,
                   optim_wrapper=None, param_scheduler=None, log_level='WARNING')
        runner = Runner.from_cfg(cfg)
        torch.manual_seed(0)
        runner.model.init_weights()  # mask logits far from the threshold (default init: ~0)
        calls = []
        runner.model.backbone.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
        results[grouped] = (runner.test(), len(calls), len(runner.test_dataloader.dataset))
    (plain, plain_calls, num_samples), (grouped, grouped_calls, _) = results[False], results[True]
    assert plain_calls == num_samples > 3  # one backbone pass per expression
    assert grouped_calls == 3  # one per video
    assert grouped == pytest.approx(plain, abs=1e-6)
