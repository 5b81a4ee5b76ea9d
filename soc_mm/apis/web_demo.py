"""The request handling behind the web demo (``tools/demo/web_demo.py``, a Gradio page): one SOC model;
a request (a video file or a zip of frame images, and expressions) -> the masks, drawn and written for
download.

``WebDemo.run`` handles one request in its own temporary folder under ``<temp_root>/requests/``: it
checks the upload (size, type, frames, and pixels per frame and per request from the image / video
headers, before anything is decoded) and the expressions, segments the video clip by clip
(``RVOSInferencer.segment``, i.e. ``inference_rvos``, on each clip of ``clip_len`` frames: the backbone
once per clip for all expressions; clips are independent in SOC's video inference, so this equals one
call on the whole video) with the progress per clip, and writes the video
with one colour per expression, each expression's score over time, a few key frames, the masks as PNGs in
the Ref-YouTube-VOS submission layout (``Annotations/<video>/<exp_id>/<frame>.png``, zipped) and as COCO
RLE in a JSON file. Nothing of an upload's (or a zip member's) name reaches the file system unsanitised.

Result folders are removed when the page has taken its copies (``release``), and otherwise after
``results_ttl_s`` seconds; at most ``max_results`` are kept (the oldest removed first). The request's
selection settings (top-1 / multi-object, score threshold) and input size go to ``inference_rvos`` as
per-call ``test_options`` / ``test_pipeline``: the shared model is never changed, so concurrent
requests run their inferences at the same time.
"""
import copy
import io
import json
import os
import os.path as osp
import re
import shutil
import tempfile
import threading
import time
import zipfile
import zlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

VIDEO_UPLOAD_EXTENSIONS = ('.mp4', '.webm', '.avi', '.mov', '.mkv')
FRAME_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
SELECTION_TOP1 = 'top-1: one object per expression'
SELECTION_MULTI = 'multi-object: every object above the score threshold'


@dataclass
class Limits:
    """What one request may ask for."""
    max_upload_mb: float = 200.0     #: size of an uploaded file (and of a zip's frames, uncompressed)
    max_frames: int = 600            #: frames of a video
    max_expressions: int = 10        #: expressions per request (one colour each)
    max_expression_chars: int = 2000  #: characters of one expression (checked before tokenizing: the tokenizer's
    #: time grows faster than the text, ~13 CPU minutes for 3 MB; RoBERTa's 512 tokens are ~2000 characters)
    max_clip_len: int = 64           #: frames per clip
    max_input_size: int = 720        #: short side the frames may be resized to
    max_frame_pixels: int = 1920 * 1080      #: width x height of one frame (from the header, before decoding)
    max_request_pixels: int = 150_000_000    #: frames x width x height of a request


def check_frame_pixels(display_name: str, what: str, width: int, height: int, limits: Limits) -> int:
    """``width * height`` of one frame (``what``: e.g. 'the video's frames'), or ValueError naming the
    per-frame limit and the size received."""
    pixels = int(width) * int(height)
    if pixels > limits.max_frame_pixels:
        raise ValueError(f'{display_name}: {what} {int(width)}x{int(height)} pixels ({pixels / 1e6:.2f} megapixels), '
                         f'more than the limit of {limits.max_frame_pixels / 1e6:.2f} megapixels per frame '
                         f'(max_frame_pixels={limits.max_frame_pixels}): downscale the video.')
    return pixels


def check_request_pixels(display_name: str, num_frames: int, total_pixels: int, limits: Limits) -> None:
    """ValueError naming the per-request limit (frames x pixels) when ``total_pixels`` exceeds it."""
    if total_pixels > limits.max_request_pixels:
        raise ValueError(f'{display_name}: {num_frames} frames of {total_pixels / 1e6:.1f} megapixels in all '
                         f'(frames x width x height), more than the limit of {limits.max_request_pixels / 1e6:.1f} '
                         f'megapixels per request (max_request_pixels={limits.max_request_pixels}): trim or '
                         'downscale the video.')


def image_header_size(archive: zipfile.ZipFile, member: zipfile.ZipInfo, display_name: str) -> Tuple[int, int]:
    """(width, height) of a zip member's image, read from its header only (PIL reads the size lazily;
    nothing is decoded)."""
    import warnings
    from PIL import Image
    name = osp.basename(member.filename)[:80]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with archive.open(member) as f, Image.open(f, formats=('JPEG', 'PNG', 'BMP', 'WEBP')) as image:
                return image.size
    except Image.DecompressionBombError:
        raise ValueError(f'{display_name}: frame {name!r} has more than {2 * Image.MAX_IMAGE_PIXELS} pixels, far '
                         'more than the limit per frame: downscale the frames.') from None
    except Exception as e:  # unreadable header (PIL, zlib, zip errors)
        raise ValueError(f'{display_name}: frame {name!r} is not a readable JPEG/PNG/BMP/WebP image '
                         f'({type(e).__name__}).') from None


# ---------------------------------------------------------------------- model
def load_model(config, checkpoint: str, device: str = 'cpu', text_encoder: Optional[str] = None):
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
    from soc_mm.apis.inference import init_model
    options = {'model.text_encoder.model_path': text_encoder} if text_encoder else None
    return init_model(config, checkpoint, device=device, cfg_options=options)


# ---------------------------------------------------------------------- inputs
def safe_name(name: str, default: str = 'video') -> str:
    """A file-name-safe version of ``name`` (letters, digits, '-', '_'; at most 64 characters)."""
    name = re.sub(r'[^A-Za-z0-9_-]+', '_', name).strip('_')[:64]
    return name or default


def parse_expressions(text: Optional[str], max_expressions: int, max_chars: int = Limits.max_expression_chars
                      ) -> List[str]:
    """One expression per line (blank lines ignored), each at most ``max_chars`` characters (the whole text
    is bounded before it is split: ``max_expressions`` lines of ``max_chars`` and their line breaks)."""
    text = text or ''
    if len(text) > (max_chars + 2) * max_expressions * 4:  # generous for blank lines; bounded work
        raise ValueError(f'The expressions text has {len(text)} characters; at most {max_expressions} expressions '
                         f'of {max_chars} characters each are taken.')
    expressions = [line.strip() for line in text.splitlines() if line.strip()]
    if not expressions:
        raise ValueError('No referring expression: type one expression per line (e.g. "the red circle").')
    if len(expressions) > max_expressions:
        raise ValueError(f'{len(expressions)} expressions, at most {max_expressions} per request '
                         '(one colour each).')
    for k, expression in enumerate(expressions):
        if len(expression) > max_chars:
            raise ValueError(f'Expression {k + 1} has {len(expression)} characters, at most {max_chars} are taken '
                             f'("{expression[:60]}...").')
    return expressions


def truncation_warnings(model, expressions: Sequence[str]) -> List[str]:
    """One message per expression longer than the text encoder takes (it is truncated), from the text
    encoder's own report (``RoBERTaTextEncoder.truncated_expressions``)."""
    encoder = model.text_encoder
    messages = []
    for k, num in encoder.truncated_expressions(expressions):
        text, max_tokens = expressions[k], encoder.max_tokens
        messages.append(f'Expression {k + 1} has {num} tokens, more than the {max_tokens} the text encoder '
                        f'takes (<s> and </s> included): it was truncated to its first {max_tokens - 2} '
                        f'tokens ("{text[:60]}{"..." if len(text) > 60 else ""}").')
    return messages


def extract_zip_frames(zip_path: str, display_name: str, out_dir: str, limits: Limits,
                       notes: Optional[List[str]] = None) -> Tuple[str, List[str]]:
    """Frame images of a zip -> ``out_dir/00000.<ext>, ...`` (names made here: nothing of the zip's
    member names reaches the file system) in the order of the member names. Every member's size is
    read from its image header and checked (``limits.max_frame_pixels``, ``max_request_pixels``)
    before anything is extracted. Returns (folder, frame names: the members' sanitized stems, or
    indices when those repeat). Members that are not frames are skipped and, with ``notes``, named in a
    message appended to it (for the page)."""
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
        kept = {m.filename for m in members}
        skipped = [m.filename for m in archive.infolist() if not m.is_dir() and m.filename not in kept]
        if skipped and notes is not None:
            shown = ', '.join(repr(name[:80]) for name in skipped[:5]) + (' ...' if len(skipped) > 5 else '')
            notes.append(f'{display_name}: {len(skipped)} member(s) that are not {"/".join(FRAME_EXTENSIONS)} frames '
                         f'(or are hidden) were skipped: {shown}.')
        if len(members) > limits.max_frames:
            raise ValueError(f'{display_name}: {len(members)} frames, more than the limit of '
                             f'{limits.max_frames} frames.')
        total = sum(m.file_size for m in members)
        if total > limits.max_upload_mb * 2 ** 20:
            raise ValueError(f'{display_name}: the frames take {total / 2 ** 20:.0f} MB uncompressed, more than '
                             f'the limit of {limits.max_upload_mb:.0f} MB.')
        total_pixels = 0
        for member in members:
            width, height = image_header_size(archive, member, display_name)
            total_pixels += check_frame_pixels(display_name, f'frame {osp.basename(member.filename)[:80]!r} is',
                                               width, height, limits)
        check_request_pixels(display_name, len(members), total_pixels, limits)
        os.makedirs(out_dir)
        for i, member in enumerate(members):
            ext = osp.splitext(member.filename)[1].lower()
            try:
                with archive.open(member) as src, open(osp.join(out_dir, f'{i:05d}{ext}'), 'wb') as dst:
                    shutil.copyfileobj(src, dst)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:  # CRC, truncation, method
                raise ValueError(f'{display_name}: the member {member.filename[:80]!r} cannot be extracted '
                                 f'({e}).') from None
    stems = [safe_name(osp.splitext(osp.basename(m.filename))[0], f'{i:05d}') for i, m in enumerate(members)]
    if len(set(stems)) != len(stems):
        stems = [f'{i:05d}' for i in range(len(members))]
    return out_dir, stems


def count_video_frames(path: str, display_name: str, max_frames: int, limits: Optional[Limits] = None) -> int:
    """Decode the whole video once (fails early on unreadable, empty and too long videos). With
    ``limits``, the frame size and the declared frame count are read from the container's header and
    checked (``max_frame_pixels``, ``max_request_pixels``) before any frame is decoded, and counting
    stops as soon as the frames counted exceed the request's pixels."""
    import cv2
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise ValueError(f'{display_name}: cannot open the video (unreadable, truncated or unsupported format).')
        frame_pixels, budget = 0, max_frames
        if limits is not None:
            width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            frame_pixels = check_frame_pixels(display_name, "the video's frames are", width, height, limits)
            if frame_pixels:
                if 0 < declared <= max_frames:
                    check_request_pixels(display_name, declared, declared * frame_pixels, limits)
                budget = min(max_frames, limits.max_request_pixels // frame_pixels)
        count = 0
        while cap.grab():
            count += 1
            if count > max_frames:
                raise ValueError(f'{display_name}: the video has more than {max_frames} frames, the limit of this '
                                 'server (trim it, or use a lower frame rate).')
            if count > budget:
                check_request_pixels(display_name, count, count * frame_pixels, limits)
    finally:
        cap.release()
    if count == 0:
        raise ValueError(f'{display_name}: the video has zero decodable frames (empty, truncated or unreadable).')
    return count


def iter_rgb_frames(source: str, display_name: str):
    """RGB uint8 frames [H, W, 3] of a video file or frame folder (``iter_video_frames``), with our
    temporary paths replaced by the upload's name in errors."""
    from soc_mm.apis.inference import iter_video_frames
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
    """The masks as COCO RLE, one entry per expression (``RVOSInferencer``'s format:
    ``soc_mm.apis.rvos_inferencer.masks_to_rle``)."""
    from soc_mm.apis.rvos_inferencer import masks_to_rle
    return masks_to_rle(video_name, frame_names, expressions, masks, scores)


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


# ---------------------------------------------------------------------- the request handler
class _SerializedTokenizer:
    """A HF fast tokenizer whose calls run one at a time: a call sets the Rust tokenizer's truncation
    and padding (shared, mutable state), so concurrent calls with different settings fail ("Already
    borrowed") or read each other's. Everything else is the tokenizer's."""

    def __init__(self, tokenizer) -> None:
        self._tokenizer = tokenizer
        self._lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        with self._lock:
            return self._tokenizer(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


class WebDemo:
    """The request handler behind the page: one model, one temporary root, per-request folders.

    Requests may run concurrently (threads): a request's selection settings and input size are
    passed to ``inference_rvos`` for that call only (``test_options``, ``test_pipeline``); the model
    and its ``test_options`` are never changed.

    Args:
        model: a SOC model (``load_model``).
        temp_root (str): folder for the per-request folders (``requests/``) and the examples.
        limits (Limits): upload limits.
        num_examples (int): synthetic example clips generated at start-up.
        results_ttl_s (float): a finished request's folder is removed this many seconds after its
            results were written, if ``release`` has not removed it before (default 30 min).
        max_results (int): at most this many finished request folders are kept; the oldest go first.
        sweep_interval_s (float, optional): a background thread removes expired folders this often
            (None: only when a request starts or finishes, and on ``sweep()``).
        clock (callable): seconds (monotonic); tests pass a fake clock.
    """

    def __init__(self, model, temp_root: str, limits: Limits = Limits(), num_examples: int = 3,
                 results_ttl_s: float = 1800.0, max_results: int = 32, sweep_interval_s: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not results_ttl_s > 0 or max_results < 1:
            raise ValueError(f'results_ttl_s must be > 0 and max_results >= 1, got {results_ttl_s}, {max_results}')
        self.model = model
        self._inferencer = None
        self.limits = limits
        self.temp_root = osp.abspath(temp_root)
        self.requests_root = osp.join(self.temp_root, 'requests')
        os.makedirs(self.requests_root, exist_ok=True)
        self.results_ttl_s, self.max_results, self.clock = float(results_ttl_s), int(max_results), clock
        self._results: Dict[str, float] = {}  # finished request folder -> clock() when its results were written
        self._results_lock = threading.Lock()
        encoder = getattr(model, 'text_encoder', None)
        if getattr(encoder, 'tokenizer', None) is not None and not isinstance(encoder.tokenizer, _SerializedTokenizer):
            encoder.tokenizer = _SerializedTokenizer(encoder.tokenizer)
        self.default_clip_len = int(min(model.test_options.clip_len or 8, limits.max_clip_len))
        self.examples = self.make_examples(osp.join(self.temp_root, 'examples'), num_examples)
        self._stop = threading.Event()
        if sweep_interval_s:
            threading.Thread(target=self._sweep_loop, args=(float(sweep_interval_s), ), daemon=True,
                             name='web-demo-sweeper').start()

    def close(self) -> None:
        """Stop the background sweeper (if any)."""
        self._stop.set()

    def _sweep_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.sweep()

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
        if not request_dir:
            return
        with self._results_lock:
            self._results.pop(request_dir, None)
        if osp.isdir(request_dir) and self._inside(request_dir, self.requests_root) \
                and osp.realpath(request_dir) != osp.realpath(self.requests_root):
            shutil.rmtree(request_dir, ignore_errors=True)

    def result_dirs(self) -> List[str]:
        """The finished request folders still kept, oldest first."""
        with self._results_lock:
            return sorted(self._results, key=self._results.get)

    def sweep(self) -> List[str]:
        """Remove the finished request folders older than ``results_ttl_s`` and, beyond
        ``max_results``, the oldest ones. Returns the folders removed."""
        now = self.clock()
        with self._results_lock:
            by_age = sorted(self._results, key=self._results.get)
            expired = [d for d in by_age if now - self._results[d] >= self.results_ttl_s]
            kept = [d for d in by_age if d not in expired]
            expired += kept[:max(0, len(kept) - self.max_results)]
        for request_dir in expired:
            self.release(request_dir)
        return expired

    def _keep_results(self, request_dir: str) -> None:
        with self._results_lock:
            self._results[request_dir] = self.clock()
        self.sweep()

    @property
    def inferencer(self):
        """The ``RVOSInferencer`` of the served model (no progress bar: the page shows its own)."""
        if self._inferencer is None:
            from soc_mm.apis.rvos_inferencer import RVOSInferencer
            self._inferencer = RVOSInferencer(self.model, show_progress=False)
        return self._inferencer

    # ------------------------------------------------------------------ model settings of a request
    def request_pipeline(self, input_size: int) -> Optional[list]:
        """The test pipeline (list of transform dicts) of a request resizing to ``input_size`` (short
        side; long side at most twice that); None for 0 (the config's pipeline). A new list: the
        model's config is not changed."""
        if not input_size:
            return None
        resize = dict(type='RVOSRandomResize', short_side=[int(input_size)], max_size=2 * int(input_size))
        try:
            pipeline = copy.deepcopy(list(self.model.cfg.test_dataloader.dataset.pipeline))
        except AttributeError:
            from soc_mm.apis.inference import DEFAULT_TEST_PIPELINE
            pipeline = copy.deepcopy(DEFAULT_TEST_PIPELINE)
        pipeline = [t for t in pipeline if t['type'] != 'RVOSRandomResize']
        pack = next(i for i, t in enumerate(pipeline) if t['type'] == 'PackRVOSInputs')
        pipeline.insert(pack, resize)
        return pipeline

    def request_options(self, selection: Optional[str], score_thr: float):
        """The model's test options with a request's object selection (None: the model's own); a
        new ``RVOSTestOptions`` (frozen): the model's are not changed."""
        options = self.model.test_options
        if selection is None:
            return options
        if selection == SELECTION_MULTI:
            return options.replace(object_selection='threshold', score_thr=float(score_thr))
        if selection == SELECTION_TOP1:
            return options.replace(object_selection='top1', score_thr=None, allow_no_target=False)
        raise ValueError(f'objects per expression must be {SELECTION_TOP1!r} or {SELECTION_MULTI!r}, '
                         f'got {selection!r}.')

    def segment(self, frames: Sequence[np.ndarray], expressions: Sequence[str], input_size: int,
                selection: Optional[str], score_thr: float) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """One clip of RGB frames [H, W, 3] -> per expression (masks bool [T, H, W], scores float [T]).
        Thread-safe: the request's settings go to this call only."""
        results = self.inferencer.segment(list(frames), list(expressions), clip_len=len(frames),
                                          channel_order='rgb', test_options=self.request_options(selection, score_thr),
                                          test_pipeline=self.request_pipeline(input_size))
        return ([r.pred_masks.numpy().astype(bool) for r in results],
                [r.pred_scores.float().numpy() for r in results])

    # ------------------------------------------------------------------ a request
    def run(self, upload: Optional[str], example: Optional[str], expressions_text: str, clip_len: float,
            input_size: float, selection: Optional[str], score_thr: float, previous_dir: Optional[str],
            progress=None):
        """Handle one request. Returns a dict: ``status`` (markdown), ``warnings`` (list of str),
        ``video`` (path), ``figure`` (score plot), ``key_frames`` (RGB uint8 [h, w, 3]),
        ``downloads`` (paths), ``request_dir`` (this request's folder). Raises ValueError with a
        message for the page. The folder is kept until ``release`` (call it once the results have
        been copied or sent), ``results_ttl_s`` or ``max_results`` removes it."""
        self.release(previous_dir)  # the session's previous results
        self.sweep()
        limits = self.limits
        expressions = parse_expressions(expressions_text, limits.max_expressions, limits.max_expression_chars)
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
        self.request_options(selection, score_thr)  # a bad selection fails before any work
        warnings = truncation_warnings(self.model, expressions)
        request_dir = tempfile.mkdtemp(prefix='req_', dir=self.requests_root)
        try:
            out = self._segment_request(request_dir, source, display_name, ext, expressions, warnings, clip_len,
                                        input_size, selection, score_thr, progress)
        except BaseException:  # no folder left behind by a failed request
            self.release(request_dir)
            raise
        self._keep_results(request_dir)
        return out

    def _segment_request(self, request_dir, source, display_name, ext, expressions, warnings, clip_len, input_size,
                         selection, score_thr, progress):
        """The part of ``run`` that works in ``request_dir`` (see ``run``)."""
        limits = self.limits
        video_name = safe_name(osp.splitext(display_name)[0])
        if ext == '.zip':
            source, frame_names = extract_zip_frames(source, display_name, osp.join(request_dir, 'frames'), limits,
                                                     notes=warnings)
            num_frames = len(frame_names)
        else:
            num_frames = count_video_frames(source, display_name, limits.max_frames, limits)
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

        pixels_read = 0
        for frame in iter_rgb_frames(source, display_name):
            frames_read += 1
            if frames_read > num_frames:  # the file changed under us, or the decoder disagrees
                break
            # the decoded frames against the limits too (a header may understate the size)
            pixels_read += check_frame_pixels(display_name, f'frame {frames_read - 1} is', frame.shape[1],
                                              frame.shape[0], limits)
            check_request_pixels(display_name, frames_read, pixels_read, limits)
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
