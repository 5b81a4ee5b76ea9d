"""soc_mm.apis: init_model and inference_rvos (video inputs, clips, errors)."""
import os
import os.path as osp

import numpy as np
import pytest
import torch

from conftest import FIXTURE_ROOT, REPO_ROOT

TEXT_ENCODER = osp.join(FIXTURE_ROOT, 'common', 'text_encoder')
EXPRESSIONS = ['the red circle on the left', 'a blue square moving right', 'green triangle']


@pytest.fixture(scope='module')
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('cfg') / 'tiny_soc.py'
    base = osp.join(REPO_ROOT, 'configs', 'soc', 'soc_tiny_synthetic.py')
    path.write_text(f"_base_ = [{base!r}]\nmodel = dict(text_encoder=dict(model_path={TEXT_ENCODER!r}))\n")
    return str(path)


@pytest.fixture(scope='module')
def model(config_file):
    from soc_mm.apis import init_model
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return init_model(config_file, device='cpu')


def smooth_video(num_frames=5, size=(48, 64), seed=0):
    """uint8 RGB [T, H, W, 3]: moving blobs (PNG-exact, not noise)."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for t in range(num_frames):
        img = np.zeros((h, w, 3), np.uint8)
        img[..., 0] = (255 * ((xx - 10 - 3 * t) ** 2 + (yy - 20) ** 2 < 80)).astype(np.uint8)
        img[..., 2] = (255 * ((xx - 40 + 2 * t) ** 2 + (yy - 30) ** 2 < 60)).astype(np.uint8)
        img[..., 1] = rng.integers(0, 40, (h, w), dtype=np.uint8)
        frames.append(img)
    return np.stack(frames)


def assert_same_results(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.expression == y.expression
        assert torch.equal(x.pred_masks, y.pred_masks)
        assert torch.allclose(x.pred_scores, y.pred_scores, atol=1e-5)


def test_init_model_options_and_checkpoint(config_file, model, tmp_path):
    from soc_mm.apis import init_model
    from soc_mm.models.layers.fast_kernels import uses_fast_kernels
    assert not model.training and model.cfg.model.type == 'SOC'
    assert uses_fast_kernels(model) and model.cfg.model.fast_kernels is True  # the default
    other = init_model(config_file, cfg_options={'model.test_cfg.clip_len': 3}, fast_kernels=False)
    assert other.test_options.clip_len == 3 and other.test_cfg['clip_len'] == 3 and not uses_fast_kernels(other)
    # None keeps the config's setting (read when the model is built)
    configured = init_model(config_file, cfg_options={'model.fast_kernels': False}, fast_kernels=None)
    assert not uses_fast_kernels(configured)
    # the switch is the model's (it also serves training), not test_cfg's
    with pytest.raises(ValueError, match=r'test_cfg.fast_kernels moved to the model.*model.fast_kernels=True'):
        init_model(config_file, cfg_options={'model.test_cfg.fast_kernels': True}, fast_kernels=None)
    ckpt = tmp_path / 'soc.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    loaded = init_model(config_file, str(ckpt), fast_kernels=False)
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    with pytest.raises(FileNotFoundError, match='config'):
        init_model(str(tmp_path / 'missing.py'))
    with pytest.raises(FileNotFoundError, match='checkpoint'):
        init_model(config_file, str(tmp_path / 'missing.pth'))


def test_inference_rvos_outputs_and_video_sources(model, tmp_path):
    import cv2
    from soc_mm.apis import inference_rvos
    video = smooth_video()
    res = inference_rvos(model, video, EXPRESSIONS)
    assert [r.expression for r in res] == EXPRESSIONS
    for r in res:
        assert r.pred_masks.dtype == torch.bool and r.pred_masks.shape == (5, 48, 64)
        assert r.pred_scores.shape == (5, ) and ((r.pred_scores >= 0) & (r.pred_scores <= 1)).all()
        assert r.ori_shape == (48, 64) and r.num_frames == 5
    # the same frames as BGR array, as a PNG frame folder: identical results
    assert_same_results(res, inference_rvos(model, video[..., ::-1].copy(), EXPRESSIONS, channel_order='bgr'))
    folder = tmp_path / 'frames'
    folder.mkdir()
    for t, frame in enumerate(video):
        cv2.imwrite(str(folder / f'{t:05d}.png'), frame[..., ::-1])
    assert_same_results(res, inference_rvos(model, str(folder), EXPRESSIONS))
    # an mp4 (lossy: only shapes)
    path = str(tmp_path / 'clip.mp4')
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), 5, (64, 48))
    if not writer.isOpened():
        pytest.skip('OpenCV cannot write mp4 here')
    for frame in video:
        writer.write(frame[..., ::-1].copy())
    writer.release()
    out = inference_rvos(model, path, EXPRESSIONS[:1])
    assert out[0].pred_masks.shape == (5, 48, 64)


def test_inference_rvos_shared_equals_per_expression_and_single_forward(model):
    from soc_mm.apis import inference_rvos, prepare_clip
    video = smooth_video(4)
    shared = inference_rvos(model, video, EXPRESSIONS)
    assert_same_results(shared, inference_rvos(model, video, EXPRESSIONS, share_clips=False))
    # a video that fits in one clip = the model's plain single-forward predict
    frames = [f[..., ::-1] for f in video]
    for k, expr in enumerate(EXPRESSIONS):
        inputs, samples = prepare_clip(model, frames, [expr])
        with torch.no_grad():
            ref = model.predict(inputs, samples)[0]
        assert torch.equal(ref.pred_masks, shared[k].pred_masks)
        assert torch.allclose(ref.pred_scores, shared[k].pred_scores, atol=1e-5)


def test_inference_rvos_reads_the_models_test_options(model):
    """The API's clip length and sharing come from the model's test options (one default, in
    RVOSTestOptions); "whole video" (clip_len None) reads clips of STREAM_CLIP_LEN frames."""
    from soc_mm.apis.inference import _stream_options
    from soc_mm.models.inference import STREAM_CLIP_LEN
    assert model.test_options.clip_len is None and model.test_options.share_clips is True
    assert _stream_options(model, None, None).clip_len == STREAM_CLIP_LEN == 36
    assert _stream_options(model, 5, False).replace(clip_len=None, share_clips=True) == model.test_options
    saved = model.test_options
    model.test_options = saved.replace(clip_len=4, share_clips=False)
    try:
        options = _stream_options(model, None, None)
        assert options.clip_len == 4 and options.share_clips is False
    finally:
        model.test_options = saved


def test_inference_rvos_long_video_equals_separate_clips(model):
    from soc_mm.apis import inference_rvos
    clip_len = 2
    video = smooth_video(3 * clip_len)
    whole = inference_rvos(model, video, EXPRESSIONS[:2], clip_len=clip_len)
    parts = [inference_rvos(model, video[t:t + clip_len], EXPRESSIONS[:2], clip_len=clip_len)
             for t in range(0, 3 * clip_len, clip_len)]
    for k in range(2):
        assert whole[k].pred_masks.shape[0] == 3 * clip_len
        assert torch.equal(whole[k].pred_masks, torch.cat([p[k].pred_masks for p in parts]))
        assert torch.allclose(whole[k].pred_scores, torch.cat([p[k].pred_scores for p in parts]), atol=1e-6)


def test_inference_rvos_bad_inputs(model, tmp_path):
    import cv2
    from soc_mm.apis import inference_rvos
    video = smooth_video(2)
    with pytest.raises(FileNotFoundError, match='not found'):
        inference_rvos(model, str(tmp_path / 'missing.mp4'), EXPRESSIONS)
    bad = tmp_path / 'broken.mp4'
    bad.write_bytes(b'this is not a video')
    with pytest.raises(ValueError, match='broken.mp4'):
        inference_rvos(model, str(bad), EXPRESSIONS)
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(ValueError, match='zero frames'):
        inference_rvos(model, str(empty), EXPRESSIONS)
    with pytest.raises(ValueError, match='zero frames'):
        inference_rvos(model, np.zeros((0, 48, 64, 3), np.uint8), EXPRESSIONS)
    with pytest.raises(ValueError, match='non-empty list'):
        inference_rvos(model, video, [])
    with pytest.raises(ValueError, match=r'expressions\[1\]'):
        inference_rvos(model, video, ['a dog', '  '])
    with pytest.raises(ValueError, match='differ in size'):
        inference_rvos(model, [video[0], video[1, :40]], EXPRESSIONS)
    mixed = tmp_path / 'mixed'
    mixed.mkdir()
    cv2.imwrite(str(mixed / '00000.png'), video[0])
    cv2.imwrite(str(mixed / '00001.png'), video[1, :40])
    with pytest.raises(ValueError, match='differ in size'):
        inference_rvos(model, str(mixed), EXPRESSIONS)
    with pytest.raises(ValueError, match='uint8'):
        inference_rvos(model, video.astype(np.float32), EXPRESSIONS)
    # a FIFO as the video (the decoder would wait forever) and a frame folder holding a folder, a looping link,
    # a 0-byte image and files that are no frames (named, not silently dropped)
    os.mkfifo(tmp_path / 'fifo.mp4')
    with pytest.raises(ValueError, match='fifo.mp4 is not a regular file'):
        inference_rvos(model, str(tmp_path / 'fifo.mp4'), EXPRESSIONS)
    odd = tmp_path / 'odd'
    odd.mkdir()
    cv2.imwrite(str(odd / '00000.png'), video[0])
    (odd / '00001.png').mkdir()
    with pytest.raises(ValueError, match=r'odd: frame 00001.png is not a regular file'):
        inference_rvos(model, str(odd), EXPRESSIONS)
    (odd / '00001.png').rmdir()
    os.symlink(odd / '00001.png', odd / '00001.png')  # a link to itself
    with pytest.raises(ValueError, match=r'odd: frame 00001.png is not a regular file'):
        inference_rvos(model, str(odd), EXPRESSIONS)
    os.remove(odd / '00001.png')
    (odd / '00001.png').write_bytes(b'')
    with pytest.raises(ValueError, match=r'odd: cannot read frame image 00001.png'):
        inference_rvos(model, str(odd), EXPRESSIONS)
    cv2.imwrite(str(odd / '00001.png'), video[1])
    (odd / 'notes.txt').write_text('x')
    (odd / '00002.gif.bak').write_bytes(b'GIF89a')
    with pytest.warns(UserWarning, match=r"odd: 2 entries that are not a .* frame skipped: \['00002.gif.bak', "
                                         r"'notes.txt'\]"):
        assert inference_rvos(model, str(odd), EXPRESSIONS)[0].num_frames == 2
    with pytest.raises(ValueError, match=r'inference_rvos: test_cfg\.clip_len must be None or an int >= 1, got 0'):
        inference_rvos(model, video, EXPRESSIONS, clip_len=0)
