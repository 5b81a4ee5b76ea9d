"""High-level inference: build a SOC model, segment the objects several expressions refer to in a video.

``inference_rvos`` reads the video lazily, clip by clip (``clip_len`` frames), and hands the clips to
the model's video inference (``soc_mm.models.inference.VideoInference``, the same schedule as the test
loop's ``SOC.predict``): the video backbone and every text-independent stage once per clip for all
expressions, the text-dependent stages batched over the expressions, the clips merged; the peak memory
of the model does not grow with the video length (the merged masks do). ``stream_rvos`` is the same
schedule as a generator: it yields each clip's frames and results as soon as they are predicted and
keeps nothing, so that the peak memory does not grow with the video length at all (long videos,
``tools/demo/video_demo.py``).
"""
import copy
import dataclasses
import os
import os.path as osp
import warnings
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import nn

from soc_mm.models.inference import STREAM_CLIP_LEN, RVOSTestOptions, VideoInference, iter_clips
from soc_mm.utils.checkpoint import load_checkpoint_to_model, safe_checkpoint_loading, safe_load_local
from soc_mm.registry import MODELS, TRANSFORMS
from soc_mm.structures import RVOSDataSample

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
#: smallest frame side (pixels, after the test pipeline's resize) the model accepts: smaller frames leave
#: feature maps of one pixel (the finest level is 1/4 of the frame), which GroupNorm layers with one
#: channel per group cannot normalise (the tiny configs' spatial decoder; 5x5 is its true minimum).
MIN_FRAME_SIZE = 8
DEFAULT_TEST_PIPELINE = [
    dict(type='RVOSRandomResize', short_side=[360], max_size=640),
    dict(type='PackRVOSInputs'),
]


def init_model(config: Union[str, Config],
               checkpoint: Optional[str] = None,
               device: Union[str, torch.device] = 'cpu',
               cfg_options: Optional[dict] = None,
               fast_kernels: Optional[bool] = True) -> nn.Module:
    """Build a SOC model from a config, load a checkpoint and put it in eval mode.

    Args:
        config (str | Config): config file path or loaded config (``model`` field).
        checkpoint (str, optional): checkpoint path; None keeps the initialised weights
            (``init_weights`` runs: random or the config's pretrained backbone).
        device (str | torch.device): e.g. 'cpu', 'cuda:0'.
        cfg_options (dict, optional): overrides merged into the config
            (e.g. ``{'model.test_cfg.clip_len': 8}``).
        fast_kernels (bool, optional): build the model with the fused kernels (sets
            ``model.fast_kernels``, read when the model is built; outputs equal the reference
            kernels to float rounding, ~1e-6). None keeps the config's setting (default True).

    Returns:
        nn.Module: the model in eval mode, its config in ``model.cfg``.

    Raises:
        RemoteCheckpointError: ``checkpoint`` (or a ``Pretrained`` ``init_cfg`` of the config) is a URL or
            remote prefix (nothing is downloaded); UnsafeCheckpointError / CheckpointFormatError: see
            ``safe_load_local``; CheckpointValueError: NaN/inf weights or integers for float parameters;
            CheckpointMismatchError: keys or shapes that do not fit the model.
    """
    if isinstance(config, (str, os.PathLike)):
        if not osp.isfile(config):
            raise FileNotFoundError(f'init_model: config file not found: {config}')
        config = Config.fromfile(config)
    elif not isinstance(config, Config):
        raise TypeError(f'init_model: config must be a file path or a Config, got {type(config).__name__}')
    config = copy.deepcopy(config)
    if cfg_options:
        config.merge_from_dict(cfg_options)
    if 'model' not in config:
        raise ValueError('init_model: the config has no "model" field')
    if fast_kernels is not None:
        config.model.fast_kernels = bool(fast_kernels)
    import soc_mm  # noqa: F401  (registers every module)
    # read (safely) before building: a bad file fails at once, naming itself
    state = None if checkpoint is None else safe_load_local(checkpoint, map_location='cpu')
    init_default_scope(config.get('default_scope', 'soc_mm'))
    with safe_checkpoint_loading():  # an init_cfg checkpoint goes through the safe loader too
        model = MODELS.build(config.model)
        if state is None:
            model.init_weights()
    if state is not None:
        load_checkpoint_to_model(model, state, checkpoint, strict=True)
    model.cfg = config
    model.to(device)
    model.eval()
    return model


# ---------------------------------------------------------------------- video reading
def _check_frame(frame, index: int, source: str, first_shape) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f'{source}: frame {index} must be an [H, W, 3] array, got '
                         f'{getattr(frame, "shape", type(frame).__name__)}')
    if first_shape is not None and frame.shape != first_shape:
        raise ValueError(f'{source}: frames differ in size: frame {index} is {frame.shape[:2]}, '
                         f'frame 0 is {first_shape[:2]}')
    if frame.dtype != np.uint8:
        raise ValueError(f'{source}: frames must be uint8 (0-255), got {frame.dtype}')
    return frame


def iter_video_frames(video, channel_order: str = 'rgb') -> Iterator[np.ndarray]:
    """Yield the frames of ``video`` one by one as BGR uint8 [H, W, 3] (read lazily from files).

    Args:
        video: path of a video file (anything OpenCV decodes: mp4, avi, ...), path of a
            folder of frame images (sorted by file name), an array [T, H, W, 3] uint8 or a
            list of [H, W, 3] uint8 arrays.
        channel_order (str): channel order of array inputs, 'rgb' (default) or 'bgr'.
            Files are decoded by us and need no order.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: unreadable video / image, zero frames, frames of differing sizes.
    """
    if channel_order not in ('rgb', 'bgr'):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    count, first_shape = 0, None
    if isinstance(video, (str, os.PathLike)):
        path = os.fspath(video)
        if not osp.exists(path):
            raise FileNotFoundError(f'video not found: {path}')
        if osp.isdir(path):
            import mmcv
            entries = sorted(os.listdir(path))
            files = [f for f in entries if f.lower().endswith(IMG_EXTENSIONS)]
            if not files:
                raise ValueError(f'video folder {path} has zero frames (no {"/".join(IMG_EXTENSIONS)} files)')
            skipped = [f for f in entries if not f.lower().endswith(IMG_EXTENSIONS)]
            if skipped:  # said, not silently dropped
                warnings.warn(f'video folder {path}: {len(skipped)} entr{"y" if len(skipped) == 1 else "ies"} that '
                              f'{"is" if len(skipped) == 1 else "are"} not a {"/".join(IMG_EXTENSIONS)} frame '
                              f'skipped: {skipped[:5]}{" ..." if len(skipped) > 5 else ""}', stacklevel=2)
            for i, name in enumerate(files):
                frame_path = osp.join(path, name)
                if not osp.isfile(frame_path):  # a folder, a FIFO, a broken or looping link
                    raise ValueError(f'video folder {path}: frame {name} is not a regular file')
                try:
                    frame = mmcv.imread(frame_path, flag='color', channel_order='bgr')
                except Exception as err:  # noqa: BLE001 - OpenCV / Pillow errors do not name the file
                    raise ValueError(f'video folder {path}: cannot read frame image {name} ({err})') from None
                if frame is None:
                    raise ValueError(f'video folder {path}: cannot read frame image {name}')
                first_shape = first_shape or frame.shape
                yield _check_frame(frame, i, f'{path} ({name})', first_shape)
            return
        if not osp.isfile(path):  # a FIFO or a device: the decoder would wait for data forever
            raise ValueError(f'video {path} is not a regular file (a FIFO, socket or device); expected a video file '
                             'or a folder of frames')
        import cv2
        cap = cv2.VideoCapture(path)
        try:
            if not cap.isOpened():
                raise ValueError(f'cannot open video {path} (unreadable or unsupported format)')
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                first_shape = first_shape or frame.shape
                yield _check_frame(frame, count, path, first_shape)
                count += 1
        finally:
            cap.release()
        if count == 0:
            raise ValueError(f'video {path} has zero decodable frames (unreadable or empty)')
        return
    if isinstance(video, torch.Tensor):
        video = video.cpu().numpy()
    if isinstance(video, np.ndarray):
        if video.ndim != 4 or video.shape[-1] != 3:
            raise ValueError(f'video array must be [T, H, W, 3], got shape {video.shape}')
    elif not isinstance(video, (list, tuple)):
        raise TypeError(f'video must be a path, an array [T, H, W, 3] or a list of frames, '
                        f'got {type(video).__name__}')
    if len(video) == 0:
        raise ValueError('the video has zero frames')
    for i, frame in enumerate(video):
        first_shape = first_shape or getattr(frame, 'shape', None)
        frame = _check_frame(frame, i, 'video array', first_shape)
        yield np.ascontiguousarray(frame[..., ::-1]) if channel_order == 'rgb' else frame


# ---------------------------------------------------------------------- inference
def _test_transforms(model: nn.Module, pipeline: Optional[Sequence[dict]] = None) -> list:
    """The non-loading transforms of ``pipeline`` (list of transform dicts), default the config's test
    pipeline (default: 360/640 resize + pack)."""
    if pipeline is None:
        cfg = getattr(model, 'cfg', None)
        try:
            pipeline = cfg.test_dataloader.dataset.pipeline
        except AttributeError:
            pass
    pipeline = [copy.deepcopy(t) for t in (pipeline or DEFAULT_TEST_PIPELINE)
                if not str(t['type']).startswith('Load')]
    for t in pipeline:
        if t['type'] == 'PackRVOSInputs':
            t['pack_ori_gt_masks'] = False
    if not pipeline or pipeline[-1]['type'] != 'PackRVOSInputs':
        raise ValueError(f'the test pipeline must end with PackRVOSInputs, got {pipeline}')
    return [TRANSFORMS.build(t) for t in pipeline]


def _check_expressions(expressions) -> List[str]:
    if isinstance(expressions, str):
        expressions = [expressions]
    if not isinstance(expressions, (list, tuple)) or len(expressions) == 0:
        raise ValueError(f'expressions must be a non-empty list of referring expressions, got {expressions!r}')
    for i, e in enumerate(expressions):
        if not isinstance(e, str) or not e.strip():
            raise ValueError(f'expressions[{i}] must be a non-empty string, got {e!r}')
    return list(expressions)


def _stream_options(model: nn.Module, clip_len: Optional[int], share_clips: Optional[bool],
                    test_options: Optional[RVOSTestOptions] = None, caller: str = 'inference_rvos',
                    **changes) -> RVOSTestOptions:
    """``test_options`` (None: the model's, ``model.test_options``) with the call's ``clip_len`` /
    ``share_clips`` and other test-option ``changes`` (None values: the options'), and
    ``STREAM_CLIP_LEN`` frames per clip where they say "whole video"."""
    if test_options is not None and not isinstance(test_options, RVOSTestOptions):
        raise TypeError(f'{caller}: test_options must be an RVOSTestOptions (e.g. '
                        f'model.test_options.replace(object_selection="threshold", score_thr=0.5)), '
                        f'got {type(test_options).__name__}')
    options = test_options or getattr(model, 'test_options', None) or RVOSTestOptions()
    changes = {key: value for key, value in dict(changes, clip_len=clip_len, share_clips=share_clips).items()
               if value is not None}
    try:
        options = options.replace(**changes)
    except ValueError as error:
        names = ' / '.join(sorted(changes)) or 'clip_len / share_clips'
        raise ValueError(f'{caller}: {error} (the {names} argument)') from error
    return options if options.clip_len is not None else options.replace(clip_len=STREAM_CLIP_LEN)


def check_frame_size(ori_shape: Sequence[int], img_shape: Sequence[int]) -> None:
    """Frames must be at least ``MIN_FRAME_SIZE`` pixels on each side once the test pipeline has resized
    them (the model's input): smaller ones can leave feature maps of a single pixel, which the model's
    GroupNorm layers cannot normalise (torch's "Expected more than 1 value per channel when training").

    Args:
        ori_shape: (H0, W0) of the video's frames.
        img_shape: (h, w) after the test pipeline's resize.

    Raises:
        ValueError: naming both sizes and the minimum.
    """
    h, w = (int(s) for s in img_shape[:2])
    if min(h, w) < MIN_FRAME_SIZE:
        h0, w0 = (int(s) for s in ori_shape[:2])
        resized = '' if (h, w) == (h0, w0) else f', {h}x{w} after the test pipeline\'s resize'
        raise ValueError(f'the video\'s frames are {h0}x{w0} pixels (H x W{resized}); the model needs frames of '
                         f'at least {MIN_FRAME_SIZE}x{MIN_FRAME_SIZE} pixels after resizing (smaller ones leave '
                         'feature maps of one pixel): use a larger video, or an input size (resize) that '
                         'enlarges the frames')


def prepare_clip(model: nn.Module, frames: Sequence[np.ndarray], expressions: Sequence[str],
                 transforms: Optional[list] = None) -> tuple:
    """One clip of BGR frames -> (model inputs [1, T, 3, Hp, Wp], one data sample per expression).

    Raises:
        ValueError: frames smaller than ``MIN_FRAME_SIZE`` after the test pipeline's resize
            (:func:`check_frame_size`).
    """
    transforms = transforms if transforms is not None else _test_transforms(model)
    h, w = frames[0].shape[:2]
    results = dict(imgs=list(frames), ori_shape=(h, w), img_shape=(h, w), flip=False,
                   frame_ids=[str(i) for i in range(len(frames))], valid_frame_idx=None)
    for t in transforms:
        results = t(results)
    check_frame_size((h, w), results['data_samples'].metainfo.get('img_shape', (h, w)))
    data = model.data_preprocessor(dict(inputs=[results['inputs']], data_samples=[results['data_samples']]),
                                   False)
    meta = data['data_samples'][0].metainfo
    samples = [RVOSDataSample(metainfo=dict(meta, expression=e, exp_id=str(k)))
               for k, e in enumerate(expressions)]
    return data['inputs'], samples


@torch.no_grad()
def inference_rvos(model: nn.Module,
                   video,
                   expressions: Union[str, Sequence[str]],
                   clip_len: Optional[int] = None,
                   channel_order: str = 'rgb',
                   share_clips: Optional[bool] = None,
                   test_options: Optional[RVOSTestOptions] = None,
                   test_pipeline: Optional[Sequence[dict]] = None) -> List[RVOSDataSample]:
    """Segment the object each expression refers to in every frame of a video.

    The video is read and processed in consecutive clips of ``clip_len`` frames (each clip
    chooses its referred query on its own, as the official per-clip evaluation does); the
    backbone and all text-independent stages run once per clip for all expressions, the
    text-dependent stages batched over the expressions.

    Args:
        model (nn.Module): a SOC model (``init_model``).
        video: mp4 (or any OpenCV-readable video) path, frame-folder path, uint8 array
            [T, H, W, 3] or list of [H, W, 3] arrays.
        expressions (str | list[str]): referring expressions.
        clip_len (int, optional): frames per clip; default ``model.test_cfg.clip_len``, or
            ``STREAM_CLIP_LEN`` (36) when that is None (the test loop's "whole video").
        channel_order (str): channel order of array inputs: 'rgb' (default) or 'bgr'.
        share_clips (bool, optional): share the text-independent stages (``test_cfg.share_clips``;
            None: the model's, default True); False gives every expression its own copy of each
            clip (the per-expression baseline).
        test_options (RVOSTestOptions, optional): the test options of this call only (object
            selection, score threshold, clip length, ...; e.g. ``model.test_options.replace(
            object_selection='threshold', score_thr=0.5)``); None: ``model.test_options``. The
            model's options are neither read nor changed when given, so concurrent calls with
            different options share no mutable state.
        test_pipeline (list[dict], optional): the test pipeline of this call only (its loading
            transforms are skipped; it must end with ``PackRVOSInputs``); None: the model config's
            ``test_dataloader.dataset.pipeline``.

    Returns:
        list[RVOSDataSample]: one per expression, in order, with ``pred_masks`` bool Tensor
        [T, H0, W0], ``pred_scores`` float Tensor [T] (original resolution, all T frames)
        and metainfo ``expression``, ``ori_shape``, ``img_shape``, ``num_frames``.

    Raises:
        FileNotFoundError / ValueError: missing or unreadable video, zero frames, frames of
        differing sizes, frames smaller than ``MIN_FRAME_SIZE`` pixels after the test pipeline's
        resize, empty expression list.
    """
    expressions = _check_expressions(expressions)
    options = _stream_options(model, clip_len, share_clips, test_options)
    transforms = _test_transforms(model, test_pipeline)
    num_frames, meta = 0, {}

    def clip_stream():
        nonlocal num_frames, meta
        for frames, inputs, samples, clip_index in _clip_batches(model, video, expressions, options, transforms,
                                                                 channel_order):
            meta = samples[0].metainfo
            num_frames += len(frames)
            yield inputs, samples, clip_index

    inference = VideoInference(model, options)
    merged = inference.predict_stream(clip_stream(), results_device='cpu')
    return [_result_sample(model, expression, k, result, meta, 0, num_frames)
            for k, (expression, result) in enumerate(zip(expressions, merged))]


def _clip_batches(model: nn.Module, video, expressions: List[str], options: RVOSTestOptions, transforms: list,
                  channel_order: str) -> Iterator[Tuple[List[np.ndarray], torch.Tensor, list, torch.Tensor]]:
    """The video's consecutive clips of ``options.clip_len`` frames, read lazily: per clip its BGR frames,
    the model inputs [G, t, 3, Hp, Wp], one sample per expression and the clip of each sample (G = 1 when
    ``options.share_clips``; else every expression its own copy of the clip: no stage shared)."""
    for frames in iter_clips(iter_video_frames(video, channel_order), options.clip_len):
        inputs, samples = prepare_clip(model, frames, expressions, transforms)
        if options.share_clips:  # one clip for every expression
            yield frames, inputs, samples, inputs.new_zeros(len(samples), dtype=torch.long)
        else:
            yield (frames, inputs.expand(len(samples), *inputs.shape[1:]), samples,
                   torch.arange(len(samples), device=inputs.device))


def _result_sample(model: nn.Module, expression: str, k: int, result, meta: dict, start: int,
                   num_frames: int) -> RVOSDataSample:
    """The head's result over ``num_frames`` frames from frame ``start`` -> an ``RVOSDataSample``
    (``pred_masks``, ``pred_scores``, ...; metainfo ``expression``, ``exp_id``, shapes, ``frame_ids``)."""
    out = RVOSDataSample(metainfo=dict(expression=expression, exp_id=str(k), ori_shape=meta['ori_shape'],
                                       img_shape=meta['img_shape'], num_frames=num_frames,
                                       frame_ids=[str(i) for i in range(start, start + num_frames)]))
    return model.add_pred_to_datasample([out], [result])[0]


@dataclasses.dataclass
class StreamClip:
    """One clip of ``stream_rvos``.

    Attributes:
        index (int): the clip's number (0, 1, ...).
        start (int): the video index of its first frame (its frames are ``start`` ... ``start + len(frames) - 1``).
        frames (list[np.ndarray]): its frames as read, BGR uint8 [H0, W0, 3].
        results (list[RVOSDataSample]): one per expression, in order: ``pred_masks`` bool Tensor
            [t, H0, W0] and ``pred_scores`` float Tensor [t] of the clip's t frames (plus ``pred_objects``
            with threshold selection), metainfo ``expression``, ``exp_id``, ``ori_shape``, ``img_shape``,
            ``num_frames`` (t) and ``frame_ids`` (video frame indices ``start`` ... as strings).
    """
    index: int
    start: int
    frames: List[np.ndarray]
    results: List[RVOSDataSample]

    @property
    def num_frames(self) -> int:
        return len(self.frames)


def stream_rvos(model: nn.Module,
                video,
                expressions: Union[str, Sequence[str]],
                channel_order: str = 'rgb',
                test_options: Optional[RVOSTestOptions] = None,
                test_pipeline: Optional[Sequence[dict]] = None,
                **options) -> Iterator[StreamClip]:
    """Segment the objects the expressions refer to in a video of any length, yielding clip by clip.

    The frames are decoded lazily (a video file or a frame folder, ``clip_len`` frames at a time); each
    clip runs through the model's video inference as in ``inference_rvos`` (backbone and every
    text-independent stage once per frame for all expressions, the text-dependent stages batched over
    the expressions) and is yielded at once with its frames and results; nothing is kept after that but
    the choice of the objects (``link_clips``), so the peak memory does not grow with the video length.
    With the same options, the clips' results concatenated over time equal ``inference_rvos``'s.

    Args:
        model (nn.Module): a SOC model (``init_model``).
        video: video file path (anything OpenCV decodes), frame-folder path, uint8 array [T, H, W, 3]
            or list of [H, W, 3] arrays.
        expressions (str | list[str]): referring expressions.
        channel_order (str): channel order of array inputs: 'rgb' (default) or 'bgr'.
        test_options (RVOSTestOptions, optional): the test options of this call (None: ``model.test_options``;
            the model's are never changed).
        test_pipeline (list[dict], optional): as ``inference_rvos``.
        **options: test options changed for this call (``RVOSTestOptions`` fields; None keeps the
            option), e.g. ``clip_len=36`` (default: the options', ``STREAM_CLIP_LEN`` when None),
            ``link_clips=True`` (follow the chosen object from clip to clip), ``presence_thr=0.5``
            (empty masks on the frames where the object is absent), ``share_clips``,
            ``object_selection`` / ``score_thr``.

    Yields:
        StreamClip: ``index``, ``start``, ``frames`` (BGR) and ``results`` (one ``RVOSDataSample`` per
        expression over the clip's frames).

    Raises:
        FileNotFoundError / ValueError: as ``inference_rvos`` (raised when the generator is first advanced
        for a bad video; at once for bad expressions or options).
    """
    expressions = _check_expressions(expressions)
    clip_len, share_clips = options.pop('clip_len', None), options.pop('share_clips', None)
    options = _stream_options(model, clip_len, share_clips, test_options, 'stream_rvos', **options)
    transforms = _test_transforms(model, test_pipeline)
    return _stream(model, video, expressions, options, transforms, channel_order)


@torch.no_grad()
def _stream(model: nn.Module, video, expressions: List[str], options: RVOSTestOptions, transforms: list,
            channel_order: str) -> Iterator[StreamClip]:
    """``stream_rvos``'s generator (its arguments already checked)."""
    batches = _clip_batches(model, video, expressions, options, transforms, channel_order)
    clip_frames: List[List[np.ndarray]] = []
    clip_meta: List[dict] = []

    def clip_stream():
        for frames, inputs, samples, clip_index in batches:
            clip_frames.append(frames)
            clip_meta.append(samples[0].metainfo)
            yield inputs, samples, clip_index

    start = 0
    inference = VideoInference(model, options)
    for index, results in enumerate(inference.iter_stream(clip_stream(), results_device='cpu')):
        frames, meta = clip_frames.pop(), clip_meta.pop()
        yield StreamClip(index=index, start=start, frames=frames,
                         results=[_result_sample(model, expression, k, result, meta, start, len(frames))
                                  for k, (expression, result) in enumerate(zip(expressions, results))])
        start += len(frames)


def count_video_frames(video) -> Optional[int]:
    """The number of frames of ``video`` when known without decoding it (for a progress bar): a frame
    folder's image files, an array's or list's length, a video file's frame count as its container
    states it (may differ slightly from the decodable frames); None when unknown."""
    if isinstance(video, (str, os.PathLike)):
        path = os.fspath(video)
        if osp.isdir(path):
            return sum(1 for f in os.listdir(path) if f.lower().endswith(IMG_EXTENSIONS))
        if not osp.isfile(path):
            return None
        import cv2
        cap = cv2.VideoCapture(path)
        try:
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        finally:
            cap.release()
        return count if count > 0 else None
    try:
        return len(video)
    except TypeError:
        return None
