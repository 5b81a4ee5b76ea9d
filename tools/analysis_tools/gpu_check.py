"""Helpers of ``tools/analysis_tools/gpu_check.sh``, the one-command GPU check of the SOC stack.

    python tools/analysis_tools/gpu_check.py cuda-home [--install]  # a CUDA_HOME whose nvcc fits torch
    python tools/analysis_tools/gpu_check.py stack                   # torch / mmcv ops; mmcv's CUDA MSDA
    python tools/analysis_tools/gpu_check.py train [--steps 20]      # AMP training steps, tools/train.py --amp
    python tools/analysis_tools/gpu_check.py bench                   # Swin-T SOC, fp32 vs AMP, eval and train

Every sub-command prints ``RESULT key=value`` lines (the key numbers of gpu_check.sh's summary) and
exits non-zero naming the check that failed.

``cuda-home``: mmcv's CUDA ops are compiled by the ``nvcc`` of ``CUDA_HOME``, whose CUDA major version
must equal torch's (``torch.utils.cpp_extension`` refuses otherwise). A system toolkit is taken when it
fits ($CUDA_HOME, $CUDA_PATH, nvcc on PATH, /usr/local/cuda*). Otherwise ``--install`` pip-installs
NVIDIA's compiler wheels of torch's CUDA version into the running venv (CUDA 13: ``cuda-toolkit[nvcc,cccl]``,
which lays out ``site-packages/nvidia/cu13`` as a CUDA_HOME; CUDA 12: ``nvidia-cuda-nvcc-cu12`` and
friends, one folder per wheel, gathered into ``<venv>/cuda-home`` with links) and uses that.
The last line printed is ``CUDA_HOME=<path>``.
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from importlib import metadata
from typing import Dict, List, Optional, Sequence, Tuple

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SWIN_T_CONFIG = osp.join(REPO, 'configs', '_base_', 'models', 'soc_swin-t.py')
TINY_CONFIG = osp.join(REPO, 'configs', 'soc', 'soc_tiny_synthetic.py')
TEXT_ENCODER = osp.join(REPO, 'tests', 'data', 'soc_reference', 'common', 'text_encoder')


class CheckFailed(RuntimeError):
    """A check whose message says what failed (printed without a traceback)."""


def result(**values) -> None:
    """One ``RESULT key=value ...`` line for gpu_check.sh's summary."""
    print('RESULT ' + ' '.join(f'{k}={v}' for k, v in values.items()), flush=True)


# ---------------------------------------------------------------------------------- cuda-home
def nvcc_release(nvcc: str) -> Optional[str]:
    """``'13.0'`` from ``nvcc --version``; None when it does not run."""
    try:
        out = subprocess.run([nvcc, '--version'], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'release (\d+)\.(\d+)', out)
    return f'{match[1]}.{match[2]}' if match else None


def system_cuda_homes() -> List[Tuple[str, str]]:
    """Candidate system toolkits, ``(path, where it was found)``, in the order torch looks."""
    homes = [(os.environ[var], f'${var}') for var in ('CUDA_HOME', 'CUDA_PATH') if os.environ.get(var)]
    nvcc = shutil.which('nvcc')
    if nvcc:
        homes.append((osp.dirname(osp.dirname(osp.realpath(nvcc))), 'nvcc on PATH'))
    homes += [(path, 'standard location') for path in sorted(glob.glob('/usr/local/cuda*'), reverse=True)]
    seen, unique = set(), []
    for path, where in homes:
        if osp.realpath(path) not in seen:
            seen.add(osp.realpath(path))
            unique.append((path, where))
    return unique


def pip_toolkit_requirements(torch_cuda: str, torch_requires: Sequence[str]) -> List[str]:
    """NVIDIA's pip wheels with ``nvcc`` (and the headers mmcv needs) of torch's CUDA version.

    Args:
        torch_cuda (str): ``torch.version.cuda``, e.g. ``'13.0'``.
        torch_requires (list[str]): torch's requirements (``importlib.metadata.requires('torch')``);
            an exact ``cuda-toolkit==X`` pin there is followed.
    """
    major, minor = torch_cuda.split('.')[:2]
    if int(major) >= 13:
        version = f'{major}.{minor}.*'
        for req in torch_requires:
            match = re.match(r'cuda-toolkit(\[[^\]]*\])?\s*==\s*([0-9][^;,\s]*)', req.strip())
            if match:
                version = match[2]
        return [f'cuda-toolkit[nvcc,cccl]=={version}']
    return [f'nvidia-cuda-nvcc-cu{major}=={major}.{minor}.*', f'nvidia-cuda-cccl-cu{major}=={major}.{minor}.*',
            f'nvidia-cuda-runtime-cu{major}=={major}.{minor}.*']


def _link(src: str, dst: str) -> None:
    if not osp.lexists(dst):
        os.symlink(src, dst)


def _ensure_unversioned_cudart(lib_dir: str) -> None:
    """``libcudart.so`` -> ``libcudart.so.<major>`` (the wheels ship only the versioned name; the
    extension links with ``-lcudart``)."""
    versioned = sorted(glob.glob(osp.join(lib_dir, 'libcudart.so.*')))
    target = osp.join(lib_dir, 'libcudart.so')
    if versioned and not osp.lexists(target):
        os.symlink(osp.basename(versioned[0]), target)


def pip_cuda_home(site_packages: str, major: int, merged_dir: str) -> Optional[str]:
    """A CUDA_HOME made of NVIDIA's pip wheels under ``site_packages/nvidia``; None when no wheel
    ``nvcc`` is there.

    CUDA >= 13 wheels share one tree (``nvidia/cu13/{bin,include,lib,nvvm}``): that tree is the home.
    CUDA 12 wheels have one folder each (``nvidia/cuda_nvcc``, ``nvidia/cuda_runtime``, ``nvidia/cublas``,
    ...): ``merged_dir`` gets ``bin/`` (``nvcc`` and ``nvcc.profile`` copied, so that the profile's
    ``$(_HERE_)/..`` is ``merged_dir``; the other tools linked), ``nvvm`` and the union of the wheels'
    ``include/`` and ``lib/`` entries, linked.
    """
    root = osp.join(site_packages, 'nvidia')
    unified = osp.join(root, f'cu{major}')
    if osp.isfile(osp.join(unified, 'bin', 'nvcc')):
        _ensure_unversioned_cudart(osp.join(unified, 'lib'))
        return unified
    nvcc_pkg = osp.join(root, 'cuda_nvcc')
    if not osp.isfile(osp.join(nvcc_pkg, 'bin', 'nvcc')):
        return None
    if osp.isdir(merged_dir):
        shutil.rmtree(merged_dir)
    for sub in ('bin', 'include', 'lib'):
        os.makedirs(osp.join(merged_dir, sub))
    for name in sorted(os.listdir(osp.join(nvcc_pkg, 'bin'))):
        src = osp.join(nvcc_pkg, 'bin', name)
        if name in ('nvcc', 'nvcc.profile'):
            shutil.copy2(src, osp.join(merged_dir, 'bin', name))
        else:
            _link(src, osp.join(merged_dir, 'bin', name))
    if osp.isdir(osp.join(nvcc_pkg, 'nvvm')):
        _link(osp.join(nvcc_pkg, 'nvvm'), osp.join(merged_dir, 'nvvm'))
    # the runtime's and the compiler's headers first (cuda_runtime.h, crt/), then every other wheel's
    packages = ['cuda_runtime', 'cuda_nvcc'] + sorted(set(os.listdir(root)) - {'cuda_runtime', 'cuda_nvcc'})
    for package in packages:
        for sub in ('include', 'lib'):
            folder = osp.join(root, package, sub)
            if osp.isdir(folder):
                for name in sorted(os.listdir(folder)):
                    _link(osp.join(folder, name), osp.join(merged_dir, sub, name))
    _ensure_unversioned_cudart(osp.join(merged_dir, 'lib'))
    return merged_dir


def cuda_home(args) -> None:
    import torch
    torch_cuda = torch.version.cuda
    if not torch_cuda:
        raise CheckFailed(f'torch {torch.__version__} is a CPU build: no CUDA version for nvcc to match')
    major = int(torch_cuda.split('.')[0])
    print(f'torch {torch.__version__} was built with CUDA {torch_cuda}: nvcc must be CUDA {major}.x '
          f'(torch.utils.cpp_extension refuses another major version)')
    rejected = []
    for path, where in system_cuda_homes():
        nvcc = osp.join(path, 'bin', 'nvcc')
        release = nvcc_release(nvcc) if osp.isfile(nvcc) else None
        if release is None:
            rejected.append(f'{path} ({where}): no working bin/nvcc')
        elif not osp.isfile(osp.join(path, 'include', 'cuda_runtime.h')):
            rejected.append(f'{path} ({where}): nvcc {release} but no include/cuda_runtime.h (a wrapper script?)')
        elif int(release.split('.')[0]) != major:
            rejected.append(f'{path} ({where}): nvcc {release}, not CUDA {major}')
        else:
            print(f'system toolkit {path} ({where}): nvcc {release}')
            result(nvcc=release, cuda_home=path, source='system')
            print(f'CUDA_HOME={path}')
            return
    print('no system CUDA toolkit fits' + (':\n  ' + '\n  '.join(rejected) if rejected else
                                           ' (no nvcc on PATH, no $CUDA_HOME, nothing under /usr/local/cuda*)'))
    site = sysconfig.get_paths()['purelib']
    merged = osp.join(sys.prefix, 'cuda-home')
    home = pip_cuda_home(site, major, merged)
    if home is None:
        requirements = pip_toolkit_requirements(torch_cuda, metadata.requires('torch') or [])
        if not args.install:
            raise CheckFailed(f'no nvcc for CUDA {major}: install a CUDA {torch_cuda} toolkit and set CUDA_HOME, '
                              f'or pip install {" ".join(requirements)} (--install does)')
        cmd = [sys.executable, '-m', 'pip', 'install', '-q']
        for constraint in args.constraint:
            cmd += ['-c', constraint]
        cmd += requirements
        print(f'installing NVIDIA\'s compiler wheels: {" ".join(cmd)}', flush=True)
        if subprocess.run(cmd).returncode != 0:
            raise CheckFailed(f'pip could not install {" ".join(requirements)}: install a CUDA {torch_cuda} '
                              'toolkit (e.g. NVIDIA\'s cuda-toolkit package) and set CUDA_HOME')
        home = pip_cuda_home(site, major, merged)
        if home is None:
            raise CheckFailed(f'{" ".join(requirements)} installed, but no nvcc under {site}/nvidia')
    release = nvcc_release(osp.join(home, 'bin', 'nvcc'))
    if release is None or int(release.split('.')[0]) != major:
        raise CheckFailed(f'{home}/bin/nvcc does not run or is not CUDA {major} (nvcc --version: {release})')
    print(f'pip toolkit {home}: nvcc {release}')
    result(nvcc=release, cuda_home=home, source='pip')
    print(f'CUDA_HOME={home}')


# ---------------------------------------------------------------------------------- stack
def msda_inputs(device: str, dtype, seed: int = 0) -> Dict:
    """Random inputs of mmcv's multi-scale deformable attention: value [bs, keys, heads, dims],
    shapes [levels, 2], level starts [levels], sampling locations [bs, queries, heads, levels, points, 2]
    in [0, 1] (a few outside, to test the border), attention weights [bs, queries, heads, levels, points]."""
    import torch
    g = torch.Generator().manual_seed(seed)
    shapes = torch.tensor([[24, 40], [12, 20], [6, 10], [3, 5]])
    starts = torch.cat([shapes.new_zeros(1), (shapes[:, 0] * shapes[:, 1]).cumsum(0)[:-1]])
    bs, heads, dims, queries, levels, points = 2, 8, 32, 50, 4, 4
    keys = int((shapes[:, 0] * shapes[:, 1]).sum())
    value = torch.randn(bs, keys, heads, dims, generator=g, dtype=torch.float64)
    locs = torch.rand(bs, queries, heads, levels, points, 2, generator=g, dtype=torch.float64) * 1.1 - 0.05
    weights = torch.rand(bs, queries, heads, levels, points, generator=g, dtype=torch.float64)
    weights = weights / weights.sum((-1, -2), keepdim=True)
    move = dict(device=device)
    return dict(value=value.to(dtype=dtype, **move), shapes=shapes.to(**move), starts=starts.to(**move),
                locs=locs.to(dtype=dtype, **move), weights=weights.to(dtype=dtype, **move))


def check_mmcv_cuda_msda() -> Dict[str, float]:
    """mmcv's CUDA MSDA kernel (forward and backward) against mmcv's PyTorch implementation in float64,
    and its float32 / float16 forwards against the float64 one."""
    import torch
    from mmcv.ops.multi_scale_deform_attn import (MultiScaleDeformableAttnFunction,
                                                  multi_scale_deformable_attn_pytorch)
    out = {}
    x = msda_inputs('cuda', torch.float64)
    for name in ('value', 'locs', 'weights'):
        x[name].requires_grad_(True)
    kernel = MultiScaleDeformableAttnFunction.apply(x['value'], x['shapes'], x['starts'], x['locs'], x['weights'], 64)
    reference = multi_scale_deformable_attn_pytorch(x['value'], x['shapes'], x['locs'], x['weights'])
    out['fwd_f64'] = (kernel - reference).abs().max().item()
    grad = torch.randn_like(kernel)
    grads_kernel = torch.autograd.grad(kernel, [x['value'], x['locs'], x['weights']], grad)
    grads_reference = torch.autograd.grad(reference, [x['value'], x['locs'], x['weights']], grad)
    out['bwd_f64_rel'] = max(((a - b).abs().max() / b.abs().max().clamp(min=1e-12)).item()
                             for a, b in zip(grads_kernel, grads_reference))
    expected = reference.detach()
    for dtype, key in ((torch.float32, 'fwd_f32'), (torch.float16, 'fwd_f16')):
        y = msda_inputs('cuda', dtype)
        got = MultiScaleDeformableAttnFunction.apply(y['value'], y['shapes'], y['starts'], y['locs'], y['weights'], 64)
        out[key] = (got.double() - expected).abs().max().item()
    # float64: the same arithmetic, to rounding; float16: value, locations and weights rounded to 11 bits
    # and the kernel accumulates in half (mmcv's own tests use atol 1e-3 / rtol 1e-2 for float32)
    limits = dict(fwd_f64=1e-10, bwd_f64_rel=1e-6, fwd_f32=1e-4, fwd_f16=5e-2)
    bad = [f'{k} {out[k]:.2e} > {limits[k]:.0e}' for k in limits if not out[k] <= limits[k]]
    if bad:
        raise CheckFailed('mmcv CUDA MSDA differs from mmcv\'s PyTorch implementation: ' + ', '.join(bad))
    return out


def stack(args) -> None:
    import torch
    print(f'python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN '
          f'{torch.backends.cudnn.version()}), CUDA available: {torch.cuda.is_available()}')
    if not torch.cuda.is_available():
        raise CheckFailed(f'torch {torch.__version__} sees no GPU (torch.cuda.is_available() is False)')
    props = torch.cuda.get_device_properties(0)
    print(f'GPU 0: {props.name}, compute capability {props.major}.{props.minor}, '
          f'{props.total_memory / 2**30:.0f} GiB; torch arch list {torch.cuda.get_arch_list()}')
    import mmcv
    import mmdet
    import mmengine
    from mmcv.ops import get_compiler_version, get_compiling_cuda_version
    from mmcv.ops import multi_scale_deform_attn as msda
    compiled = get_compiling_cuda_version()
    print(f'mmengine {mmengine.__version__}, mmcv {mmcv.__version__} (ops compiled with CUDA {compiled}, '
          f'{get_compiler_version()}), mmdet {mmdet.__version__}')
    if compiled == 'not available':
        raise CheckFailed('mmcv was built without CUDA ops (get_compiling_cuda_version() = "not available")')
    print(f'mmcv CUDA MSDA op: {msda.ext_module.__name__}.ms_deform_attn_forward / ms_deform_attn_backward')
    import soc_mm  # noqa: F401  (compat shims, registries)
    diffs = check_mmcv_cuda_msda()
    print('mmcv CUDA MSDA vs mmcv PyTorch MSDA: ' + ', '.join(f'{k} {v:.1e}' for k, v in diffs.items()))
    result(gpu=props.name.replace(' ', '_'), cap=f'{props.major}.{props.minor}', torch=torch.__version__,
           mmcv_cuda=compiled, msda_fwd_f32=f'{diffs["fwd_f32"]:.1e}', msda_bwd_rel=f'{diffs["bwd_f64_rel"]:.1e}')


# ---------------------------------------------------------------------------------- train
def run_logged(cmd: List[str], log_path: str, env: Optional[Dict[str, str]] = None) -> None:
    """Run ``cmd`` from the repo root into ``log_path``; raise with the log's tail on failure."""
    print('$ ' + ' '.join(cmd), flush=True)
    with open(log_path, 'w') as log:
        code = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    if code:
        with open(log_path) as f:
            tail = ''.join(f.readlines()[-30:])
        raise CheckFailed(f'exit {code}: {" ".join(cmd)}\n--- last lines of {log_path}:\n{tail}')


def read_train_losses(work_dir: str) -> List[Tuple[int, float]]:
    """``(iteration, loss)`` of every logged iteration in MMEngine's ``<work_dir>/<timestamp>/vis_data/scalars.json``
    (the newest run)."""
    runs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not runs:
        raise CheckFailed(f'no {work_dir}/<timestamp>/vis_data/scalars.json (did tools/train.py log anything?)')
    losses = []
    with open(runs[-1]) as f:
        for line in f:
            record = json.loads(line)
            if 'loss' in record and 'iter' in record:
                losses.append((int(record['iter']), float(record['loss'])))
    return losses


def check_losses(losses: List[Tuple[int, float]], steps: int, window: int = 5) -> Tuple[float, float]:
    """All ``steps`` iterations logged with a finite loss, and the mean of the last ``window`` below the
    mean of the first ``window``. Returns the two means."""
    iters = [i for i, _ in losses]
    if iters != list(range(1, steps + 1)):
        raise CheckFailed(f'expected the loss of iterations 1..{steps} in scalars.json, got iterations {iters}')
    values = [v for _, v in losses]
    bad = [(i, v) for i, v in losses if not math.isfinite(v)]
    if bad:
        raise CheckFailed(f'non-finite training losses at (iteration, loss) {bad}')
    first, last = sum(values[:window]) / window, sum(values[-window:]) / window
    if not last < first:
        raise CheckFailed(f'the loss does not fall: mean of the first {window} iterations {first:.4f}, of the '
                          f'last {window} {last:.4f} (losses {["%.3f" % v for v in values]})')
    return first, last


def prepare_tiny_data(data_root: str, num_train: int, log_dir: str) -> str:
    """Synthetic Ref-YouTube-VOS data and a tiny text encoder, as ``make demo`` makes them (kept when
    already there). Returns the text encoder folder."""
    text_encoder = osp.join(data_root, 'tiny_roberta')
    if not osp.isfile(osp.join(data_root, 'meta_expressions', 'train', 'meta_expressions.json')):
        run_logged([sys.executable, 'tools/dataset_converters/generate_synthetic_rvos.py', 'ref_youtube_vos',
                    data_root, '--num-train', str(num_train), '--num-valid', '1', '--num-test', '1',
                    '--num-frames', '8', '--size', '96', '96', '--seed', '0'], osp.join(log_dir, 'generate.log'))
    if not osp.isdir(text_encoder):
        run_logged([sys.executable, 'tools/misc/make_tiny_text_encoder.py',
                    osp.join(data_root, 'meta_expressions', 'train', 'meta_expressions.json'),
                    '--out', text_encoder], osp.join(log_dir, 'text_encoder.log'))
    return text_encoder


def schedule_overrides(steps: int) -> List[str]:
    """``make demo``'s warm-up + cosine schedule for ``steps`` iterations (tools/demo/run_demo.py)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('run_demo', osp.join(REPO, 'tools', 'demo', 'run_demo.py'))
    run_demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_demo)
    return run_demo.schedule_overrides(steps)


def train(args) -> None:
    work_dir = osp.abspath(args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    data_root = osp.join(work_dir, 'data')
    t0 = time.perf_counter()
    text_encoder = prepare_tiny_data(data_root, args.num_train, work_dir)
    print(f'data and tiny text encoder: {time.perf_counter() - t0:.1f} s', flush=True)
    train_dir = osp.join(work_dir, f'train_{args.amp_dtype}')
    if osp.isdir(train_dir):
        shutil.rmtree(train_dir)
    cmd = [sys.executable, 'tools/train.py', args.config, '--work-dir', train_dir]
    if args.amp_dtype != 'none':
        cmd.append('--amp')  # MMEngine's AmpOptimWrapper, dynamic loss scale
    cmd += ['--cfg-options', f'train_dataloader.dataset.data_root={data_root}/',
            f'test_dataloader.dataset.data_root={data_root}/', f'model.text_encoder.model_path={text_encoder}',
            # every iteration's own loss (no smoothing window) reaches scalars.json
            'default_hooks.logger.interval=1', 'log_processor.window_size=1',
            *schedule_overrides(args.steps)]
    if args.amp_dtype == 'bfloat16':
        cmd.append('optim_wrapper.dtype=bfloat16')
    t0 = time.perf_counter()
    run_logged(cmd, osp.join(work_dir, f'train_{args.amp_dtype}.log'), env=dict(os.environ, PYTHONUNBUFFERED='1'))
    seconds = time.perf_counter() - t0
    losses = read_train_losses(train_dir)
    print('losses: ' + ' '.join(f'{v:.3f}' for _, v in losses))
    first, last = check_losses(losses, args.steps)
    print(f'{args.steps} steps ({args.amp_dtype}) in {seconds:.1f} s incl. start-up: mean loss of the first 5 '
          f'{first:.3f} > of the last 5 {last:.3f}')
    result(steps=args.steps, amp=args.amp_dtype, loss_first5=f'{first:.3f}', loss_last5=f'{last:.3f}',
           train_s=f'{seconds:.1f}')


# ---------------------------------------------------------------------------------- bench
def synthetic_batch(model, frames: int, size: Tuple[int, int], batch: int, with_targets: bool, seed: int = 0):
    """``batch`` random clips [T, 3, H, W] through the data preprocessor; with targets, each clip has one
    referred object (an ellipse moving right): masks [1, T, H, W], boxes [1, T, 4] (cx, cy, w, h in [0, 1])."""
    import torch
    from mmengine.structures import InstanceData
    from soc_mm.structures import RVOSDataSample
    g = torch.Generator().manual_seed(seed)
    h, w = size
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing='ij')
    clips, samples = [], []
    for _ in range(batch):
        clips.append(torch.randint(0, 256, (frames, 3, h, w), dtype=torch.uint8, generator=g))
        sample = RVOSDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), ref_inst_idx=0,
                                              expression='the person riding a bike on the left',
                                              frame_ids=[str(t) for t in range(frames)]))
        if with_targets:
            cx = [w * (0.3 + 0.4 * t / max(1, frames - 1)) for t in range(frames)]
            masks = torch.stack([((yy - h / 2) / (h * 0.2))**2 + ((xx - c) / (w * 0.12))**2 <= 1 for c in cx])[None]
            boxes = torch.tensor([[[c / w, 0.5, 0.24, 0.4] for c in cx]])
            sample.gt_instances = InstanceData(masks=masks, boxes=boxes, labels=torch.zeros(1, dtype=torch.long),
                                               visible=torch.ones(1, frames, dtype=torch.bool))
        samples.append(sample)
    data = model.data_preprocessor(dict(inputs=clips, data_samples=samples), with_targets)
    return data['inputs'], data['data_samples']


def timed(fn, repeat: int, device: str, warmup: int = 2) -> Tuple[float, float]:
    """Median seconds of ``fn()`` over ``repeat`` runs after ``warmup`` runs, and the peak CUDA memory
    in GiB of the timed runs (nan on the CPU)."""
    import torch
    cuda = device.startswith('cuda')
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2], torch.cuda.max_memory_allocated() / 2**30 if cuda else float('nan')


def bench(args) -> None:
    import torch
    from soc_mm.apis import init_model
    device, device_type = args.device, args.device.split(':')[0]
    if device_type == 'cuda' and not torch.cuda.is_available():
        raise CheckFailed('bench --device cuda: CUDA is not available (torch.cuda.is_available() is False)')
    import logging
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # not the per-parameter init table
    logging.getLogger('transformers').setLevel(logging.ERROR)
    model = init_model(args.config, None, device, {'model.text_encoder.model_path': args.text_encoder,
                                                   'model.backbone.init_cfg': None})
    T, (H, W) = args.frames, args.size
    print(f'{osp.relpath(args.config, REPO)} on {device}, {args.batch} clip(s) of {T} frames at {H}x{W}, median '
          f'of {args.repeat} runs after 2 warm-up runs; TF32 as torch defaults (matmul '
          f'{torch.backends.cuda.matmul.allow_tf32}, cuDNN {torch.backends.cudnn.allow_tf32})')
    inputs, samples = synthetic_batch(model, T, (H, W), args.batch, with_targets=False)
    rows, failures = [], []
    precisions = [('fp32', None), ('amp fp16', torch.float16), ('amp bf16', torch.bfloat16)]
    model.eval()
    for name, dtype in precisions:
        def forward():
            with torch.no_grad(), torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
                out = model(inputs, samples, mode='tensor')
            return out
        try:
            outs = forward()
            finite = all(bool(torch.isfinite(v).all()) for v in outs.values() if torch.is_tensor(v))
            seconds, peak = timed(forward, args.repeat, device)
            rows.append((f'eval forward, {name}', seconds, peak, 'finite' if finite else 'NON-FINITE'))
            if not finite:
                failures.append(f'eval forward {name}: non-finite outputs')
        except RuntimeError as err:  # e.g. a kernel without this dtype
            rows.append((f'eval forward, {name}', float('nan'), float('nan'), f'error: {str(err).splitlines()[0]}'))
            if dtype is not torch.bfloat16:
                failures.append(f'eval forward {name}: {err}')
    inputs, samples = synthetic_batch(model, T, (H, W), args.batch, with_targets=True)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    for name, dtype in precisions[:2]:
        optim = torch.optim.AdamW(params, lr=1e-5, weight_decay=1e-4)
        scaler = torch.amp.GradScaler(device_type, enabled=dtype is torch.float16)
        losses = []

        def train_step():
            with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
                loss, _ = model.parse_losses(model(inputs, samples, mode='loss'))
            optim.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optim)
            torch.nn.utils.clip_grad_norm_(params, 0.1)
            scaler.step(optim)
            scaler.update()
            losses.append(float(loss.detach()))
        try:
            seconds, peak = timed(train_step, args.repeat, device)
            finite = all(math.isfinite(v) for v in losses)
            rows.append((f'train step, {name}', seconds, peak, f'loss {losses[0]:.3f} -> {losses[-1]:.3f}'))
            if not finite:
                failures.append(f'train step {name}: non-finite losses {losses}')
        except RuntimeError as err:
            rows.append((f'train step, {name}', float('nan'), float('nan'), f'error: {str(err).splitlines()[0]}'))
            failures.append(f'train step {name}: {err}')
    print('| run | ms | clips/s | peak GiB | note |\n|---|---|---|---|---|')
    for name, seconds, peak, note in rows:
        print(f'| {name} | {seconds * 1e3:.1f} | {args.batch / seconds:.2f} | {peak:.1f} | {note} |')
    values = {name: seconds for name, seconds, _, _ in rows}
    speed = {}
    for mode in ('eval forward', 'train step'):
        fp32, fp16 = values.get(f'{mode}, fp32'), values.get(f'{mode}, amp fp16')
        if fp32 and fp16 and math.isfinite(fp32) and math.isfinite(fp16):
            speed[mode] = fp32 / fp16
            print(f'{mode}: AMP fp16 {fp32 / fp16:.2f}x the speed of fp32')
    result(eval_fp32_ms=f'{values.get("eval forward, fp32", float("nan")) * 1e3:.1f}',
           eval_fp16_ms=f'{values.get("eval forward, amp fp16", float("nan")) * 1e3:.1f}',
           train_fp32_ms=f'{values.get("train step, fp32", float("nan")) * 1e3:.1f}',
           train_fp16_ms=f'{values.get("train step, amp fp16", float("nan")) * 1e3:.1f}')
    if failures:
        raise CheckFailed('; '.join(failures))


# ---------------------------------------------------------------------------------- main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('cuda-home', help='find (or pip-install) an nvcc of torch\'s CUDA major version')
    p.add_argument('--install', action='store_true', help='pip-install NVIDIA\'s nvcc wheels when none fits')
    p.add_argument('--constraint', '-c', action='append', default=[], help='pip constraint file(s)')
    sub.add_parser('stack', help='versions, GPU, mmcv CUDA ops; mmcv CUDA MSDA vs its PyTorch implementation')
    p = sub.add_parser('train', help='AMP training steps of the tiny SOC through tools/train.py')
    p.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'gpu_check', 'train'))
    p.add_argument('--config', default=TINY_CONFIG)
    p.add_argument('--steps', type=int, default=20, help='training iterations (>= 10)')
    p.add_argument('--num-train', type=int, default=16, help='synthetic train videos')
    p.add_argument('--amp-dtype', choices=['float16', 'bfloat16', 'none'], default='float16',
                   help="AmpOptimWrapper's autocast dtype; none = fp32 OptimWrapper (e.g. on a CPU)")
    p = sub.add_parser('bench', help='fp32 / AMP eval forward and train step of the Swin-T SOC')
    p.add_argument('--config', default=SWIN_T_CONFIG)
    p.add_argument('--text-encoder', default=TEXT_ENCODER)
    p.add_argument('--frames', type=int, default=8)
    p.add_argument('--size', type=int, nargs=2, default=(360, 640), metavar=('H', 'W'))
    p.add_argument('--batch', type=int, default=1, help='clips per forward / train step')
    p.add_argument('--repeat', type=int, default=5, help='timed runs (median)')
    p.add_argument('--device', default='cuda', help='cuda (default) or cpu (a plumbing check only)')
    args = parser.parse_args(argv)
    if args.command == 'train' and args.steps < 10:
        parser.error(f'train --steps must be >= 10 (the first and last 5 losses are compared), got {args.steps}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        {'cuda-home': cuda_home, 'stack': stack, 'train': train, 'bench': bench}[args.command](args)
    except CheckFailed as err:
        print(f'gpu_check.py {args.command}: FAILED: {err}', file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
