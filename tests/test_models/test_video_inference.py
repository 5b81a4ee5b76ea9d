"""Video inference layer (``soc_mm.models.inference``): one backbone pass per clip for all expressions,
long videos in clips (merged, with different object counts too), expression batches, identical clips known
from the metainfo clip key, the test loop with the batch sampler that groups a video's expressions (the
sampler itself: tests/test_datasets/test_video_batch_sampler.py), the fused kernels as a build-time option,
and the threshold object selection through SOC.predict."""
import contextlib
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from conftest import FIXTURE_ROOT, REPO_ROOT
from soc_mm.models.inference import merge_clip_results
from soc_mm.structures import RVOSDataSample

TEXT_ENCODER = osp.join(FIXTURE_ROOT, 'common', 'text_encoder')
EXPRESSIONS = ['the red circle on the left', 'a blue square', 'the small green triangle moving right',
               'square']


def tiny_model_cfg():
    """configs/soc/soc_tiny_synthetic.py's model (d 128, 16-channel Video-Swin) with the fixture RoBERTa."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'soc', 'soc_tiny_synthetic.py'))
    cfg.model.text_encoder.model_path = TEXT_ENCODER
    return cfg


def build_tiny(fast_kernels=False, **test_cfg):
    """The tiny SOC; the reference kernels unless ``fast_kernels`` (the model's default)."""
    import soc_mm  # noqa: F401
    from soc_mm.registry import MODELS
    init_default_scope('soc_mm')
    cfg = tiny_model_cfg().model
    cfg.test_cfg = dict(cfg.get('test_cfg') or {}, **test_cfg)
    cfg.fast_kernels = fast_kernels
    return MODELS.build(cfg)


@pytest.fixture(scope='module')
def model():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    m = build_tiny()
    m.init_weights()
    return m.eval()


def make_batch(model, num_frames=4, size=(64, 96), expressions=EXPRESSIONS, seed=0):
    """One random clip (video ``v{seed}``) through the data preprocessor -> inputs [1, T, 3, H, W],
    one sample per expression."""
    from soc_mm.structures import RVOSDataSample
    g = torch.Generator().manual_seed(seed)
    h, w = size
    clip = torch.randint(0, 256, (num_frames, 3, h, w), dtype=torch.uint8, generator=g)
    samples = [RVOSDataSample(metainfo=dict(img_shape=(h, w - 6), ori_shape=(2 * h, 2 * w), expression=e,
                                            video_id=f'v{seed}', frame_ids=[str(i) for i in range(num_frames)]))
               for e in expressions]
    data = model.data_preprocessor(dict(inputs=[clip], data_samples=[samples[0]]), False)
    meta = data['data_samples'][0].metainfo
    for s in samples:
        s.set_metainfo({k: meta[k] for k in ('batch_input_shape', 'pad_shape')})
    return data['inputs'], samples


def clones(samples):
    return [s.clone() for s in samples]


def assert_same_predictions(a, b):
    assert torch.equal(a.pred_masks, b.pred_masks)
    assert (a.pred_scores - b.pred_scores).abs().max() <= 1e-5


@contextlib.contextmanager
def options_changed(model, **changes):
    """``model.test_options`` with ``changes`` inside the block (the model's own afterwards)."""
    saved = model.test_options
    model.test_options = saved.replace(**changes)
    try:
        yield
    finally:
        model.test_options = saved


def count_calls(module):
    """Batch sizes of every forward of ``module``; remove the returned handle."""
    calls = []

    def hook(module, args, kwargs, output):
        calls.append((args[0] if args else kwargs['query']).shape[0])

    return calls, module.register_forward_hook(hook, with_kwargs=True)


# ---------------------------------------------------------------------- sharing
@pytest.mark.parametrize('num_expressions', [1, 4])
def test_shared_path_equals_per_expression_path(model, num_expressions):
    from soc_mm.structures.batch_metainfo import get_texts
    from soc_mm.models.inference import VideoInference, expand_clip_feats
    inputs, samples = make_batch(model, expressions=EXPRESSIONS[:num_expressions])
    index = torch.zeros(num_expressions, dtype=torch.long)
    layer = model.output_layer
    calls, handle = count_calls(model.backbone)
    try:
        with torch.no_grad():
            shared_results = VideoInference(model).predict_clip(inputs, clones(samples), index)
            assert calls == [1]  # one backbone pass over the one clip for every expression
            # the head inputs of the shared path: clip features repeated for the expressions
            clip_feats = model.extract_feat(inputs, samples[:1])
            shared = model.forward_transformer(**expand_clip_feats(clip_feats, index, inputs.shape[1]),
                                               **model.extract_text_feat(get_texts(samples)))
            for k, sample in enumerate(samples):
                single = model(inputs, [sample], mode='tensor')
                cls, _, masks = model.bbox_head.forward_single(
                    shared['hidden_states'][layer, k:k + 1], shared['references'][layer][k:k + 1],
                    shared['references'][layer + 1][k:k + 1, ..., :2], shared['mask_feats'][k:k + 1],
                    torch.tensor([sample.img_shape]), layer)
                assert (cls - single['cls'][layer]).abs().max() <= 1e-5
                # mask logits reach |x| ~ 1e2 with random weights: 1e-5 relative to their scale
                scale = max(1.0, float(single['masks'][layer].abs().max()))
                assert (masks - single['masks'][layer]).abs().max() <= 1e-5 * scale
                pred = model.predict(inputs, [sample.clone()])[0]
                assert torch.equal(shared_results[k].masks, pred.pred_masks)
                assert (shared_results[k].scores - pred.pred_scores).abs().max() <= 1e-5
                assert pred.pred_masks.shape == (4, 128, 192) and pred.pred_masks.dtype == torch.bool
    finally:
        handle.remove()


def test_expressions_per_batch_chunks_the_text_stages(model):
    from soc_mm.models.inference import VideoInference
    inputs, samples = make_batch(model)
    index = torch.zeros(len(samples), dtype=torch.long)
    with torch.no_grad():
        full = VideoInference(model).predict_clip(inputs, samples, index)
        calls, handle = count_calls(model.encoder)
        try:
            chunked = VideoInference(model, expressions_per_batch=3).predict_clip(inputs, samples, index)
        finally:
            handle.remove()
    assert calls == [3 * 4, 1 * 4]  # (pairs x frames) through the encoder: 3 expressions, then 1
    assert len(chunked) == len(samples)
    for a, b in zip(full, chunked):
        assert torch.equal(a.masks, b.masks) and torch.equal(a.query_index, b.query_index)
        assert (a.scores - b.scores).abs().max() <= 1e-5


def test_predict_shares_clips_with_the_same_clip_key(model):
    """predict() (the test loop) knows identical clips from the metainfo clip key, not from the tensors."""
    from soc_mm.models.inference import group_clips
    inputs, samples = make_batch(model, expressions=EXPRESSIONS[:3])
    other, other_samples = make_batch(model, expressions=EXPRESSIONS[3:], seed=1)
    batch = torch.cat([inputs, other, inputs, inputs])  # clips a, b, a, a
    batch_samples = [samples[0], other_samples[0], samples[1], samples[2]]
    first, clip_index = group_clips(batch_samples)
    assert first == [0, 1] and clip_index.tolist() == [0, 1, 0, 0]
    calls, handle = count_calls(model.backbone)
    try:
        with torch.no_grad():
            grouped = model.predict(batch, clones(batch_samples))
            assert calls == [2]  # one backbone pass over the 2 distinct clips
            for b, sample in enumerate(batch_samples):
                assert_same_predictions(grouped[b], model.predict(batch[b:b + 1], [sample.clone()])[0])
            # equal tensors but no common key (another video id): not shared
            calls.clear()
            unkeyed = clones(batch_samples[:2])
            unkeyed[1].set_metainfo(dict(video_id='v0-copy'))
            model.predict(torch.cat([inputs, inputs]), unkeyed)
            assert calls == [2]
            # share_clips=False: every sample is its own clip
            calls.clear()
            with options_changed(model, share_clips=False):
                model.predict(batch, clones(batch_samples))
            assert calls == [4]
    finally:
        handle.remove()
    # a key shared by samples whose inputs cannot be the same clip is an error, not a silent share
    mismatched = clones(samples[:2])
    mismatched[1].set_metainfo(dict(img_shape=(10, 10)))
    with pytest.raises(ValueError, match='share clip 0 but differ in img_shape'):
        model.predict(torch.cat([inputs, inputs]), mismatched)


# ---------------------------------------------------------------------- clips over time
def test_long_video_equals_separate_clips(model):
    """SOC.predict (tools/test.py) on a 3 x clip_len video = the three clips predicted on their own."""
    clip_len = 2
    inputs, samples = make_batch(model, num_frames=3 * clip_len, expressions=EXPRESSIONS[:2])
    inputs = inputs.expand(2, -1, -1, -1, -1)  # one clip per sample, as a test-loop batch
    calls, handle = count_calls(model.backbone)
    try:
        with torch.no_grad():
            with options_changed(model, clip_len=clip_len):
                whole = model.predict(inputs, clones(samples))
            assert calls == [1, 1, 1]  # three clips, each shared by the two expressions
            parts = [model.predict(inputs[:, t:t + clip_len], clones(samples))
                     for t in range(0, 3 * clip_len, clip_len)]
    finally:
        handle.remove()
    for k in range(len(samples)):
        assert whole[k].pred_masks.shape[0] == 3 * clip_len
        assert torch.equal(whole[k].pred_masks, torch.cat([p[k].pred_masks for p in parts]))
        assert torch.allclose(whole[k].pred_scores, torch.cat([p[k].pred_scores for p in parts]), atol=1e-6)


def test_clip_len_longer_than_video_is_the_single_forward_path(model):
    inputs, samples = make_batch(model, expressions=EXPRESSIONS[:1])
    with torch.no_grad():
        ref = model.predict(inputs, [samples[0].clone()])[0]
        with options_changed(model, clip_len=8):
            out = model.predict(inputs, [samples[0].clone()])[0]
    assert torch.equal(ref.pred_masks, out.pred_masks) and torch.equal(ref.pred_scores, out.pred_scores)


def test_iter_clips_and_merge():
    from soc_mm.models.inference import iter_clips, merge_clip_results
    video = torch.arange(2 * 7).view(2, 7)
    expected = [[[0, 1, 2], [7, 8, 9]], [[3, 4, 5], [10, 11, 12]], [[6], [13]]]  # [G=2, t] per clip
    assert [c.tolist() for c in iter_clips(video, 3)] == expected
    assert [c.shape[1] for c in iter_clips(video, None)] == [7]
    assert list(iter_clips(iter(range(5)), 2)) == [[0, 1], [2, 3], [4]]  # lazily read frames
    with pytest.raises(ValueError, match='clip_len'):
        list(iter_clips(video, 0))
    per_clip = [[InstanceData(scores=torch.tensor([0.1, 0.2]))], [InstanceData(scores=torch.tensor([0.3]))]]
    (merged, ) = merge_clip_results(per_clip)
    assert merged.scores.tolist() == pytest.approx([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match='zero frames'):
        merge_clip_results([])


def test_inference_inputs_are_checked(model):
    from soc_mm.models.inference import VideoInference
    inputs, samples = make_batch(model, expressions=EXPRESSIONS[:2])
    inference = VideoInference(model)
    assert inference.options is model.test_options is model.bbox_head.test_options  # parsed once, shared
    with pytest.raises(ValueError, match='clip_index has 3 entries for 2 samples'):
        inference.predict_clip(inputs, samples, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r'clip_index must lie in \[0, 1\)'):
        inference.predict_clip(inputs, samples, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='clip_len must be None or an int >= 1, got 0'):
        VideoInference(model, clip_len=0)
    with pytest.raises(ValueError, match=r'test_cfg\.expressions_per_batch must be None or an int >= 1'):
        build_tiny(expressions_per_batch=0)
    # the options are parsed once, at the build: changed by setting a new (checked) object only
    with pytest.raises(TypeError):
        model.test_cfg['clip_len'] = 0
    with pytest.raises(TypeError, match='SOC.test_options must be an RVOSTestOptions'):
        model.test_options = dict(clip_len=2)
    with pytest.raises(ValueError, match=r'decoder layer index in \[-2, 2\), got 2'):
        model.test_options = model.test_options.replace(output_layer=2)
    assert model.test_cfg['clip_len'] is None and model.output_layer == 0


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


# ---------------------------------------------------------------------- fused kernels
def test_fast_kernels_are_a_build_option_equal_to_the_reference(model):
    from mmaction.models.backbones.swin import WindowAttention3D
    from soc_mm.models.layers.fast_kernels import (FastWindowAttention3D, disable_fast_kernels,
                                                   enable_fast_kernels, uses_fast_kernels)
    fast = build_tiny(fast_kernels=True)
    fast.load_state_dict(model.state_dict())
    fast.eval()
    assert uses_fast_kernels(fast) and not uses_fast_kernels(model)
    assert type(fast.backbone.layers[0].blocks[0].attn) is FastWindowAttention3D
    assert type(model.backbone.layers[0].blocks[0].attn) is WindowAttention3D
    # 64x96 -> stage-1 16x24 tokens: padded, shifted windows with masks are exercised
    inputs, samples = make_batch(model, expressions=EXPRESSIONS[:1])
    with torch.no_grad():
        ref = model(inputs, samples, mode='tensor')
        out = fast(inputs, samples, mode='tensor')
        # the Video-Swin, its 5 blocks' window attentions, 2 + 2 deformable attentions, 1 dynamic mask head
        assert disable_fast_kernels(fast) == 1 + 5 + 4 + 1
        again = fast(inputs, samples, mode='tensor')
        assert enable_fast_kernels(fast) == 11
    for key in ('cls', 'boxes', 'masks', 'hidden_states'):
        scale = max(1.0, float(ref[key].abs().max()))
        assert (ref[key] - out[key]).abs().max() <= 1e-5 * scale, key
        assert torch.equal(ref[key], again[key])  # switched back: the reference kernels exactly


def test_bf16_autocast_option(model):
    """test_cfg.bf16: bfloat16 autocast inside, float32 results close to the float32 run."""
    from soc_mm.models.inference import VideoInference
    inputs, samples = make_batch(model, expressions=EXPRESSIONS[:2])
    index = torch.zeros(2, dtype=torch.long)
    fp32 = VideoInference(model).predict_clip(inputs, clones(samples), index)
    seen = []
    handle = model.encoder.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    try:
        bf16 = VideoInference(model, bf16=True).predict_clip(inputs, clones(samples), index)
    finally:
        handle.remove()
    assert seen == [torch.bfloat16]  # the model really ran in bfloat16
    for a, b in zip(fp32, bf16):
        assert b.scores.dtype == torch.float32 and b.masks.dtype == torch.bool
        assert (a.scores - b.scores).abs().max() < 0.05
        assert (a.masks == b.masks).float().mean() > 0.9
    with pytest.raises(ValueError, match='test_cfg.bf16 must be True or False'):
        VideoInference(model, bf16='yes')


def test_two_models_one_with_fast_kernels_keep_their_own_kernels(model):
    """No process-wide switch: while the fused model runs (inside its deformable attention), mmcv's
    module-level CPU kernel is untouched and the reference model gives exactly its own results."""
    import mmcv.ops.multi_scale_deform_attn as msda_module
    reference_kernel = msda_module.multi_scale_deformable_attn_pytorch
    fast = build_tiny(fast_kernels=True)
    fast.load_state_dict(model.state_dict())
    fast.eval()
    inputs, samples = make_batch(model, expressions=EXPRESSIONS[:2])
    with torch.no_grad():
        ref_alone = model.predict(inputs.expand(2, -1, -1, -1, -1), clones(samples))
        fast_alone = fast.predict(inputs.expand(2, -1, -1, -1, -1), clones(samples))
        seen = {}

        def inside_fast_attention(module, args):
            if seen:
                return
            seen['kernel'] = msda_module.multi_scale_deformable_attn_pytorch
            seen['reference'] = model.predict(inputs.expand(2, -1, -1, -1, -1), clones(samples))

        # output_proj runs after the sampling kernel, inside the fused attention's forward
        attn = fast.encoder.layers[0].self_attn
        handle = attn.output_proj.register_forward_pre_hook(inside_fast_attention)
        try:
            fast_again = fast.predict(inputs.expand(2, -1, -1, -1, -1), clones(samples))
        finally:
            handle.remove()
    assert seen['kernel'] is reference_kernel
    for a, b in zip(seen['reference'], ref_alone):
        assert torch.equal(a.pred_masks, b.pred_masks) and torch.equal(a.pred_scores, b.pred_scores)
    for a, b in zip(fast_again, fast_alone):
        assert torch.equal(a.pred_masks, b.pred_masks) and torch.equal(a.pred_scores, b.pred_scores)
    for a, b in zip(fast_alone, ref_alone):
        assert_same_predictions(a, b)


# ---------------------------------------------------------------------- test loop with the batch sampler
def test_test_loop_with_video_batch_sampler_shares_the_backbone(tmp_path):
    """tools/test.py path: TestLoop + RVOSVideoBatchSampler = one backbone pass per video, same metrics."""
    import soc_mm.datasets.video_batch_sampler  # noqa: F401  (registers the sampler)
    from mmengine.runner import Runner
    from soc_mm.datasets import synthetic
    data_root = str(tmp_path / 'syn')
    synthetic.generate_ref_youtube_vos(data_root, num_train=1, num_valid=3, num_test=1, num_frames=3,
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
        calls, _ = count_calls(runner.model.backbone)
        results[grouped] = (runner.test(), len(calls), len(runner.test_dataloader.dataset))
    (plain, plain_calls, num_samples), (grouped, grouped_calls, _) = results[False], results[True]
    assert plain_calls == num_samples > 3  # one backbone pass per expression
    assert grouped_calls == 3  # one per video
    assert grouped == pytest.approx(plain, abs=1e-6)


# ---------------------------------------------------------------------- object selection through SOC.predict
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
