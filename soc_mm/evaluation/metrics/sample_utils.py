"""Reading and checking the fields the RVOS metrics take from a data sample
(see ``soc_mm/structures/rvos_data_sample.py``)."""
from typing import Any, Hashable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.structures import BaseDataElement


def sample_as_dict(sample: Any) -> dict:
    """Data sample (``RVOSDataSample`` or the dict mmengine's Evaluator passes) -> dict."""
    if isinstance(sample, BaseDataElement):
        return sample.to_dict()
    if isinstance(sample, dict):
        return sample
    raise TypeError(f'expected a data sample or dict, got {type(sample).__name__}')


def sample_name(sample: dict) -> str:
    """Short name of a sample for error messages."""
    return f"sample (video_id={sample.get('video_id')!r}, exp_id={sample.get('exp_id')!r})"


def to_numpy(value: Any) -> np.ndarray:
    """Tensor (any device) or array-like -> numpy array."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def get_field(sample: dict, key: str) -> Any:
    """``sample[key]``, or a ValueError naming the sample and the missing key."""
    if key not in sample or sample[key] is None:
        raise ValueError(f"{sample_name(sample)} has no '{key}' (fields: {sorted(sample)})")
    return sample[key]


def check_finite_scores(sample: dict, scores: np.ndarray, key: str = 'pred_scores') -> np.ndarray:
    """``scores`` unchanged, or a ValueError naming the sample and the non-finite entries.

    A NaN score would otherwise win (or lose) every comparison silently, e.g. every contested
    pixel of Ref-DAVIS's per-object merge.
    """
    bad = np.flatnonzero(~np.isfinite(np.asarray(scores, dtype=np.float64)))
    if bad.size:
        raise ValueError(f"{sample_name(sample)}: '{key}' has non-finite values (NaN/inf) at index "
                         f'{bad[:10].tolist()}; expected finite scores')
    return scores


def get_masks(sample: dict, key: str, ndim: int = 3, value: Any = None) -> np.ndarray:
    """Binary masks ``sample[key]`` (or ``value``) as a bool array with ``ndim`` dims.

    Raises ValueError naming the sample if the field is missing, has another
    number of dimensions or holds values other than 0/1.
    """
    masks = to_numpy(get_field(sample, key) if value is None else value)
    if masks.ndim != ndim:
        raise ValueError(f"{sample_name(sample)}: '{key}' must have {ndim} dims, got shape {masks.shape}")
    if masks.dtype != np.bool_:
        if masks.size and not np.isin(masks, (0, 1)).all():
            bad = np.unique(masks[~np.isin(masks, (0, 1))])[:5].tolist()
            raise ValueError(f"{sample_name(sample)}: '{key}' is not binary (values {bad} besides 0/1); "
                             'threshold the masks first')
        masks = masks.astype(np.bool_)
    return masks


def evaluated_frame_ids(sample: dict, num_frames: int) -> List[str]:
    """Names of the T_out evaluated frames (``frame_ids`` at ``valid_frame_idx``), checked against
    the number of predicted frames."""
    frame_ids = [str(f) for f in get_field(sample, 'frame_ids')]
    valid_idx = sample.get('valid_frame_idx')
    if valid_idx is not None:
        valid_idx = [int(i) for i in to_numpy(valid_idx).reshape(-1)]
        if any(i < 0 or i >= len(frame_ids) for i in valid_idx):
            raise ValueError(f'{sample_name(sample)}: valid_frame_idx {valid_idx} out of range '
                             f'for {len(frame_ids)} frame_ids')
        frame_ids = [frame_ids[i] for i in valid_idx]
    if len(frame_ids) != num_frames:
        raise ValueError(f'{sample_name(sample)}: {num_frames} predicted frames but {len(frame_ids)} '
                         'evaluated frames in frame_ids/valid_frame_idx')
    return frame_ids


def check_frame_size(sample: dict, masks: np.ndarray, key: str) -> None:
    """``masks [..., H, W]`` must be at ``ori_shape`` when the sample has one."""
    ori_shape = sample.get('ori_shape')
    if ori_shape is not None and tuple(masks.shape[-2:]) != tuple(int(s) for s in ori_shape[:2]):
        raise ValueError(f"{sample_name(sample)}: '{key}' has frame size {tuple(masks.shape[-2:])}, "
                         f'expected ori_shape {tuple(ori_shape[:2])}')


def pred_and_gt_masks(sample: dict) -> Tuple[np.ndarray, np.ndarray]:
    """``pred_masks`` and ``ori_gt_masks`` (bool ``[T_out, H0, W0]``), checked to agree in frame
    count and size."""
    pred = get_masks(sample, 'pred_masks')
    gt = get_masks(sample, 'ori_gt_masks')
    if pred.shape[0] != gt.shape[0]:
        raise ValueError(f'{sample_name(sample)}: {pred.shape[0]} predicted frames but '
                         f'{gt.shape[0]} ground-truth frames')
    if pred.shape != gt.shape:
        raise ValueError(f'{sample_name(sample)}: pred_masks {tuple(pred.shape)} and ori_gt_masks '
                         f'{tuple(gt.shape)} differ in shape')
    check_frame_size(sample, pred, 'pred_masks')
    return pred, gt


def unique_by_key(items: Sequence[dict], key: str = 'key', source: Optional[str] = None,
                  metric: str = 'metric', hint: str = '') -> List[dict]:
    """Keep the first item per ``item[key]`` (drops duplicates, e.g. from padded samplers).

    Args:
        items: the results.
        key (str): the field that identifies a result.
        source (str, optional): a field that tells two samples apart (e.g. the expression): items with
            the same ``key`` but a different ``source`` come from two different samples that got the
            same ids, and would silently be scored as one: a ValueError naming both (with ``hint``).
        metric (str): named in that error.
    """
    seen: dict = {}
    unique = []
    for item in items:
        k: Hashable = item[key]
        if k not in seen:
            seen[k] = item
            unique.append(item)
        elif source is not None and item.get(source) != seen[k].get(source):
            raise ValueError(f'{metric}: two different samples have the same ids {k}: {source} '
                             f'{seen[k].get(source)!r} and {item.get(source)!r}; only one of them would be '
                             f'scored{hint}')
    return unique


def check_expected_expressions(keys: Sequence[Tuple[str, str]], meta_file: Optional[str],
                               metric: str) -> None:
    """Every ``(video_id, exp_id)`` of a Ref-YouTube-VOS style ``meta_expressions.json`` must be in
    ``keys``; raises ValueError naming the missing videos/expressions."""
    if meta_file is None:
        return
    import os.path as osp

    from soc_mm.datasets.utils import read_json
    if not osp.isfile(meta_file):
        raise FileNotFoundError(f'{metric}: meta_file {meta_file} not found (expected a '
                                'meta_expressions.json with {"videos": {video_id: {"expressions": ...}}})')
    data = read_json(meta_file, f'{metric} meta_file')  # a repeated video or expression id is an error
    videos = data.get('videos') if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        raise ValueError(f"{metric}: {meta_file} has no 'videos' dict")
    have = set(keys)
    have_videos = {v for v, _ in have}
    missing_videos = sorted(v for v in videos if v not in have_videos)
    if missing_videos:
        raise ValueError(f'{metric}: {len(missing_videos)} video(s) of {meta_file} missing in the '
                         f'predictions, e.g. {missing_videos[:5]}')
    missing = sorted((v, e) for v, info in videos.items() for e in info.get('expressions', {})
                     if (v, str(e)) not in have)
    if missing:
        raise ValueError(f'{metric}: {len(missing)} expression(s) of {meta_file} missing in the '
                         f'predictions, e.g. (video_id, exp_id) {missing[:5]}')
