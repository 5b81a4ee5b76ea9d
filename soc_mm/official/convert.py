"""An official SOC or SOC++ checkpoint file converted to an ``soc_mm`` checkpoint file, written only when complete
and correct: what ``tools/model_converters/soc_official_to_mm.py`` runs (see its docstring for the checks)."""
import os
import os.path as osp
import tempfile
from typing import Mapping, Optional

import torch
from torch import nn

from soc_mm.utils.checkpoint import CheckpointValueError, check_state_dict_values
from .checkpoint import (OFFICIAL_LAYOUTS, OfficialCheckpointError, check_state_dict_against_model,
                         convert_official_state_dict, load_official_checkpoint)

__all__ = ['ConversionError', 'build_config_model', 'check_against_config', 'convert_official_checkpoint',
           'official_layout_of']


class ConversionError(RuntimeError):
    """The conversion cannot produce a correct checkpoint (the message names the file and every offender)."""


def build_config_model(config: str, cfg_options: Optional[dict] = None) -> nn.Module:
    """The (untrained) model of an soc_mm config file, ``cfg_options`` merged (``Config.merge_from_dict``).

    Raises:
        ConversionError: naming ``--config`` when the file is missing, has no ``model`` or the model cannot
        be built.
    """
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


def official_layout_of(model: nn.Module) -> str:
    """The official key table a model's checkpoint converts with: 'socpp' for a ``SOCPlusPlus``, else 'soc'."""
    from soc_mm.models.detectors import SOCPlusPlus
    return 'socpp' if isinstance(model, SOCPlusPlus) else 'soc'


def check_against_config(state_dict: Mapping[str, torch.Tensor], config: str,
                         cfg_options: Optional[dict] = None, model: Optional[nn.Module] = None) -> None:
    """Raise :class:`ConversionError` listing every key / shape / dtype disagreement of the converted
    ``state_dict`` with the model of ``config`` (:func:`~.checkpoint.check_state_dict_against_model`);
    ``model``: that model, already built."""
    model = build_config_model(config, cfg_options) if model is None else model
    problems = check_state_dict_against_model(state_dict, model)
    if problems:
        raise ConversionError(f'the converted checkpoint does not fit the model of {config} '
                              f'({len(problems)} problem(s)):\n  ' + '\n  '.join(problems))


def convert_official_checkpoint(src: str, dst: str, config: Optional[str] = None,
                                cfg_options: Optional[dict] = None) -> int:
    """Convert the official checkpoint ``src`` (a local file, loaded with ``weights_only=True``) to ``dst``
    (``{'state_dict': ..., 'meta': {'converted_from': abspath(src)}}``); with ``config``, the checkpoint
    must be of the config's model (SOC or SOC++: a checkpoint of the other one is refused, saying so) and
    the converted state dict must fit that model exactly; without it, the model is detected from the keys.
    ``dst`` is written to a temporary file beside it and renamed, only when every check passed.

    Returns:
        The number of tensors written.

    Raises:
        ConversionError: naming ``src`` (unreadable or unsafe file, incomplete or unknown keys, NaN/inf or
        integer weights), ``config`` (does not fit) or ``dst`` (would overwrite ``src``); nothing written.
    """
    same = osp.realpath(src) == osp.realpath(dst) or (osp.exists(src) and osp.exists(dst) and osp.samefile(src, dst))
    if same:  # also through a symbolic or a hard link
        raise ConversionError(f'{dst}: the output would overwrite the input {src}')
    from soc_mm.utils.cli import UsageError, check_output_file
    try:
        check_output_file(dst, 'output')  # before the conversion: not a folder, FIFO or under a file
    except UsageError as err:
        raise ConversionError(str(err)) from None
    model = build_config_model(config, cfg_options) if config else None
    layout = None if model is None else official_layout_of(model)
    try:
        official = load_official_checkpoint(src)
        check_state_dict_values(official, src)  # NaN/inf, integer weights: named as in SRC
        state_dict = convert_official_state_dict(official, layout)
    except (OfficialCheckpointError, CheckpointValueError) as err:
        message = str(err)
        if layout is not None:
            message = f'{message}\n  (--config {config} builds {type(model).__name__}: an official ' \
                      f'{OFFICIAL_LAYOUTS[layout][0]} checkpoint is expected)'
        raise ConversionError(message if message.startswith(src) else f'{src}: {message}') from None
    if config:
        check_against_config(state_dict, config, cfg_options, model)
    out_dir = osp.dirname(osp.abspath(dst))
    try:
        os.makedirs(out_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.soc_official_to_mm.', suffix='.pth', dir=out_dir)
    except OSError as err:
        raise ConversionError(f'{dst}: cannot write the output there ({err.strerror or err})') from None
    os.close(fd)
    try:
        torch.save(dict(state_dict=state_dict, meta=dict(converted_from=osp.abspath(src))), tmp)
        os.replace(tmp, dst)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return len(state_dict)
