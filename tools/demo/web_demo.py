"""A web page (Gradio) to try SOC on your own video: upload it, type expressions, see the masks.

    python tools/demo/web_demo.py                                   # the model `make demo` trains
    python tools/demo/web_demo.py --config CONFIG --checkpoint CKPT [--host 127.0.0.1 --port 7860]

Without ``--config`` / ``--checkpoint`` it serves the checkpoint of ``make demo``
(``work_dirs/demo/train/iter_<max_iters>.pth``, ``configs/soc/soc_tiny_synthetic.py`` with the tiny
text encoder ``work_dirs/demo/tiny_roberta``) and says how to get it when it is missing.

The request handling (checks, clip-by-clip segmentation, outputs) is ``soc_mm.apis.web_demo.WebDemo``;
this script is the page around it. What runs where: the model is loaded once, in this process, through
``soc_mm.apis.init_model`` (``safe_load_local``: nothing in a checkpoint can run code). Requests go
through Gradio's queue (``--concurrency`` requests at a time, default 1; their inferences run at the
same time: a request's selection settings and input size are passed to that inference only, the model
is never changed). Each request works in its own temporary folder under ``--temp-dir`` (Gradio's upload
cache lives there too); the folder is deleted as soon as Gradio has copied the results into its cache
(what the page and the API serve), else after ``--results-ttl`` seconds, at most ``--max-results`` are
kept (oldest removed first), and everything at exit. Gradio's cache keeps files ``--results-ttl``
seconds. Uploads are bounded in bytes, frames and pixels (``--max-frame-pixels`` per frame,
``--max-request-pixels`` for frames x pixels), read from the image / video headers before decoding. The page
never opens a public share link and binds to 127.0.0.1 unless told.

A request: a video (mp4/webm/avi/mov/mkv, or a zip of frame images) or one of the bundled synthetic
clips, one expression per line, the clip length, the input size and top-1 or multi-object selection.
The video is read and segmented clip by clip (``inference_rvos`` on each clip of ``clip_len`` frames:
the backbone once per clip for all expressions; clips are independent in SOC's video inference, so this
equals one call on the whole video), with the progress per clip in the page. Results: the video with one
colour per expression and the legend, each expression's score over time, a few key frames, and
downloads (the video, the masks as PNGs in the Ref-YouTube-VOS submission layout
``Annotations/<video>/<exp_id>/<frame>.png`` zipped, and the masks as COCO RLE in a JSON file).
"""
import argparse
import atexit
import json
import os
import os.path as osp
import shutil
import signal
import sys
import tempfile
from typing import Optional, Tuple

from soc_mm.apis.web_demo import (SELECTION_MULTI, SELECTION_TOP1, VIDEO_UPLOAD_EXTENSIONS, Limits, WebDemo,
                                  load_model)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_WORK_DIR = osp.join(REPO, 'work_dirs', 'demo')
DEMO_CONFIG = osp.join(REPO, 'configs', 'soc', 'soc_tiny_synthetic.py')
NO_EXAMPLE = '(none: use the uploaded video)'


class DemoSetupError(RuntimeError):
    """The demo cannot start (missing checkpoint / config / text encoder); the message says what to do."""


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
        # a generator of one output: Gradio copies the files of a yielded output into its cache (what the
        # page and the API download) before it resumes the generator, which then deletes the request's folder
        try:
            out = demo.run(upload, example, expressions, clip_len, input_size, selection, score_thr, previous_dir,
                           progress)
        except ValueError as e:
            raise gr.Error(str(e), print_exception=False) from None
        try:
            for warning in out['warnings']:
                gr.Warning(warning)
            yield (out['status'], out['video'], out['figure'], out['key_frames'], out['downloads'],
                   out['request_dir'])
        finally:
            demo.release(out['request_dir'])

    theme = gr.themes.Default(font=['ui-sans-serif', 'system-ui', 'sans-serif'],
                              font_mono=['ui-monospace', 'monospace'])  # no web fonts: works offline
    ttl = max(1, int(demo.results_ttl_s))
    with gr.Blocks(title='SOC: referring video object segmentation', analytics_enabled=False,
                   delete_cache=(min(600, ttl), ttl)) as app:
        app.soc_theme = theme
        gr.Markdown('## SOC: segment the objects your sentences refer to in a video\n'
                    'Upload a video (mp4/webm/avi, or a zip of frame images) or pick an example, type one '
                    f'expression per line, press **Run**. Limits: {limits.max_upload_mb:.0f} MB, '
                    f'{limits.max_frames} frames, {limits.max_frame_pixels / 1e6:.1f} megapixels per frame, '
                    f'{limits.max_request_pixels / 1e6:.0f} megapixels per request, {limits.max_expressions} '
                    'expressions.')
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
                selection = gr.Radio([SELECTION_TOP1, SELECTION_MULTI], value=SELECTION_TOP1,
                                     label='objects per expression', elem_id='selection')
                score_thr = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label='score threshold (multi-object)',
                                      elem_id='score_thr')
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
    parser.add_argument('--max-frame-pixels', type=int, default=Limits.max_frame_pixels,
                        help=f'largest frame, width x height, read from the header before decoding '
                        f'(default {Limits.max_frame_pixels} = 1920x1080)')
    parser.add_argument('--max-request-pixels', type=int, default=Limits.max_request_pixels,
                        help=f'frames x width x height of a request (default {Limits.max_request_pixels})')
    parser.add_argument('--results-ttl', type=float, default=1800.0,
                        help='seconds a request\'s results are kept when not removed after the page took them '
                        '(default 1800)')
    parser.add_argument('--max-results', type=int, default=32,
                        help='request result folders kept at most, the oldest removed first (default 32)')
    parser.add_argument('--temp-dir', help='folder for uploads and results (default: a new temporary folder, '
                        'removed at exit)')
    parser.add_argument('--num-examples', type=int, default=3, help='synthetic example clips (default 3)')
    args = parser.parse_args(argv)
    if (args.config is None) != (args.checkpoint is None):
        parser.error('give both --config and --checkpoint, or neither (the `make demo` model)')
    if args.concurrency < 1 or args.max_frames < 1 or args.max_upload_mb <= 0 or args.max_expressions < 1 \
            or args.max_frame_pixels < 1 or args.max_request_pixels < 1 or not args.results_ttl > 0 \
            or args.max_results < 1:
        parser.error('--concurrency, --max-frames, --max-upload-mb, --max-expressions, --max-frame-pixels, '
                     '--max-request-pixels, --results-ttl and --max-results must be positive')
    if args.max_results < args.concurrency:
        parser.error(f'--max-results ({args.max_results}) must be at least --concurrency ({args.concurrency}): '
                     'a request\'s results are kept until the page has taken them')
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
    model = load_model(config, checkpoint, args.device, text_encoder)
    limits = Limits(max_upload_mb=args.max_upload_mb, max_frames=args.max_frames,
                    max_expressions=args.max_expressions, max_frame_pixels=args.max_frame_pixels,
                    max_request_pixels=args.max_request_pixels)
    demo = WebDemo(model, temp_root, limits, num_examples=args.num_examples, results_ttl_s=args.results_ttl,
                   max_results=args.max_results, sweep_interval_s=min(60.0, args.results_ttl / 2))
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
