"""Synthetic ReVOS in the real layout (``REVOS_LAYOUT`` of :mod:`soc_mm.datasets.revos`), and predictions of
it in the standard PNG layout with the defects the official evaluation treats in its own way.

Videos show 2-4 moving shapes of distinct (colour, shape). Some objects leave the view and come back (their
RLE is ``null`` in between), leave before the end or enter late; in half of the videos a smaller object rides
on a larger one, so their masks overlap (each object's mask is the whole shape: overlapping referred objects
sum to 2 in the official ground truth). Expressions of every ReVOS kind:

* referring (``type_id`` 0): one object by colour and shape ("the red circle"), several objects ("the
  squares", "the red circle and the blue square"), the rider and its carrier;
* reasoning (``type_id`` 1): long questions that name no colour or shape word of the object ("Which object
  in this video has the colour of a ripe tomato? ...", "... something that could roll away if the table were
  tilted ...", "the object that disappears from view for a while and later comes back ...");
* no target (``type_id`` 2, ``obj_id`` and ``anno_id`` empty lists): a colour/shape pair that is not in the
  video, and a reasoning question about a colour no object has.

Written: ``JPEGImages/<video>/<frame>.jpg`` (video names ``SYN/all/<split>_<i>``: nested folders and an
underscore, as the real ``UVO/all/...`` names), ``meta_expressions_{train,valid}_.json``, ``mask_dict.json``
(both splits, ``anno_id`` unique over them), ``mask_dict_foreground.json`` (per video, the union of the
objects its expressions refer to, as VISA's ``generate_foreground_mask.py``) and ``synthetic_manifest.json``
(the objects' presence patterns and the kind of each expression; not part of the format).
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from .revos import revos_foreground_dict, revos_meta_file
from .synthetic import (COLORS_BGR, SHAPE_PLURALS, SHAPES, _save_manifest, _write_json, make_background,
                        pick_color_shapes, shape_polygon)

#: reasoning-style descriptions of the colours and shapes (no colour or shape word)
COLOR_RIDDLES = {
    'red': 'a ripe tomato', 'green': 'fresh spring grass', 'blue': 'a clear summer sky',
    'yellow': 'a ripe banana', 'purple': 'a field of lavender', 'white': 'freshly fallen snow'}
SHAPE_RIDDLES = {
    'circle': 'could roll away on its own if the table it lay on were tilted',
    'square': 'has four equal sides that meet at right angles',
    'triangle': 'has exactly three corners, like a slice of pizza'}
#: presence patterns of an object over the video
PRESENCE = ('always', 'gap', 'exit', 'late')
REVOS_SPLIT_NAMES = ('train', 'valid')


def revos_video_id(split: str, index: int) -> str:
    """``SYN/all/<split>_<index>`` (nested, with an underscore, as ReVOS's ``UVO/all/<name>``)."""
    return f'SYN/all/{split}_{index:04d}'


def _presence(rng: np.random.Generator, pattern: str, num_frames: int) -> np.ndarray:
    """bool [T]: where the object is in view. 'gap': absent over a middle stretch, then back."""
    present = np.ones(num_frames, bool)
    if num_frames < 4 or pattern == 'always':
        return present
    if pattern == 'gap':
        start = int(rng.integers(1, num_frames - 2))
        stop = int(rng.integers(start + 1, num_frames - 1))
        present[start:stop] = False
    elif pattern == 'exit':
        present[int(rng.integers(num_frames // 2, num_frames)):] = False
    elif pattern == 'late':
        present[:int(rng.integers(1, num_frames // 2 + 1))] = False
    return present


def _revos_objects(rng: np.random.Generator, num_frames: int, height: int, width: int,
                   num_objects: Sequence[int], gap_prob: float, exit_prob: float, rider_prob: float) -> List[dict]:
    """2-4 objects: distinct (colour, shape), linear motion with bounces, a presence pattern; object 1 may
    ride on object 0 (``rider``: its centre follows object 0's at a fixed offset, the masks overlap)."""
    n = int(rng.integers(num_objects[0], num_objects[-1] + 1))
    objects = []
    for k, (color, shape) in enumerate(pick_color_shapes(rng, n)):
        r = float(rng.uniform(0.12, 0.17) * min(height, width))
        pos = np.array([rng.uniform(r, width - r), rng.uniform(r, height - r)])
        vel = rng.uniform(-0.05, 0.05, 2) * (width, height)
        centers = []
        for _ in range(num_frames):
            centers.append(pos.copy())
            pos = pos + vel
            for d, lim in ((0, width), (1, height)):
                if pos[d] < r or pos[d] > lim - r:
                    vel[d] = -vel[d]
                    pos[d] = np.clip(pos[d], r, lim - r)
        objects.append(dict(obj_id=k, color=color, shape=shape, radius=r, centers=np.array(centers),
                            presence='always', rider=False))
    if n >= 2 and rng.random() < rider_prob:  # object 1 rides on object 0: half its size, overlapping it
        carrier, rider = objects[0], objects[1]
        rider['radius'] = carrier['radius'] * 0.55
        offset = rng.uniform(-0.5, 0.5, 2) * carrier['radius']
        rider['centers'] = carrier['centers'] + offset[None]
        rider['rider'] = True
    patterns = []
    for k, obj in enumerate(objects):
        if obj['rider']:
            pattern = 'always'
        elif 'gap' not in patterns and rng.random() < gap_prob:
            pattern = 'gap'
        elif rng.random() < exit_prob:
            pattern = str(rng.choice(['exit', 'late']))
        else:
            pattern = 'always'
        patterns.append(pattern)
        obj['presence'] = pattern
        obj['present'] = _presence(rng, pattern, num_frames)
    for obj in objects:  # a rider is in view only with its carrier
        if obj['rider']:
            obj['present'] = objects[0]['present'].copy()
            obj['presence'] = objects[0]['presence']
    return objects


def _object_masks(obj: dict, num_frames: int, height: int, width: int) -> np.ndarray:
    """bool [T, H, W]: the object's whole shape where it is in view (not cut by objects drawn above it)."""
    masks = np.zeros((num_frames, height, width), np.uint8)
    for t in range(num_frames):
        if obj['present'][t]:
            cx, cy = obj['centers'][t]
            poly = np.round(shape_polygon(obj['shape'], cx, cy, obj['radius'])).astype(np.int32)
            cv2.fillPoly(masks[t], [poly], 1)
    return masks.astype(bool)


def _revos_expressions(rng: np.random.Generator, objects: List[dict]) -> List[dict]:
    """Expressions of one video: ``{'exp', 'targets' (object indices), 'type_id', 'kind'}``."""
    exps = []
    for i, obj in enumerate(objects):
        exps.append(dict(exp=f"the {obj['color']} {obj['shape']}", targets=[i], type_id=0, kind='appearance'))
    by_shape: Dict[str, List[int]] = {}
    for i, obj in enumerate(objects):
        by_shape.setdefault(obj['shape'], []).append(i)
    plural = [(shape, ids) for shape, ids in by_shape.items() if len(ids) > 1]
    if plural:
        shape, ids = plural[0]
        exps.append(dict(exp=f'the {SHAPE_PLURALS[shape]}', targets=ids, type_id=0, kind='multi_object'))
    else:
        a, b = sorted(rng.choice(len(objects), 2, replace=False).tolist())
        exps.append(dict(exp=f"the {objects[a]['color']} {objects[a]['shape']} and the {objects[b]['color']} "
                         f"{objects[b]['shape']}", targets=[a, b], type_id=0, kind='multi_object'))
    riders = [i for i, o in enumerate(objects) if o['rider']]
    if riders:
        carrier, rider = objects[0], objects[riders[0]]
        exps.append(dict(exp=f"the {carrier['color']} {carrier['shape']} and the {rider['color']} {rider['shape']} "
                         'riding on it', targets=[0, riders[0]], type_id=0, kind='overlapping_objects'))
    colors = sorted({o['color'] for o in objects})
    color = colors[rng.integers(len(colors))]
    exps.append(dict(exp=f'Which object in this video has the colour of {COLOR_RIDDLES[color]}? Point out every '
                     'one that matches.', targets=[i for i, o in enumerate(objects) if o['color'] == color],
                     type_id=1, kind='color_riddle'))
    shape = sorted(by_shape)[rng.integers(len(by_shape))]
    exps.append(dict(exp=f'If you had to pick the thing that {SHAPE_RIDDLES[shape]}, which one would it be in '
                     'this scene?', targets=by_shape[shape], type_id=1, kind='shape_riddle'))
    temporal = {'gap': 'the object that disappears from view for a while and later comes back into the scene',
                'exit': 'the object that leaves the scene before the video ends and never returns',
                'late': 'the object that only shows up after the video has already started'}
    for pattern, text in temporal.items():
        ids = [i for i, o in enumerate(objects) if o['presence'] == pattern]
        if ids:
            exps.append(dict(exp=text, targets=ids, type_id=1, kind=pattern))
    shown = {(o['color'], o['shape']) for o in objects}
    absent = [(c, s) for c in COLORS_BGR for s in SHAPES if (c, s) not in shown]
    color, shape = absent[rng.integers(len(absent))]
    exps.append(dict(exp=f'the {color} {shape}', targets=[], type_id=2, kind='absent'))
    missing_colors = [c for c in COLORS_BGR if c not in colors]
    if missing_colors:
        color = missing_colors[rng.integers(len(missing_colors))]
        exps.append(dict(exp=f'Which object in this video has the colour of {COLOR_RIDDLES[color]}?', targets=[],
                         type_id=2, kind='absent_riddle'))
    return exps


def write_revos_split(out_root: str, split: str, video_ids: List[str], rng: np.random.Generator, num_frames: int,
                      size: Tuple[int, int], first_anno_id: int, first_vid_id: int, num_objects: Sequence[int],
                      gap_prob: float, exit_prob: float, rider_prob: float,
                      jpeg_quality: int = 95) -> Tuple[dict, dict, dict]:
    """Write the frames of one split; returns ``(meta videos, mask_dict entries, manifest)``."""
    from soc_mm.structures.mask import encode_mask
    h, w = size
    videos, mask_dict, manifest = {}, {}, {}
    next_anno = first_anno_id
    for n, vid in enumerate(video_ids):
        objects = _revos_objects(rng, num_frames, h, w, num_objects, gap_prob, exit_prob, rider_prob)
        background = make_background(rng, h, w)
        frames = [f'{t:05d}' for t in range(num_frames)]
        masks = [_object_masks(o, num_frames, h, w) for o in objects]
        img_dir = osp.join(out_root, 'JPEGImages', vid)
        os.makedirs(img_dir, exist_ok=True)
        for t, fid in enumerate(frames):
            frame = background.copy()
            for obj, mask in zip(objects, masks):  # later objects on top (the rider over its carrier)
                frame[mask[t]] = COLORS_BGR[obj['color']]
            cv2.imwrite(osp.join(img_dir, f'{fid}.jpg'), frame, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        anno_ids = list(range(next_anno, next_anno + len(objects)))
        next_anno += len(objects)
        objects_manifest = {}
        for k, (obj, mask) in enumerate(zip(objects, masks)):
            mask_dict[str(anno_ids[k])] = [encode_mask(m) if m.any() else None for m in mask]
            objects_manifest[str(k)] = dict(anno_id=anno_ids[k], color=obj['color'], shape=obj['shape'],
                                            presence=obj['presence'], rider=obj['rider'],
                                            frames=[f for f, m in zip(frames, mask) if m.any()])
        expressions, exp_manifest = {}, {}
        for e, exp in enumerate(_revos_expressions(rng, objects)):
            refs = [anno_ids[i] for i in exp['targets']]
            expressions[str(e)] = dict(exp=exp['exp'], obj_id=list(exp['targets']), anno_id=refs,
                                       type_id=exp['type_id'])
            exp_manifest[str(e)] = dict(expressions[str(e)], kind=exp['kind'], multi_object=len(refs) > 1,
                                        no_target=not refs)
        videos[vid] = dict(vid_id=first_vid_id + n, height=h, width=w, frames=frames, expressions=expressions)
        manifest[vid] = dict(frames=frames, objects=objects_manifest, expressions=exp_manifest)
    return videos, mask_dict, manifest


def generate_revos(out_root: str, num_train: int = 6, num_valid: int = 3, num_frames: int = 10,
                   size: Tuple[int, int] = (64, 96), num_objects: Sequence[int] = (2, 4), gap_prob: float = 0.7,
                   exit_prob: float = 0.3, rider_prob: float = 0.5, seed: int = 0) -> dict:
    """Synthetic ReVOS (see the module docstring) written to ``out_root``.

    Args:
        num_train, num_valid (int): videos per split (each split draws from its own random stream of ``seed``).
        num_frames (int): frames per video (>= 4 for the presence patterns).
        size (tuple): (H, W).
        num_objects (tuple): (min, max) objects per video, 2 to 4.
        gap_prob (float): probability that one object of a video leaves the view and comes back.
        exit_prob (float): probability that another object leaves before the end or enters late.
        rider_prob (float): probability that a video has a rider (overlapping masks).

    Returns:
        dict: the manifest (also ``<out_root>/synthetic_manifest.json``).
    """
    if num_frames < 4:
        raise ValueError(f'generate_revos: num_frames must be >= 4 (an object leaves and comes back), got {num_frames}')
    if not 2 <= num_objects[0] <= num_objects[-1] <= 4:
        raise ValueError(f'generate_revos: num_objects must be (min, max) with 2 <= min <= max <= 4, got {num_objects}')
    manifest = dict(format='revos', seed=seed, size=list(size), num_frames=num_frames)
    all_videos, mask_dict = {}, {}
    next_anno, next_vid = 1000, 0
    for index, (split, count) in enumerate(zip(REVOS_SPLIT_NAMES, (num_train, num_valid))):
        ids = [revos_video_id(split, i) for i in range(count)]
        videos, masks, manifest[split] = write_revos_split(
            out_root, split, ids, np.random.default_rng([seed, index]), num_frames, size, next_anno, next_vid,
            num_objects, gap_prob, exit_prob, rider_prob)
        next_anno += 1000 * max(count, 1)
        next_vid += count
        mask_dict.update(masks)
        all_videos.update(videos)
        _write_json(revos_meta_file(out_root, split), dict(videos=videos))
    _write_json(osp.join(out_root, 'mask_dict.json'), mask_dict)
    _write_json(osp.join(out_root, 'mask_dict_foreground.json'), revos_foreground_dict(all_videos, mask_dict))
    return _save_manifest(out_root, manifest)


# ---------------------------------------------------------------------- predictions
def _union_truth(mask_dict: dict, anno_ids: Sequence[str], num_frames: int, size: Tuple[int, int]) -> np.ndarray:
    from soc_mm.structures.mask import decode_mask
    gt = np.zeros((num_frames,) + tuple(size), bool)
    for anno_id in anno_ids:
        for t, rle in enumerate(mask_dict[str(anno_id)]):
            if rle is not None:
                gt[t] |= decode_mask(rle)
    return gt


def _perturb(rng: np.random.Generator, gt: np.ndarray) -> np.ndarray:
    """bool [H, W]: the truth, nothing, a shifted truth, the truth plus a blob, or a blob alone."""
    height, width = gt.shape
    kind = rng.choice(['exact', 'empty', 'shift', 'blob', 'blob_only'], p=[0.3, 0.1, 0.3, 0.2, 0.1])
    if kind == 'exact':
        return gt.copy()
    if kind == 'empty':
        return np.zeros_like(gt)
    if kind == 'shift':
        return np.roll(gt, tuple(int(s) for s in rng.integers(-3, 4, size=2)), axis=(0, 1))
    blob = np.zeros((height, width), np.uint8)
    cv2.circle(blob, (int(rng.integers(width)), int(rng.integers(height))), int(rng.integers(2, 8)), 1, -1)
    return blob.astype(bool) | (gt if kind == 'blob' else False)


def write_revos_predictions(data_root: str, pred_dir: str, split: str = 'valid', seed: int = 0,
                            pixel_value: Union[int, str] = 'mixed', num_missing_videos: int = 0,
                            num_missing_expressions: int = 0, num_missing_frames: int = 0,
                            num_wrong_size: int = 0, num_unreadable: int = 0) -> dict:
    """Predictions of a ReVOS split in the standard layout ``<pred_dir>/<video>/<exp_id>/<frame>.png``, made from
    its ground truth with per-frame errors (:func:`_perturb`), and with the defects the official evaluation
    scores 0.

    Args:
        data_root (str): a ReVOS folder (``meta_expressions_<split>_.json``, ``mask_dict.json``).
        pred_dir (str): where to write (created).
        pixel_value: the value of predicted pixels, 1 to 255, or ``'mixed'`` (255 or 1, drawn per expression).
        num_missing_videos: videos written without any folder.
        num_missing_expressions: expressions (of other videos) without a folder.
        num_missing_frames: expressions with one frame's PNG missing.
        num_wrong_size: expressions with one frame's PNG of another size.
        num_unreadable: expressions with one frame's PNG replaced by bytes that are not an image.

    Returns:
        dict: ``{'pixel_values': {"<video>/<exp_id>": value}, 'missing_videos': [...], 'missing_expressions':
        [...], 'missing_frames': [...], 'wrong_size': [...], 'unreadable': [...]}`` (``"<video>/<exp_id>"`` keys).
    """
    from soc_mm.datasets.utils import read_json
    if not (pixel_value == 'mixed' or (isinstance(pixel_value, int) and 1 <= pixel_value <= 255)):
        raise ValueError(f"pixel_value must be 1..255 or 'mixed', got {pixel_value!r}")
    rng = np.random.default_rng(seed)
    videos = read_json(revos_meta_file(data_root, split), 'ReVOS meta_expressions')['videos']
    mask_dict = read_json(osp.join(data_root, 'mask_dict.json'), 'ReVOS mask_dict')
    video_ids = sorted(videos)
    order = [video_ids[i] for i in rng.permutation(len(video_ids))]
    missing_videos = order[:num_missing_videos]
    keys = [(v, e) for v in order[num_missing_videos:] for e in sorted(videos[v]['expressions'], key=int)]
    keys = [keys[i] for i in rng.permutation(len(keys))]
    counts = (num_missing_expressions, num_missing_frames, num_wrong_size, num_unreadable)
    if sum(counts) > len(keys):
        raise ValueError(f'write_revos_predictions: {sum(counts)} defective expressions asked for, the split has '
                         f'{len(keys)} in the videos that are written')
    defects, start = {}, 0
    for name, count in zip(('missing_expressions', 'missing_frames', 'wrong_size', 'unreadable'), counts):
        for key in keys[start:start + count]:
            defects[key] = name
        start += count
    report = dict(pixel_values={}, missing_videos=list(missing_videos), missing_expressions=[], missing_frames=[],
                  wrong_size=[], unreadable=[])
    for video_id in video_ids:
        if video_id in missing_videos:
            continue
        video = videos[video_id]
        size = (int(video['height']), int(video['width']))
        frames = video['frames']
        for exp_id in sorted(video['expressions'], key=int):
            key, name = f'{video_id}/{exp_id}', defects.get((video_id, exp_id))
            if name == 'missing_expressions':
                report[name].append(key)
                continue
            value = int(rng.choice([1, 255])) if pixel_value == 'mixed' else int(pixel_value)
            report['pixel_values'][key] = value
            gt = _union_truth(mask_dict, video['expressions'][exp_id]['anno_id'], len(frames), size)
            exp_dir = osp.join(pred_dir, video_id, exp_id)
            os.makedirs(exp_dir, exist_ok=True)
            bad_frame = int(rng.integers(len(frames))) if name else -1
            for t, frame in enumerate(frames):
                path = osp.join(exp_dir, f'{frame}.png')
                mask = _perturb(rng, gt[t]).astype(np.uint8) * value
                if t == bad_frame and name == 'missing_frames':
                    continue
                if t == bad_frame and name == 'wrong_size':
                    mask = cv2.resize(mask, (size[1] + 3, size[0] + 2), interpolation=cv2.INTER_NEAREST)
                if t == bad_frame and name == 'unreadable':
                    with open(path, 'wb') as f:
                        f.write(b'not a png')
                    continue
                if not cv2.imwrite(path, mask):
                    raise OSError(f'could not write {path}')
            if name:
                report[name].append(key)
    return report


def generate_revos_with_predictions(out_root: str, pred_dir: Optional[str] = None, seed: int = 0,
                                    **kwargs) -> Tuple[dict, dict]:
    """:func:`generate_revos` then :func:`write_revos_predictions` of its valid split (``pred_dir`` default:
    ``<out_root>/predictions/Annotations``) with one defect of each kind; returns both reports."""
    manifest = generate_revos(out_root, seed=seed, **kwargs)
    pred_dir = pred_dir or osp.join(out_root, 'predictions', 'Annotations')
    report = write_revos_predictions(out_root, pred_dir, seed=seed, num_missing_videos=1, num_missing_expressions=1,
                                     num_missing_frames=1, num_wrong_size=1, num_unreadable=1)
    return manifest, report
