"""Synthetic MeViS v2 (TPAMI 2025) in the real layout: the synthetic MeViS of :mod:`soc_mm.datasets.synthetic`
with v2's expression file, more expressions that refer to several objects or to none, and an audio file per
expression.

MeViS v2 keeps v1's folders and fields (``JPEGImages/``, ``mask_dict.json`` with one COCO RLE or ``null`` per
frame, expressions with ``exp`` / ``obj_id`` / ``anno_id``); its expression file is
``meta_expressions_v2.json``; it adds motion-reasoning, multi-object and no-target expressions and gives every
expression as audio too. The public sources do not show how the audio is referenced from the expression
file, so the audio written here is a placeholder: a short WAV per expression under
``<split>/audio/<video>/<exp_id>.wav``, named by an ``audio`` field of the expression. Nothing in soc_mm reads
it (:class:`soc_mm.datasets.MeViSDataset` ignores fields and files it does not use); it is there so that the
loaders are tested on a v2 split that carries more than v1's fields.
"""
import os
import os.path as osp
import wave
from typing import Dict, List, Tuple

import numpy as np

from .mevis import MEVIS_META_FILES
from .synthetic import (COLORS_BGR, MEVIS_MOTIONS, SHAPE_PLURALS, SHAPES, _save_manifest, _write_json,
                        write_mevis_split)
from .utils import read_json

#: sample rate and length of the placeholder audio of an expression
AUDIO_RATE = 8000
AUDIO_SECONDS = 0.05
#: kinds of the expressions added to v1's ('motion', 'motion_plural', 'appearance', 'no_target')
V2_KINDS = ('all_objects', 'moving_plural', 'no_target_shape', 'no_target_color')


def write_placeholder_audio(path: str, seed: int) -> None:
    """A short 16-bit mono WAV (a quiet tone whose pitch depends on ``seed``)."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    t = np.arange(int(AUDIO_RATE * AUDIO_SECONDS)) / AUDIO_RATE
    samples = (2000 * np.sin(2 * np.pi * (200 + 20 * (seed % 40)) * t)).astype('<i2')
    with wave.open(path, 'wb') as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(AUDIO_RATE)
        out.writeframes(samples.tobytes())


def v2_expressions(rng: np.random.Generator, objects: Dict[str, dict]) -> List[dict]:
    """The expressions MeViS v2 adds to a synthetic video: ``{'exp', 'targets' (object keys), 'kind'}``.

    * ``all_objects``: "all the shapes" (every object; several when the video has >= 2);
    * ``moving_plural``: "the shapes that move" (every object whose motion is not 'still'), when that is
      at least two objects and not all of them;
    * ``no_target_shape``: a motion of a shape that is not in the video ("the triangle that moves up");
    * ``no_target_color``: the plural of a colour that is not in the video ("the purple shapes").

    Args:
        objects: the video's objects as the MeViS writer's manifest gives them (``{obj key: {color, shape,
            motion, ...}}``).
    """
    keys = sorted(objects, key=int)
    exps = [dict(exp='all the shapes', targets=keys, kind='all_objects')]
    moving = [k for k in keys if objects[k]['motion'] != 'still']
    if 2 <= len(moving) < len(keys):
        exps.append(dict(exp='the shapes that move', targets=moving, kind='moving_plural'))
    shapes = {objects[k]['shape'] for k in keys}
    absent_shapes = [s for s in SHAPES if s not in shapes]
    if absent_shapes:
        shape = absent_shapes[rng.integers(len(absent_shapes))]
        motion = list(MEVIS_MOTIONS)[rng.integers(len(MEVIS_MOTIONS))]
        exps.append(dict(exp=f'the {shape} {MEVIS_MOTIONS[motion][0]}', targets=[], kind='no_target_shape'))
    colors = {objects[k]['color'] for k in keys}
    absent_colors = [c for c in COLORS_BGR if c not in colors]
    color = absent_colors[rng.integers(len(absent_colors))]
    shape = SHAPES[rng.integers(len(SHAPES))]
    exps.append(dict(exp=f'the {color} {SHAPE_PLURALS[shape]}', targets=[], kind='no_target_color'))
    return exps


def write_mevis_v2_split(out_dir: str, split: str, video_ids: List[str], rng: np.random.Generator,
                         num_frames: int, size: Tuple[int, int], with_masks: bool, exit_prob: float = 0.2,
                         motion_repeats: int = 1, audio: bool = True) -> Dict[str, dict]:
    """One MeViS v2 split: :func:`soc_mm.datasets.synthetic.write_mevis_split` (frames, masks and v1's
    expressions), then :func:`v2_expressions` appended to every video (new exp_ids after v1's), the audio
    placeholders (``audio``) and the expressions written to ``meta_expressions_v2.json`` (no v1 file).

    Returns:
        the split's manifest (as ``write_mevis_split``'s; the added expressions have the kinds of
        :data:`V2_KINDS`, ``audio`` their file relative to the split folder or None).
    """
    manifest = write_mevis_split(out_dir, split, video_ids, rng, num_frames, size, with_masks,
                                 exit_prob=exit_prob, motion_repeats=motion_repeats)
    split_dir = osp.join(out_dir, split)
    v1_file = osp.join(split_dir, MEVIS_META_FILES['v1'])
    meta = read_json(v1_file, 'synthetic MeViS expressions')
    os.remove(v1_file)
    for video_id in video_ids:
        video, entry = manifest[video_id], meta['videos'][video_id]
        objects = video['objects']
        for exp in v2_expressions(rng, objects):
            exp_id = str(len(entry['expressions']))
            refs = [objects[k]['anno_id'] for k in exp['targets']]
            obj_ids = [int(k) for k in exp['targets']]
            entry['expressions'][exp_id] = (dict(exp=exp['exp'], obj_id=obj_ids, anno_id=refs) if with_masks else
                                            dict(exp=exp['exp']))
            video['expressions'][exp_id] = dict(exp=exp['exp'], clean=exp['exp'], obj_id=obj_ids, anno_id=refs,
                                                kind=exp['kind'], multi_object=len(obj_ids) > 1,
                                                no_target=not obj_ids, motion_only=False)
        for n, exp_id in enumerate(entry['expressions']):
            rel = None
            if audio:
                rel = f'audio/{video_id}/{exp_id}.wav'
                write_placeholder_audio(osp.join(split_dir, rel), seed=n)
                entry['expressions'][exp_id]['audio'] = rel
            video['expressions'][exp_id]['audio'] = rel
    _write_json(osp.join(split_dir, MEVIS_META_FILES['v2']), meta)
    return manifest


def generate_mevis_v2(out_root: str, num_train: int = 6, num_valid_u: int = 2, num_valid: int = 2,
                      num_frames: int = 12, size: Tuple[int, int] = (64, 96), exit_prob: float = 0.2,
                      seed: int = 0, train_motion_repeats: int = 1, audio: bool = True) -> dict:
    """Synthetic MeViS v2: ``train``, ``valid_u`` (with ``mask_dict.json``) and ``valid`` (expressions only)
    in the v2 layout (:func:`write_mevis_v2_split`); the options are those of
    :func:`soc_mm.datasets.synthetic.generate_mevis`, plus ``audio`` (write the placeholder audio files).
    A large split (e.g. ``num_valid_u=100, num_frames=60, size=(720, 1280)``) is what the evaluation
    benchmark ``tools/analysis_tools/benchmark_eval.py`` scores.
    """
    if num_frames < 2:
        raise ValueError(f'generate_mevis_v2: num_frames must be >= 2 (motion needs two frames), got {num_frames}')
    splits = (('train', num_train, True), ('valid_u', num_valid_u, True), ('valid', num_valid, False))
    manifest = dict(format='mevis_v2', seed=seed, size=list(size), num_frames=num_frames)
    for index, (split, count, with_masks) in enumerate(splits):
        ids = [f'{split}_{i:04d}' for i in range(count)]
        manifest[split] = write_mevis_v2_split(out_root, split, ids, np.random.default_rng([seed, index]),
                                               num_frames, size, with_masks, exit_prob=exit_prob,
                                               motion_repeats=train_motion_repeats if split == 'train' else 1,
                                               audio=audio)
    os.makedirs(out_root, exist_ok=True)
    return _save_manifest(out_root, manifest)
