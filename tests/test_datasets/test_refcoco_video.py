"""RefCOCOVideoDataset (soc_mm/datasets/refcoco_video.py): RefCOCO images as pseudo-clips, and joint
training with Ref-YouTube-VOS (one collatable ConcatDataset)."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope

import soc_mm  # noqa: F401
from synthetic_datasets import COCO_PIPE, T, YTVOS_AUG, build, generate_refcoco, generate_ytvos

init_default_scope('soc_mm')


@pytest.fixture(scope='module')
def ytvos(tmp_path_factory):
    return generate_ytvos(tmp_path_factory)


@pytest.fixture(scope='module')
def refcoco(tmp_path_factory):
    return generate_refcoco(tmp_path_factory)


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
