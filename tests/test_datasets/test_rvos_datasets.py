"""RVOS datasets on generated mini-datasets in the real on-disk formats (soc_mm.datasets.synthetic)."""
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope
from PIL import Image

import soc_mm  # noqa: F401
from soc_mm.datasets import JHMDBSentencesDataset, create_jhmdb_coco_gt, synthetic
from soc_mm.datasets.a2d_sentences import read_a2d_h5
from soc_mm.datasets.jhmdb_sentences import read_puppet_masks
from soc_mm.datasets.ref_youtube_vos import YTVOS_CATEGORY_TO_LABEL, sliding_windows
from soc_mm.datasets.transforms import swap_left_right
from soc_mm.registry import DATASETS

init_default_scope('soc_mm')

T = 4
YTVOS_TRAIN = [dict(type='LoadRVOSFrames'), dict(type='LoadPaletteMasks'), dict(type='PackRVOSInputs')]
YTVOS_AUG = [dict(type='LoadRVOSFrames'), dict(type='LoadPaletteMasks'), dict(type='RVOSRandomFlip', prob=0.5),
             dict(type='ClipPhotometricDistortion', prob=0.5),
             dict(type='RVOSRandomResize', short_side=[32, 40], max_size=64),
             dict(type='RVOSRandomCrop', min_size=24, max_size=40, prob=0.5), dict(type='PackRVOSInputs')]
EVAL_PALETTE = [dict(type='LoadRVOSFrames'), dict(type='LoadPaletteMasks'),
                dict(type='RVOSRandomResize', short_side=32, max_size=64),
                dict(type='PackRVOSInputs', pack_ori_gt_masks=True)]


def build(cfg):
    return DATASETS.build(cfg)


def read_ids(path):
    return np.asarray(Image.open(path))


@pytest.fixture(scope='module')
def ytvos(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('ytvos'))
    manifest = synthetic.generate_ref_youtube_vos(root, num_train=3, num_valid=2, num_test=1, num_frames=10,
                                                  size=(48, 64), exit_prob=0.7, seed=3)
    return root, manifest


def small_ytvos(tmp_path, **kwargs):
    root = str(tmp_path / 'ytvos')
    kwargs = dict(dict(num_train=2, num_valid=1, num_test=1, num_frames=5, size=(32, 40)), **kwargs)
    return root, synthetic.generate_ref_youtube_vos(root, **kwargs)


# ------------------------------------------------------------------------------------------ Ref-YouTube-VOS
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


# ------------------------------------------------------------------------------------------ Ref-DAVIS17
def test_ref_davis(tmp_path):
    root = str(tmp_path / 'davis')
    manifest = synthetic.generate_ref_davis(root, num_valid=2, num_frames=6, size=(40, 48))
    ds = build(dict(type='RefDAVIS17Dataset', data_root=root, pipeline=EVAL_PALETTE))
    assert len(ds) == sum(len(v['expressions']) for v in manifest['valid'].values())
    annotators = [ds.get_data_info(i)['annotator'] for i in range(len(ds))]
    assert sorted(set(annotators)) == [0, 1, 2, 3]
    out = ds[6]
    meta = out['data_samples'].metainfo
    v = manifest['valid'][meta['video_id']]
    exp = v['expressions'][meta['exp_id']]
    assert meta['annotator'] == int(meta['exp_id']) % 4 and meta['expression'] == exp['exp']
    assert out['inputs'].shape[0] == 6 and out['data_samples'].ori_gt_masks.shape == (6, 40, 48)
    for t, fid in enumerate(v['frames']):
        ids = read_ids(osp.join(root, 'valid', 'Annotations', meta['video_id'], f'{fid}.png'))
        assert np.array_equal(out['data_samples'].ori_gt_masks[t].numpy(), ids == int(exp['obj_id']))


# ------------------------------------------------------------------------------------------ A2D-Sentences
A2D_PIPE = [dict(type='LoadRVOSFrames'), dict(type='LoadA2DInstanceMasks'),
            dict(type='RVOSRandomResize', short_side=48, max_size=96),
            dict(type='PackRVOSInputs', pack_ori_gt_masks=True)]


@pytest.fixture(scope='module')
def a2d(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('a2d'))
    return root, synthetic.generate_a2d_sentences(root, num_train=2, num_test=2, num_frames=10, size=(40, 56),
                                                  annotated_frames=3, seed=1)


def a2d_h5(root, vid, frame):
    import h5py
    with h5py.File(osp.join(root, 'text_annotations', 'a2d_annotation_with_instances', vid, f'{frame:05d}.h5')) as f:
        ids = [int(i) for i in np.asarray(f['instance']).reshape(-1)]
        masks = np.asarray(f['reMask'])
    masks = masks[None] if masks.ndim == 2 else masks
    return ids, masks.transpose(0, 2, 1) > 0


def test_a2d_samples_and_known_sample(a2d):
    import av
    root, manifest = a2d
    ds = build(dict(type='A2DSentencesDataset', data_root=root, split='test', num_frames=8, pipeline=A2D_PIPE))
    expected = []
    for vid, v in sorted(manifest['videos'].items()):
        if v['subset'] != 1:
            continue
        for inst in v['expressions']:
            expected += [(vid, f, int(inst)) for f in v['annotated_frames'] if int(inst) in a2d_h5(root, vid, f)[0]]
    got = [(d['video_id'], d['ann_frame_index'] + 1, d['ref_instance_id'])
           for d in (ds.get_data_info(i) for i in range(len(ds)))]
    assert sorted(got) == sorted(expected)
    i = next(k for k, g in enumerate(got) if g[1] == 1)  # annotated first frame: left edge padding
    vid, frame, inst = got[i]
    out = ds[i]
    meta, sample = out['data_samples'].metainfo, out['data_samples']
    assert meta['frame_ids'] == ['00001'] * 5 + ['00002', '00003', '00004'] and meta['valid_frame_idx'] == [4]
    assert meta['expression'] == manifest['videos'][vid]['expressions'][str(inst)]
    assert meta['img_id'] == f'v_{vid}_f_{frame}_i_{inst}'
    ids, masks = a2d_h5(root, vid, frame)
    assert np.array_equal(sample.ori_gt_masks[0].numpy(), masks[ids.index(inst)])
    assert sample.gt_instances.masks.shape == (len(ids), 1, 48, 67)
    assert meta['ref_inst_idx'] == ids.index(inst) and sample.gt_instances.labels.tolist() == [0] * len(ids)
    with av.open(osp.join(root, 'Release', 'CLIPS320', f'{vid}.mp4')) as c:
        decoded = [f.to_ndarray(format='bgr24') for f in c.decode(video=0)]
    ref = cv2.resize(decoded[0], (67, 48), interpolation=cv2.INTER_LINEAR)
    assert np.abs(out['inputs'][0].permute(1, 2, 0).numpy().astype(int) - ref).mean() < 6
    assert np.array_equal(out['inputs'][0].numpy(), out['inputs'][4].numpy())


def test_a2d_coco_gt_tool_matches_masks(a2d, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.mask import decode

    from soc_mm.datasets import create_a2d_coco_gt
    root, _ = a2d
    out = str(tmp_path / 'gt.json')
    create_a2d_coco_gt(root, out, split='test')
    coco = COCO(out)
    ds = build(dict(type='A2DSentencesDataset', data_root=root, split='test', pipeline=[]))
    assert sorted(coco.getImgIds()) == sorted(ds.get_data_info(i)['img_id'] for i in range(len(ds)))
    for ann in coco.loadAnns(coco.getAnnIds()):
        _, vid, _, frame, _, inst = ann['image_id'].rsplit('_', 5)
        ids, masks = a2d_h5(root, vid, int(frame))
        assert np.array_equal(decode(ann['segmentation']) > 0, masks[ids.index(int(inst))])
        assert ann['area'] == masks[ids.index(int(inst))].sum() and ann['category_id'] == 1


def test_a2d_flip_and_bad_input(a2d, tmp_path):
    root, _ = a2d
    pipe = A2D_PIPE[:2] + [dict(type='RVOSRandomFlip', prob=1.0)] + A2D_PIPE[2:]
    plain = build(dict(type='A2DSentencesDataset', data_root=root, pipeline=A2D_PIPE))
    flipped = build(dict(type='A2DSentencesDataset', data_root=root, pipeline=pipe))
    for i in range(len(plain)):
        text = plain[i]['data_samples'].metainfo['expression']
        assert flipped[i]['data_samples'].metainfo['expression'] == swap_left_right(text)
    with pytest.raises(FileNotFoundError, match='(?s)not found: .*Expected layout'):
        build(dict(type='A2DSentencesDataset', data_root=str(tmp_path), pipeline=[]))
    # an annotation past the end of the video
    bad = str(tmp_path / 'a2d')
    shutil.copytree(root, bad)
    ds = build(dict(type='A2DSentencesDataset', data_root=bad, pipeline=A2D_PIPE))
    info = ds.get_data_info(0)
    ann_dir = osp.dirname(info['ann_path'])
    shutil.copy(info['ann_path'], osp.join(ann_dir, '00050.h5'))
    ds = build(dict(type='A2DSentencesDataset', data_root=bad, pipeline=A2D_PIPE))
    i = next(k for k in range(len(ds)) if ds.get_data_info(k)['ann_frame_index'] == 49)
    with pytest.raises(ValueError, match=f"video '{info['video_id']}' has fewer frames .* 00050"):
        ds[i]
    open(osp.join(ann_dir, '00050.h5'), 'wb').write(b'not hdf5')
    with pytest.raises(ValueError, match=f"corrupt annotation of video '{info['video_id']}' frame '00050'"):
        build(dict(type='A2DSentencesDataset', data_root=bad, pipeline=A2D_PIPE))


def test_read_a2d_h5_layout_and_mismatch(tmp_path):
    import h5py
    path = str(tmp_path / 'vid' / '00003.h5')
    (tmp_path / 'vid').mkdir()
    mask_wh = np.zeros((5, 4), np.uint8)  # stored [W, H] for one instance
    mask_wh[1, 2] = 1
    with h5py.File(path, 'w') as f:
        f['instance'] = np.array([7])
        f['reMask'] = mask_wh
        f['reBBox'] = np.array([[1.0], [2.0], [3.0], [4.0]])
    ids, masks, boxes = read_a2d_h5(path, with_masks=True)
    assert ids == [7] and masks.shape == (1, 4, 5) and masks.dtype == bool
    assert np.argwhere(masks[0]).tolist() == [[2, 1]]  # (y, x) of the pixel stored at [x=1, y=2]
    assert boxes.tolist() == [[1.0, 2.0, 3.0, 4.0]]
    assert read_a2d_h5(path) == ([7], None, None)
    with h5py.File(path, 'w') as f:
        f['instance'] = np.array([7, 8])
        f['reMask'] = mask_wh
        f['reBBox'] = np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"video 'vid' frame '00003': .*00003.h5 has 2 instance ids but 1 masks "
                                         r'\(reMask\) and 2 boxes \(reBBox\)'):
        read_a2d_h5(path, with_masks=True)


# ------------------------------------------------------------------------------------------ JHMDB-Sentences
def test_jhmdb(tmp_path):
    import scipy.io
    root = str(tmp_path / 'jhmdb')
    manifest = synthetic.generate_jhmdb_sentences(root, num_videos=3, num_frames=10, size=(40, 48))
    pipe = [dict(type='LoadRVOSFrames'), dict(type='LoadJHMDBPuppetMask'),
            dict(type='PackRVOSInputs', pack_ori_gt_masks=True)]
    ds = build(dict(type='JHMDBSentencesDataset', data_root=root, num_frames=8, seed=0, pipeline=pipe))
    assert len(ds) == 3 * 3
    chosen = [ds.get_data_info(i)['ann_frame_index'] for i in range(len(ds))]
    assert max(chosen) < 9  # only frames with a mask (the last frame has none)
    again = build(dict(type='JHMDBSentencesDataset', data_root=root, num_frames=8, seed=0, pipeline=pipe))
    assert chosen == [again.get_data_info(i)['ann_frame_index'] for i in range(len(again))]
    out = ds[4]
    meta, sample = out['data_samples'].metainfo, out['data_samples']
    v = manifest['videos'][meta['video_id']]
    t = ds.get_data_info(4)['ann_frame_index']
    assert meta['expression'] == v['query'] and meta['valid_frame_idx'] == [4]
    assert meta['frame_ids'][4] == f'{t + 1:05d}'
    mat = scipy.io.loadmat(osp.join(root, 'puppet_mask', v['action'], meta['video_id'], 'puppet_mask.mat'))
    assert np.array_equal(sample.ori_gt_masks[0].numpy(), mat['part_mask'][:, :, t] > 0)
    assert np.array_equal(sample.gt_instances.masks[0, 0].numpy(), mat['part_mask'][:, :, t] > 0)
    for k, fid in enumerate(meta['frame_ids']):
        img = cv2.imread(osp.join(root, 'Rename_Images', v['action'], meta['video_id'], f'{fid}.png'))
        assert np.array_equal(out['inputs'][k].permute(1, 2, 0).numpy(), img)
    os.remove(osp.join(root, 'puppet_mask', v['action'], meta['video_id'], 'puppet_mask.mat'))
    with pytest.raises(FileNotFoundError, match=f"{meta['video_id']}.*puppet_mask"):
        build(dict(type='JHMDBSentencesDataset', data_root=root, pipeline=pipe))


def test_jhmdb_gt_of_a_frame_without_mask_is_an_error(tmp_path):
    import scipy.io
    root = str(tmp_path / 'jhmdb')
    synthetic.generate_jhmdb_sentences(root, num_videos=1, num_frames=6, size=(16, 20))
    ds = JHMDBSentencesDataset(data_root=root, pipeline=[])
    info = ds.get_data_info(0)
    num_masks = read_puppet_masks(info['mask_path'], info['video_id']).shape[2]
    samples_file = str(tmp_path / 'samples.json')
    frame_path = osp.join(root, 'Rename_Images', 'x', info['video_id'], f'{num_masks + 1:05d}.png')
    with open(samples_file, 'w') as f:
        json.dump([[info['video_id'], frame_path, 'unused', num_masks + 1, 'a person']], f)
    replay = JHMDBSentencesDataset(data_root=root, samples_file=samples_file, pipeline=[])
    with pytest.raises(ValueError, match=rf"video '{info['video_id']}' frame {num_masks + 1:05d} is evaluated but "
                                         rf'.*puppet_mask.mat has masks for {num_masks} frames'):
        create_jhmdb_coco_gt(replay, str(tmp_path / 'gt.json'))
    scipy.io.savemat(info['mask_path'], {'part_mask': np.zeros((16, 20), np.uint8)})
    with pytest.raises(ValueError, match=rf"puppet mask of video '{info['video_id']}': .* part_mask has shape "
                                         r'\(16, 20\), expected \[H, W, T\]'):
        create_jhmdb_coco_gt(ds, str(tmp_path / 'gt.json'))


# ------------------------------------------------------------------------------------------ RefCOCO
COCO_PIPE = [dict(type='LoadRVOSFrames'), dict(type='LoadRefCocoMasks'),
             dict(type='ImageToPseudoClip', num_frames=T, shuffle=False),
             dict(type='RVOSRandomResize', short_side=40, max_size=64), dict(type='PackRVOSInputs')]


@pytest.fixture(scope='module')
def refcoco(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('coco'))
    return root, synthetic.generate_refcoco(root, num_images=dict(train=3, val=1), size=(40, 56))


def test_refcoco_pseudo_clips(refcoco):
    from pycocotools import mask as mask_utils
    root, manifest = refcoco
    ds = build(dict(type='RefCOCOVideoDataset', data_root=root, dataset='refcoco', split='train',
                    pipeline=COCO_PIPE))
    coco = json.load(open(osp.join(root, 'refcoco', 'instances_refcoco_train.json')))
    assert len(ds) == len(coco['images'])
    np.random.seed(0)
    out = ds[1]
    meta, gt = out['data_samples'].metainfo, out['data_samples'].gt_instances
    entry, ann = coco['images'][1], coco['annotations'][1]
    assert meta['expression'] == entry['caption'] and meta['frame_ids'] == [entry['file_name'][:-4]] * T
    assert meta['img_id'] == entry['id'] and meta['dataset'] == 'refcoco'
    assert out['inputs'].shape == (T, 3, 40, 56) and gt.masks.shape == (1, T, 40, 56)
    mask = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(ann['segmentation'], 40, 56))) > 0
    assert np.array_equal(gt.masks[0, 0].numpy(), mask)  # frame 0 = the image itself (shuffle off)
    img = cv2.imread(osp.join(root, 'train2014', entry['file_name']))
    assert np.array_equal(out['inputs'][0].permute(1, 2, 0).numpy(), img)
    assert not np.array_equal(out['inputs'][1].numpy(), out['inputs'][0].numpy())
    with pytest.raises(FileNotFoundError, match='(?s)instances_refcocog_train.json.*Expected layout'):
        build(dict(type='RefCOCOVideoDataset', data_root=root, dataset='refcocog', pipeline=COCO_PIPE))
    single = build(dict(type='RefCOCOVideoDataset', data_root=root, split='val',
                        pipeline=[COCO_PIPE[0], COCO_PIPE[1], COCO_PIPE[3], COCO_PIPE[4]]))
    assert single[0]['inputs'].shape[0] == 1


def test_joint_concat_dataset_is_collatable(ytvos, refcoco):
    from mmengine.dataset import ConcatDataset, pseudo_collate
    ytvos_ds = build(dict(type='RefYouTubeVOSDataset', data_root=ytvos[0], num_frames=T, pipeline=YTVOS_AUG))
    coco_ds = build(dict(type='RefCOCOVideoDataset', data_root=refcoco[0], pipeline=COCO_PIPE))
    joint = ConcatDataset([ytvos_ds, coco_ds], ignore_keys=['classes', 'dataset_name'])
    assert len(joint) == len(ytvos_ds) + len(coco_ds)
    batch = pseudo_collate([joint[0], joint[len(joint) - 1]])
    a, b = batch['data_samples']
    assert batch['inputs'][0].shape[0] == batch['inputs'][1].shape[0] == T
    assert set(a.gt_instances.keys()) == set(b.gt_instances.keys()) == {'masks', 'boxes', 'labels', 'visible'}
    contract = {'video_id', 'exp_id', 'expression', 'dataset', 'frame_ids', 'ori_shape', 'img_shape',
                'ref_inst_idx', 'valid_frame_idx', 'flip'}
    assert contract <= set(a.metainfo) and contract <= set(b.metainfo)


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


def test_jhmdb_coco_gt(tmp_path):
    import scipy.io
    from pycocotools.coco import COCO
    from pycocotools.mask import decode

    from soc_mm.datasets import create_jhmdb_coco_gt
    root = str(tmp_path / 'jhmdb')
    synthetic.generate_jhmdb_sentences(root, num_videos=2, num_frames=8, size=(24, 32))
    ds = build(dict(type='JHMDBSentencesDataset', data_root=root, pipeline=[]))
    create_jhmdb_coco_gt(ds, str(tmp_path / 'gt.json'))
    coco = COCO(str(tmp_path / 'gt.json'))
    assert sorted(coco.getImgIds()) == sorted(ds.get_data_info(i)['img_id'] for i in range(len(ds)))
    info = ds.get_data_info(0)
    ann = coco.loadAnns(coco.getAnnIds(imgIds=[info['img_id']]))[0]
    mask = scipy.io.loadmat(info['mask_path'])['part_mask'][:, :, info['ann_frame_index']] > 0
    assert np.array_equal(decode(ann['segmentation']) > 0, mask)


def test_generator_cli_writes_loadable_dataset(tmp_path, repo_root):
    import subprocess
    import sys

    from conftest import subprocess_env
    out = str(tmp_path / 'cli_ytvos')
    subprocess.run([sys.executable, osp.join(repo_root, 'tools', 'dataset_converters', 'generate_synthetic_rvos.py'),
                    'ref_youtube_vos', out, '--num-train', '2', '--num-valid', '1', '--num-frames', '4',
                    '--size', '32', '48'], check=True, env=subprocess_env(), capture_output=True)
    ds = build(dict(type='RefYouTubeVOSDataset', data_root=out, num_frames=4, pipeline=YTVOS_TRAIN))
    manifest = json.load(open(osp.join(out, 'synthetic_manifest.json')))
    assert len(ds) == sum(len(v['expressions']) for v in manifest['train'].values())
    assert ds[0]['inputs'].shape == (4, 3, 32, 48)


def _shares_color(video):
    colors = [o['color'] for o in video['objects'].values()]
    return len(set(colors)) < len(colors)


def test_generator_same_color_train_videos(tmp_path):
    """train_same_color_prob controls how often only the shape tells two train objects apart, and the
    held-out videos (their own random stream) do not change with it."""
    rng = np.random.default_rng(0)
    for n in (2, 3):
        picks = [synthetic.pick_color_shapes(rng, n, same_color_prob=0.0) for _ in range(200)]
        assert all(len(set(picks_i)) == n and len({c for c, _ in picks_i}) == n for picks_i in picks)
        picks = [synthetic.pick_color_shapes(rng, n, same_color_prob=1.0) for _ in range(200)]
        assert all(len(set(p)) == n and len({c for c, _ in p}) == n - 1 for p in picks)
    with pytest.raises(ValueError, match='same_color_prob'):
        synthetic.pick_color_shapes(rng, 2, same_color_prob=1.5)

    kw = dict(num_train=60, num_valid=20, num_test=0, num_frames=2, size=(24, 24), seed=5)
    _, uniform = small_ytvos(tmp_path / 'a', **kw)
    _, forced = small_ytvos(tmp_path / 'b', train_same_color_prob=0.8, **kw)
    rate = lambda split: np.mean([_shares_color(v) for v in split.values()])  # noqa: E731
    assert rate(uniform['train']) < 0.4 and rate(forced['train']) > 0.6
    assert forced['valid'] == uniform['valid']
    assert forced['train_same_color_prob'] == 0.8 and uniform['train_same_color_prob'] is None
