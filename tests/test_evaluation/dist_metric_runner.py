"""Runs soc_mm metrics on a fixed set of synthetic samples, split over the ranks of a
``torchrun`` (gloo, CPU) job like mmengine's DefaultSampler (padded with duplicates).

Used by tests/test_evaluation/test_metrics_dist.py:
    torchrun --nproc_per_node 2 tests/test_evaluation/dist_metric_runner.py OUT.json WORK_DIR
"""
import json
import os
import sys

import numpy as np
import torch

NUM_SAMPLES = 7  # odd: the 2-rank split is padded with a duplicate


def build_samples(num_samples: int = NUM_SAMPLES, seed: int = 0) -> list:
    """Synthetic RVOS samples (dicts as mmengine's Evaluator passes them)."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(num_samples):
        num_frames, height, width = 3, 24, 40
        yy, xx = np.mgrid[:height, :width]
        gt = np.zeros((num_frames, height, width), bool)
        queries = np.zeros((3, num_frames, height, width), bool)
        for t in range(num_frames):
            cy, cx, r = rng.integers(4, height - 4), rng.integers(4, width - 4), rng.integers(2, 8)
            gt[t] = (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
            for q in range(3):
                dy, dx = rng.integers(-3, 4, size=2)
                queries[q, t] = (yy - cy - dy) ** 2 + (xx - cx - dx) ** 2 <= (r + q - 1) ** 2
        scores = torch.from_numpy(rng.random((3, num_frames))).float()
        top = scores.argmax(0)
        samples.append(dict(
            video_id=f'video{i // 2}', exp_id=str(i % 2), frame_ids=[f'{t:05d}' for t in range(num_frames)],
            valid_frame_idx=None, ori_shape=(height, width), annotator=i % 4,
            pred_masks=torch.from_numpy(queries[top.numpy(), np.arange(num_frames)]),
            pred_scores=scores.max(0).values, ori_gt_masks=torch.from_numpy(gt),
            pred_instances=dict(masks=torch.from_numpy(queries), scores=scores)))
    return samples


def build_metrics(collect_dir: str) -> list:
    from soc_mm.registry import METRICS
    return [METRICS.build(dict(type='RVOSJFMetric', collect_dir=collect_dir + '/jf')),
            METRICS.build(dict(type='A2DSentencesMetric', collect_dir=collect_dir + '/a2d'))]


def run(samples: list, indices: list, size: int, collect_dir: str) -> dict:
    """Process ``samples[indices]`` (one per batch) and evaluate every metric."""
    metrics = {}
    for metric in build_metrics(collect_dir):
        for i in indices:
            metric.process({}, [samples[i]])
        metrics.update(metric.evaluate(size))
    return metrics


def main():
    import torch.distributed as dist
    out_path, work_dir = sys.argv[1], sys.argv[2]
    # gloo on CPU, set up before any mmengine call (mmengine's init_dist would call torch.cuda.set_device).
    dist.init_process_group(backend='gloo')
    import soc_mm  # noqa: F401
    rank, world_size = dist.get_rank(), dist.get_world_size()
    samples = build_samples()
    total = -(-len(samples) // world_size) * world_size
    padded = (list(range(len(samples))) * 2)[:total]  # DefaultSampler(round_up=True)
    metrics = run(samples, padded[rank:total:world_size], len(samples), work_dir)
    if rank == 0:
        with open(out_path, 'w') as f:
            json.dump(metrics, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    main()
