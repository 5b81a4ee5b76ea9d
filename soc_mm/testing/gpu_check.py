"""The checks of ``tools/analysis_tools/gpu_check.py`` (the helper of ``gpu_check.sh``, the one-command GPU
check of the SOC stack): mmcv's CUDA multi-scale deformable attention against its PyTorch implementation,
AMP training steps through ``tools/train.py`` with a falling loss, and fp32 / AMP eval and training speed.

Each check prints what it measures and a ``RESULT key=value ...`` line (the key numbers of
``gpu_check.sh``'s summary), and raises :class:`CheckFailed` naming what failed.
"""
import glob
import json
import math
import os
import os.path as osp
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

from soc_mm.apis.demo_runner import schedule_overrides
from .benchmark import quiet_logs
from .synthetic_batch import synthetic_batch


class CheckFailed(RuntimeError):
    """A check whose message says what failed (printed without a traceback)."""


def result(**values) -> None:
    """One ``RESULT key=value ...`` line for gpu_check.sh's summary."""
    print('RESULT ' + ' '.join(f'{k}={v}' for k, v in values.items()), flush=True)


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


def check_stack() -> None:
    """Versions, the GPU, mmcv's CUDA ops and ``check_mmcv_cuda_msda``; a ``RESULT`` line."""
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
def run_logged(cmd: List[str], log_path: str, repo: str, env: Optional[Dict[str, str]] = None) -> None:
    """Run ``cmd`` from ``repo`` into ``log_path``; raise with the log's tail on failure."""
    print('$ ' + ' '.join(cmd), flush=True)
    with open(log_path, 'w') as log:
        code = subprocess.run(cmd, cwd=repo, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
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


def prepare_tiny_data(data_root: str, num_train: int, log_dir: str, repo: str) -> str:
    """Synthetic Ref-YouTube-VOS data and a tiny text encoder, as ``make demo`` makes them (kept when
    already there). Returns the text encoder folder."""
    text_encoder = osp.join(data_root, 'tiny_roberta')
    if not osp.isfile(osp.join(data_root, 'meta_expressions', 'train', 'meta_expressions.json')):
        run_logged([sys.executable, 'tools/dataset_converters/generate_synthetic_rvos.py', 'ref_youtube_vos',
                    data_root, '--num-train', str(num_train), '--num-valid', '1', '--num-test', '1',
                    '--num-frames', '8', '--size', '96', '96', '--seed', '0'], osp.join(log_dir, 'generate.log'), repo)
    if not osp.isdir(text_encoder):
        run_logged([sys.executable, 'tools/misc/make_tiny_text_encoder.py',
                    osp.join(data_root, 'meta_expressions', 'train', 'meta_expressions.json'),
                    '--out', text_encoder], osp.join(log_dir, 'text_encoder.log'), repo)
    return text_encoder


def check_training(repo: str, work_dir: str, config: str, steps: int, num_train: int, amp_dtype: str) -> None:
    """``steps`` training iterations of ``config`` through ``repo``'s ``tools/train.py`` on synthetic data
    (``prepare_tiny_data``), with MMEngine's AmpOptimWrapper (``amp_dtype`` 'float16' / 'bfloat16'; 'none':
    fp32), every iteration's loss logged; ``check_losses`` on them; a ``RESULT`` line."""
    work_dir = osp.abspath(work_dir)
    os.makedirs(work_dir, exist_ok=True)
    data_root = osp.join(work_dir, 'data')
    t0 = time.perf_counter()
    text_encoder = prepare_tiny_data(data_root, num_train, work_dir, repo)
    print(f'data and tiny text encoder: {time.perf_counter() - t0:.1f} s', flush=True)
    train_dir = osp.join(work_dir, f'train_{amp_dtype}')
    if osp.isdir(train_dir):
        shutil.rmtree(train_dir)
    cmd = [sys.executable, 'tools/train.py', config, '--work-dir', train_dir]
    if amp_dtype != 'none':
        cmd.append('--amp')  # MMEngine's AmpOptimWrapper, dynamic loss scale
    cmd += ['--cfg-options', f'train_dataloader.dataset.data_root={data_root}/',
            f'test_dataloader.dataset.data_root={data_root}/', f'model.text_encoder.model_path={text_encoder}',
            # every iteration's own loss (no smoothing window) reaches scalars.json
            'default_hooks.logger.interval=1', 'log_processor.window_size=1',
            *schedule_overrides(steps)]
    if amp_dtype == 'bfloat16':
        cmd.append('optim_wrapper.dtype=bfloat16')
    t0 = time.perf_counter()
    run_logged(cmd, osp.join(work_dir, f'train_{amp_dtype}.log'), repo, env=dict(os.environ, PYTHONUNBUFFERED='1'))
    seconds = time.perf_counter() - t0
    losses = read_train_losses(train_dir)
    print('losses: ' + ' '.join(f'{v:.3f}' for _, v in losses))
    first, last = check_losses(losses, steps)
    print(f'{steps} steps ({amp_dtype}) in {seconds:.1f} s incl. start-up: mean loss of the first 5 '
          f'{first:.3f} > of the last 5 {last:.3f}')
    result(steps=steps, amp=amp_dtype, loss_first5=f'{first:.3f}', loss_last5=f'{last:.3f}',
           train_s=f'{seconds:.1f}')


# ---------------------------------------------------------------------------------- bench
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


def bench(config: str, text_encoder: str, frames: int, size: Tuple[int, int], batch: int, repeat: int,
          device: str = 'cuda') -> None:
    """fp32 / AMP (fp16, bf16) eval forwards and fp32 / AMP fp16 training steps (AdamW, clipping 0.1) of
    ``config``'s model with random weights on ``batch`` synthetic clips of ``frames`` frames at ``size``:
    median times of ``repeat`` runs, peak memory, finite outputs and losses; a table and a ``RESULT`` line."""
    import torch
    from soc_mm.apis import init_model
    device_type = device.split(':')[0]
    if device_type == 'cuda' and not torch.cuda.is_available():
        raise CheckFailed('bench --device cuda: CUDA is not available (torch.cuda.is_available() is False)')
    quiet_logs()
    model = init_model(config, None, device, {'model.text_encoder.model_path': text_encoder,
                                              'model.backbone.init_cfg': None})
    T, (H, W) = frames, size
    print(f'{config} on {device}, {batch} clip(s) of {T} frames at {H}x{W}, median '
          f'of {repeat} runs after 2 warm-up runs; TF32 as torch defaults (matmul '
          f'{torch.backends.cuda.matmul.allow_tf32}, cuDNN {torch.backends.cudnn.allow_tf32})')
    inputs, samples = synthetic_batch(model, T, (H, W), batch)
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
            seconds, peak = timed(forward, repeat, device)
            rows.append((f'eval forward, {name}', seconds, peak, 'finite' if finite else 'NON-FINITE'))
            if not finite:
                failures.append(f'eval forward {name}: non-finite outputs')
        except RuntimeError as err:  # e.g. a kernel without this dtype
            rows.append((f'eval forward, {name}', float('nan'), float('nan'), f'error: {str(err).splitlines()[0]}'))
            if dtype is not torch.bfloat16:
                failures.append(f'eval forward {name}: {err}')
    inputs, samples = synthetic_batch(model, T, (H, W), batch, with_targets=True)
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
            seconds, peak = timed(train_step, repeat, device)
            finite = all(math.isfinite(v) for v in losses)
            rows.append((f'train step, {name}', seconds, peak, f'loss {losses[0]:.3f} -> {losses[-1]:.3f}'))
            if not finite:
                failures.append(f'train step {name}: non-finite losses {losses}')
        except RuntimeError as err:
            rows.append((f'train step, {name}', float('nan'), float('nan'), f'error: {str(err).splitlines()[0]}'))
            failures.append(f'train step {name}: {err}')
    print('| run | ms | clips/s | peak GiB | note |\n|---|---|---|---|---|')
    for name, seconds, peak, note in rows:
        print(f'| {name} | {seconds * 1e3:.1f} | {batch / seconds:.2f} | {peak:.1f} | {note} |')
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
