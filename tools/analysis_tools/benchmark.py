"""Benchmark SOC inference: shared path (one backbone pass per clip for all expressions) vs one full
forward per expression, with per-stage times, frames/s, peak memory and FLOPs.

Examples (random weights, Swin-T, 8 frames at 360x640, 4 expressions, 2 CPU threads):
    python tools/analysis_tools/benchmark.py configs/_base_/models/soc_swin-t.py \\
        --cfg-options model.text_encoder.model_path=tests/data/soc_reference/common/text_encoder \\
        model.backbone.init_cfg=None --frames 8 --size 360 640 --expressions 4 --threads 2
    # peak RSS of a 96-frame video read and processed in clips of 8 frames vs one 8-frame clip:
    python tools/analysis_tools/benchmark.py ... --memory-frames 96 --clip-len 8 --skip-timing

Tables: one expression per forward (the reference kernels = the official model's computation:
mmaction window attention, mmcv's PyTorch MSDA; the default = the fused kernels, ``model.fast_kernels``);
K expressions on one clip: K forwards, and ``VideoInference.predict_clip`` (what ``SOC.predict`` and
``inference_rvos`` run: backbone/neck once, the text-dependent stages ``expressions_per_batch`` at a
time, each value of --schedules timed); where the time goes per stage, with GFLOP/s against the
GEMM peak measured here.
Stages: backbone, neck (+ masks, positions), text, fusion+encoder, decoder+VOC, heads (spatial
decoder, class/box/mask heads), post-processing (trajectory choice, upsampling, thresholding).

Side by side with the official code (``--official-python``: a Python that runs the official SOC
through a harness's ``run_reference.py time``; both run in this one process tree, alternating, so
the ratio holds whatever the machine's drift):
    python tools/analysis_tools/benchmark.py configs/_base_/models/soc_swin-t.py \
        --cfg-options model.backbone.init_cfg=None --base-text-encoder tests/data/soc_reference/common/text_encoder \
        --frames 8 --size 360 640 --expressions 4 --threads 2 --rounds 2 \
        --official-python REFVENV/bin/python --official-harness HARNESS_DIR --official-repo SOC_REPO_DIR
    # training step (forward + loss + backward + clip 0.1 + AdamW), full Swin-T and the official tiny config:
    python tools/analysis_tools/benchmark.py configs/_base_/models/soc_swin-t.py --train ... \
        --frames 4 --size 192 320 --threads 2
``--base-text-encoder TOKENIZER_DIR``: a RoBERTa-base-sized text encoder with random weights and that
folder's tokenizer (what the official timing uses), written to a temporary folder.
``--bf16``: also time the default path under CPU autocast (bfloat16) and report its largest output
difference from fp32.

SOC++ (``type='SOCPlusPlus'``) runs the same way: give its config (e.g.
``configs/soc_plus_plus/_base_/socpp_swin-t.py``) and, for the side-by-side table, the extracted SOC++
repository as ``--official-repo`` (the harness detects which model that folder holds); the tables then
name SOC++.
"""
import argparse
import os
import os.path as osp
import re
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from mmengine.config import Config

from soc_mm.testing import synthetic_batch, synthetic_expression_batch
from soc_mm.testing.benchmark import (STAGES, StageTimer, build_for_training, gemm_peak_gflops, kernels, quiet_logs,
                                      run_per_expression, run_schedules, shared_head_inputs, stage_flops,
                                      time_train_steps, timed_runs, write_base_text_encoder)
from soc_mm.utils.cli import parse_cfg_options

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: the optimiser wrapper (AdamW, clipping) of every SOC training config, used by ``--train``
TRAIN_SCHEDULE = osp.join(REPO, 'configs', '_base_', 'schedules', 'soc_adamw_30e.py')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='SOC inference benchmark (shared vs per-expression path)')
    p.add_argument('config', help='model config file')
    p.add_argument('--checkpoint', default=None, help='checkpoint (default: random init_weights)')
    p.add_argument('--frames', type=int, default=8, help='frames T of the timed clip')
    p.add_argument('--size', type=int, nargs=2, default=(360, 640), metavar=('H', 'W'),
                   help='model input size of the timed clip (no resize is applied)')
    p.add_argument('--expressions', type=int, default=4, help='number of expressions K')
    p.add_argument('--repeat', type=int, default=1, help='timed runs per path (median reported)')
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: torch default)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--skip-reference', action='store_true',
                   help='do not time the reference-kernel per-expression baseline')
    p.add_argument('--skip-timing', action='store_true', help='only the memory measurement')
    p.add_argument('--no-flops', action='store_true', help='skip the FLOP count (mmengine.analysis)')
    p.add_argument('--memory-frames', type=int, default=0,
                   help='also measure peak RSS of inference_rvos on a synthetic video of this many '
                        'frames vs one clip (separate processes)')
    p.add_argument('--clip-len', type=int, default=8, help='clip length of the memory measurement')
    p.add_argument('--cfg-options', nargs='+', default=[], help='key=value config overrides')
    p.add_argument('--rounds', type=int, default=1,
                   help='alternating rounds of (ours, official) for the side-by-side table (median reported)')
    p.add_argument('--official-python', default=None,
                   help='Python that runs the official code (its own venv): times it in this run')
    p.add_argument('--official-harness', default=None,
                   help='folder holding run_reference.py (the official-code harness)')
    p.add_argument('--official-repo', default=None, help='extracted official repository (SOC_REF_DIR of the harness)')
    p.add_argument('--official-runs', type=int, default=2, help='timed official runs per round')
    p.add_argument('--base-text-encoder', default=None, metavar='TOKENIZER_DIR',
                   help='use a RoBERTa-base-sized random text encoder with this tokenizer (as the official timing)')
    p.add_argument('--train', action='store_true',
                   help='time training steps (full model of the config at --frames/--size, and the official tiny '
                        'config at 3x64x96, batch 2, 1 thread) instead of inference')
    p.add_argument('--train-steps', type=int, default=3, help='timed training steps per round')
    p.add_argument('--bf16', action='store_true', help='also time bfloat16 autocast inference (CPU)')
    p.add_argument('--schedules', type=int, nargs='+', default=[1, 2, 4],
                   help='expressions_per_batch values tried for the K-expression protocol')
    p.add_argument('--rss-run', nargs=3, metavar=('VIDEO', 'CLIP_LEN', 'K'), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# ---------------------------------------------------------------------- memory
def write_synthetic_video(path_dir, frames, size):
    """A synthetic video (moving gradient) as mp4 (frame folder of PNGs if mp4 writing fails)."""
    import cv2
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    path = osp.join(path_dir, f'synthetic_{frames}.mp4')
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), 10, (w, h))
    ok = writer.isOpened()
    folder = osp.join(path_dir, f'synthetic_{frames}')
    if not ok:
        os.makedirs(folder, exist_ok=True)
    for t in range(frames):
        img = np.stack([(xx + 5 * t) % 256, (yy + 3 * t) % 256, (xx + yy) % 256], -1).astype(np.uint8)
        if ok:
            writer.write(img)
        else:
            cv2.imwrite(osp.join(folder, f'{t:05d}.png'), img)
    writer.release()
    return path if ok else folder


def rss_run(args):
    """Child process: inference_rvos on a video file, print peak RSS and the time."""
    from soc_mm.apis import inference_rvos, init_model
    video, clip_len, k = args.rss_run[0], int(args.rss_run[1]), int(args.rss_run[2])
    quiet_logs()
    model = init_model(args.config, args.checkpoint, args.device, parse_cfg_options(args.cfg_options))
    exprs = [f'object number {i} on the left' for i in range(k)]
    before = peak_rss_mib()
    t0 = time.perf_counter()
    res = inference_rvos(model, video, exprs, clip_len=clip_len)
    wall = time.perf_counter() - t0
    cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
    print(f'RSS_RESULT frames={res[0].pred_masks.shape[0]} model_rss_mib={before:.1f} '
          f'peak_rss_mib={peak_rss_mib():.1f} cuda_peak_mib={cuda:.1f} seconds={wall:.2f}')


def measure_memory(args):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for frames in (args.clip_len, args.memory_frames):
            video = write_synthetic_video(tmp, frames, args.size)
            cmd = [sys.executable, __file__, args.config, '--rss-run', video, str(args.clip_len),
                   str(args.expressions), '--device', args.device]
            if args.checkpoint:
                cmd += ['--checkpoint', args.checkpoint]
            if args.threads:
                cmd += ['--threads', str(args.threads)]
            if args.cfg_options:
                cmd += ['--cfg-options', *args.cfg_options]
            out = subprocess.run(cmd, capture_output=True, text=True)
            line = [ln for ln in out.stdout.splitlines() if ln.startswith('RSS_RESULT')]
            if out.returncode or not line:
                raise RuntimeError(f'memory run failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}')
            vals = dict(kv.split('=') for kv in line[0].split()[1:])
            rows.append((frames, vals))
    return rows


# ---------------------------------------------------------------------- official code (its own venv)
def official_time(args, model='full', frames=8, size=(360, 640), batch=1, threads=None, train=False):
    """Median seconds of the official eval forward (or training step) through the harness's
    ``run_reference.py time`` in the official code's own Python (a separate process, run now)."""
    harness = osp.join(args.official_harness, 'run_reference.py')
    if not osp.isfile(harness):
        raise FileNotFoundError(f'--official-harness: no run_reference.py in {args.official_harness}')
    cmd = [args.official_python, harness, 'time', '--model', model, '-T', str(frames), '-H', str(size[0]),
           '-W', str(size[1]), '-B', str(batch), '--runs', str(args.official_runs)]
    if threads:
        cmd += ['--threads', str(threads)]
    if train:
        cmd.append('--train')
    env = dict(os.environ)
    if args.official_repo:
        env['SOC_REF_DIR'] = args.official_repo
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=args.official_harness)
    found = re.search(r'median (?:eval forward|train step) over \d+ runs: ([0-9.]+) s', out.stdout)
    if out.returncode or not found:
        raise RuntimeError(f'official timing failed: {" ".join(cmd)}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}')
    return float(found.group(1))


# ---------------------------------------------------------------------- training step
def official_tiny_model_cfg():
    """Our config of the official tiny SOC (the golden fixtures' configuration)."""
    import json
    from soc_mm.official.config import official_model_cfg
    root = osp.join(REPO, 'tests', 'data', 'soc_reference')
    with open(osp.join(root, 'ytvos_b2_t3_nc1_w0', 'config.json'), encoding='utf-8') as f:
        official = json.load(f)['official_config']
    return official_model_cfg(official, osp.join(root, 'common', 'text_encoder'), referred_only=True)


def benchmark_training(args, cfg_model):
    """Training steps: the full model of the config (--frames/--size, batch 1, --threads) and the
    official tiny config (3 frames at 64x96, batch 2, 1 thread), ours (fused and reference kernels)
    and, with --official-python, the official code, alternating over --rounds."""
    settings = [('full', cfg_model, args.frames, tuple(args.size), 1, args.threads or torch.get_num_threads()),
                ('tiny', official_tiny_model_cfg(), 3, (64, 96), 2, 1)]
    optim_wrapper_cfg = Config.fromfile(TRAIN_SCHEDULE).optim_wrapper
    rows = []
    for name, model_cfg, T, size, B, threads in settings:
        torch.set_num_threads(threads)
        ours = {True: [], False: []}
        theirs = []
        for _ in range(args.rounds):
            for fast in (True, False):
                model = build_for_training(model_cfg, fast)
                inputs, samples = synthetic_batch(model, T, size, B, with_targets=True)
                ours[fast].append(time_train_steps(model, inputs, samples, args.train_steps, optim_wrapper_cfg))
                del model
            if args.official_python:
                theirs.append(official_time(args, model=name, frames=T, size=size, batch=B, threads=threads,
                                            train=True))
        rows.append((name, T, size, B, threads, ours[True], ours[False], theirs))
    print('\nTraining step (forward + loss + backward + clip 0.1 + AdamW, dropout 0; ours: the optimiser wrapper of '
          f'{osp.relpath(TRAIN_SCHEDULE, REPO)}), seconds per step, '
          f'median of {args.train_steps} steps per round, {args.rounds} round(s) alternating')
    print('| setting | official | soc_mm fused (default) | soc_mm reference kernels | official / fused |')
    print('|---|---|---|---|---|')
    for name, T, size, B, threads, fast, ref, theirs in rows:
        fmt = lambda xs: ' / '.join(f'{x:.3f}' for x in xs) if xs else '-'  # noqa: E731
        ratio = f'{np.median(theirs) / np.median(fast):.2f}x' if theirs else '-'
        print(f'| {name}: {T} frames {size[0]}x{size[1]}, batch {B}, {threads} thread(s) | {fmt(theirs)} | '
              f'{fmt(fast)} | {fmt(ref)} | {ratio} |')
    torch.set_num_threads(args.threads or torch.get_num_threads())


# ---------------------------------------------------------------------- main
#: the name the tables give a model class (others: the class name)
MODEL_NAMES = {'SOC': 'SOC', 'SOCPlusPlus': 'SOC++'}


def benchmark_inference(args, cfg_options):
    from soc_mm.apis import init_model
    quiet_logs()
    model = init_model(args.config, args.checkpoint, args.device, cfg_options)  # fused kernels (default)
    inputs, samples = synthetic_expression_batch(model, args.frames, tuple(args.size), args.expressions)
    inputs = inputs.to(args.device)
    K, T = args.expressions, args.frames
    timer = StageTimer(model)
    one = samples[:1]
    runs = {name: [] for name in ('reference', 'fused')}
    official = []
    for _ in range(args.rounds):  # alternating: ours (reference kernels, fused kernels), then the official code
        if not args.skip_reference:
            with kernels(model, fast=False):
                runs['reference'].append(timed_runs(model, run_per_expression, inputs, one, args.repeat, timer)[:2])
        runs['fused'].append(timed_runs(model, run_per_expression, inputs, one, args.repeat, timer)[:2])
        if args.official_python:
            official.append(official_time(args, frames=T, size=tuple(args.size), threads=args.threads))
    per_expr_k = timed_runs(model, run_per_expression, inputs, samples, args.repeat, timer)[0]
    schedules = run_schedules(model, inputs, samples, sorted(set(min(s, K) for s in args.schedules)), args.repeat)
    best = min(schedules, key=schedules.get)
    shared_wall, shared_stages, _ = timed_runs(
        model, lambda m, x, s: run_schedules(m, x, s, [best], 1), inputs, samples, 1, timer)
    timer.remove()

    med = lambda xs: float(np.median(xs))  # noqa: E731
    fused = med([w for w, _ in runs['fused']])
    name = MODEL_NAMES.get(type(model).__name__, type(model).__name__)
    print(f'\n{name} inference, {T} frames at {args.size[0]}x{args.size[1]}, threads {torch.get_num_threads()}, '
          f'{args.rounds} round(s) alternating (median), {args.repeat} timed run(s) per path per round')
    print('\nOne expression, seconds per forward (each round):')
    print('| path | s per forward | vs official |')
    print('|---|---|---|')
    base = med(official) if official else None
    rel = lambda x: f'{base / x:.2f}x' if base else '-'  # noqa: E731
    fmt = lambda xs: ' / '.join(f'{x:.2f}' for x in xs)  # noqa: E731
    if official:
        print(f'| official {name} (its CPU path) | {fmt(official)} | 1.00x |')
    if runs['reference']:
        ref = med([w for w, _ in runs['reference']])
        print(f'| soc_mm, reference kernels (model.fast_kernels=False) | {fmt([w for w, _ in runs["reference"]])} '
              f'| {rel(ref)} |')
    print(f'| soc_mm, default (fused kernels) | {fmt([w for w, _ in runs["fused"]])} | {rel(fused)} |')

    print(f'\n{K} expressions on one clip (the Ref-YouTube-VOS protocol), total seconds:')
    print('| path | total s | vs official |')
    print('|---|---|---|')
    if official:
        print(f'| official {name}: {K} forwards ({K} x its median forward) | {K * base:.2f} | 1.00x |')
    rel_k = lambda x: f'{K * base / x:.2f}x' if base else '-'  # noqa: E731
    print(f'| soc_mm: {K} forwards, fused kernels | {per_expr_k:.2f} | {rel_k(per_expr_k)} |')
    for per_batch, wall in schedules.items():
        mark = ' (fastest here)' if per_batch == best else ''
        print(f'| soc_mm: backbone once, text stages {per_batch} expression(s) at a time{mark} | {wall:.2f} '
              f'| {rel_k(wall)} |')

    # per-stage: one expression, default path; FLOPs from mmengine.analysis (reference ops), GEMM peak here
    # the bf16 peak only with --bf16: without bf16 matrix units a 2048x2048 bf16 product takes about a minute
    peak32 = gemm_peak_gflops(torch.float32)
    peak16 = f'{gemm_peak_gflops(torch.bfloat16):.0f} GFLOP/s' if args.bf16 else 'not measured (--bf16)'
    stages = runs['fused'][int(np.argsort([w for w, _ in runs['fused']])[len(runs['fused']) // 2])][1]
    flops = stage_flops(model, inputs, samples) if not args.no_flops else {}
    print(f'\nWhere the time goes (one expression, default path); GEMM peak here: fp32 {peak32:.0f} GFLOP/s, '
          f'bf16 {peak16} (2048x2048 products, {torch.get_num_threads()} threads)')
    print('| stage | s | % of forward | GFLOP | GFLOP/s | % of fp32 GEMM peak |')
    print('|---|---|---|---|---|---|')
    for stage in STAGES:
        sec = stages[stage]
        gf = flops.get(stage, 0) / 1e9
        rate = f'{gf / sec:.0f}' if gf and sec > 0 else '-'
        share = f'{100 * gf / sec / peak32:.0f} %' if gf and sec > 0 else '-'
        print(f'| {stage} | {sec:.2f} | {100 * sec / fused:.0f} % | {gf:.1f} | {rate} | {share} |')
    total_gf = sum(flops.values()) / 1e9
    if total_gf:
        print(f'| all | {fused:.2f} | 100 % | {total_gf:.1f} | {total_gf / fused:.0f} | '
              f'{100 * total_gf / fused / peak32:.0f} % |')
    print(f'shared path ({K} expressions, {best} at a time) stages: ' +
          ', '.join(f'{k} {v:.2f}' for k, v in shared_stages.items()) + f' (total {shared_wall:.2f} s)')

    with torch.no_grad():  # numerics: shared vs per-expression (same kernels)
        shared = shared_head_inputs(model, inputs, samples)['hidden_states']
        diffs = [float((shared[model.output_layer, k] - model(inputs, [s], mode='tensor')['hidden_states']
                        [model.output_layer, 0]).abs().max()) for k, s in enumerate(samples)]
    print(f'max |diff| shared vs per-expression hidden states (head input): {max(diffs):.2e}')

    if args.bf16:
        with torch.no_grad():
            ref_out = model(inputs, one, mode='tensor')
            with torch.autocast('cpu', dtype=torch.bfloat16):
                bf_out = model(inputs, one, mode='tensor')
        walls = []
        for _ in range(args.rounds):
            with torch.autocast('cpu', dtype=torch.bfloat16):
                walls.append(timed_runs(model, run_per_expression, inputs, one, args.repeat, StageTimer(model))[0])
        diff = {k: float((bf_out[k].float() - ref_out[k]).abs().max()) for k in ('cls', 'boxes', 'masks')}
        print(f'\nbf16 autocast (CPU), one expression: {fmt(walls)} s per forward ({fused / med(walls):.2f}x the '
              f'fp32 default); max |bf16 - fp32|: ' + ', '.join(f'{k} {v:.3g}' for k, v in diff.items()))
    print(f'peak RSS of this process: {peak_rss_mib():.0f} MiB')


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rss_run:
        return rss_run(args)
    if args.official_python and not args.official_harness:
        raise SystemExit('--official-python needs --official-harness (the folder of run_reference.py)')
    from soc_mm.utils import keep_freed_memory_for_reuse
    heap = keep_freed_memory_for_reuse()
    print(f'load: {os.getloadavg()} (1/5/15 min), cpus: {os.cpu_count()}, torch threads: '
          f'{torch.get_num_threads()}, device: {args.device}, freed memory kept for reuse: {heap}')
    cfg_options = parse_cfg_options(args.cfg_options)
    with tempfile.TemporaryDirectory() as tmp:
        if args.base_text_encoder:
            cfg_options['model.text_encoder.model_path'] = write_base_text_encoder(
                args.base_text_encoder, osp.join(tmp, 'roberta_base'))
        if args.train:
            cfg = Config.fromfile(args.config)
            cfg.merge_from_dict(cfg_options)
            benchmark_training(args, cfg.model.to_dict())
        elif not args.skip_timing:
            benchmark_inference(args, cfg_options)
    if args.memory_frames:
        rows = measure_memory(args)
        print(f'\npeak RSS, inference_rvos (K = {args.expressions}) on a {args.size[0]}x{args.size[1]} mp4, '
              f'clip_len {args.clip_len} (separate processes):')
        print('| video frames | peak RSS MiB | after model build MiB | seconds |')
        print('|---|---|---|---|')
        for frames, v in rows:
            print(f'| {frames} | {float(v["peak_rss_mib"]):.0f} | {float(v["model_rss_mib"]):.0f} | '
                  f'{float(v["seconds"]):.1f} |')
        ratio = float(rows[1][1]['peak_rss_mib']) / float(rows[0][1]['peak_rss_mib'])
        print(f'peak RSS ratio {rows[1][0]} / {rows[0][0]} frames: {ratio:.3f}')


if __name__ == '__main__':
    main()
