"""ReVOS (VISA, ECCV 2024): referring and reasoning expressions (and expressions that refer to nothing) over
videos from several sources, one or several objects per expression."""
import os
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from mmengine.dataset import BaseDataset
from PIL import Image

from soc_mm.registry import DATASETS
from soc_mm.structures.mask import check_rles
from .mevis import FRAME_SAMPLINGS, global_frame_indices
from .ref_youtube_vos import sliding_windows
from .utils import (check_dict, check_expression, check_key, check_not_empty, json_key, load_json, log_skips,
                    parse_int, require_path)

REVOS_LAYOUT = """<data_root>/   (the ReVOS folder)
  JPEGImages/<video>/<frame>.jpg     (video names may contain '/', e.g. UVO/all/-fbscFfkh4M: nested folders)
  meta_expressions_train_.json      ({"videos": {<video>: {"vid_id": int, "height": H, "width": W,
                                       "frames": [<frame>, ...], "expressions": {<exp_id>: {"exp": <sentence>,
                                       "obj_id": [int, ...], "anno_id": [int, ...], "type_id": 0 | 1 | 2}}}}};
                                       type_id 0 referring, 1 reasoning, 2 no target (anno_id may then be []))
  meta_expressions_valid_.json      (the same, for the valid videos)
  mask_dict.json                    ({str(anno_id): [COCO RLE {"size": [H, W], "counts": str} or null, one per
                                       frame of the video's "frames" list]}, train and valid)
  mask_dict_foreground.json         ({<video>: {"masks_rle": [COCO RLE per frame], "foreground_ratio":
                                       [float per frame]}}: the union of the objects of the video's expressions;
                                       read by the robustness score R of the evaluation)"""

REVOS_SPLITS = ('train', 'valid')
REVOS_TYPE_IDS = (0, 1, 2)
#: train videos with fewer frames are skipped (logged), as VISA's loader does.
MIN_TRAIN_VIDEO_FRAMES = 2


def revos_meta_file(data_root: str, split: str) -> str:
    """``<data_root>/meta_expressions_<split>_.json`` (the release's names end in ``_``)."""
    return osp.join(data_root, f'meta_expressions_{split}_.json')


def revos_foreground_dict(videos: Mapping[str, dict], mask_dict: Mapping[str, Any],
                          where: str = 'meta_expressions') -> Dict[str, dict]:
    """The foreground of every video (``mask_dict_foreground.json``), as VISA's
    ``tools/generate_foreground_mask.py`` computes it.

    Per video: the objects are every ``anno_id`` of the video's expressions; per frame the union of their
    masks (``null`` entries skipped), written as a COCO RLE (also where it is empty), with the fraction of
    foreground pixels.

    Args:
        videos: ``meta_expressions``'s ``videos`` (each with ``height``, ``width``, ``frames`` and
            ``expressions`` with ``anno_id`` lists).
        mask_dict: ``{str(anno_id): [RLE or None per frame]}``.

    Returns:
        dict: ``{video: {"masks_rle": [RLE per frame], "foreground_ratio": [float per frame]}}``.
    """
    from soc_mm.structures.mask import decode_mask, encode_mask
    foreground = {}
    for video_id, video in videos.items():
        height, width = int(video['height']), int(video['width'])
        anno_ids = sorted({str(a) for exp in video['expressions'].values() for a in exp['anno_id']})
        rles, ratios = [], []
        for t, frame in enumerate(video['frames']):
            union = np.zeros((height, width), bool)
            for anno_id in anno_ids:
                rle = mask_dict[anno_id][t]
                if rle is not None:
                    union |= decode_mask(rle, f'{where}: mask of anno_id {anno_id} in video {video_id!r} frame '
                                         f'{frame!r}', size=(height, width))
            rles.append(encode_mask(union))
            ratios.append(float(union.sum() / (height * width)))
        foreground[video_id] = {'masks_rle': rles, 'foreground_ratio': ratios}
    return foreground


@DATASETS.register_module()
class ReVOSDataset(BaseDataset):
    """ReVOS: referring (``type_id`` 0) and reasoning (1) expressions, and expressions that refer to no object
    of the video (2); an expression may refer to several objects.

    Every referred object of an expression is one instance of ``gt_instances`` (in ``anno_id`` order; N = 0
    when the expression refers to nothing); the sample's metainfo ``ref_inst_idx`` is the list
    ``[0, ..., N-1]``. The masks are decoded by ``LoadRLEMasks`` from the RLEs of ``mask_dict.json``,
    attached to each sample as ``mask_rles`` (``[N][T]``, None where the object is not visible). The
    mask file is not loaded: it is indexed (``LazyJsonObject``: byte offsets per ``anno_id``) and each sample
    reads the RLEs of its own objects, so neither the dataset nor its pickled copies in data-loader workers
    hold the masks. Expressions are lower-cased and whitespace-normalised.

    Train (``split='train'``): per expression, one sample per window of ``num_frames`` frames
    (``range(0, n, num_frames)``), as ``MeViSDataset``: ``frame_sampling='global'`` draws the clip anew each
    time (the window's first frame, a close neighbour on each side, frames spread over the whole video;
    reasoning expressions such as "the one that leaves and comes back" need the whole video),
    ``'consecutive'`` uses SOC's consecutive windows and skips those where none of the referred objects is
    visible (logged; windows of no-target expressions are kept). Train videos with fewer than 2 frames are
    skipped (logged).

    Valid (``split='valid'``): the whole video, one sample per expression, ``frame_ids`` = every frame in the
    order of the meta file (the order the evaluation reads). Metainfo for the metrics: ``video_id``,
    ``exp_id``, ``frame_ids``, ``anno_ids``, ``type_id``. ``RevosMetric`` reads the ground truth from the
    mask files itself; ``load_gt=True`` also loads it into the samples (``ori_gt_masks`` with
    ``PackRVOSInputs(pack_ori_gt_masks=True)``).

    Errors (at load time) name the file, video, expression and field: the checks of
    ``soc_mm.datasets.utils`` (a non-empty ``exp`` string, dict/list fields, integer ids), a frame listed
    twice or without a file in ``JPEGImages``, a ``type_id`` other than 0, 1, 2, ``obj_id``/``anno_id`` lists
    of different lengths, an ``anno_id`` listed twice in an expression, missing from ``mask_dict.json`` or
    used in two videos, an RLE list whose length is not the video's frame count, an RLE that is not
    ``{"size": [H, W], "counts": str}`` / null, whose size is not the video's (``height`` / ``width`` of the
    meta file, else its first frame's) or whose counts do not cover H * W pixels, and a key repeated anywhere
    in either json file.

    Args:
        data_root (str): the ReVOS folder (layout: ``REVOS_LAYOUT``).
        split (str): ``'train'`` or ``'valid'``.
        num_frames (int): clip length T for ``split='train'``.
        frame_sampling (str): ``'global'`` or ``'consecutive'`` (train only).
        type_ids (Sequence[int]): the expression types to load (default all three).
        load_gt (bool, optional): load the masks into the samples. None: True for train, False for valid.
        img_suffix (str): frame file extension.
    """
    METAINFO = dict(classes=('object', ), dataset_name='revos')
    LAYOUT = REVOS_LAYOUT

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 num_frames: int = 8,
                 frame_sampling: str = 'global',
                 type_ids: Sequence[int] = REVOS_TYPE_IDS,
                 load_gt: Optional[bool] = None,
                 img_suffix: str = '.jpg',
                 **kwargs):
        name = type(self).__name__
        if split not in REVOS_SPLITS:
            raise ValueError(f'{name}: split must be one of {REVOS_SPLITS}, got {split!r}')
        if frame_sampling not in FRAME_SAMPLINGS:
            raise ValueError(f'{name}: frame_sampling must be one of {FRAME_SAMPLINGS}, got {frame_sampling!r}')
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f'{name}: num_frames must be an integer >= 1, got {num_frames!r}')
        type_ids = tuple(type_ids)
        if not type_ids or any(t not in REVOS_TYPE_IDS for t in type_ids):
            raise ValueError(f'{name}: type_ids must be a non-empty subset of {REVOS_TYPE_IDS} (0 referring, '
                             f'1 reasoning, 2 no target), got {type_ids!r}')
        self.split = split
        self.num_frames = num_frames
        self.frame_sampling = frame_sampling
        self.type_ids = type_ids
        self.load_gt = split == 'train' if load_gt is None else bool(load_gt)
        self.img_suffix = img_suffix
        self._video_frames: Dict[str, List[str]] = {}
        self._masks = None  # LazyJsonObject of mask_dict.json (byte offsets only)
        kwargs.setdefault('test_mode', split != 'train')
        super().__init__(data_root=data_root, **kwargs)

    # ------------------------------------------------------------------ file paths
    @property
    def meta_file(self) -> str:
        return revos_meta_file(self.data_root, self.split)

    @property
    def mask_file(self) -> str:
        return osp.join(self.data_root, 'mask_dict.json')

    @property
    def foreground_file(self) -> str:
        return osp.join(self.data_root, 'mask_dict_foreground.json')

    # ------------------------------------------------------------------ checks of the annotation files
    def _check_video(self, video_id: str, vid: Any) -> Tuple[List[str], Optional[Tuple[int, int]], Dict[str, dict]]:
        """Checked ``(frames, (H, W) or None, expressions)`` of one video entry; expressions as
        ``{exp_id: {'exp': cleaned text, 'type_id': int, 'obj_ids': [int] | None, 'anno_ids': [int]}}``."""
        path, field = self.meta_file, f'videos[{json_key(video_id)}]'
        check_dict(vid, path, field, 'a dict with "frames" and "expressions"')
        frames = check_key(vid, 'frames', path, field)
        if not isinstance(frames, list) or not all(isinstance(f, str) for f in frames):
            raise ValueError(f'{path}: field {field}["frames"] must be a list of frame names (str), got '
                             f'{type(frames).__name__} {str(frames)[:60]}')
        check_not_empty(frames, path, f'{field}["frames"]', "the names of the video's frames")
        if len(set(frames)) != len(frames):
            raise ValueError(f'{path}: field {field}["frames"] lists a frame twice (mask_dict.json gives one RLE per '
                             f'entry of this list), got {frames[:6]}...')
        size = None
        if 'height' in vid or 'width' in vid:
            size = tuple(parse_int(check_key(vid, k, path, field), path, f'{field}[{json_key(k)}]')
                         for k in ('height', 'width'))
        exps = check_dict(check_key(vid, 'expressions', path, field), path, f'{field}["expressions"]',
                          'a dict {<exp_id>: {"exp": ..., "anno_id": [...], "type_id": ...}}')
        checked = {}
        for exp_id, exp in exps.items():
            exp_field = f'{field}["expressions"][{json_key(exp_id)}]'
            check_dict(exp, path, exp_field, 'a dict {"exp": <sentence>, "obj_id": [int], "anno_id": [int], '
                       '"type_id": 0 | 1 | 2}')
            text = check_expression(check_key(exp, 'exp', path, exp_field), path, video_id, exp_id)
            type_id = check_key(exp, 'type_id', path, exp_field)
            if isinstance(type_id, bool) or type_id not in REVOS_TYPE_IDS:
                raise ValueError(f'{path}: field {exp_field}["type_id"] must be 0 (referring), 1 (reasoning) or 2 '
                                 f'(no target), got {type_id!r}')
            ids = {}
            for key in ('obj_id', 'anno_id'):
                if key == 'obj_id' and key not in exp:
                    ids[key] = None  # only the anno_id list says which masks are referred
                    continue
                value = check_key(exp, key, path, exp_field)
                if not isinstance(value, list):
                    raise ValueError(f'{path}: field {exp_field}[{json_key(key)}] must be a list of integers '
                                     f'([] = no referred object), got {type(value).__name__} {str(value)[:60]}')
                ids[key] = [parse_int(v, path, f'{exp_field}[{json_key(key)}][{i}]') for i, v in enumerate(value)]
            if len(set(ids['anno_id'])) != len(ids['anno_id']):
                raise ValueError(f'{path}: field {exp_field}["anno_id"] lists an annotation twice: {ids["anno_id"]} '
                                 '(one entry per referred object)')
            if ids['obj_id'] is not None and len(ids['obj_id']) != len(ids['anno_id']):
                raise ValueError(f'{path}: video {video_id!r} expression {exp_id!r}: obj_id {ids["obj_id"]} and '
                                 f'anno_id {ids["anno_id"]} must have the same length (one anno_id per object)')
            checked[str(exp_id)] = dict(exp=text, type_id=int(type_id), obj_ids=ids['obj_id'],
                                        anno_ids=ids['anno_id'])
        return frames, size, checked

    def _check_frame_dir(self, frame_dir: str, video_id: str, frames: Sequence[str]) -> None:
        """Every listed frame has a file (the masks are indexed by the frame list)."""
        require_path(frame_dir, f'{type(self).__name__}: frames of video {video_id!r}', self.LAYOUT, True)
        present = {f[:-len(self.img_suffix)] for f in os.listdir(frame_dir) if f.endswith(self.img_suffix)}
        missing = [f for f in frames if f not in present]
        if missing:
            raise ValueError(
                f'{type(self).__name__}: video {video_id!r}: {len(missing)} of the {len(frames)} frames listed in '
                f'{self.meta_file} have no {self.img_suffix!r} file in {frame_dir} (e.g. {missing[:3]})\n'
                f'Expected layout:\n{self.LAYOUT}')

    def _frame_size(self, frame_dir: str, frame: str, video_id: str) -> Tuple[int, int]:
        path = osp.join(frame_dir, frame + self.img_suffix)
        try:
            with Image.open(path) as img:
                width, height = img.size
        except Exception as e:  # noqa: BLE001 - any decoding failure is reported with its video/frame
            raise ValueError(f'{type(self).__name__}: video {video_id!r} frame {frame!r}: cannot read {path} '
                             f'({e})') from e
        return height, width

    def _check_rles(self, rles: Any, anno_id: int, video_id: str, exp_id: str, frames: Sequence[str],
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
                   size=frame_size, size_from=size_from)
        return [rle is not None for rle in rles]

    # ------------------------------------------------------------------ data list
    def load_data_list(self) -> List[dict]:
        from soc_mm.evaluation.functional.lazy_json import LazyJsonObject
        name = type(self).__name__
        require_path(self.data_root, f'{name} data_root', self.LAYOUT, is_dir=True)
        img_root = require_path(osp.join(self.data_root, 'JPEGImages'), f'{name} (frames)', self.LAYOUT, is_dir=True)
        data = load_json(self.meta_file, f'{name} ({self.split} expressions)', self.LAYOUT)
        check_dict(data, self.meta_file, '<top level>', 'a dict with the key "videos"')
        videos = check_dict(check_key(data, 'videos', self.meta_file, '<top level>'), self.meta_file, 'videos',
                            'a dict {<video_id>: {"frames": [...], "expressions": {...}}}')
        check_not_empty(videos, self.meta_file, 'videos', 'at least one video')
        masks = None
        if self.load_gt:
            require_path(self.mask_file, f'{name} (masks)', self.LAYOUT, is_dir=False)
            masks = LazyJsonObject(self.mask_file, f'{name} mask_dict file')
        self._masks = masks
        self._video_frames = {}
        anno_video: Dict[str, str] = {}
        data_list, short_videos, empty_windows = [], [], []
        num_windows = 0
        for video_id in sorted(videos):
            frames, meta_size, expressions = self._check_video(video_id, videos[video_id])
            frame_dir = osp.join(img_root, video_id)
            self._check_frame_dir(frame_dir, video_id, frames)
            if self.split == 'train' and len(frames) < MIN_TRAIN_VIDEO_FRAMES:
                short_videos.append(video_id)
                continue
            self._video_frames[video_id] = frames
            frame_size, size_from = meta_size, f'"height"/"width" of video {video_id!r} in {self.meta_file}'
            visible: Dict[str, List[bool]] = {}
            for exp_id in sorted(expressions, key=lambda k: (len(k), k)):
                exp = expressions[exp_id]
                if exp['type_id'] not in self.type_ids:
                    continue
                anno_ids = exp['anno_ids']
                if masks is not None:
                    for anno_id in anno_ids:
                        key = str(anno_id)
                        if key not in masks:
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
                            visible[key] = self._check_rles(masks[key], anno_id, video_id, exp_id, frames,
                                                            frame_size, size_from)
                info = dict(dataset=self.metainfo['dataset_name'], video_id=video_id, exp_id=exp_id,
                            expression=exp['exp'], type_id=exp['type_id'], frame_dir=frame_dir,
                            img_suffix=self.img_suffix, anno_ids=anno_ids, ref_obj_ids=exp['obj_ids'],
                            valid_frame_idx=None, mask_file=self.mask_file if masks is not None else None)
                if self.split != 'train':
                    data_list.append(dict(info, frame_ids=list(frames), frame_inds=list(range(len(frames)))))
                    continue
                windows = sliding_windows(list(range(len(frames))), self.num_frames)
                for start, window in zip(range(0, len(frames), self.num_frames), windows):
                    num_windows += 1
                    if self.frame_sampling == 'global':
                        data_list.append(dict(info, anchor=start))
                        continue
                    if masks is not None and anno_ids and \
                            not any(visible[str(a)][i] for a in anno_ids for i in window):
                        empty_windows.append(f'{video_id}/exp {exp_id}/{frames[window[0]]}')
                        continue
                    data_list.append(dict(info, frame_ids=[frames[i] for i in window], frame_inds=window))
        log_skips(name, f'train videos with fewer than {MIN_TRAIN_VIDEO_FRAMES} frames', short_videos, len(videos))
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
        """The ``mask_dict.json`` entry of ``anno_id`` (read from the file): one COCO RLE dict or None per frame."""
        if self._masks is None:
            raise ValueError(f'{type(self).__name__}: the masks are not loaded (load_gt=False)')
        return self._masks[str(anno_id)]

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
