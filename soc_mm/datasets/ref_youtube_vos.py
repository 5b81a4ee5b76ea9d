"""Refer-YouTube-VOS (and the Ref-YTVOS layout shared by Ref-DAVIS17)."""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Set

from mmengine.dataset import BaseDataset
from mmengine.logging import MMLogger
from PIL import Image

from soc_mm.registry import DATASETS
from .utils import (check_dict, check_expression, check_key, check_not_empty, first_repeated, json_key, load_json,
                    log_skips, parse_int, require_path)

# The official category order (index = label id, 65 classes).
YTVOS_CATEGORIES = (
    'airplane', 'ape', 'bear', 'bike', 'bird', 'boat', 'bucket', 'bus', 'camel', 'cat', 'cow', 'crocodile',
    'deer', 'dog', 'dolphin', 'duck', 'eagle', 'earless_seal', 'elephant', 'fish', 'fox', 'frisbee', 'frog',
    'giant_panda', 'giraffe', 'hand', 'hat', 'hedgehog', 'horse', 'knife', 'leopard', 'lion', 'lizard',
    'monkey', 'motorbike', 'mouse', 'others', 'owl', 'paddle', 'parachute', 'parrot', 'penguin', 'person',
    'plant', 'rabbit', 'raccoon', 'sedan', 'shark', 'sheep', 'sign', 'skateboard', 'snail', 'snake',
    'snowboard', 'squirrel', 'surfboard', 'tennis_racket', 'tiger', 'toilet', 'train', 'truck', 'turtle',
    'umbrella', 'whale', 'zebra')
YTVOS_CATEGORY_TO_LABEL = {name: i for i, name in enumerate(YTVOS_CATEGORIES)}

REF_YTVOS_LAYOUT = """<data_root>/
  train/JPEGImages/<video>/<frame>.jpg
  train/Annotations/<video>/<frame>.png      (palette PNG, pixel value = object id, 0 = background)
  train/meta.json                            ({"videos": {<video>: {"objects": {<obj_id>: {"category": ...}}}}})
  valid/JPEGImages/<video>/<frame>.jpg       (valid/Annotations/<video>/<frame>.png optional: full GT)
  meta_expressions/{train,valid,test}/meta_expressions.json
      ({"videos": {<video>: {"frames": [...], "expressions": {<exp_id>: {"exp": ..., "obj_id": ...}}}}})"""


def read_palette_ids(path: str, video_id: str, frame_id: str) -> Set[int]:
    """Object ids present in one palette mask (fast: palette histogram, no decoding to numpy)."""
    try:
        with Image.open(path) as img:
            if img.mode not in ('P', 'L'):
                raise ValueError(f'mode {img.mode!r}, expected a palette ("P") or grey ("L") PNG')
            colors = img.getcolors(256)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoding failure is reported with its video/frame
        raise ValueError(f'corrupt mask of video {video_id!r} frame {frame_id!r}: {path} ({e})') from e
    return {int(v) for _, v in colors if v != 0}


def sliding_windows(frames: Sequence[str], num_frames: int) -> List[List[str]]:
    """Non-overlapping windows of ``num_frames``; the last one is completed as SOC does.

    A short last window is replaced by the last ``num_frames`` frames, or, for a video shorter than
    ``num_frames``, padded by repeating its last frame.
    """
    frames = list(frames)
    windows = [frames[i:i + num_frames] for i in range(0, len(frames), num_frames)]
    if len(windows[-1]) < num_frames:
        if len(frames) >= num_frames:
            windows[-1] = frames[-num_frames:]
        else:
            windows[-1] = windows[-1] + [windows[-1][-1]] * (num_frames - len(windows[-1]))
    return windows


@DATASETS.register_module()
class RefYouTubeVOSDataset(BaseDataset):
    """Refer-YouTube-VOS: one sample per (expression, clip).

    Train: windows of ``num_frames`` frames per expression (SOC's sampling: consecutive non-overlapping
    windows over the annotated frames, last window completed); windows where the referred object never
    appears are skipped (SOC does the same; the count is logged). Every object of the video is an
    instance, the referred one marked by ``ref_obj_id``. Valid: the competition "valid" videos minus the
    "test" ones (202 with the real files), whole videos, one sample per expression.

    Args:
        data_root (str): dataset root (layout: ``REF_YTVOS_LAYOUT``).
        split (str): ``'train'`` or ``'valid'``.
        num_frames (int): clip length for ``split='train'``.
        load_gt (bool, optional): attach mask annotations. ``None``: always for train; for valid only
            videos whose ``Annotations`` folder has every frame (others are counted in the log).
        with_category (bool, optional): read category labels (65 classes) from ``<split>/meta.json``.
            ``None`` = True for train, False otherwise (labels are then 0).
        strict (bool): raise instead of skipping (with a logged count) expressions whose object id
            is absent from the video's masks.
        img_suffix (str): frame file extension.
        presence_cache (str, optional): json file caching which object ids each mask contains (the scan
            reads every PNG once: minutes for the real train split); written after the first scan.
    """
    METAINFO = dict(classes=YTVOS_CATEGORIES, dataset_name='ref_youtube_vos')
    LAYOUT = REF_YTVOS_LAYOUT

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 num_frames: int = 8,
                 load_gt: Optional[bool] = None,
                 with_category: Optional[bool] = None,
                 strict: bool = False,
                 img_suffix: str = '.jpg',
                 presence_cache: Optional[str] = None,
                 **kwargs):
        if split not in ('train', 'valid'):
            raise ValueError(f"{type(self).__name__}: split must be 'train' or 'valid', got {split!r}")
        if num_frames < 1:
            raise ValueError(f'{type(self).__name__}: num_frames must be >= 1, got {num_frames}')
        self.split = split
        self.num_frames = num_frames
        self.load_gt = True if load_gt is None and split == 'train' else load_gt
        self.with_category = (split == 'train') if with_category is None else with_category
        self.strict = strict
        self.img_suffix = img_suffix
        self.presence_cache = presence_cache
        kwargs.setdefault('test_mode', split != 'train')
        super().__init__(data_root=data_root, **kwargs)

    # ------------------------------------------------------------------ reading the annotation files
    def _expressions(self, split: str) -> Dict[str, dict]:
        """The ``"videos"`` dict of ``meta_expressions/<split>/meta_expressions.json`` (checked: a non-empty
        dict of per-video dicts; the entries themselves are checked by ``_check_video``)."""
        path = osp.join(self.data_root, 'meta_expressions', split, 'meta_expressions.json')
        data = load_json(path, f'{type(self).__name__} ({split} expressions)', self.LAYOUT)
        check_dict(data, path, '<top level>', 'a dict with the key "videos"')
        if 'videos' not in data:
            raise ValueError(f'{path}: expected a top-level "videos" key, found {list(data)[:5]}')
        videos = check_dict(data['videos'], path, 'videos', 'a dict {<video_id>: {"frames": [...], '
                            '"expressions": {<exp_id>: {"exp": ..., "obj_id": ...}}}}')
        check_not_empty(videos, path, 'videos', 'at least one video')
        return videos

    def _check_video(self, path: str, video_id: str, vid: dict) -> tuple:
        """Checked ``(frames, expressions)`` of one video entry of a meta_expressions file: frames a non-empty
        list of frame names (str), expressions a dict of dicts, each with a non-empty ``"exp"`` string and,
        when present, an integer ``"obj_id"`` (int or decimal string; absent in the competition test split)."""
        field = f'videos[{json_key(video_id)}]'
        check_dict(vid, path, field, 'a dict with "frames" and "expressions"')
        for key in ('frames', 'expressions'):
            check_key(vid, key, path, field)
        frames = vid['frames']
        if not isinstance(frames, list) or not all(isinstance(f, str) for f in frames):
            raise ValueError(f'{path}: field {field}["frames"] must be a list of frame names (str), got '
                             f'{type(frames).__name__} {str(frames)[:60]}')
        if not frames:
            raise ValueError(f'{path}: video {video_id!r} lists no frames (field {field}["frames"] is empty)')
        if first_repeated(frames) is not None:
            raise ValueError(f'{path}: field {field}["frames"] lists frame {first_repeated(frames)!r} twice (each '
                             'frame would be read and scored twice)')
        exps = check_dict(vid['expressions'], path, f'{field}["expressions"]',
                          'a dict {<exp_id>: {"exp": ..., "obj_id": ...}}')
        checked = {}
        for exp_id, exp in exps.items():
            exp_field = f'{field}["expressions"][{json_key(exp_id)}]'
            check_dict(exp, path, exp_field, 'a dict {"exp": <sentence>, "obj_id": <int>}')
            text = check_expression(check_key(exp, 'exp', path, exp_field), path, video_id, exp_id)
            obj_id = exp.get('obj_id')
            if obj_id is not None:
                obj_id = parse_int(obj_id, path, f'{exp_field}["obj_id"]')
            checked[exp_id] = dict(exp, exp=text, obj_id=obj_id)
        return sorted(frames), checked

    def _split_videos(self) -> Dict[str, dict]:
        videos = self._expressions(self.split)
        if self.split != 'valid':
            return videos
        test_path = osp.join(self.data_root, 'meta_expressions', 'test', 'meta_expressions.json')
        logger = MMLogger.get_current_instance()
        if osp.isfile(test_path):
            test_ids = set(self._expressions('test'))
            videos = {k: v for k, v in videos.items() if k not in test_ids}
            if not videos:
                raise ValueError(f'{type(self).__name__}: every video of meta_expressions/valid is also in '
                                 f'{test_path}: no valid video left (expected the valid split to list the '
                                 'valid and the test videos)')
            logger.info(f'{type(self).__name__}: {len(videos)} valid videos after removing '
                        f'{len(test_ids)} test videos (202 expected with the real files)')
        else:
            logger.warning(f'{type(self).__name__}: {test_path} not found: using all {len(videos)} '
                           'videos of meta_expressions/valid (no test videos removed)')
        return videos

    def _categories(self) -> Dict[str, dict]:
        path = osp.join(self.data_root, self.split, 'meta.json')
        data = load_json(path, f'{type(self).__name__} ({self.split} categories, with_category=True)',
                         self.LAYOUT)
        check_dict(data, path, '<top level>', 'a dict with the key "videos"')
        return check_dict(data.get('videos', {}), path, 'videos',
                          'a dict {<video_id>: {"objects": {<obj_id>: {"category": ...}}}}')

    def _check_frames(self, frame_dir: str, video_id: str, frames: Sequence[str]) -> None:
        require_path(frame_dir, f'{type(self).__name__}: frames of video {video_id!r}', self.LAYOUT, True)
        present = {osp.splitext(f)[0] for f in os.listdir(frame_dir) if f.endswith(self.img_suffix)}
        missing = [f for f in frames if f not in present]
        if missing:
            raise FileNotFoundError(
                f'{type(self).__name__}: video {video_id!r} has fewer frames than its metadata: '
                f'{len(frames)} listed in meta_expressions, {len(missing)} missing in {frame_dir} '
                f'(e.g. {missing[:3]} with suffix {self.img_suffix!r})\nExpected layout:\n{self.LAYOUT}')

    def _scan_masks(self, mask_dir: str, video_id: str, frames: Sequence[str]) -> Dict[str, Set[int]]:
        """Object ids present per frame (one PNG read per frame, or the presence cache)."""
        cached = self._cache.get(video_id, {})
        if all(f in cached for f in frames):
            return {f: set(cached[f]) for f in frames}
        ids = {}
        for f in frames:
            path = osp.join(mask_dir, f'{f}.png')
            if not osp.isfile(path):
                raise FileNotFoundError(f'{type(self).__name__}: mask of video {video_id!r} frame {f!r} not '
                                        f'found: {path}\nExpected layout:\n{self.LAYOUT}')
            ids[f] = read_palette_ids(path, video_id, f)
        self._cache[video_id] = {f: sorted(v) for f, v in ids.items()}
        self._cache_dirty = True
        return ids

    def _has_full_gt(self, mask_dir: str, frames: Sequence[str]) -> bool:
        if not osp.isdir(mask_dir):
            return False
        present = {osp.splitext(f)[0] for f in os.listdir(mask_dir) if f.endswith('.png')}
        return all(f in present for f in frames)

    # ------------------------------------------------------------------ data list
    def load_data_list(self) -> List[dict]:
        name = type(self).__name__
        require_path(self.data_root, f'{name} data_root', self.LAYOUT, is_dir=True)
        img_root = require_path(osp.join(self.data_root, self.split, 'JPEGImages'),
                                f'{name} ({self.split} frames)', self.LAYOUT, is_dir=True)
        ann_root = osp.join(self.data_root, self.split, 'Annotations')
        if self.load_gt:
            require_path(ann_root, f'{name} ({self.split} masks, load_gt=True)', self.LAYOUT, is_dir=True)
        videos = self._split_videos()
        exp_path = osp.join(self.data_root, 'meta_expressions', self.split, 'meta_expressions.json')
        self._cache, self._cache_dirty = {}, False
        if self.presence_cache and osp.isfile(self.presence_cache):
            self._cache = check_dict(load_json(self.presence_cache, f'{name} presence_cache', self.LAYOUT),
                                     self.presence_cache, '<top level>',
                                     'a dict {<video_id>: {<frame>: [object ids]}} (delete the file to rebuild it)')
        categories = self._categories() if self.with_category else {}
        data_list, missing_obj, skipped_windows, no_gt = [], [], [], []
        num_windows = num_exps = 0
        for video_id in sorted(videos):
            frames, expressions = self._check_video(exp_path, video_id, videos[video_id])
            frame_dir = osp.join(img_root, video_id)
            self._check_frames(frame_dir, video_id, frames)
            mask_dir = osp.join(ann_root, video_id)
            has_gt = bool(self.load_gt) or (self.load_gt is None and self._has_full_gt(mask_dir, frames))
            if self.load_gt is None and not has_gt:
                no_gt.append(video_id)
            presence = self._scan_masks(mask_dir, video_id, frames) if has_gt else {}
            obj_ids = sorted(set().union(*presence.values())) if has_gt else []
            labels = [self._label(categories, video_id, o) for o in obj_ids]
            windows = sliding_windows(frames, self.num_frames) if self.split == 'train' else [frames]
            for exp_id in sorted(expressions, key=lambda k: (len(k), k)):
                exp = expressions[exp_id]
                num_exps += 1
                ref_obj_id = exp['obj_id']
                if has_gt and ref_obj_id not in obj_ids:
                    msg = f'{video_id}/exp {exp_id} (obj_id {ref_obj_id}, ids in masks {obj_ids})'
                    if self.strict:
                        raise ValueError(f'{name}: expression object id absent from the masks: {msg}')
                    missing_obj.append(msg)
                    continue
                for window in windows:
                    num_windows += 1
                    if has_gt and self.split == 'train' and \
                            not any(ref_obj_id in presence[f] for f in window):
                        skipped_windows.append(f'{video_id}/exp {exp_id}/{window[0]}')
                        continue
                    data_list.append(dict(
                        dataset=self.metainfo['dataset_name'], video_id=video_id, exp_id=str(exp_id),
                        expression=exp['exp'], frame_ids=list(window),
                        frame_dir=frame_dir, img_suffix=self.img_suffix,
                        mask_dir=mask_dir if has_gt else None, obj_ids=obj_ids, gt_labels=labels,
                        ref_obj_id=ref_obj_id, valid_frame_idx=None, **self._extra_info(exp_id, exp)))
        log_skips(name, 'expressions whose object id is absent from the masks', missing_obj, num_exps)
        log_skips(name, 'windows where the referred object never appears (as SOC)', skipped_windows,
                  num_windows)
        if self.presence_cache and self._cache_dirty:
            tmp = f'{self.presence_cache}.{os.getpid()}.tmp'
            with open(tmp, 'w') as f:
                json.dump(self._cache, f)
            os.replace(tmp, self.presence_cache)  # atomic: several ranks may write it
        if no_gt:
            MMLogger.get_current_instance().info(
                f'{name}: {len(no_gt)} {self.split} videos have no complete Annotations (no GT loaded)')
        return data_list

    def _label(self, categories: Dict[str, dict], video_id: str, obj_id: int) -> int:
        if not self.with_category:
            return 0
        try:
            category = categories[video_id]['objects'][str(obj_id)]['category']
        except (KeyError, TypeError):
            raise ValueError(f'{type(self).__name__}: {self.split}/meta.json has no category for video '
                             f'{video_id!r} object {obj_id} (expected the field videos[{json_key(video_id)}]'
                             f'["objects"][{json_key(obj_id)}]["category"])') from None
        if category not in YTVOS_CATEGORY_TO_LABEL:
            raise ValueError(f'{type(self).__name__}: unknown category {category!r} (video {video_id!r}, '
                             f'object {obj_id}); expected one of the 65 YouTube-VOS categories')
        return YTVOS_CATEGORY_TO_LABEL[category]

    def _extra_info(self, exp_id: str, exp: dict) -> dict:
        """Dataset-specific metainfo of one expression (none for Ref-YTVOS)."""
        return {}
