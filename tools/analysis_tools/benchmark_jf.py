"""Time J&F evaluation (RVOSJFMetric) on synthetic videos.

Default: 200 videos x 30 frames at 720x1280 (one expression per video), timed from the
first ``process`` call to the end of ``evaluate``; generating the masks is not timed.

    python tools/analysis_tools/benchmark_jf.py [--videos 200] [--frames 30] [--height 720] [--width 1280]
"""
import argparse
import time

import cv2
import numpy as np
import torch


def synthetic_video(rng: np.random.Generator, frames: int, height: int, width: int):
    """A moving ellipse (ground truth) and a perturbed prediction, bool ``[T, H, W]`` each;
    about 5% of frames have no object and 5% an empty prediction."""
    gt = np.zeros((frames, height, width), np.uint8)
    pred = np.zeros_like(gt)
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    ay, ax = rng.uniform(0.05, 0.3) * height, rng.uniform(0.05, 0.3) * width
    vy, vx = rng.normal(0, 3, size=2)
    for t in range(frames):
        center = (int(cx + vx * t), int(cy + vy * t))
        if rng.random() > 0.05:
            cv2.ellipse(gt[t], center, (int(ax), int(ay)), 0, 0, 360, 1, -1)
        if rng.random() > 0.05:
            dy, dx = rng.normal(0, 6, size=2)
            cv2.ellipse(pred[t], (center[0] + int(dx), center[1] + int(dy)),
                        (int(ax * rng.uniform(0.85, 1.15)), int(ay * rng.uniform(0.85, 1.15))),
                        rng.uniform(-10, 10), 0, 360, 1, -1)
            if rng.random() < 0.3:  # a spurious blob
                cv2.circle(pred[t], (int(rng.uniform(0, width)), int(rng.uniform(0, height))),
                           int(rng.uniform(5, 40)), 1, -1)
    return torch.from_numpy(pred.astype(bool)), torch.from_numpy(gt.astype(bool))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--videos', type=int, default=200)
    parser.add_argument('--frames', type=int, default=30)
    parser.add_argument('--height', type=int, default=720)
    parser.add_argument('--width', type=int, default=1280)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    from soc_mm.evaluation import RVOSJFMetric
    rng = np.random.default_rng(args.seed)
    metric = RVOSJFMetric()
    timed = 0.0
    for v in range(args.videos):
        pred, gt = synthetic_video(rng, args.frames, args.height, args.width)
        sample = dict(video_id=f'video{v:04d}', exp_id='0', frame_ids=[f'{t:05d}' for t in range(args.frames)],
                      valid_frame_idx=None, ori_shape=(args.height, args.width), pred_masks=pred,
                      pred_scores=torch.ones(args.frames), ori_gt_masks=gt)
        start = time.perf_counter()
        metric.process({}, [sample])
        timed += time.perf_counter() - start
    start = time.perf_counter()
    metrics = metric.evaluate(args.videos)
    timed += time.perf_counter() - start
    num_frames = args.videos * args.frames
    print(f'J&F of {args.videos} videos x {args.frames} frames at {args.height}x{args.width}: '
          f'{timed:.1f} s ({1000 * timed / num_frames:.2f} ms/frame, cv2 threads {cv2.getNumThreads()}, '
          f'torch threads {torch.get_num_threads()})')
    print({k: round(v, 4) for k, v in metrics.items()})


if __name__ == '__main__':
    main()
