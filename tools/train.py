"""Train a model with an soc_mm config (``--launcher pytorch`` under torchrun for DDP).

Works on GPUs (NCCL) and on CPU-only machines (gloo): see
``soc_mm.utils.setup_env.init_cpu_distributed`` and
``soc_mm.engine.RVOSDistributedDataParallel``.
"""
import argparse
import sys

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from soc_mm.engine import ResumeCheckpointError, resolve_resume_checkpoint
from soc_mm.engine.resume import enforce_strict_resume
from soc_mm.registry import register_all_modules
from soc_mm.utils import (CheckpointFormatError, UnsafeCheckpointError, init_cpu_distributed,
                          install_safe_checkpoint_loading, keep_freed_memory_for_reuse, shutdown_distributed)
from soc_mm.utils.checkpoint import CheckpointMismatchError
from soc_mm.utils.cli import ConfigOptionError, UsageError, add_cfg_options_argument
from soc_mm.utils.launch import config_for_training, parse_tool_args

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
    return parse_tool_args(parser)  # + --launcher, --local-rank (LOCAL_RANK)


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    install_safe_checkpoint_loading()  # every checkpoint MMEngine loads here goes through safe_load_local
    keep_freed_memory_for_reuse()  # large CPU tensors reuse freed heap blocks (utils/cpu_allocator.py)
    cfg = config_for_training(args)  # every argument checked; a bad load_from fails now, naming itself
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
