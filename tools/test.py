"""Test (evaluate) a checkpoint with an soc_mm config (``--launcher pytorch`` for DDP).

The checkpoint is loaded safely (no pickled code runs, ``soc_mm.utils.checkpoint``) and
strictly: a missing, unexpected or shape-mismatched key is an error listing them
(``--non-strict`` loads it anyway, with the mismatches as warnings).
"""
import argparse
import sys

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from soc_mm.registry import register_all_modules
from soc_mm.utils import (CheckpointFormatError, CheckpointMismatchError, UnsafeCheckpointError,
                          init_cpu_distributed, install_safe_checkpoint_loading, keep_freed_memory_for_reuse,
                          load_checkpoint_to_model, shutdown_distributed)
from soc_mm.utils.cli import ConfigOptionError, UsageError, add_cfg_options_argument
from soc_mm.utils.launch import config_for_testing, parse_tool_args

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
    return parse_tool_args(parser)  # + --launcher, --local-rank (LOCAL_RANK)


def main(args=None):
    args = args or parse_args()
    register_all_modules(init_default_scope=False)
    install_safe_checkpoint_loading()
    keep_freed_memory_for_reuse()  # large CPU tensors reuse freed heap blocks (utils/cpu_allocator.py)
    cfg, checkpoint = config_for_testing(args)  # every argument checked first, then the checkpoint read
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
