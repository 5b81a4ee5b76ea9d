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
schedule) -> ``forward`` (clip by clip, with a progress bar) -> ``visualize`` (the masks drawn over
the frames, written as a video) -> ``postprocess`` (masks and scores per expression; the
Ref-YouTube-VOS submission PNGs and COCO RLE written). With the PyTorch backend the results are
those of :func:`soc_mm.apis.inference_rvos` (the same clip schedule); with ONNX Runtime those of
:meth:`soc_mm.apis.deployment.ONNXRuntimeSOC.inference`.

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
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.infer import BaseInferencer
from torch import nn

from soc_mm.structures import RVOSDataSample
from .inference import (IMG_EXTENSIONS, _check_expressions, _stream_options, _test_transforms, count_video_frames,
                        init_model, iter_video_frames, prepare_clip)

BACKENDS = ('pytorch', 'onnxruntime')
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
      ``test_pipeline`` (list of transform dicts of this call): as ``inference_rvos``;
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

    preprocess_kwargs: set = {'clip_len', 'channel_order', 'share_clips', 'test_options', 'test_pipeline'}
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
        """Segment the objects ``expressions`` refer to in the video ``inputs`` (see the class docstring)."""
        preprocess_kwargs, forward_kwargs, visualize_kwargs, postprocess_kwargs = self._dispatch_kwargs(**kwargs)
        data = self.preprocess(inputs, expressions, **preprocess_kwargs)
        preds = self.forward(data, **forward_kwargs)
        name = video_name or video_name_of(inputs)
        visualization = self.visualize(data, preds, out_dir=out_dir, video_name=name, **visualize_kwargs)
        result = self.postprocess(preds, visualization, return_datasamples, out_dir=out_dir, video_name=name,
                                  video=inputs, **postprocess_kwargs)
        if visualization is not None and visualization.get('file'):
            result['files'].insert(0, visualization['file'])
        return result

    def preprocess(self, inputs, expressions: Union[str, Sequence[str]], clip_len: Optional[int] = None,
                   channel_order: str = 'rgb', share_clips: Optional[bool] = None, test_options=None,
                   test_pipeline: Optional[Sequence[dict]] = None) -> dict:
        """Check the inputs and settle the clip schedule (nothing is decoded yet).

        Returns a dict: ``video``, ``expressions``, ``channel_order``, ``options`` (``RVOSTestOptions``
        of the call), ``transforms``, ``test_pipeline``, ``num_clips`` (None when the frame count is
        unknown).

        Raises:
            FileNotFoundError: a missing video path. TypeError / ValueError: an input that is neither a
            path nor an array of frames, no or empty expressions, a bad channel order or clip length.
        """
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
            if clip_len is not None and clip_len != self.model.num_frames:
                raise ValueError(f'RVOSInferencer: the ONNX graph takes clips of {self.model.num_frames} frames '
                                 f'(fixed at export), got clip_len={clip_len}')
            if share_clips is False:
                raise ValueError('RVOSInferencer: share_clips=False is not available with the ONNX graph '
                                 '(every expression of a clip runs in one forward)')
            options = test_options or self.model.test_options
            transforms = _test_transforms(self.model, test_pipeline)
            step = self.model.num_frames
        else:
            options = _stream_options(self.model, clip_len, share_clips, test_options)
            transforms = _test_transforms(self.model, test_pipeline)  # per call: no transform shared by threads
            step = options.clip_len
        num_clips = None if not num_frames else -(-num_frames // step)
        return dict(video=inputs, expressions=expressions, channel_order=channel_order, options=options,
                    transforms=transforms, test_pipeline=test_pipeline, num_clips=num_clips)

    @torch.no_grad()
    def forward(self, data: dict) -> List[RVOSDataSample]:
        """Run the model clip by clip (progress bar over the clips) -> one ``RVOSDataSample`` per
        expression (``pred_masks`` bool [T, H, W], ``pred_scores`` [T]; as ``inference_rvos``)."""
        with _Progress(self.show_progress, data['num_clips'], 'Inference (clips)') as progress:
            if self.backend == 'onnxruntime':
                return self.model.inference(data['video'], data['expressions'], data['channel_order'],
                                            test_options=data['options'], test_pipeline=data['test_pipeline'],
                                            progress=progress.advance)
            return self._forward_pytorch(data, progress)

    def _forward_pytorch(self, data: dict, progress: _Progress) -> List[RVOSDataSample]:
        """``inference_rvos``'s clip stream and ``VideoInference.predict_stream``."""
        from soc_mm.models.inference import VideoInference, iter_clips
        model, options, expressions = self.model, data['options'], data['expressions']
        state = dict(num_frames=0, meta={})

        def clip_stream():
            for frames in iter_clips(iter_video_frames(data['video'], data['channel_order']), options.clip_len):
                inputs, samples = prepare_clip(model, frames, expressions, data['transforms'])
                state['meta'] = samples[0].metainfo
                state['num_frames'] += len(frames)
                if options.share_clips:  # one clip for every expression
                    yield inputs, samples, inputs.new_zeros(len(samples), dtype=torch.long)
                else:  # every expression its own copy of the clip
                    yield (inputs.expand(len(samples), *inputs.shape[1:]), samples,
                           torch.arange(len(samples), device=inputs.device))
                progress.advance()

        merged = VideoInference(model, options).predict_stream(clip_stream(), results_device='cpu')
        num_frames, meta = state['num_frames'], state['meta']
        results = []
        for k, (expression, result) in enumerate(zip(expressions, merged)):
            out = RVOSDataSample(metainfo=dict(expression=expression, exp_id=str(k), ori_shape=meta['ori_shape'],
                                               img_shape=meta['img_shape'], num_frames=num_frames,
                                               frame_ids=[str(i) for i in range(num_frames)]))
            results.append(model.add_pred_to_datasample([out], [result])[0])
        return results

    def visualize(self, data: dict, preds: List[RVOSDataSample], out_dir: str = '', video_name: str = 'video',
                  return_vis: bool = False, no_save_vis: bool = False, out_video: Optional[str] = None,
                  fps: Optional[float] = None, alpha: float = 0.5, font_size: Optional[int] = None) -> Optional[dict]:
        """The masks drawn over the frames (one colour per expression, the expressions written in their
        colours), read again lazily from the input. Written to ``out_video``, else to
        ``<out_dir>/vis/<video>.mp4`` (unless ``no_save_vis``); returned with ``return_vis``.

        Returns:
            None when nothing is drawn, else a dict: ``frames`` (RGB uint8 [H, W, 3] list, or None
            without ``return_vis``), ``file`` (the video written, or None).
        """
        from soc_mm.visualization import RVOSVisualizer, check_video_output_path, write_video
        path = out_video or (osp.join(out_dir, 'vis', f'{video_name}.mp4') if out_dir and not no_save_vis else None)
        if path is None and not return_vis:
            return None
        if path is not None:
            check_video_output_path(path)
        masks = [p.pred_masks.numpy() for p in preds]  # bool [T, H0, W0] each
        expressions = [p.expression for p in preds]
        vis = RVOSVisualizer(name=f'rvos_inferencer_{id(self)}_{time.monotonic_ns()}', alpha=alpha,
                             font_size=font_size or max(12, int(masks[0].shape[1] / 30)))
        kept = [] if return_vis else None

        def painted():
            for t, frame in enumerate(iter_video_frames(data['video'], data['channel_order'])):  # BGR
                if t >= len(masks[0]):
                    break
                image = vis.draw_frame(np.ascontiguousarray(frame[..., ::-1]), [m[t] for m in masks], expressions)
                if kept is not None:
                    kept.append(image)
                yield image

        if path is not None:
            write_video(path, painted(), fps or source_fps(data['video']))
        else:
            for _ in painted():
                pass
        return dict(frames=kept, file=path)

    def postprocess(self, preds: List[RVOSDataSample], visualization: Optional[dict],
                    return_datasamples: bool = False, out_dir: str = '', video_name: str = 'video', video=None,
                    no_save_pred: bool = False, print_result: bool = False) -> dict:
        """Results as dicts (masks as COCO RLE) or data samples; the Ref-YouTube-VOS PNGs and the COCO RLE
        JSON written under ``<out_dir>/preds/`` unless ``no_save_pred`` (see the module docstring)."""
        masks = [p.pred_masks.numpy().astype(bool) for p in preds]
        scores = [p.pred_scores.float().numpy() for p in preds]
        expressions = [p.expression for p in preds]
        frame_names = frame_names_of(video, len(masks[0]))
        files = []
        rle = None
        if out_dir and not no_save_pred:
            pred_dir = osp.join(out_dir, 'preds')
            write_annotation_pngs(pred_dir, video_name, frame_names, masks)
            files.append(osp.join(pred_dir, 'Annotations', video_name))
            rle = masks_to_rle(video_name, frame_names, expressions, masks, scores)
            json_path = osp.join(pred_dir, f'{video_name}_rle.json')
            with open(json_path, 'w') as f:
                json.dump(rle, f)
            files.append(json_path)
        if return_datasamples:
            predictions = preds
        else:
            rle = rle or masks_to_rle(video_name, frame_names, expressions, masks, scores)
            predictions = rle['expressions']
        if print_result:
            for k, (text, score) in enumerate(zip(expressions, scores)):
                print(f'{k}: {text!r}: {len(score)} frames, mean score {float(score.mean()):.3f}, '
                      f'{int(masks[k].any((1, 2)).sum())} frames with a mask')
        return dict(predictions=predictions, visualization=None if visualization is None else visualization['frames'],
                    files=files)

    # ------------------------------------------------------------------ without outputs
    def segment(self, inputs, expressions: Union[str, Sequence[str]], **kwargs) -> List[RVOSDataSample]:
        """``preprocess`` + ``forward`` only: the ``RVOSDataSample`` results, nothing drawn or written.
        ``kwargs``: the preprocess options (``clip_len``, ``channel_order``, ``share_clips``,
        ``test_options``, ``test_pipeline``)."""
        unknown = set(kwargs) - self.preprocess_kwargs
        if unknown:
            raise ValueError(f'RVOSInferencer.segment: unknown arguments {sorted(unknown)}; expected some of '
                             f'{sorted(self.preprocess_kwargs)}')
        return self.forward(self.preprocess(inputs, expressions, **kwargs))
