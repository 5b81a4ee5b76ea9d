"""Segment the objects referred to by one or more expressions in a video and write the masks over it.

    python tools/demo/video_demo.py VIDEO_OR_FRAME_DIR "the red car" ["a person on the left" ...] \
        --config configs/soc/soc_swin-t_8xb1-30e_refytvos.py --checkpoint CKPT.pth --out out.mp4

VIDEO_OR_FRAME_DIR: an mp4 (any video OpenCV reads) or a folder of frame images (sorted by name).
A thin command line over ``soc_mm.apis.RVOSInferencer``: the model runs the config's test pipeline
(resize) and data preprocessor clip by clip (``--clip-len`` frames, ``soc_mm.apis.stream_rvos``): each
clip is painted and written as soon as it is segmented (a progress bar counts the clips), so that a long
video needs no more memory than a short one. Each expression gets a colour; the expressions are written on
the frames in their colours. ``--link-clips`` follows the chosen object from clip to clip; ``--presence-thr`` leaves the
frames where it is absent unpainted (docs/long_videos.md). ``--out-dir`` also writes the masks as
Ref-YouTube-VOS PNGs and COCO RLE; ``--backend onnxruntime --checkpoint GRAPH.onnx`` runs a graph of
``tools/deployment/export_onnx.py`` with ONNX Runtime (docs/deployment.md).
"""
import argparse
import os.path as osp
import time

from soc_mm.apis import RVOSInferencer
from soc_mm.apis.rvos_inferencer import MAX_FPS
from soc_mm.visualization import check_video_output_path


def parse_args():
    parser = argparse.ArgumentParser(description='SOC video demo: referring video object segmentation')
    parser.add_argument('video', help='video file or folder of frames')
    parser.add_argument('expressions', nargs='+', help='one or more referring expressions')
    parser.add_argument('--config', required=True, help='model config file')
    parser.add_argument('--checkpoint', required=True, help='checkpoint file')
    parser.add_argument('--out', default='demo_out.mp4', help='output video (.mp4)')
    parser.add_argument('--device', default='cpu', help="device, e.g. 'cpu' or 'cuda:0'")
    parser.add_argument('--clip-len', type=int, default=None,
                        help='frames per forward pass (default: model.test_cfg.clip_len or 36)')
    parser.add_argument('--fps', type=float, default=None, help='output fps (default: the input video fps or 10)')
    parser.add_argument('--alpha', type=float, default=0.5, help='mask opacity')
    parser.add_argument('--link-clips', action='store_true', help='follow the chosen object from clip to clip')
    parser.add_argument('--presence-thr', type=float, default=None,
                        help='empty mask on the frames where the object\'s score is not above this (default: off)')
    parser.add_argument('--out-dir', default='', help='also write the masks: OUT_DIR/preds/Annotations/'
                        '<video>/<exp_id>/<frame>.png (Ref-YouTube-VOS) and OUT_DIR/preds/<video>_rle.json')
    parser.add_argument('--backend', default='pytorch', choices=['pytorch', 'onnxruntime'],
                        help='onnxruntime: --checkpoint is a graph of tools/deployment/export_onnx.py')
    args = parser.parse_args()
    # every argument checked before the model is built (argparse prints usage and exits 2)
    if not osp.exists(args.video):
        parser.error(f'video not found: {args.video}')
    if args.fps is not None and not 0 < args.fps <= MAX_FPS:  # NaN fails this test too
        parser.error(f'--fps {args.fps}: expected a number in (0, {MAX_FPS}] (default: the input video\'s)')
    if not 0 <= args.alpha <= 1:
        parser.error(f'--alpha {args.alpha}: expected a mask opacity in [0, 1]')
    if args.clip_len is not None and args.clip_len < 1:
        parser.error(f'--clip-len {args.clip_len}: expected frames per forward pass >= 1')
    if args.presence_thr is not None and not 0 <= args.presence_thr <= 1:
        parser.error(f'--presence-thr {args.presence_thr}: expected a score in [0, 1]')
    for k, expression in enumerate(args.expressions):
        if not expression.strip():
            parser.error(f'expression {k + 1} is empty; expected a referring expression (e.g. "the red circle")')
    from soc_mm.utils.cli import UsageError, check_output_dir
    try:
        check_output_dir(args.out_dir, '--out-dir')
    except UsageError as err:
        parser.error(str(err))
    return args


def main():
    args = parse_args()
    check_video_output_path(args.out)  # before the (long) inference, not after it
    start = time.time()
    inferencer = RVOSInferencer(args.config, args.checkpoint, device=args.device, backend=args.backend)
    result = inferencer(args.video, args.expressions, out_dir=args.out_dir, no_save_vis=True, out_video=args.out,
                        clip_len=args.clip_len, fps=args.fps, alpha=args.alpha,
                        link_clips=args.link_clips or None, presence_thr=args.presence_thr)
    n = len(result['predictions'][0]['scores'])
    print(f'\nsegmented {n} frames for {len(args.expressions)} expression(s) in {time.time() - start:.1f}s')
    print(f'wrote {n} frames to {args.out}')
    for path in result['files'][1:]:
        print(f'wrote {path}')


if __name__ == '__main__':
    main()
