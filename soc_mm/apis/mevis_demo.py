"""The synthetic MeViS demo (``make demo-mevis``, ``tools/demo/run_mevis_demo.py``): ``score_thr`` of
threshold selection chosen on a calibration split, the trained tiny SOC tested on the held-out
``valid_u`` videos with top-1 selection, threshold selection and threshold selection with expressions
shuffled between videos, each run's PNGs scored by ``tools/analysis_tools/eval_mevis.py`` per expression
kind (multi-object, motion-only, no-target), the targets and the table."""
import json
import os
import os.path as osp
import shutil
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from soc_mm.datasets.synthetic import make_shuffled_expressions_root
from .demo_runner import DemoRunner, build_test_dataset, load_trained_model, read_metrics, step

#: the targets: threshold - top-1 on multi-object expressions, motion-only J&F, shuffled J&F
TARGET_MULTI_GAIN, TARGET_MOTION, TARGET_SHUFFLED = 0.10, 0.65, 0.45
#: expression subsets of the table: (name, manifest flag or None for every expression)
SUBSETS = (('all expressions', None), ('multi-object', 'multi_object'), ('motion-only', 'motion_only'),
           ('no-target', 'no_target'))
THRESHOLD_GRID = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 ... 0.95


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
    from mmengine.dataset import pseudo_collate
    model = load_trained_model(cfg_path, checkpoint, [*overrides, f'test_dataloader.dataset.data_root={data_root}/',
                                                      'model.test_cfg.return_all_queries=True'])
    dataset = build_test_dataset(model)
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


def calibrate_score_thr(config: str, overrides: Sequence[str], checkpoint: str, calib_root: str,
                        torch_threads: int) -> Tuple[float, Dict[float, float], str]:
    """Step 4: ``choose_score_thr`` on the calibration split ``calib_root`` (never the held-out videos),
    predicted in this process with ``torch_threads`` torch threads. Returns the threshold, the J&F of
    every threshold and a sentence on where the threshold comes from."""
    import torch
    torch.set_num_threads(torch_threads)
    t0 = time.perf_counter()
    predictions = query_predictions(config, overrides, checkpoint, calib_root)
    score_thr, thr_jf = choose_score_thr(predictions, osp.join(calib_root, 'valid_u', 'mask_dict.json'))
    print('calibration J&F per score_thr: ' + ', '.join(f'{t}: {v:.3f}' for t, v in thr_jf.items()))
    source = (f'best J&F {thr_jf[score_thr]:.3f} of {len(THRESHOLD_GRID)} thresholds on {len(predictions)} '
              f'expressions of a separate calibration split, {time.perf_counter() - t0:.0f} s')
    print(f'score_thr {score_thr} ({source})', flush=True)
    return score_thr, thr_jf, source


# ------------------------------------------------------------------ held-out runs
def test_and_score(runner: DemoRunner, config: str, checkpoint: str, data_root: str, out_dir: str,
                   overrides: List[str], manifest: dict) -> dict:
    """tools/test.py (MeViSMetric + the PNGs), then eval_mevis.py on the PNGs; the scores per subset."""
    if osp.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    pred_dir = osp.join(out_dir, 'pred')
    runner.run_tool('test', [config, checkpoint], ['--work-dir', out_dir, '--cfg-options', *overrides,
                                                   *mevis_test_overrides(data_root, pred_dir)],
                    osp.join(out_dir, 'test.log'), show=lambda line: 'MeViSMetric:' in line)
    metric = read_metrics(out_dir)['mevis/J&F']
    per_exp_file = osp.join(out_dir, 'per_expression.json')
    split = osp.join(data_root, 'valid_u')
    runner.run([runner.python, 'tools/analysis_tools/eval_mevis.py', osp.join(pred_dir, 'Annotations'),
                '--meta-expressions', osp.join(split, 'meta_expressions.json'), '--mask-dict',
                osp.join(split, 'mask_dict.json'), '--out', per_exp_file], osp.join(out_dir, 'eval_mevis.log'),
               show=lambda line: line.startswith('J&F'))
    with open(per_exp_file) as f:
        per_exp = json.load(f)
    return dict(subsets=subset_scores(per_exp, manifest['valid_u']), metric_jf=metric, per_expression=per_exp_file)


def evaluate_heldout(runner: DemoRunner, config: str, checkpoint: str, overrides: List[str], data_root: str,
                     shuffled_root: str, test_dir: str, score_thr: float, seed: int, manifest: dict) -> dict:
    """Step 5: ``test_and_score`` with top-1 selection, threshold selection (``score_thr``) and threshold
    selection on a copy of the held-out videos whose expressions come from other videos (``seed``).
    Returns ``{'top1' | 'threshold' | 'shuffled': test_and_score's dict}``."""
    step('5/6 held-out valid_u: (a) top-1, (b) threshold selection, (c) threshold with shuffled expressions')
    runs = {}
    for name, root, selection in (('top1', data_root, selection_overrides('top1')),
                                  ('threshold', data_root, selection_overrides('threshold', score_thr)),
                                  ('shuffled', shuffled_root, selection_overrides('threshold', score_thr))):
        if name == 'shuffled':
            make_shuffled_expressions_root(data_root, shuffled_root, 'mevis', seed=seed)
        print(f'--- {name}', flush=True)
        runs[name] = test_and_score(runner, config, checkpoint, root, osp.join(test_dir, name),
                                    overrides + selection, manifest)
    return runs


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
    """The markdown table of the three runs per expression subset and lines on the threshold and training."""
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
