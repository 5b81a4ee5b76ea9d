"""``RVOSInferencer``: referring video object segmentation in one call, on MMEngine's ``BaseInferencer``
(as mmdet's ``DetInferencer`` for images).

    from soc_mm.apis import RVOSInferencer
    inferencer = RVOSInferencer('configs/soc/soc_swin-t_refytvos.py', 'soc_swin-t_refytvos.pth')
    result = inferencer('video.mp4', ['the red car', 'a person on the left'], out_dir='outputs/')

A model is a config (a path, a config name such as ``soc/soc_swin-t_refytvos.py`` or
``soc_swin-t_refytvos`` looked up in the package's configs, a model name of ``model-index.yml``, or a
``Config``) plus weights (a local checkpoint; ``backend='onnxruntime'``: a graph written by
``tools/deployment/export_onnx.py``, whose stored config is used when none is given), or an already
built SOC model. The input is a video file, a folder of frame images or an array [T, H, W, 3]; one or
more expressions. The stages are ``BaseInferencer``'s: ``preprocess`` (checks, test pipeline, clip
schedule) -> ``forward`` (the clips, predicted one by one, with a progress bar) -> ``visualize`` (the
masks drawn over the clip's frames, appended to a video) -> ``postprocess`` (the clip's
Ref-YouTube-VOS submission PNGs written, its masks encoded as COCO RLE); as mmdet's ``DetInferencer`` does
per batch, each clip goes through all four before the next is read, so the memory does not grow with the
video length (unless the masks or painted frames are asked back). With the PyTorch backend the clips are
those of :func:`soc_mm.apis.stream_rvos` and the results those of :func:`soc_mm.apis.inference_rvos`;
with ONNX Runtime those of :meth:`soc_mm.apis.deployment.ONNXRuntimeSOC.stream`.

Files under ``out_dir``::

    vis/<video>.mp4                                   masks over the frames, one colour per expression
    preds/Annotations/<video>/<exp_id>/<frame>.png    Ref-YouTube-VOS submission layout (0 / 255 PNGs)
    preds/<video>_rle.json                            COCO RLE of every mask, with the scores

``<video>``: the file or folder name (``video`` for arrays; ``video_name=`` sets it), ``<exp_id>``: the
expression's index from 0, ``<frame>``: the frame image's name for folders, else ``00000``, ``00001``, ...
"""
import copy
import json
import os
import os.path as osp
import re
import time
import warnings
from typing import Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.infer import BaseInferencer
from torch import nn

from soc_mm.structures import RVOSDataSample
from .inference import (IMG_EXTENSIONS, _check_expressions, _stream_options, _test_transforms, count_video_frames,
                        init_model)

BACKENDS = ('pytorch', 'onnxruntime')
#: the highest fps a visualised video may be written at (video players and codecs go no higher)
MAX_FPS = 240
#: fps of the visualised video when the input has none (frame folders, arrays)
DEFAULT_FPS = 10.0


# ---------------------------------------------------------------------- configs
def config_roots() -> List[str]:
    """Where config names are looked up: the package's ``.mim`` folder (installed package) and the
    source checkout holding the package (``<repo>/configs``)."""
    import soc_mm
    package = osp.dirname(osp.abspath(soc_mm.__file__))
    return [root for root in (osp.join(package, '.mim'), osp.dirname(package))
            if osp.isdir(osp.join(root, 'configs'))]


def resolve_config(model: Union[str, Config, ConfigDict, dict]) -> Config:
    """A config from a path, a config name, a ``model-index.yml`` model name or a config object.

    Names: ``soc/soc_swin-t_refytvos.py`` (relative to ``configs/``), ``soc_swin-t_refytvos`` (a file
    name anywhere under ``configs/``, ``.py`` optional) or a model's ``Name`` in ``model-index.yml``.

    Raises:
        FileNotFoundError: naming the places searched.
        TypeError: neither a str nor a config.
    """
    if isinstance(model, Config):
        return copy.deepcopy(model)
    if isinstance(model, (ConfigDict, dict)):
        return Config(copy.deepcopy(dict(model)))
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f'RVOSInferencer: model must be a config path or name, a Config or a SOC model, '
                        f'got {type(model).__name__}')
    model = os.fspath(model)
    if osp.isfile(model):
        return Config.fromfile(model)
    roots = config_roots()
    name = model if model.endswith('.py') else model + '.py'
    for root in roots:
        for candidate in (osp.join(root, name), osp.join(root, 'configs', name)):
            if osp.isfile(candidate):
                return Config.fromfile(candidate)
    for root in roots:
        for folder, _, files in sorted(os.walk(osp.join(root, 'configs'))):
            if osp.basename(name) in files and '_base_' not in folder.split(os.sep):
                return Config.fromfile(osp.join(folder, osp.basename(name)))
    for root in roots:
        if not osp.isfile(osp.join(root, 'model-index.yml')):
            continue
        for entry in BaseInferencer._get_models_from_metafile(root):
            names = [entry.get('Name', '')] + list(entry.get('Alias', []) or [])
            if model.lower() in (n.lower() for n in names):
                return Config.fromfile(osp.join(root, entry['Config']))
    raise FileNotFoundError(f'RVOSInferencer: {model!r} is not a config file, nor a config or model name under '
                            f'{[osp.join(r, "configs") for r in roots] or "(no configs folder found)"}')


# ---------------------------------------------------------------------- inputs and outputs
def video_name_of(video) -> str:
    """A file-name-safe name for a video: its file (without extension) or folder name; 'video' for arrays."""
    if isinstance(video, (str, os.PathLike)):
        path = osp.normpath(os.fspath(video))
        base = osp.basename(path) if osp.isdir(path) else osp.splitext(osp.basename(path))[0]
        name = re.sub(r'[^A-Za-z0-9_.-]+', '_', base).strip('_.')[:64]
        return name or 'video'
    return 'video'


def frame_names_of(video, num_frames: int) -> List[str]:
    """The frames' names: the image names (without extension) of a frame folder, else 00000, 00001, ..."""
    if isinstance(video, (str, os.PathLike)) and osp.isdir(video):
        names = [osp.splitext(f)[0] for f in sorted(os.listdir(video)) if f.lower().endswith(IMG_EXTENSIONS)]
        if len(names) == num_frames and len(set(names)) == len(names):
            return names
    return [f'{t:05d}' for t in range(num_frames)]


def source_fps(video, default: float = DEFAULT_FPS) -> float:
    """The frame rate of a video file (``default`` for folders, arrays and files without one)."""
    if not isinstance(video, (str, os.PathLike)) or osp.isdir(video):
        return default
    import cv2
    cap = cv2.VideoCapture(os.fspath(video))
    fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0
    cap.release()
    return float(fps) if fps and 0 < fps <= 120 else default


def masks_to_rle(video_name: str, frame_names: Sequence[str], expressions: Sequence[str],
                 masks: Sequence[np.ndarray], scores: Sequence[np.ndarray]) -> dict:
    """The masks as COCO RLE (``soc_mm.structures.mask.encode_mask``): ``{'video', 'height', 'width',
    'frames', 'expressions': [{'exp_id', 'expression', 'scores' [T], 'masks' [T] RLE}]}``.

    Args:
        masks: per expression, bool [T, H, W]; scores: per expression, float [T].
    """
    from soc_mm.structures.mask import encode_mask
    height, width = masks[0].shape[1:]
    return dict(video=video_name, height=int(height), width=int(width), frames=list(frame_names),
                expressions=[dict(exp_id=str(k), expression=text, scores=[round(float(s), 6) for s in score],
                                  masks=[encode_mask(m) for m in mask])
                             for k, (text, mask, score) in enumerate(zip(expressions, masks, scores))])


def write_annotation_pngs(root: str, video_name: str, frame_names: Sequence[str],
                          masks: Sequence[np.ndarray]) -> List[str]:
    """``<root>/Annotations/<video>/<exp_id>/<frame>.png`` (0 / 255, the Ref-YouTube-VOS submission
    layout), one folder per expression (``exp_id`` = its index). Returns the expression folders."""
    from PIL import Image
    folders = []
    for exp_id, exp_masks in enumerate(masks):
        folder = osp.join(root, 'Annotations', video_name, str(exp_id))
        os.makedirs(folder, exist_ok=True)
        for name, mask in zip(frame_names, exp_masks):
            Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255).save(osp.join(folder, f'{name}.png'))
        folders.append(folder)
    return folders


def concat_clip_samples(parts: Sequence[RVOSDataSample], num_frames: int) -> RVOSDataSample:
    """One expression's per-clip results (``StreamClip.results[k]`` of consecutive clips) -> its result
    over the whole video, as ``inference_rvos`` returns it: ``pred_masks`` [T, H, W] and ``pred_scores``
    [T] concatenated; ``pred_objects`` (threshold selection: each clip's k objects) padded to the largest
    k with empty slots (masks False, scores 0, query index -1) and concatenated over time, as
    ``merge_clip_results`` does; ``pred_instances`` (every query) concatenated over time."""
    from mmengine.structures import InstanceData
    first = parts[0]
    out = RVOSDataSample(metainfo=dict(first.metainfo, num_frames=num_frames,
                                       frame_ids=[str(i) for i in range(num_frames)]))
    out.pred_masks = torch.cat([p.pred_masks for p in parts])
    out.pred_scores = torch.cat([p.pred_scores for p in parts])
    if 'pred_instances' in first:  # fields [nq, t, ...]
        out.pred_instances = InstanceData(**{key: torch.cat([p.pred_instances.get(key) for p in parts], 1)
                                             for key in first.pred_instances.keys()})
    if 'pred_objects' in first:  # fields [k, t, ...], k per clip
        k = max(len(p.pred_objects) for p in parts)
        fields = {}
        for key in first.pred_objects.keys():
            padded = []
            for p in parts:
                value = p.pred_objects.get(key)
                fill = False if value.dtype == torch.bool else (0 if value.is_floating_point() else -1)
                pad = value.new_full((k - value.shape[0], *value.shape[1:]), fill)
                padded.append(torch.cat([value, pad]))
            fields[key] = torch.cat(padded, 1)
        out.pred_objects = InstanceData(**fields)
    return out


class _Progress:
    """A rich progress bar over the clips (total known when the frame count is), or nothing."""

    def __init__(self, enabled: bool, total: Optional[int], description: str) -> None:
        self.bar = None
        if enabled:
            from rich.progress import Progress
            self.bar = Progress(transient=False)
            self.task = self.bar.add_task(description, total=total)

    def __enter__(self) -> '_Progress':
        if self.bar is not None:
            self.bar.start()
        return self

    def advance(self, *_) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


# ---------------------------------------------------------------------- the inferencer
class RVOSInferencer(BaseInferencer):
    """Referring video object segmentation: a video and expressions -> masks, scores, a visualised
    video and the Ref-YouTube-VOS PNG / COCO RLE files (see the module docstring).

    Args:
        model (str | Config | nn.Module, optional): config path or name (``resolve_config``), a config,
            or a built SOC model (then ``weights`` must be None). ``backend='onnxruntime'``: optional,
            default the config stored in the graph.
        weights (str, optional): a local checkpoint (PyTorch; None: random weights, with a warning)
            or the ``.onnx`` graph (ONNX Runtime; required).
        device (str, optional): PyTorch device ('cpu', 'cuda:0'); default: CUDA when available.
            ONNX Runtime runs on the CPU.
        backend (str): 'pytorch' (default) or 'onnxruntime'.
        cfg_options (dict, optional): config overrides (e.g. ``{'model.text_encoder.model_path': DIR}``).
        fast_kernels (bool, optional): PyTorch: ``init_model``'s switch (default True).
        num_threads (int, optional): ONNX Runtime intra-op threads.
        show_progress (bool): a progress bar over the clips.

    Call: ``inferencer(inputs, expressions, return_datasamples=False, out_dir='', video_name=None,
    **kwargs)`` with, per stage:

    * preprocess: ``clip_len`` (frames per clip; ONNX Runtime: the graph's, fixed), ``channel_order``
      of arrays ('rgb' | 'bgr'), ``share_clips``, ``test_options`` (``RVOSTestOptions`` of this call),
      ``test_pipeline`` (list of transform dicts of this call), ``link_clips`` (follow the chosen object
      from clip to clip; PyTorch only), ``presence_thr`` (empty masks where the object is absent): as
      ``stream_rvos``;
    * visualize: ``return_vis`` (return the painted RGB frames), ``no_save_vis`` (write no video under
      ``out_dir``), ``out_video`` (write the video to this path instead), ``fps`` (default: the input's,
      or 10), ``alpha`` (mask opacity), ``font_size``;
    * postprocess: ``no_save_pred`` (write no PNG / RLE file), ``print_result``.

    Returns:
        dict: ``predictions``: per expression a dict ``expression``, ``exp_id``, ``scores`` (list [T]),
        ``masks`` (COCO RLE per frame), or the ``RVOSDataSample`` results (``return_datasamples``:
        ``pred_masks`` bool [T, H, W], ``pred_scores`` [T], as ``inference_rvos``); ``visualization``:
        the painted frames (``return_vis``) or None; ``files``: the files and folders written.
    """

    preprocess_kwargs: set = {'clip_len', 'channel_order', 'share_clips', 'test_options', 'test_pipeline',
                               'link_clips', 'presence_thr'}
    forward_kwargs: set = set()
    visualize_kwargs: set = {'return_vis', 'no_save_vis', 'out_video', 'fps', 'alpha', 'font_size'}
    postprocess_kwargs: set = {'no_save_pred', 'print_result'}

    def __init__(self,
                 model: Union[None, str, Config, nn.Module] = None,
                 weights: Optional[str] = None,
                 device: Optional[str] = None,
                 backend: str = 'pytorch',
                 cfg_options: Optional[dict] = None,
                 fast_kernels: Optional[bool] = True,
                 num_threads: Optional[int] = None,
                 show_progress: bool = True,
                 scope: str = 'soc_mm') -> None:
        if backend not in BACKENDS:
            raise ValueError(f'RVOSInferencer: backend must be one of {BACKENDS}, got {backend!r}')
        self.backend, self.cfg_options = backend, dict(cfg_options or {})
        self.fast_kernels, self.num_threads = fast_kernels, num_threads
        if isinstance(model, nn.Module):  # an already built SOC model
            if weights is not None or backend != 'pytorch':
                raise ValueError('RVOSInferencer: a built model takes no weights and runs with the PyTorch backend')
            self.scope, self.model, self.show_progress = scope, model, show_progress
            self.cfg = getattr(model, 'cfg', None) or Config()
            self.pipeline = self._init_pipeline(self.cfg)
            self.collate_fn = pseudo_collate
            self.visualizer = None
            return
        if backend == 'onnxruntime':
            if weights is None:
                raise ValueError("RVOSInferencer: backend='onnxruntime' needs weights=<the .onnx graph written by "
                                 'tools/deployment/export_onnx.py>')
            if model is None:
                from .deployment import read_metadata
                stored = read_metadata(weights).get('config')
                if not stored:
                    raise ValueError(f'{weights}: the graph holds no config; pass the model config')
                model = Config.fromstring(stored, '.py')
        elif model is None:
            raise ValueError('RVOSInferencer: model (a config path or name) is required with the PyTorch backend')
        cfg = resolve_config(model)
        if self.cfg_options:
            cfg.merge_from_dict(self.cfg_options)
        super().__init__(model=cfg, weights=weights, device=device, scope=scope, show_progress=show_progress)

    # ------------------------------------------------------------------ BaseInferencer's set-up
    def _init_model(self, cfg: Config, weights: Optional[str], device: str = 'cpu'):
        """PyTorch: ``soc_mm.apis.init_model`` (safe, strict checkpoint loading); ONNX Runtime:
        ``ONNXRuntimeSOC``."""
        if self.backend == 'onnxruntime':
            from .deployment import ONNXRuntimeSOC
            return ONNXRuntimeSOC(weights, config=cfg, num_threads=self.num_threads)
        if weights is None:
            warnings.warn('RVOSInferencer: no weights given: the model has random weights (the config\'s '
                          'pretrained backbone, if any)')
        return init_model(cfg, weights, device=device, fast_kernels=self.fast_kernels)

    def _init_pipeline(self, cfg: Config) -> list:
        """The config's test transforms (loading transforms skipped; default: resize to 360 / 640, pack)."""
        return _test_transforms(self.model)

    def _init_collate(self, cfg: Config):
        return pseudo_collate  # clips are batched by the data pre-processor

    def _init_visualizer(self, cfg: Config):
        return None  # an RVOSVisualizer of its own per call (``visualize``)

    # ------------------------------------------------------------------ the call
    def __call__(self, inputs, expressions: Union[str, Sequence[str]], return_datasamples: bool = False,
                 out_dir: str = '', video_name: Optional[str] = None, **kwargs) -> dict:
        """Segment the objects ``expressions`` refer to in the video ``inputs`` (see the class docstring).

        As mmdet's ``DetInferencer`` does per batch, every clip is visualised and post-processed as soon as
        it is predicted (its painted frames appended to the video, its PNGs written); only the compact
        results (scores, COCO RLE; the masks with ``return_datasamples``, the painted frames with
        ``return_vis``) are kept, so the memory does not grow with the video length otherwise.
        """
        from soc_mm.visualization import check_video_output_path, write_video
        preprocess_kwargs, forward_kwargs, visualize_kwargs, postprocess_kwargs = self._dispatch_kwargs(**kwargs)
        fps = visualize_kwargs.pop('fps', None)
        if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= MAX_FPS):
            raise ValueError(f'RVOSInferencer: fps={fps!r}: expected a number in (0, {MAX_FPS}] (None: the input\'s)')
        data = self.preprocess(inputs, expressions, **preprocess_kwargs)
        name = video_name or video_name_of(inputs)
        out_video = visualize_kwargs.pop('out_video', None)
        no_save_vis = visualize_kwargs.pop('no_save_vis', False)
        path = out_video or (osp.join(out_dir, 'vis', f'{name}.mp4') if out_dir and not no_save_vis else None)
        if path is not None:
            check_video_output_path(path)  # before any work
        return_vis = visualize_kwargs.pop('return_vis', False)
        save_pred = bool(out_dir) and not postprocess_kwargs.get('no_save_pred', False)
        state = dict(data=data, out_dir=out_dir, video_name=name, vis=[] if return_vis else None, parts=None,
                     rle=None, files=[], num_frames=0, save_pred=save_pred)

        def painted() -> Iterator[np.ndarray]:
            with _Progress(self.show_progress, data['num_clips'], 'Inference (clips)') as progress:
                for clip in self.forward(data, **forward_kwargs):
                    frames = self.visualize(clip, draw=path is not None or return_vis, **visualize_kwargs)
                    self.postprocess(clip, state, return_datasamples=return_datasamples, **postprocess_kwargs)
                    progress.advance()
                    if state['vis'] is not None:
                        state['vis'].extend(frames)
                    yield from frames or ()

        if path is not None:
            write_video(path, painted(), fps or source_fps(inputs))
            state['files'].insert(0, path)
        else:
            for _ in painted():
                pass
        return self._results(state, return_datasamples, postprocess_kwargs.get('print_result', False))

    def preprocess(self, inputs, expressions: Union[str, Sequence[str]], clip_len: Optional[int] = None,
                   channel_order: str = 'rgb', share_clips: Optional[bool] = None, test_options=None,
                   test_pipeline: Optional[Sequence[dict]] = None, link_clips: Optional[bool] = None,
                   presence_thr: Optional[float] = None) -> dict:
        """Check the inputs and settle the clip schedule (nothing is decoded yet).

        Returns a dict: ``video``, ``expressions``, ``clips`` (the lazy stream of ``StreamClip``:
        ``soc_mm.apis.stream_rvos``, or ``ONNXRuntimeSOC.stream``), ``num_clips`` (None when the frame count
        is unknown), ``frame_names``.

        Raises:
            FileNotFoundError: a missing video path. TypeError / ValueError: an input that is neither a
            path nor an array of frames, no or empty expressions, a bad channel order, clip length or
            test option.
        """
        from .inference import stream_rvos
        if isinstance(inputs, (str, os.PathLike)):
            if not osp.exists(inputs):
                raise FileNotFoundError(f'RVOSInferencer: video not found: {os.fspath(inputs)}')
        elif isinstance(inputs, torch.Tensor):
            inputs = inputs.cpu().numpy()
        elif not isinstance(inputs, (np.ndarray, list, tuple)):
            raise TypeError('RVOSInferencer: inputs must be a video file, a folder of frames, an array '
                            f'[T, H, W, 3] or a list of [H, W, 3] frames, got {type(inputs).__name__}')
        if channel_order not in ('rgb', 'bgr'):
            raise ValueError(f"RVOSInferencer: channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
        expressions = _check_expressions(expressions)
        num_frames = count_video_frames(inputs)
        if self.backend == 'onnxruntime':
            runtime = self.model
            if clip_len is not None and clip_len != runtime.num_frames:
                raise ValueError(f'RVOSInferencer: the ONNX graph takes clips of {runtime.num_frames} frames '
                                 f'(fixed at export), got clip_len={clip_len}')
            if share_clips is False:
                raise ValueError('RVOSInferencer: share_clips=False is not available with the ONNX graph '
                                 '(every expression of a clip runs in one forward)')
            options = _stream_options(runtime, None, None, test_options)
            changes = {k: v for k, v in dict(link_clips=link_clips, presence_thr=presence_thr).items() if v is not None}
            options = options.replace(**changes) if changes else options
            clips = runtime.stream(inputs, expressions, channel_order, test_options=options,
                                   test_pipeline=test_pipeline)
            step = runtime.num_frames
        else:
            clips = stream_rvos(self.model, inputs, expressions, channel_order, test_options=test_options,
                                test_pipeline=test_pipeline, clip_len=clip_len, share_clips=share_clips,
                                link_clips=link_clips, presence_thr=presence_thr)
            step = _stream_options(self.model, clip_len, share_clips, test_options).clip_len
        num_clips = None if not num_frames else -(-num_frames // step)
        return dict(video=inputs, expressions=expressions, clips=clips, num_clips=num_clips,
                    frame_names=frame_names_of(inputs, num_frames or 0))

    def forward(self, data: dict) -> Iterator:
        """The clips of ``preprocess``'s stream, each predicted when it is reached: ``StreamClip``
        (``start``, ``frames`` BGR, ``results``: one ``RVOSDataSample`` per expression over the clip's
        frames, ``pred_masks`` bool [t, H, W], ``pred_scores`` [t])."""
        with torch.no_grad():
            yield from data['clips']

    def visualize(self, clip, draw: bool = True, alpha: float = 0.5,
                  font_size: Optional[int] = None) -> Optional[List[np.ndarray]]:
        """One clip's frames with its masks drawn (one colour per expression, the expressions written in
        their colours): RGB uint8 [H, W, 3] per frame; None when ``draw`` is False."""
        if not draw:
            return None
        from soc_mm.visualization import RVOSVisualizer
        masks = [r.pred_masks.numpy() for r in clip.results]  # bool [t, H0, W0] each
        expressions = [r.expression for r in clip.results]
        if getattr(self, '_painter', None) is None or self._painter_key != (alpha, font_size, masks[0].shape[1]):
            self._painter = RVOSVisualizer(name=f'rvos_inferencer_{id(self)}_{time.monotonic_ns()}', alpha=alpha,
                                           font_size=font_size or max(12, int(masks[0].shape[1] / 30)))
            self._painter_key = (alpha, font_size, masks[0].shape[1])
        return [self._painter.draw_frame(np.ascontiguousarray(frame[..., ::-1]), [m[t] for m in masks], expressions)
                for t, frame in enumerate(clip.frames)]

    def postprocess(self, clip, state: dict, return_datasamples: bool = False, no_save_pred: bool = False,
                    print_result: bool = False) -> None:
        """One clip's results: its PNGs written under ``<out_dir>/preds/Annotations/<video>/<exp_id>/``
        (unless ``no_save_pred``), its masks encoded as COCO RLE, its data samples kept with
        ``return_datasamples`` (``state`` gathers them for the call's result)."""
        results = clip.results
        names = state['data']['frame_names']
        frame_names = [names[clip.start + t] if clip.start + t < len(names) else f'{clip.start + t:05d}'
                       for t in range(clip.num_frames)]
        masks = [r.pred_masks.numpy().astype(bool) for r in results]
        scores = [r.pred_scores.float().numpy() for r in results]
        rle = masks_to_rle(state['video_name'], frame_names, [r.expression for r in results], masks, scores)
        if state['rle'] is None:
            state['rle'] = rle
        else:
            state['rle']['frames'] += rle['frames']
            for entry, new in zip(state['rle']['expressions'], rle['expressions']):
                entry['scores'] += new['scores']
                entry['masks'] += new['masks']
        if state['save_pred']:
            write_annotation_pngs(osp.join(state['out_dir'], 'preds'), state['video_name'], frame_names, masks)
        if return_datasamples:
            state['parts'] = [[] for _ in results] if state['parts'] is None else state['parts']
            for part, result in zip(state['parts'], results):
                part.append(result)
        present = state.get('present') or [0] * len(masks)  # frames with a mask, per expression
        state['present'] = [n + int(m.any((1, 2)).sum()) for n, m in zip(present, masks)]
        state['num_frames'] += clip.num_frames

    def _results(self, state: dict, return_datasamples: bool, print_result: bool) -> dict:
        """The call's result from the clips' (``postprocess``): predictions, visualisation, files written."""
        rle, name = state['rle'], state['video_name']
        if state['save_pred']:
            pred_dir = osp.join(state['out_dir'], 'preds')
            json_path = osp.join(pred_dir, f'{name}_rle.json')
            with open(json_path, 'w') as f:
                json.dump(rle, f)
            state['files'] += [osp.join(pred_dir, 'Annotations', name), json_path]
        if return_datasamples:
            predictions = [concat_clip_samples(parts, state['num_frames']) for parts in state['parts']]
        else:
            predictions = rle['expressions']
        if print_result:
            for k, entry in enumerate(rle['expressions']):
                print(f'{k}: {entry["expression"]!r}: {len(entry["scores"])} frames, mean score '
                      f'{float(np.mean(entry["scores"])):.3f}, {state["present"][k]} frames with a mask')
        return dict(predictions=predictions, visualization=state['vis'], files=state['files'])

    # ------------------------------------------------------------------ without outputs
    def segment(self, inputs, expressions: Union[str, Sequence[str]], **kwargs) -> List[RVOSDataSample]:
        """``preprocess`` + ``forward`` only: the ``RVOSDataSample`` results over the whole video (as
        ``inference_rvos``), nothing drawn or written. ``kwargs``: the preprocess options (``clip_len``,
        ``channel_order``, ``share_clips``, ``test_options``, ``test_pipeline``, ``link_clips``,
        ``presence_thr``)."""
        unknown = set(kwargs) - self.preprocess_kwargs
        if unknown:
            raise ValueError(f'RVOSInferencer.segment: unknown arguments {sorted(unknown)}; expected some of '
                             f'{sorted(self.preprocess_kwargs)}')
        parts, num_frames = None, 0
        for clip in self.forward(self.preprocess(inputs, expressions, **kwargs)):
            parts = [[] for _ in clip.results] if parts is None else parts
            for part, result in zip(parts, clip.results):
                part.append(result)
            num_frames += clip.num_frames
        return [concat_clip_samples(p, num_frames) for p in parts]

