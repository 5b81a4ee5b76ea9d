"""Long-RVOS (CVPR 2026): long-term referring video object segmentation (videos of ~60 s, ~360 frames),
descriptions of three types (static, dynamic, hybrid), masks as one PNG per object and frame."""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset

from soc_mm.registry import DATASETS, TRANSFORMS
from .ref_youtube_vos import sliding_windows
from .transforms.loading import _set_masks
from .utils import check_expression, json_key, load_json, log_skips, require_path

LONG_RVOS_LAYOUT = """<data_root>/
  train/JPEGImages/<video>/<frame>.jpg
  train/Annotations/<video>/<obj_id>/<frame>.png   (the object's mask: non-zero pixels = the object; no file:
                                                    the object is not in that frame)
  train/meta_expressions.json   ({"videos": {<video>: {"frames": [<frame>, ...], "expressions": {<exp_id>:
                                  {"exp": <sentence>, "obj_id": <id>, "type": "static" | "dynamic" |
                                  "static+dynamic"}}}}})
  valid/{JPEGImages, Annotations, meta_expressions.json}
  test/{JPEGImages, meta_expressions.json}          (no masks)"""

LONG_RVOS_SPLITS = ('train', 'valid', 'test')
FRAME_SAMPLINGS = ('random', 'consecutive', 'window')
#: draws of a 'random' clip before one frame where the object is annotated is put in by force.
MAX_REDRAWS = 10


def random_clip_indices(num_video_frames: int, num_frames: int, annotated: Sequence[int] = (),
                        rng: Optional[np.random.RandomState] = None) -> List[int]:
    """Frame indices of a 'random' clip: ``num_frames`` distinct frames drawn uniformly from the whole video,
    sorted (the official Long-RVOS loader's rule, which draws from the video's key frames).

    The official loader draws another sample when none of the clip's frames shows the object; here the
    clip of the same expression is drawn again (at most ``MAX_REDRAWS`` times), then one drawn frame is
    replaced by a random annotated frame. A video shorter than the clip gives every frame once plus
    random repeats.

    Args:
        num_video_frames (int): n >= 1.
        num_frames (int): clip length T.
        annotated: indices of the frames where the object has a mask (empty: no constraint).
        rng: numpy random state (default: the global ``np.random``, seeded by MMEngine per worker).

    Returns:
        list[int]: T sorted indices into the video's frame list.
    """
    rng = np.random if rng is None else rng
    n = num_video_frames
    annotated = list(annotated)
    chosen: List[int] = []
    for _ in range(MAX_REDRAWS):
        if n >= num_frames:
            chosen = [int(i) for i in rng.choice(n, num_frames, replace=False)]
        else:
            chosen = list(range(n)) + [int(i) for i in rng.randint(0, n, num_frames - n)]
        if not annotated or set(chosen).intersection(annotated):
            return sorted(chosen)
    # no drawn frame is annotated, so the forced one is not among them: the frames stay distinct
    chosen[rng.randint(len(chosen))] = int(annotated[rng.randint(len(annotated))])
    return sorted(chosen)


def window_clip_indices(num_video_frames: int, num_frames: int, stride: int = 1, annotated: Sequence[int] = (),
                        rng: Optional[np.random.RandomState] = None) -> List[int]:
    """Frame indices of a 'window' clip: ``num_frames`` frames ``stride`` apart from a random start (a local
    stretch of the video, where a motion can be followed from frame to frame; not an official rule).

    The start is drawn uniformly among those whose window fits in the video and shows the object on at least
    one frame (``annotated``; every start that fits when it is empty). A video shorter than the window's span
    uses the largest stride that fits; when no window on that grid shows the object, a window of consecutive
    frames over a random annotated frame is used. A video shorter than the clip gives every frame once plus
    repeats of the last.

    Args:
        num_video_frames (int): n >= 1.
        num_frames (int): clip length T.
        stride (int): frames between two clip frames (>= 1).
        annotated: indices of the frames where the object has a mask (empty: no constraint).
        rng: numpy random state (default: the global ``np.random``, seeded by MMEngine per worker).

    Returns:
        list[int]: T sorted indices into the video's frame list.
    """
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f'window_clip_indices: stride must be an integer >= 1, got {stride!r}')
    rng = np.random if rng is None else rng
    n = num_video_frames
    if n <= num_frames:
        return list(range(n)) + [n - 1] * (num_frames - n)
    stride = max(1, min(stride, (n - 1) // (num_frames - 1))) if num_frames > 1 else 1
    span = (num_frames - 1) * stride + 1
    starts = np.arange(n - span + 1)
    if len(annotated):
        shown = np.zeros(n, bool)
        shown[np.asarray(annotated, np.int64)] = True
        grid = starts[:, None] + stride * np.arange(num_frames)[None]  # [starts, T]
        starts = starts[shown[grid].any(1)]
        if not len(starts):  # no window on this grid shows the object: consecutive frames over one that does
            frame = int(annotated[rng.randint(len(annotated))])
            start = int(np.clip(frame - rng.randint(num_frames), 0, n - num_frames))
            return list(range(start, start + num_frames))
    start = int(starts[rng.randint(len(starts))])
    return list(range(start, start + span, stride))


@DATASETS.register_module()
class LongRVOSDataset(BaseDataset):
    """Long-RVOS: one object per description; videos of hundreds of frames.

    Each expression refers to one object ``obj_id`` whose masks are ``Annotations/<video>/<obj_id>/<frame>.png``
    (no file: the object is absent from that frame, as the official evaluation reads it); the sample's single
    instance is that object (``ref_inst_idx`` 0). Masks are read by :class:`LoadLongRVOSMasks` in the pipeline,
    never at load time: loading lists each object's folder once (which frames have a mask file) and reads no
    image. Expressions are lower-cased and whitespace-normalised. The description type (``"type"``:
    ``"static"``, ``"dynamic"``, ``"static+dynamic"`` = hybrid) is kept in the metainfo as ``desc_type``
    (None when absent).

    Train: ``ceil(n / num_frames)`` samples per expression (n frames), as many as windows of ``num_frames``:

    * ``frame_sampling='random'`` (default): ``num_frames`` distinct frames drawn from the whole video each
      time the sample is read (:func:`random_clip_indices`, the official loader's rule over all frames --
      the official one draws from the key frames of its motion files; we have none), with at least one frame
      where the object has a mask. Long-RVOS descriptions (and objects that leave and come back) are about
      the whole video, which a few consecutive frames rarely show.
    * ``frame_sampling='consecutive'``: SOC's windows (consecutive, non-overlapping, the last one completed);
      windows without any mask file of the object are skipped (logged).
    * ``frame_sampling='window'``: ``num_frames`` frames ``frame_stride`` apart from a random start, drawn each
      time the sample is read (:func:`window_clip_indices`), at least one of them showing the object: a local
      stretch where a motion can be followed from frame to frame (not an official rule; a clip of frames far
      apart shows objects jump, and look-alikes swap places between them).

    Expressions whose object has no mask file at all (no folder, or an empty one) are skipped in training
    (logged); in ``valid`` they are kept (scored against an empty ground truth, as the official scripts do).

    valid / test: the whole video, one sample per expression, ``frame_ids`` = every frame in the order of
    ``meta_expressions.json``. Metainfo for the metrics: ``video_id``, ``exp_id``, ``frame_ids``, ``obj_id``,
    ``desc_type``. ``test`` has no masks.

    Errors (at load time) name the file, video, expression and field: a missing ``frames`` / ``expressions``
    / ``exp`` / ``obj_id``, an empty expression, a frame listed twice, a frame list that disagrees with the
    ``JPEGImages`` folder, an ``obj_id`` that is not one id, an object folder that is a file, and a key
    repeated anywhere in the json file.

    Args:
        data_root (str): the ``long_rvos`` folder (layout: ``LONG_RVOS_LAYOUT``).
        split (str): ``'train'``, ``'valid'`` or ``'test'``.
        num_frames (int): clip length T for ``split='train'``.
        frame_sampling (str): ``'random'``, ``'consecutive'`` or ``'window'`` (train only; see above).
        frame_stride (int): frames between two clip frames of ``frame_sampling='window'`` (>= 1).
        load_gt (bool, optional): use ``Annotations``. None: True for train and valid, False for test (which
            has none: True is then an error).
        img_suffix (str): frame file extension.
    """
    METAINFO = dict(classes=('object', ), dataset_name='long_rvos')
    LAYOUT = LONG_RVOS_LAYOUT

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 num_frames: int = 8,
                 frame_sampling: str = 'random',
                 frame_stride: int = 1,
                 load_gt: Optional[bool] = None,
                 img_suffix: str = '.jpg',
                 **kwargs):
        name = type(self).__name__
        if split not in LONG_RVOS_SPLITS:
            raise ValueError(f'{name}: split must be one of {LONG_RVOS_SPLITS}, got {split!r}')
        if frame_sampling not in FRAME_SAMPLINGS:
            raise ValueError(f'{name}: frame_sampling must be one of {FRAME_SAMPLINGS}, got {frame_sampling!r}')
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f'{name}: num_frames must be an integer >= 1, got {num_frames!r}')
        if isinstance(frame_stride, bool) or not isinstance(frame_stride, int) or frame_stride < 1:
            raise ValueError(f'{name}: frame_stride must be an integer >= 1, got {frame_stride!r}')
        if frame_stride != 1 and frame_sampling != 'window':
            raise ValueError(f"{name}: frame_stride={frame_stride} is only read by frame_sampling='window', "
                             f'got frame_sampling={frame_sampling!r}')
        self.split = split
        self.num_frames = num_frames
        self.frame_sampling = frame_sampling
        self.frame_stride = frame_stride
        self.load_gt = split != 'test' if load_gt is None else bool(load_gt)
        self.img_suffix = img_suffix
        self._video_frames: Dict[str, List[str]] = {}
        self._annotated: Dict[Tuple[str, str], np.ndarray] = {}  # (video, obj_id) -> frame indices with a mask
        kwargs.setdefault('test_mode', split != 'train')
        super().__init__(data_root=data_root, **kwargs)

    # ------------------------------------------------------------------ file paths
    @property
    def meta_file(self) -> str:
        return osp.join(self.data_root, self.split, 'meta_expressions.json')

    @property
    def annotations_dir(self) -> str:
        return osp.join(self.data_root, self.split, 'Annotations')

    # ------------------------------------------------------------------ checks
    def _check_video(self, video_id: str, video) -> Tuple[List[str], Dict[str, dict]]:
        """``(frames, {exp_id: {'exp', 'obj_id', 'desc_type'}})`` of one video entry, checked."""
        path, field = self.meta_file, f'videos[{json_key(video_id)}]'
        if not isinstance(video, dict):
            raise ValueError(f'{path}: field {field} must be a dict with "frames" and "expressions", got '
                             f'{type(video).__name__}')
        frames = video.get('frames')
        if not isinstance(frames, list) or not frames or not all(isinstance(f, str) and f for f in frames):
            raise ValueError(f'{path}: field {field}["frames"] must be a non-empty list of frame names (str), got '
                             f'{str(frames)[:60]}')
        if len(set(frames)) != len(frames):
            raise ValueError(f'{path}: field {field}["frames"] lists a frame twice')
        exps = video.get('expressions')
        if not isinstance(exps, dict) or not exps:
            raise ValueError(f'{path}: field {field}["expressions"] must be a non-empty dict {{<exp_id>: {{"exp": '
                             f'..., "obj_id": ..., "type": ...}}}}, got {str(exps)[:60]}')
        checked = {}
        for exp_id, exp in exps.items():
            exp_field = f'{field}["expressions"][{json_key(exp_id)}]'
            if not isinstance(exp, dict):
                raise ValueError(f'{path}: field {exp_field} must be a dict {{"exp", "obj_id", "type"}}, got '
                                 f'{type(exp).__name__}')
            if 'exp' not in exp:
                raise ValueError(f'{path}: field {exp_field} lacks the key "exp" (video {video_id!r} expression '
                                 f'{exp_id!r})')
            text = check_expression(exp['exp'], path, video_id, exp_id)
            obj_id = exp.get('obj_id')
            if isinstance(obj_id, bool) or not isinstance(obj_id, (int, str)) or str(obj_id) in ('', '.', '..') \
                    or '/' in str(obj_id):
                raise ValueError(f'{path}: field {exp_field}["obj_id"] must be one object id (an int or a string '
                                 f'naming its folder Annotations/{video_id}/<obj_id>/), got {obj_id!r}')
            desc_type = exp.get('type')
            if desc_type is not None and not isinstance(desc_type, str):
                raise ValueError(f'{path}: field {exp_field}["type"] must be a string ("static", "dynamic" or '
                                 f'"static+dynamic"), got {desc_type!r}')
            checked[str(exp_id)] = dict(exp=text, obj_id=str(obj_id), desc_type=desc_type)
        return frames, checked

    def _check_frame_dir(self, frame_dir: str, video_id: str, frames: Sequence[str]) -> None:
        """The JPEG folder holds every listed frame (one listing per video, no image read)."""
        require_path(frame_dir, f'{type(self).__name__}: frames of video {video_id!r}', self.LAYOUT, True)
        present = {f[:-len(self.img_suffix)] for f in os.listdir(frame_dir) if f.endswith(self.img_suffix)}
        missing = [f for f in frames if f not in present]
        if missing:
            raise ValueError(f'{type(self).__name__}: video {video_id!r}: {len(missing)} of the {len(frames)} frames '
                             f'listed in {self.meta_file} have no {self.img_suffix!r} file in {frame_dir} (e.g. '
                             f'{missing[:3]})\nExpected layout:\n{self.LAYOUT}')

    def _annotated_frames(self, video_id: str, obj_id: str, frames: Sequence[str]) -> np.ndarray:
        """Indices of the frames with a mask file ``Annotations/<video>/<obj_id>/<frame>.png`` (one listing per
        object; an object without a folder has none)."""
        key = (video_id, obj_id)
        if key not in self._annotated:
            obj_dir = osp.join(self.annotations_dir, video_id, obj_id)
            if osp.exists(obj_dir) and not osp.isdir(obj_dir):
                raise ValueError(f'{type(self).__name__}: {obj_dir} is a file; expected the folder of object {obj_id!r}'
                                 f' of video {video_id!r} with one <frame>.png per frame where it is visible')
            names = set(os.listdir(obj_dir)) if osp.isdir(obj_dir) else set()
            self._annotated[key] = np.array([t for t, f in enumerate(frames) if f'{f}.png' in names], np.int32)
        return self._annotated[key]

    # ------------------------------------------------------------------ data list
    def load_data_list(self) -> List[dict]:
        name = type(self).__name__
        require_path(self.data_root, f'{name} data_root', self.LAYOUT, is_dir=True)
        img_root = require_path(osp.join(self.data_root, self.split, 'JPEGImages'),
                                f'{name} ({self.split} frames)', self.LAYOUT, is_dir=True)
        data = load_json(self.meta_file, f'{name} ({self.split} expressions)', self.LAYOUT)
        videos = data.get('videos') if isinstance(data, dict) else None
        if not isinstance(videos, dict) or not videos:
            raise ValueError(f'{self.meta_file}: field videos must be a non-empty dict {{<video_id>: {{"frames": '
                             f'[...], "expressions": {{...}}}}}}, got {str(videos)[:60]}')
        if self.load_gt:
            if self.split == 'test':
                raise ValueError(f'{name}: the Long-RVOS test split has no masks (load_gt=True); use valid for local '
                                 'evaluation')
            require_path(self.annotations_dir, f'{name} ({self.split} masks)', self.LAYOUT, is_dir=True)
        self._video_frames, self._annotated = {}, {}
        data_list, no_mask_exps, empty_windows = [], [], []
        num_windows = num_exps = 0
        for video_id in sorted(videos):
            frames, expressions = self._check_video(video_id, videos[video_id])
            frame_dir = osp.join(img_root, video_id)
            self._check_frame_dir(frame_dir, video_id, frames)
            self._video_frames[video_id] = frames
            for exp_id in sorted(expressions, key=lambda k: (len(k), k)):
                exp = expressions[exp_id]
                num_exps += 1
                annotated = self._annotated_frames(video_id, exp['obj_id'], frames) if self.load_gt else None
                info = dict(dataset=self.metainfo['dataset_name'], video_id=video_id, exp_id=exp_id,
                            expression=exp['exp'], obj_id=exp['obj_id'], desc_type=exp['desc_type'],
                            frame_dir=frame_dir, img_suffix=self.img_suffix, valid_frame_idx=None,
                            mask_dir=osp.join(self.annotations_dir, video_id, exp['obj_id']) if self.load_gt else None)
                if self.split != 'train':
                    data_list.append(dict(info, frame_ids=list(frames), frame_inds=list(range(len(frames)))))
                    continue
                if self.load_gt and not len(annotated):
                    no_mask_exps.append(f'{video_id}/exp {exp_id}')
                    continue
                windows = sliding_windows(list(range(len(frames))), self.num_frames)
                for window in windows:
                    num_windows += 1
                    if self.frame_sampling in ('random', 'window'):  # drawn in get_data_info
                        data_list.append(dict(info))
                        continue
                    if self.load_gt and not np.isin(window, annotated).any():
                        empty_windows.append(f'{video_id}/exp {exp_id}/{frames[window[0]]}')
                        continue
                    data_list.append(dict(info, frame_inds=window))
        log_skips(name, 'train expressions whose object has no mask file', no_mask_exps, num_exps)
        log_skips(name, 'windows without a mask file of the referred object (as SOC)', empty_windows, num_windows)
        return data_list

    # ------------------------------------------------------------------ samples
    def get_data_info(self, idx: int) -> dict:
        """Data info of sample ``idx`` with ``frame_ids`` / ``frame_inds`` (train clips are drawn here for
        ``frame_sampling='random'`` / ``'window'``; frame names are looked up here, not stored per sample)."""
        info = super().get_data_info(idx)
        frames = self._video_frames[info['video_id']]
        if 'frame_ids' not in info:
            if 'frame_inds' not in info:  # 'random' or 'window' train sample
                annotated = self._annotated.get((info['video_id'], info['obj_id']), ()) if self.load_gt else ()
                if self.frame_sampling == 'window':
                    info['frame_inds'] = window_clip_indices(len(frames), self.num_frames, self.frame_stride,
                                                             annotated)
                else:
                    info['frame_inds'] = random_clip_indices(len(frames), self.num_frames, annotated)
            info['frame_ids'] = [frames[i] for i in info['frame_inds']]
        return info


@TRANSFORMS.register_module()
class LoadLongRVOSMasks(BaseTransform):
    """Load the referred object's masks ``<mask_dir>/<frame>.png`` of the output frames (Long-RVOS).

    A PNG is read as the official evaluation reads it (8-bit grayscale, non-zero = the object); a frame
    without a file is an empty mask (the object is absent). One instance: ``gt_masks`` bool
    ``[1, T_out, H, W]``, ``ref_inst_idx`` 0.

    Required keys: ``mask_dir``, ``frame_ids``, ``ori_shape`` (``LoadRVOSFrames`` first).
    Added keys: ``gt_masks``, ``gt_labels`` ([0]), ``ref_inst_idx``, ``ori_gt_masks`` bool ``[T_out, H, W]``.
    """

    def transform(self, results: dict) -> dict:
        from soc_mm.evaluation.functional.long_rvos import read_png_mask  # the evaluator's reading
        video_id = results.get('video_id', '?')
        if results.get('mask_dir') is None:
            raise ValueError(f'video {video_id!r}: the dataset has no masks for this sample (remove LoadLongRVOSMasks '
                             'from the pipeline, or use a split with Annotations)')
        if 'ori_shape' not in results:
            raise ValueError(f'video {video_id!r}: LoadLongRVOSMasks needs the frame size (run LoadRVOSFrames first)')
        height, width = results['ori_shape']
        frame_ids = list(results['frame_ids'])
        idx = results.get('valid_frame_idx')
        out = list(range(len(frame_ids))) if idx is None else list(idx)
        masks = np.zeros((1, len(out), height, width), dtype=bool)
        cache = {}
        for k, t in enumerate(out):
            frame = frame_ids[t]
            if frame not in cache:  # padded clips repeat frames
                path = osp.join(results['mask_dir'], f'{frame}.png')
                mask = read_png_mask(path, 'ground truth') if osp.exists(path) else None
                if mask is not None and mask.shape != (height, width):
                    raise ValueError(f'video {video_id!r} frame {frame!r}: mask {path} is '
                                     f'{mask.shape[0]}x{mask.shape[1]} (H x W) but the frame is {height}x{width}; '
                                     'masks must have the size of their frames')
                cache[frame] = mask
            if cache[frame] is not None:
                masks[0, k] = cache[frame]
        _set_masks(results, masks, [0], 0, mask_path=results['mask_dir'])
        return results
