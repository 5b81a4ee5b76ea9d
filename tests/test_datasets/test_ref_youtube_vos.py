"""RefYouTubeVOSDataset (soc_mm/datasets/ref_youtube_vos.py) on a generated mini-dataset in the real
on-disk format."""
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope

import soc_mm  # noqa: F401
from soc_mm.datasets.ref_youtube_vos import YTVOS_CATEGORY_TO_LABEL, sliding_windows
from soc_mm.datasets.transforms import swap_left_right
from synthetic_datasets import EVAL_PALETTE, T, YTVOS_AUG, YTVOS_TRAIN, build, generate_ytvos, read_ids, small_ytvos

init_default_scope('soc_mm')


@pytest.fixture(scope='module')
def ytvos(tmp_path_factory):
    return generate_ytvos(tmp_path_factory)


def test_ytvos_train_count_and_known_sample(ytvos):
    root, manifest = ytvos
    ds = build(dict(type='RefYouTubeVOSDataset', data_root=root, split='train', num_frames=T,
                    pipeline=YTVOS_TRAIN))
    expected = []
    for vid in sorted(manifest['train']):
        v = manifest['train'][vid]
        for exp_id in sorted(v['expressions'], key=int):
            exp = v['expressions'][exp_id]
            present = set(v['objects'][exp['obj_id']]['frames'])
            expected += [(vid, exp_id, w) for w in sliding_windows(v['frames'], T) if present & set(w)]
    assert len(ds) == len(expected)
    for i in (0, len(ds) - 1):
        vid, exp_id, window = expected[i]
        v = manifest['train'][vid]
        out = ds[i]
        sample, inputs = out['data_samples'], out['inputs']
        meta = sample.metainfo
        assert (meta['video_id'], meta['exp_id'], meta['frame_ids']) == (vid, exp_id, window)
        assert meta['expression'] == v['expressions'][exp_id]['exp']
        assert inputs.shape == (T, 3, 48, 64) and str(inputs.dtype) == 'torch.uint8'
        for t, fid in enumerate(window):  # BGR frames exactly as decoded from the jpgs
            img = cv2.imread(osp.join(root, 'train', 'JPEGImages', vid, f'{fid}.jpg'))
            assert np.array_equal(inputs[t].permute(1, 2, 0).numpy(), img)
        obj_ids = sorted(int(o) for o in v['objects'])
        gt = sample.gt_instances
        assert gt.masks.shape == (len(obj_ids), T, 48, 64)
        ref = meta['ref_inst_idx']
        assert obj_ids[ref] == int(v['expressions'][exp_id]['obj_id'])
        for t, fid in enumerate(window):
            ids = read_ids(osp.join(root, 'train', 'Annotations', vid, f'{fid}.png'))
            for n, o in enumerate(obj_ids):
                assert np.array_equal(gt.masks[n, t].numpy(), ids == o)
                assert bool(gt.visible[n, t]) == bool((ids == o).any())
        labels = [YTVOS_CATEGORY_TO_LABEL[v['objects'][str(o)]['category']] for o in obj_ids]
        assert gt.labels.tolist() == labels
        # boxes: inclusive last index, normalised cx, cy, w, h; zero box when absent
        m = gt.masks[ref, 0].numpy()
        ys, xs = np.nonzero(m)
        box = [(xs.min() + xs.max()) / 2 / 64, (ys.min() + ys.max()) / 2 / 48,
               (xs.max() - xs.min()) / 64, (ys.max() - ys.min()) / 48] if len(xs) else [0, 0, 0, 0]
        assert np.allclose(gt.boxes[ref, 0].numpy(), box, atol=1e-6)


def test_ytvos_object_absent_from_whole_clip_is_valid(ytvos):
    root, _ = ytvos
    ds = build(dict(type='RefYouTubeVOSDataset', data_root=root, split='train', num_frames=T,
                    pipeline=YTVOS_TRAIN))
    found = False
    for i in range(len(ds)):
        gt = ds[i]['data_samples'].gt_instances
        ref = ds[i]['data_samples'].metainfo['ref_inst_idx']
        assert gt.visible[ref].any()  # windows without the referred object are skipped (as SOC)
        absent = ~gt.visible.any(1)
        if absent.any():
            found = True
            assert (gt.boxes[absent] == 0).all()
    assert found, 'generator (exit_prob=0.7) should produce an object absent from a whole window'


def test_ytvos_valid_split_removes_test_videos(ytvos):
    root, manifest = ytvos
    ds = build(dict(type='RefYouTubeVOSDataset', data_root=root, split='valid', pipeline=EVAL_PALETTE))
    assert len(ds) == sum(len(v['expressions']) for v in manifest['valid'].values())
    assert not any(ds.get_data_info(i)['video_id'].startswith('test') for i in range(len(ds)))
    out = ds[0]
    meta, sample = out['data_samples'].metainfo, out['data_samples']
    v = manifest['valid'][meta['video_id']]
    assert meta['frame_ids'] == v['frames'] and meta['valid_frame_idx'] is None
    assert out['inputs'].shape == (10, 3, 32, 42)  # soc resize: 48x64 -> short 32 -> int(32*64/48) = 42
    assert sample.ori_gt_masks.shape == (10, 48, 64)
    obj = int(v['expressions'][meta['exp_id']]['obj_id'])
    ids = read_ids(osp.join(root, 'valid', 'Annotations', meta['video_id'], f"{v['frames'][3]}.png"))
    assert np.array_equal(sample.ori_gt_masks[3].numpy(), ids == obj)


def test_ytvos_valid_without_test_file_and_gt(tmp_path):
    root, manifest = small_ytvos(tmp_path, valid_with_gt=False)
    os.remove(osp.join(root, 'meta_expressions', 'test', 'meta_expressions.json'))
    pipe = [dict(type='LoadRVOSFrames'), dict(type='RVOSRandomResize', short_side=32, max_size=64),
            dict(type='PackRVOSInputs', pack_ori_gt_masks=True)]
    ds = build(dict(type='RefYouTubeVOSDataset', data_root=root, split='valid', pipeline=pipe))
    n_valid = sum(len(v['expressions']) for v in manifest['valid'].values())
    n_test = sum(len(v['expressions']) for v in manifest['test'].values())
    assert len(ds) == n_valid + n_test  # no test file: every valid video kept (logged)
    sample = ds[0]['data_samples']
    assert 'gt_instances' not in sample and 'ori_gt_masks' not in sample
    with pytest.raises(ValueError, match='no mask annotations'):
        build(dict(type='RefYouTubeVOSDataset', data_root=root, split='valid', pipeline=EVAL_PALETTE))[0]


def test_ytvos_flip_swaps_text_and_masks(ytvos):
    root, manifest = ytvos
    plain = build(dict(type='RefYouTubeVOSDataset', data_root=root, num_frames=T, pipeline=YTVOS_TRAIN))
    flipped = build(dict(type='RefYouTubeVOSDataset', data_root=root, num_frames=T,
                         pipeline=YTVOS_TRAIN[:2] + [dict(type='RVOSRandomFlip', prob=1.0)] + YTVOS_TRAIN[2:]))
    a, b = plain[0], flipped[0]
    text = a['data_samples'].metainfo['expression']
    assert 'left' in text or 'right' in text
    assert b['data_samples'].metainfo['expression'] == swap_left_right(text) != text
    assert b['data_samples'].metainfo['flip'] is True
    assert np.array_equal(b['inputs'].numpy(), a['inputs'].numpy()[..., ::-1])
    ma, mb = a['data_samples'].gt_instances, b['data_samples'].gt_instances
    assert np.array_equal(mb.masks.numpy(), ma.masks.numpy()[..., ::-1])
    vis = ma.visible
    cx_a, cx_b = ma.boxes[..., 0][vis], mb.boxes[..., 0][vis]
    assert np.allclose(cx_b.numpy(), (64 - 1) / 64 - cx_a.numpy(), atol=1e-6)  # x1' = W-1-x2


def test_ytvos_seeded_augmentation_is_reproducible(ytvos):
    root, _ = ytvos
    ds = build(dict(type='RefYouTubeVOSDataset', data_root=root, num_frames=T, pipeline=YTVOS_AUG))

    def run(seed):
        np.random.seed(seed)
        outs = [ds[i] for i in range(6)]
        return [(o['inputs'].numpy(), o['data_samples'].gt_instances.masks.numpy(),
                 o['data_samples'].metainfo['expression']) for o in outs]

    first, again, other = run(0), run(0), run(1)
    for x, y in zip(first, again):
        assert np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) and x[2] == y[2]
    assert any(x[0].shape != y[0].shape or not np.array_equal(x[0], y[0]) for x, y in zip(first, other))
    for i in range(6):  # the crop keeps the referred object
        np.random.seed(i)
        sample = ds[i]['data_samples']
        assert sample.gt_instances.visible[sample.metainfo['ref_inst_idx']].any()


def test_ytvos_expression_object_absent(tmp_path, caplog):
    root, manifest = small_ytvos(tmp_path)
    path = osp.join(root, 'meta_expressions', 'train', 'meta_expressions.json')
    data = json.load(open(path))
    vid = sorted(data['videos'])[0]
    data['videos'][vid]['expressions']['0']['obj_id'] = '99'
    json.dump(data, open(path, 'w'))
    ok = build(dict(type='RefYouTubeVOSDataset', data_root=root, num_frames=5, pipeline=YTVOS_TRAIN))
    n = sum(len(v['expressions']) for v in manifest['train'].values())
    assert len(ok) == n - 1  # skipped, with a logged count
    with pytest.raises(ValueError, match=f'{vid}/exp 0 .*obj_id 99'):
        build(dict(type='RefYouTubeVOSDataset', data_root=root, num_frames=5, strict=True, pipeline=YTVOS_TRAIN))


def test_ytvos_bad_input_errors(tmp_path):
    root, manifest = small_ytvos(tmp_path)
    cfg = dict(type='RefYouTubeVOSDataset', data_root=root, num_frames=5, pipeline=YTVOS_TRAIN)
    with pytest.raises(FileNotFoundError, match='(?s)not found: .*nowhere.*Expected layout'):
        build(dict(cfg, data_root=str(tmp_path / 'nowhere')))
    vid = sorted(manifest['train'])[0]
    frames = manifest['train'][vid]['frames']
    # corrupt frame: reported with video and frame when loaded
    jpg = osp.join(root, 'train', 'JPEGImages', vid, f'{frames[1]}.jpg')
    shutil.copy(jpg, jpg + '.bak')
    open(jpg, 'wb').write(b'not a jpeg')
    with pytest.raises(ValueError, match=f"video '{vid}' frame '{frames[1]}': corrupt image"):
        build(cfg)[0]
    # fewer frames than the metadata says
    os.remove(jpg)
    with pytest.raises(FileNotFoundError, match=f"video '{vid}' has fewer frames than its metadata"):
        build(cfg)
    shutil.move(jpg + '.bak', jpg)
    # corrupt mask
    png = osp.join(root, 'train', 'Annotations', vid, f'{frames[2]}.png')
    open(png, 'wb').write(b'garbage')
    with pytest.raises(ValueError, match=f"corrupt mask of video '{vid}' frame '{frames[2]}'"):
        build(cfg)
    # missing split file
    shutil.rmtree(osp.join(root, 'meta_expressions', 'train'))
    with pytest.raises(FileNotFoundError, match='(?s)meta_expressions.json.*Expected layout'):
        build(cfg)


def test_ytvos_presence_cache(tmp_path):
    root, manifest = small_ytvos(tmp_path)
    cache = str(tmp_path / 'presence.json')
    cfg = dict(type='RefYouTubeVOSDataset', data_root=root, num_frames=3, presence_cache=cache, pipeline=[])
    first = build(cfg)
    data = json.load(open(cache))
    assert sorted(data) == sorted(manifest['train'])
    vid = sorted(manifest['train'])[0]
    fid = manifest['train'][vid]['frames'][0]
    open(osp.join(root, 'train', 'Annotations', vid, f'{fid}.png'), 'wb').write(b'x')  # not re-read
    second = build(cfg)
    assert [second.get_data_info(i)['frame_ids'] for i in range(len(second))] == \
        [first.get_data_info(i)['frame_ids'] for i in range(len(first))]
