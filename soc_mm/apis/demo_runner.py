"""What the CPU demos (``tools/demo/run_demo.py``, ``tools/demo/run_mevis_demo.py``) share: run the
repository's tools in subprocesses (generate synthetic data, make the tiny text encoder, train a config,
test a checkpoint; in one process or data-parallel through ``tools/dist_*.sh``), the config overrides
they pass, the training speed and metrics read back from the logs, the trained model loaded again for
predictions (``init_model``: the checkpoint read by ``safe_load_local``), and the results written.
"""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

#: the linear warm-up of the tiny demo configs (iterations)
WARMUP_ITERS = 200


def step(title: str) -> None:
    """Print a demo step's title."""
    print(f'\n=== {title}', flush=True)


def runner_log_line(line: str) -> bool:
    """mmengine progress / result lines (not the config dump or the hook table)."""
    return ' - mmengine - ' in line and ('Iter(' in line or 'RVOSJFMetric' in line or 'ERROR' in line
                                         or 'Saving checkpoint' in line or 'RefYouTubeVOSDataset' in line)


def free_port() -> int:
    """A TCP port nobody listens on now (for torch.distributed.run's rendezvous)."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def add_demo_arguments(parser, work_dir: str, config: str) -> None:
    """The options both demo runners take (work folder, config, iterations, train videos, processes,
    threads, --skip-train, --check, --cfg-options)."""
    parser.add_argument('--work-dir', default=work_dir)
    parser.add_argument('--config', default=config)
    parser.add_argument('--max-iters', type=int, default=None, help='training iterations (default: the config)')
    parser.add_argument('--num-train', type=int, default=400, help='synthetic train videos')
    # Data-parallel training and testing (tools/dist_train.sh / dist_test.sh, gloo): one process per
    # core, each with 1 torch thread and batch 1, loading its own data. 2 processes take 2 clips per
    # ~0.19 s step where 1 process takes 1 per ~0.16 s: 1.7x (2 threads in one process: only 1.24x, and
    # ~7x slower as soon as anything else runs on the cores: libgomp barriers).
    parser.add_argument('--procs', type=int, default=min(2, os.cpu_count() or 1),
                        help='training / testing processes (default: 2, or 1 on a 1-core machine)')
    parser.add_argument('--threads', type=int, default=1, help='torch / OpenMP threads of each process')
    parser.add_argument('--skip-train', action='store_true',
                        help='reuse the data and checkpoint of a previous run in --work-dir')
    parser.add_argument('--check', action='store_true', help='exit with status 1 when a target is missed')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra key=value config overrides for training and testing')


def check_demo_arguments(parser, args) -> None:
    """``parser.error`` for the options of ``add_demo_arguments`` that cannot work."""
    from soc_mm.utils.cli import ConfigOptionError, parse_cfg_options
    if args.procs < 1 or args.threads < 1:
        parser.error(f'--procs and --threads must be >= 1, got {args.procs} and {args.threads}')
    try:
        parse_cfg_options(args.cfg_options)
    except ConfigOptionError as err:
        parser.error(str(err))


# ------------------------------------------------------------------ config overrides (key=value strings)
def data_overrides(data_root: str, text_encoder: str) -> List[str]:
    """Train and test data under ``data_root``; the text encoder folder ``text_encoder``."""
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


# ------------------------------------------------------------------ logs
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


# ------------------------------------------------------------------ subprocesses
class DemoRunner:
    """Runs the repository's tools for a demo whose files all live under ``work_dir``.

    Args:
        repo (str): the repository root (the tools run from there, with it on ``PYTHONPATH``).
        work_dir (str): the demo's folder (logs, ``train/``, ``train_info.json``, results).
        procs (int): data-parallel processes of training and testing (1: ``tools/{train,test}.py``;
            more: ``tools/dist_{train,test}.sh``, gloo on a free port).
        threads (int): torch / OpenMP threads of each process.
        python (str): the Python that runs the tools (default: this one).
    """

    def __init__(self, repo: str, work_dir: str, procs: int = 1, threads: int = 1,
                 python: Optional[str] = None) -> None:
        if procs < 1 or threads < 1:
            raise ValueError(f'procs and threads must be >= 1, got {procs} and {threads}')
        self.repo, self.work_dir = repo, osp.abspath(work_dir)
        self.procs, self.threads = procs, threads
        self.python = python or sys.executable
        self.env = dict(os.environ)
        self.env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED='1')
        self.env['PYTHONPATH'] = repo + (os.pathsep + self.env['PYTHONPATH'] if self.env.get('PYTHONPATH') else '')
        self.train_dir = osp.join(self.work_dir, 'train')
        os.makedirs(self.work_dir, exist_ok=True)

    def run(self, cmd: List[str], log_path: str, show: Optional[Callable[[str], bool]] = None,
            env: Optional[Dict[str, str]] = None) -> float:
        """Run ``cmd`` from the repo root, teeing its output to ``log_path``; print the lines ``show``
        accepts (all when None). Raise with the log's tail when it fails. Returns the wall time."""
        t0 = time.perf_counter()
        with open(log_path, 'w') as log:
            proc = subprocess.Popen(cmd, cwd=self.repo, env=env or self.env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, bufsize=1)
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

    def launch(self, tool: str, positional: List[str], options: List[str]) -> Tuple[List[str], Dict[str, str]]:
        """The command and environment that run ``tools/<tool>.py`` (``train`` / ``test``) in one process,
        or ``tools/dist_<tool>.sh`` with ``procs`` data-parallel processes (gloo on CPU) on a free port."""
        if self.procs <= 1:
            return [self.python, osp.join('tools', f'{tool}.py'), *positional, *options], self.env
        return (['bash', osp.join('tools', f'dist_{tool}.sh'), *positional, str(self.procs), *options],
                dict(self.env, PYTHON=self.python, PORT=str(free_port())))

    def run_tool(self, tool: str, positional: List[str], options: List[str], log_path: str,
                 show: Optional[Callable[[str], bool]] = None) -> float:
        """``launch`` + ``run``: tools/train.py or tools/test.py (data-parallel with ``procs`` > 1)."""
        cmd, env = self.launch(tool, positional, options)
        return self.run(cmd, log_path, show, env)

    # ------------------------------------------------------------------ the shared steps
    def generate_data(self, dataset: str, root: str, options: Sequence[str], log_name: str) -> None:
        """``tools/dataset_converters/generate_synthetic_rvos.py dataset root options`` into a fresh ``root``."""
        if osp.isdir(root):
            shutil.rmtree(root)
        self.run([self.python, 'tools/dataset_converters/generate_synthetic_rvos.py', dataset, root, *options],
                 osp.join(self.work_dir, log_name))

    def make_text_encoder(self, train_meta_file: str, out: str) -> None:
        """Step 2: a tiny random RoBERTa with a byte-level BPE tokenizer trained on the train expressions."""
        step('2/6 tiny text encoder (byte-level BPE trained on the train expressions, random RoBERTa)')
        self.run([self.python, 'tools/misc/make_tiny_text_encoder.py', train_meta_file, '--out', out],
                 osp.join(self.work_dir, 'text_encoder.log'), show=lambda line: 'trained on' in line)

    def train(self, config: str, overrides: List[str], max_iters: int,
              show: Callable[[str], bool] = runner_log_line) -> dict:
        """Step 3: train ``config`` for ``max_iters`` iterations (warm-up + cosine, a checkpoint at the end)
        into a fresh ``train/``. Returns the training info (iterations, wall time, processes, threads,
        load average before/after, iterations per second)."""
        step(f'3/6 training {osp.relpath(config, self.repo)} for {max_iters} iterations '
             f'({self.procs} data-parallel process(es) x {self.threads} torch thread(s); '
             f'log: {self.train_dir}/<timestamp>/)')
        if osp.isdir(self.train_dir):
            shutil.rmtree(self.train_dir)
        load_before = os.getloadavg()[0]
        log = osp.join(self.work_dir, 'train.log')
        train_s = self.run_tool('train', [config], ['--work-dir', self.train_dir, '--cfg-options', *overrides,
                                                    *schedule_overrides(max_iters)], log, show)
        return dict(max_iters=max_iters, train_s=train_s, procs=self.procs, threads=self.threads,
                    load_before=load_before, load_after=os.getloadavg()[0], it_per_s=train_speed(log))

    def save_train_info(self, train_info: dict) -> None:
        with open(osp.join(self.work_dir, 'train_info.json'), 'w') as f:
            json.dump(train_info, f, indent=1)

    def load_train_info(self) -> dict:
        """The training info of a previous run in ``work_dir`` (``--skip-train``)."""
        with open(osp.join(self.work_dir, 'train_info.json')) as f:
            return json.load(f)

    def checkpoint(self, train_info: dict) -> str:
        """The checkpoint that training wrote at its last iteration (an error when it is missing)."""
        path = osp.join(self.train_dir, f"iter_{train_info['max_iters']}.pth")
        if not osp.isfile(path):
            raise FileNotFoundError(f'checkpoint not found: {path}')
        return path

    def write_results(self, table: str, verdict: str, results: dict) -> None:
        """``results.md`` (the table and the verdict) and ``results.json`` under ``work_dir``."""
        with open(osp.join(self.work_dir, 'results.md'), 'w') as f:
            f.write(table + '\n\n' + verdict + '\n')
        with open(osp.join(self.work_dir, 'results.json'), 'w') as f:
            json.dump(results, f, indent=1)


# ------------------------------------------------------------------ the trained model, in this process
def load_trained_model(config: str, checkpoint: str, overrides: Sequence[str]):
    """The trained demo model in eval mode on the CPU: ``init_model`` (the checkpoint read by
    ``safe_load_local``, strict) with the ``key=value`` ``overrides`` parsed as ``--cfg-options`` parses
    them; the config's own kernel setting. Its merged config is ``model.cfg``."""
    from soc_mm.apis.inference import init_model
    from soc_mm.utils.cli import parse_cfg_options
    return init_model(config, checkpoint, device='cpu', cfg_options=parse_cfg_options(overrides), fast_kernels=None)


def build_test_dataset(model):
    """The test dataset of ``model.cfg`` (``load_trained_model``)."""
    from soc_mm.registry import DATASETS
    return DATASETS.build(model.cfg.test_dataloader.dataset)
