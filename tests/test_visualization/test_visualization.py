"""RVOSVisualizer, RVOSVisualizationHook, soc_mm.visualization.browse, and the tools
tools/analysis_tools/browse_dataset.py and tools/demo/video_demo.py (as subprocesses)."""
import glob
import os
import os.path as osp
import re
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmengine.visualization import Visualizer

from conftest import REPO_ROOT, TEXT_ENCODER_DIR, subprocess_env
import soc_mm  # noqa: F401
from soc_mm.datasets import synthetic
from soc_mm.engine.hooks import RVOSVisualizationHook
from soc_mm.registry import HOOKS, VISUALIZERS
from soc_mm.structures import RVOSDataSample
from soc_mm.visualization import PALETTE, RVOSVisualizer, check_video_output_path, write_video

REPO = REPO_ROOT
TEXT_ENCODER = TEXT_ENCODER_DIR


def run_tool(script, *args, timeout=240):
    """``python tools/<script> args...`` from the repository root; the finished process."""
    return subprocess.run([sys.executable, osp.join(REPO, 'tools', script), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=subprocess_env())


def read_video(path):
    import av
    with av.open(path) as container:
        return [f.to_ndarray(format='rgb24') for f in container.decode(video=0)]


@pytest.fixture
def vis():
    return RVOSVisualizer(name=f'vis_{np.random.randint(1 << 30)}', alpha=0.5, font_size=8)


def grey_clip(t=3, h=40, w=48):
    return [np.full((h, w, 3), 100, np.uint8) for _ in range(t)]


def test_registered():
    assert VISUALIZERS.get('RVOSVisualizer') is RVOSVisualizer
    assert HOOKS.get('RVOSVisualizationHook') is RVOSVisualizationHook


def test_draw_clip_paints_masks_in_expression_colours(vis):
    frames = grey_clip()
    masks = np.zeros((3, 80, 96), bool)  # twice the frame size: resized nearest
    masks[:, 40:80, 48:96] = True          # bottom-right quarter
    other = np.zeros((3, 40, 48), bool)
    other[1, 20:40, 0:10] = True           # bottom-left strip, frame 1 only
    out = vis.draw_clip(frames, [masks, other], ['the dog', 'a cat'])
    assert len(out) == 3 and all(o.shape == (40, 48, 3) and o.dtype == np.uint8 for o in out)
    blend = lambda c: 0.5 * np.array(c) + 0.5 * 100  # noqa: E731
    np.testing.assert_allclose(out[0][35, 40], blend(PALETTE[0]), atol=2)
    np.testing.assert_allclose(out[1][35, 5], blend(PALETTE[1]), atol=2)
    np.testing.assert_array_equal(out[0][35, 5], [100, 100, 100])  # frame 0 has no 'cat' mask
    assert (out[0][:6] != 100).any()  # the expressions are written at the top
    with pytest.raises(ValueError, match='masks'):
        vis.draw_clip(frames, [np.zeros((2, 40, 48), bool)], ['x'])
    with pytest.raises(ValueError, match='expressions'):
        vis.draw_frame(frames[0], [None, None], ['only one'])


def test_add_datasample_picture_and_video(vis, tmp_path):
    frames = grey_clip(t=4, h=60, w=120)
    sample = RVOSDataSample(metainfo=dict(expression='the dog', valid_frame_idx=[1, 3]))
    pred = torch.zeros(2, 60, 120, dtype=torch.bool)
    pred[:, :30] = True
    sample.pred_masks = pred
    sample.ori_gt_masks = ~pred
    picture = vis.add_datasample('s', frames, sample, out_file=str(tmp_path / 'a.png'))
    # the 2 evaluated frames, each GT | prediction (240 wide): stacked top to bottom (wide frames)
    assert picture.shape == (120, 240, 3)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / 'a.png'))[..., ::-1], picture)
    colour = 0.5 * np.array(PALETTE[0]) + 50
    np.testing.assert_allclose(picture[25, 120 + 110], colour, atol=2)  # prediction: top half
    np.testing.assert_array_equal(picture[45, 120 + 110], [100, 100, 100])
    np.testing.assert_allclose(picture[60 + 45, 110], colour, atol=2)  # GT of the 2nd frame: bottom half
    np.testing.assert_array_equal(picture[60 + 25, 110], [100, 100, 100])
    vis.add_datasample('s', frames, sample, draw_gt=False, out_file=str(tmp_path / 'a.mp4'))
    video = read_video(str(tmp_path / 'a.mp4'))
    assert len(video) == 2 and video[0].shape == (60, 120, 3)
    with pytest.raises(ValueError, match='no frames'):
        write_video(str(tmp_path / 'empty.mp4'), [])


def test_clip_frames_bgr_to_rgb_and_crop():
    inputs = torch.zeros(2, 3, 10, 12, dtype=torch.uint8)
    inputs[:, 0] = 255  # blue in BGR
    frames = RVOSVisualizer.clip_frames(inputs, img_shape=(8, 9))
    assert len(frames) == 2 and frames[0].shape == (8, 9, 3)
    np.testing.assert_array_equal(frames[0][0, 0], [0, 0, 255])
    with pytest.raises(ValueError, match=r'\[T, 3, h, w\]'):
        RVOSVisualizer.clip_frames(torch.zeros(3, 10, 12))


def test_visualization_hook_saves_test_samples(tmp_path):
    name = f'hook_{np.random.randint(1 << 30)}'
    RVOSVisualizer.get_instance(name)  # the runner's current visualizer
    runner = SimpleNamespace(work_dir=str(tmp_path), timestamp='ts', iter=0)
    inputs = torch.full((3, 3, 20, 24), 90, dtype=torch.uint8)
    sample = RVOSDataSample(metainfo=dict(video_id='v/1', exp_id='2', expression='a cat',
                                          img_shape=(20, 24), valid_frame_idx=None))
    sample.pred_masks = torch.ones(3, 40, 48, dtype=torch.bool)  # original size: resized to the input
    hook = RVOSVisualizationHook(draw=True, interval=1, test_out_dir='vis')
    hook.after_test_iter(runner, 0, dict(inputs=[inputs], data_samples=[sample]), [sample])
    (saved, ) = glob.glob(str(tmp_path / 'ts' / 'vis' / '*.jpg'))
    assert osp.basename(saved) == 'v_1_2.jpg'
    img = cv2.imread(saved)[..., ::-1]
    assert img.shape == (20, 72, 3)
    np.testing.assert_allclose(img[15, 10], 0.5 * np.array(PALETTE[0]) + 45, atol=8)  # jpeg
    hook.video = True
    hook.after_test_iter(runner, 0, dict(inputs=[inputs], data_samples=[sample]), [sample])
    assert len(read_video(str(tmp_path / 'ts' / 'vis' / 'v_1_2.mp4'))) == 3
    off = RVOSVisualizationHook(draw=False, test_out_dir='off')
    off.after_test_iter(runner, 0, dict(inputs=[inputs], data_samples=[sample]), [sample])
    assert not osp.exists(tmp_path / 'ts' / 'off')
    Visualizer.get_instance(f'plain_{name}')
    with pytest.raises(TypeError, match='RVOSVisualizer'):
        hook.after_test_iter(runner, 0, dict(inputs=[inputs], data_samples=[sample]), [sample])
    with pytest.raises(ValueError, match='interval'):
        RVOSVisualizationHook(interval=0)


@pytest.fixture(scope='module')
def ytvos(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('vis_ytvos'))
    synthetic.generate_ref_youtube_vos(root, num_train=1, num_valid=1, num_test=0, num_frames=5, size=(32, 40))
    return root


def test_browse_dataset(ytvos, tmp_path):
    out = tmp_path / 'browse'
    proc = run_tool(
        'analysis_tools/browse_dataset.py', osp.join(REPO, 'configs', 'soc', 'soc_swin-t_8xb1-30e_refytvos.py'),
        '--output-dir', out, '--max-samples', '2', '--not-show', '--cfg-options',
        f'train_dataloader.dataset.data_root={ytvos}', 'train_dataloader.dataset.presence_cache=None',
        'train_dataloader.dataset.num_frames=3',
        'train_dataloader.dataset.pipeline.3.short_side=[32]', 'train_dataloader.dataset.pipeline.3.max_size=64')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'browsed 2 of ' in proc.stdout
    saved = sorted(glob.glob(str(out / '*.jpg')))
    assert len(saved) == 2
    # 3 frames resized to 32 x 40, side by side
    assert cv2.imread(saved[0]).shape == (32, 120, 3)


def test_video_demo(ytvos, tmp_path):
    from soc_mm.apis import init_model
    cfg_file = tmp_path / 'tiny.py'
    cfg_file.write_text(f"_base_ = ['{osp.join(REPO, 'configs', 'soc', 'soc_tiny_synthetic.py')}']\n"
                        f"model = dict(text_encoder=dict(model_path='{TEXT_ENCODER}'))\n")
    torch.manual_seed(0)
    model = init_model(str(cfg_file), None)
    ckpt = str(tmp_path / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    frame_dir = osp.join(ytvos, 'valid', 'JPEGImages', 'valid_0000')
    frames = [cv2.imread(f)[..., ::-1] for f in sorted(glob.glob(osp.join(frame_dir, '*.jpg')))]
    mp4 = str(tmp_path / 'in.mp4')
    write_video(mp4, frames, fps=5)
    for source, out in ((mp4, tmp_path / 'from_mp4.mp4'), (frame_dir, tmp_path / 'from_dir.mp4')):
        proc = run_tool('demo/video_demo.py', source, 'the red circle', 'the square on the left', '--config', cfg_file,
                        '--checkpoint', ckpt, '--out', out, '--clip-len', '3')
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f'wrote {len(frames)} frames to {out}' in proc.stdout
        video = read_video(str(out))
        assert len(video) == len(frames) and video[0].shape == (32, 40, 3)
        assert (video[0][:8] != np.asarray(frames[0])[:8]).any()  # the expressions are drawn


def test_video_demo_checks_its_inputs_before_loading_the_model(tmp_path):
    """A missing video and ``--out out.txt`` (which used to fail only after the whole inference) are refused
    first: the config and checkpoint named here do not exist, so a model load would fail with another error."""
    video = tmp_path / 'in.mp4'
    write_video(str(video), [np.zeros((8, 8, 3), np.uint8)] * 2)
    for source, out, extra, code, error in (
            (tmp_path / 'missing.mp4', tmp_path / 'out.mp4', [], 2, r'error: video not found: .*missing\.mp4'),
            (video, tmp_path / 'out.txt', [], 1, r"ValueError: .*unsupported extension '\.txt'.*\.mp4"),
            (video, tmp_path / 'out.mp4', ['--fps', 'nan'], 2, r'error: --fps nan: expected a number in \(0, 240\]'),
            (video, tmp_path / 'out.mp4', ['--alpha', '5'], 2, r'error: --alpha 5.0: expected a mask opacity'),
            (video, tmp_path / 'out.mp4', ['--out-dir', video], 2, r'error: --out-dir .*in\.mp4 is a file; expected '
                                                                  'a folder')):
        proc = run_tool('demo/video_demo.py', source, 'x', '--config', tmp_path / 'c.py', '--checkpoint',
                        tmp_path / 'c.pth', '--out', out, *extra, timeout=120)
        assert proc.returncode == code and re.search(error, proc.stderr.strip().splitlines()[-1]), proc.stderr[-2000:]
    proc = run_tool('demo/video_demo.py', video, 'x', ' ', '--config', tmp_path / 'c.py', '--checkpoint',
                    tmp_path / 'c.pth', timeout=120)
    assert proc.returncode == 2 and 'error: expression 2 is empty' in proc.stderr, proc.stderr[-2000:]
    for out, message in ((tmp_path / 'noext', r"unsupported extension '\(none\)'"),
                         (tmp_path, 'unsupported extension')):
        with pytest.raises(ValueError, match=message):
            check_video_output_path(str(out))
    dir_like = tmp_path / 'folder.mp4'
    dir_like.mkdir()
    with pytest.raises(ValueError, match='is a directory'):
        check_video_output_path(str(dir_like))
    check_video_output_path(str(tmp_path / 'new' / 'deeper' / 'ok.MP4'))  # created on write
    os.mkfifo(tmp_path / 'fifo.mp4')  # the writer would block until a reader comes
    with pytest.raises(ValueError, match='fifo.mp4.* exists and is not a regular file'):
        check_video_output_path(str(tmp_path / 'fifo.mp4'))


def test_ground_truth_of_several_or_no_referred_objects():
    """MeViS samples refer to a list of instances (possibly empty): the drawn ground truth is their union."""
    from mmengine.structures import InstanceData
    from soc_mm.structures import RVOSDataSample
    masks = torch.zeros(3, 2, 4, 4, dtype=torch.bool)
    masks[0, :, 0], masks[1, :, 1], masks[2, :, 2] = True, True, True
    sample = RVOSDataSample(metainfo=dict(ref_inst_idx=[0, 2]))
    sample.gt_instances = InstanceData(masks=masks)
    union = RVOSVisualizer._gt_masks(sample)
    assert torch.equal(union, masks[0] | masks[2])
    sample.set_metainfo(dict(ref_inst_idx=[]))
    assert not RVOSVisualizer._gt_masks(sample).any()
    sample.set_metainfo(dict(ref_inst_idx=1))
    assert torch.equal(RVOSVisualizer._gt_masks(sample), masks[1])
    from soc_mm.visualization.browse import instance_masks
    sample.set_metainfo(dict(ref_inst_idx=[2, 0], expression='the shapes moving down'))
    drawn, texts = instance_masks(sample)
    assert texts == ['the shapes moving down  (referred)'] * 2 + ['object 1']
    assert torch.equal(drawn[0], masks[2]) and torch.equal(drawn[2], masks[1])
    sample.set_metainfo(dict(ref_inst_idx=[]))
    drawn, texts = instance_masks(sample)
    assert drawn[0] is None and texts[0].endswith('(refers to nothing)') and len(drawn) == 4
