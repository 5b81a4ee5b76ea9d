"""Check that soc_mm's SOC reproduces the official model on a golden fixture folder.

Usage: python tools/analysis_tools/compare_with_reference.py FIXTURE_DIR [FIXTURE_DIR ...]
       (a folder of fixture folders, such as tests/data/soc_reference, means every fixture in it)

Builds our model from the fixture's config.json (with the fused kernels, the default, and with the
reference kernels: --kernels), converts its official state dict with
our converter, runs eval and train forwards and the loss on inputs.pt, prints the max
|diff| of every output and loss term, and exits non-zero if an output differs by more
than 1e-4 * max(1, max|reference|), a loss term by more than 1e-4 relative, a loss weight
differs from the official coefficient, the matched indices differ, or the fixture's official
configuration holds a setting that soc_mm.official.config cannot translate.

--device cuda runs the model and the inputs on the GPU (the deformable attention is then mmcv's CUDA
kernel, whose calls are counted and printed) and compares with the same CPU golden tensors under the
same tolerances, with TF32 off.
"""
import argparse
import os
import os.path as osp
import sys
from contextlib import contextmanager
from typing import List

import torch


def expand_fixture_dir(path: str) -> List[str]:
    """A FIXTURE_DIR argument -> the fixture folders it names: itself (it has config.json), the
    fixture folders inside it (a folder of fixtures), or none (the shared ``common/`` weights folder
    next to the fixtures, e.g. from a ``*/`` glob). Exits on anything else."""
    if osp.isfile(osp.join(path, 'config.json')):
        return [path]
    is_weights_folder = osp.isfile(osp.join(path, 'official_state_dict.pt'))
    if osp.isdir(path) and not is_weights_folder:
        children = [osp.join(path, d) for d in sorted(os.listdir(path))]
        children = [d for d in children if osp.isfile(osp.join(d, 'config.json'))]
        if children:
            return children
    if is_weights_folder and osp.basename(osp.normpath(path)) == 'common':
        return []
    sys.exit(f'{path}: not a fixture folder (no config.json)')


def check_device(device: str) -> None:
    """Exit with a clear message when ``device`` cannot run here."""
    if device == 'cuda' and not torch.cuda.is_available():
        sys.exit(f'--device cuda: CUDA is not available here (torch {torch.__version__}, built with CUDA '
                 f'{torch.version.cuda or "none"}; {torch.cuda.device_count()} visible GPU(s)). Run it on a '
                 'GPU machine, e.g. through tools/analysis_tools/gpu_check.sh, which builds a CUDA stack.')


def describe_mmcv_cuda_msda() -> str:
    """One line naming mmcv's CUDA deformable-attention op; exits when mmcv has no CUDA ops."""
    import mmcv
    from mmcv.ops import get_compiling_cuda_version
    from mmcv.ops import multi_scale_deform_attn as msda
    cuda = get_compiling_cuda_version()
    if cuda == 'not available' or not hasattr(msda.ext_module, 'ms_deform_attn_forward'):
        sys.exit(f'--device cuda: mmcv {mmcv.__version__} was built without CUDA ops '
                 f'(mmcv.ops.get_compiling_cuda_version() = {cuda!r}); rebuild it with MMCV_WITH_OPS=1 '
                 'FORCE_CUDA=1 (tools/analysis_tools/gpu_check.sh does)')
    return (f'mmcv CUDA MSDA op: {msda.ext_module.__name__}.ms_deform_attn_forward (mmcv ops compiled '
            f'with CUDA {cuda})')


@contextmanager
def count_mmcv_msda_calls():
    """Count calls of mmcv's ``MultiScaleDeformableAttnFunction`` (its CUDA/MLU kernel path) inside the
    block; yields a one-element list holding the count."""
    from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction as Fn
    count, original = [0], Fn.__dict__['forward']

    def forward(*args, **kwargs):
        count[0] += 1
        return original.__func__(*args, **kwargs)

    Fn.forward = staticmethod(forward)
    try:
        yield count
    finally:
        Fn.forward = original


@contextmanager
def full_fp32(device: str):
    """No TF32 on CUDA: cuDNN convolutions use TF32 by default (10-bit mantissa, ~1e-3 relative
    error), ten times the 1e-4 tolerance that the CPU golden tensors are checked with; with full
    fp32 the GPU is held to the same tolerance as the CPU."""
    if device != 'cuda':
        yield
        return
    matmul, conv = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, conv


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('fixture_dirs', nargs='+',
                        help='fixture folder(s) (e.g. tests/data/soc_reference/ytvos_b2_t3_nc1_w0)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads (fixtures: 1)')
    parser.add_argument('--kernels', choices=['fast', 'reference', 'both'], default='both',
                        help="the model's kernels: fused (model.fast_kernels=True, the default path), the "
                             "reference (official) ones, or both (default)")
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu',
                        help='where the model runs (default cpu); the golden tensors are always the CPU ones')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    check_device(args.device)
    import soc_mm  # noqa: F401  (registries)
    from soc_mm.official import OfficialCheckpointError, OfficialConfigError
    from soc_mm.official.reference import compare_fixture

    fixture_dirs = [d for path in args.fixture_dirs for d in expand_fixture_dir(path)]
    failed = []
    kernels = ['fast', 'reference'] if args.kernels == 'both' else [args.kernels]
    if args.device == 'cuda':
        print(describe_mmcv_cuda_msda())
    for fixture_dir in fixture_dirs:
        for kernel in kernels:
            print(f'== {fixture_dir} ({kernel} kernels)')
            print(f'{"quantity":60s} {"max|diff|":>12s} {"tolerance":>12s}  ok')
            try:
                with full_fp32(args.device), count_mmcv_msda_calls() as msda_calls:
                    rows = compare_fixture(fixture_dir, fast_kernels=kernel == 'fast', device=args.device)
            except (OfficialConfigError, OfficialCheckpointError) as err:
                print(f'error: {err}')
                failed.append(f'{fixture_dir}: {err}')
                break
            if args.device == 'cuda':
                print(f'mmcv CUDA MSDA kernel calls: {msda_calls[0]}')
                if not msda_calls[0]:
                    failed.append(f'{fixture_dir} ({kernel} kernels): mmcv CUDA MSDA kernel never called')
            for row in rows:
                print(f'{row.name:60s} {row.max_abs_diff:12.3e} {row.tolerance:12.3e}  '
                      f'{"yes" if row.ok else "NO"}')
                if not row.ok:
                    failed.append(f'{fixture_dir} ({kernel} kernels): {row.name}')
    if failed:
        print('FAILED:\n  ' + '\n  '.join(failed))
        sys.exit(1)
    print('all quantities within tolerance')


if __name__ == '__main__':
    main()
