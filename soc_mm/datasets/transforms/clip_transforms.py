"""Clip-consistent augmentations: one random draw per clip, applied to every frame and mask.

Clip-level rather than mmdet's per-image transforms under ``TransformBroadcaster`` where the clip needs
more than per-frame geometry: masks are one [N, T_out, H, W] array (resized in one call), the flip also
rewrites the expression, and the crop looks at the referred object over the whole clip.
"""
import re
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform, TransformBroadcaster

from soc_mm.registry import TRANSFORMS
from soc_mm.structures.rvos_data_sample import referred_instance_ids


def soc_resize_shape(h: int, w: int, short_side: int, max_size: Optional[int]) -> Tuple[int, int]:
    """(new_h, new_w) with the short side ``short_side`` and the long side at most ``max_size``.

    Same integer arithmetic as SOC/DETR's ``get_size_with_aspect_ratio`` (truncation, not rounding).
    """
    if max_size is not None:
        lo, hi = float(min(h, w)), float(max(h, w))
        if hi / lo * short_side > max_size:
            short_side = int(round(max_size * lo / hi))
    if (w <= h and w == short_side) or (h <= w and h == short_side):
        return h, w
    if w < h:
        return int(short_side * h / w), short_side
    return short_side, int(short_side * w / h)


def resize_masks(masks: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of bool masks [..., H, W] to ``size`` (h, w), like torch 'nearest'."""
    lead, (h0, w0) = masks.shape[:-2], masks.shape[-2:]
    h, w = size
    flat = masks.reshape(-1, h0, w0)
    if flat.shape[0] == 0:
        return np.zeros(lead + (h, w), dtype=bool)
    hwc = np.ascontiguousarray(flat.transpose(1, 2, 0)).view(np.uint8)
    chunks = [cv2.resize(hwc[..., i:i + 256], (w, h), interpolation=cv2.INTER_NEAREST).reshape(h, w, -1)
              for i in range(0, hwc.shape[2], 256)]  # cv2 handles at most 512 channels per call
    out = np.concatenate(chunks, axis=2).transpose(2, 0, 1)
    return out.reshape(lead + (h, w)).astype(bool)


def swap_left_right(text: str) -> str:
    """Swap 'left' and 'right' (and e.g. 'leftmost') in an expression after a horizontal flip.

    Matches at word starts only, so 'bright' or 'upright' stay intact (SOC's plain ``str.replace`` turns
    'bright' into 'bleft').
    """
    return re.sub(r'\b(left|right)', lambda m: 'right' if m.group(1) == 'left' else 'left', text)


@TRANSFORMS.register_module()
class RVOSRandomResize(BaseTransform):
    """Resize every frame and mask of a clip to one randomly chosen short side (SOC's ``RandomResize``).

    Args:
        short_side (int | list[int]): short-side choices (one drawn per clip), e.g. ``[360]``.
        max_size (int, optional): upper bound of the long side, e.g. 640.
        backend (str): image resize backend; ``'pillow'`` bilinear equals SOC's torchvision/PIL resize.
    Masks (``gt_masks``) use nearest-neighbour; ``ori_gt_masks`` are left at the original size.
    """

    def __init__(self, short_side: Union[int, Sequence[int]], max_size: Optional[int] = None,
                 backend: str = 'pillow', interpolation: str = 'bilinear'):
        self.short_sides = [short_side] if isinstance(short_side, int) else list(short_side)
        if not self.short_sides:
            raise ValueError('RVOSRandomResize: short_side must list at least one size')
        self.max_size = max_size
        self.backend = backend
        self.interpolation = interpolation

    def transform(self, results: dict) -> dict:
        short = self.short_sides[np.random.randint(len(self.short_sides))]
        h, w = results['img_shape']
        new_h, new_w = soc_resize_shape(h, w, short, self.max_size)
        if (new_h, new_w) != (h, w):
            results['imgs'] = [mmcv.imresize(img, (new_w, new_h), interpolation=self.interpolation,
                                             backend=self.backend) for img in results['imgs']]
            if 'gt_masks' in results:
                results['gt_masks'] = resize_masks(results['gt_masks'], (new_h, new_w))
        results['img_shape'] = (new_h, new_w)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(short_side={self.short_sides}, max_size={self.max_size})'


@TRANSFORMS.register_module()
class RVOSRandomFlip(BaseTransform):
    """Horizontally flip a clip with probability ``prob``; swaps 'left'/'right' in the expression.

    Note: SOC flips when ``torch.randn(1) > 0.5``, i.e. with probability 0.3085.
    """

    def __init__(self, prob: float = 0.5):
        self.prob = prob

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        results['imgs'] = [cv2.flip(img, 1) for img in results['imgs']]  # faster than a numpy copy
        for key in ('gt_masks', 'ori_gt_masks'):  # flipped views: copied once, when resized or packed
            if key in results:
                results[key] = results[key][..., ::-1]
        results['expression'] = swap_left_right(results['expression'])
        results['flip'] = not results.get('flip', False)
        return results


@TRANSFORMS.register_module()
class RVOSRandomCrop(BaseTransform):
    """Random crop of the whole clip that keeps the referred object inside.

    The crop height/width are drawn in ``[min_size, min(side, max_size)]``, then enlarged to the
    referred object's extent over all annotated frames of the clip (with a list ``ref_inst_idx``: the extent
    of all referred objects together; none: any crop), and placed so that extent stays inside. Other
    instances may leave the crop (then they are invisible). Not used by SOC's released configs (their
    crop is commented out).

    Args:
        min_size (int): smallest crop side.
        max_size (int): largest crop side.
        prob (float): probability of cropping.
    """

    def __init__(self, min_size: int, max_size: int, prob: float = 1.0):
        if min_size > max_size:
            raise ValueError(f'RVOSRandomCrop: min_size {min_size} > max_size {max_size}')
        self.min_size, self.max_size, self.prob = min_size, max_size, prob

    @staticmethod
    def _offset(lo: int, hi: int) -> int:
        return lo if hi <= lo else np.random.randint(lo, hi + 1)

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        h, w = results['img_shape']
        ch = self._offset(min(self.min_size, h), min(h, self.max_size))
        cw = self._offset(min(self.min_size, w), min(w, self.max_size))
        ref = None
        if 'gt_masks' in results and len(results['gt_masks']):
            ref_ids = referred_instance_ids(results)  # [] (no referred object): an unconstrained crop
            ref = results['gt_masks'][ref_ids].any(axis=(0, 1)) if ref_ids else None
        if ref is not None and ref.any():
            rows, cols = np.flatnonzero(ref.any(1)), np.flatnonzero(ref.any(0))
            y1, y2, x1, x2 = rows[0], rows[-1], cols[0], cols[-1]
            ch, cw = max(ch, y2 - y1 + 1), max(cw, x2 - x1 + 1)
            top = self._offset(max(0, y2 + 1 - ch), min(y1, h - ch))
            left = self._offset(max(0, x2 + 1 - cw), min(x1, w - cw))
        else:
            top, left = self._offset(0, h - ch), self._offset(0, w - cw)
        results['imgs'] = [np.ascontiguousarray(img[top:top + ch, left:left + cw]) for img in results['imgs']]
        if 'gt_masks' in results:
            results['gt_masks'] = np.ascontiguousarray(results['gt_masks'][..., top:top + ch, left:left + cw])
        results['img_shape'] = (ch, cw)
        results['crop_box'] = (left, top, left + cw, top + ch)
        return results


@TRANSFORMS.register_module()
class ClipPhotometricDistortion(BaseTransform):
    """mmdet ``PhotoMetricDistortion`` with one random draw shared by all frames of the clip.

    Applied with probability ``prob`` (SOC: ``random_color``, off in its configs, drawn per frame).
    Frames are rounded back to uint8 afterwards. Other kwargs go to mmdet's
    ``PhotoMetricDistortion`` (brightness_delta, contrast_range, saturation_range, hue_delta).
    """

    def __init__(self, prob: float = 0.5, **kwargs):
        from mmdet.datasets.transforms import PhotoMetricDistortion
        self.prob = prob
        self.broadcast = TransformBroadcaster(
            transforms=[PhotoMetricDistortion(**kwargs)], mapping={'img': 'imgs'}, auto_remap=True,
            share_random_params=True)

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        results = self.broadcast(results)
        # back to uint8 (as SOC) so that later transforms (e.g. the pillow resize) get images
        results['imgs'] = [np.clip(np.round(img), 0, 255).astype(np.uint8) for img in results['imgs']]
        return results


@TRANSFORMS.register_module()
class ImageToPseudoClip(BaseTransform):
    """Turn a single image (T=1) into a pseudo-clip of ``num_frames`` frames, as SOC's RefCOCO joint training.

    Frame 0 is the image; each other frame is a random affine warp of it (rotation, translation), a
    brightness shift and, with ``motion_blur_prob``, a linear motion blur; then the frame order is
    shuffled. Masks follow the same warps (nearest). SOC's imgaug augmenter also applies a small
    perspective warp, omitted here. ``num_frames=1`` leaves the sample unchanged.
    """

    def __init__(self, num_frames: int = 8, rotation: float = 20.0, translate: float = 0.1,
                 brightness: float = 40.0, motion_blur_prob: float = 0.25,
                 motion_blur_kernels: Sequence[int] = (9, 11), shuffle: bool = True):
        self.num_frames = num_frames
        self.rotation, self.translate, self.brightness = rotation, translate, brightness
        self.motion_blur_prob, self.motion_blur_kernels = motion_blur_prob, list(motion_blur_kernels)
        self.shuffle = shuffle

    def _motion_kernel(self) -> np.ndarray:
        k = self.motion_blur_kernels[np.random.randint(len(self.motion_blur_kernels))]
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2] = 1.0
        rot = cv2.getRotationMatrix2D(((k - 1) / 2, (k - 1) / 2), np.random.uniform(0, 360), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (k, k))
        return kernel / max(kernel.sum(), 1e-6)

    def transform(self, results: dict) -> dict:
        if self.num_frames <= 1:
            return results
        if len(results['imgs']) != 1:
            raise ValueError(f"ImageToPseudoClip expects one image, got {len(results['imgs'])} frames")
        img = results['imgs'][0]
        masks = results.get('gt_masks')  # [N, 1, H, W]
        h, w = img.shape[:2]
        imgs: List[np.ndarray] = [img]
        frame_masks = [masks[:, 0]] if masks is not None else []
        for _ in range(self.num_frames - 1):
            mat = cv2.getRotationMatrix2D((w / 2, h / 2), np.random.uniform(-self.rotation, self.rotation), 1.0)
            mat[:, 2] += np.random.uniform(-self.translate, self.translate, 2) * (w, h)
            warped = cv2.warpAffine(img, mat, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
            warped = np.clip(warped.astype(np.float32) + np.random.uniform(-self.brightness, self.brightness),
                             0, 255)
            if np.random.rand() < self.motion_blur_prob:
                warped = cv2.filter2D(warped, -1, self._motion_kernel())
            imgs.append(np.round(warped).astype(np.uint8))
            if masks is not None:
                m = masks[:, 0].transpose(1, 2, 0).astype(np.uint8)
                m = cv2.warpAffine(m, mat, (w, h), flags=cv2.INTER_NEAREST, borderValue=0).reshape(h, w, -1)
                frame_masks.append(m.transpose(2, 0, 1) > 0)
        order = np.random.permutation(self.num_frames) if self.shuffle else np.arange(self.num_frames)
        results['imgs'] = [imgs[i] for i in order]
        results['frame_ids'] = [results['frame_ids'][0]] * self.num_frames
        if masks is not None:
            results['gt_masks'] = np.stack([frame_masks[i] for i in order], axis=1)
            results['ori_gt_masks'] = results['gt_masks'][results['ref_inst_idx']]
        results['valid_frame_idx'] = None
        return results
