"""Peak memory and speed of streaming inference (``soc_mm.apis.stream_rvos``) against the video's length.

Writes synthetic mp4 videos (moving shapes on a gradient, --size, default 360x640 = 360p) of each length of
--lengths (default 60, 360, 1000 and 3000 frames), and for each length and each number of expressions of
--expressions (default 1 and 4) runs, in a fresh process, ``stream_rvos`` over the file (frames decoded
lazily, ``--clip-len`` frames per clip, the object followed across clips and emptied where absent:
``link_clips=True, presence_thr=0.5``), consuming each clip's masks as a demo would (counted, then dropped).
Each process reports its peak RSS (``ru_maxrss``: the whole process, model and libraries included), its RSS
after the model was built and one warm-up clip of ``--clip-len`` blank frames was run (the steady state of a
clip: what any length needs), and the frames per second of the stream (decoding,
pre-processing, model, post-processing; the warm-up clip not counted), by the wall clock and per second of
the process's CPU time (user + system, every thread): on a machine that other jobs share, the wall-clock
rate follows their load, the CPU-time rate much less. Tables: one row per run, then per number of
expressions the peak RSS of the longest video over that of the shortest and the spread of the frames per
second (largest / smallest - 1), both rates.

    python tools/analysis_tools/benchmark_stream.py configs/soc/soc_tiny_synthetic.py \\
        --cfg-options model.text_encoder.model_path=tests/data/soc_reference/common/text_encoder \\
        --threads 2 --out work_dirs/benchmark_stream.json

Weights are random (``init_weights``) unless --checkpoint: memory and speed do not depend on them. Like the
other tools, the processes keep freed CPU memory in the heap (``soc_mm/utils/cpu_allocator.py``).
"""
import argparse
import json
import os
import os.path as osp
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Peak RSS and frames/s of stream_rvos against the video length')
    p.add_argument('config', help='model config file')
    p.add_argument('--checkpoint', default=None, help='checkpoint (default: random init_weights)')
    p.add_argument('--lengths', type=int, nargs='+', default=[60, 360, 1000, 3000], help='video lengths (frames)')
    p.add_argument('--expressions', type=int, nargs='+', default=[1, 4], help='numbers of expressions')
    p.add_argument('--size', type=int, nargs=2, default=(360, 640), metavar=('H', 'W'), help='frame size')
    p.add_argument('--clip-len', type=int, default=36, help='frames per clip')
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: torch default)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--video-dir', default=None,
                   help='where the synthetic videos are written (default: a temporary folder, removed after)')
    p.add_argument('--out', default=None, help='also write the rows and ratios as JSON here')
    p.add_argument('--cfg-options', nargs='+', default=[], help='key=value config overrides')
    p.add_argument('--run', nargs=2, metavar=('VIDEO', 'K'), help=argparse.SUPPRESS)  # one child run
    args = p.parse_args(argv)
    if min(args.lengths) < 1 or min(args.expressions) < 1 or args.clip_len < 1:
        p.error('--lengths, --expressions and --clip-len must be >= 1')
    return args


def rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def current_rss_mib() -> float:
    """Resident set size now, MiB (``/proc/self/statm``; the peak where it cannot be read)."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
    except (OSError, ValueError, IndexError):
        return rss_mib()


def write_video(path: str, num_frames: int, size) -> str:
    """An mp4 of ``num_frames`` frames [H, W]: three shapes moving over a drifting gradient (one frame in
    memory at a time)."""
    import cv2
    h, w = size
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), 30, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f'OpenCV cannot write mp4 files here ({path})')
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 200 // max(w, 1), yy * 200 // max(h, 1), (xx + yy) * 100 // max(h + w, 1)], -1)
    r = max(2, min(h, w) // 10)
    try:
        for t in range(num_frames):
            img = ((base + t) % 256).astype(np.uint8)
            for k, color in enumerate(((40, 40, 220), (220, 90, 30), (40, 220, 230))):
                cx = int((0.2 + 0.3 * k) * w + 0.15 * w * np.sin(0.05 * t + k))
                cy = int((0.3 + 0.2 * k) * h + 0.1 * h * np.cos(0.07 * t + 2 * k))
                cv2.circle(img, (cx, cy), r, color, -1)
            writer.write(img)
    finally:
        writer.release()
    return path


def child_run(args) -> None:
    """One run (its own process): build the model, one warm-up clip, stream the video, print the numbers."""
    import torch
    from soc_mm.apis import init_model, stream_rvos
    from soc_mm.testing.benchmark import quiet_logs
    from soc_mm.utils import keep_freed_memory_for_reuse
    from soc_mm.utils.cli import parse_cfg_options
    keep_freed_memory_for_reuse()
    if args.threads:
        torch.set_num_threads(args.threads)
    video, k = args.run[0], int(args.run[1])
    quiet_logs()
    model = init_model(args.config, args.checkpoint, args.device, parse_cfg_options(args.cfg_options))
    expressions = [f'the shape number {i} moving on the left' for i in range(k)]
    options = dict(clip_len=args.clip_len, link_clips=True, presence_thr=0.5)
    h, w = args.size
    # one full clip first: the heap grows to a clip's working set and stays there (the allocator keeps freed
    # memory for reuse), so that the timed stream starts in the steady state of any length
    warm = np.zeros((args.clip_len, h, w, 3), np.uint8)
    for _ in stream_rvos(model, warm, expressions, **options):
        pass
    after_load = current_rss_mib()
    frames = pixels = 0
    start, cpu_start = time.perf_counter(), cpu_seconds()
    for clip in stream_rvos(model, video, expressions, **options):
        frames += clip.num_frames
        pixels += sum(int(r.pred_masks.sum()) for r in clip.results)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    print('STREAM_RESULT ' + json.dumps(dict(frames=frames, expressions=k, seconds=seconds, fps=frames / seconds,
                                             cpu_seconds=cpu, frames_per_cpu_second=frames / cpu,
                                             peak_rss_mib=rss_mib(), rss_after_load_mib=after_load,
                                             mask_pixels=pixels)), flush=True)


def run_one(args, video: str, k: int) -> dict:
    cmd = [sys.executable, osp.abspath(__file__), args.config, '--run', video, str(k), '--clip-len',
           str(args.clip_len), '--size', *map(str, args.size), '--device', args.device]
    if args.checkpoint:
        cmd += ['--checkpoint', args.checkpoint]
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    if args.cfg_options:
        cmd += ['--cfg-options', *args.cfg_options]
    env = dict(os.environ, PYTHONPATH=REPO + (os.pathsep + os.environ['PYTHONPATH'] if os.environ.get('PYTHONPATH')
                                                else ''))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith('STREAM_RESULT ')]
    if proc.returncode or not line:
        raise RuntimeError(f'run failed ({" ".join(cmd)}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    return json.loads(line[0][len('STREAM_RESULT '):])


def cpu_model() -> str:
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
        for ln in out.splitlines():
            if ln.startswith('Model name:'):
                return ln.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def summarise(rows, lengths, expressions) -> dict:
    """Per number of expressions: peak RSS of the longest video / of the shortest, fps spread."""
    ratios = {}
    for k in expressions:
        mine = {r['frames']: r for r in rows if r['expressions'] == k}
        shortest, longest = mine[min(mine)], mine[max(mine)]
        fps = [r['fps'] for r in mine.values()]
        cpu_fps = [r['frames_per_cpu_second'] for r in mine.values()]
        ratios[str(k)] = dict(rss_longest_over_shortest=longest['peak_rss_mib'] / shortest['peak_rss_mib'],
                              fps_spread=max(fps) / min(fps) - 1, cpu_fps_spread=max(cpu_fps) / min(cpu_fps) - 1)
    return ratios


def main(argv=None):
    args = parse_args(argv)
    if args.run:
        return child_run(args)
    import torch
    print(f'CPU: {cpu_model()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; torch threads: '
          f'{args.threads or torch.get_num_threads()}; {args.size[0]}x{args.size[1]} frames, clip_len '
          f'{args.clip_len}; config {args.config}', flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.video_dir or tmp
        os.makedirs(folder, exist_ok=True)
        for n in args.lengths:
            video = osp.join(folder, f'stream_{n}_{args.size[0]}x{args.size[1]}.mp4')
            if not osp.isfile(video):
                write_video(video, n, args.size)
            for k in args.expressions:
                row = run_one(args, video, k)
                if row['frames'] != n:
                    raise RuntimeError(f'{video}: {row["frames"]} frames decoded, {n} written')
                rows.append(row)
                print(f'{n:>6} frames, {k} expression(s): peak RSS {row["peak_rss_mib"]:.0f} MiB (after load '
                      f'{row["rss_after_load_mib"]:.0f}), {row["fps"]:.2f} frames/s, '
                      f'{row["frames_per_cpu_second"]:.2f} frames/CPU-s, {row["seconds"]:.1f} s, load '
                      f'{os.getloadavg()[0]:.1f}', flush=True)
    ratios = summarise(rows, args.lengths, args.expressions)
    print('\n| frames | expressions | peak RSS (MiB) | RSS after load + warm-up (MiB) | frames/s (wall) | '
          'frames per CPU-second | seconds |')
    print('|---|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['frames']} | {r['expressions']} | {r['peak_rss_mib']:.0f} | {r['rss_after_load_mib']:.0f} | "
              f"{r['fps']:.2f} | {r['frames_per_cpu_second']:.2f} | {r['seconds']:.1f} |")
    print()
    for k, ratio in ratios.items():
        print(f'{k} expression(s): peak RSS {max(args.lengths)} / {min(args.lengths)} frames = '
              f"{ratio['rss_longest_over_shortest']:.3f}x, frames/s spread {100 * ratio['fps_spread']:.1f} % (wall), "
              f"{100 * ratio['cpu_fps_spread']:.1f} % (CPU time)")
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(rows=rows, ratios=ratios, cpu=cpu_model(), size=list(args.size), clip_len=args.clip_len,
                           config=args.config, threads=args.threads), f, indent=1)
    return rows, ratios


if __name__ == '__main__':
    main()
