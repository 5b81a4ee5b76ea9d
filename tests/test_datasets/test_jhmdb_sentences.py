"""JHMDBSentencesDataset and its ground truth (soc_mm/datasets/jhmdb_sentences.py) on a generated
mini-dataset in the real on-disk format."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope

import soc_mm  # noqa: F401
from soc_mm.datasets import JHMDBSentencesDataset, create_jhmdb_coco_gt, synthetic
from soc_mm.datasets.jhmdb_sentences import read_puppet_masks
from synthetic_datasets import build

init_default_scope('soc_mm')


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
