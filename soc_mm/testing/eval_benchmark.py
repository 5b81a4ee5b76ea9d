"""Building blocks of ``tools/analysis_tools/benchmark_eval.py``: made-up predictions for a generated split,
wall time and peak memory of a command and all its child processes, and the side-by-side run of an official
evaluation script and ``tools/analysis_tools/eval_rvos.py`` on the same data.

Memory is measured by polling ``/proc`` (Linux): every ``interval`` seconds the command's process tree is
walked and the resident memory of its processes summed, as RSS (what ``top`` shows per process; pages shared
by forked workers are counted once per process) and as PSS (each shared page divided among the processes that
share it: the tree's real footprint). The peak of each sum is reported. Processes that live shorter than the
interval can be missed; the official scripts and ours run for seconds.
"""
import json
import os
import os.path as osp
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

PAGE_SIZE = os.sysconf('SC_PAGE_SIZE') if hasattr(os, 'sysconf') else 4096


# ---------------------------------------------------------------------- memory of a process tree
def _children(pid: int) -> List[int]:
    """Child pids of ``pid`` (``/proc/<pid>/task/*/children``, else a scan of ``/proc/*/stat``)."""
    kids = []
    task_dir = f'/proc/{pid}/task'
    try:
        tids = os.listdir(task_dir)
    except OSError:
        return []
    found_file = False
    for tid in tids:
        try:
            with open(f'{task_dir}/{tid}/children') as f:
                kids += [int(p) for p in f.read().split()]
            found_file = True
        except OSError:
            continue
    if found_file:
        return kids
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(')') + 2:].split()[1])
        if ppid == pid:
            kids.append(int(entry))
    return kids


def process_tree(pid: int) -> List[int]:
    """``pid`` and all its descendants (alive now)."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(_children(p))
    return tree


def process_memory(pid: int) -> Tuple[int, int]:
    """(RSS, PSS) of one process in bytes; (0, 0) if it is gone. PSS falls back to RSS where
    ``smaps_rollup`` is not readable."""
    try:
        with open(f'/proc/{pid}/statm') as f:
            rss = int(f.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0, 0
    pss = None
    try:
        with open(f'/proc/{pid}/smaps_rollup') as f:
            for line in f:
                if line.startswith('Pss:'):
                    pss = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return rss, rss if pss is None else pss


@dataclass
class Measured:
    """One measured command: ``returncode``, ``stdout``, ``stderr``, ``wall_s``, the peaks over the run of the
    process tree's summed ``rss`` and ``pss`` (bytes) and of its process count."""
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    peak_rss: int
    peak_pss: int
    peak_processes: int


def run_measured(cmd: Sequence[str], env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None,
                 interval: float = 0.05, timeout: Optional[float] = None) -> Measured:
    """Run ``cmd`` and poll the memory of its process tree until it exits.

    Args:
        cmd: the command (no shell).
        env, cwd: as ``subprocess.Popen``.
        interval (float): seconds between polls.
        timeout (float, optional): kill the tree after this many seconds (``returncode`` is then -9).
    """
    peaks = dict(rss=0, pss=0, procs=0)
    with tempfile.TemporaryFile('w+') as out, tempfile.TemporaryFile('w+') as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), env=env, cwd=cwd, stdout=out, stderr=err, text=True)
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                tree = process_tree(proc.pid)
                mem = [process_memory(p) for p in tree]
                peaks['rss'] = max(peaks['rss'], sum(m[0] for m in mem))
                peaks['pss'] = max(peaks['pss'], sum(m[1] for m in mem))
                peaks['procs'] = max(peaks['procs'], sum(1 for m in mem if m[0]))
                stop.wait(interval)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in reversed(process_tree(proc.pid)):
                try:
                    os.kill(p, 9)
                except OSError:
                    pass
            returncode = proc.wait()
        wall = time.perf_counter() - start
        stop.set()
        poller.join()
        out.seek(0)
        err.seek(0)
        return Measured(returncode, out.read(), err.read(), wall, peaks['rss'], peaks['pss'], peaks['procs'])


# ---------------------------------------------------------------------- predictions for a generated split
def perturb_mask(rng: np.random.Generator, gt: np.ndarray) -> np.ndarray:
    """A made-up prediction of one frame: the truth, nothing, the truth shifted by a few pixels, or the truth
    with a random disc added (bool ``[H, W]``)."""
    kind = rng.integers(4)
    if kind == 0:
        return gt.copy()
    if kind == 1:
        return np.zeros_like(gt)
    if kind == 2:
        shift = tuple(int(s) for s in rng.integers(-6, 7, size=2))
        return np.roll(gt, shift, axis=(0, 1))
    out = gt.astype(np.uint8)
    height, width = gt.shape
    radius = int(rng.integers(2, max(3, min(height, width) // 8)))
    cv2.circle(out, (int(rng.integers(width)), int(rng.integers(height))), radius, 1, -1)
    return out.astype(bool)


def write_mevis_style_predictions(meta_file: str, mask_dict_file: str, pred_dir: str, seed: int = 0,
                                  num_missing_videos: int = 1, empty_expression_prob: float = 0.1) -> dict:
    """Made-up predictions ``<pred_dir>/<video>/<exp_id>/<frame>.png`` (8-bit, 255 = object) for a split in
    the MeViS layout (``meta_expressions*.json`` + ``mask_dict.json``; ReVOS uses the same): per frame a
    :func:`perturb_mask` of the expression's ground truth (the union of its objects), an expression
    predicted empty in every frame with ``empty_expression_prob``, and the last ``num_missing_videos``
    videos without a folder (the official scripts score them 0).

    Returns:
        ``{'expressions': written, 'frames': PNGs written, 'missing_videos': [...]}``.
    """
    from soc_mm.evaluation.functional.lazy_json import LazyJsonObject
    from soc_mm.structures.mask import decode_mask
    from soc_mm.datasets.utils import read_json
    rng = np.random.default_rng(seed)
    videos = read_json(meta_file, 'meta_expressions file')['videos']
    masks = LazyJsonObject(mask_dict_file, 'mask_dict file')
    names = list(videos)
    missing = names[len(names) - num_missing_videos:] if num_missing_videos else []
    written = frames_written = 0
    for video_id in names:
        if video_id in missing:
            continue
        video = videos[video_id]
        frames = video['frames']
        objects = {}
        for exp_id, exp in video['expressions'].items():
            for anno in exp.get('anno_id', []):
                if str(anno) not in objects:
                    objects[str(anno)] = masks[str(anno)]
        size = None
        for rles in objects.values():
            size = next((tuple(r['size']) for r in rles if r), size)
        if size is None:
            size = (64, 64)
        for exp_id, exp in video['expressions'].items():
            exp_dir = osp.join(pred_dir, video_id, exp_id)
            os.makedirs(exp_dir, exist_ok=True)
            empty = rng.random() < empty_expression_prob
            for t, frame in enumerate(frames):
                gt = np.zeros(size, bool)
                for anno in exp.get('anno_id', []):
                    rle = objects[str(anno)][t]
                    if rle:
                        gt |= decode_mask(rle)
                pred = np.zeros(size, bool) if empty else perturb_mask(rng, gt)
                cv2.imwrite(osp.join(exp_dir, f'{frame}.png'), pred.astype(np.uint8) * 255)
                frames_written += 1
            written += 1
    return dict(expressions=written, frames=frames_written, missing_videos=missing)


# ---------------------------------------------------------------------- the side-by-side run
@dataclass
class SideBySide:
    """Both runs and their numbers: ``official`` / ``ours`` (:class:`Measured`), ``official_metrics`` /
    ``our_metrics`` (flattened ``{name: value}``), ``max_abs_diff`` over the common numbers,
    ``per_expression_max_abs_diff`` (None when not compared) and the commands run."""
    official: Measured
    ours: Measured
    official_metrics: Dict[str, float]
    our_metrics: Dict[str, float]
    max_abs_diff: float
    per_expression_max_abs_diff: Optional[float] = None
    commands: Dict[str, List[str]] = field(default_factory=dict)


def patched_official_script(script: str, workers: int, out_dir: str,
                            constant: str = 'NUM_WOEKERS') -> str:
    """A copy of an official evaluation script (in ``out_dir``) whose worker-count constant is ``workers``, so
    that both sides run with the same number of processes; the official folder goes on ``PYTHONPATH`` so that
    its own imports (``metrics.py``) resolve.

    Raises:
        ValueError: the script has no ``<constant> = <int>`` line.
    """
    with open(script) as f:
        text = f.read()
    pattern = re.compile(rf'^({constant}\s*=\s*)\d+', re.M)
    if not pattern.search(text):
        raise ValueError(f'{script}: no "{constant} = <number>" line to set the number of workers')
    path = osp.join(out_dir, f'patched_{osp.basename(script)}')
    with open(path, 'w') as f:
        f.write(pattern.sub(rf'\g<1>{workers}', text, count=1))
    return path


def parse_metric_lines(text: str) -> Dict[str, float]:
    """``{name: value}`` of the ``NAME: number`` lines of a script's output."""
    metrics = {}
    for line in text.splitlines():
        match = re.fullmatch(r'\s*([^:]+?):\s*(-?[0-9.]+(?:e-?\d+)?|nan)\s*', line)
        if match:
            metrics[match.group(1)] = float(match.group(2))
    return metrics


def compare_mevis(official_script: str, meta_file: str, mask_dict_file: str, pred_dir: str, work_dir: str,
                  workers: int, official_workers: Optional[int] = None, python: str = sys.executable,
                  official_pythonpath: Sequence[str] = (), repo_root: Optional[str] = None,
                  timeout: Optional[float] = None) -> SideBySide:
    """Run MeViS's official ``tools/eval_mevis.py`` (a copy with ``official_workers`` workers, default
    ``workers``; 64 as shipped when ``official_workers`` is 0) and ``eval_rvos.py mevis`` on the same split and
    predictions, measured by :func:`run_measured`; compare J, F, J&F and the per-expression (J, F)."""
    repo_root = repo_root or osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    os.makedirs(work_dir, exist_ok=True)
    official_workers = workers if official_workers is None else official_workers
    script = official_script if official_workers == 0 else \
        patched_official_script(official_script, official_workers, work_dir)
    env = _official_env(official_script, official_pythonpath)
    official_json = osp.join(work_dir, 'official_per_expression.json')
    official_cmd = [python, script, '--mevis_exp_path', meta_file, '--mevis_mask_path', mask_dict_file,
                    '--mevis_pred_path', pred_dir, '--save_name', official_json]
    official = run_measured(official_cmd, env=env, timeout=timeout)
    if official.returncode != 0:
        raise RuntimeError(f'the official script failed ({official.returncode}):\n{official.stderr[-3000:]}')
    ours_json, ours_rows = osp.join(work_dir, 'ours.json'), osp.join(work_dir, 'ours_per_expression.json')
    our_cmd = [python, osp.join(repo_root, 'tools', 'analysis_tools', 'eval_rvos.py'), 'mevis', pred_dir,
               '--meta-expressions', meta_file, '--masks', mask_dict_file, '--workers', str(workers),
               '--out', ours_json, '--per-expression', ours_rows]
    ours = run_measured(our_cmd, env=dict(os.environ, OMP_NUM_THREADS='1'), cwd=repo_root, timeout=timeout)
    if ours.returncode != 0:
        raise RuntimeError(f'eval_rvos.py failed ({ours.returncode}):\n{ours.stderr[-3000:]}')
    official_metrics = {k: v for k, v in parse_metric_lines(official.stdout).items() if k in ('J', 'F', 'J&F')}
    with open(ours_json) as f:
        our_metrics = json.load(f)
    diff = max(abs(official_metrics[k] - our_metrics[k]) for k in ('J', 'F', 'J&F'))
    with open(official_json) as f:
        official_rows = json.load(f)
    with open(ours_rows) as f:
        rows = {f'{r["video"]}_{r["exp_id"]}': (r['J'], r['F']) for r in json.load(f)}
    if set(official_rows) != set(rows):
        per_exp = float('inf')
    else:
        per_exp = max((abs(float(official_rows[k][i]) - rows[k][i]) for k in rows for i in (0, 1)), default=0.0)
    return SideBySide(official, ours, official_metrics, our_metrics, float(diff), per_exp,
                      dict(official=official_cmd, ours=our_cmd))


def _official_env(official_script: str, official_pythonpath: Sequence[str]) -> Dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([osp.dirname(osp.abspath(official_script)),
                                                       *official_pythonpath]), OMP_NUM_THREADS='1')


def compare_revos(official_script: str, meta_file: str, mask_dict_file: str, foreground_file: str, pred_dir: str,
                  work_dir: str, workers: int, official_workers: Optional[int] = None, python: str = sys.executable,
                  official_pythonpath: Sequence[str] = (), repo_root: Optional[str] = None,
                  timeout: Optional[float] = None) -> SideBySide:
    """Run VISA's official ``tools/eval_revos.py`` (a copy with ``official_workers`` workers, default
    ``workers``; its own 128 when 0) and ``eval_rvos.py revos`` on the same split and predictions, measured
    by :func:`run_measured`; compare the ``referring`` / ``reason`` / ``overall`` tables (percent) and the
    rounded per-expression J, F, A, R, JF of the official CSV."""
    import csv
    repo_root = repo_root or osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    os.makedirs(work_dir, exist_ok=True)
    official_workers = workers if official_workers is None else official_workers
    script = official_script if official_workers == 0 else \
        patched_official_script(official_script, official_workers, work_dir)
    official_json, official_csv = osp.join(work_dir, 'official.json'), osp.join(work_dir, 'official.csv')
    official_cmd = [python, script, pred_dir, '--visa_exp_path', meta_file, '--visa_mask_path', mask_dict_file,
                    '--visa_foreground_mask_path', foreground_file, '--save_json_name', official_json,
                    '--save_csv_name', official_csv]  # absolute: os.path.join(pred_dir, '..', name) keeps them
    official = run_measured(official_cmd, env=_official_env(official_script, official_pythonpath), timeout=timeout)
    if official.returncode != 0:
        raise RuntimeError(f'the official script failed ({official.returncode}):\n{official.stderr[-3000:]}')
    ours_json, ours_rows = osp.join(work_dir, 'ours.json'), osp.join(work_dir, 'ours_per_expression.json')
    our_cmd = [python, osp.join(repo_root, 'tools', 'analysis_tools', 'eval_rvos.py'), 'revos', pred_dir,
               '--meta-expressions', meta_file, '--masks', mask_dict_file, '--foreground-masks', foreground_file,
               '--workers', str(workers), '--out', ours_json, '--per-expression', ours_rows]
    ours = run_measured(our_cmd, env=dict(os.environ, OMP_NUM_THREADS='1'), cwd=repo_root, timeout=timeout)
    if ours.returncode != 0:
        raise RuntimeError(f'eval_rvos.py failed ({ours.returncode}):\n{ours.stderr[-3000:]}')
    with open(official_json) as f:
        official_tables = json.load(f)
    with open(ours_json) as f:
        our_tables = json.load(f)
    flat = {f'{t}/{k}': v for t, table in official_tables.items() for k, v in table.items()}
    our_flat = {f'{t}/{k}': v for t, table in our_tables.items() for k, v in table.items()}
    diff = max(abs(flat[k] - our_flat[k]) for k in flat)
    with open(official_csv, newline='') as f:
        official_rows = {(r['video_name'], r['exp_id']): r for r in csv.DictReader(f)}
    with open(ours_rows) as f:
        rows = {(r['video'], r['exp_id']): r for r in json.load(f)}
    if set(official_rows) != set(rows):
        per_exp = float('inf')
    else:
        per_exp = max((abs(float(official_rows[k][m]) - float(rows[k][m])) for k in rows
                       for m in ('J', 'F', 'A', 'R', 'JF')), default=0.0)
    return SideBySide(official, ours, flat, our_flat, float(diff), per_exp, dict(official=official_cmd, ours=our_cmd))


def side_by_side_table(result: SideBySide, workers: int, official_workers: int,
                       keys: Sequence[str] = ('J', 'F', 'J&F'), shipped_workers: int = 64) -> str:
    """Markdown table of wall time, peak memory (PSS and RSS of the process tree) and the numbers."""
    def mib(b):
        return f'{b / 2**20:,.0f}'
    rows = [('official', result.official, official_workers or shipped_workers),
            ('ours (eval_rvos.py)', result.ours, workers)]
    lines = ['| run | workers | wall time (s) | peak PSS, all processes (MiB) | peak RSS sum (MiB) | '
             'peak processes | ' + ' | '.join(keys) + ' |',
             '| --- | ---: | ---: | ---: | ---: | ---: |' + ' ---: |' * len(keys)]
    for (name, measured, n), metrics in zip(rows, (result.official_metrics, result.our_metrics)):
        lines.append(f'| {name} | {n} | {measured.wall_s:.1f} | {mib(measured.peak_pss)} | {mib(measured.peak_rss)} | '
                     f'{measured.peak_processes} | ' + ' | '.join(f'{metrics[k]:.6f}' for k in keys) + ' |')
    return '\n'.join(lines)
