"""Synthetic RVOS data in the real on-disk formats: moving coloured shapes and referring expressions.

Each video shows 2-3 shapes with distinct (colour, shape) pairs moving with constant velocity and
bouncing off the borders; each object gets an expression such as "the red circle on the left"
(position word from the object's mean x among the objects). Writers produce the exact layouts of
Ref-YouTube-VOS, Ref-DAVIS17, A2D-Sentences, JHMDB-Sentences, RefCOCO (MDETR-style) and MeViS, so the
real loading code is what reads them. Used by ``tools/dataset_converters/generate_synthetic_*.py``,
the tests and the demo. Every writer returns a manifest (also saved as ``synthetic_manifest.json``).
"""
import csv
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from .utils import read_json

COLORS_BGR = {
    'red': (40, 40, 220), 'green': (60, 180, 60), 'blue': (220, 90, 30), 'yellow': (40, 220, 230),
    'purple': (180, 50, 150), 'white': (245, 245, 245)}
SHAPES = ('circle', 'square', 'triangle')
SHAPE_TO_YTVOS_CATEGORY = {'circle': 'frisbee', 'square': 'sign', 'triangle': 'paddle'}
ACTIONS = ('moving', 'sliding', 'bouncing')


def davis_palette() -> List[int]:
    """The usual DAVIS / YouTube-VOS 256-colour palette (index -> RGB), flattened."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def write_palette_png(path: str, id_map: np.ndarray) -> None:
    img = Image.fromarray(id_map.astype(np.uint8), mode='P')
    img.putpalette(davis_palette())
    img.save(path)


def shape_polygon(shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    """Outline of a shape as float polygon [K, 2] (x, y)."""
    if shape == 'circle':
        a = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], 1)
    if shape == 'square':
        return np.array([[cx - r, cy - r], [cx + r, cy - r], [cx + r, cy + r], [cx - r, cy + r]])
    if shape == 'triangle':
        return np.array([[cx, cy - r], [cx + r, cy + r], [cx - r, cy + r]])
    raise ValueError(f'unknown shape {shape!r}')


def draw_objects(objects: List[dict], t: int, height: int, width: int,
                 background: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Render frame ``t``: BGR uint8 [H, W, 3] and the object-id map uint8 [H, W] (later objects on top)."""
    frame = background.copy()
    id_map = np.zeros((height, width), np.uint8)
    for obj in objects:
        if not obj['present'][t]:
            continue
        cx, cy = obj['centers'][t]
        poly = np.round(shape_polygon(obj['shape'], cx, cy, obj['radius'])).astype(np.int32)
        cv2.fillPoly(frame, [poly], COLORS_BGR[obj['color']])
        cv2.fillPoly(id_map, [poly], int(obj['obj_id']))
    return frame, id_map


def make_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth grey-ish background (low-frequency noise) so frames are not flat."""
    base = rng.uniform(70, 130)
    small = rng.normal(0, 12, (4, 4, 3)).astype(np.float32)
    noise = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def pick_color_shapes(rng: np.random.Generator, num_objects: int,
                      same_color_prob: Optional[float] = None) -> List[tuple]:
    """Distinct (colour, shape) pairs. ``same_color_prob=None``: uniform over the pairs (two objects
    then share a colour in ~1/3 of 3-object and ~1/8 of 2-object videos); else, with this
    probability, the first two objects share a colour (only the shape tells them apart) and otherwise
    all colours differ."""
    pairs = [(c, s) for c in COLORS_BGR for s in SHAPES]
    if same_color_prob is None:
        return [pairs[p] for p in rng.choice(len(pairs), size=num_objects, replace=False)]
    if not 0.0 <= same_color_prob <= 1.0:
        raise ValueError(f'same_color_prob must be in [0, 1], got {same_color_prob}')
    if num_objects > len(COLORS_BGR) + 1:
        raise ValueError(f'same_color_prob: at most {len(COLORS_BGR) + 1} objects, got {num_objects}')
    same = num_objects >= 2 and rng.random() < same_color_prob
    colors = list(rng.choice(list(COLORS_BGR), size=num_objects - int(same), replace=False))
    if same:
        colors.insert(1, colors[0])
    picked = []
    for color in colors:
        free = [s for s in SHAPES if (color, s) not in picked]
        picked.append((str(color), str(free[rng.integers(len(free))])))
    return picked


def make_objects(rng: np.random.Generator, num_frames: int, height: int, width: int, num_objects: int,
                 exit_prob: float = 0.0, late_entry_prob: float = 0.0,
                 same_color_prob: Optional[float] = None) -> List[dict]:
    """Objects with distinct (colour, shape) (see ``pick_color_shapes``), linear motion with bounces;
    optional exits / late entries."""
    objects = []
    for k, (color, shape) in enumerate(pick_color_shapes(rng, num_objects, same_color_prob)):
        r = float(rng.uniform(0.09, 0.14) * min(height, width))
        pos = np.array([rng.uniform(r, width - r), rng.uniform(r, height - r)])
        vel = rng.uniform(-0.04, 0.04, 2) * (width, height)
        centers = []
        for _ in range(num_frames):
            centers.append(pos.copy())
            pos = pos + vel
            for d, lim in ((0, width), (1, height)):
                if pos[d] < r or pos[d] > lim - r:
                    vel[d] = -vel[d]
                    pos[d] = np.clip(pos[d], r, lim - r)
        present = np.ones(num_frames, bool)
        if num_frames > 2 and rng.random() < exit_prob:
            present[rng.integers(num_frames // 2, num_frames):] = False
        elif num_frames > 2 and rng.random() < late_entry_prob:
            present[:rng.integers(1, num_frames // 2 + 1)] = False
        objects.append(dict(obj_id=k + 1, color=color, shape=shape, radius=r, centers=np.array(centers),
                            present=present))
    return objects


def describe(objects: List[dict]) -> Dict[int, str]:
    """Referring expression per object id: '<colour> <shape>' + position among the objects."""
    order = sorted(objects, key=lambda o: o['centers'][:, 0][o['present']].mean() if o['present'].any() else 0)
    texts = {}
    for rank, obj in enumerate(order):
        where = 'on the left' if rank == 0 else 'on the right' if rank == len(order) - 1 else 'in the middle'
        texts[obj['obj_id']] = f"the {obj['color']} {obj['shape']} {where}"
    return texts


def make_video(rng: np.random.Generator, num_frames: int, height: int, width: int,
               num_objects: Sequence[int] = (2, 3), exit_prob: float = 0.0,
               late_entry_prob: float = 0.0, same_color_prob: Optional[float] = None) -> dict:
    """One synthetic video: frames [T, H, W, 3] BGR, id maps [T, H, W], objects and expressions."""
    n = int(rng.integers(num_objects[0], num_objects[-1] + 1))
    objects = make_objects(rng, num_frames, height, width, n, exit_prob, late_entry_prob, same_color_prob)
    background = make_background(rng, height, width)
    rendered = [draw_objects(objects, t, height, width, background) for t in range(num_frames)]
    return dict(frames=np.stack([f for f, _ in rendered]), id_maps=np.stack([m for _, m in rendered]),
                objects=objects, expressions=describe(objects))


def _object_meta(obj: dict) -> dict:
    return dict(color=obj['color'], shape=obj['shape'], category=SHAPE_TO_YTVOS_CATEGORY[obj['shape']])


def _save_manifest(out_dir: str, manifest: dict) -> dict:
    with open(osp.join(out_dir, 'synthetic_manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
    return manifest


def _write_json(path: str, data: dict) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(data, f)


# ---------------------------------------------------------------------------------------- Ref-YouTube-VOS
def write_ytvos_split(out_dir: str, split: str, video_ids: List[str], rng: np.random.Generator, num_frames: int,
                      size: Tuple[int, int], frame_step: int, num_objects: Sequence[int], with_masks: bool,
                      exps_per_object: int = 1, exit_prob: float = 0.0, late_entry_prob: float = 0.0,
                      jpeg_quality: int = 95, same_color_prob: Optional[float] = None) -> Dict[str, dict]:
    """Write ``<split>/JPEGImages``, ``<split>/Annotations`` (if ``with_masks``) and ``<split>/meta.json``.

    Returns ``{video: {"frames", "objects", "expressions"}}`` in the meta_expressions format.
    """
    h, w = size
    videos, meta = {}, {}
    for vid in video_ids:
        video = make_video(rng, num_frames, h, w, num_objects, exit_prob, late_entry_prob, same_color_prob)
        frames = [f'{t * frame_step:05d}' for t in range(num_frames)]
        img_dir = osp.join(out_dir, split, 'JPEGImages', vid)
        os.makedirs(img_dir, exist_ok=True)
        for fid, frame in zip(frames, video['frames']):
            cv2.imwrite(osp.join(img_dir, f'{fid}.jpg'), frame, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if with_masks:
            ann_dir = osp.join(out_dir, split, 'Annotations', vid)
            os.makedirs(ann_dir, exist_ok=True)
            for fid, id_map in zip(frames, video['id_maps']):
                write_palette_png(osp.join(ann_dir, f'{fid}.png'), id_map)
        expressions = {}
        for obj in video['objects']:
            for a in range(exps_per_object):
                text = video['expressions'][obj['obj_id']]
                if exps_per_object > 1 and a % 2 == 1:
                    text = f"{text.replace('the ', 'a ', 1)} {ACTIONS[a // 2 % len(ACTIONS)]}"
                expressions[str(len(expressions))] = dict(exp=text, obj_id=str(obj['obj_id']))
        objects = {str(o['obj_id']): dict(_object_meta(o), frames=[f for f, p in zip(frames, o['present']) if p])
                   for o in video['objects']}
        videos[vid] = dict(frames=frames, expressions=expressions)
        meta[vid] = dict(objects=objects)
    _write_json(osp.join(out_dir, split, 'meta.json'), dict(videos=meta))
    return {v: dict(videos[v], objects=meta[v]['objects']) for v in video_ids}


def generate_ref_youtube_vos(out_dir: str, num_train: int = 8, num_valid: int = 3, num_test: int = 1,
                             num_frames: int = 8, size: Tuple[int, int] = (96, 96), frame_step: int = 5,
                             num_objects: Sequence[int] = (2, 3), valid_with_gt: bool = True,
                             exit_prob: float = 0.0, late_entry_prob: float = 0.0, seed: int = 0,
                             train_same_color_prob: Optional[float] = None) -> dict:
    """Synthetic Refer-YouTube-VOS.

    Writes ``train`` (frames, palette masks, meta.json), ``valid`` (the valid and test videos; with
    masks when ``valid_with_gt``: unlike the real release, so held-out J&F can be measured) and
    ``meta_expressions/{train,valid,test}`` (valid lists valid + test videos, as the real file does;
    ``num_test=0`` writes no test file, as ``RefYouTubeVOSDataset`` refuses an empty one).
    The splits draw from their own random streams of ``seed``: the held-out videos do not depend on
    the train options. ``train_same_color_prob`` (see ``pick_color_shapes``) makes train videos where
    only the shape tells two objects apart more frequent; the held-out videos keep the uniform draw.
    """
    train_ids = [f'train_{i:04d}' for i in range(num_train)]
    valid_ids = [f'valid_{i:04d}' for i in range(num_valid)]
    test_ids = [f'test_{i:04d}' for i in range(num_test)]
    common = dict(num_frames=num_frames, size=size, frame_step=frame_step, num_objects=num_objects,
                  exit_prob=exit_prob, late_entry_prob=late_entry_prob)
    train = write_ytvos_split(out_dir, 'train', train_ids, rng=np.random.default_rng([seed, 0]), with_masks=True,
                              same_color_prob=train_same_color_prob, **common)
    valid = write_ytvos_split(out_dir, 'valid', valid_ids + test_ids, rng=np.random.default_rng([seed, 1]),
                              with_masks=valid_with_gt, **common)
    strip = lambda vids: {v: dict(frames=d['frames'], expressions=d['expressions']) for v, d in vids.items()}  # noqa
    _write_json(osp.join(out_dir, 'meta_expressions', 'train', 'meta_expressions.json'), dict(videos=strip(train)))
    _write_json(osp.join(out_dir, 'meta_expressions', 'valid', 'meta_expressions.json'), dict(videos=strip(valid)))
    test = {v: dict(frames=valid[v]['frames'],
                    expressions={k: dict(exp=e['exp']) for k, e in valid[v]['expressions'].items()})
            for v in test_ids}
    test_file = osp.join(out_dir, 'meta_expressions', 'test', 'meta_expressions.json')
    if test:
        _write_json(test_file, dict(videos=test))
    elif osp.isfile(test_file):  # no test videos: no test file (the loader refuses an empty one)
        os.remove(test_file)
    return _save_manifest(out_dir, dict(format='ref_youtube_vos', seed=seed, size=list(size),
                                        train_same_color_prob=train_same_color_prob, train=train,
                                        valid={v: valid[v] for v in valid_ids},
                                        test={v: valid[v] for v in test_ids}))


# ---------------------------------------------------------------------------------------- Ref-DAVIS17
def generate_ref_davis(out_dir: str, num_valid: int = 2, num_frames: int = 10, size: Tuple[int, int] = (96, 128),
                       num_objects: Sequence[int] = (2, 3), seed: int = 0) -> dict:
    """Synthetic Ref-DAVIS17 in the converted (Ref-YTVOS) layout: 4 expressions per object
    (exp_id = 4*k + annotator set), full masks for every frame."""
    rng = np.random.default_rng(seed)
    ids = [f'davis_{i:03d}' for i in range(num_valid)]
    valid = write_ytvos_split(out_dir, 'valid', ids, rng, num_frames, size, 1, num_objects, with_masks=True,
                              exps_per_object=4)
    _write_json(osp.join(out_dir, 'meta_expressions', 'valid', 'meta_expressions.json'),
                dict(videos={v: dict(frames=d['frames'], expressions=d['expressions']) for v, d in valid.items()}))
    return _save_manifest(out_dir, dict(format='ref_davis17', seed=seed, size=list(size), valid=valid))


# ---------------------------------------------------------------------------------------- A2D-Sentences
def write_mp4(path: str, frames: np.ndarray, fps: int = 24) -> str:
    """Write BGR frames [T, H, W, 3] to an mp4 with PyAV (near-lossless); returns the codec used."""
    import av
    h, w = frames.shape[1:3]
    for codec, options, pix_fmt in (('libx264', {'crf': '0'}, 'yuv444p'), ('mpeg4', {'qscale': '1'}, 'yuv420p')):
        try:
            with av.open(path, mode='w') as container:
                stream = container.add_stream(codec, rate=fps)
                stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
                stream.options = options
                for frame in frames:
                    for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame),
                                                                           format='bgr24')):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
            return codec
        except Exception:  # noqa: BLE001 - codec not built into this PyAV: try the next one
            if osp.exists(path):
                os.remove(path)
    raise RuntimeError(f'PyAV could not encode {path} with libx264 or mpeg4')


def write_a2d_h5(path: str, id_map: np.ndarray, instance_ids: List[int], obj_ids: List[int]) -> None:
    """A2D instance annotation: ``instance`` [N], ``reMask`` [N, W, H] (or [W, H]), ``reBBox`` [4, N]."""
    import h5py
    masks = np.stack([(id_map == o) for o in obj_ids]).astype(np.uint8)
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    stored = masks.transpose(0, 2, 1)  # A2D stores masks transposed
    with h5py.File(path, 'w') as f:
        f.create_dataset('instance', data=np.asarray(instance_ids, dtype=np.float64))
        f.create_dataset('reMask', data=stored[0] if len(masks) == 1 else stored)
        f.create_dataset('reBBox', data=np.asarray(boxes, dtype=np.float64).T)


def generate_a2d_sentences(out_dir: str, num_train: int = 3, num_test: int = 2, num_frames: int = 12,
                           size: Tuple[int, int] = (64, 96), annotated_frames: int = 3,
                           num_objects: Sequence[int] = (2, 3), seed: int = 0) -> dict:
    """Synthetic A2D-Sentences: videoset.csv, mp4 clips, text annotations and per-frame h5 masks.

    Instance ids are 0-based (object id - 1), annotated frames 1-based; one extra video is listed in
    ``a2d_missed_videos.txt`` (and has no files), as in the real release.
    """
    rng = np.random.default_rng(seed)
    h, w = size
    rel, txt = osp.join(out_dir, 'Release'), osp.join(out_dir, 'text_annotations')
    os.makedirs(osp.join(rel, 'CLIPS320'), exist_ok=True)
    os.makedirs(osp.join(txt, 'a2d_annotation_with_instances'), exist_ok=True)
    rows, texts, manifest = [], [], dict(format='a2d_sentences', seed=seed, size=list(size), videos={})
    codec = None
    for i in range(num_train + num_test):
        vid = f'a2dvid{i:04d}'
        subset = 0 if i < num_train else 1
        video = make_video(rng, num_frames, h, w, num_objects)
        codec = write_mp4(osp.join(rel, 'CLIPS320', f'{vid}.mp4'), video['frames'])
        ann = sorted(rng.choice(np.arange(1, num_frames + 1), size=annotated_frames, replace=False).tolist())
        if 1 not in ann:
            ann[0] = 1  # a window at the video start exercises the edge padding
        ann = sorted(set(ann))
        ann_dir = osp.join(txt, 'a2d_annotation_with_instances', vid)
        os.makedirs(ann_dir, exist_ok=True)
        for f in ann:
            obj_ids = [o['obj_id'] for o in video['objects'] if (video['id_maps'][f - 1] == o['obj_id']).any()]
            write_a2d_h5(osp.join(ann_dir, f'{f:05d}.h5'), video['id_maps'][f - 1], [o - 1 for o in obj_ids], obj_ids)
        for obj in video['objects']:
            texts.append((vid, str(obj['obj_id'] - 1), video['expressions'][obj['obj_id']]))
        rows.append([vid, 0, 0, 0, h, w, num_frames, len(ann), subset])
        manifest['videos'][vid] = dict(subset=subset, annotated_frames=ann, num_frames=num_frames,
                                       objects={str(o['obj_id'] - 1): _object_meta(o) for o in video['objects']},
                                       expressions={str(o - 1): e for o, e in video['expressions'].items()})
    rows.append(['a2dmissed0000', 0, 0, 0, h, w, num_frames, 1, 0])
    with open(osp.join(rel, 'videoset.csv'), 'w', newline='') as f:
        csv.writer(f).writerows(rows)
    with open(osp.join(txt, 'a2d_missed_videos.txt'), 'w') as f:
        f.write('a2dmissed0000\n')
    with open(osp.join(txt, 'a2d_annotation.txt'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['video_id', 'instance_id', 'query'])
        writer.writerows(texts + [('a2dmissed0000', '0', 'the missing video')])
    manifest['codec'] = codec
    return _save_manifest(out_dir, manifest)


# ---------------------------------------------------------------------------------------- JHMDB-Sentences
def generate_jhmdb_sentences(out_dir: str, num_videos: int = 3, num_frames: int = 12,
                             size: Tuple[int, int] = (64, 80), seed: int = 0) -> dict:
    """Synthetic JHMDB-Sentences: PNG frames (1-based), ``puppet_mask.mat`` of the actor (the referred
    object; the last frame has no mask, as in some real videos) and ``jhmdb_annotation.txt``."""
    import scipy.io
    rng = np.random.default_rng(seed)
    h, w = size
    texts, manifest = [], dict(format='jhmdb_sentences', seed=seed, size=list(size), videos={})
    for i in range(num_videos):
        action = ACTIONS[i % len(ACTIONS)]
        vid = f'jhmdb_{action}_{i:03d}'
        video = make_video(rng, num_frames, h, w, (2, 3))
        actor = video['objects'][0]
        img_dir = osp.join(out_dir, 'Rename_Images', action, vid)
        mask_dir = osp.join(out_dir, 'puppet_mask', action, vid)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(mask_dir, exist_ok=True)
        for t, frame in enumerate(video['frames']):
            cv2.imwrite(osp.join(img_dir, f'{t + 1:05d}.png'), frame)
        part_mask = (video['id_maps'][:num_frames - 1] == actor['obj_id']).astype(np.uint8).transpose(1, 2, 0)
        scipy.io.savemat(osp.join(mask_dir, 'puppet_mask.mat'), {'part_mask': part_mask})
        query = f"{video['expressions'][actor['obj_id']]} {action}"
        texts.append((vid, query))
        manifest['videos'][vid] = dict(action=action, query=query, num_frames=num_frames,
                                       num_masks=num_frames - 1, actor=_object_meta(actor))
    with open(osp.join(out_dir, 'jhmdb_annotation.txt'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['video_id', 'query'])
        writer.writerows(texts)
    return _save_manifest(out_dir, manifest)


# ---------------------------------------------------------------------------------------- RefCOCO
def generate_refcoco(out_dir: str, num_images: Dict[str, int] = None, size: Tuple[int, int] = (80, 112),
                     datasets: Sequence[str] = ('refcoco', ), num_objects: Sequence[int] = (2, 3),
                     seed: int = 0) -> dict:
    """Synthetic RefCOCO-style data: ``train2014`` images and MDETR-style
    ``<dataset>/instances_<dataset>_<split>.json`` (one image entry per expression, its annotation the
    referred object as a polygon)."""
    rng = np.random.default_rng(seed)
    num_images = num_images or dict(train=3, val=2)
    h, w = size
    img_dir = osp.join(out_dir, 'train2014')
    os.makedirs(img_dir, exist_ok=True)
    manifest = dict(format='refcoco', seed=seed, size=list(size), images={})
    coco_id = 0
    entries = {split: ([], []) for split in num_images}  # images, annotations
    for split, n in num_images.items():
        for _ in range(n):
            coco_id += 1
            video = make_video(rng, 1, h, w, num_objects)
            file_name = f'COCO_train2014_{coco_id:012d}.jpg'
            cv2.imwrite(osp.join(img_dir, file_name), video['frames'][0], [cv2.IMWRITE_JPEG_QUALITY, 95])
            manifest['images'][file_name] = dict(split=split, expressions={})
            images, anns = entries[split]
            for obj in video['objects']:
                poly = shape_polygon(obj['shape'], *obj['centers'][0], obj['radius'])
                x1, y1 = poly.min(0)
                x2, y2 = poly.max(0)
                entry_id = len(images) + 1 + 1000 * (split != 'train')
                images.append(dict(id=entry_id, file_name=file_name, height=h, width=w, original_id=coco_id,
                                   caption=video['expressions'][obj['obj_id']], dataset_name='refcoco'))
                anns.append(dict(id=len(anns) + 1, image_id=entry_id, category_id=1, iscrowd=0,
                                 bbox=[float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                                 area=float((x2 - x1) * (y2 - y1)),
                                 segmentation=[[float(v) for v in poly.reshape(-1)]]))
                manifest['images'][file_name]['expressions'][str(entry_id)] = video['expressions'][obj['obj_id']]
    for dataset in datasets:
        for split, (images, anns) in entries.items():
            _write_json(osp.join(out_dir, dataset, f'instances_{dataset}_{split}.json'),
                        dict(images=images, annotations=anns, categories=[dict(id=1, name='object')]))
    return _save_manifest(out_dir, manifest)


# ---------------------------------------------------------------------------------------- MeViS
#: MeViS motions: (singular relative clause, plural phrase); left/right swap under a horizontal flip.
MEVIS_MOTIONS = {
    'left': ('that moves left', 'moving left'), 'right': ('that moves right', 'moving right'),
    'up': ('that moves up', 'moving up'), 'down': ('that moves down', 'moving down'),
    'still': ('that stays still', 'staying still'), 'stop': ('that stops moving', 'that stop moving')}
MEVIS_DIRECTIONS = {'left': (-1, 0), 'right': (1, 0), 'up': (0, -1), 'down': (0, 1)}
SHAPE_PLURALS = {'circle': 'circles', 'square': 'squares', 'triangle': 'triangles'}


def mevis_trajectory(rng: np.random.Generator, motion: str, num_frames: int, height: int, width: int,
                     radius: float) -> np.ndarray:
    """Centres [T, 2] (x, y) of an object performing ``motion`` (a key of ``MEVIS_MOTIONS``), inside the frame.

    'left'/'right'/'up'/'down': constant velocity over the whole video, travelling 45% of the free extent;
    'still': no motion; 'stop': moves in a random direction during the first half, then stays.
    """
    if motion not in MEVIS_MOTIONS:
        raise ValueError(f'unknown MeViS motion {motion!r}, expected one of {sorted(MEVIS_MOTIONS)}')
    extent = np.array([width, height], np.float64)
    if motion == 'still':
        pos = rng.uniform(radius, extent - radius)
        return np.repeat(pos[None], num_frames, axis=0)
    direction = MEVIS_DIRECTIONS[motion] if motion in MEVIS_DIRECTIONS else \
        list(MEVIS_DIRECTIONS.values())[rng.integers(len(MEVIS_DIRECTIONS))]
    direction = np.array(direction, np.float64)
    travel = 0.45 * (extent - 2 * radius) * np.abs(direction)  # along the moving axis only
    moving_steps = max(num_frames - 1, 1) if motion != 'stop' else max(num_frames // 2, 1)
    # start so that the whole path stays inside the frame
    lo = radius + np.where(direction < 0, travel, 0)
    hi = extent - radius - np.where(direction > 0, travel, 0)
    start = rng.uniform(lo, hi)
    steps = np.minimum(np.arange(num_frames), moving_steps) / moving_steps
    return start[None] + steps[:, None] * (travel * direction)[None]


def _mevis_objects(rng: np.random.Generator, num_frames: int, height: int, width: int,
                   exit_prob: float) -> List[dict]:
    """2-3 "twins" (same colour and shape, told apart only by their motion) and 0-1 object of another
    colour and shape. Twin motions: all different, or two (three) of them sharing one motion."""
    num_twins = int(rng.integers(2, 4))
    twin_color = str(rng.choice(list(COLORS_BGR)))
    twin_shape = str(rng.choice(SHAPES))
    motions = list(rng.permutation(list(MEVIS_MOTIONS)))
    pattern = rng.integers(3) if num_twins == 3 else rng.integers(2)
    if pattern == 0:  # all different
        twin_motions = motions[:num_twins]
    elif pattern == 1:  # two share a motion
        twin_motions = [motions[0], motions[0]] + motions[1:num_twins - 1]
    else:  # three share a motion
        twin_motions = [motions[0]] * 3
    specs = [(twin_color, twin_shape, str(m)) for m in twin_motions]
    if rng.random() < 0.6:
        color = str(rng.choice([c for c in COLORS_BGR if c != twin_color]))
        shape = str(rng.choice([s for s in SHAPES if s != twin_shape]))
        specs.append((color, shape, str(rng.choice(list(MEVIS_MOTIONS)))))
    objects = []
    for k, (color, shape, motion) in enumerate(specs):
        radius = float(rng.uniform(0.08, 0.11) * min(height, width))
        for _ in range(50):  # avoid overlaps with the objects placed so far (keep the last try otherwise)
            centers = mevis_trajectory(rng, motion, num_frames, height, width, radius)
            if all(np.linalg.norm(centers - o['centers'], axis=1).min() > radius + o['radius'] + 1
                   for o in objects):
                break
        present = np.ones(num_frames, bool)
        if motion in MEVIS_DIRECTIONS and num_frames > 2 and rng.random() < exit_prob:
            present[rng.integers(num_frames // 2, num_frames):] = False  # leaves before the end
        # 'obj_id' is the id drawn in the id maps (1-based: 0 is the background); MeViS obj_id = k
        objects.append(dict(obj_id=k + 1, color=color, shape=shape, motion=motion, radius=radius,
                            centers=centers, present=present))
    return objects


def _mevis_expressions(rng: np.random.Generator, objects: List[dict]) -> List[dict]:
    """Expressions of one video: ``{'exp', 'targets' (list of 0-based object indices), 'kind'}``.

    kinds: 'motion' (one object of its shape by its motion), 'motion_plural' (2-3 objects of one shape,
    or of any shape: "the shapes moving down"), 'appearance' (by colour and shape), 'no_target' (a motion
    or an appearance that no object of the video has; MeViS v2)."""
    exps = []
    twin_shape = objects[0]['shape']
    by_shape = [i for i, o in enumerate(objects) if o['shape'] == twin_shape]
    for motion, (singular, plural) in MEVIS_MOTIONS.items():
        same = [i for i in by_shape if objects[i]['motion'] == motion]
        if len(same) == 1:
            exps.append(dict(exp=f'the {twin_shape} {singular}', targets=same, kind='motion'))
        elif len(same) > 1:
            exps.append(dict(exp=f'the {SHAPE_PLURALS[twin_shape]} {plural}', targets=same, kind='motion_plural'))
        every = [i for i, o in enumerate(objects) if o['motion'] == motion]
        if len(every) > 1 and every != same:
            exps.append(dict(exp=f'the shapes {plural}', targets=every, kind='motion_plural'))
    twins = [i for i in by_shape if objects[i]['color'] == objects[0]['color']]
    exps.append(dict(exp=f"the {objects[0]['color']} {SHAPE_PLURALS[twin_shape]}", targets=twins,
                     kind='appearance'))
    for i, obj in enumerate(objects):
        if obj['shape'] != twin_shape:
            exps.append(dict(exp=f"the {obj['color']} {obj['shape']}", targets=[i], kind='appearance'))
    unused = [m for m in MEVIS_MOTIONS if all(objects[i]['motion'] != m for i in by_shape)]
    if unused:
        motion = unused[rng.integers(len(unused))]
        exps.append(dict(exp=f'the {twin_shape} {MEVIS_MOTIONS[motion][0]}', targets=[], kind='no_target'))
    shown = {(o['color'], o['shape']) for o in objects}
    absent = [(c, s) for c in COLORS_BGR for s in SHAPES if (c, s) not in shown]
    color, shape = absent[rng.integers(len(absent))]
    exps.append(dict(exp=f'the {color} {shape}', targets=[], kind='no_target'))
    return exps


def write_mevis_split(out_dir: str, split: str, video_ids: List[str], rng: np.random.Generator, num_frames: int,
                      size: Tuple[int, int], with_masks: bool, exit_prob: float = 0.2,
                      jpeg_quality: int = 95, motion_repeats: int = 1) -> Dict[str, dict]:
    """Write one MeViS split: ``<split>/JPEGImages/<video>/<frame>.jpg``, ``<split>/meta_expressions.json`` and,
    when ``with_masks``, ``<split>/mask_dict.json`` (one COCO RLE per frame, ``null`` where the object is not
    visible). Without masks (the ``valid`` split) the expressions hold only ``exp``.

    Returns the manifest of the split: ``{video: {'frames', 'objects': {obj_id: {anno_id, color, shape,
    motion, frames (where visible)}}, 'expressions': {exp_id: {exp (as written), clean, obj_id, anno_id, kind,
    multi_object, motion_only, no_target}}}}``. With ``motion_repeats`` = k > 1 every expression that refers
    to objects by their motion (kinds 'motion', 'motion_plural') is written k times (under new exp_ids
    after the others; the videos drawn do not change), so that training sees them k times as often.
    """
    if motion_repeats < 1:
        raise ValueError(f'write_mevis_split: motion_repeats must be >= 1, got {motion_repeats}')
    from soc_mm.structures.mask import encode_mask
    h, w = size
    meta, mask_dict, manifest = {}, {}, {}
    next_anno = 0
    for vid in video_ids:
        objects = _mevis_objects(rng, num_frames, h, w, exit_prob)
        background = make_background(rng, h, w)
        rendered = [draw_objects(objects, t, h, w, background) for t in range(num_frames)]
        frames = [f'{t:05d}' for t in range(num_frames)]
        img_dir = osp.join(out_dir, split, 'JPEGImages', vid)
        os.makedirs(img_dir, exist_ok=True)
        for fid, (frame, _) in zip(frames, rendered):
            cv2.imwrite(osp.join(img_dir, f'{fid}.jpg'), frame, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        anno_ids = list(range(next_anno, next_anno + len(objects)))
        next_anno += len(objects)
        objects_meta = {}
        for k, obj in enumerate(objects):
            visible = [id_map == obj['obj_id'] for _, id_map in rendered]  # occluded parts excluded
            mask_dict[str(anno_ids[k])] = [encode_mask(m) if m.any() else None for m in visible]
            objects_meta[str(k)] = dict(anno_id=anno_ids[k], color=obj['color'], shape=obj['shape'],
                                        motion=obj['motion'], frames=[f for f, m in zip(frames, visible) if m.any()])
        expressions, exp_manifest = {}, {}
        video_exps = _mevis_expressions(rng, objects)
        video_exps += [e for e in video_exps if e['kind'].startswith('motion')] * (motion_repeats - 1)
        for n, exp in enumerate(video_exps):
            exp_id = str(n)
            text = exp['exp'][0].upper() + exp['exp'][1:] if n % 3 == 1 else exp['exp']  # some capitalised
            obj_ids = list(exp['targets'])
            refs = [anno_ids[i] for i in obj_ids]
            expressions[exp_id] = dict(exp=text, obj_id=obj_ids, anno_id=refs) if with_masks else dict(exp=text)
            others = [o for i, o in enumerate(objects) if i not in obj_ids]
            look_alike = any((o['color'], o['shape']) == (objects[i]['color'], objects[i]['shape'])
                             for i in obj_ids for o in others)
            exp_manifest[exp_id] = dict(exp=text, clean=exp['exp'], obj_id=obj_ids, anno_id=refs, kind=exp['kind'],
                                        multi_object=len(obj_ids) > 1, no_target=not obj_ids,
                                        motion_only=exp['kind'].startswith('motion') and look_alike)
        meta[vid] = dict(frames=frames, expressions=expressions)
        manifest[vid] = dict(frames=frames, objects=objects_meta, expressions=exp_manifest)
    _write_json(osp.join(out_dir, split, 'meta_expressions.json'), dict(videos=meta))
    if with_masks:
        _write_json(osp.join(out_dir, split, 'mask_dict.json'), mask_dict)
    return manifest


def generate_mevis(out_root: str, num_train: int = 6, num_valid_u: int = 2, num_valid: int = 2,
                   num_frames: int = 12, size: Tuple[int, int] = (64, 96), exit_prob: float = 0.2,
                   seed: int = 0, train_motion_repeats: int = 1) -> dict:
    """Synthetic MeViS (motion expressions, several or no referred objects) in the real layout.

    Each video shows 2-3 "twins" (same colour and shape; only their motion tells them apart: moving
    left/right/up/down, staying still, stopping half-way) and, in 60% of the videos, one object of another
    colour and shape. Expressions: "the square that moves left" (one twin, by its motion), "the squares
    moving down" / "the shapes staying still" (2-3 objects), "the red squares" (every twin) and "the blue
    circle" (appearance), and MeViS-v2-style expressions that refer to no object (``obj_id`` and
    ``anno_id`` empty lists): an unused motion of the twins' shape and an absent colour/shape pair. Every
    third expression starts with a capital letter (the loaders lower-case them). With ``exit_prob`` an object
    moving left/right/up/down leaves the video before its end (its RLE is ``null`` from then on).

    Writes ``train`` and ``valid_u`` (frames, ``meta_expressions.json``, ``mask_dict.json``) and ``valid``
    (frames and ``meta_expressions.json`` with only ``exp`` per expression), exactly as the real release;
    ``anno_id`` numbers the objects of a split from 0, ``obj_id`` those of a video. Per split the videos
    come from their own random stream of ``seed``. Nothing else is written into the splits: the kinds of
    the expressions (``kind``, ``multi_object``, ``motion_only``: a look-alike non-referred object exists,
    ``no_target``) and the objects' motions are in ``<out_root>/synthetic_manifest.json``.
    ``train_motion_repeats``: ``motion_repeats`` of the train split (``write_mevis_split``).
    """
    if num_frames < 2:
        raise ValueError(f'generate_mevis: num_frames must be >= 2 (motion needs two frames), got {num_frames}')
    splits = (('train', num_train, True), ('valid_u', num_valid_u, True), ('valid', num_valid, False))
    manifest = dict(format='mevis', seed=seed, size=list(size), num_frames=num_frames)
    for index, (split, count, with_masks) in enumerate(splits):
        ids = [f'{split}_{i:04d}' for i in range(count)]
        manifest[split] = write_mevis_split(out_root, split, ids, np.random.default_rng([seed, index]), num_frames,
                                            size, with_masks, exit_prob=exit_prob,
                                            motion_repeats=train_motion_repeats if split == 'train' else 1)
    os.makedirs(out_root, exist_ok=True)
    return _save_manifest(out_root, manifest)


# ---------------------------------------------------------------------- one entry for every format
#: the formats :func:`generate` writes (``tools/dataset_converters/generate_synthetic_rvos.py FORMAT``)
FORMATS = ('ref_youtube_vos', 'ref_davis17', 'a2d_sentences', 'jhmdb_sentences', 'refcoco', 'mevis', 'mevis_v2',
           'long_rvos', 'revos')


def check_generate_options(fmt: str, num_train: Optional[int] = None, num_valid: Optional[int] = None,
                           num_valid_u: Optional[int] = None, num_test: int = 1, num_frames: Optional[int] = None,
                           size: Optional[Sequence[int]] = None) -> None:
    """Refuse counts that the loaders of ``fmt`` refuse, before anything is written: every split a format's
    loader reads needs at least one video (MeViS splits may be empty; a Ref-YTVOS test split of 0 videos is
    written as no test file, which the loader accepts); ``num_frames`` and both sides of ``size`` >= 1,
    ``num_test`` >= 0. None = the format's default.

    Raises:
        ValueError: naming the option as ``generate_synthetic_rvos.py`` spells it (``--num-train 0: ...``).
    """
    if fmt not in FORMATS:
        raise ValueError(f'unknown synthetic format {fmt!r}; expected one of {", ".join(FORMATS)}')
    minimum = 0 if fmt in ('mevis', 'mevis_v2') else 1
    for option, value in (('--num-train', num_train), ('--num-valid', num_valid), ('--num-valid-u', num_valid_u)):
        if value is not None and value < minimum:
            raise ValueError(f'{option} {value}: must be >= {minimum} for {fmt} (its loader refuses an empty '
                             'split)')
    if num_frames is not None and num_frames < 1:
        raise ValueError(f'--num-frames {num_frames}: must be >= 1')
    if fmt == 'revos' and num_frames is not None and num_frames < 4:
        raise ValueError(f'--num-frames {num_frames}: must be >= 4 for revos (objects leave and come back)')
    if num_test < 0:
        raise ValueError(f'--num-test {num_test}: must be >= 0')
    if size is not None and min(size) < 1:
        raise ValueError(f'--size {size[0]} {size[1]}: both must be >= 1')


def _count(value: Optional[int], default: int) -> int:
    """The count given (0 included), else the format's default."""
    return default if value is None else value


def generate(fmt: str, out_dir: str, num_train: Optional[int] = None, num_valid: Optional[int] = None,
             num_valid_u: Optional[int] = None, num_test: int = 1, num_frames: Optional[int] = None,
             size: Optional[Sequence[int]] = None, num_objects: Sequence[int] = (2, 3),
             exit_prob: Optional[float] = None, train_motion_repeats: Optional[int] = None,
             train_same_color_prob: Optional[float] = None, valid_with_gt: bool = True,
             seed: int = 0) -> Tuple[dict, Dict[str, int]]:
    """The synthetic dataset ``fmt`` (one of :data:`FORMATS`) written to ``out_dir`` by its writer
    (``generate_<format>``); what ``generate_synthetic_rvos.py`` runs.

    Counts left None take the format's defaults; ``num_valid`` is the held-out split (A2D: test videos,
    JHMDB: its videos, RefCOCO: val images); ``num_valid_u`` and ``train_motion_repeats``: MeViS only;
    ``num_test``, ``train_same_color_prob``, ``valid_with_gt``: Ref-YTVOS only; ``exit_prob``: Ref-YTVOS
    (default 0) and MeViS (default 0.2); ``num_objects`` (min, max): every format but JHMDB and MeViS
    (the MeViS options apply to ``mevis_v2`` too).
    Options are checked first (:func:`check_generate_options`).

    Returns:
        ``(manifest, counts)``: the writer's manifest and the number of videos / images per split.
    """
    check_generate_options(fmt, num_train=num_train, num_valid=num_valid, num_valid_u=num_valid_u,
                           num_test=num_test, num_frames=num_frames, size=size)
    opt = {k: v for k, v in dict(num_frames=num_frames, size=tuple(size) if size else None).items()
           if v is not None}
    num_objects = tuple(num_objects)
    if fmt == 'ref_youtube_vos':
        manifest = generate_ref_youtube_vos(
            out_dir, num_train=_count(num_train, 8), num_valid=_count(num_valid, 3), num_test=num_test,
            num_objects=num_objects, valid_with_gt=valid_with_gt, exit_prob=exit_prob or 0.0,
            train_same_color_prob=train_same_color_prob, seed=seed, **opt)
        counts = {s: len(manifest[s]) for s in ('train', 'valid', 'test')}
    elif fmt == 'ref_davis17':
        manifest = generate_ref_davis(out_dir, num_valid=_count(num_valid, 2), num_objects=num_objects, seed=seed,
                                      **opt)
        counts = {'valid': len(manifest['valid'])}
    elif fmt == 'a2d_sentences':
        manifest = generate_a2d_sentences(out_dir, num_train=_count(num_train, 3), num_test=_count(num_valid, 2),
                                          num_objects=num_objects, seed=seed, **opt)
        counts = {'videos': len(manifest['videos'])}
    elif fmt == 'jhmdb_sentences':
        manifest = generate_jhmdb_sentences(out_dir, num_videos=_count(num_valid, 3), seed=seed, **opt)
        counts = {'videos': len(manifest['videos'])}
    elif fmt in ('mevis', 'mevis_v2'):  # mevis_v2: soc_mm.datasets.synthetic_mevis_v2, same options
        if exit_prob is not None:
            opt['exit_prob'] = exit_prob
        if train_motion_repeats is not None:
            opt['train_motion_repeats'] = train_motion_repeats
        split_counts = dict(num_train=num_train, num_valid_u=num_valid_u, num_valid=num_valid)
        opt.update({k: v for k, v in split_counts.items() if v is not None})  # 0 is allowed (an empty split)
        if fmt == 'mevis_v2':
            from .synthetic_mevis_v2 import generate_mevis_v2
            manifest = generate_mevis_v2(out_dir, seed=seed, **opt)
        else:
            manifest = generate_mevis(out_dir, seed=seed, **opt)
        counts = {s: len(manifest[s]) for s in ('train', 'valid_u', 'valid')}
    elif fmt == 'long_rvos':  # soc_mm.datasets.synthetic_long_rvos
        from .synthetic_long_rvos import generate_long_rvos
        manifest = generate_long_rvos(out_dir, num_train=_count(num_train, 4), num_valid=_count(num_valid, 2),
                                      num_test=num_test, num_objects=num_objects, seed=seed, **opt)
        counts = {s: len(manifest[s]) for s in ('train', 'valid', 'test')}
    elif fmt == 'revos':  # soc_mm.datasets.synthetic_revos
        from .synthetic_revos import generate_revos
        manifest = generate_revos(out_dir, num_train=_count(num_train, 6), num_valid=_count(num_valid, 3),
                                  num_objects=num_objects, exit_prob=0.3 if exit_prob is None else exit_prob,
                                  seed=seed, **opt)
        counts = {s: len(manifest[s]) for s in ('train', 'valid')}
    else:
        opt.pop('num_frames', None)
        manifest = generate_refcoco(out_dir, num_images=dict(train=_count(num_train, 3), val=_count(num_valid, 2)),
                                    num_objects=num_objects, seed=seed, **opt)
        counts = {'images': len(manifest['images'])}
    return manifest, counts


# ---------------------------------------------------------------------- expressions of other videos
#: what ``make_shuffled_expressions_root`` does per data layout: (meta_expressions.json of the held-out
#: split, paths linked from the data root, folders copied when present), all relative to the root
SHUFFLE_LAYOUTS = {
    'ref_youtube_vos': ('meta_expressions/valid/meta_expressions.json', ('valid', ), ('meta_expressions/test', )),
    'mevis': ('valid_u/meta_expressions.json', ('valid_u/JPEGImages', 'valid_u/mask_dict.json'), ()),
}


def shuffle_expressions_between_videos(videos: Dict[str, dict], seed: int = 0,
                                       where: str = 'meta_expressions.json') -> Dict[str, Dict[str, str]]:
    """Give every video the expression texts of another video, in place.

    The videos (sorted ids, shuffled by ``np.random.default_rng(seed)``) form a cycle; each video's k-th
    expression (by sorted expression id) takes the text (``exp``) of the next video's (k mod n)-th
    expression. Every other field (``obj_id``, ``anno_id``: the referred objects, hence the masks) stays
    the video's own, so a model that reads the text must fail on the result.

    Args:
        videos: ``meta_expressions.json``'s ``videos`` (``{video: {'expressions': {exp_id: {'exp', ...}}}}``).
        seed: seed of the cycle order.
        where: the file the videos come from, for the error message.

    Returns:
        ``{video: {exp_id: new text}}``.
    """
    if len(videos) < 2:
        raise ValueError(f'{where}: shuffling expressions between videos needs at least 2 videos, got {len(videos)}')
    order = sorted(videos)
    np.random.default_rng(seed).shuffle(order)
    texts = {}
    for i, vid in enumerate(order):
        donor = [e['exp'] for _, e in sorted(videos[order[(i + 1) % len(order)]]['expressions'].items())]
        texts[vid] = {}
        for k, (exp_id, exp) in enumerate(sorted(videos[vid]['expressions'].items())):
            exp['exp'] = donor[k % len(donor)]
            texts[vid][exp_id] = exp['exp']
    return texts


def make_shuffled_expressions_root(data_root: str, out_root: str, layout: str,
                                   seed: int = 0) -> Dict[str, Dict[str, str]]:
    """A data root whose held-out expressions come from other videos (``shuffle_expressions_between_videos``).

    ``layout`` (a key of ``SHUFFLE_LAYOUTS``): ``'ref_youtube_vos'`` (the ``valid`` split, its frames linked,
    ``meta_expressions/test`` copied) or ``'mevis'`` (``valid_u``, its frames and ``mask_dict.json`` linked).
    ``out_root`` is replaced. Returns the new texts ``{video: {exp_id: text}}``.
    """
    if layout not in SHUFFLE_LAYOUTS:
        raise ValueError(f'make_shuffled_expressions_root: layout must be one of {sorted(SHUFFLE_LAYOUTS)}, '
                         f'got {layout!r}')
    meta_file, linked, copied = SHUFFLE_LAYOUTS[layout]
    if osp.isdir(out_root):
        shutil.rmtree(out_root)
    os.makedirs(osp.dirname(osp.join(out_root, meta_file)))
    for path in linked:
        os.makedirs(osp.dirname(osp.join(out_root, path)), exist_ok=True)
        os.symlink(osp.abspath(osp.join(data_root, path)), osp.join(out_root, path))
    for path in copied:
        if osp.isdir(osp.join(data_root, path)):
            shutil.copytree(osp.join(data_root, path), osp.join(out_root, path))
    meta = read_json(osp.join(data_root, meta_file), 'make_shuffled_expressions_root meta file')
    texts = shuffle_expressions_between_videos(meta['videos'], seed, where=osp.join(data_root, meta_file))
    with open(osp.join(out_root, meta_file), 'w') as f:
        json.dump(meta, f)
    return texts
