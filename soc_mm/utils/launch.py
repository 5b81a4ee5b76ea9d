"""What ``tools/train.py`` and ``tools/test.py`` do with their command line before they build MMEngine's runner.

The tools keep their ``argparse`` parsers; :func:`parse_tool_args` adds the launcher arguments both share and
exports ``LOCAL_RANK``. :func:`config_for_training` / :func:`config_for_testing` turn the parsed arguments into
the config of the run, every argument checked before anything slow runs, errors naming the argument
(:class:`~soc_mm.utils.cli.UsageError` and its subclasses, ``FileNotFoundError`` and the checkpoint errors of
:mod:`soc_mm.utils.checkpoint`; the tools print them without a traceback).
"""
import argparse
import os
import os.path as osp
from typing import Optional, Sequence, Tuple

from mmengine.config import Config

from .checkpoint import CheckpointFormatError, check_state_dict_values, checkpoint_state_dict, safe_load_local
from .cli import (UsageError, check_amp_device, check_launcher_env, check_output_dir, check_output_file,
                  check_train_length, load_config, merge_cfg_options)

__all__ = ['LAUNCHERS', 'parse_tool_args', 'set_work_dir', 'config_for_training', 'config_for_testing']

#: ``--launcher`` choices (MMEngine's ``init_dist`` launchers and 'none': one process)
LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def parse_tool_args(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """``parser`` with ``--launcher`` (:data:`LAUNCHERS`, default 'none') and ``--local_rank`` /
    ``--local-rank`` (what ``torch.distributed.launch`` passes) added, applied to ``argv`` (None: the command
    line). ``LOCAL_RANK`` is set from ``--local-rank`` when the launcher did not set it (torchrun does)."""
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def set_work_dir(cfg: Config, work_dir: Optional[str], config: str) -> str:
    """``cfg.work_dir``: ``work_dir`` (``--work-dir``) when given, else the config's, else
    ``./work_dirs/<config file name without extension>``; returns it."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg.work_dir


def config_for_training(args: argparse.Namespace) -> Config:
    """The config ``tools/train.py`` runs, from its arguments (``config``, ``work_dir``, ``amp``,
    ``auto_scale_lr``, ``resume``, ``cfg_options``, ``launcher``), in this order:

    * ``--launcher pytorch`` needs torchrun's variables (:func:`~soc_mm.utils.cli.check_launcher_env`);
    * the config file (:func:`~soc_mm.utils.cli.load_config`), ``launcher`` set, ``--cfg-options`` merged
      (checked: :func:`~soc_mm.utils.cli.merge_cfg_options`), a schedule that trains something;
    * the work dir (:func:`set_work_dir`; not a file);
    * ``--amp``: a GPU and an ``OptimWrapper`` (becomes ``AmpOptimWrapper``, dynamic loss scale);
      ``--auto-scale-lr``: ``auto_scale_lr.base_batch_size`` in the config;
    * ``--resume`` (``'auto'``: the newest checkpoint of the work dir, else the given one);
    * ``model_wrapper_cfg`` defaults to ``soc_mm.RVOSDistributedDataParallel`` (DDP also on CPU);
    * ``load_from`` without ``--resume``: the file is read now (:func:`~soc_mm.utils.checkpoint.safe_load_local`),
      so that a bad one fails before the runner is built, naming itself.
    """
    check_launcher_env(args.launcher)  # before anything slow: the variables torchrun sets
    cfg = load_config(args.config)
    cfg.launcher = args.launcher
    merge_cfg_options(cfg, args.cfg_options)
    check_train_length(cfg)  # max_iters=0 would exit 0 with an untrained model
    set_work_dir(cfg, args.work_dir, args.config)
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
    if cfg.get('load_from') and not cfg.get('resume'):
        checkpoint = safe_load_local(cfg.load_from, map_location='cpu')  # a bad file fails now, naming itself
        if isinstance(checkpoint, dict):  # NaN / inf or integer weights too (the model is not built yet)
            try:
                state_dict = checkpoint_state_dict(checkpoint)
            except CheckpointFormatError as err:
                raise CheckpointFormatError(f'load_from {cfg.load_from}: {err}') from None
            check_state_dict_values(state_dict, cfg.load_from)
    return cfg


def config_for_testing(args: argparse.Namespace) -> Tuple[Config, dict]:
    """The config ``tools/test.py`` runs and its checkpoint, from its arguments (``config``, ``checkpoint``,
    ``work_dir``, ``out``, ``show_dir``, ``cfg_options``, ``bf16``, ``reference_kernels``, ``launcher``), in
    this order:

    * the outputs, before anything runs (a bad path must not cost a whole evaluation): ``--out`` a writable
      ``.pkl`` / ``.pickle`` file, ``--show-dir`` and ``--work-dir`` not files; ``--launcher pytorch`` needs
      torchrun's variables;
    * the config file, ``launcher`` set, ``--cfg-options`` merged (checked);
    * the checkpoint, read safely (:func:`~soc_mm.utils.checkpoint.safe_load_local`; a bad file fails in
      seconds, naming itself);
    * the work dir (:func:`set_work_dir`), ``load_from`` None (the tool loads the checkpoint strictly),
      ``--bf16`` (``model.test_cfg.bf16``), ``--reference-kernels`` (``model.fast_kernels=False``), the
      DDP wrapper (``soc_mm.RVOSDistributedDataParallel`` unless the config names one);
    * ``--show-dir``: the visualization hook draws every sample into it (unless ``--cfg-options`` sets its
      interval); ``--out``: a ``DumpResults`` evaluator added.

    Returns:
        ``(cfg, checkpoint)``: the checkpoint as loaded (a dict with the state dict).
    """
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
    set_work_dir(cfg, args.work_dir, args.config)
    check_output_dir(cfg.work_dir, '--work-dir' if args.work_dir is not None else 'work_dir')
    cfg.load_from = None  # the tool loads it, strictly, from the checkpoint read here
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
    return cfg, checkpoint
