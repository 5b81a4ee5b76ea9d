"""Loading transforms: clip frames (image files or a video) and each dataset's mask format.

Results keys written here (read by the clip transforms and ``PackRVOSInputs``):
    imgs (list[np.ndarray]): T frames, uint8 [H, W, 3], BGR.
    ori_shape / img_shape (tuple[int, int]): (H0, W0) / current (h, w).
    gt_masks (np.ndarray): bool [N, T_out, H, W], all instances over the ``valid_frame_idx`` frames.
    gt_labels (np.ndarray): int64 [N].
    ref_inst_idx (int | list[int]): index of the referred instance in ``gt_masks``, or (a list) of every
        referred instance (MeViS: one, several or none).
    ori_gt_masks (np.ndarray): bool [T_out, H0, W0], the referred object at original size (the union of
        the referred objects for a list ``ref_inst_idx``).
"""
import os.path as osp
from typing import List, Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.fileio import get
from PIL import Image

from soc_mm.registry import TRANSFORMS
from soc_mm.structures.mask import decode_mask
from ..a2d_sentences import read_a2d_h5


def _out_frame_ids(results: dict) -> List[str]:
    """Frame ids of the supervised / evaluated frames (``valid_frame_idx``; all when None)."""
    idx = results.get('valid_frame_idx')
    frame_ids = results['frame_ids']
    return list(frame_ids) if idx is None else [frame_ids[i] for i in idx]


def _set_masks(results: dict, masks: np.ndarray, labels, ref_inst_idx: Union[int, Sequence[int]],
               mask_path: Optional[str] = None) -> None:
    """Store instance masks [N, T_out, H, W] after checking they match the frames' size (the error names
    ``mask_path``, the file they were read from, when given).

    ``ref_inst_idx``: an int (one referred instance; ``ori_gt_masks = masks[ref_inst_idx]``) or a list of
    the referred instances (MeViS; ``ori_gt_masks`` = their union, all False for an empty list).
    """
    if 'ori_shape' in results and tuple(masks.shape[-2:]) != tuple(results['ori_shape']):
        source = f' read from {mask_path}' if mask_path else ''
        raise ValueError(f"video {results['video_id']!r}: masks{source} are {tuple(masks.shape[-2:])} (H, W) but "
                         f"frames are {tuple(results['ori_shape'])} (frames {_out_frame_ids(results)})")
    results['gt_masks'] = masks
    results['gt_labels'] = np.asarray(labels, dtype=np.int64).reshape(len(masks))
    if not isinstance(ref_inst_idx, (list, tuple)):
        results['ref_inst_idx'] = int(ref_inst_idx)
        results['ori_gt_masks'] = masks[ref_inst_idx]
        return
    ids = [int(i) for i in ref_inst_idx]
    if any(not 0 <= i < len(masks) for i in ids):
        raise ValueError(f"video {results['video_id']!r}: ref_inst_idx {ids} out of range for {len(masks)} "
                         'instances')
    results['ref_inst_idx'] = ids
    results['ori_gt_masks'] = masks[ids].any(axis=0) if ids else np.zeros(masks.shape[1:], dtype=bool)


def decode_video_frames(video_path: str, frame_inds: List[int], video_id: str) -> Tuple[List[np.ndarray], int]:
    """Decode the frames ``frame_inds`` (0-based) of a video with PyAV, BGR uint8.

    Indices outside the video are clamped to its first/last frame (SOC pads windows this way).
    Returns the frames and the number of frames decoded (the whole video when the window reaches
    past its end, else up to the last wanted index).
    """
    import av  # needed only for video files (A2D-Sentences)
    if not osp.isfile(video_path):
        raise FileNotFoundError(f'video {video_id!r}: file not found: {video_path}')
    last = max(frame_inds)
    wanted = {max(i, 0) for i in frame_inds}
    decoded, frame, n = {}, None, 0
    try:
        with av.open(video_path) as container:
            for n, frame in enumerate(container.decode(video=0), start=1):
                if n - 1 in wanted:
                    decoded[n - 1] = frame.to_ndarray(format='bgr24')
                if n - 1 >= last:
                    break
    except Exception as e:  # noqa: BLE001 - av raises several error types for broken files
        raise ValueError(f'video {video_id!r}: cannot decode {video_path} ({type(e).__name__}: {e})') from e
    if n == 0:
        raise ValueError(f'video {video_id!r}: no decodable frame in {video_path}')
    if n - 1 not in decoded:  # the window reaches past the end: its last frame pads it
        decoded[n - 1] = frame.to_ndarray(format='bgr24')
    return [decoded[min(max(i, 0), n - 1)] for i in frame_inds], n


@TRANSFORMS.register_module()
class LoadRVOSFrames(BaseTransform):
    """Load the T frames of a clip as BGR uint8 arrays.

    Reads ``frame_dir/<frame_id><img_suffix>`` for each of ``frame_ids``, or, when the results hold
    ``video_path`` and ``frame_inds`` (0-based, may lie outside the video), decodes them with PyAV and
    clamps out-of-range indices to the edge frames (then ``frame_ids`` are renamed to the frames used,
    1-based ``%05d`` as in A2D).

    Required keys: ``frame_ids``, ``frame_dir`` + ``img_suffix`` or ``video_path`` + ``frame_inds``.
    Added keys: ``imgs``, ``ori_shape``, ``img_shape``, ``flip`` (False).

    Args:
        backend_args (dict, optional): mmengine file backend arguments.
    """

    def __init__(self, backend_args: Optional[dict] = None):
        self.backend_args = backend_args

    def _read(self, path: str, video_id: str, frame_id: str) -> np.ndarray:
        try:
            data = get(path, backend_args=self.backend_args)
        except FileNotFoundError:
            raise FileNotFoundError(f'video {video_id!r} frame {frame_id!r}: file not found: {path}') from None
        try:
            img = mmcv.imfrombytes(data, flag='color', channel_order='bgr')
        except Exception as e:  # noqa: BLE001
            raise ValueError(f'video {video_id!r} frame {frame_id!r}: corrupt image {path} ({e})') from e
        if img is None:
            raise ValueError(f'video {video_id!r} frame {frame_id!r}: corrupt image {path}')
        return img

    def transform(self, results: dict) -> dict:
        video_id = results.get('video_id', '?')
        if results.get('video_path') is not None:
            imgs, n = decode_video_frames(results['video_path'], results['frame_inds'], video_id)
            results['video_num_frames'] = n
            ann = results.get('ann_frame_index')
            if ann is not None and ann >= n:
                raise ValueError(f"video {video_id!r} has fewer frames ({n}) than its annotations: annotated "
                                 f"frame {ann + 1:05d} is missing in {results['video_path']}")
            results['frame_ids'] = [f'{min(max(i, 0), n - 1) + 1:05d}' for i in results['frame_inds']]
        else:
            cache = {}
            imgs = []
            for fid in results['frame_ids']:
                if fid not in cache:  # windows padded with repeated frames read each file once
                    cache[fid] = self._read(osp.join(results['frame_dir'], fid + results['img_suffix']),
                                            video_id, fid)
                imgs.append(cache[fid])
        shapes = {im.shape[:2] for im in imgs}
        if len(shapes) != 1:
            raise ValueError(f'video {video_id!r}: frames of one clip differ in size {sorted(shapes)}')
        results['imgs'] = imgs
        results['ori_shape'] = results['img_shape'] = imgs[0].shape[:2]
        results['flip'] = False
        return results


@TRANSFORMS.register_module()
class LoadPaletteMasks(BaseTransform):
    """Load Ref-YTVOS / Ref-DAVIS palette PNG masks (pixel value = object id) of the output frames.

    Required keys: ``mask_dir``, ``frame_ids``, ``obj_ids``, ``gt_labels``, ``ref_obj_id``.
    Added keys: ``gt_masks`` [N, T_out, H, W], ``gt_labels``, ``ref_inst_idx``, ``ori_gt_masks``.
    """

    def transform(self, results: dict) -> dict:
        video_id = results['video_id']
        if results.get('mask_dir') is None:
            raise ValueError(f'video {video_id!r}: the dataset has no mask annotations for this video '
                             '(remove LoadPaletteMasks from the pipeline or provide <split>/Annotations)')
        obj_ids = np.asarray(results['obj_ids'], dtype=np.int64)
        id_maps = {}
        masks = []
        # every mask must have its frame's size: (H, W) of the loaded frames, else of the first mask
        expected_shape, expected_from = None, None
        if 'ori_shape' in results:
            expected_shape, expected_from = tuple(results['ori_shape']), 'its frame'
            if results.get('frame_dir') is not None:
                expected_from += ' ' + osp.join(results['frame_dir'], '<frame>' + results.get('img_suffix', ''))
        for fid in _out_frame_ids(results):
            if fid not in id_maps:
                path = osp.join(results['mask_dir'], f'{fid}.png')
                # before decoding: a PNG (not any format PIL reads, whatever the name) of a bounded size, checked
                # as the evaluators check theirs (imported here: the evaluation package imports the datasets')
                from soc_mm.evaluation.functional.mevis import check_png_size
                check_png_size(path, f'video {video_id!r} frame {fid!r}: mask')
                try:
                    with Image.open(path) as img:
                        id_maps[fid] = np.asarray(img)
                except FileNotFoundError:
                    raise FileNotFoundError(f'video {video_id!r} frame {fid!r}: mask not found: {path}') from None
                except Exception as e:  # noqa: BLE001
                    raise ValueError(f'video {video_id!r} frame {fid!r}: corrupt mask {path} ({e})') from e
                if id_maps[fid].ndim != 2:
                    raise ValueError(f'video {video_id!r} frame {fid!r}: mask {path} has shape '
                                     f'{id_maps[fid].shape}, expected a single-channel palette PNG')
                if expected_shape is None:
                    expected_shape, expected_from = id_maps[fid].shape, f'the mask of frame {fid!r}'
                if id_maps[fid].shape != expected_shape:
                    (h, w), (eh, ew) = id_maps[fid].shape, expected_shape
                    raise ValueError(f'video {video_id!r} frame {fid!r}: mask {path} is {h}x{w} (HxW) but '
                                     f'{expected_from.replace("<frame>", fid)} is {eh}x{ew}; masks must have '
                                     'the size of their frames')
            masks.append(id_maps[fid][None] == obj_ids[:, None, None])  # [N, H, W]
        masks = np.stack(masks, axis=1) if len(obj_ids) else np.zeros((0, len(masks)) + masks[0].shape[1:], bool)
        ref_idx = list(results['obj_ids']).index(results['ref_obj_id'])
        _set_masks(results, masks, results['gt_labels'], ref_idx)
        return results


@TRANSFORMS.register_module()
class LoadA2DInstanceMasks(BaseTransform):
    """Load the A2D-Sentences instance masks of the annotated frame from its ``.h5`` file.

    The h5 holds ``instance`` (ids) and ``reMask`` stored transposed ([N, W, H], or [W, H] for one
    instance); it is read by ``soc_mm.datasets.a2d_sentences.read_a2d_h5``. Required keys: ``ann_path``,
    ``ref_instance_id``. Added keys: ``gt_masks`` [N, 1, H, W],
    ``gt_labels`` (zeros), ``ref_inst_idx``, ``ori_gt_masks`` [1, H, W].
    """

    def transform(self, results: dict) -> dict:
        path, video_id = results['ann_path'], results['video_id']
        frame = osp.splitext(osp.basename(path))[0]
        if not osp.isfile(path):
            raise FileNotFoundError(f'video {video_id!r} frame {frame!r}: annotation not found: {path}')
        instances, masks, _ = read_a2d_h5(path, with_masks=True)  # the one reader of A2D's h5 files
        if results['ref_instance_id'] not in instances:
            raise ValueError(f"video {video_id!r} frame {frame!r}: instance {results['ref_instance_id']} not "
                             f'in {path} (ids {instances})')
        _set_masks(results, masks[:, None], np.zeros(len(masks)), instances.index(results['ref_instance_id']),
                   mask_path=path)
        return results


@TRANSFORMS.register_module()
class LoadJHMDBPuppetMask(BaseTransform):
    """Load the JHMDB puppet mask of the evaluated frame (``puppet_mask.mat``, ``part_mask`` [H, W, T]).

    Required keys: ``mask_path``, ``ann_frame_index`` (0-based). Added keys: ``gt_masks`` [1, 1, H, W],
    ``gt_labels`` [0], ``ref_inst_idx`` 0, ``ori_gt_masks`` [1, H, W].
    """

    def transform(self, results: dict) -> dict:
        import scipy.io
        path, video_id, t = results['mask_path'], results['video_id'], results['ann_frame_index']
        try:
            part_mask = scipy.io.loadmat(path)['part_mask']
        except FileNotFoundError:
            raise FileNotFoundError(f'video {video_id!r}: puppet mask not found: {path}') from None
        except Exception as e:  # noqa: BLE001
            raise ValueError(f'video {video_id!r}: corrupt puppet mask {path} ({e})') from e
        if part_mask.ndim != 3 or t >= part_mask.shape[2]:
            raise ValueError(f'video {video_id!r} frame {t + 1:05d}: {path} part_mask has shape '
                             f'{part_mask.shape}, expected [H, W, T] with T > {t}')
        _set_masks(results, (part_mask[:, :, t] > 0)[None, None], [0], 0, mask_path=path)
        return results


@TRANSFORMS.register_module()
class LoadRefCocoMasks(BaseTransform):
    """Decode the referred object's COCO segmentation (polygons or RLE) to a mask.

    Required keys: ``segmentation``, ``ori_shape``. Added keys: ``gt_masks`` [1, 1, H, W],
    ``gt_labels`` [0], ``ref_inst_idx`` 0, ``ori_gt_masks``.
    """

    def transform(self, results: dict) -> dict:
        from pycocotools import mask as mask_utils
        h, w = results['ori_shape']
        seg = results['segmentation']
        try:
            if isinstance(seg, list):  # polygons: union of the parts
                rles = mask_utils.frPyObjects(seg, h, w)
                mask = mask_utils.decode(mask_utils.merge(rles))
            else:
                if isinstance(seg.get('counts'), list):
                    seg = mask_utils.frPyObjects(seg, h, w)
                mask = mask_utils.decode(seg)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"image {results['video_id']!r}: bad segmentation ({e})") from e
        _set_masks(results, (mask > 0)[None, None], [0], 0)
        return results


@TRANSFORMS.register_module()
class LoadRLEMasks(BaseTransform):
    """Decode per-frame COCO RLE instance masks (MeViS ``mask_dict.json`` entries) of the output frames.

    Every instance is one referred object (``MeViSDataset``: N = the expression's ``anno_id`` count, 0 for
    a no-target expression); ``ori_gt_masks`` is their union per frame.

    Required keys: ``mask_rles`` (list[N] of list[T]: one COCO RLE ``{'size': [H, W], 'counts': str}`` or
    None (object not visible) per clip frame), ``frame_ids``, ``ori_shape`` (``LoadRVOSFrames`` first).
    Optional keys: ``ref_inst_idx`` (a list; default: all N instances), ``gt_labels`` (default zeros),
    ``anno_ids``, ``exp_id``, ``mask_file`` (named in errors), ``valid_frame_idx``.
    Added keys: ``gt_masks`` bool [N, T_out, H, W], ``gt_labels`` [N], ``ref_inst_idx`` (list[int]),
    ``ori_gt_masks`` bool [T_out, H, W].
    """

    def transform(self, results: dict) -> dict:
        video_id = results.get('video_id', '?')
        if results.get('mask_rles') is None:
            raise ValueError(f'video {video_id!r}: the dataset has no mask annotations for this sample (remove '
                             'LoadRLEMasks from the pipeline, or use a split with mask_dict.json)')
        if 'ori_shape' not in results:
            raise ValueError(f'video {video_id!r}: LoadRLEMasks needs the frame size (run LoadRVOSFrames first)')
        height, width = results['ori_shape']
        frame_ids = list(results['frame_ids'])
        idx = results.get('valid_frame_idx')
        out = list(range(len(frame_ids))) if idx is None else list(idx)
        anno_ids = results.get('anno_ids') or [None] * len(results['mask_rles'])
        source = f" of {results['mask_file']}" if results.get('mask_file') else ''
        masks = np.zeros((len(results['mask_rles']), len(out), height, width), dtype=bool)
        for n, rles in enumerate(results['mask_rles']):
            if len(rles) != len(frame_ids):
                raise ValueError(f'video {video_id!r} expression {results.get("exp_id")!r}: anno_id {anno_ids[n]} '
                                 f'has {len(rles)} RLEs for a clip of {len(frame_ids)} frames')
            for k, t in enumerate(out):
                rle = rles[t]
                if rle is None:
                    continue
                where = (f'video {video_id!r} expression {results.get("exp_id")!r}: RLE{source} of anno_id '
                         f'{anno_ids[n]} frame {frame_ids[t]!r}')
                masks[n, k] = decode_mask(rle, where, size=(height, width))
        labels = results.get('gt_labels')
        labels = np.zeros(len(masks), np.int64) if labels is None else labels
        ref_ids = results.get('ref_inst_idx')
        _set_masks(results, masks, labels, list(range(len(masks))) if ref_ids is None else list(ref_ids),
                   mask_path=results.get('mask_file'))
        return results
