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

    python tools/demo/run_mevis_demo.py                    # the full demo (see the README for timings)
    python tools/demo/run_mevis_demo.py --max-iters 50     # a quick look at the plumbing
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # run_demo.py lies beside this script
from run_demo import (REPO, data_overrides, launch, read_metrics, run, runner_log_line,  # noqa: E402
                      schedule_overrides, step, thread_env, train_speed)

DEFAULT_CONFIG = osp.join(REPO, 'configs', 'soc', 'soc_tiny_synthetic_mevis.py')
#: the issue's targets: threshold - top-1 on multi-object expressions, motion-only J&F, shuffled J&F
TARGET_MULTI_GAIN, TARGET_MOTION, TARGET_SHUFFLED = 0.10, 0.65, 0.45
#: expression subsets of the table: (name, manifest flag or None for every expression)
SUBSETS = (('all expressions', None), ('multi-object', 'multi_object'), ('motion-only', 'motion_only'),
           ('no-target', 'no_target'))
THRESHOLD_GRID = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 ... 0.95


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train and evaluate a tiny SOC on synthetic MeViS (CPU)')
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'demo_mevis'))
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--max-iters', type=int, default=None, help='training iterations (default: the config)')
    parser.add_argument('--lr', type=float, default=None, help='learning rate (default: the config)')
    parser.add_argument('--clip-frames', type=int, default=None,
                        help='frames per training clip (default: the config\'s num_frames)')
    parser.add_argument('--num-train', type=int, default=400, help='synthetic train videos')
    parser.add_argument('--num-valid-u', type=int, default=100, help='held-out valid_u videos (with masks)')
    parser.add_argument('--num-calib', type=int, default=60,
                        help='calibration videos for score_thr (a separate valid_u split, another seed)')
    parser.add_argument('--num-frames', type=int, default=12, help='frames per synthetic video')
    parser.add_argument('--size', type=int, nargs=2, default=[96, 96], metavar=('H', 'W'), help='frame size')
    parser.add_argument('--exit-prob', type=float, default=None,
                        help='probability that a moving object leaves the video half-way (default: the '
                        "generator's 0.2)")
    parser.add_argument('--train-motion-repeats', type=int, default=3,
                        help='each train expression that refers to objects by their motion is written this many '
                        'times (the generator\'s --train-motion-repeats; default 3: training sees them three '
                        'times as often)')
    parser.add_argument('--seed', type=int, default=0, help='data seed (the calibration split uses seed + 1000)')
    parser.add_argument('--score-thr', type=float, default=None,
                        help='use this score_thr instead of choosing it on the calibration split')
    parser.add_argument('--procs', type=int, default=min(2, os.cpu_count() or 1),
                        help='training / testing processes (default: 2, or 1 on a 1-core machine)')
    parser.add_argument('--threads', type=int, default=1, help='torch / OpenMP threads of each process')
    parser.add_argument('--skip-train', action='store_true',
                        help='reuse the data and checkpoint of a previous run in --work-dir')
    parser.add_argument('--check', action='store_true', help='exit with status 1 when a target is missed')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra key=value config overrides for training and testing')
    args = parser.parse_args(argv)
    if args.procs < 1 or args.threads < 1:
        parser.error(f'--procs and --threads must be >= 1, got {args.procs} and {args.threads}')
    if args.score_thr is not None and not 0 <= args.score_thr <= 1:
        parser.error(f'--score-thr must be in [0, 1], got {args.score_thr}')
    if args.num_calib < 1 and args.score_thr is None:
        parser.error('--num-calib must be >= 1 (or give --score-thr)')
    return args


# ------------------------------------------------------------------ config overrides
def mevis_test_overrides(data_root: str, pred_dir: str) -> List[str]:
    """Held-out split of ``data_root`` for the dataset and both metrics; PNGs under ``pred_dir``."""
    root = data_root.rstrip('/') + '/'
    return [f'test_dataloader.dataset.data_root={root}',
            f'test_evaluator.0.meta_file={root}valid_u/meta_expressions.json',
            f'test_evaluator.0.mask_dict_file={root}valid_u/mask_dict.json',
            f'test_evaluator.1.output_dir={pred_dir}',
            f'test_evaluator.1.meta_file={root}valid_u/meta_expressions.json']


def selection_overrides(mode: str, score_thr: Optional[float] = None) -> List[str]:
    """``model.test_cfg`` object selection: ``'top1'`` or ``'threshold'`` (with ``score_thr``, no target
    allowed: an expression whose queries all score below it gets empty masks)."""
    if mode == 'top1':
        return ['model.test_cfg.object_selection=top1', 'model.test_cfg.score_thr=None',
                'model.test_cfg.allow_no_target=False']
    if mode != 'threshold' or score_thr is None:
        raise ValueError(f"selection must be 'top1' or 'threshold' with a score_thr, got {mode!r}, {score_thr!r}")
    return ['model.test_cfg.object_selection=threshold', f'model.test_cfg.score_thr={score_thr}',
            'model.test_cfg.allow_no_target=True']


def parse_overrides(items: Sequence[str]) -> dict:
    """``key=value`` strings parsed as ``--cfg-options`` parses them."""
    from mmengine.config import DictAction
    parsed = {}
    for item in items:
        key, value = item.split('=', 1)
        parsed[key] = DictAction._parse_iterable(value)
    return parsed


# ------------------------------------------------------------------ shuffled expressions
def make_mevis_shuffled_root(data_root: str, out_root: str, seed: int = 0) -> Dict[str, Dict[str, str]]:
    """A data root whose ``valid_u`` expressions come from other videos (``anno_id``/``obj_id`` and the
    masks stay the video's own).

    The videos are put in a random cycle; each video's k-th expression takes the text of the next
    video's (k mod n)-th expression. Frames and ``mask_dict.json`` are symlinked. Returns the new texts
    ``{video: {exp_id: text}}``.
    """
    if osp.isdir(out_root):
        shutil.rmtree(out_root)
    src, dst = osp.join(data_root, 'valid_u'), osp.join(out_root, 'valid_u')
    os.makedirs(dst)
    for name in ('JPEGImages', 'mask_dict.json'):
        os.symlink(osp.abspath(osp.join(src, name)), osp.join(dst, name))
    with open(osp.join(src, 'meta_expressions.json')) as f:
        meta = json.load(f)
    videos = meta['videos']
    if len(videos) < 2:
        raise ValueError(f'{src}: shuffling expressions between videos needs at least 2 videos, got {len(videos)}')
    order = sorted(videos)
    np.random.default_rng(seed).shuffle(order)
    texts = {}
    for i, vid in enumerate(order):
        donor = [e['exp'] for _, e in sorted(videos[order[(i + 1) % len(order)]]['expressions'].items())]
        texts[vid] = {}
        for k, (exp_id, exp) in enumerate(sorted(videos[vid]['expressions'].items())):
            exp['exp'] = donor[k % len(donor)]
            texts[vid][exp_id] = exp['exp']
    with open(osp.join(dst, 'meta_expressions.json'), 'w') as f:
        json.dump(meta, f)
    return texts


# ------------------------------------------------------------------ scores per expression kind
def split_expression_key(key: str) -> Tuple[str, str]:
    """``"<video>_<exp_id>"`` of ``per_expression.json`` -> (video, exp_id); exp ids have no ``_``."""
    video, sep, exp_id = key.rpartition('_')
    if not sep or not video:
        raise ValueError(f'per-expression key {key!r} is not "<video>_<exp_id>"')
    return video, exp_id


def subset_scores(per_expression: Dict[str, Sequence[float]], expressions: Dict[str, dict]) -> Dict[str, dict]:
    """J, F, J&F and the count of each subset of ``SUBSETS``.

    Args:
        per_expression: ``{"<video>_<exp_id>": [J, F]}`` (``eval_mevis.py --out``).
        expressions: the split's manifest (``synthetic_manifest.json``: ``{video: {'expressions': {exp_id:
            {'multi_object', 'motion_only', 'no_target', ...}}}}``); every expression must be scored.

    Returns:
        ``{subset name: {'num', 'J', 'F', 'J&F'}}`` (None values for an empty subset).
    """
    scores = {}
    for key, (j, f) in per_expression.items():
        scores[split_expression_key(key)] = (j, f)
    out = {}
    for name, flag in SUBSETS:
        picked = []
        for vid, video in expressions.items():
            for exp_id, exp in video['expressions'].items():
                if flag is None or exp[flag]:
                    if (vid, exp_id) not in scores:
                        raise KeyError(f'no score for video {vid!r} expression {exp_id!r} in the per-expression file')
                    picked.append(scores[(vid, exp_id)])
        if picked:
            j, f = float(np.mean([p[0] for p in picked])), float(np.mean([p[1] for p in picked]))
            out[name] = {'num': len(picked), 'J': j, 'F': f, 'J&F': (j + f) / 2}
        else:
            out[name] = {'num': 0, 'J': None, 'F': None, 'J&F': None}
    return out


# ------------------------------------------------------------------ calibration of score_thr
def query_predictions(cfg_path: str, overrides: Sequence[str], checkpoint: str, data_root: str) -> List[dict]:
    """Every query's masks and video score for each ``valid_u`` expression of ``data_root`` (one forward each).

    Returns dicts with ``video_id``, ``exp_id``, ``anno_ids``, ``scores`` float [nq] (class probability
    averaged over the frames, the score ``select_objects`` thresholds) and ``masks`` bool [nq, T, H0, W0].
    """
    import torch
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.runner import load_checkpoint

    from soc_mm.registry import DATASETS, MODELS, register_all_modules

    register_all_modules()
    cfg = Config.fromfile(cfg_path)
    cfg.merge_from_dict(parse_overrides([*overrides, f'test_dataloader.dataset.data_root={data_root}/',
                                         'model.test_cfg.return_all_queries=True']))
    model = MODELS.build(cfg.model)
    load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    model.eval()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    by_video: Dict[str, List[int]] = {}
    for idx in range(len(dataset)):
        by_video.setdefault(dataset.get_data_info(idx)['video_id'], []).append(idx)
    out = []
    for indices in by_video.values():  # a video's expressions in one batch: one backbone pass
        with torch.no_grad():
            samples = model.test_step(pseudo_collate([dataset[i] for i in indices]))
        for idx, sample in zip(indices, samples):
            info = dataset.get_data_info(idx)
            out.append(dict(video_id=info['video_id'], exp_id=info['exp_id'], anno_ids=info['anno_ids'],
                            scores=sample.pred_instances.scores.float().mean(1).numpy(),
                            masks=sample.pred_instances.masks.numpy()))
    return out


def choose_score_thr(predictions: List[dict], mask_dict_file: str,
                     grid: Sequence[float] = THRESHOLD_GRID) -> Tuple[float, Dict[float, float]]:
    """The threshold of ``grid`` with the best J&F over ``predictions`` (threshold selection with no target
    allowed, as ``select_objects``); ties: the lowest. Returns it and the J&F of every threshold."""
    import torch

    from soc_mm.evaluation.functional.mevis import load_mevis_mask_dict, mevis_expression_jf, mevis_gt_masks
    from soc_mm.models.dense_heads.soc_head import select_objects
    mask_dict = load_mevis_mask_dict(mask_dict_file)
    gts = [mevis_gt_masks(mask_dict, p['anno_ids'], p['masks'].shape[1], tuple(p['masks'].shape[2:]),
                          where=f"{p['video_id']}/{p['exp_id']}") for p in predictions]
    jf = {}
    for thr in grid:
        per_exp = []
        for pred, gt in zip(predictions, gts):
            chosen = select_objects(torch.from_numpy(pred['scores']), 'threshold', thr, True).numpy()
            union = pred['masks'][chosen].any(0) if len(chosen) else np.zeros_like(gt)
            per_exp.append(mevis_expression_jf(union, gt))
        jf[thr] = float((np.mean([s[0] for s in per_exp]) + np.mean([s[1] for s in per_exp])) / 2)
    best = max(grid, key=lambda t: (jf[t], -t))
    return best, jf


# ------------------------------------------------------------------ table
def _fmt(value: Optional[float]) -> str:
    return 'n/a' if value is None else f'{value:.3f}'


def evaluate_targets(top1: Dict[str, dict], thr: Dict[str, dict], shuffled: Dict[str, dict]) -> Dict[str, bool]:
    """The three targets: multi-object gain of threshold over top-1, motion-only J&F (threshold),
    shuffled J&F (threshold)."""
    multi_t, multi_1 = thr['multi-object']['J&F'], top1['multi-object']['J&F']
    motion = thr['motion-only']['J&F']
    return {'multi_object_gain': multi_t is not None and multi_1 is not None
            and multi_t - multi_1 >= TARGET_MULTI_GAIN,
            'motion_only': motion is not None and motion >= TARGET_MOTION,
            'shuffled': shuffled['all expressions']['J&F'] <= TARGET_SHUFFLED}


def results_table(top1: Dict[str, dict], thr: Dict[str, dict], shuffled: Dict[str, dict], score_thr: float,
                  thr_source: str, train_info: dict) -> str:
    targets = {'multi-object': f'threshold - top-1 >= {TARGET_MULTI_GAIN:.2f}',
               'motion-only': f'threshold >= {TARGET_MOTION:.2f}', 'all expressions': '', 'no-target': ''}
    lines = ['| held-out synthetic MeViS (valid_u) | expressions | J&F top-1 | J&F threshold | target |',
             '|---|---|---|---|---|']
    for name, _ in SUBSETS:
        gain = ''
        if name == 'multi-object' and top1[name]['J&F'] is not None:
            gain = f" (+{thr[name]['J&F'] - top1[name]['J&F']:.3f})"
        lines.append(f"| {name} | {thr[name]['num']} | {_fmt(top1[name]['J&F'])} | {_fmt(thr[name]['J&F'])}{gain} "
                     f"| {targets[name]} |")
    lines.append(f"| all, expressions shuffled between videos | {shuffled['all expressions']['num']} | - | "
                 f"{_fmt(shuffled['all expressions']['J&F'])} | <= {TARGET_SHUFFLED:.2f} |")
    speed = f"{train_info['it_per_s']:.2f} it/s" if train_info.get('it_per_s') else 'n/a'
    lines += ['', f'Threshold selection: score_thr {score_thr} ({thr_source}); an expression whose queries all '
              'score below it gets empty masks (no target). J&F from tools/analysis_tools/eval_mevis.py on the '
              'PNGs (official rules: a no-target expression scores 1 only with empty masks).',
              f"Training: {train_info['max_iters']} iterations of {train_info['procs']} process(es) x batch 1 "
              f"({train_info['clip_frames']} frames of {train_info['num_frames']}, "
              f"{train_info['size'][0]}x{train_info['size'][1]}, {train_info['num_train']} train videos) in "
              f"{train_info['train_s'] / 60:.1f} min wall time incl. start-up ({speed}), {train_info['threads']} "
              f"torch thread(s) per process, load average before/after {train_info['load_before']:.1f}/"
              f"{train_info['load_after']:.1f} on {os.cpu_count()} cores."]
    return '\n'.join(lines)


# ------------------------------------------------------------------ main
def test_and_score(py: str, config: str, checkpoint: str, data_root: str, out_dir: str, overrides: List[str],
                   procs: int, env: Dict[str, str], manifest: dict) -> dict:
    """tools/test.py (MeViSMetric + the PNGs), then eval_mevis.py on the PNGs; the scores per subset."""
    if osp.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    pred_dir = osp.join(out_dir, 'pred')
    cmd, cmd_env = launch(py, 'test', [config, checkpoint],
                          ['--work-dir', out_dir, '--cfg-options', *overrides,
                           *mevis_test_overrides(data_root, pred_dir)], procs, env)
    run(cmd, osp.join(out_dir, 'test.log'), cmd_env, show=lambda line: 'MeViSMetric:' in line)
    metric = read_metrics(out_dir)['mevis/J&F']
    per_exp_file = osp.join(out_dir, 'per_expression.json')
    split = osp.join(data_root, 'valid_u')
    run([py, 'tools/analysis_tools/eval_mevis.py', osp.join(pred_dir, 'Annotations'), '--meta-expressions',
         osp.join(split, 'meta_expressions.json'), '--mask-dict', osp.join(split, 'mask_dict.json'),
         '--out', per_exp_file], osp.join(out_dir, 'eval_mevis.log'), env, show=lambda line: line.startswith('J&F'))
    with open(per_exp_file) as f:
        per_exp = json.load(f)
    return dict(subsets=subset_scores(per_exp, manifest['valid_u']), metric_jf=metric, per_expression=per_exp_file)


def main(argv=None):
    args = parse_args(argv)
    work_dir = osp.abspath(args.work_dir)
    data_root, calib_root = osp.join(work_dir, 'data'), osp.join(work_dir, 'data_calib')
    shuffled_root = osp.join(work_dir, 'data_shuffled')
    text_encoder = osp.join(work_dir, 'tiny_roberta')
    train_dir, test_dir = osp.join(work_dir, 'train'), osp.join(work_dir, 'test')
    os.makedirs(work_dir, exist_ok=True)
    env = thread_env(args.threads)
    py = sys.executable

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
            if osp.isdir(root):
                shutil.rmtree(root)
            if num_valid_u == 0 and root == calib_root:
                continue
            run([py, 'tools/dataset_converters/generate_synthetic_rvos.py', 'mevis', root, '--num-train',
                 str(num_train), '--num-valid-u', str(num_valid_u), '--num-valid', '0', '--num-frames',
                 str(args.num_frames), '--size', *map(str, args.size), '--seed', str(seed)]
                + ['--train-motion-repeats', str(args.train_motion_repeats)]
                + ([] if args.exit_prob is None else ['--exit-prob', str(args.exit_prob)]),
                osp.join(work_dir, f'generate_{osp.basename(root)}.log'), env)

        step('2/6 tiny text encoder (byte-level BPE trained on the train expressions, random RoBERTa)')
        run([py, 'tools/misc/make_tiny_text_encoder.py', osp.join(data_root, 'train', 'meta_expressions.json'),
             '--out', text_encoder], osp.join(work_dir, 'text_encoder.log'), env,
            show=lambda line: 'trained on' in line)

        step(f'3/6 training {osp.relpath(args.config, REPO)} for {max_iters} iterations '
             f'({args.procs} data-parallel process(es) x {args.threads} torch thread(s); '
             f'log: {train_dir}/<timestamp>/)')
        if osp.isdir(train_dir):
            shutil.rmtree(train_dir)
        load_before = os.getloadavg()[0]
        cmd, cmd_env = launch(py, 'train', [args.config], ['--work-dir', train_dir, '--cfg-options', *overrides,
                                                           *schedule_overrides(max_iters)], args.procs, env)
        train_s = run(cmd, osp.join(work_dir, 'train.log'), cmd_env,
                      show=lambda line: runner_log_line(line) or ('MeViSDataset' in line and 'mmengine' in line))
        train_info = dict(max_iters=max_iters, train_s=train_s, procs=args.procs, threads=args.threads,
                          load_before=load_before, load_after=os.getloadavg()[0],
                          it_per_s=train_speed(osp.join(work_dir, 'train.log')), clip_frames=clip_frames,
                          num_frames=args.num_frames, size=list(args.size), num_train=args.num_train,
                          lr=args.lr or cfg.base_lr, overrides=overrides)
        with open(osp.join(work_dir, 'train_info.json'), 'w') as f:
            json.dump(train_info, f, indent=1)
    else:
        with open(osp.join(work_dir, 'train_info.json')) as f:
            train_info = json.load(f)
    checkpoint = osp.join(train_dir, f"iter_{train_info['max_iters']}.pth")
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
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
        import torch
        torch.set_num_threads(max(args.threads, args.procs))
        t0 = time.perf_counter()
        predictions = query_predictions(args.config, overrides, checkpoint, calib_root)
        score_thr, thr_jf = choose_score_thr(predictions, osp.join(calib_root, 'valid_u', 'mask_dict.json'))
        print('calibration J&F per score_thr: ' + ', '.join(f'{t}: {v:.3f}' for t, v in thr_jf.items()))
        thr_source = (f'best J&F {thr_jf[score_thr]:.3f} of {len(THRESHOLD_GRID)} thresholds on {len(predictions)} '
                      f'expressions of a separate calibration split, {time.perf_counter() - t0:.0f} s')
        print(f'score_thr {score_thr} ({thr_source})', flush=True)

    step('5/6 held-out valid_u: (a) top-1, (b) threshold selection, (c) threshold with shuffled expressions')
    runs = {}
    for name, root, selection in (('top1', data_root, selection_overrides('top1')),
                                  ('threshold', data_root, selection_overrides('threshold', score_thr)),
                                  ('shuffled', shuffled_root, selection_overrides('threshold', score_thr))):
        if name == 'shuffled':
            make_mevis_shuffled_root(data_root, shuffled_root, seed=args.seed)
        print(f'--- {name}', flush=True)
        runs[name] = test_and_score(py, args.config, checkpoint, root, osp.join(test_dir, name),
                                    overrides + selection, args.procs, env, manifest)

    step(f'6/6 results (also in {work_dir}/results.md)')
    top1, thr, shuffled = (runs[k]['subsets'] for k in ('top1', 'threshold', 'shuffled'))
    table = results_table(top1, thr, shuffled, score_thr, thr_source, train_info)
    met = evaluate_targets(top1, thr, shuffled)
    verdict = '; '.join(f"{name} {'meets' if ok else 'MISSES'} its target" for name, ok in met.items()) + '.'
    print('\n' + table + '\n\n' + verdict, flush=True)
    with open(osp.join(work_dir, 'results.md'), 'w') as f:
        f.write(table + '\n\n' + verdict + '\n')
    with open(osp.join(work_dir, 'results.json'), 'w') as f:
        json.dump(dict(runs=runs, score_thr=score_thr, calibration_jf={str(k): v for k, v in thr_jf.items()},
                       train=train_info, checkpoint=checkpoint, targets=met, targets_met=all(met.values())),
                  f, indent=1)
    if args.check and not all(met.values()):
        sys.exit(1)


if __name__ == '__main__':
    main()
