"""Time the loading of Ref-YouTube-VOS train samples through SOC's train pipeline, on one core.

Without ``--data-root`` a synthetic Ref-YTVOS in the real format is generated (frames of ``--size``).
Target (issue 4): one sample of 8 frames at 360x640 in < 0.5 s on one core.

    python tools/analysis_tools/benchmark_data_loading.py --size 360 640 --num-frames 8
"""
import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault('OMP_NUM_THREADS', '1')

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import soc_mm  # noqa: E402,F401
from soc_mm.datasets import synthetic  # noqa: E402
from soc_mm.registry import DATASETS  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description='Benchmark Ref-YTVOS train sample loading')
    parser.add_argument('--data-root', help='existing Ref-YTVOS root (default: generate a synthetic one)')
    parser.add_argument('--size', type=int, nargs=2, default=[360, 640], help='generated frame size H W')
    parser.add_argument('--num-frames', type=int, default=8, help='frames per clip')
    parser.add_argument('--num-samples', type=int, default=20, help='samples to time')
    parser.add_argument('--short-side', type=int, default=360, help='train_short_size')
    parser.add_argument('--max-size', type=int, default=640, help='train_max_size')
    parser.add_argument('--target', type=float, default=0.5, help='seconds per sample to stay under')
    return parser.parse_args()


def main():
    args = parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    init_default_scope('soc_mm')
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_root
        if root is None:
            root = os.path.join(tmp, 'ref_youtube_vos')
            t0 = time.perf_counter()
            synthetic.generate_ref_youtube_vos(root, num_train=3, num_valid=0, num_test=0,
                                               num_frames=2 * args.num_frames, size=tuple(args.size), seed=0)
            print(f'generated synthetic Ref-YTVOS {args.size[0]}x{args.size[1]} in {time.perf_counter() - t0:.1f} s')
        pipeline = [
            dict(type='LoadRVOSFrames'), dict(type='LoadPaletteMasks'), dict(type='RVOSRandomFlip', prob=0.5),
            dict(type='RVOSRandomResize', short_side=[args.short_side], max_size=args.max_size),
            dict(type='PackRVOSInputs')]
        t0 = time.perf_counter()
        dataset = DATASETS.build(dict(type='RefYouTubeVOSDataset', data_root=root, split='train',
                                      num_frames=args.num_frames, pipeline=pipeline))
        print(f'dataset: {len(dataset)} samples, index built in {time.perf_counter() - t0:.2f} s')
        np.random.seed(0)
        dataset[0]  # warm-up (imports, first file-system access)
        times = []
        for i in range(args.num_samples):
            t0 = time.perf_counter()
            out = dataset[i % len(dataset)]
            times.append(time.perf_counter() - t0)
        shape = tuple(out['inputs'].shape)
        n_inst = len(out['data_samples'].gt_instances)
        mean, median, worst = statistics.mean(times), statistics.median(times), max(times)
        print(f'inputs {shape}, {n_inst} instances; per sample over {len(times)} samples on 1 thread: '
              f'mean {mean * 1000:.1f} ms, median {median * 1000:.1f} ms, max {worst * 1000:.1f} ms')
        print(f"target < {args.target:.2f} s per sample: {'PASS' if worst < args.target else 'FAIL'}")


if __name__ == '__main__':
    main()
