"""soc_mm.apis.stream_rvos: a video of any length clip by clip (frames read lazily, results yielded at once):
one clip = the whole-video output, 3 x clip_len frames = three separate clips, the clips concatenated =
inference_rvos, the linking and absence options, errors."""

import numpy as np
import pytest
import torch

from test_inference_api import EXPRESSIONS, config_file, model, smooth_video  # noqa: F401


def predict_whole(model, frames, expressions, **changes):
    """The test loop's path: the frames as one clip through ``SOC.predict`` (its options: whole videos)."""
    from soc_mm.apis import prepare_clip
    inputs, samples = prepare_clip(model, frames, expressions)
    saved = model.test_options
    model.test_options = saved.replace(**changes) if changes else saved
    try:
        with torch.no_grad():
            return model.predict(inputs.expand(len(samples), -1, -1, -1, -1), samples)
    finally:
        model.test_options = saved


def assert_same(a, b):
    assert torch.equal(a.pred_masks, b.pred_masks)
    assert torch.allclose(a.pred_scores, b.pred_scores, atol=1e-6)


def test_a_video_that_fits_one_clip_streams_as_the_whole_video(model):
    from soc_mm.apis import stream_rvos
    video = smooth_video(5)
    clips = list(stream_rvos(model, video, EXPRESSIONS, clip_len=5))
    assert len(clips) == 1
    (only, ) = clips
    assert only.index == 0 and only.start == 0 and only.num_frames == 5
    for frame, rgb in zip(only.frames, video):  # the frames as read: BGR
        assert np.array_equal(frame, rgb[..., ::-1])
    whole = predict_whole(model, [f[..., ::-1] for f in video], EXPRESSIONS)
    for k, (streamed, ref) in enumerate(zip(only.results, whole)):
        assert streamed.expression == EXPRESSIONS[k] and streamed.exp_id == str(k)
        assert streamed.pred_masks.shape == (5, 48, 64) and streamed.frame_ids == [str(t) for t in range(5)]
        assert_same(streamed, ref)


def test_three_clip_lengths_stream_as_three_clips(model):
    from soc_mm.apis import inference_rvos, stream_rvos
    clip_len = 3
    video = smooth_video(3 * clip_len)
    clips = list(stream_rvos(model, video, EXPRESSIONS[:2], clip_len=clip_len))
    assert [(c.index, c.start, c.num_frames) for c in clips] == [(0, 0, 3), (1, 3, 3), (2, 6, 3)]
    for c in clips:
        part = [f[..., ::-1] for f in video[c.start:c.start + clip_len]]
        for streamed, ref in zip(c.results, predict_whole(model, part, EXPRESSIONS[:2])):
            assert streamed.frame_ids == [str(t) for t in range(c.start, c.start + clip_len)]
            assert_same(streamed, ref)
    # concatenated over time: inference_rvos's merged output
    merged = inference_rvos(model, video, EXPRESSIONS[:2], clip_len=clip_len)
    for k, ref in enumerate(merged):
        assert torch.equal(torch.cat([c.results[k].pred_masks for c in clips]), ref.pred_masks)
        assert torch.allclose(torch.cat([c.results[k].pred_scores for c in clips]), ref.pred_scores, atol=1e-6)


def test_stream_options_reach_the_video_inference(model, tmp_path):
    """link_clips / presence_thr / selection of stream_rvos = the same options of inference_rvos; a frame folder
    streams as the array; the model's options are not changed."""
    import cv2
    from soc_mm.apis import count_video_frames, inference_rvos, stream_rvos
    video = smooth_video(7)
    folder = tmp_path / 'frames'
    folder.mkdir()
    for t, frame in enumerate(video):
        cv2.imwrite(str(folder / f'{t:05d}.png'), frame[..., ::-1])
    assert count_video_frames(str(folder)) == 7 == count_video_frames(video)
    assert count_video_frames(iter([])) is None and count_video_frames(str(tmp_path / 'missing.mp4')) is None
    saved = model.test_options
    changes = dict(link_clips=True, presence_thr=0.3, object_selection='threshold', score_thr=0.2)
    clips = list(stream_rvos(model, str(folder), EXPRESSIONS, clip_len=3, **changes))
    assert model.test_options is saved
    assert [c.num_frames for c in clips] == [3, 3, 1]
    ref = inference_rvos(model, video, EXPRESSIONS, clip_len=3, test_options=saved.replace(**changes))
    for k in range(len(EXPRESSIONS)):
        assert torch.equal(torch.cat([c.results[k].pred_masks for c in clips]), ref[k].pred_masks)
        assert all('pred_objects' in c.results[k] for c in clips)


def test_stream_errors(model, tmp_path):
    from soc_mm.apis import stream_rvos
    with pytest.raises(ValueError, match=r'stream_rvos: test_cfg\.presence_thr must be a probability'):
        stream_rvos(model, smooth_video(2), EXPRESSIONS, presence_thr=2.0)
    with pytest.raises(ValueError, match=r'stream_rvos: test_cfg\.clip_length is not a test option'):
        stream_rvos(model, smooth_video(2), EXPRESSIONS, clip_length=2)
    with pytest.raises(ValueError, match='non-empty list'):
        stream_rvos(model, smooth_video(2), [])
    clips = stream_rvos(model, str(tmp_path / 'missing.mp4'), EXPRESSIONS)  # read when the stream starts
    with pytest.raises(FileNotFoundError, match='not found'):
        next(clips)
