"""soc_mm.apis.RVOSInferencer (PyTorch backend): results equal inference_rvos's, the files it writes and
their layouts, config names, and bad inputs named."""
import json
import os
import os.path as osp
import warnings

import cv2
import numpy as np
import pytest
import torch
from mmengine.infer import BaseInferencer

from conftest import REPO_ROOT, TEXT_ENCODER_DIR, TINY_CONFIG

EXPRESSIONS = ['the red circle on the left', 'a blue square']
TEXT_OPTIONS = {'model.text_encoder.model_path': TEXT_ENCODER_DIR}


def moving_blobs(num_frames=5, size=(48, 64)):
    """uint8 RGB [T, H, W, 3]: two moving blobs on a dark background (PNG-exact)."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.zeros((num_frames, h, w, 3), np.uint8)
    for t in range(num_frames):
        frames[t, ..., 0] = 255 * ((xx - 10 - 3 * t) ** 2 + (yy - 20) ** 2 < 80)
        frames[t, ..., 2] = 255 * ((xx - 40 + 2 * t) ** 2 + (yy - 30) ** 2 < 60)
        frames[t, ..., 1] = 20
    return frames


@pytest.fixture(scope='module')
def inferencer():
    from soc_mm.apis import RVOSInferencer
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return RVOSInferencer(TINY_CONFIG, cfg_options=TEXT_OPTIONS, device='cpu', show_progress=False)


def assert_same(results, reference):
    assert [r.expression for r in results] == [r.expression for r in reference]
    for a, b in zip(results, reference):
        assert torch.equal(a.pred_masks, b.pred_masks)
        assert torch.allclose(a.pred_scores, b.pred_scores, atol=1e-6)
        assert a.num_frames == b.num_frames and a.ori_shape == b.ori_shape


def test_is_an_mmengine_inferencer_and_equals_inference_rvos(inferencer, tmp_path):
    from soc_mm.apis import inference_rvos
    assert isinstance(inferencer, BaseInferencer)
    video = moving_blobs(5)
    for clip_len in (2, None):
        result = inferencer(video, EXPRESSIONS, return_datasamples=True, clip_len=clip_len)
        assert_same(result['predictions'], inference_rvos(inferencer.model, video, EXPRESSIONS, clip_len=clip_len))
        assert result['visualization'] is None and result['files'] == []
    # a frame folder and BGR arrays: the same results as inference_rvos on them
    folder = tmp_path / 'clip_a'
    folder.mkdir()
    for t, frame in enumerate(video):
        cv2.imwrite(str(folder / f'frame_{t}.png'), frame[..., ::-1])
    reference = inference_rvos(inferencer.model, video, EXPRESSIONS, clip_len=2)
    assert_same(inferencer(str(folder), EXPRESSIONS, return_datasamples=True, clip_len=2)['predictions'], reference)
    bgr = inferencer(video[..., ::-1].copy(), EXPRESSIONS, return_datasamples=True, clip_len=2, channel_order='bgr')
    assert_same(bgr['predictions'], reference)
    # per-call test options, like inference_rvos's
    options = inferencer.model.test_options.replace(object_selection='threshold', score_thr=0.01)
    assert_same(inferencer.segment(video, EXPRESSIONS, clip_len=2, test_options=options),
                inference_rvos(inferencer.model, video, EXPRESSIONS, clip_len=2, test_options=options))
    # the stream's options: presence threshold (as a test option of inference_rvos), clips linked (as stream_rvos)
    from soc_mm.apis import stream_rvos
    options = inferencer.model.test_options.replace(presence_thr=0.04)
    assert_same(inferencer.segment(video, EXPRESSIONS, clip_len=2, presence_thr=0.04),
                inference_rvos(inferencer.model, video, EXPRESSIONS, clip_len=2, test_options=options))
    linked = inferencer.segment(video, EXPRESSIONS, clip_len=2, link_clips=True)
    clips = list(stream_rvos(inferencer.model, video, EXPRESSIONS, clip_len=2, link_clips=True))
    for k, result in enumerate(linked):
        assert torch.equal(result.pred_masks, torch.cat([c.results[k].pred_masks for c in clips]))
    # the json-friendly predictions: scores and RLE masks of the same results
    from soc_mm.structures.mask import decode_mask
    plain = inferencer(video, EXPRESSIONS, clip_len=2)['predictions']
    assert [p['expression'] for p in plain] == EXPRESSIONS and [p['exp_id'] for p in plain] == ['0', '1']
    for p, r in zip(plain, reference):
        assert np.array_equal(np.stack([decode_mask(m) for m in p['masks']]).astype(bool), r.pred_masks.numpy())
        assert np.allclose(p['scores'], r.pred_scores.numpy(), atol=1e-6)
    json.dumps(plain)


def test_files_and_their_layouts(inferencer, tmp_path):
    from PIL import Image
    from soc_mm.structures.mask import decode_mask
    video = moving_blobs(5)
    folder = tmp_path / 'my video'
    folder.mkdir()
    names = ['00010', '00015', '00020', '00025', '00030']  # Ref-YouTube-VOS frame names are kept
    for name, frame in zip(names, video):
        cv2.imwrite(str(folder / f'{name}.jpg'), frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
    out = tmp_path / 'out'
    result = inferencer(str(folder), EXPRESSIONS, out_dir=str(out), return_vis=True, return_datasamples=True,
                        clip_len=3)
    preds = result['predictions']
    vis_file = out / 'vis' / 'my_video.mp4'
    assert result['files'] == [str(vis_file), str(out / 'preds' / 'Annotations' / 'my_video'),
                               str(out / 'preds' / 'my_video_rle.json')]
    # the visualised video: every frame, painted (the expressions are written on it)
    import av
    with av.open(str(vis_file)) as container:
        written = [f.to_ndarray(format='rgb24') for f in container.decode(video=0)]
    assert len(written) == 5 and written[0].shape == (48, 64, 3)
    assert len(result['visualization']) == 5 and (result['visualization'][0] != video[0]).any()
    # Ref-YouTube-VOS submission layout: Annotations/<video>/<exp_id>/<frame>.png, 0 / 255
    for k, pred in enumerate(preds):
        files = sorted(os.listdir(out / 'preds' / 'Annotations' / 'my_video' / str(k)))
        assert files == [f'{n}.png' for n in names]
        for t, name in enumerate(names):
            png = np.asarray(Image.open(out / 'preds' / 'Annotations' / 'my_video' / str(k) / f'{name}.png'))
            assert set(np.unique(png)) <= {0, 255}
            assert np.array_equal(png == 255, pred.pred_masks[t].numpy())
    # COCO RLE with the scores
    rle = json.loads((out / 'preds' / 'my_video_rle.json').read_text())
    assert rle['video'] == 'my_video' and (rle['height'], rle['width']) == (48, 64) and rle['frames'] == names
    for k, entry in enumerate(rle['expressions']):
        assert entry['expression'] == EXPRESSIONS[k] and entry['exp_id'] == str(k)
        masks = np.stack([decode_mask(m) for m in entry['masks']]).astype(bool)
        assert np.array_equal(masks, preds[k].pred_masks.numpy())
        assert np.allclose(entry['scores'], preds[k].pred_scores.numpy(), atol=1e-6)
    # a chosen video path and name; no predictions written
    out2 = tmp_path / 'out2'
    result = inferencer(moving_blobs(3), 'a blob', out_dir=str(out2), video_name='clip7', no_save_pred=True,
                        out_video=str(tmp_path / 'custom.mp4'), fps=5)
    assert result['files'] == [str(tmp_path / 'custom.mp4')] and not out2.exists()


@pytest.mark.parametrize('fps', [0, -1, 241, float('nan'), float('inf'), True, '5'])
def test_fps_outside_what_players_take_is_refused_before_any_work(inferencer, tmp_path, monkeypatch, fps):
    monkeypatch.setattr(inferencer, 'preprocess', lambda *a, **k: pytest.fail('the video was read'))
    with pytest.raises(ValueError, match=r'RVOSInferencer: fps=.*: expected a number in \(0, 240\]'):
        inferencer(moving_blobs(3), 'a blob', out_dir=str(tmp_path / 'out'), fps=fps)
    assert not (tmp_path / 'out').exists()


def test_config_names_resolve():
    from soc_mm.apis.rvos_inferencer import config_roots, resolve_config
    assert any(osp.samefile(osp.join(root, 'configs'), osp.join(REPO_ROOT, 'configs')) for root in config_roots())
    by_path = resolve_config(TINY_CONFIG)
    for name in ('soc/soc_tiny_synthetic.py', 'soc/soc_tiny_synthetic', 'soc_tiny_synthetic'):
        cfg = resolve_config(name)
        assert cfg.filename == by_path.filename and cfg.model.num_queries == 5
    with pytest.raises(FileNotFoundError, match=r"'soc_no_such_model' is not a config file, nor a config or model"):
        resolve_config('soc_no_such_model')
    with pytest.raises(TypeError, match='model must be a config path or name'):
        resolve_config(3)


def test_a_built_model_and_the_progress_bar(inferencer, capsys):
    from soc_mm.apis import RVOSInferencer
    built = RVOSInferencer(inferencer.model, show_progress=True)
    video = moving_blobs(4)
    result = built(video, EXPRESSIONS, clip_len=2, return_datasamples=True)
    assert 'Inference (clips)' in capsys.readouterr().out
    assert_same(result['predictions'], inferencer.segment(video, EXPRESSIONS, clip_len=2))
    with pytest.raises(ValueError, match='a built model takes no weights'):
        RVOSInferencer(inferencer.model, weights='x.pth')


def test_bad_inputs_are_named(inferencer, tmp_path):
    from soc_mm.apis import RVOSInferencer
    video = moving_blobs(3)
    with pytest.raises(FileNotFoundError, match=r'video not found: .*missing\.mp4'):
        inferencer(str(tmp_path / 'missing.mp4'), 'x')
    with pytest.raises(TypeError, match='inputs must be a video file, a folder of frames, an array'):
        inferencer(3.5, 'x')
    with pytest.raises(ValueError, match='expressions must be a non-empty list'):
        inferencer(video, [])
    with pytest.raises(ValueError, match=r"expressions\[1\] must be a non-empty string"):
        inferencer(video, ['ok', '  '])
    with pytest.raises(ValueError, match="channel_order must be 'rgb' or 'bgr'"):
        inferencer(video, 'x', channel_order='hsv')
    with pytest.raises(ValueError, match=r"unknown argument \{'batch'\}"):
        inferencer(video, 'x', batch=2)
    with pytest.raises(ValueError, match='segment: unknown arguments'):
        inferencer.segment(video, 'x', out_dir='y')
    with pytest.raises(ValueError, match=r'clip_len must be None or an int >= 1, got 0'):
        inferencer(video, 'x', clip_len=0)
    with pytest.raises(ValueError, match=r"unsupported extension '\.txt'"):
        inferencer(video, 'x', out_video=str(tmp_path / 'out.txt'))
    with pytest.raises(ValueError, match=r'frame 1 must be an \[H, W, 3\] array'):
        inferencer([video[0], video[1, ..., 0]], 'x')
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(ValueError, match='has zero frames'):
        inferencer(str(empty), 'x')
    with pytest.raises(ValueError, match=r"backend must be one of \('pytorch', 'onnxruntime'\)"):
        RVOSInferencer(TINY_CONFIG, backend='tensorrt')
    with pytest.raises(ValueError, match="backend='onnxruntime' needs weights"):
        RVOSInferencer(TINY_CONFIG, backend='onnxruntime')
    with pytest.raises(ValueError, match='model .* is required with the PyTorch backend'):
        RVOSInferencer(None, weights='x.pth')
    with pytest.raises(FileNotFoundError, match='checkpoint'):
        RVOSInferencer(TINY_CONFIG, str(tmp_path / 'missing.pth'), cfg_options=TEXT_OPTIONS)
