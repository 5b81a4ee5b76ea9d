"""Synthetic Long-RVOS (CVPR 2026): long videos of moving shapes that leave and come back, look-alike
distractors, and static / dynamic / hybrid descriptions, in the real on-disk layout.

Layout written (as the official release; see ``soc_mm.datasets.long_rvos.LONG_RVOS_LAYOUT``)::

    <out_root>/train/JPEGImages/<video>/<frame>.jpg
    <out_root>/train/Annotations/<video>/<obj_id>/<frame>.png   (8-bit, 255 = object; no file where the
                                                                 object is not visible)
    <out_root>/train/meta_expressions.json
    <out_root>/valid/{JPEGImages, Annotations, meta_expressions.json}
    <out_root>/test/{JPEGImages, meta_expressions.json}         (no masks, as the real test split)

and ``<out_root>/synthetic_manifest.json`` (objects, their motions and visible frames, and each expression's
kind), which the splits themselves do not contain.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .synthetic import COLORS_BGR, SHAPES, _save_manifest, _write_json, draw_objects, make_background

#: motions of the synthetic objects: the clause a description uses for it.
LONG_RVOS_MOTIONS = {
    'horizontal': 'moves back and forth horizontally',
    'vertical': 'moves up and down',
    'diagonal': 'moves diagonally',
    'still': 'stays still',
}
#: the clause of an object that leaves the video and comes back.
LEAVES_AND_RETURNS = 'leaves and comes back'
#: the ``"type"`` values of ``meta_expressions.json`` (hybrid descriptions are ``"static+dynamic"``).
DESCRIPTION_TYPES = ('static', 'dynamic', 'static+dynamic')
LONG_RVOS_SPLITS = ('train', 'valid', 'test')


def long_rvos_trajectory(rng: np.random.Generator, motion: str, num_frames: int, height: int, width: int,
                         radius: float) -> np.ndarray:
    """Centres ``[T, 2]`` (x, y) of an object performing ``motion`` (a key of ``LONG_RVOS_MOTIONS``).

    The moving ones bounce between the borders with a constant speed chosen so that a crossing of the
    free extent takes 8-20% of the video (at least 3 frames): long videos see many back-and-forths.
    """
    if motion not in LONG_RVOS_MOTIONS:
        raise ValueError(f'unknown Long-RVOS motion {motion!r}, expected one of {sorted(LONG_RVOS_MOTIONS)}')
    low = np.array([radius, radius])
    high = np.array([width - radius, height - radius])
    start = rng.uniform(low, high)
    if motion == 'still':
        return np.repeat(start[None], num_frames, axis=0)
    axes = {'horizontal': (1.0, 0.0), 'vertical': (0.0, 1.0), 'diagonal': (1.0, 1.0)}[motion]
    crossing = max(3.0, float(rng.uniform(0.08, 0.2)) * num_frames)
    velocity = np.array(axes) * (high - low) / crossing * rng.choice([-1.0, 1.0], size=2)
    centers, pos = [], start.copy()
    for _ in range(num_frames):
        centers.append(pos.copy())
        pos = pos + velocity
        for d in range(2):  # reflect at the borders
            if pos[d] < low[d] or pos[d] > high[d]:
                velocity[d] = -velocity[d]
                pos[d] = np.clip(2 * np.clip(pos[d], low[d], high[d]) - pos[d], low[d], high[d])
    return np.array(centers)


#: the share of a video an object that leaves is absent for (uniform in this range, by default)
ABSENCE_RANGE = (0.1, 0.35)


def absence_interval(rng: np.random.Generator, num_frames: int,
                     absence_range: Tuple[float, float] = ABSENCE_RANGE) -> Optional[Tuple[int, int]]:
    """``[start, end)`` of an absence strictly inside the video (the object is there before and after it),
    a share of its frames drawn uniformly in ``absence_range``; None for videos shorter than 4 frames."""
    if num_frames < 4:
        return None
    length = int(np.clip(round(rng.uniform(*absence_range) * num_frames), 1, num_frames - 2))
    start = int(rng.integers(1, num_frames - length))
    return start, start + length


def _long_rvos_objects(rng: np.random.Generator, num_frames: int, height: int, width: int,
                       num_objects: Sequence[int], leave_prob: float,
                       absence_range: Tuple[float, float] = ABSENCE_RANGE) -> List[dict]:
    """Two look-alikes (same colour and shape) and 1-2 other objects of distinct appearances; every object
    has its own motion; each one leaves the video and comes back with probability ``leave_prob``."""
    count = int(rng.integers(num_objects[0], num_objects[-1] + 1))
    count = max(2, min(count, len(LONG_RVOS_MOTIONS)))
    pairs = [(c, s) for c in COLORS_BGR for s in SHAPES]
    chosen = [pairs[i] for i in rng.choice(len(pairs), size=count - 1, replace=False)]
    appearances = [chosen[0]] + chosen  # the first two objects look alike
    motions = list(rng.permutation(list(LONG_RVOS_MOTIONS)))[:count]
    objects = []
    for k, ((color, shape), motion) in enumerate(zip(appearances, motions)):
        radius = float(rng.uniform(0.09, 0.13) * min(height, width))
        present = np.ones(num_frames, bool)
        gap = absence_interval(rng, num_frames, absence_range) if rng.random() < leave_prob else None
        if gap is not None:
            present[gap[0]:gap[1]] = False
        objects.append(dict(obj_id=k + 1, color=str(color), shape=str(shape), motion=str(motion), radius=radius,
                            centers=long_rvos_trajectory(rng, str(motion), num_frames, height, width, radius),
                            present=present, absence=gap, look_alike=k < 2))
    return objects


def _long_rvos_expressions(rng: np.random.Generator, objects: List[dict]) -> List[dict]:
    """Descriptions of one video: ``{'exp', 'obj' (index), 'type', 'kind'}``.

    * static (appearance only): "the <colour> <shape>" of each object whose appearance is unique;
    * dynamic (motion only, no appearance): "the object that <motion>" for 1-2 objects (every motion is
      unique in a video), and "the shape that leaves and comes back" when exactly one object does;
    * hybrid (``"static+dynamic"``): "the <colour> <shape> that <motion>" for both look-alikes (only the
      motion tells them apart) and for some of the others.
    """
    exps = []
    for i, obj in enumerate(objects):
        if not obj['look_alike']:
            exps.append(dict(exp=f"the {obj['color']} {obj['shape']}", obj=i, type='static', kind='appearance'))
    for i in sorted(rng.choice(len(objects), size=min(2, len(objects)), replace=False).tolist()):
        exps.append(dict(exp=f"the object that {LONG_RVOS_MOTIONS[objects[i]['motion']]}", obj=i, type='dynamic',
                         kind='motion'))
    leaving = [i for i, o in enumerate(objects) if o['absence'] is not None]
    if len(leaving) == 1:
        exps.append(dict(exp=f'the shape that {LEAVES_AND_RETURNS}', obj=leaving[0], type='dynamic',
                         kind='leaves_and_returns'))
    for i, obj in enumerate(objects):
        if obj['look_alike'] or rng.random() < 0.5:
            exps.append(dict(exp=f"the {obj['color']} {obj['shape']} that {LONG_RVOS_MOTIONS[obj['motion']]}", obj=i,
                             type='static+dynamic', kind='appearance_and_motion'))
    return exps


def write_long_rvos_split(out_root: str, split: str, video_ids: List[str], rng: np.random.Generator,
                          num_frames: int, size: Tuple[int, int], with_masks: bool,
                          num_objects: Sequence[int] = (3, 4), leave_prob: float = 0.6,
                          jpeg_quality: int = 95,
                          absence_range: Tuple[float, float] = ABSENCE_RANGE) -> Dict[str, dict]:
    """Write one split; returns its manifest ``{video: {'frames', 'objects', 'expressions'}}``.

    Frames are ``%05d`` indices. The ground truth of an object in a frame is its visible part (a shape
    drawn later covers it); a frame where nothing of it is visible gets no PNG, as the real annotations.
    """
    height, width = size
    meta, manifest = {}, {}
    for video_id in video_ids:
        objects = _long_rvos_objects(rng, num_frames, height, width, num_objects, leave_prob, absence_range)
        background = make_background(rng, height, width)
        frames = [f'{t:05d}' for t in range(num_frames)]
        img_dir = osp.join(out_root, split, 'JPEGImages', video_id)
        os.makedirs(img_dir, exist_ok=True)
        visible = {obj['obj_id']: [] for obj in objects}
        for t, frame_id in enumerate(frames):  # one frame in memory at a time: videos may be long
            frame, id_map = draw_objects(objects, t, height, width, background)
            cv2.imwrite(osp.join(img_dir, f'{frame_id}.jpg'), frame, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            for obj in objects:
                mask = id_map == obj['obj_id']
                if not mask.any():
                    continue
                visible[obj['obj_id']].append(frame_id)
                if with_masks:
                    obj_dir = osp.join(out_root, split, 'Annotations', video_id, str(obj['obj_id']))
                    os.makedirs(obj_dir, exist_ok=True)
                    cv2.imwrite(osp.join(obj_dir, f'{frame_id}.png'), mask.astype(np.uint8) * 255)
        expressions, exp_manifest = {}, {}
        for n, exp in enumerate(_long_rvos_expressions(rng, objects)):
            obj = objects[exp['obj']]
            expressions[str(n)] = dict(exp=exp['exp'], obj_id=str(obj['obj_id']), type=exp['type'])
            exp_manifest[str(n)] = dict(expressions[str(n)], kind=exp['kind'], look_alike=obj['look_alike'])
        meta[video_id] = dict(frames=frames, expressions=expressions)
        manifest[video_id] = dict(
            frames=frames, expressions=exp_manifest,
            objects={str(o['obj_id']): dict(color=o['color'], shape=o['shape'], motion=o['motion'],
                                            look_alike=o['look_alike'], absence=o['absence'],
                                            visible_frames=visible[o['obj_id']]) for o in objects})
    _write_json(osp.join(out_root, split, 'meta_expressions.json'), dict(videos=meta))
    return manifest


def generate_long_rvos(out_root: str, num_train: int = 4, num_valid: int = 2, num_test: int = 1,
                       num_frames: int = 24, size: Tuple[int, int] = (48, 64), num_objects: Sequence[int] = (3, 4),
                       leave_prob: float = 0.6, seed: int = 0,
                       absence_range: Tuple[float, float] = ABSENCE_RANGE) -> dict:
    """Synthetic Long-RVOS in the real layout (``train``, ``valid`` with masks; ``test`` without).

    Each video shows 3-4 shapes (``num_objects``, at most 4): two look-alikes (same colour and shape) and
    others of distinct appearances; each object has its own motion (bouncing horizontally, vertically,
    diagonally, or staying still) and, with probability ``leave_prob``, leaves the video for a share of it
    drawn in ``absence_range`` (default 10-35%) and comes back. Descriptions of the three official types
    (``"type"``: ``"static"`` -- appearance,
    ``"dynamic"`` -- motion or leaving-and-returning, ``"static+dynamic"`` -- both; the look-alikes are
    only described by hybrid or dynamic ones). The defaults are small for tests (24 frames of 48x64);
    ``num_frames`` of a few hundred gives videos as long as the real ones (~360 frames); frames are written
    one at a time. A split of 0 videos is not written. Per split the videos come from their own random
    stream of ``seed``.

    Returns:
        the manifest (also saved as ``<out_root>/synthetic_manifest.json``).
    """
    if num_frames < 1:
        raise ValueError(f'generate_long_rvos: num_frames must be >= 1, got {num_frames}')
    if not 0.0 <= leave_prob <= 1.0:
        raise ValueError(f'generate_long_rvos: leave_prob must be in [0, 1], got {leave_prob}')
    if len(absence_range) != 2 or not 0.0 < absence_range[0] <= absence_range[1] < 1.0:
        raise ValueError(f'generate_long_rvos: absence_range must be (low, high) with 0 < low <= high < 1 (shares '
                         f'of the video), got {tuple(absence_range)}')
    if min(num_objects) < 2 or max(num_objects) > len(LONG_RVOS_MOTIONS) or num_objects[0] > num_objects[-1]:
        raise ValueError(f'generate_long_rvos: num_objects (min, max) must lie in [2, {len(LONG_RVOS_MOTIONS)}] '
                         f'(two look-alikes; one motion per object), got {tuple(num_objects)}')
    os.makedirs(out_root, exist_ok=True)
    manifest = dict(format='long_rvos', seed=seed, size=list(size), num_frames=num_frames,
                    absence_range=list(absence_range))
    for index, (split, count) in enumerate(zip(LONG_RVOS_SPLITS, (num_train, num_valid, num_test))):
        if count < 0:
            raise ValueError(f'generate_long_rvos: the number of {split} videos must be >= 0, got {count}')
        ids = [f'{split}_{i:04d}' for i in range(count)]
        manifest[split] = write_long_rvos_split(out_root, split, ids, np.random.default_rng([seed, index]),
                                                num_frames, size, with_masks=split != 'test',
                                                num_objects=num_objects, leave_prob=leave_prob,
                                                absence_range=tuple(absence_range)) if ids else {}
    return _save_manifest(out_root, manifest)
