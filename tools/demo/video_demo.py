"""Segment the objects referred to by one or more expressions in a video and write the masks over it.

    python tools/demo/video_demo.py VIDEO_OR_FRAME_DIR "the red car" ["a person on the left" ...] \
        --config configs/soc/soc_swin-t_8xb1-30e_refytvos.py --checkpoint CKPT.pth --out out.mp4

VIDEO_OR_FRAME_DIR: an mp4 (any video OpenCV reads) or a folder of frame images (sorted by name).
The model runs the config's test pipeline (resize) and data preprocessor through
``soc_mm.apis.stream_rvos``, clip by clip (``--clip-len`` frames): each clip is painted and written as
soon as it is segmented (a progress bar counts the frames), so that a long video needs no more memory
than a short one. Each expression gets a colour; the expressions are written on the frames in their
colours. ``--link-clips`` follows the chosen object from clip to clip; ``--presence-thr`` leaves the
frames where it is absent unpainted (docs/long_videos.md).
"""
import argparse
import os.path as osp
import time

import cv2
import numpy as np

from mmengine.utils import ProgressBar

from soc_mm.apis import count_video_frames, init_model, stream_rvos
from soc_mm.visualization import RVOSVisualizer, check_video_output_path, write_video


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
    return parser.parse_args()


def source_fps(video: str, default: float = 10.0) -> float:
    if osp.isdir(video):
        return default
    cap = cv2.VideoCapture(video)
    fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0
    cap.release()
    return fps if fps and fps > 0 else default


def main():
    args = parse_args()
    if not osp.exists(args.video):
        raise FileNotFoundError(f'video not found: {args.video}')
    check_video_output_path(args.out)  # before the (long) inference, not after it
    start = time.time()
    model = init_model(args.config, args.checkpoint, device=args.device)
    clips = stream_rvos(model, args.video, args.expressions, clip_len=args.clip_len,
                        link_clips=args.link_clips or None, presence_thr=args.presence_thr)
    progress = ProgressBar(count_video_frames(args.video) or 0)
    vis = None

    def painted():
        nonlocal vis
        for clip in clips:
            masks = [r.pred_masks.numpy() for r in clip.results]  # bool [t, H0, W0] each
            if vis is None:
                vis = RVOSVisualizer(name='video_demo', alpha=args.alpha,
                                     font_size=max(12, int(masks[0].shape[1] / 30)))
            for t, frame in enumerate(clip.frames):  # BGR
                yield vis.draw_frame(np.ascontiguousarray(frame[..., ::-1]), [m[t] for m in masks], args.expressions)
                progress.update()

    n = write_video(args.out, painted(), args.fps or source_fps(args.video))
    print(f'\nsegmented {n} frames for {len(args.expressions)} expression(s) in {time.time() - start:.1f}s')
    print(f'wrote {n} frames to {args.out}')


if __name__ == '__main__':
    main()
