"""Clip transforms, box derivation and packing."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope

import soc_mm  # noqa: F401
from soc_mm.datasets.transforms import (PackRVOSInputs, RVOSRandomCrop, RVOSRandomResize, masks_to_boxes,
                                        resize_masks, soc_resize_shape, swap_left_right)
from soc_mm.registry import TRANSFORMS

init_default_scope('soc_mm')


def clip_results(t=3, h=30, w=40, n=2, seed=0):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, t, h, w), bool)
    masks[0, :, 5:12, 6:20] = True
    masks[1, 1:, 20:28, 30:38] = True
    return dict(imgs=[rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(t)], ori_shape=(h, w),
                img_shape=(h, w), gt_masks=masks, gt_labels=np.array([3, 7]), ref_inst_idx=1,
                ori_gt_masks=masks[1], expression='the dog on the left next to the right one', flip=False,
                video_id='v', exp_id='0', dataset='d', frame_ids=['0', '1', '2'], valid_frame_idx=None)


@pytest.mark.parametrize('hw,short,max_size,expected', [
    ((720, 1280), 360, 640, (360, 640)), ((480, 854), 360, 640, (360, 640)), ((480, 640), 360, 640, (360, 480)),
    ((1280, 720), 360, 640, (640, 360)), ((240, 320), 360, 640, (360, 480)), ((360, 640), 360, 640, (360, 640)),
    ((300, 1000), 360, 640, (192, 640))])
def test_soc_resize_shape(hw, short, max_size, expected):
    assert soc_resize_shape(*hw, short, max_size) == expected


def test_resize_masks_matches_torch_nearest():
    rng = np.random.default_rng(0)
    masks = rng.random((2, 3, 37, 51)) > 0.6
    ours = resize_masks(masks, (20, 29))
    ref = F.interpolate(torch.from_numpy(masks).float().flatten(0, 1)[:, None], (20, 29), mode='nearest')
    assert np.array_equal(ours, ref[:, 0].reshape(2, 3, 20, 29).numpy() > 0.5)
    assert resize_masks(np.zeros((0, 3, 37, 51), bool), (20, 29)).shape == (0, 3, 20, 29)


def test_masks_to_boxes_inclusive_and_absent():
    masks = np.zeros((2, 10, 20), bool)
    masks[0, 2:5, 3:9] = True  # rows 2..4, cols 3..8
    boxes = masks_to_boxes(masks)
    assert np.allclose(boxes[0], [(3 + 8) / 2 / 20, (2 + 4) / 2 / 10, 5 / 20, 2 / 10])
    assert (boxes[1] == 0).all()


@pytest.mark.parametrize('text,expected', [
    ('the man on the left', 'the man on the right'), ('left and right', 'right and left'),
    ('the leftmost dog', 'the rightmost dog'), ('a bright upright lamp', 'a bright upright lamp')])
def test_swap_left_right(text, expected):
    assert swap_left_right(text) == expected


def test_random_resize_clip_consistent():
    results = RVOSRandomResize(short_side=[15, 20], max_size=100)(clip_results())
    h, w = results['img_shape']
    assert (h, w) in ((15, 20), (20, 26))
    assert all(img.shape == (h, w, 3) for img in results['imgs']) and results['gt_masks'].shape[-2:] == (h, w)
    assert results['ori_gt_masks'].shape == (3, 30, 40)


def test_crop_keeps_referred_object():
    crop = RVOSRandomCrop(min_size=5, max_size=12)
    for seed in range(20):
        np.random.seed(seed)
        src = clip_results()
        results = crop(clip_results())
        assert results['gt_masks'][1].sum() == src['gt_masks'][1].sum()  # referred: never cut
        h, w = results['img_shape']
        assert all(img.shape == (h, w, 3) for img in results['imgs'])
        x0, y0, x1, y1 = results['crop_box']
        assert np.array_equal(results['imgs'][0], src['imgs'][0][y0:y1, x0:x1])


def test_photometric_distortion_shares_random_draw():
    np.random.seed(3)
    frame = np.random.randint(0, 255, (12, 16, 3), dtype=np.uint8)
    distort = TRANSFORMS.build(dict(type='ClipPhotometricDistortion', prob=1.0))
    results = clip_results()
    results['imgs'] = [frame.copy() for _ in range(3)]
    out = distort(results)['imgs']
    assert not np.allclose(out[0], frame)
    assert all(np.array_equal(out[0], o) for o in out[1:])
    assert out[0].dtype == np.uint8
    resized = RVOSRandomResize(short_side=8, max_size=100)(dict(clip_results(), imgs=out, img_shape=(12, 16)))
    assert resized['imgs'][0].shape == (8, 10, 3)


def test_pack_fields_follow_contract():
    results = clip_results()
    results['valid_frame_idx'] = [1]
    results['gt_masks'] = results['gt_masks'][:, 1:2]
    results['ori_gt_masks'] = results['gt_masks'][1]
    out = PackRVOSInputs(pack_ori_gt_masks=True)(results)
    sample = out['data_samples']
    assert out['inputs'].shape == (3, 3, 30, 40) and out['inputs'].dtype == torch.uint8
    assert torch.equal(out['inputs'][0], torch.from_numpy(results['imgs'][0]).permute(2, 0, 1))
    gt = sample.gt_instances
    assert gt.masks.dtype == torch.bool and gt.masks.shape == (2, 1, 30, 40)
    assert gt.boxes.dtype == torch.float32 and gt.boxes.shape == (2, 1, 4)
    assert gt.labels.dtype == torch.long and gt.labels.tolist() == [3, 7]
    assert gt.visible.tolist() == [[True], [True]]
    assert sample.ori_gt_masks.dtype == torch.bool and sample.ori_gt_masks.shape == (1, 30, 40)
    assert sample.metainfo['ref_inst_idx'] == 1 and sample.metainfo['valid_frame_idx'] == [1]
    assert sample.metainfo['ori_shape'] == (30, 40) and sample.metainfo['img_shape'] == (30, 40)


def test_pseudo_clip_masks_follow_frames():
    np.random.seed(0)
    results = clip_results(t=1)
    results['imgs'][0][:] = 0
    results['imgs'][0][results['gt_masks'][1, 0]] = 255
    results['frame_ids'] = ['img']
    out = TRANSFORMS.build(dict(type='ImageToPseudoClip', num_frames=5, brightness=0, motion_blur_prob=0))(results)
    assert len(out['imgs']) == 5 and out['gt_masks'].shape == (2, 5, 30, 40)
    for img, mask in zip(out['imgs'], out['gt_masks'][1]):  # warped mask = bright pixels of warped frame
        bright = img[..., 0] > 127
        assert (bright ^ mask).sum() <= 0.25 * max(mask.sum(), 1)
