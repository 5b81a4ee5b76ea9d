"""`make demo`: train a tiny SOC on synthetic referring-video data on the CPU and show that it works.

Steps (everything under ``--work-dir``, default ``work_dirs/demo/``):

1. generate a synthetic Ref-YouTube-VOS-format dataset (moving coloured shapes, expressions such as
   "the red circle on the left"): train videos + held-out videos with masks
   (``tools/dataset_converters/generate_synthetic_rvos.py``);
2. make a tiny RoBERTa + byte-level BPE tokenizer trained on the train expressions
   (``tools/misc/make_tiny_text_encoder.py``);
3. train ``configs/soc/soc_tiny_synthetic.py`` with ``tools/train.py`` in ``--procs`` data-parallel
   processes (default 2, one per core, as ``tools/dist_train.sh``; iterations, losses, ETA shown);
4. evaluate J&F on the held-out videos with ``tools/test.py`` (``RVOSJFMetric``, same processes);
5. evaluate the same checkpoint with the expressions shuffled between held-out videos (the text then
   names an object of another video: a model that reads the text must fail);
6. print the results table (also ``results.md`` / ``results.json``) and draw a few held-out clips
   (``vis/<video>.png``: a row per expression, prediction lit, ground truth outlined).

    python tools/demo/run_demo.py                      # the full demo (see the README for timings)
    python tools/demo/run_demo.py --max-iters 500      # a quick look
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
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'soc', 'soc_tiny_synthetic.py')
TARGET_JF, TARGET_SHUFFLED = 0.85, 0.50
WARMUP_ITERS = 200  # the config's linear warm-up


def parse_args():
    parser = argparse.ArgumentParser(description='Train and evaluate a tiny SOC on synthetic data (CPU)')
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'demo'))
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--max-iters', type=int, default=None, help='training iterations (default: the config)')
    parser.add_argument('--num-train', type=int, default=400, help='synthetic train videos')
    # 200 videos (~500 expressions): held-out sampling then moves J&F by about +-0.015 (+-0.03 with 100)
    parser.add_argument('--num-valid', type=int, default=200, help='held-out videos (with masks)')
    parser.add_argument('--num-frames', type=int, default=8, help='frames per synthetic video')
    parser.add_argument('--seed', type=int, default=0, help='data seed')
    # held-out videos always use the generator's uniform draw (two objects share a colour in ~1/5 of
    # the expressions). Making such train videos more frequent (0.5) fixed more same-colour cases but
    # cost mask quality and delayed the point where the model starts to follow the text: no net gain.
    parser.add_argument('--train-same-color-prob', type=float, default=None,
                        help='fraction of train videos where two objects share a colour (default: the '
                        'uniform draw of the held-out videos)')
    # Data-parallel training and testing (tools/dist_train.sh / dist_test.sh, gloo): one process per
    # core, each with 1 torch thread and batch 1, loading its own data. 2 processes take 2 clips per
    # ~0.19 s step where 1 process takes 1 per ~0.16 s: 1.7x (2 threads in one process: only 1.24x, and
    # ~7x slower as soon as anything else runs on the cores: libgomp barriers).
    parser.add_argument('--procs', type=int, default=min(2, os.cpu_count() or 1),
                        help='training / testing processes (default: 2, or 1 on a 1-core machine)')
    parser.add_argument('--threads', type=int, default=1, help='torch / OpenMP threads of each process')
    parser.add_argument('--num-vis', type=int, default=4, help='held-out videos to draw')
    parser.add_argument('--skip-train', action='store_true',
                        help='reuse the checkpoint of a previous run in --work-dir')
    parser.add_argument('--check', action='store_true', help='exit with status 1 when a target is missed')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra key=value config overrides for training and testing')
    args = parser.parse_args()
    if args.procs < 1 or args.threads < 1:
        parser.error(f'--procs and --threads must be >= 1, got {args.procs} and {args.threads}')
    return args


# ------------------------------------------------------------------ subprocesses
def step(title: str) -> None:
    print(f'\n=== {title}', flush=True)


def run(cmd: List[str], log_path: str, env: Dict[str, str], show=None) -> float:
    """Run ``cmd`` from the repo root, teeing its output to ``log_path``; print the lines ``show``
    accepts (all when None). Raise with the log's tail when it fails. Returns the wall time."""
    t0 = time.perf_counter()
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        for line in proc.stdout:
            log.write(line)
            if show is None or show(line):
                print(line.rstrip(), flush=True)
        proc.wait()
    if proc.returncode != 0:
        with open(log_path) as f:
            tail = ''.join(f.readlines()[-40:])
        data_parallel = any(osp.basename(part).startswith('dist_') for part in cmd)
        hint = ('\n(data-parallel processes rendezvous over TCP on 127.0.0.1 with the gloo backend; '
                '`--procs 1` runs the step in a single process)') if data_parallel else ''
        raise RuntimeError(f'step failed (exit {proc.returncode}): {" ".join(cmd)}\n--- last lines of '
                           f'{log_path}:\n{tail}{hint}')
    return time.perf_counter() - t0


def runner_log_line(line: str) -> bool:
    """mmengine progress / result lines (not the config dump or the hook table)."""
    return ' - mmengine - ' in line and ('Iter(' in line or 'RVOSJFMetric' in line or 'ERROR' in line
                                         or 'Saving checkpoint' in line or 'RefYouTubeVOSDataset' in line)


def thread_env(threads: int) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED='1')
    env['PYTHONPATH'] = REPO + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    return env


def free_port() -> int:
    """A TCP port nobody listens on now (for torch.distributed.run's rendezvous)."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def launch(py: str, tool: str, positional: List[str], options: List[str], procs: int,
           env: Dict[str, str]) -> Tuple[List[str], Dict[str, str]]:
    """The command and environment that run ``tools/<tool>.py`` (``train`` / ``test``) in one process,
    or ``tools/dist_<tool>.sh`` with ``procs`` data-parallel processes (gloo on CPU) on a free port."""
    if procs <= 1:
        return [py, osp.join('tools', f'{tool}.py'), *positional, *options], env
    return (['bash', osp.join('tools', f'dist_{tool}.sh'), *positional, str(procs), *options],
            dict(env, PYTHON=py, PORT=str(free_port())))


def data_overrides(data_root: str, text_encoder: str) -> List[str]:
    root = data_root.rstrip('/') + '/'
    return [f'train_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
            f'model.text_encoder.model_path={text_encoder}']


def schedule_overrides(max_iters: int) -> List[str]:
    """Iteration count with the config's warm-up + cosine schedule and a checkpoint at the end."""
    warmup = min(WARMUP_ITERS, max(1, max_iters // 4))
    return [f'train_cfg.max_iters={max_iters}', f'train_cfg.val_interval={max_iters}',
            f'param_scheduler.0.end={warmup}', f'param_scheduler.1.begin={warmup}',
            f'param_scheduler.1.T_max={max(1, max_iters - warmup)}', f'param_scheduler.1.end={max_iters}',
            f'default_hooks.checkpoint.interval={max_iters}']


def train_speed(log_path: str) -> Optional[float]:
    """Iterations per second between the first and the last logged training iteration."""
    points = []
    with open(log_path) as f:
        for line in f:
            m = re.match(r'(\d+/\d+ \d+:\d+:\d+) - mmengine - INFO - Iter\(train\) \[\s*(\d+)/', line)
            if m:
                points.append((time.mktime(time.strptime('2000/' + m.group(1), '%Y/%m/%d %H:%M:%S')),
                               int(m.group(2))))
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return None
    return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])


def read_metrics(test_work_dir: str) -> Dict[str, float]:
    """The metrics json that ``tools/test.py`` wrote last into ``test_work_dir/<timestamp>/``."""
    runs = sorted(d for d in os.listdir(test_work_dir) if re.fullmatch(r'\d{8}_\d{6}', d))
    for run_dir in reversed(runs):
        path = osp.join(test_work_dir, run_dir, f'{run_dir}.json')
        if osp.isfile(path):
            with open(path) as f:
                return json.load(f)
    raise FileNotFoundError(f'no metrics json under {test_work_dir}/<timestamp>/')


# ------------------------------------------------------------------ shuffled expressions
def make_shuffled_root(data_root: str, out_root: str, seed: int = 0) -> Dict[str, Dict[str, str]]:
    """A data root whose held-out expressions come from other videos (the masks stay the video's own).

    The videos are put in a random cycle; each video's k-th expression takes the text of the next
    video's (k mod n)-th expression. Frames and masks are symlinked. Returns the new texts.
    """
    if osp.isdir(out_root):
        shutil.rmtree(out_root)
    os.makedirs(osp.join(out_root, 'meta_expressions', 'valid'))
    os.symlink(osp.abspath(osp.join(data_root, 'valid')), osp.join(out_root, 'valid'))
    test_dir = osp.join(data_root, 'meta_expressions', 'test')
    if osp.isdir(test_dir):
        shutil.copytree(test_dir, osp.join(out_root, 'meta_expressions', 'test'))
    with open(osp.join(data_root, 'meta_expressions', 'valid', 'meta_expressions.json')) as f:
        meta = json.load(f)
    videos = meta['videos']
    order = sorted(videos)
    np.random.default_rng(seed).shuffle(order)
    donors = {vid: order[(i + 1) % len(order)] for i, vid in enumerate(order)}
    texts = {}
    for vid in order:
        donor = [e['exp'] for _, e in sorted(videos[donors[vid]]['expressions'].items())]
        texts[vid] = {}
        for k, (exp_id, exp) in enumerate(sorted(videos[vid]['expressions'].items())):
            exp['exp'] = donor[k % len(donor)]
            texts[vid][exp_id] = exp['exp']
    with open(osp.join(out_root, 'meta_expressions', 'valid', 'meta_expressions.json'), 'w') as f:
        json.dump(meta, f)
    return texts


# ------------------------------------------------------------------ pictures
def predict_clips(cfg_path: str, overrides: Sequence[str], checkpoint: str, num_videos: int) -> List[dict]:
    """Predictions of the first ``num_videos`` held-out videos, every expression of each.

    Returns dicts with ``video_id``, ``exp_id``, ``expression``, ``frames`` (list of BGR uint8
    [H, W, 3]), ``pred`` bool [T, H, W] and ``gt`` bool [T, H, W].
    """
    import torch
    from mmengine.config import Config, DictAction
    from mmengine.dataset import pseudo_collate
    from mmengine.runner import load_checkpoint

    from soc_mm.registry import DATASETS, MODELS
    from soc_mm.registry import register_all_modules

    register_all_modules()
    cfg = Config.fromfile(cfg_path)
    parsed = {}
    for item in overrides:  # the same key=value syntax as --cfg-options
        key, value = item.split('=', 1)
        parsed[key] = DictAction._parse_iterable(value)
    cfg.merge_from_dict(parsed)
    model = MODELS.build(cfg.model)
    load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    model.eval()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    wanted = sorted({info['video_id'] for info in infos})[:num_videos]
    clips = []
    for idx, info in enumerate(infos):
        if info['video_id'] not in wanted:
            continue
        item = dataset[idx]
        with torch.no_grad():
            sample = model.test_step(pseudo_collate([item]))[0]
        frames = [f.permute(1, 2, 0).numpy() for f in item['inputs']]
        clips.append(dict(video_id=info['video_id'], exp_id=info['exp_id'], expression=sample.expression,
                          frames=frames, pred=sample.pred_masks.numpy(), gt=sample.ori_gt_masks.numpy()))
    return clips


def draw_frame(frame: np.ndarray, pred: np.ndarray, gt: np.ndarray, scale: int) -> np.ndarray:
    """Spotlight on the prediction (the rest darkened; the shapes keep the colours the expressions
    name), ground truth outlined in white; BGR uint8 upscaled ``scale`` times."""
    import cv2
    img = frame.astype(np.float32)
    img[~pred] *= 0.3
    img = cv2.resize(img.astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    big_gt = cv2.resize(gt.astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(big_gt, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(img, contours, -1, (255, 255, 255), 1)
    return img


def draw_clips(clips: List[dict], out_dir: str, max_frames: int = 8, scale: int = 2) -> List[str]:
    """One picture per video (``<video>.png``): a row per expression (text and J above), a column per
    frame. Drawn here rather than with ``RVOSVisualizer``: its coloured mask overlays and per-frame
    texts are hard to read on 96x96 frames of coloured shapes."""
    import cv2
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for vid in sorted({c['video_id'] for c in clips}):
        rows = []
        for clip in (c for c in clips if c['video_id'] == vid):
            n = min(max_frames, len(clip['frames']))
            tiles = [draw_frame(clip['frames'][t], clip['pred'][t], clip['gt'][t], scale) for t in range(n)]
            strip = np.concatenate([np.pad(t, ((0, 0), (0, 2), (0, 0)), constant_values=255) for t in tiles], 1)
            inter = np.logical_and(clip['pred'], clip['gt']).sum()
            union = np.logical_or(clip['pred'], clip['gt']).sum()
            jaccard = inter / union if union else 1.0
            header = np.full((22, strip.shape[1], 3), 255, np.uint8)
            cv2.putText(header, f'"{clip["expression"]}"   J {jaccard:.2f}   (prediction lit, ground truth '
                        'outlined)', (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
            rows += [header, strip]
        path = osp.join(out_dir, f'{vid}.png')
        cv2.imwrite(path, np.concatenate(rows, 0))
        paths.append(path)
    return paths


# ------------------------------------------------------------------ main
def results_table(rows: List[dict], train_info: dict) -> str:
    lines = ['| evaluation (held-out synthetic videos) | expressions | J&F | J | F | target |',
             '|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['name']} | {r['num']} | {r['J&F']:.3f} | {r['J']:.3f} | {r['F']:.3f} | {r['target']} |")
    speed = f"{train_info['it_per_s']:.2f} it/s" if train_info.get('it_per_s') else 'n/a'
    procs = train_info.get('procs', 1)
    lines += ['', f"Training: {train_info['max_iters']} iterations of {procs} process(es) x batch 1 (4 frames, "
              f"96x96) in {train_info['train_s'] / 60:.1f} min wall time incl. start-up ({speed}), "
              f"{train_info['threads']} torch thread(s) per process, load average before/after "
              f"{train_info['load_before']:.1f}/{train_info['load_after']:.1f} on {os.cpu_count()} cores."]
    return '\n'.join(lines)


def main():
    args = parse_args()
    work_dir = osp.abspath(args.work_dir)
    data_root = osp.join(work_dir, 'data')
    shuffled_root = osp.join(work_dir, 'data_shuffled')
    text_encoder = osp.join(work_dir, 'tiny_roberta')
    train_dir, test_dir = osp.join(work_dir, 'train'), osp.join(work_dir, 'test')
    os.makedirs(work_dir, exist_ok=True)
    env = thread_env(args.threads)
    py = sys.executable

    from mmengine.config import Config
    max_iters = args.max_iters or Config.fromfile(args.config).train_cfg.max_iters
    overrides = data_overrides(data_root, text_encoder) + list(args.cfg_options)

    if not args.skip_train:
        step(f'1/6 synthetic Ref-YouTube-VOS data: {args.num_train} train + {args.num_valid} held-out videos')
        if osp.isdir(data_root):
            shutil.rmtree(data_root)
        run([py, 'tools/dataset_converters/generate_synthetic_rvos.py', 'ref_youtube_vos', data_root,
             '--num-train', str(args.num_train), '--num-valid', str(args.num_valid), '--num-test', '1',
             '--num-frames', str(args.num_frames), '--size', '96', '96', '--seed', str(args.seed)]
            + ([] if args.train_same_color_prob is None
               else ['--train-same-color-prob', str(args.train_same_color_prob)]),
            osp.join(work_dir, 'generate.log'), env)

        step('2/6 tiny text encoder (byte-level BPE trained on the train expressions, random RoBERTa)')
        run([py, 'tools/misc/make_tiny_text_encoder.py',
             osp.join(data_root, 'meta_expressions', 'train', 'meta_expressions.json'), '--out', text_encoder],
            osp.join(work_dir, 'text_encoder.log'), env, show=lambda line: 'trained on' in line)

        step(f'3/6 training {osp.relpath(args.config, REPO)} for {max_iters} iterations '
             f'({args.procs} data-parallel process(es) x {args.threads} torch thread(s); '
             f'log: {train_dir}/<timestamp>/)')
        if osp.isdir(train_dir):
            shutil.rmtree(train_dir)
        load_before = os.getloadavg()[0]
        cmd, cmd_env = launch(py, 'train', [args.config], ['--work-dir', train_dir, '--cfg-options', *overrides,
                                                           *schedule_overrides(max_iters)], args.procs, env)
        train_s = run(cmd, osp.join(work_dir, 'train.log'), cmd_env, show=runner_log_line)
        train_info = dict(max_iters=max_iters, train_s=train_s, procs=args.procs, threads=args.threads,
                          load_before=load_before, load_after=os.getloadavg()[0],
                          it_per_s=train_speed(osp.join(work_dir, 'train.log')))
        with open(osp.join(work_dir, 'train_info.json'), 'w') as f:
            json.dump(train_info, f, indent=1)
    else:
        with open(osp.join(work_dir, 'train_info.json')) as f:
            train_info = json.load(f)
    checkpoint = osp.join(train_dir, f"iter_{train_info['max_iters']}.pth")
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')

    step('4/6 J&F on the held-out videos')
    rows = []
    for name, root, target in (('held-out', data_root, f'>= {TARGET_JF:.2f}'),
                               ('held-out, expressions shuffled between videos', shuffled_root,
                                f'<= {TARGET_SHUFFLED:.2f}')):
        if root == shuffled_root:
            step('5/6 the same checkpoint with the expressions shuffled between held-out videos')
            make_shuffled_root(data_root, shuffled_root, seed=args.seed)
        out = osp.join(test_dir, 'shuffled' if root == shuffled_root else 'heldout')
        cmd, cmd_env = launch(py, 'test', [args.config, checkpoint],
                              ['--work-dir', out, '--cfg-options', *overrides,
                               f'test_dataloader.dataset.data_root={root}/'], args.procs, env)
        log = osp.join(work_dir, f'test_{osp.basename(out)}.log')
        run(cmd, log, cmd_env, show=lambda line: 'RVOSJFMetric' in line)
        metrics = read_metrics(out)
        with open(log) as f:
            num = re.findall(r'RVOSJFMetric: (\d+) expressions', f.read())
        rows.append(dict(name=name, target=target, num=int(num[-1]) if num else -1,
                         **{k: metrics[f'rvos/{k}'] for k in ('J&F', 'J', 'F')}))

    step(f'6/6 results (also in {work_dir}/results.md) and pictures of {args.num_vis} held-out videos')
    table = results_table(rows, train_info)
    ok_jf, ok_shuffled = rows[0]['J&F'] >= TARGET_JF, rows[1]['J&F'] <= TARGET_SHUFFLED
    verdict = (f"held-out J&F {'meets' if ok_jf else 'MISSES'} the target (>= {TARGET_JF}); shuffled-text J&F "
               f"{'meets' if ok_shuffled else 'MISSES'} the target (<= {TARGET_SHUFFLED}).")
    print('\n' + table + '\n\n' + verdict, flush=True)
    pictures = []
    if args.num_vis > 0:
        os.environ.update(OMP_NUM_THREADS=str(args.threads))
        import torch
        torch.set_num_threads(args.threads)
        clips = predict_clips(args.config, overrides, checkpoint, args.num_vis)
        pictures = draw_clips(clips, osp.join(work_dir, 'vis'))
        print('pictures of held-out videos (frames left to right):\n  ' + '\n  '.join(pictures))
    with open(osp.join(work_dir, 'results.md'), 'w') as f:
        f.write(table + '\n\n' + verdict + '\n')
    with open(osp.join(work_dir, 'results.json'), 'w') as f:
        json.dump(dict(rows=rows, train=train_info, checkpoint=checkpoint, pictures=pictures,
                       targets_met=bool(ok_jf and ok_shuffled)), f, indent=1)
    if args.check and not (ok_jf and ok_shuffled):
        sys.exit(1)


if __name__ == '__main__':
    main()
