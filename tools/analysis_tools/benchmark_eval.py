"""Evaluate the same generated split with a benchmark's official evaluation script and with
``tools/analysis_tools/eval_rvos.py``, side by side in one run: wall time, peak memory of all processes
together (PSS and RSS sums of each command's process tree, polled from /proc) and the numbers of both.

    # ReVOS-scale MeViS v2 valid_u: 100 videos x 60 frames at 720p (about 1,100 expressions)
    python tools/analysis_tools/benchmark_eval.py mevis --official-script /path/to/MeViS/tools/eval_mevis.py \\
        --data-dir work_dirs/benchmark_eval_mevis --num-videos 100 --num-frames 60 --size 720 1280 --workers 2
    python tools/analysis_tools/benchmark_eval.py revos --official-script /path/to/VISA/tools/eval_revos.py \\
        --data-dir work_dirs/benchmark_eval_revos --num-videos 100 --num-frames 60 --size 720 1280 --workers 2

``--official-script`` is a copy of the official code outside this repository, with its ``metrics.py`` beside
it (MeViS: ``tools/eval_mevis.py``; ReVOS: VISA's ``tools/eval_revos.py``). They need numpy, opencv,
pycocotools and scikit-image (ReVOS also pandas, tqdm, termcolor), e.g. on ``--official-pythonpath``. The
script runs as a patched copy (written to the data folder) whose worker count is ``--official-workers``
(default: ``--workers``; 0: the script's own, 64 for MeViS and 128 for ReVOS). The split and made-up
predictions (perturbed ground truth; MeViS: some expressions predicted empty and one video without
predictions; ReVOS: 0/1 and 0/255 PNGs) are generated into ``--data-dir`` unless they are there already.
Results: ``docs/benchmarks.md`` (Memory and speed).
"""
import argparse
import json
import os
import os.path as osp
import sys

SHIPPED_WORKERS = {'mevis': 64, 'revos': 128}
KEYS = {'mevis': ('J', 'F', 'J&F'), 'revos': ('overall/J', 'overall/F', 'overall/A', 'overall/R', 'overall/JF')}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Official evaluation script vs eval_rvos.py: time, memory, numbers')
    parser.add_argument('benchmark', choices=tuple(SHIPPED_WORKERS))
    parser.add_argument('--official-script', required=True, help='the official evaluation script (a copy outside '
                        'this repository)')
    parser.add_argument('--data-dir', required=True, help='the generated split and predictions (made if absent)')
    parser.add_argument('--num-videos', type=int, default=100)
    parser.add_argument('--num-frames', type=int, default=60)
    parser.add_argument('--size', type=int, nargs=2, default=[720, 1280], metavar=('H', 'W'))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--workers', type=int, default=2, help='worker processes of eval_rvos.py')
    parser.add_argument('--official-workers', type=int, default=None,
                        help="worker processes of the official script (default: --workers; 0: the script's own)")
    parser.add_argument('--official-pythonpath', action='append', default=[],
                        help="folders added to the official script's PYTHONPATH (e.g. where scikit-image is)")
    parser.add_argument('--out', help='write the measurements to this JSON file')
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f'--workers {args.workers}: must be >= 1')
    if not osp.isfile(args.official_script):
        parser.error(f'--official-script {args.official_script}: no such file')
    return args


def _prepare_mevis(args):
    """(meta, masks, pred_dir): MeViS v2 valid_u and predictions, generated when absent."""
    from soc_mm.datasets.synthetic_mevis_v2 import generate_mevis_v2
    from soc_mm.testing.eval_benchmark import write_mevis_style_predictions
    split = osp.join(args.data_dir, 'valid_u')
    meta, masks = osp.join(split, 'meta_expressions_v2.json'), osp.join(split, 'mask_dict.json')
    pred_dir = osp.join(args.data_dir, 'predictions')
    if not (osp.isfile(meta) and osp.isfile(masks)):
        print(f'generating {args.num_videos} videos x {args.num_frames} frames at {args.size[0]}x{args.size[1]} '
              f'into {args.data_dir}', flush=True)
        generate_mevis_v2(args.data_dir, num_train=0, num_valid_u=args.num_videos, num_valid=0,
                          num_frames=args.num_frames, size=tuple(args.size), seed=args.seed, audio=False)
    if not osp.isdir(pred_dir):
        written = write_mevis_style_predictions(meta, masks, pred_dir, seed=args.seed)
        print(f'wrote {written["frames"]} prediction PNGs of {written["expressions"]} expressions '
              f'(no predictions for {written["missing_videos"]})', flush=True)
    return meta, masks, pred_dir


def _prepare_revos(args):
    """(meta, masks, foreground, pred_dir): the ReVOS valid split and predictions, generated when absent."""
    from soc_mm.datasets.revos import revos_meta_file
    from soc_mm.datasets.synthetic_revos import generate_revos, write_revos_predictions
    meta = revos_meta_file(args.data_dir, 'valid')
    masks, foreground = osp.join(args.data_dir, 'mask_dict.json'), osp.join(args.data_dir, 'mask_dict_foreground.json')
    pred_dir = osp.join(args.data_dir, 'predictions', 'Annotations')
    if not all(osp.isfile(p) for p in (meta, masks, foreground)):
        print(f'generating {args.num_videos} videos x {args.num_frames} frames at {args.size[0]}x{args.size[1]} '
              f'into {args.data_dir}', flush=True)
        generate_revos(args.data_dir, num_train=0, num_valid=args.num_videos, num_frames=args.num_frames,
                       size=tuple(args.size), seed=args.seed)
    if not osp.isdir(pred_dir):
        report = write_revos_predictions(args.data_dir, pred_dir, seed=args.seed)
        print(f'wrote the predictions of {len(report["pixel_values"])} expressions to {pred_dir}', flush=True)
    return meta, masks, foreground, pred_dir


def main(argv=None):
    args = parse_args(argv)
    from soc_mm.testing.eval_benchmark import compare_mevis, compare_revos, side_by_side_table
    official_workers = args.workers if args.official_workers is None else args.official_workers
    common = dict(workers=args.workers, official_workers=official_workers,
                  official_pythonpath=args.official_pythonpath)
    runs = osp.join(args.data_dir, 'runs')
    if args.benchmark == 'mevis':
        meta, masks, pred_dir = _prepare_mevis(args)
        result = compare_mevis(args.official_script, meta, masks, pred_dir, runs, **common)
    else:
        meta, masks, foreground, pred_dir = _prepare_revos(args)
        result = compare_revos(args.official_script, meta, masks, foreground, pred_dir, runs, **common)
    with open(meta) as f:
        videos = json.load(f)['videos']
    num_exps = sum(len(v['expressions']) for v in videos.values())
    frames = sorted({len(v['frames']) for v in videos.values()})
    print(f'split: {len(videos)} videos, {num_exps} expressions, {frames} frames per video at '
          f'{args.size[0]}x{args.size[1]}')
    print(side_by_side_table(result, args.workers, official_workers, keys=KEYS[args.benchmark],
                             shipped_workers=SHIPPED_WORKERS[args.benchmark]))
    print(f'max |official - ours| over the reported numbers: {result.max_abs_diff!r}')
    print(f'max |official - ours| over the per-expression numbers: {result.per_expression_max_abs_diff!r}')
    print(f'peak PSS ours / official: {result.ours.peak_pss / max(result.official.peak_pss, 1):.3f}; '
          f'wall time ours / official: {result.ours.wall_s / max(result.official.wall_s, 1e-9):.3f}')
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(
                benchmark=args.benchmark, videos=len(videos), expressions=num_exps, frames=frames, size=args.size,
                workers=args.workers, official_workers=official_workers or SHIPPED_WORKERS[args.benchmark],
                official=dict(wall_s=result.official.wall_s, peak_pss=result.official.peak_pss,
                              peak_rss=result.official.peak_rss, metrics=result.official_metrics),
                ours=dict(wall_s=result.ours.wall_s, peak_pss=result.ours.peak_pss, peak_rss=result.ours.peak_rss,
                          metrics=result.our_metrics),
                max_abs_diff=result.max_abs_diff, per_expression_max_abs_diff=result.per_expression_max_abs_diff,
                commands=result.commands), f, indent=1)
    if result.max_abs_diff > 1e-9 or (result.per_expression_max_abs_diff or 0) > 1e-9:
        sys.exit('benchmark_eval.py: the numbers differ by more than 1e-9')
    return result


if __name__ == '__main__':
    main()
