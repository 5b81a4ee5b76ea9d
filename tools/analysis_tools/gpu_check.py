"""Helpers of ``tools/analysis_tools/gpu_check.sh``, the one-command GPU check of the SOC stack.

    python tools/analysis_tools/gpu_check.py cuda-home [--install]  # a CUDA_HOME whose nvcc fits torch
    python tools/analysis_tools/gpu_check.py stack                   # torch / mmcv ops; mmcv's CUDA MSDA
    python tools/analysis_tools/gpu_check.py train [--steps 20]      # AMP training steps, tools/train.py --amp
    python tools/analysis_tools/gpu_check.py bench                   # Swin-T SOC, fp32 vs AMP, eval and train

Every sub-command prints ``RESULT key=value`` lines (the key numbers of gpu_check.sh's summary) and
exits non-zero naming the check that failed.

``cuda-home`` (``soc_mm/utils/cuda_toolkit.py``): mmcv's CUDA ops are compiled by the ``nvcc`` of
``CUDA_HOME``, whose CUDA major version must equal torch's. A system toolkit is taken when it fits;
otherwise ``--install`` pip-installs NVIDIA's compiler wheels of torch's CUDA version into the running
venv and uses that. The last line printed is ``CUDA_HOME=<path>``. ``stack``, ``train`` and ``bench`` are
``soc_mm.testing.gpu_check``'s checks.
"""
import argparse
import importlib.util
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SWIN_T_CONFIG = osp.join(REPO, 'configs', '_base_', 'models', 'soc_swin-t.py')
TINY_CONFIG = osp.join(REPO, 'configs', 'soc', 'soc_tiny_synthetic.py')
TEXT_ENCODER = osp.join(REPO, 'tests', 'data', 'soc_reference', 'common', 'text_encoder')


def cuda_toolkit_module():
    """``soc_mm/utils/cuda_toolkit.py`` loaded by its path: ``cuda-home`` runs before mmcv is built and
    ``soc_mm`` installed (gpu_check.sh step 1d), and importing the ``soc_mm`` package needs both."""
    spec = importlib.util.spec_from_file_location('soc_mm_cuda_toolkit',
                                                  osp.join(REPO, 'soc_mm', 'utils', 'cuda_toolkit.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def cuda_home(args, toolkit) -> None:
    import torch
    home, release, source = toolkit.find_cuda_home(torch.version.cuda, args.install, args.constraint)
    print(f'RESULT nvcc={release} cuda_home={home} source={source}')
    print(f'CUDA_HOME={home}', flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.command == 'cuda-home':
        toolkit = cuda_toolkit_module()
        try:
            cuda_home(args, toolkit)
        except toolkit.CudaToolkitError as err:
            print(f'gpu_check.py {args.command}: FAILED: {err}', file=sys.stderr, flush=True)
            return 1
        return 0
    from soc_mm.testing import gpu_check
    try:
        if args.command == 'stack':
            gpu_check.check_stack()
        elif args.command == 'train':
            gpu_check.check_training(REPO, args.work_dir, args.config, args.steps, args.num_train, args.amp_dtype)
        else:
            gpu_check.bench(args.config, args.text_encoder, args.frames, tuple(args.size),
                            args.batch, args.repeat, args.device)
    except gpu_check.CheckFailed as err:
        print(f'gpu_check.py {args.command}: FAILED: {err}', file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
