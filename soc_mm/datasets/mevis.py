"""MeViS (ICCV 2023; v2, TPAMI 2025): motion expressions that refer to one object, several, or none."""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.dataset import BaseDataset
from PIL import Image

from soc_mm.registry import DATASETS
from soc_mm.structures.mask import check_rles
from .ref_youtube_vos import sliding_windows
from .utils import (check_dict, check_expression, check_key, check_not_empty, json_key, load_json, log_skips,
                    parse_int, require_path)

MEVIS_LAYOUT = """<data_root>/
  train/JPEGImages/<video>/<frame>.jpg
  train/meta_expressions.json   (MeViS v1, ICCV 2023; meta_expressions_v2.json in MeViS v2, TPAMI 2025)
                                ({"videos": {<video>: {"frames": [<frame>, ...], "expressions":
                                   {<exp_id>: {"exp": <sentence>, "obj_id": [int, ...], "anno_id": [int, ...]}}}}};
                                   empty obj_id/anno_id lists: the expression refers to no object (MeViS v2);
                                   other fields of an expression (v2: its audio) are not read)
  train/mask_dict.json          ({str(anno_id): [COCO RLE {"size": [H, W], "counts": str} or null, one per frame
                                   of the video's "frames" list]})
  valid_u/{JPEGImages, meta_expressions[_v2].json, mask_dict.json}   (offline evaluation, same layout)
  valid/{JPEGImages, meta_expressions[_v2].json}                      (no masks: online evaluation)"""

MEVIS_SPLITS = ('train', 'valid_u', 'valid')
#: the expression file of a split in each MeViS release (v1: ICCV 2023; v2: TPAMI 2025, more no-target and
#: multi-object expressions, expressions also as audio); masks (mask_dict.json) and frames keep their names
MEVIS_META_FILES = {'v1': 'meta_expressions.json', 'v2': 'meta_expressions_v2.json'}
MEVIS_VERSIONS = tuple(MEVIS_META_FILES)


def resolve_mevis_meta_file(path: str, version: Optional[str] = None) -> Tuple[str, Optional[str]]:
    """The ``meta_expressions`` file of a MeViS split and the release it belongs to.

    Args:
        path (str): the file itself, or the split folder (``<data_root>/valid_u``) holding
            ``meta_expressions.json`` (v1) and/or ``meta_expressions_v2.json`` (v2).
        version (str, optional): ``'v1'`` or ``'v2'``; None: the file that is there (a folder holding both
            is an error: name the version).

    Returns:
        ``(file, version)``; for a file given by path, version is ``version`` or what its name says (v2 for a
        name starting with ``meta_expressions_v2``, v1 for ``meta_expressions.json``, else None).

    Raises:
        ValueError: an unknown version, or both files in the folder and no version.
        FileNotFoundError: the file (of the version asked for) is not there; names what was looked for.
    """
    if version is not None and version not in MEVIS_VERSIONS:
        raise ValueError(f'MeViS version must be one of {MEVIS_VERSIONS} or None (detect), got {version!r}')
    if not osp.isdir(path):
        if not osp.isfile(path):
            raise FileNotFoundError(f'MeViS meta_expressions file {path} not found (give the file, or the split '
                                    f'folder holding {" or ".join(MEVIS_META_FILES.values())})')
        name = osp.basename(path)
        named = 'v2' if name.startswith('meta_expressions_v2') else 'v1' if name == MEVIS_META_FILES['v1'] else None
        return path, version or named
    found = {v: osp.join(path, name) for v, name in MEVIS_META_FILES.items() if osp.isfile(osp.join(path, name))}
    if version is not None:
        if version not in found:
            raise FileNotFoundError(f'MeViS {version}: {osp.join(path, MEVIS_META_FILES[version])} not found'
                                    + (f' (the folder has the {", ".join(found)} file)' if found else ''))
        return found[version], version
    if not found:
        raise FileNotFoundError(f'no MeViS expression file in {path}: expected {MEVIS_META_FILES["v1"]} (v1) or '
                                f'{MEVIS_META_FILES["v2"]} (v2)')
    if len(found) > 1:
        raise ValueError(f'{path} holds both {MEVIS_META_FILES["v1"]} (MeViS v1) and {MEVIS_META_FILES["v2"]} '
                         "(MeViS v2): name the release to read (version='v1' or 'v2'; --mevis-version in the tools)")
    (version, file), = found.items()
    return file, version
FRAME_SAMPLINGS = ('consecutive', 'global')
#: train videos with fewer frames are skipped (logged), as the official LMPM loader does.
MIN_TRAIN_VIDEO_FRAMES = 2


def global_frame_indices(num_video_frames: int, anchor: int, num_frames: int,
                         rng: Optional[np.random.RandomState] = None) -> List[int]:
    """Frame indices of a clip spread over the whole video (MeViS baselines' local + global sampling).

    The anchor frame, one neighbour 1-3 frames before and one 1-3 frames after it (clamped to the video;
    only as many as ``num_frames`` allows), then frames drawn without replacement from outside that local
    span (from inside it when the outside has too few). The frames are distinct when the video has at
    least ``num_frames`` frames; a shorter video gives every frame once plus random repeats (as the MeViS
    repository's ReferFormer loader). Sorted (temporal order).

    Args:
        num_video_frames (int): frames of the video (n >= 1).
        anchor (int): index in ``[0, n)`` the clip is built around.
        num_frames (int): clip length T.
        rng: numpy random state (default: the global ``np.random``, seeded by MMEngine per worker).

    Returns:
        list[int]: T indices into the video's frame list.
    """
    rng = np.random if rng is None else rng
    n = num_video_frames
    chosen = [anchor]
    for neighbour in (anchor - rng.randint(1, 4), anchor + rng.randint(1, 4)):
        neighbour = min(max(neighbour, 0), n - 1)
        if len(chosen) < num_frames and neighbour not in chosen:
            chosen.append(neighbour)
    lo, hi = min(chosen), max(chosen)
    outside = [i for i in range(n) if i < lo or i > hi]
    inside = [i for i in range(lo, hi + 1) if i not in chosen]
    for pool in (outside, inside):
        need = num_frames - len(chosen)
        if need <= 0:
            break
        if len(pool) <= need:
            chosen += pool
        else:
            chosen += [pool[i] for i in rng.choice(len(pool), need, replace=False)]
    need = num_frames - len(chosen)
    if need > 0:  # video shorter than the clip: repeat random frames
        chosen += [int(i) for i in rng.randint(0, n, need)]
    return sorted(int(i) for i in chosen)


@DATASETS.register_module()
class MeViSDataset(BaseDataset):
    """MeViS: motion expressions; one expression may refer to several objects, or (v2) to none.

    Every referred object of an expression is one instance of ``gt_instances`` (in ``anno_id`` order;
    N = 0 for a no-target expression); the sample's metainfo ``ref_inst_idx`` is always a list of them
    (here ``[0, ..., N-1]``, ``[]`` for no target; see ``soc_mm.structures.rvos_data_sample``).
    The masks are decoded by ``LoadRLEMasks`` from the RLEs of ``mask_dict.json``, which the dataset
    attaches to each sample as ``mask_rles`` (``[N][T]``, ``None`` where the object is not visible).
    Expressions are lower-cased and whitespace-normalised (as the official loaders).

    Train: per expression, one sample per window of ``num_frames`` frames (``range(0, n, num_frames)``,
    as the official ReferFormer loader; the number of samples does not depend on ``frame_sampling``):

    * ``frame_sampling='consecutive'``: SOC's windows (``sliding_windows``: consecutive, non-overlapping,
      the last one completed); windows where none of the referred objects is visible are skipped (as SOC
      does on Ref-YouTube-VOS; logged). Windows of no-target expressions are kept.
    * ``frame_sampling='global'``: drawn anew each time the sample is read (``global_frame_indices``):
      the window's first frame, a close neighbour on each side and frames spread over the whole video.
      Nothing is skipped (a clip may miss every referred object; its instances are then invisible).

    The MeViS configs should use ``'global'`` (the default): MeViS expressions are defined by motion over
    the whole video ("the bird that flies away first", "the car that stops"), which a window of a few
    consecutive frames (MeViS lists every frame of its videos) often does not show, so the clip would
    not support its own label; the MeViS baselines (the ReferFormer loader of the MeViS repository)
    train on such spread-out clips, and evaluation sees the whole video. ``'consecutive'`` reproduces
    SOC's Ref-YouTube-VOS training for comparison.

    Train videos with fewer than 2 frames are skipped (logged), as the official LMPM loader does; videos
    shorter than ``num_frames`` are padded (consecutive: the last frame repeated, as SOC; global: every
    frame once plus random repeats, as the ReferFormer loader).

    valid_u / valid: the whole video, one sample per expression, ``frame_ids`` = every frame in the
    order of ``meta_expressions.json``. Metainfo for the metrics: ``video_id``, ``exp_id``,
    ``frame_ids``, ``anno_ids`` (the expression's ``anno_id`` list; ``[]`` = no target; None in
    ``valid`` when the file gives none). valid_u samples carry the masks; with ``PackRVOSInputs(
    pack_ori_gt_masks=True)`` also ``ori_gt_masks`` bool ``[T, H0, W0]``, the union of the referred
    objects per frame (all False for a no-target expression). ``valid`` has no masks.

    Errors (at load time) name the file, video, expression and field: the checks of
    ``soc_mm.datasets.utils`` (a non-empty ``exp`` string, dict/list fields, integer ids), a frame list
    that is not sorted and unique or disagrees with the ``JPEGImages`` folder, ``obj_id``/``anno_id``
    lists of different lengths, an ``anno_id`` listed twice in an expression, missing from
    ``mask_dict.json`` or used in two videos, an
    RLE list whose length is not the video's frame count, an RLE that is not ``{"size": [H, W],
    "counts": str}`` / null, whose size is not the frames' size or whose counts do not cover exactly
    H * W pixels (``soc_mm.structures.mask.check_rle``, the check of the evaluator too), and a key
    repeated anywhere in either json file.

    MeViS v1 (ICCV 2023) and v2 (TPAMI 2025) have the same layout and fields; v2 names the expression file
    ``meta_expressions_v2.json`` and has more expressions that refer to several objects or to none (empty
    ``obj_id``/``anno_id`` lists, N = 0 here). v2 also gives every expression as audio: it is not read (any
    field of an expression other than ``exp``, ``obj_id`` and ``anno_id``, and any file of the split other
    than the frames and the two json files, is ignored). ``version`` picks the file; by default the one in
    the split folder (both there: an error asking for ``version``). The samples' metainfo ``mevis_version``
    says which was read (None for an explicit ``meta_file_name`` that names neither).

    Args:
        data_root (str): the ``mevis`` folder (layout: ``MEVIS_LAYOUT``).
        split (str): ``'train'``, ``'valid_u'`` or ``'valid'``.
        version (str, optional): ``'v1'`` or ``'v2'``; None: detected from the split folder.
        meta_file_name (str, optional): the expression file's name in the split folder, instead of the
            version's (e.g. a renamed copy).
        num_frames (int): clip length T for ``split='train'``.
        frame_sampling (str): ``'global'`` or ``'consecutive'`` (train only; see above).
        load_gt (bool, optional): read ``mask_dict.json``. ``None``: True for train and valid_u, False
            for valid (which has no masks: True is then an error).
        img_suffix (str): frame file extension.
    """
    METAINFO = dict(classes=('object', ), dataset_name='mevis')
    LAYOUT = MEVIS_LAYOUT

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 num_frames: int = 8,
                 frame_sampling: str = 'global',
                 load_gt: Optional[bool] = None,
                 img_suffix: str = '.jpg',
                 version: Optional[str] = None,
                 meta_file_name: Optional[str] = None,
                 **kwargs):
        name = type(self).__name__
        if version is not None and version not in MEVIS_VERSIONS:
            raise ValueError(f'{name}: version must be one of {MEVIS_VERSIONS} or None (detected from the split '
                             f'folder), got {version!r}')
        if split not in MEVIS_SPLITS:
            raise ValueError(f'{name}: split must be one of {MEVIS_SPLITS}, got {split!r}')
        if frame_sampling not in FRAME_SAMPLINGS:
            raise ValueError(f'{name}: frame_sampling must be one of {FRAME_SAMPLINGS}, got {frame_sampling!r}')
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f'{name}: num_frames must be an integer >= 1, got {num_frames!r}')
        self.split = split
        self.num_frames = num_frames
        self.frame_sampling = frame_sampling
        self.load_gt = split != 'valid' if load_gt is None else bool(load_gt)
        self.img_suffix = img_suffix
        self.version = version
        self.meta_file_name = meta_file_name
        self._meta_file: Optional[str] = None
        self._video_frames: Dict[str, List[str]] = {}
        self._anno_rles: Dict[str, bytes] = {}  # str(anno_id) -> json of its per-frame RLE list
        kwargs.setdefault('test_mode', split != 'train')
        super().__init__(data_root=data_root, **kwargs)

    # ------------------------------------------------------------------ file paths
    @property
    def meta_file(self) -> str:
        """The split's expression file (``meta_file_name``, or the ``version``'s, or the one in the folder;
        :meth:`resolve_meta_file` sets :attr:`version` when it detects it)."""
        if self._meta_file is None:
            self.resolve_meta_file()
        return self._meta_file

    def resolve_meta_file(self) -> str:
        split_dir = osp.join(self.data_root, self.split)
        if self.meta_file_name is not None:
            self._meta_file, named = resolve_mevis_meta_file(osp.join(split_dir, self.meta_file_name),
                                                             self.version)
            self.version = self.version or named
        elif osp.isdir(split_dir):
            try:
                self._meta_file, self.version = resolve_mevis_meta_file(split_dir, self.version)
            except (FileNotFoundError, ValueError) as error:
                raise type(error)(f'{type(self).__name__} ({self.split} expressions): {error}\nExpected '
                                  f'layout:\n{self.LAYOUT}') from None
        else:  # the missing folder is reported by load_data_list with the layout
            self._meta_file = osp.join(split_dir, MEVIS_META_FILES[self.version or 'v1'])
        return self._meta_file

    @property
    def mask_file(self) -> str:
        return osp.join(self.data_root, self.split, 'mask_dict.json')

    # ------------------------------------------------------------------ checks of the annotation files
    def _check_video(self, video_id: str, vid: dict) -> Tuple[List[str], Dict[str, dict]]:
        """Checked ``(frames, expressions)`` of one video entry of ``meta_expressions.json``; expressions
        as ``{exp_id: {'exp': cleaned text, 'obj_ids': [int] | None, 'anno_ids': [int] | None}}``."""
        path, field = self.meta_file, f'videos[{json_key(video_id)}]'
        check_dict(vid, path, field, 'a dict with "frames" and "expressions"')
        frames = check_key(vid, 'frames', path, field)
        if not isinstance(frames, list) or not all(isinstance(f, str) for f in frames):
            raise ValueError(f'{path}: field {field}["frames"] must be a list of frame names (str), got '
                             f'{type(frames).__name__} {str(frames)[:60]}')
        check_not_empty(frames, path, f'{field}["frames"]', 'the names of the video\'s frames')
        if len(set(frames)) != len(frames) or frames != sorted(frames):
            raise ValueError(f'{path}: field {field}["frames"] must list each frame once, sorted (mask_dict.json '
                             f'gives one RLE per frame in this order), got {frames[:6]}...')
        exps = check_dict(check_key(vid, 'expressions', path, field), path, f'{field}["expressions"]',
                          'a dict {<exp_id>: {"exp": ..., "obj_id": [...], "anno_id": [...]}}')
        checked = {}
        for exp_id, exp in exps.items():
            exp_field = f'{field}["expressions"][{json_key(exp_id)}]'
            check_dict(exp, path, exp_field, 'a dict {"exp": <sentence>, "obj_id": [int], "anno_id": [int]}')
            text = check_expression(check_key(exp, 'exp', path, exp_field), path, video_id, exp_id)
            ids = {}
            for key in ('obj_id', 'anno_id'):
                if key not in exp and not self.load_gt:
                    ids[key] = None  # the valid split may give the expression only
                    continue
                value = check_key(exp, key, path, exp_field)
                if not isinstance(value, list):
                    raise ValueError(f'{path}: field {exp_field}[{json_key(key)}] must be a list of integers '
                                     f'([] = no referred object), got {type(value).__name__} {str(value)[:60]}')
                ids[key] = [parse_int(v, path, f'{exp_field}[{json_key(key)}][{i}]') for i, v in enumerate(value)]
            if ids['anno_id'] is not None and len(set(ids['anno_id'])) != len(ids['anno_id']):
                raise ValueError(f'{path}: field {exp_field}["anno_id"] lists an annotation twice: {ids["anno_id"]} '
                                 '(one entry per referred object)')
            if ids['obj_id'] is not None and ids['anno_id'] is not None and \
                    len(ids['obj_id']) != len(ids['anno_id']):
                raise ValueError(f'{path}: video {video_id!r} expression {exp_id!r}: obj_id {ids["obj_id"]} and '
                                 f'anno_id {ids["anno_id"]} must have the same length (one anno_id per object)')
            checked[str(exp_id)] = dict(exp=text, obj_ids=ids['obj_id'], anno_ids=ids['anno_id'])
        return frames, checked

    def _check_frame_dir(self, frame_dir: str, video_id: str, frames: Sequence[str]) -> None:
        """The JPEG folder holds exactly the listed frames (the masks are indexed by the frame list)."""
        require_path(frame_dir, f'{type(self).__name__}: frames of video {video_id!r}', self.LAYOUT, True)
        present = {f[:-len(self.img_suffix)] for f in os.listdir(frame_dir) if f.endswith(self.img_suffix)}
        missing = [f for f in frames if f not in present]
        extra = sorted(present.difference(frames))
        if missing or extra:
            raise ValueError(
                f'{type(self).__name__}: video {video_id!r}: the frame list of {self.meta_file} disagrees with '
                f'{frame_dir}: {len(frames)} frames listed, {len(missing)} of them without a '
                f'{self.img_suffix!r} file (e.g. {missing[:3]}), {len(extra)} files not listed (e.g. '
                f'{extra[:3]})\nExpected layout:\n{self.LAYOUT}')

    def _frame_size(self, frame_dir: str, frame: str, video_id: str) -> Tuple[int, int]:
        path = osp.join(frame_dir, frame + self.img_suffix)
        try:
            with Image.open(path) as img:
                width, height = img.size
        except Exception as e:  # noqa: BLE001 - any decoding failure is reported with its video/frame
            raise ValueError(f'{type(self).__name__}: video {video_id!r} frame {frame!r}: cannot read {path} '
                             f'({e})') from e
        return height, width

    def _check_rles(self, rles, anno_id: int, video_id: str, exp_id: str, frames: Sequence[str],
                    frame_size: Tuple[int, int], size_from: str) -> List[bool]:
        """Check one ``mask_dict.json`` entry; returns per frame whether the object is annotated there."""
        where = (f'{self.mask_file}: mask_dict[{json_key(anno_id)}] (anno_id {anno_id} of video {video_id!r} '
                 f'expression {exp_id!r})')
        if not isinstance(rles, list) or len(rles) != len(frames):
            got = f'{len(rles)} entries' if isinstance(rles, list) else f'{type(rles).__name__} {str(rles)[:40]}'
            raise ValueError(f'{where}: expected a list of {len(frames)} entries (one COCO RLE or null per frame '
                             f'of the video), got {got}')
        present = [t for t, rle in enumerate(rles) if rle is not None]  # null: the object is not in the frame
        check_rles([rles[t] for t in present], lambda i: f'{where}, frame {frames[present[i]]!r} (index {present[i]})',
                   size=frame_size, size_from=size_from)  # all frames of the object in one pass
        return [rle is not None for rle in rles]

    # ------------------------------------------------------------------ data list
    def load_data_list(self) -> List[dict]:
        name = type(self).__name__
        require_path(self.data_root, f'{name} data_root', self.LAYOUT, is_dir=True)
        img_root = require_path(osp.join(self.data_root, self.split, 'JPEGImages'),
                                f'{name} ({self.split} frames)', self.LAYOUT, is_dir=True)
        data = load_json(self.meta_file, f'{name} ({self.split} expressions)', self.LAYOUT)
        check_dict(data, self.meta_file, '<top level>', 'a dict with the key "videos"')
        videos = check_dict(check_key(data, 'videos', self.meta_file, '<top level>'), self.meta_file, 'videos',
                            'a dict {<video_id>: {"frames": [...], "expressions": {...}}}')
        check_not_empty(videos, self.meta_file, 'videos', 'at least one video')
        mask_dict = {}
        if self.load_gt:
            if self.split == 'valid':
                raise ValueError(f'{name}: the MeViS valid split has no masks (load_gt=True); evaluate it on the '
                                 'server, or use valid_u for local evaluation')
            mask_dict = check_dict(load_json(self.mask_file, f'{name} ({self.split} masks)', self.LAYOUT),
                                   self.mask_file, '<top level>', 'a dict {str(anno_id): [RLE or null per frame]}')
        self._video_frames, self._anno_rles = {}, {}
        anno_video: Dict[str, str] = {}
        data_list, short_videos, empty_windows = [], [], []
        num_windows = 0
        for video_id in sorted(videos):
            frames, expressions = self._check_video(video_id, videos[video_id])
            frame_dir = osp.join(img_root, video_id)
            self._check_frame_dir(frame_dir, video_id, frames)
            if self.split == 'train' and len(frames) < MIN_TRAIN_VIDEO_FRAMES:
                short_videos.append(video_id)
                continue
            self._video_frames[video_id] = frames
            frame_size = size_from = None
            visible: Dict[str, List[bool]] = {}
            for exp_id in sorted(expressions, key=lambda k: (len(k), k)):
                exp = expressions[exp_id]
                anno_ids = exp['anno_ids']
                if self.load_gt:
                    for anno_id in anno_ids:
                        key = str(anno_id)
                        if key not in mask_dict:
                            raise ValueError(
                                f'{self.mask_file}: no key {json_key(key)} for anno_id {anno_id} of video '
                                f'{video_id!r} expression {exp_id!r} (field videos[{json_key(video_id)}]'
                                f'["expressions"][{json_key(exp_id)}]["anno_id"] of {self.meta_file})')
                        if anno_video.setdefault(key, video_id) != video_id:
                            raise ValueError(f'{self.meta_file}: anno_id {anno_id} is used by videos '
                                             f'{anno_video[key]!r} and {video_id!r} (expression {exp_id!r}); '
                                             'annotation ids are unique within a split')
                        if key not in visible:
                            if frame_size is None:
                                frame_size = self._frame_size(frame_dir, frames[0], video_id)
                                size_from = osp.join(frame_dir, frames[0] + self.img_suffix)
                            visible[key] = self._check_rles(mask_dict[key], anno_id, video_id, exp_id, frames,
                                                            frame_size, size_from)
                            self._anno_rles[key] = json.dumps(mask_dict[key]).encode()
                info = dict(dataset=self.metainfo['dataset_name'], mevis_version=self.version, video_id=video_id,
                            exp_id=exp_id, expression=exp['exp'], frame_dir=frame_dir, img_suffix=self.img_suffix,
                            anno_ids=anno_ids, ref_obj_ids=exp['obj_ids'], valid_frame_idx=None,
                            mask_file=self.mask_file if self.load_gt else None)
                if self.split != 'train':
                    data_list.append(dict(info, frame_ids=list(frames), frame_inds=list(range(len(frames)))))
                    continue
                windows = sliding_windows(list(range(len(frames))), self.num_frames)
                for start, window in zip(range(0, len(frames), self.num_frames), windows):
                    num_windows += 1
                    if self.frame_sampling == 'global':
                        data_list.append(dict(info, anchor=start))
                        continue
                    if self.load_gt and anno_ids and \
                            not any(visible[str(a)][i] for a in anno_ids for i in window):
                        empty_windows.append(f'{video_id}/exp {exp_id}/{frames[window[0]]}')
                        continue
                    data_list.append(dict(info, frame_ids=[frames[i] for i in window], frame_inds=window))
        log_skips(name, f'train videos with fewer than {MIN_TRAIN_VIDEO_FRAMES} frames (as the official loader)',
                  short_videos, len(videos))
        log_skips(name, 'windows where none of the referred objects appears (as SOC)', empty_windows, num_windows)
        return data_list

    # ------------------------------------------------------------------ samples
    def get_data_info(self, idx: int) -> dict:
        """Data info of sample ``idx``; ``frame_sampling='global'`` train samples draw their frames here
        (``frame_ids`` and ``frame_inds``, indices into the video's frame list)."""
        info = super().get_data_info(idx)
        if 'anchor' in info:
            frames = self._video_frames[info['video_id']]
            inds = global_frame_indices(len(frames), info['anchor'], self.num_frames)
            info['frame_inds'] = inds
            info['frame_ids'] = [frames[i] for i in inds]
        return info

    def anno_rles(self, anno_id) -> list:
        """The ``mask_dict.json`` entry of ``anno_id``: one COCO RLE dict or None per frame of its video."""
        return json.loads(self._anno_rles[str(anno_id)])

    def prepare_data(self, idx: int):
        """Data info + the referred objects' RLEs of the clip's frames, through the pipeline.

        Adds ``mask_rles`` (``[N][T]``: RLE dict or None, N = ``len(anno_ids)``) and ``ref_inst_idx``
        (the list ``[0, ..., N-1]``) when the masks are loaded.
        """
        info = self.get_data_info(idx)
        if self.load_gt:
            all_rles = [self.anno_rles(a) for a in info['anno_ids']]
            info['mask_rles'] = [[rles[i] for i in info['frame_inds']] for rles in all_rles]
            info['ref_inst_idx'] = list(range(len(all_rles)))
        return self.pipeline(info)
