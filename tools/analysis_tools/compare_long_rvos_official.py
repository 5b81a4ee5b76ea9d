"""Compare soc_mm's Long-RVOS evaluator with the official scripts (``eval/eval_long_rvos/`` of a clone of the
Long-RVOS repository) on generated data; every number must agree to ``--tolerance``.

    python tools/analysis_tools/compare_long_rvos_official.py --official-repo PATH/Long_RVOS \\
        --official-python PATH/python --work-dir work_dirs/long_rvos_official --num-videos 6 --num-frames 60

The case (written under ``--work-dir``, laid out as the official scripts expect it: ``data/long_rvos/valid``)
is a synthetic Long-RVOS ``valid`` split (``soc_mm.datasets.synthetic_long_rvos``) with extra expressions (an
object that has no mask at all, an ``obj_id`` written as an int, a type none of the per-type scripts reads),
all-zero ground-truth PNGs in some frames where an object is absent, and two prediction folders: every frame
(``pred_full``: per expression the truth, another object's masks, a shifted truth, nothing, or a mix; values
255, 1 or 77; a few frames missing; none for the last video) and every sixth frame (``pred_key``).

The official ``eval_static.py``, ``eval_dynamic.py``, ``eval_hybrid.py`` and ``eval_overall.py`` run on
``pred_full`` and ``eval_pred_frame.py`` on both; their printed tables and the per-expression json files
they write are compared with ``evaluate_long_rvos_predictions`` (``only_predicted_frames`` for the last
one). ``--official-python`` needs numpy, opencv and scikit-image. Prints one line per table (official /
ours) and the largest difference; exits with status 1 if one exceeds the tolerance.
"""
import argparse
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time

import cv2
import numpy as np

TABLE_HEADERS = (('eval_static.py', 'static', '---- Static Type ----'),
                 ('eval_dynamic.py', 'dynamic', '---- Dynamic Type ----'),
                 ('eval_hybrid.py', 'hybrid', '---- Hybrid Type ----'),
                 ('eval_overall.py', 'overall', '---- Overall Type ----'))
NAMES = ('J', 'F', 'J&F', 'tIoU', 'vIoU')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Compare the Long-RVOS evaluator with the official scripts')
    parser.add_argument('--official-repo', required=True, help='a clone of the Long-RVOS repository')
    parser.add_argument('--official-python', default=sys.executable,
                        help='the Python that runs the official scripts (numpy, opencv, scikit-image)')
    parser.add_argument('--work-dir', required=True, help='folder for the case (replaced)')
    parser.add_argument('--num-videos', type=int, default=6, help='videos of the valid split')
    parser.add_argument('--num-frames', type=int, default=60, help='frames per video')
    parser.add_argument('--size', type=int, nargs=2, default=[72, 96], metavar=('H', 'W'))
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--workers', type=int, default=2, help='worker processes of our evaluator')
    parser.add_argument('--tolerance', type=float, default=1e-9)
    args = parser.parse_args(argv)
    if not osp.isfile(osp.join(args.official_repo, 'eval', 'eval_long_rvos', 'eval_overall.py')):
        parser.error(f'--official-repo {args.official_repo}: no eval/eval_long_rvos/eval_overall.py there')
    if args.num_videos < 2 or args.num_frames < 1:
        parser.error('--num-videos must be >= 2 (the last one gets no prediction) and --num-frames >= 1')
    return args


def _gt(ann, video, obj, frame, size):
    path = osp.join(ann, video, str(obj), f'{frame}.png')
    return cv2.imread(path, cv2.IMREAD_GRAYSCALE) > 0 if osp.exists(path) else np.zeros(size, bool)


def build_case(root: str, num_videos: int, num_frames: int, size, seed: int) -> dict:
    """Write the case (see the module docstring) under ``root``; returns its paths."""
    from soc_mm.datasets.synthetic_long_rvos import generate_long_rvos
    if osp.isdir(root):
        shutil.rmtree(root)
    generated = osp.join(root, 'generated')
    generate_long_rvos(generated, num_train=0, num_valid=num_videos, num_test=0, num_frames=num_frames,
                       size=tuple(size), seed=seed)
    split = osp.join(root, 'data', 'long_rvos', 'valid')
    shutil.copytree(osp.join(generated, 'valid'), split)
    meta_file = osp.join(split, 'meta_expressions.json')
    with open(meta_file) as f:
        meta = json.load(f)
    videos = sorted(meta['videos'])
    rng = np.random.default_rng(seed + 100)
    meta['videos'][videos[0]]['expressions'].update({
        '90': dict(exp='the green circle', obj_id='9', type='static'),  # an object with no mask at all
        '91': dict(exp='the red square', obj_id=1, type='static+dynamic'),  # obj_id as an int
        '92': dict(exp='an expression of another type', obj_id='2', type='other')})
    with open(meta_file, 'w') as f:
        json.dump(meta, f)
    ann = osp.join(split, 'Annotations')
    for video in videos:  # all-zero PNGs in some frames where an object is absent
        for obj in os.listdir(osp.join(ann, video)):
            present = set(os.listdir(osp.join(ann, video, obj)))
            for t in range(0, num_frames, 7):
                if f'{t:05d}.png' not in present and rng.random() < 0.5:
                    cv2.imwrite(osp.join(ann, video, obj, f'{t:05d}.png'), np.zeros(size, np.uint8))
    for kind in ('pred_full', 'pred_key'):
        out = osp.join(root, 'output', kind, 'valid', 'Annotations')
        for video in videos[:-1]:
            objects = sorted(os.listdir(osp.join(ann, video)))
            for exp_id, exp in meta['videos'][video]['expressions'].items():
                exp_dir = osp.join(out, video, exp_id)
                os.makedirs(exp_dir)
                mode, other = rng.integers(5), objects[rng.integers(len(objects))]
                shift = tuple(int(s) for s in rng.integers(-4, 5, size=2))
                for t, frame in enumerate(meta['videos'][video]['frames']):
                    if (kind == 'pred_key' and t % 6) or (kind == 'pred_full' and t and rng.random() < 0.05):
                        continue
                    how = mode if mode != 3 else rng.integers(5)
                    if how == 0:
                        mask = _gt(ann, video, exp['obj_id'], frame, size)
                    elif how == 1:
                        mask = _gt(ann, video, other, frame, size)
                    elif how == 2:
                        mask = np.roll(_gt(ann, video, exp['obj_id'], frame, size), shift, axis=(0, 1))
                    else:
                        mask = np.zeros(size, bool)
                    mask = mask.astype(np.uint8)
                    if rng.random() < 0.1:  # a false positive
                        cv2.circle(mask, (int(rng.integers(size[1])), int(rng.integers(size[0]))), 3, 1, -1)
                    cv2.imwrite(osp.join(exp_dir, f'{frame}.png'), mask * int(rng.choice([255, 1, 77])))
    return dict(meta=meta_file, ann=ann, pred_full=osp.join(root, 'output', 'pred_full', 'valid', 'Annotations'),
                pred_key=osp.join(root, 'output', 'pred_key', 'valid', 'Annotations'))


def run_official(python: str, repo: str, root: str, script: str, args) -> str:
    """Run one official script with ``root`` as the working folder (it reads ``data/long_rvos/<split>``)."""
    env = dict(os.environ, PYTHONPATH=repo)  # eval_pred_frame.py imports eval.eval_long_rvos.metrics
    run = subprocess.run([python, osp.join(repo, 'eval', 'eval_long_rvos', script), *args], cwd=root, env=env,
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f'{script} failed:\n{run.stdout}\n{run.stderr}')
    return run.stdout


def printed_table(stdout: str, header: str) -> dict:
    block = stdout.split(header, 1)[1]
    return {k: float(v) for k, v in re.findall(r'^(J|F|J&F|tIoU|vIoU): (\S+)$', block, re.M)[:5]}


def main(argv=None):
    args = parse_args(argv)
    from soc_mm.evaluation.functional.long_rvos import evaluate_long_rvos_predictions, official_per_type_json
    root = osp.abspath(args.work_dir)
    paths = build_case(root, args.num_videos, args.num_frames, args.size, args.seed)
    worst, lines = 0.0, []

    def compare(official: float, ours: float, what: str):
        nonlocal worst
        both_nan = official != official and ours != ours
        diff = 0.0 if both_nan else abs(official - ours)
        worst = max(worst, diff)
        if not diff <= args.tolerance:
            lines.append(f'DIFFERENT {what}: official {official!r}, ours {ours!r}')

    printed = {}
    for script, table, header in TABLE_HEADERS:
        stdout = run_official(args.official_python, args.official_repo, root, script,
                              ['--pred_path', 'output/pred_full/valid/Annotations', '--split', 'valid'])
        printed[table] = printed_table(stdout, header)
    start = time.perf_counter()
    summary, rows = evaluate_long_rvos_predictions(paths['pred_full'], paths['meta'], paths['ann'],
                                                   workers=args.workers)
    seconds = time.perf_counter() - start
    for table, values in printed.items():
        for name in NAMES:
            compare(values[name], summary[table][name], f'{table} {name}')
        lines.append(f'{table:8s} ' + '  '.join(f'{n} {values[n]:.6f}/{summary[table][n]:.6f}' for n in NAMES))
        if table != 'overall':
            with open(osp.join(root, 'output', 'pred_full', 'valid', f'{table}_valid.json')) as f:
                official = json.load(f)
            ours = official_per_type_json(rows, table)
            if set(official) != set(ours):
                lines.append(f'DIFFERENT {table} expressions: {sorted(set(official) ^ set(ours))[:5]}')
            for key in set(official) & set(ours):
                for name, a, b in zip(('J', 'F', 'tIoU', 'vIoU'), official[key], ours[key]):
                    compare(a, b, f'{table} {key} {name}')
    lines.append(f'({len(rows)} expressions, {sum(r["num_frames"] for r in rows)} frames scored by us in '
                 f'{seconds:.1f} s with {args.workers} workers)')
    for kind in ('pred_key', 'pred_full'):
        stdout = run_official(args.official_python, args.official_repo, root, 'eval_pred_frame.py',
                              ['--pred_path', f'output/{kind}/valid/Annotations', '--exp_path',
                               'data/long_rvos/valid/meta_expressions.json', '--mask_path',
                               'data/long_rvos/valid/Annotations', '--save_name', 'keyframe_result.json'])
        values = printed_table(stdout, '---- Overall ----')
        summary, rows = evaluate_long_rvos_predictions(paths[kind], paths['meta'], paths['ann'],
                                                       workers=args.workers, only_predicted_frames=True)
        for name in NAMES:
            compare(values[name], summary['overall'][name], f'eval_pred_frame {kind} {name}')
        with open(osp.join(root, 'output', kind, 'valid', 'keyframe_result.json')) as f:
            official = json.load(f)
        ours = official_per_type_json(rows, 'overall')
        for key in set(official) | set(ours):
            if key not in official or key not in ours:
                lines.append(f'DIFFERENT eval_pred_frame {kind}: expression {key} scored by one side only')
                continue
            for name, a, b in zip(('J', 'F', 'tIoU', 'vIoU'), official[key], ours[key]):
                compare(a, b, f'eval_pred_frame {kind} {key} {name}')
        lines.append(f'pred_frame[{kind}] ' + '  '.join(f'{n} {values[n]:.6f}/{summary["overall"][n]:.6f}'
                                                       for n in NAMES)
                     + f'  ({sum(r["num_frames"] for r in rows)} frames scored)')
    lines.append(f'largest difference: {worst:.3g} (tolerance {args.tolerance:g})')
    print('\n'.join(lines))
    if any(line.startswith('DIFFERENT') for line in lines):
        sys.exit(1)


if __name__ == '__main__':
    main()
