"""Train a model with an soc_mm config (``--launcher pytorch`` under torchrun for DDP).

Works on GPUs (NCCL) and on CPU-only machines (gloo): see
``soc_mm.utils.setup_env.init_cpu_distributed`` and
``soc_mm.engine.RVOSDistributedDataParallel``.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from soc_mm.engine import ResumeCheckpointError, resolve_resume_checkpoint
from soc_mm.engine.resume import enforce_strict_resume
from soc_mm.utils import (CheckpointFormatError, UnsafeCheckpointError, init_cpu_distributed,
                          install_safe_checkpoint_loading, keep_freed_memory_for_reuse, safe_load_local,
                          shutdown_distributed)
from soc_mm.registry import register_all_modules
from soc_mm.utils.checkpoint import CheckpointMismatchError
from soc_mm.utils.cli import (ConfigOptionError, UsageError, add_cfg_options_argument, check_amp_device,
                              check_launcher_env, check_output_dir, check_train_length, load_config,
                              merge_cfg_options)

#: errors whose message says everything (printed without a traceback)
USER_ERRORS = (CheckpointFormatError, UnsafeCheckpointError, ConfigOptionError, ResumeCheckpointError,
               FileNotFoundError, UsageError, CheckpointMismatchError)


def parse_args():
    parser = argparse.ArgumentParser(description='Train an SOC model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic-mixed-precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the actual batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the given checkpoint, or from the latest '
                        'checkpoint in the work dir when no path is given')
    add_cfg_options_argument(parser)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def setup_cfg(args) -> Config:
    """Load the config and apply the command-line overrides."""
    cfg = load_config(args.config)
    cfg.launcher = args.launcher
    merge_cfg_options(cfg, args.cfg_options)
    check_train_length(cfg)  # max_iters=0 would exit 0 with an untrained model
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    check_output_dir(cfg.work_dir, '--work-dir' if args.work_dir is not None else 'work_dir')
    if args.amp:
        check_amp_device()
        optim_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_type == 'AmpOptimWrapper':
            print('AMP is already enabled in the config.')
        elif optim_type != 'OptimWrapper':
            raise UsageError(f'--amp needs optim_wrapper.type OptimWrapper, got {optim_type}')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise UsageError('--auto-scale-lr needs `auto_scale_lr.base_batch_size` in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    # A DDP wrapper that also works on CPU (gloo); users may override it in the config.
    cfg.setdefault('model_wrapper_cfg', dict(type='soc_mm.RVOSDistributedDataParallel'))
    return cfg


def main():
    args = parse_args()
    check_launcher_env(args.launcher)  # before anything slow: the variables torchrun sets
    register_all_modules(init_default_scope=False)
    install_safe_checkpoint_loading()  # every checkpoint MMEngine loads here goes through safe_load_local
    keep_freed_memory_for_reuse()  # large CPU tensors reuse freed heap blocks (utils/cpu_allocator.py)
    cfg = setup_cfg(args)
    if cfg.get('load_from') and not cfg.get('resume'):
        safe_load_local(cfg.load_from, map_location='cpu')  # a bad file fails now, naming itself
    # --resume: the newest complete checkpoint (damaged ones are skipped and reported)
    resume_from = resolve_resume_checkpoint(cfg)
    init_cpu_distributed(args.launcher)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    enforce_strict_resume(runner, resume_from)  # missing/unexpected keys, NaN weights: an error naming them
    runner.train()
    shutdown_distributed()


if __name__ == '__main__':
    try:
        main()
    except USER_ERRORS as error:
        sys.exit(f'tools/train.py: error: {error}')
