"""Convert a checkpoint of the official SOC code (RobertLuo1/NeurIPS2023_SOC) to soc_mm.

Usage: python tools/model_converters/soc_official_to_mm.py SRC DST [--config CONFIG] [--cfg-options k=v ...]

SRC: an official checkpoint (the official trainer's ``{'model_state_dict': ..., ...}``, a dict
     with ``model``/``state_dict``, or a bare state dict). Loaded with ``weights_only=True``:
     nothing in it can run code.
DST: written as ``{'state_dict': ..., 'meta': {...}}`` for ``load_from`` / tools/test.py, only
     when every check passed (written to a temporary file, then renamed).

SRC must be a local file: URLs and remote prefixes (``http://``, ``s3://``...) are refused.

Checks (any failure: a message listing every offender, exit status 1, DST not written):
* always: every official key is claimed by exactly one rule of
  ``soc_mm.official.checkpoint.KEY_RULES`` (or is a named known extra) and every module the
  rules describe is complete; every tensor is finite (no NaN/inf) and every ``*.weight`` /
  ``*.bias`` is floating point;
* with ``--config``: the model built from CONFIG has every converted key with the same shape
  and dtype, and every key of the model is produced.
"""
import argparse
import os
import os.path as osp
import sys
import tempfile

import torch
from mmengine.config import DictAction

from soc_mm.official.checkpoint import (OfficialCheckpointError, check_state_dict_against_model,
                                        convert_official_state_dict, load_official_checkpoint)
from soc_mm.utils.checkpoint import CheckpointValueError, check_state_dict_values


class ConversionError(RuntimeError):
    """The conversion cannot produce a correct checkpoint."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='output path')
    parser.add_argument('--config', help='soc_mm config: the converted checkpoint must fit its model exactly')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override settings of --config (e.g. model.text_encoder.model_path=DIR)')
    return parser.parse_args(argv)


def build_model(config: str, cfg_options=None):
    """The (untrained) model of an soc_mm config file."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from soc_mm.registry import MODELS
    if not osp.isfile(config):
        raise ConversionError(f'--config {config}: no such file')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise ConversionError(f'--config {config}: no "model" in the config')
    init_default_scope(cfg.get('default_scope', 'soc_mm'))
    try:
        return MODELS.build(cfg.model)
    except Exception as err:  # noqa: BLE001 (any build failure -> one message naming the config)
        raise ConversionError(f'--config {config}: cannot build its model ({type(err).__name__}: {err})') from err


def check_against_config(state_dict, config: str, cfg_options=None) -> None:
    """Raise :class:`ConversionError` listing every key/shape/dtype disagreement with the model."""
    problems = check_state_dict_against_model(state_dict, build_model(config, cfg_options))
    if problems:
        raise ConversionError(f'the converted checkpoint does not fit the model of {config} '
                              f'({len(problems)} problem(s)):\n  ' + '\n  '.join(problems))


def convert(src: str, dst: str, config=None, cfg_options=None) -> int:
    """Convert ``src`` to ``dst`` (see the module docstring); returns the number of tensors written."""
    if osp.abspath(src) == osp.abspath(dst):
        raise ConversionError(f'{dst}: the output would overwrite the input')
    try:
        official = load_official_checkpoint(src)
        check_state_dict_values(official, src)  # NaN/inf, integer weights: named as in SRC
        state_dict = convert_official_state_dict(official)
    except (OfficialCheckpointError, CheckpointValueError) as err:
        message = str(err)
        raise ConversionError(message if message.startswith(src) else f'{src}: {message}') from None
    if config:
        check_against_config(state_dict, config, cfg_options)
    out_dir = osp.dirname(osp.abspath(dst))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.soc_official_to_mm.', suffix='.pth', dir=out_dir)
    os.close(fd)
    try:
        torch.save(dict(state_dict=state_dict, meta=dict(converted_from=osp.abspath(src))), tmp)
        os.replace(tmp, dst)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return len(state_dict)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        count = convert(args.src, args.dst, args.config, args.cfg_options)
    except ConversionError as err:
        print(f'soc_official_to_mm: error: {err}', file=sys.stderr)
        return 1
    print(f'converted {count} tensors -> {args.dst}' + (f' (checked against {args.config})' if args.config else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
