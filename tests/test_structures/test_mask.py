"""soc_mm/structures/mask.py: mask <-> RLE, and the COCO ground truth shared by the dataset writers and the
metrics."""
import json

import numpy as np
import pytest
import torch

import soc_mm  # noqa: F401
from soc_mm.datasets import create_a2d_coco_gt, synthetic
from soc_mm.evaluation import A2DSentencesMetric
from soc_mm.structures import COCO_GT_CATEGORY, coco_gt_dict, decode_mask, encode_mask

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_encode_decode_mask_round_trip():
    mask = np.zeros((5, 7), bool)
    mask[1:3, 2:6] = True
    rle = encode_mask(mask)
    assert rle['size'] == [5, 7] and isinstance(rle['counts'], str)
    assert json.loads(json.dumps(rle)) == rle  # json-serialisable as written
    assert np.array_equal(decode_mask(rle), mask)
    assert np.array_equal(decode_mask(dict(rle, counts=rle['counts'].encode('ascii'))), mask)
    assert np.array_equal(decode_mask(encode_mask(mask.astype(np.uint8))), mask)
    with pytest.raises(ValueError, match=r'one mask \[H, W\], got shape \(1, 5, 7\)'):
        encode_mask(mask[None])


def test_coco_gt_dict_layout_and_duplicate_ids():
    mask = np.zeros((4, 6), bool)
    mask[1:3, 1:4] = True
    rle = encode_mask(mask)
    gt = coco_gt_dict([('v_a_f_1', rle, None), ('v_a_f_2', rle, np.array([1, 1, 3, 2]))])
    # SOC's create_gt_in_coco_format layout: one category 'dummy_class', annotation ids from 1
    assert gt == {
        'categories': [{'id': 1, 'name': 'dummy_class'}],
        'images': [{'id': 'v_a_f_1', 'height': 4, 'width': 6}, {'id': 'v_a_f_2', 'height': 4, 'width': 6}],
        'annotations': [
            {'id': 1, 'image_id': 'v_a_f_1', 'category_id': 1, 'segmentation': rle, 'area': 6.0, 'iscrowd': 0},
            {'id': 2, 'image_id': 'v_a_f_2', 'category_id': 1, 'segmentation': rle, 'area': 6.0,
             'bbox': [1.0, 1.0, 3.0, 2.0], 'iscrowd': 0}]}
    assert json.dumps(gt)  # plain json types only (the box was a numpy array)
    gt['categories'][0]['name'] = 'changed'
    assert COCO_GT_CATEGORY == {'id': 1, 'name': 'dummy_class'}  # the returned dict holds a copy
    with pytest.raises(ValueError, match=r"^A2D test: image id 'x' appears twice"):
        coco_gt_dict([('x', rle, None), ('y', rle, None), ('x', rle, None)], source='A2D test')


def _predictions_for(gt_mask, rng):
    """3 query masks [3, H, W] (the ground truth shifted by 0, 1 and 3 pixels) and scores [3]."""
    masks = np.stack([np.roll(gt_mask, shift, axis=1) for shift in (0, 1, 3)])
    return masks, rng.random(3)


def test_written_a2d_gt_and_in_memory_gt_give_the_same_metrics(tmp_path):
    """The ground truth ``create_a2d_coco_gt`` writes and the one the metric builds in memory from
    ``ori_gt_masks`` share one layout: every metric (COCO mAP included) is equal."""
    root = str(tmp_path / 'a2d')
    synthetic.generate_a2d_sentences(root, num_train=1, num_test=2, num_frames=6, size=(24, 32), seed=3)
    out = str(tmp_path / 'gt.json')
    written = create_a2d_coco_gt(root, out, split='test')
    with open(out) as f:
        assert json.load(f) == written
    assert written['categories'] == [COCO_GT_CATEGORY] and len(written['images']) >= 4
    rng = np.random.default_rng(0)
    samples = []
    for ann in written['annotations']:
        gt_mask = decode_mask(ann['segmentation'])
        masks, scores = _predictions_for(gt_mask, rng)
        top = int(np.argmax(scores))
        samples.append(dict(video_id=ann['image_id'], exp_id='0', frame_ids=['0'], img_id=ann['image_id'],
                            ori_gt_masks=torch.from_numpy(gt_mask[None]),
                            pred_masks=torch.from_numpy(masks[top][None]),
                            pred_scores=torch.tensor([scores[top]], dtype=torch.float32),
                            pred_instances=dict(masks=torch.from_numpy(masks[:, None]),
                                                scores=torch.from_numpy(scores[:, None]).float())))
    results = []
    for ann_file in (out, None):
        metric = A2DSentencesMetric(ann_file=ann_file)
        metric.process({}, samples)
        results.append(metric.evaluate(len(samples)))
    assert results[0] == results[1]
    assert 0 < results[0]['a2d/mAP'] < 1 and 0 < results[0]['a2d/mean_iou'] <= 1
