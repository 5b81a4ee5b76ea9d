"""A2DSentencesDataset and its readers (soc_mm/datasets/a2d_sentences.py) on a generated mini-dataset in
the real on-disk format."""
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope

import soc_mm  # noqa: F401
from soc_mm.datasets import synthetic
from soc_mm.datasets.a2d_sentences import read_a2d_h5
from soc_mm.datasets.transforms import swap_left_right
from synthetic_datasets import build

init_default_scope('soc_mm')


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
