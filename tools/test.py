"""Test (evaluate) a checkpoint with an soc_mm config (``--launcher pytorch`` for DDP).

The checkpoint is loaded safely (no pickled code runs, ``soc_mm.utils.checkpoint``) and
strictly: a missing, unexpected or shape-mismatched key is an error listing them
(``--non-strict`` loads it anyway, with the mismatches as warnings).
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from soc_mm.utils import (CheckpointFormatError, CheckpointMismatchError, UnsafeCheckpointError,
                          init_cpu_distributed, install_safe_checkpoint_loading, keep_freed_memory_for_reuse,
                          load_checkpoint_to_model, safe_load_local, shutdown_distributed)
from soc_mm.registry import register_all_modules
from soc_mm.utils.cli import (ConfigOptionError, UsageError, add_cfg_options_argument, check_launcher_env,
                              check_output_dir, check_output_file, load_config, merge_cfg_options)

#: errors whose message says everything (printed without a traceback)
USER_ERRORS = (CheckpointFormatError, CheckpointMismatchError, UnsafeCheckpointError, ConfigOptionError,
               FileNotFoundError, UsageError)


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) an SOC model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--out', type=str, help='dump predictions to a pickle file')
    parser.add_argument('--show-dir', help='directory where painted clips are saved '
                        '(enables the VisualizationHook when the config has one)')
    parser.add_argument('--non-strict', action='store_true',
                        help='load a checkpoint that does not fit the model (missing, unexpected or '
                        'mismatched keys become warnings instead of an error)')
    add_cfg_options_argument(parser)
    parser.add_argument('--bf16', action='store_true',
                        help='inference under bfloat16 autocast (model.test_cfg.bf16=True); float32 by default')
    parser.add_argument('--reference-kernels', action='store_true',
                        help="the reference (official) kernels instead of the fused ones (model.fast_kernels=False)")
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(args=None):
    args = args or parse_args()
    register_all_modules(init_default_scope=False)
    install_safe_checkpoint_loading()
    keep_freed_memory_for_reuse()  # large CPU tensors reuse freed heap blocks (utils/cpu_allocator.py)
    # outputs are checked before anything runs: a bad path must not cost a whole evaluation
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise UsageError(f'--out must be a .pkl/.pickle file, got {args.out}')
    check_output_file(args.out, '--out')
    check_output_dir(args.show_dir, '--show-dir')
    check_output_dir(args.work_dir, '--work-dir')
    check_launcher_env(args.launcher)
    cfg = load_config(args.config)
    cfg.launcher = args.launcher
    merge_cfg_options(cfg, args.cfg_options)
    # before building anything: a bad file fails in seconds, naming itself
    checkpoint = safe_load_local(args.checkpoint, map_location='cpu')
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = None  # loaded below, strictly, from the checkpoint read above
    if args.bf16:
        cfg.model.test_cfg = dict(cfg.model.get('test_cfg') or {}, bf16=True)
    if args.reference_kernels:
        cfg.model.fast_kernels = False
    cfg.setdefault('model_wrapper_cfg', dict(type='soc_mm.RVOSDistributedDataParallel'))
    if args.show_dir:
        hooks = cfg.get('default_hooks', {})
        if 'visualization' not in hooks:
            raise RuntimeError('--show-dir needs default_hooks.visualization in the config')
        hooks.visualization.draw = True
        hooks.visualization.test_out_dir = args.show_dir
        if 'default_hooks.visualization.interval' not in (args.cfg_options or {}):
            hooks.visualization.interval = 1  # every sample (the config's interval would skip small test sets)
    if args.out is not None:
        cfg.test_evaluator = [cfg.test_evaluator] if isinstance(cfg.test_evaluator, dict) \
            else list(cfg.test_evaluator)
        cfg.test_evaluator.append(dict(type='DumpResults', out_file_path=args.out))
    init_cpu_distributed(args.launcher)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    load_checkpoint_to_model(runner.model, checkpoint, args.checkpoint, strict=not args.non_strict,
                             logger=runner.logger)
    del checkpoint
    runner.test()
    shutdown_distributed()


if __name__ == '__main__':
    try:
        main()
    except USER_ERRORS as error:
        sys.exit(f'tools/test.py: error: {error}')
