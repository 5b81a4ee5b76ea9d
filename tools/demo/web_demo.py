"""A web page (Gradio) to try SOC on your own video: upload it, type expressions, see the masks.

    python tools/demo/web_demo.py                                   # the model `make demo` trains
    python tools/demo/web_demo.py --config CONFIG --checkpoint CKPT [--host 127.0.0.1 --port 7860]

Without ``--config`` / ``--checkpoint`` it serves the checkpoint of ``make demo``
(``work_dirs/demo/train/iter_<max_iters>.pth``, ``configs/soc/soc_tiny_synthetic.py`` with the tiny
text encoder ``work_dirs/demo/tiny_roberta``) and says how to get it when it is missing.

What runs where: the model is loaded once, in this process, through ``soc_mm.apis.init_model``
(``safe_load_local``: nothing in a checkpoint can run code). Requests go through Gradio's queue
(``--concurrency`` requests at a time, default 1; the model itself runs one inference at a time).
Each request works in its own temporary folder under ``--temp-dir`` (Gradio's upload cache lives
there too); a session's previous folder is deleted when it sends its next request or closes, and
everything at exit. The page never opens a public share link and binds to 127.0.0.1 unless told.

A request: a video (mp4/webm/avi/mov/mkv, or a zip of frame images) or one of the bundled synthetic
clips, one expression per line, the clip length, the input size and (when the model has
``test_cfg.object_selection``) top-1 or multi-object selection. The video is read and segmented clip
by clip (``inference_rvos`` on each clip of ``clip_len`` frames: the backbone once per clip for all
expressions; clips are independent in SOC's video inference, so this equals one call on the whole
video), with the progress per clip in the page. Results: the video with one colour per expression and
the legend, each expression's score over time, a few key frames, and downloads (the video, the masks
as PNGs in the Ref-YouTube-VOS submission layout ``Annotations/<video>/<exp_id>/<frame>.png`` zipped,
and the masks as COCO RLE in a JSON file).
"""
import argparse
import atexit
import copy
import io
import json
import os
import os.path as osp
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_WORK_DIR = osp.join(REPO, 'work_dirs', 'demo')
DEMO_CONFIG = osp.join(REPO, 'configs', 'soc', 'soc_tiny_synthetic.py')
VIDEO_UPLOAD_EXTENSIONS = ('.mp4', '.webm', '.avi', '.mov', '.mkv')
FRAME_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
SELECTION_TOP1 = 'top-1: one object per expression'
SELECTION_MULTI = 'multi-object: every object above the score threshold'
NO_EXAMPLE = '(none: use the uploaded video)'


class DemoSetupError(RuntimeError):
    """The demo cannot start (missing checkpoint / config / text encoder); the message says what to do."""


@dataclass
class Limits:
    """What one request may ask for."""
    max_upload_mb: float = 200.0     #: size of an uploaded file (and of a zip's frames, uncompressed)
    max_frames: int = 600            #: frames of a video
    max_expressions: int = 10        #: expressions per request (one colour each)
    max_clip_len: int = 64           #: frames per clip
    max_input_size: int = 720        #: short side the frames may be resized to


# ---------------------------------------------------------------------- model
def demo_paths(work_dir: str = DEMO_WORK_DIR) -> Tuple[str, str, str]:
    """(config, checkpoint, text encoder folder) of the model ``make demo`` trains
    (``tools/demo/run_demo.py``: ``<work_dir>/train/iter_<max_iters>.pth``)."""
    max_iters = None
    info = osp.join(work_dir, 'train_info.json')
    if osp.isfile(info):
        with open(info) as f:
            max_iters = json.load(f).get('max_iters')
    if max_iters is None:
        from mmengine.config import Config
        max_iters = Config.fromfile(DEMO_CONFIG).train_cfg.max_iters
    return (DEMO_CONFIG, osp.join(work_dir, 'train', f'iter_{max_iters}.pth'), osp.join(work_dir, 'tiny_roberta'))


def load_demo_model(config, checkpoint: str, device: str = 'cpu', text_encoder: Optional[str] = None):
    """The served model: ``soc_mm.apis.init_model`` (the checkpoint read by ``safe_load_local``, strict).

    Args:
        config (str | Config): model config.
        checkpoint (str): checkpoint file.
        device (str): e.g. 'cpu', 'cuda:0'.
        text_encoder (str, optional): folder of the HF text encoder, overrides
            ``model.text_encoder.model_path``.

    Raises:
        UnsafeCheckpointError / CheckpointFormatError / CheckpointMismatchError: see ``init_model``.
    """
    from soc_mm.apis import init_model
    options = {'model.text_encoder.model_path': text_encoder} if text_encoder else None
    return init_model(config, checkpoint, device=device, cfg_options=options)


def has_object_selection(model) -> bool:
    """Whether the model's head chooses objects by ``test_cfg.object_selection`` (top-1 / threshold)."""
    try:
        from soc_mm.models.dense_heads.soc_head import OBJECT_SELECTIONS
    except ImportError:  # a soc_mm without it
        return False
    return 'threshold' in OBJECT_SELECTIONS and isinstance(getattr(getattr(model, 'bbox_head', None), 'test_cfg',
                                                                       None), dict)


# ---------------------------------------------------------------------- inputs
def safe_name(name: str, default: str = 'video') -> str:
    """A file-name-safe version of ``name`` (letters, digits, '-', '_'; at most 64 characters)."""
    name = re.sub(r'[^A-Za-z0-9_-]+', '_', name).strip('_')[:64]
    return name or default


def parse_expressions(text: Optional[str], max_expressions: int) -> List[str]:
    """One expression per line (blank lines ignored)."""
    expressions = [line.strip() for line in (text or '').splitlines() if line.strip()]
    if not expressions:
        raise ValueError('No referring expression: type one expression per line (e.g. "the red circle").')
    if len(expressions) > max_expressions:
        raise ValueError(f'{len(expressions)} expressions, at most {max_expressions} per request '
                         '(one colour each).')
    return expressions


def truncation_warnings(model, expressions: Sequence[str]) -> List[str]:
    """One message per expression longer than the text encoder takes (it is truncated)."""
    encoder = getattr(model, 'text_encoder', None)
    tokenizer, max_tokens = getattr(encoder, 'tokenizer', None), getattr(encoder, 'max_tokens', None)
    if tokenizer is None or max_tokens is None:
        return []
    messages = []
    for k, text in enumerate(expressions):
        num = len(tokenizer(text, verbose=False)['input_ids'])
        if num > max_tokens:
            messages.append(f'Expression {k + 1} has {num} tokens, more than the {max_tokens} the text encoder '
                            f'takes (<s> and </s> included): it was truncated to its first {max_tokens - 2} '
                            f'tokens ("{text[:60]}{"..." if len(text) > 60 else ""}").')
    return messages


def extract_zip_frames(zip_path: str, display_name: str, out_dir: str, limits: Limits) -> Tuple[str, List[str]]:
    """Frame images of a zip -> ``out_dir/00000.<ext>, ...`` (names made here: nothing of the zip's
    member names reaches the file system) in the order of the member names. Returns (folder,
    frame names: the members' sanitized stems, or indices when those repeat)."""
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f'{display_name}: not a readable zip file ({e}).') from None
    with archive:
        members = sorted((m for m in archive.infolist()
                          if not m.is_dir() and m.filename.lower().endswith(FRAME_EXTENSIONS)
                          and not osp.basename(m.filename).startswith('.')), key=lambda m: m.filename)
        if not members:
            raise ValueError(f'{display_name}: the zip holds no frame images '
                             f'(expected {"/".join(FRAME_EXTENSIONS)} files).')
        if len(members) > limits.max_frames:
            raise ValueError(f'{display_name}: {len(members)} frames, more than the limit of '
                             f'{limits.max_frames} frames.')
        total = sum(m.file_size for m in members)
        if total > limits.max_upload_mb * 2 ** 20:
            raise ValueError(f'{display_name}: the frames take {total / 2 ** 20:.0f} MB uncompressed, more than '
                             f'the limit of {limits.max_upload_mb:.0f} MB.')
        os.makedirs(out_dir)
        for i, member in enumerate(members):
            ext = osp.splitext(member.filename)[1].lower()
            with archive.open(member) as src, open(osp.join(out_dir, f'{i:05d}{ext}'), 'wb') as dst:
                shutil.copyfileobj(src, dst)
    stems = [safe_name(osp.splitext(osp.basename(m.filename))[0], f'{i:05d}') for i, m in enumerate(members)]
    if len(set(stems)) != len(stems):
        stems = [f'{i:05d}' for i in range(len(members))]
    return out_dir, stems


def count_video_frames(path: str, display_name: str, max_frames: int) -> int:
    """Decode the whole video once (fails early on unreadable, empty and too long videos)."""
    import cv2
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise ValueError(f'{display_name}: cannot open the video (unreadable, truncated or unsupported format).')
        count = 0
        while cap.grab():
            count += 1
            if count > max_frames:
                raise ValueError(f'{display_name}: the video has more than {max_frames} frames, the limit of this '
                                 'server (trim it, or use a lower frame rate).')
    finally:
        cap.release()
    if count == 0:
        raise ValueError(f'{display_name}: the video has zero decodable frames (empty, truncated or unreadable).')
    return count


def iter_rgb_frames(source: str, display_name: str):
    """RGB uint8 frames [H, W, 3] of a video file or frame folder (``iter_video_frames``), with our
    temporary paths replaced by the upload's name in errors."""
    from soc_mm.apis import iter_video_frames
    try:
        for frame in iter_video_frames(source, channel_order='bgr'):
            yield np.ascontiguousarray(frame[..., ::-1])
    except (ValueError, FileNotFoundError) as e:
        raise ValueError(str(e).replace(source, display_name)) from None


def source_fps(path: str, default: float = 10.0) -> float:
    if osp.isdir(path):
        return default
    import cv2
    cap = cv2.VideoCapture(path)
    fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0
    cap.release()
    return float(fps) if fps and 0 < fps <= 120 else default


# ---------------------------------------------------------------------- outputs
def write_masks_zip(path: str, video_name: str, frame_names: Sequence[str], masks: Sequence[np.ndarray]) -> None:
    """Ref-YouTube-VOS submission layout: ``Annotations/<video>/<exp_id>/<frame>.png`` (0/255 PNGs),
    ``exp_id`` = the expression's line index from 0. Member names are built from sanitized names."""
    from PIL import Image
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as archive:
        for exp_id, exp_masks in enumerate(masks):
            for name, mask in zip(frame_names, exp_masks):
                buffer = io.BytesIO()
                Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format='PNG')
                archive.writestr(f'Annotations/{video_name}/{exp_id}/{name}.png', buffer.getvalue())


def rle_json(video_name: str, frame_names: Sequence[str], expressions: Sequence[str],
             masks: Sequence[np.ndarray], scores: Sequence[np.ndarray]) -> dict:
    """The masks as COCO RLE (``soc_mm.structures.mask.encode_mask``), one entry per expression."""
    from soc_mm.structures.mask import encode_mask
    height, width = masks[0].shape[1:]
    return dict(video=video_name, height=int(height), width=int(width), frames=list(frame_names),
                expressions=[dict(exp_id=str(k), expression=text, scores=[round(float(s), 6) for s in score],
                                  masks=[encode_mask(m) for m in mask])
                             for k, (text, mask, score) in enumerate(zip(expressions, masks, scores))])


def score_figure(expressions: Sequence[str], scores: Sequence[np.ndarray]):
    """Matplotlib figure: each expression's score [T] over the frames, in its mask colour."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib.figure import Figure
    from soc_mm.visualization import PALETTE
    fig = Figure(figsize=(6, 2.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for k, (text, score) in enumerate(zip(expressions, scores)):
        color = np.array(PALETTE[k % len(PALETTE)]) / 255
        ax.plot(np.arange(len(score)), score, marker='o', markersize=3, color=color,
                label=text if len(text) <= 40 else text[:37] + '...')
    ax.set_xlabel('frame')
    ax.set_ylabel('score')
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='lower left')
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- the app
class WebDemo:
    """The request handler behind the page: one model, one temporary root, per-request folders.

    Args:
        model: a SOC model (``load_demo_model``).
        temp_root (str): folder for the per-request folders (``requests/``) and the examples.
        limits (Limits): upload limits.
        num_examples (int): synthetic example clips generated at start-up.
    """

    def __init__(self, model, temp_root: str, limits: Limits = Limits(), num_examples: int = 3) -> None:
        self.model = model
        self.limits = limits
        self.temp_root = osp.abspath(temp_root)
        self.requests_root = osp.join(self.temp_root, 'requests')
        os.makedirs(self.requests_root, exist_ok=True)
        self.model_lock = threading.Lock()  # the model runs one inference at a time
        self.selection = has_object_selection(model)
        cfg_clip = (getattr(model, 'test_cfg', None) or {}).get('clip_len')
        self.default_clip_len = int(min(cfg_clip or 8, limits.max_clip_len))
        self.examples = self.make_examples(osp.join(self.temp_root, 'examples'), num_examples)

    # ------------------------------------------------------------------ examples
    @staticmethod
    def make_examples(out_dir: str, num: int) -> Dict[str, Tuple[str, List[str]]]:
        """Synthetic clips (``soc_mm.datasets.synthetic.make_video``: moving coloured shapes, 16 frames at
        96x96, as the demo model's training data) -> {name: (mp4 path, expressions)}."""
        from soc_mm.datasets.synthetic import make_video
        from soc_mm.visualization import write_video
        os.makedirs(out_dir, exist_ok=True)
        examples = {}
        for k in range(num):
            video = make_video(np.random.default_rng(100 + k), 16, 96, 96)
            path = osp.join(out_dir, f'synthetic_{k + 1}.mp4')
            write_video(path, [np.ascontiguousarray(f[..., ::-1]) for f in video['frames']], fps=8)
            expressions = [video['expressions'][i] for i in sorted(video['expressions'])]
            examples[f'synthetic clip {k + 1}: {", ".join(expressions)}'] = (path, expressions)
        return examples

    # ------------------------------------------------------------------ per-request folders
    def _inside(self, path: str, root: str) -> bool:
        root = osp.realpath(root)
        return osp.commonpath([osp.realpath(path), root]) == root

    def release(self, request_dir: Optional[str]) -> None:
        """Delete a request folder (only ever one under ``requests_root``)."""
        if request_dir and osp.isdir(request_dir) and self._inside(request_dir, self.requests_root) \
                and osp.realpath(request_dir) != osp.realpath(self.requests_root):
            shutil.rmtree(request_dir, ignore_errors=True)

    # ------------------------------------------------------------------ model settings of a request
    def _request_cfg(self, input_size: int):
        """``model.cfg`` with the test pipeline resizing to ``input_size`` (short side; long side at
        most twice that); 0 keeps the config's pipeline."""
        cfg = self.model.cfg
        if not input_size:
            return cfg
        cfg = copy.deepcopy(cfg)
        resize = dict(type='RVOSRandomResize', short_side=[int(input_size)], max_size=2 * int(input_size))
        try:
            pipeline = list(cfg.test_dataloader.dataset.pipeline)
        except AttributeError:
            from soc_mm.apis.inference import DEFAULT_TEST_PIPELINE
            pipeline = copy.deepcopy(DEFAULT_TEST_PIPELINE)
            cfg.test_dataloader = dict(dataset=dict(pipeline=pipeline))
        pipeline = [t for t in pipeline if t['type'] != 'RVOSRandomResize']
        pack = next(i for i, t in enumerate(pipeline) if t['type'] == 'PackRVOSInputs')
        pipeline.insert(pack, resize)
        cfg.test_dataloader.dataset.pipeline = pipeline
        return cfg

    def segment(self, frames: Sequence[np.ndarray], expressions: Sequence[str], input_size: int,
                selection: Optional[str], score_thr: float) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """One clip of RGB frames -> per expression (masks bool [T, H, W], scores float [T])."""
        from soc_mm.apis import inference_rvos
        with self.model_lock:
            head = getattr(self.model, 'bbox_head', None)
            saved_cfg, saved_head_cfg = self.model.cfg, dict(getattr(head, 'test_cfg', None) or {})
            try:
                self.model.cfg = self._request_cfg(input_size)
                if self.selection and selection is not None:
                    head.test_cfg.pop('score_thr', None)
                    head.test_cfg.update(object_selection='top1')
                    if selection == SELECTION_MULTI:
                        head.test_cfg.update(object_selection='threshold', score_thr=float(score_thr))
                results = inference_rvos(self.model, list(frames), list(expressions), clip_len=len(frames),
                                         channel_order='rgb')
            finally:
                self.model.cfg = saved_cfg
                if head is not None and saved_head_cfg:
                    head.test_cfg.clear()
                    head.test_cfg.update(saved_head_cfg)
        return ([r.pred_masks.numpy().astype(bool) for r in results],
                [r.pred_scores.float().numpy() for r in results])

    # ------------------------------------------------------------------ a request
    def run(self, upload: Optional[str], example: Optional[str], expressions_text: str, clip_len: float,
            input_size: float, selection: Optional[str], score_thr: float, previous_dir: Optional[str],
            progress=None):
        """Handle one request. Returns a dict: ``status`` (markdown), ``warnings`` (list of str),
        ``video`` (path), ``figure`` (score plot), ``key_frames`` (RGB uint8 [h, w, 3]),
        ``downloads`` (paths), ``request_dir`` (this request's folder). Raises ValueError with a
        message for the page."""
        self.release(previous_dir)  # the session's previous results
        limits = self.limits
        expressions = parse_expressions(expressions_text, limits.max_expressions)
        clip_len = int(clip_len or self.default_clip_len)
        if not 1 <= clip_len <= limits.max_clip_len:
            raise ValueError(f'clip length must be 1-{limits.max_clip_len} frames, got {clip_len}.')
        input_size = int(input_size or 0)
        if input_size and not 32 <= input_size <= limits.max_input_size:
            raise ValueError(f'input size must be 0 (the config\'s) or 32-{limits.max_input_size}, got {input_size}.')
        if upload:
            source, display_name = str(upload), osp.basename(str(upload))
        elif example and example in self.examples:
            source, display_name = self.examples[example][0], osp.basename(self.examples[example][0])
        else:
            raise ValueError('No video: upload a video (mp4/webm/avi or a zip of frames) or pick an example clip.')
        if not osp.isfile(source):
            raise ValueError(f'{display_name}: the uploaded file is gone; upload it again.')
        size = osp.getsize(source)
        if size > limits.max_upload_mb * 2 ** 20:
            raise ValueError(f'{display_name}: {size / 2 ** 20:.0f} MB, more than the limit of '
                             f'{limits.max_upload_mb:.0f} MB.')
        ext = osp.splitext(display_name)[1].lower()
        if ext not in VIDEO_UPLOAD_EXTENSIONS + ('.zip', ):
            raise ValueError(f'{display_name}: unsupported file type {ext or "(none)"!r}; expected a video '
                             f'({"/".join(VIDEO_UPLOAD_EXTENSIONS)}) or a .zip of frame images.')
        warnings = truncation_warnings(self.model, expressions)
        request_dir = tempfile.mkdtemp(prefix='req_', dir=self.requests_root)
        try:
            return self._segment_request(request_dir, source, display_name, ext, expressions, warnings, clip_len,
                                         input_size, selection, score_thr, progress)
        except BaseException:  # no folder left behind by a failed request
            self.release(request_dir)
            raise

    def _segment_request(self, request_dir, source, display_name, ext, expressions, warnings, clip_len, input_size,
                         selection, score_thr, progress):
        """The part of ``run`` that works in ``request_dir`` (see ``run``)."""
        limits = self.limits
        video_name = safe_name(osp.splitext(display_name)[0])
        if ext == '.zip':
            source, frame_names = extract_zip_frames(source, display_name, osp.join(request_dir, 'frames'), limits)
            num_frames = len(frame_names)
        else:
            num_frames = count_video_frames(source, display_name, limits.max_frames)
            frame_names = [f'{t:05d}' for t in range(num_frames)]
        fps = source_fps(source)

        start = time.time()
        num_clips = -(-num_frames // clip_len)
        masks = [[] for _ in expressions]
        scores = [[] for _ in expressions]
        frames_read, clip = 0, []
        if progress is not None:
            progress((0, num_clips), desc='segmenting', unit='clip')

        def flush(clip, index):
            clip_masks, clip_scores = self.segment(clip, expressions, input_size, selection, score_thr)
            for k in range(len(expressions)):
                masks[k].append(clip_masks[k])
                scores[k].append(clip_scores[k])
            if progress is not None:
                progress((index + 1, num_clips), desc=f'clip {index + 1}/{num_clips}', unit='clip')

        for frame in iter_rgb_frames(source, display_name):
            frames_read += 1
            if frames_read > num_frames:  # the file changed under us, or the decoder disagrees
                break
            clip.append(frame)
            if len(clip) == clip_len:
                flush(clip, (frames_read - 1) // clip_len)
                clip = []
        if clip:
            flush(clip, num_clips - 1)
        num_frames = min(frames_read, num_frames)
        frame_names = frame_names[:num_frames]
        masks = [np.concatenate(m)[:num_frames] for m in masks]
        scores = [np.concatenate(s)[:num_frames] for s in scores]
        seconds = time.time() - start

        # outputs (only files made here, all inside request_dir)
        from soc_mm.visualization import RVOSVisualizer, write_video
        height = masks[0].shape[1]
        vis = RVOSVisualizer(name=f'web_demo_{osp.basename(request_dir)}', alpha=0.5,
                             font_size=max(7, int(height / 24)), max_frames=4)
        painted = []

        def paint():
            for t, frame in enumerate(iter_rgb_frames(source, display_name)):
                if t >= num_frames:
                    break
                image = vis.draw_frame(frame, [m[t] for m in masks], expressions)
                if t in key_ids:
                    painted.append(image)
                yield image

        key_ids = set(np.unique(np.linspace(0, num_frames - 1, min(num_frames, 4)).round().astype(int)).tolist())
        video_path = osp.join(request_dir, f'{video_name}_soc.mp4')
        write_video(video_path, paint(), fps)
        key_frames = vis.tile(painted)
        zip_path = osp.join(request_dir, f'{video_name}_masks.zip')
        write_masks_zip(zip_path, video_name, frame_names, masks)
        json_path = osp.join(request_dir, f'{video_name}_masks_rle.json')
        with open(json_path, 'w') as f:
            json.dump(rle_json(video_name, frame_names, expressions, masks, scores), f)
        downloads = [video_path, zip_path, json_path]
        assert all(self._inside(p, request_dir) for p in downloads)
        status = [f'**{display_name}**: {num_frames} frames ({masks[0].shape[2]}x{height}) x {len(expressions)} '
                  f'expression(s) in {num_clips} clip(s) of up to {clip_len} frames, {seconds:.1f} s.']
        status += [f'- <span style="color:rgb{tuple(self._color(k))}">&#9632;</span> {k}: {text} '
                   f'(mean score {scores[k].mean():.2f})' for k, text in enumerate(expressions)]
        status += [f'\n**Warning:** {w}' for w in warnings]
        return dict(status='\n'.join(status), warnings=warnings, video=video_path,
                    figure=score_figure(expressions, scores), key_frames=key_frames, downloads=downloads,
                    request_dir=request_dir)

    @staticmethod
    def _color(k: int):
        from soc_mm.visualization import PALETTE
        return PALETTE[k % len(PALETTE)]


def build_app(demo: WebDemo, concurrency: int = 1):
    """The Gradio page around ``demo`` (queue: ``concurrency`` requests at a time)."""
    import gradio as gr

    limits = demo.limits

    def on_example(name):
        if name in demo.examples:
            return '\n'.join(demo.examples[name][1])
        return gr.update()

    def on_run(upload, example, expressions, clip_len, input_size, selection, score_thr, previous_dir,
               progress=gr.Progress()):
        try:
            out = demo.run(upload, example, expressions, clip_len, input_size, selection, score_thr, previous_dir,
                           progress)
        except ValueError as e:
            raise gr.Error(str(e), print_exception=False) from None
        for warning in out['warnings']:
            gr.Warning(warning)
        return out['status'], out['video'], out['figure'], out['key_frames'], out['downloads'], out['request_dir']

    theme = gr.themes.Default(font=['ui-sans-serif', 'system-ui', 'sans-serif'],
                              font_mono=['ui-monospace', 'monospace'])  # no web fonts: works offline
    with gr.Blocks(title='SOC: referring video object segmentation', analytics_enabled=False,
                   delete_cache=(600, 3600)) as app:
        app.soc_theme = theme
        gr.Markdown('## SOC: segment the objects your sentences refer to in a video\n'
                    'Upload a video (mp4/webm/avi, or a zip of frame images) or pick an example, type one '
                    f'expression per line, press **Run**. Limits: {limits.max_upload_mb:.0f} MB, '
                    f'{limits.max_frames} frames, {limits.max_expressions} expressions.')
        request_dir = gr.State(None, delete_callback=demo.release)
        with gr.Row():
            with gr.Column():
                upload = gr.File(label='video or zip of frames', file_types=list(VIDEO_UPLOAD_EXTENSIONS) + ['.zip'],
                                 type='filepath', elem_id='upload')
                example = gr.Dropdown([NO_EXAMPLE] + list(demo.examples), value=NO_EXAMPLE,
                                      label='or an example clip', elem_id='example')
                expressions = gr.Textbox(label='expressions (one per line)', lines=4, elem_id='expressions',
                                         placeholder='the red circle on the left\nthe blue square')
                with gr.Row():
                    clip_len = gr.Slider(1, limits.max_clip_len, value=demo.default_clip_len, step=1,
                                         label='clip length (frames per forward pass)', elem_id='clip_len')
                    input_size = gr.Slider(0, limits.max_input_size, value=0, step=8,
                                           label="input size (short side; 0 = the config's)", elem_id='input_size')
                if demo.selection:
                    selection = gr.Radio([SELECTION_TOP1, SELECTION_MULTI], value=SELECTION_TOP1,
                                         label='objects per expression', elem_id='selection')
                    score_thr = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label='score threshold (multi-object)',
                                          elem_id='score_thr')
                else:
                    selection, score_thr = gr.State(None), gr.State(0.5)
                run = gr.Button('Run', variant='primary', elem_id='run')
            with gr.Column():
                status = gr.Markdown(elem_id='status')
                video = gr.Video(label='result', format=None, elem_id='result_video', interactive=False)
                plot = gr.Plot(label='score over time', elem_id='score_plot')
                key_frames = gr.Image(label='key frames', type='numpy', interactive=False, elem_id='key_frames')
                downloads = gr.File(label='downloads: video, masks (Ref-YouTube-VOS PNGs, zip), masks (COCO RLE, json)',
                                    file_count='multiple', interactive=False, elem_id='downloads')
        example.change(on_example, example, expressions, api_name=False)
        run.click(on_run, [upload, example, expressions, clip_len, input_size, selection, score_thr, request_dir],
                  [status, video, plot, key_frames, downloads, request_dir], api_name='segment')
    app.queue(default_concurrency_limit=concurrency, max_size=64)
    return app


# ---------------------------------------------------------------------- command line
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='SOC web demo (Gradio): segment what sentences refer to in a video')
    parser.add_argument('--config', help='model config (default: the `make demo` model)')
    parser.add_argument('--checkpoint', help='checkpoint (default: the `make demo` checkpoint)')
    parser.add_argument('--text-encoder', help='text encoder folder (overrides model.text_encoder.model_path)')
    parser.add_argument('--device', default='cpu', help="e.g. 'cpu', 'cuda:0'")
    parser.add_argument('--host', default='127.0.0.1', help='address to bind (default 127.0.0.1: this machine only)')
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument('--concurrency', type=int, default=1, help='requests processed at a time (default 1)')
    parser.add_argument('--max-upload-mb', type=float, default=200.0, help='largest upload in MB (default 200)')
    parser.add_argument('--max-frames', type=int, default=600, help='longest video in frames (default 600)')
    parser.add_argument('--max-expressions', type=int, default=10, help='expressions per request (default 10)')
    parser.add_argument('--temp-dir', help='folder for uploads and results (default: a new temporary folder, '
                        'removed at exit)')
    parser.add_argument('--num-examples', type=int, default=3, help='synthetic example clips (default 3)')
    args = parser.parse_args(argv)
    if (args.config is None) != (args.checkpoint is None):
        parser.error('give both --config and --checkpoint, or neither (the `make demo` model)')
    if args.concurrency < 1 or args.max_frames < 1 or args.max_upload_mb <= 0 or args.max_expressions < 1:
        parser.error('--concurrency, --max-frames, --max-upload-mb and --max-expressions must be positive')
    return args


def resolve_model_paths(args) -> Tuple[str, str, Optional[str]]:
    """(config, checkpoint, text encoder) from the arguments or the `make demo` outputs."""
    if args.config is not None:
        for what, path in (('config', args.config), ('checkpoint', args.checkpoint)):
            if not osp.isfile(path):
                raise DemoSetupError(f'{what} not found: {path}')
        return args.config, args.checkpoint, args.text_encoder
    config, checkpoint, text_encoder = demo_paths()
    missing = [p for p in (checkpoint, osp.join(text_encoder, 'config.json')) if not osp.exists(p)]
    if missing:
        raise DemoSetupError(
            f'the `make demo` model is not there ({", ".join(missing)} missing).\n'
            'Train it first with `make demo` (about 15 min on 2 CPU cores; writes work_dirs/demo/), '
            'or serve another model: python tools/demo/web_demo.py --config CONFIG --checkpoint CKPT')
    return config, checkpoint, args.text_encoder or text_encoder


def main(argv=None):
    args = parse_args(argv)
    try:
        config, checkpoint, text_encoder = resolve_model_paths(args)
    except DemoSetupError as e:
        print(f'web_demo: {e}', file=sys.stderr)
        return 2
    own_temp = args.temp_dir is None
    temp_root = osp.abspath(args.temp_dir or tempfile.mkdtemp(prefix='soc_web_demo_'))
    os.makedirs(temp_root, exist_ok=True)
    if own_temp:
        atexit.register(shutil.rmtree, temp_root, True)
    else:
        atexit.register(shutil.rmtree, osp.join(temp_root, 'requests'), True)
        atexit.register(shutil.rmtree, osp.join(temp_root, 'gradio'), True)
    # Gradio's upload / output cache under our temporary root (read when gradio is imported)
    os.environ['GRADIO_TEMP_DIR'] = osp.join(temp_root, 'gradio')
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    print(f'loading {checkpoint} ({config}) ...', flush=True)
    model = load_demo_model(config, checkpoint, args.device, text_encoder)
    limits = Limits(max_upload_mb=args.max_upload_mb, max_frames=args.max_frames,
                    max_expressions=args.max_expressions)
    demo = WebDemo(model, temp_root, limits, num_examples=args.num_examples)
    app = build_app(demo, concurrency=args.concurrency)
    print(f'temporary files under {temp_root}', flush=True)
    # `kill` / a service manager's stop: exit normally so that the temporary files go (atexit)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app.launch(server_name=args.host, server_port=args.port, share=False, inbrowser=False, show_error=True,
               max_file_size=f'{int(args.max_upload_mb)}mb', allowed_paths=[demo.requests_root],
               ssr_mode=False, mcp_server=False, footer_links=['api'], theme=app.soc_theme)
    return 0


if __name__ == '__main__':
    sys.exit(main())
