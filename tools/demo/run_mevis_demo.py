"""`make demo-mevis`: train a tiny SOC on synthetic MeViS on the CPU; several objects per expression, motion.

Steps (everything under ``--work-dir``, default ``work_dirs/demo_mevis/``):

1. generate synthetic MeViS (``tools/dataset_converters/generate_synthetic_rvos.py mevis``): train videos
   and held-out ``valid_u`` videos (2-3 "twins" of one colour and shape told apart only by their motion,
   sometimes another object; expressions that refer to one object by its motion, to several objects, or
   to none), and a separate small calibration split (another seed) for choosing ``score_thr``;
2. make a tiny RoBERTa + byte-level BPE tokenizer trained on the train expressions
   (``tools/misc/make_tiny_text_encoder.py``);
3. train ``configs/soc/soc_tiny_synthetic_mevis.py`` with ``tools/dist_train.sh`` in ``--procs``
   data-parallel processes;
4. choose ``score_thr`` of threshold selection on the calibration split (never on the held-out videos):
   every query's masks and scores are predicted once, then the threshold with the best J&F wins;
5. test the checkpoint on the held-out ``valid_u`` videos (``tools/dist_test.sh``) with (a) top-1 selection,
   (b) threshold selection, (c) threshold selection with the expressions shuffled between held-out videos;
   each writes its predictions in the server layout (``test/<run>/pred/Annotations/<video>/<exp_id>/
   <frame>.png``), scored by ``tools/analysis_tools/eval_mevis.py`` (``per_expression.json``);
6. print the table (``results.md`` / ``results.json``): J&F of all, multi-object, motion-only and no-target
   expressions (kinds from ``synthetic_manifest.json``), shuffled J&F, training time.

    python tools/demo/run_mevis_demo.py                    # the full demo (timings: docs/mevis_demo.md)
    python tools/demo/run_mevis_demo.py --max-iters 50     # a quick look at the plumbing
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys

from soc_mm.apis.demo_runner import (DemoRunner, add_demo_arguments, check_demo_arguments, data_overrides,
                                     runner_log_line, step)
from soc_mm.apis.mevis_demo import calibrate_score_thr, evaluate_heldout, evaluate_targets, results_table

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'soc', 'soc_tiny_synthetic_mevis.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train and evaluate a tiny SOC on synthetic MeViS (CPU)')
    add_demo_arguments(parser, osp.join(REPO, 'work_dirs', 'demo_mevis'), DEFAULT_CONFIG)
    parser.add_argument('--lr', type=float, default=None, help='learning rate (default: the config)')
    parser.add_argument('--clip-frames', type=int, default=None,
                        help='frames per training clip (default: the config\'s num_frames)')
    parser.add_argument('--num-valid-u', type=int, default=100, help='held-out valid_u videos (with masks)')
    parser.add_argument('--num-calib', type=int, default=150,
                        help='calibration videos for score_thr (a separate valid_u split, another seed)')
    parser.add_argument('--num-frames', type=int, default=12, help='frames per synthetic video')
    parser.add_argument('--size', type=int, nargs=2, default=[96, 96], metavar=('H', 'W'), help='frame size')
    parser.add_argument('--exit-prob', type=float, default=None,
                        help='probability that a moving object leaves the video half-way (default: the '
                        "generator's 0.2)")
    parser.add_argument('--train-motion-repeats', type=int, default=4,
                        help='each train expression that refers to objects by their motion is written this many '
                        'times (the generator\'s --train-motion-repeats; default 4: training sees them four '
                        'times as often)')
    parser.add_argument('--seed', type=int, default=0, help='data seed (the calibration split uses seed + 1000)')
    parser.add_argument('--score-thr', type=float, default=None,
                        help='use this score_thr instead of choosing it on the calibration split')
    args = parser.parse_args(argv)
    check_demo_arguments(parser, args)
    if args.score_thr is not None and not 0 <= args.score_thr <= 1:
        parser.error(f'--score-thr must be in [0, 1], got {args.score_thr}')
    if args.num_calib < 1 and args.score_thr is None:
        parser.error('--num-calib must be >= 1 (or give --score-thr)')
    return args


def main(argv=None):
    args = parse_args(argv)
    runner = DemoRunner(REPO, args.work_dir, args.procs, args.threads)
    work_dir = runner.work_dir
    data_root, calib_root = osp.join(work_dir, 'data'), osp.join(work_dir, 'data_calib')
    text_encoder = osp.join(work_dir, 'tiny_roberta')

    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    max_iters = args.max_iters or cfg.train_cfg.max_iters
    clip_frames = args.clip_frames or cfg.num_frames
    overrides = data_overrides(data_root, text_encoder) + [f'train_dataloader.dataset.num_frames={clip_frames}']
    if args.lr is not None:
        overrides += [f'optim_wrapper.optimizer.lr={args.lr}', f'param_scheduler.1.eta_min={args.lr * 0.01}']
    overrides += list(args.cfg_options)

    if not args.skip_train:
        step(f'1/6 synthetic MeViS: {args.num_train} train + {args.num_valid_u} held-out valid_u videos '
             f'({args.num_frames} frames, {args.size[0]}x{args.size[1]}), {args.num_calib} calibration videos')
        for root, num_train, num_valid_u, seed in ((data_root, args.num_train, args.num_valid_u, args.seed),
                                                   (calib_root, 0, args.num_calib, args.seed + 1000)):
            if num_valid_u == 0 and root == calib_root:
                shutil.rmtree(root, ignore_errors=True)
                continue
            runner.generate_data('mevis', root, [
                '--num-train', str(num_train), '--num-valid-u', str(num_valid_u), '--num-valid', '0',
                '--num-frames', str(args.num_frames), '--size', *map(str, args.size), '--seed', str(seed),
                '--train-motion-repeats', str(args.train_motion_repeats)]
                + ([] if args.exit_prob is None else ['--exit-prob', str(args.exit_prob)]),
                f'generate_{osp.basename(root)}.log')
        runner.make_text_encoder(osp.join(data_root, 'train', 'meta_expressions.json'), text_encoder)
        train_info = runner.train(
            args.config, overrides, max_iters,
            show=lambda line: runner_log_line(line) or ('MeViSDataset' in line and 'mmengine' in line))
        train_info.update(clip_frames=clip_frames, num_frames=args.num_frames, size=list(args.size),
                          num_train=args.num_train, lr=args.lr or cfg.base_lr, overrides=overrides)
        runner.save_train_info(train_info)
    else:
        train_info = runner.load_train_info()
    checkpoint = runner.checkpoint(train_info)
    with open(osp.join(data_root, 'synthetic_manifest.json')) as f:
        manifest = json.load(f)

    if args.score_thr is not None:
        score_thr, thr_jf = args.score_thr, {}
        thr_source = 'given with --score-thr'
        step(f'4/6 score_thr {score_thr} (given)')
    else:
        step(f'4/6 score_thr chosen on the calibration split ({args.num_calib} videos of seed {args.seed + 1000}, '
             'not the held-out videos)')
        os.environ.update(OMP_NUM_THREADS=str(args.threads))
        score_thr, thr_jf, thr_source = calibrate_score_thr(args.config, overrides, checkpoint, calib_root,
                                                            torch_threads=max(args.threads, args.procs))

    runs = evaluate_heldout(runner, args.config, checkpoint, overrides, data_root, osp.join(work_dir, 'data_shuffled'),
                            osp.join(work_dir, 'test'), score_thr, args.seed, manifest)

    step(f'6/6 results (also in {work_dir}/results.md)')
    top1, thr, shuffled = (runs[k]['subsets'] for k in ('top1', 'threshold', 'shuffled'))
    table = results_table(top1, thr, shuffled, score_thr, thr_source, train_info)
    met = evaluate_targets(top1, thr, shuffled)
    verdict = '; '.join(f"{name} {'meets' if ok else 'MISSES'} its target" for name, ok in met.items()) + '.'
    print('\n' + table + '\n\n' + verdict, flush=True)
    runner.write_results(table, verdict, dict(
        runs=runs, score_thr=score_thr, calibration_jf={str(k): v for k, v in thr_jf.items()}, train=train_info,
        checkpoint=checkpoint, targets=met, targets_met=all(met.values())))
    if args.check and not all(met.values()):
        sys.exit(1)


if __name__ == '__main__':
    main()
