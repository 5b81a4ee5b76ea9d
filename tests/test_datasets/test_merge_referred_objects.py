"""MergeReferredObjects (SOC++'s MeViS target: the referred objects as one instance) on hand-made packed
samples with the expected numbers written out, and on synthetic MeViS through the dataset pipeline."""
import json
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from pycocotools import mask as coco_mask

import soc_mm  # noqa: F401
from soc_mm.datasets import synthetic
from soc_mm.datasets.transforms import MergeReferredObjects, masks_to_boxes, referred_union_boxes
from soc_mm.registry import DATASETS, TRANSFORMS
from soc_mm.structures import RVOSDataSample

init_default_scope('soc_mm')
pytestmark = pytest.mark.filterwarnings('ignore:__array__ implementation:DeprecationWarning')

H, W, T = 6, 8, 3


def raises(message):
    return pytest.raises(ValueError, match=re.escape(message))


def two_objects():
    """Object A on frames 0-1, object B on frame 1 only; frame 2 shows neither.

    A: frame 0 rows 1-2 x cols 2-4, frame 1 rows 2-3 x cols 3-5. B: frame 1 rows 4-5 x cols 6-7.
    """
    masks = torch.zeros(2, T, H, W, dtype=torch.bool)
    masks[0, 0, 1:3, 2:5] = True
    masks[0, 1, 2:4, 3:6] = True
    masks[1, 1, 4:6, 6:8] = True
    return masks


def packed(masks, ref_inst_idx, flip=False, labels=None, visible=True, **meta):
    """A sample as PackRVOSInputs packs it (boxes from the masks, visible where the mask is not empty)."""
    gt = InstanceData(masks=masks, boxes=torch.from_numpy(masks_to_boxes(masks.numpy())),
                      labels=torch.zeros(len(masks), dtype=torch.long) if labels is None else labels)
    if visible:
        gt.visible = masks.flatten(2).any(-1)
    sample = RVOSDataSample(metainfo=dict(dict(video_id='v', exp_id='3', ref_inst_idx=ref_inst_idx, flip=flip),
                                          **meta))
    sample.gt_instances = gt
    return dict(inputs=torch.zeros(T, 3, H, W, dtype=torch.uint8), data_samples=sample)


def merged(results):
    out = MergeReferredObjects()(results)
    return out['data_samples'].gt_instances, out['data_samples'].metainfo


def test_two_objects_one_absent_on_some_frames():
    masks = two_objects()
    gt, meta = merged(packed(masks, [0, 1]))
    assert meta['ref_inst_idx'] == [0] and len(gt) == 1
    assert torch.equal(gt.masks[0], masks[0] | masks[1])  # union per frame
    assert gt.visible[0].tolist() == [True, True, False]  # where the union is not empty
    assert gt.labels.tolist() == [0]
    # frame 0: A (x 2-4, y 1-2) and B's all-zero box -> x1 = min(2, 0), y1 = min(1, 0), x2 = 4, y2 = 2
    # frame 1: A (x 3-5, y 2-3) and B (x 6-7, y 4-5) -> (3, 2, 7, 5); frame 2: nobody -> zeros
    expected = torch.tensor([[2 / W, 1 / H, 4 / W, 2 / H],
                             [5 / W, 3.5 / H, 4 / W, 3 / H],
                             [0, 0, 0, 0]])
    torch.testing.assert_close(gt.boxes[0], expected, rtol=0, atol=1e-6)
    # SOC++'s box is not the box of the union where an object is absent (frame 0), but is where both are
    union_boxes = torch.from_numpy(masks_to_boxes((masks[0] | masks[1]).numpy()))
    assert not torch.allclose(gt.boxes[0, 0], union_boxes[0])
    torch.testing.assert_close(gt.boxes[0, 1:], union_boxes[1:], rtol=0, atol=1e-6)


def test_flipped_clip_moves_the_absent_objects_corner_to_the_right_edge():
    """SOC++ computes the absent object's (0, 0, 0, 0) box before its flip, which maps it to (w, 0, w, 0)."""
    gt, _ = merged(packed(two_objects(), [0, 1], flip=True))
    # frame 0: A (x 2-4, y 1-2) and B at (8, 0) -> (2, 0, 8, 2)
    expected = torch.tensor([[5 / W, 1 / H, 6 / W, 2 / H],
                             [5 / W, 3.5 / H, 4 / W, 3 / H],
                             [0, 0, 0, 0]])
    torch.testing.assert_close(gt.boxes[0], expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(referred_union_boxes(two_objects(), flipped=True), expected, rtol=0, atol=1e-6)


def test_three_objects_and_a_non_referred_instance():
    masks = torch.zeros(4, T, H, W, dtype=torch.bool)
    masks[0, :, 0:2, 0:2] = True          # referred, every frame
    masks[1, :, 3:5, 3:5] = True          # NOT referred
    masks[2, 0, 5:6, 7:8] = True          # referred, frame 0 only
    masks[3, 1:, 2:3, 4:6] = True         # referred, frames 1-2
    labels = torch.tensor([0, 4, 0, 0])
    results = packed(masks, [3, 0, 2], labels=labels)
    before = results['data_samples'].gt_instances.clone()
    gt, meta = merged(results)
    assert meta['ref_inst_idx'] == [0] and len(gt) == 2
    assert torch.equal(gt.masks[0], masks[0] | masks[2] | masks[3])
    for key in ('masks', 'boxes', 'labels', 'visible'):  # the other instance follows, untouched
        assert torch.equal(gt[key][1], before[key][1]), key
    # frame 0: (0,0,1,1), (7,5,7,5), object 3 absent -> (0, 0, 7, 5); frames 1-2: (0,0,1,1), (0,0,0,0)
    # for object 2, (4,2,5,2) -> (0, 0, 5, 2)
    expected = torch.tensor([[3.5 / W, 2.5 / H, 7 / W, 5 / H],
                             [2.5 / W, 1 / H, 5 / W, 2 / H],
                             [2.5 / W, 1 / H, 5 / W, 2 / H]])
    torch.testing.assert_close(gt.boxes[0], expected, rtol=0, atol=1e-6)
    assert gt.visible[0].all() and gt.labels.tolist() == [0, 4]


def test_visible_is_taken_from_the_instances_when_given():
    """``visible`` is the OR of the referred objects' flags (a pipeline may set it apart from the masks)."""
    results = packed(two_objects(), [0, 1])
    results['data_samples'].gt_instances.visible[1, 2] = True  # B declared visible on frame 2
    gt, _ = merged(results)
    assert gt.visible[0].tolist() == [True, True, True]
    gt, _ = merged(packed(two_objects(), [0, 1], visible=False))  # no visible field: from the masks
    assert gt.visible[0].tolist() == [True, True, False]


@pytest.mark.parametrize('ref_inst_idx,num', [([], 0), ([0], 1), (0, 1), ([1], 2), (1, 2)])
def test_no_target_and_single_object_are_unchanged(ref_inst_idx, num):
    masks = two_objects()[:num] if num else torch.zeros(0, T, H, W, dtype=torch.bool)
    results = packed(masks, ref_inst_idx)
    sample = results['data_samples']
    before = sample.gt_instances.clone()
    out = MergeReferredObjects()(results)
    assert out['data_samples'] is sample and sample.metainfo['ref_inst_idx'] == ref_inst_idx
    for key in before.keys():
        assert torch.equal(sample.gt_instances[key], before[key]), key


def test_bad_inputs_are_clear_errors():
    transform = MergeReferredObjects()
    name = "MergeReferredObjects: video 'v' expression '3'"
    with raises('MergeReferredObjects: expects the packed sample (put it after PackRVOSInputs in the pipeline), '
                "got results with keys ['gt_masks', 'imgs']"):
        transform(dict(imgs=[], gt_masks=np.zeros((1, 1, 2, 2), bool)))
    results = packed(two_objects(), [0, 1])
    del results['data_samples'].gt_instances
    with raises(f'{name}: the sample has no gt_instances (load the masks before PackRVOSInputs'):
        transform(results)
    results = packed(two_objects(), [0, 1])
    results['data_samples'].set_metainfo(dict(ref_inst_idx=[0, 2]))
    with raises(f'{name}: ref_inst_idx entries must be instance indices in [0, 2), got 2'):
        transform(results)
    with raises(f'{name}: ref_inst_idx entries must be instance indices in [0, 2), got True'):
        transform(packed(two_objects(), True))
    with raises(f'{name}: ref_inst_idx [1, 1] lists an instance twice'):
        transform(packed(two_objects(), [1, 1]))
    with raises(f'{name}: the merged box needs metainfo flip (True/False'):
        transform(packed(two_objects(), [0, 1], flip=None))
    with raises(f'{name}: the referred instances [0, 1] have different labels [0, 2]'):
        transform(packed(two_objects(), [0, 1], labels=torch.tensor([0, 2])))
    results = packed(two_objects(), [0, 1])
    results['data_samples'].gt_instances.masks = two_objects().float()
    with raises(f'{name}: gt_instances.masks must be a bool Tensor [N, T, h, w], got torch.float32'):
        transform(results)
    results = packed(two_objects(), [0, 1])
    results['data_samples'].gt_instances.boxes = torch.zeros(2, T, 2)
    with raises(f'{name}: gt_instances.boxes must be a Tensor of shape [2, 3, 4]'):
        transform(results)
    results = packed(two_objects(), [0, 1])
    results['data_samples'].gt_instances.scores = torch.zeros(2)
    with raises(f"{name}: gt_instances must hold ['masks', 'boxes', 'labels'] (and optionally visible), got "
                "fields ['boxes', 'labels', 'masks', 'scores', 'visible']"):
        transform(results)
    results = packed(two_objects(), [0, 1])
    results['data_samples'] = RVOSDataSample(metainfo=dict(video_id='v', exp_id='3'))
    results['data_samples'].gt_instances = packed(two_objects(), [0, 1])['data_samples'].gt_instances
    with raises(f'{name}: the sample has no metainfo ref_inst_idx'):
        transform(results)
    with raises('referred_union_boxes: masks must be bool [K, T, h, w] with K >= 1'):
        referred_union_boxes(torch.zeros(0, T, H, W, dtype=torch.bool))


# ------------------------------------------------------------------ through the MeViS pipeline
def official_merged_box(rles, height, width):
    """SOC++'s rule on one frame, written as its loader computes it: per referred object the inclusive
    extent of its mask as [x1, y1, x2, y2] (all zeros when absent), then min of the top-left corners and max
    of the bottom-right ones; cx, cy, w, h normalised by the frame size."""
    boxes = []
    for rle in rles:
        mask = coco_mask.decode(rle).astype(bool) if rle is not None else np.zeros((height, width), bool)
        if mask.any():
            ys, xs = np.nonzero(mask)
            boxes.append([xs.min(), ys.min(), xs.max(), ys.max()])
        else:
            boxes.append([0, 0, 0, 0])
    boxes = np.asarray(boxes, dtype=np.float64)
    x1, y1 = boxes[:, :2].min(0)
    x2, y2 = boxes[:, 2:].max(0)
    return np.array([(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height])


def test_mevis_pipeline_merges_as_the_official_loader(tmp_path):
    root = str(tmp_path / 'mevis')
    synthetic.generate_mevis(root, num_train=4, num_valid_u=0, num_valid=0, num_frames=8, size=(40, 56),
                                        exit_prob=0.8, seed=1)
    pipeline = [dict(type='LoadRVOSFrames'), dict(type='LoadRLEMasks'), dict(type='PackRVOSInputs'),
                dict(type='MergeReferredObjects')]
    dataset = DATASETS.build(dict(type='MeViSDataset', data_root=root, split='train', num_frames=4,
                                  frame_sampling='consecutive', pipeline=pipeline))
    with open(osp.join(root, 'train', 'mask_dict.json')) as f:
        mask_dict = json.load(f)
    checked_partial = 0
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        if len(info['anno_ids']) < 2:
            continue
        out = dataset[index]
        gt, meta = out['data_samples'].gt_instances, out['data_samples'].metainfo
        assert meta['ref_inst_idx'] == [0] and len(gt) == 1 and meta['anno_ids'] == info['anno_ids']
        for k, t in enumerate(info['frame_inds']):
            rles = [mask_dict[str(a)][t] for a in info['anno_ids']]
            union = np.zeros((40, 56), bool)
            for rle in rles:
                if rle is not None:
                    union |= coco_mask.decode(rle).astype(bool)
            assert np.array_equal(gt.masks[0, k].numpy(), union)
            assert bool(gt.visible[0, k]) == union.any()
            if union.any():  # an invisible frame keeps the all-zero box (SOC++'s too, unflipped)
                np.testing.assert_allclose(gt.boxes[0, k].numpy(), official_merged_box(rles, 40, 56), atol=1e-6)
                checked_partial += any(r is None for r in rles)
    assert checked_partial > 0, 'no frame with a referred object absent: the generator settings changed'


def test_registered_and_built_from_config():
    assert isinstance(TRANSFORMS.build(dict(type='MergeReferredObjects')), MergeReferredObjects)
