"""Where the time of a whole ``tools/test.py`` evaluation goes: Ref-YouTube-VOS valid split, from process
start to exit (start-up, data loading, model, submission writing, zipping).

By default it generates a synthetic Ref-YouTube-VOS in the real format (``--num-valid`` videos of
``--num-frames`` frames at ``--size``, no valid masks, as the real release), a tiny text encoder and a
random-weight checkpoint of the tiny SOC (``configs/soc/soc_tiny_synthetic.py``), and tests it with the
real Ref-YouTube-VOS test set-up taken from ``configs/_base_/datasets/refytvos.py`` (whole videos,
frames resized to a 360 short side, the expressions of a video in one batch,
``RefYTVOSSubmissionMetric`` writing the PNGs and the server zip). ``tools/test.py`` then runs in a
child process whose phases are timed: wall clock (``time.perf_counter`` / ``time.time``) and the CPU
time of the main thread (``time.thread_time``; with one torch thread that is the model's compute; a
busy machine stretches the wall times, much less the CPU times):

* start-up: Python, imports (up to ``tools/test.py``'s ``main``), config, checkpoint read, runner and
  model build, weight load, test loop and dataset build;
* data loading: ``DataLoader`` iteration (JPEG decoding, resizing, packing; worker start-up);
* model: ``model.test_step`` (pre-processing, forward, mask post-processing at the original size);
* metric process: ``Evaluator.process`` (sample conversion, checks, PNGs when written in the loop);
* evaluate: waiting for background PNG writes, zipping and removing the PNGs;
* the rest of the loop (hooks, logging) and the process exit.

    python tools/analysis_tools/benchmark_test_loop.py [--num-valid 20 --num-frames 24 --size 360 640]
        [--num-workers 2] [--write-threads 1] [--threads 1] [--reference-zip OLD.zip] [--profile out.prof]
    python tools/analysis_tools/benchmark_test_loop.py --config CONFIG --checkpoint CKPT   # any test config

``--reference-zip`` checks that the written zip holds the same members with the same bytes (exit
status 1 otherwise). Run it on a quiet machine, or under ``nice`` with the machine's load in mind: the
numbers are wall-clock seconds.
"""
import argparse
import collections
import hashlib
import importlib.util
import json
import os
import os.path as osp
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS_TEST = osp.join(REPO, 'tools', 'test.py')
TINY_CONFIG = osp.join(REPO, 'configs', 'soc', 'soc_tiny_synthetic.py')
REFYTVOS_DATA_CONFIG = osp.join(REPO, 'configs', '_base_', 'datasets', 'refytvos.py')
CHILD_FLAG = '--timed-child'  # first argument of the child process: TIMINGS_JSON PROFILE_OR_EMPTY TEST_ARGS...


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Time the phases of a whole tools/test.py evaluation')
    parser.add_argument('--config', help='test config to run as it is (default: the tiny SOC with the '
                        'Ref-YouTube-VOS test set-up on generated data); needs --checkpoint')
    parser.add_argument('--checkpoint', help='checkpoint for --config')
    parser.add_argument('--data-root', help='existing Ref-YouTube-VOS root for the generated config '
                        '(default: generate a synthetic one)')
    parser.add_argument('--num-valid', type=int, default=20, help='generated valid videos')
    parser.add_argument('--num-frames', type=int, default=24, help='frames per generated video')
    parser.add_argument('--size', type=int, nargs=2, default=[360, 640], metavar=('H', 'W'),
                        help='generated frame size')
    parser.add_argument('--num-workers', type=int, default=2,
                        help="test dataloader workers (the Ref-YouTube-VOS config's value: 2)")
    parser.add_argument('--write-threads', type=int, default=None,
                        help="RefYTVOSSubmissionMetric's PNG writer threads (default: the metric's)")
    parser.add_argument('--threads', type=int, default=1, help='torch threads (OMP_NUM_THREADS)')
    parser.add_argument('--work-dir', help='keep everything here (default: a temporary folder, removed)')
    parser.add_argument('--reference-zip', help='zip the written one must equal (members and bytes)')
    parser.add_argument('--profile', help='also write a cProfile of the tools/test.py process here')
    parser.add_argument('--out', help='write the timings as JSON here')
    args = parser.parse_args(argv)
    if (args.config is None) != (args.checkpoint is None):
        parser.error('--config and --checkpoint go together')
    return args


# ---------------------------------------------------------------------------------------------- child
def _timed(store: dict, key: str, fn):
    """``fn`` that adds its wall time to ``store[key]`` and the CPU time of the calling thread to
    ``store[key + '_cpu']``."""
    def wrapper(*args, **kwargs):
        start, start_cpu = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            store[key] += time.perf_counter() - start
            store[key + '_cpu'] += time.thread_time() - start_cpu
    wrapper.__wrapped__ = fn
    return wrapper


def _mark(marks: dict, name: str) -> None:
    """Wall clock (``time.time``, comparable across processes) and this thread's CPU time at ``name``."""
    marks[name] = time.time()
    marks[name + '_cpu'] = time.thread_time()


def child_main(timings_path: str, profile_path: str, test_argv: list) -> None:
    """Run ``tools/test.py`` in this process with its phases timed; write the timings as JSON."""
    sys.path.insert(0, REPO)
    marks = {}
    _mark(marks, 'child_start')
    spent = collections.defaultdict(float)
    spec = importlib.util.spec_from_file_location('soc_mm_tools_test', TOOLS_TEST)
    test_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_tool)  # imports mmengine, soc_mm, ... as `python tools/test.py` does

    import torch.utils.data.dataloader as torch_dataloader
    from mmengine.evaluator import Evaluator
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    from mmengine.runner.loops import TestLoop

    import soc_mm.evaluation.metrics.ref_ytvos_submission_metric as submission
    _mark(marks, 'imported')
    marks['soc_mm'] = osp.dirname(osp.abspath(submission.__file__))

    import soc_mm.utils.launch as launch  # tools/test.py reads the checkpoint through config_for_testing
    launch.safe_load_local = _timed(spent, 'checkpoint_read', launch.safe_load_local)
    test_tool.load_checkpoint_to_model = _timed(spent, 'weight_load', test_tool.load_checkpoint_to_model)
    Runner.from_cfg = classmethod(_timed(spent, 'runner_build', Runner.from_cfg.__func__))
    torch_dataloader.DataLoader.__iter__ = _timed(spent, 'data', torch_dataloader.DataLoader.__iter__)
    loader_iter = torch_dataloader._BaseDataLoaderIter
    loader_iter.__next__ = _timed(spent, 'data', loader_iter.__next__)
    BaseModel.test_step = _timed(spent, 'model', BaseModel.test_step)
    Evaluator.process = _timed(spent, 'metric_process', Evaluator.process)
    Evaluator.evaluate = _timed(spent, 'evaluate', Evaluator.evaluate)
    # the PNG writes are waited for in evaluate() before the gather and again (a no-op) in compute_metrics: the
    # wait inside compute_metrics is timed apart, so that the zip's row is compute_metrics without it
    in_compute = []
    compute_metrics = _timed(spent, 'compute_metrics', submission.RefYTVOSSubmissionMetric.compute_metrics)

    def timed_compute_metrics(*args, **kwargs):
        in_compute.append(True)
        try:
            return compute_metrics(*args, **kwargs)
        finally:
            in_compute.pop()
    submission.RefYTVOSSubmissionMetric.compute_metrics = timed_compute_metrics
    if hasattr(submission, 'AsyncMaskWriter'):
        flush_outside = _timed(spent, 'png_flush', submission.AsyncMaskWriter.flush)
        flush_inside = _timed(spent, 'png_flush_in_compute', submission.AsyncMaskWriter.flush)
        submission.AsyncMaskWriter.flush = lambda self: (flush_inside if in_compute else flush_outside)(self)
    counts = collections.Counter()
    run_loop = TestLoop.run

    def timed_loop(self):
        _mark(marks, 'loop_start')
        counts['batches'] = len(self.dataloader)
        try:
            return run_loop(self)
        finally:
            _mark(marks, 'loop_end')

    TestLoop.run = timed_loop
    sys.argv = [TOOLS_TEST] + test_argv
    profiler = None
    if profile_path:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    try:
        test_tool.main(test_tool.parse_args())
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_path)
        _mark(marks, 'main_end')
        with open(timings_path, 'w') as f:
            json.dump(dict(marks=marks, spent=spent, counts=counts), f)


# --------------------------------------------------------------------------------------------- parent
def prepare(args, work_dir: str) -> tuple:
    """Generate data, text encoder, config and random-weight checkpoint; return (config, checkpoint,
    submission zip path)."""
    os.environ.setdefault('OMP_NUM_THREADS', str(args.threads))
    sys.path.insert(0, REPO)
    import torch
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope

    from soc_mm.datasets import synthetic
    from soc_mm.registry import MODELS
    from soc_mm.testing.tiny_text_encoder import make_tiny_text_encoder, read_expressions
    torch.set_num_threads(args.threads)
    data_root = args.data_root
    if data_root is None:
        data_root = osp.join(work_dir, 'data')
        start = time.perf_counter()
        synthetic.generate_ref_youtube_vos(data_root, num_train=2, num_valid=args.num_valid, num_test=1,
                                           num_frames=args.num_frames, size=tuple(args.size),
                                           valid_with_gt=False, seed=0)
        print(f'generated {args.num_valid} valid videos of {args.num_frames} frames at '
              f'{args.size[0]}x{args.size[1]} in {time.perf_counter() - start:.1f} s')
    data_root = osp.abspath(data_root) + '/'
    text_encoder = osp.join(work_dir, 'tiny_roberta')
    make_tiny_text_encoder(read_expressions([data_root]), text_encoder)

    cfg = Config.fromfile(TINY_CONFIG)
    ytvos = Config.fromfile(REFYTVOS_DATA_CONFIG)
    cfg.model.text_encoder.model_path = text_encoder
    cfg.train_dataloader.dataset.data_root = data_root
    cfg.test_dataloader = ytvos.test_dataloader  # the real test pipeline, sampler and batching
    cfg.test_dataloader.dataset.data_root = data_root
    cfg.test_dataloader.num_workers = args.num_workers
    cfg.test_dataloader.persistent_workers = args.num_workers > 0
    cfg.test_evaluator = ytvos.test_evaluator
    cfg.test_evaluator.output_dir = osp.join(work_dir, 'submission')
    if args.write_threads is not None:
        cfg.test_evaluator.write_threads = args.write_threads
    config = osp.join(work_dir, 'test_config.py')
    cfg.dump(config)

    init_default_scope('soc_mm')
    MMLogger.get_instance('benchmark_test_loop', log_level='WARNING')  # quiet weight initialisation
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    checkpoint = osp.join(work_dir, 'random_weights.pth')
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    zip_path = osp.join(cfg.test_evaluator.output_dir, cfg.test_evaluator.get('zip_name', 'submission.zip'))
    return config, checkpoint, zip_path


def zip_members(path: str) -> dict:
    """``{member name: sha256 of its bytes}`` of a zip."""
    with zipfile.ZipFile(path) as zf:
        return {name: hashlib.sha256(zf.read(name)).hexdigest() for name in zf.namelist()}


def table(timings: dict, launch: float, end: float) -> list:
    """Rows ``(phase, wall s, main-thread CPU s or None)`` in run order; they add up to the total wall
    time ``end - launch``."""
    marks, spent = timings['marks'], collections.defaultdict(float, timings['spent'])

    def interval(first, last):
        return marks[last] - marks[first], marks[last + '_cpu'] - marks[first + '_cpu']

    def phase(key):
        return spent[key], spent[key + '_cpu']

    def minus(total, *parts):
        return total[0] - sum(p[0] for p in parts), total[1] - sum(p[1] for p in parts)

    checkpoint, build, weights = phase('checkpoint_read'), phase('runner_build'), phase('weight_load')
    data, model, process = phase('data'), phase('model'), phase('metric_process')
    evaluate, compute = phase('evaluate'), phase('compute_metrics')
    flush, flush_in_compute = phase('png_flush'), phase('png_flush_in_compute')
    rows = [
        ('start-up: Python + imports', marks['imported'] - launch, marks['imported_cpu']),
        ('start-up: checkpoint read', *checkpoint),
        ('start-up: runner + model build', *build),
        ('start-up: weight load', *weights),
        ('start-up: config, test loop + dataset build, hooks',
         *minus(interval('imported', 'loop_start'), checkpoint, build, weights)),
        ('data loading (DataLoader iteration)', *data),
        ('model (test_step)', *model),
        ('metric process (checks; PNGs when written in the loop)', *process),
        ('evaluate: wait for background PNG writes', flush[0] + flush_in_compute[0], flush[1] + flush_in_compute[1]),
        ('evaluate: zip + remove PNGs', *minus(compute, flush_in_compute)),
        ('evaluate: other (gather)', *minus(evaluate, compute, flush)),
        ('rest of the loop (hooks, logging)', *minus(interval('loop_start', 'loop_end'), data, model, process,
                                                     evaluate)),
        ('after the loop (after_run hooks, tools/test.py end)', *interval('loop_end', 'main_end')),
        ('process exit (workers, interpreter teardown)', end - marks['main_end'], None),
    ]
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [CHILD_FLAG]:  # internal: the timed tools/test.py process
        child_main(argv[1], argv[2], argv[3:])
        return 0
    args = parse_args(argv)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix='benchmark_test_loop_')
    os.makedirs(work_dir, exist_ok=True)
    try:
        if args.config is None:
            config, checkpoint, zip_path = prepare(args, work_dir)
        else:
            config, checkpoint, zip_path = args.config, args.checkpoint, None
        timings_path = osp.join(work_dir, 'timings.json')
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        cmd = [sys.executable, osp.abspath(__file__), CHILD_FLAG, timings_path, args.profile or '',
               config, checkpoint, '--work-dir', osp.join(work_dir, 'test_work_dir')]
        print(f'running tools/test.py {config} {checkpoint} ({args.threads} torch thread(s))', flush=True)
        usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        launch = time.time()
        proc = subprocess.run(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        end = time.time()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = (usage.ru_utime + usage.ru_stime) - (usage_before.ru_utime + usage_before.ru_stime)
        if proc.returncode != 0:
            print(proc.stdout[-6000:])
            print(f'tools/test.py failed with exit status {proc.returncode}')
            return proc.returncode
        with open(timings_path) as f:
            timings = json.load(f)
        rows = table(timings, launch, end)
        total = end - launch
        model = next(wall for name, wall, _ in rows if name == 'model (test_step)')
        print(f"\nsoc_mm: {timings['marks']['soc_mm']}; {timings['counts'].get('batches', '?')} batches")
        print('\n| phase | wall s | % of wall | main-thread CPU s |\n|---|---|---|---|')
        for name, seconds, cpu in rows:
            print(f"| {name} | {seconds:.2f} | {100 * seconds / total:.1f} | {'-' if cpu is None else f'{cpu:.2f}'} |")
        print(f'| **total** | **{total:.2f}** | 100 | |')
        print(f'| not the model (total - model) | {total - model:.2f} | {100 * (total - model) / total:.1f} | |')
        print(f'\nCPU time of the tools/test.py process and its workers: {cpu_s:.1f} s; '
              f'load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs')
        result = dict(rows=rows, total=total, cpu_s=cpu_s, timings=timings)
        status = 0
        if zip_path is not None and osp.isfile(zip_path):
            members = zip_members(zip_path)
            files = [n for n in members if not n.endswith('/')]
            digest = hashlib.sha256(json.dumps(sorted(members.items())).encode()).hexdigest()[:16]
            print(f'zip: {zip_path}: {len(files)} PNGs, {osp.getsize(zip_path)} bytes, contents digest {digest}')
            result.update(zip=zip_path, zip_digest=digest, zip_files=len(files))
            if args.reference_zip:
                reference = zip_members(args.reference_zip)
                if reference == members:
                    print(f'same members and bytes as {args.reference_zip}')
                else:
                    differ = sorted(n for n in set(reference) | set(members) if reference.get(n) != members.get(n))
                    print(f'DIFFERS from {args.reference_zip}: {len(differ)} member(s), e.g. {differ[:5]}')
                    status = 1
        if args.profile:
            print(f'cProfile of the tools/test.py process: {args.profile} '
                  f"(python -c \"import pstats; pstats.Stats('{args.profile}').sort_stats('cumulative')"
                  '.print_stats(40)")')
        if args.out:
            with open(args.out, 'w') as f:
                json.dump(result, f, indent=1)
        return status
    finally:
        if args.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
