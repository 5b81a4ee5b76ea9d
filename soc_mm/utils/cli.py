"""Command-line helpers shared by ``tools/train.py`` and ``tools/test.py``.

``--cfg-options key=value`` goes through MMEngine's ``DictAction``; on its own it fails
with a bare ``ValueError: not enough values to unpack`` when ``=`` is missing and lets a
value of the wrong type (``train_cfg.max_iters=abc``) through to crash somewhere later
without naming the key. :class:`CfgOptionsAction` and :func:`merge_cfg_options` name
the option and say what was expected.
"""
import argparse
from typing import Any, Optional, Sequence, Tuple

from mmengine.config import Config, DictAction

_MISSING = object()


class ConfigOptionError(ValueError):
    """A ``--cfg-options`` value that cannot replace the setting it names."""


class CfgOptionsAction(DictAction):
    """``DictAction`` whose errors name the malformed ``key=value`` argument."""

    def __call__(self, parser, namespace, values, option_string=None):
        for kv in values:
            key, sep, _value = kv.partition('=')
            if not sep or not key:
                parser.error(f'{option_string or "--cfg-options"}: {kv!r} is not key=value '
                             '(e.g. train_cfg.max_iters=100 or model.test_cfg.clip_len=8)')
        super().__call__(parser, namespace, values, option_string)


def add_cfg_options_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config settings, key=value (xxx=[a,b] for lists); the '
                        'value must have the type of the setting it replaces')


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message):
        raise ConfigOptionError(message)


def parse_cfg_options(items: Sequence[str]) -> dict:
    """``['key=value', ...]`` -> ``{key: value}``, each value parsed as ``--cfg-options`` parses it
    (:class:`CfgOptionsAction`: numbers, booleans, None, ``[a,b]`` lists; strings otherwise).

    For overrides a program builds itself as strings (the demo runners pass the same strings to
    ``tools/train.py``). Raises ConfigOptionError naming an item that is not ``key=value``.
    """
    items = list(items)
    if not items:
        return {}
    parser = _RaisingParser(prog='cfg_options', add_help=False)
    add_cfg_options_argument(parser)
    return parser.parse_args(['--cfg-options', *items]).cfg_options


def _lookup(cfg: Config, key: str) -> Any:
    node: Any = cfg._cfg_dict if isinstance(cfg, Config) else cfg
    for part in key.split('.'):
        if isinstance(node, (list, tuple)) and part.lstrip('-').isdigit():
            index = int(part)
            if not -len(node) <= index < len(node):
                return _MISSING
            node = node[index]
        elif isinstance(node, dict):
            if part not in node:
                return _MISSING
            node = node[part]
        else:
            return _MISSING
    return node


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return 'a boolean (True/False)'
    if isinstance(value, (int, float)):
        return 'a number'
    if isinstance(value, (list, tuple)):
        return 'a list ([a,b,...])'
    if isinstance(value, dict):
        return 'a dict'
    if isinstance(value, str):
        return 'a string'
    return type(value).__name__


def option_type_error(current: Any, new: Any) -> Optional[Tuple[str, str]]:
    """``(expected, got)`` when ``new`` cannot replace ``current``; None when it can.

    None on either side (clearing a setting, or one that had no value) is accepted; a
    string setting accepts numbers (``work_dir=2024``).
    """
    if current is None or new is None or current is _MISSING:
        return None
    expected, got = _kind(current), _kind(new)
    if isinstance(current, str) and isinstance(new, (int, float)) and not isinstance(new, bool):
        return None
    if isinstance(current, (int, float)) and not isinstance(current, bool) \
            and isinstance(new, (int, float)) and not isinstance(new, bool):
        return None
    return None if expected == got else (expected, got)


def merge_cfg_options(cfg: Config, options: Optional[dict]) -> None:
    """Merge ``--cfg-options`` into ``cfg``, refusing values of another type than the setting's."""
    if not options:
        return
    errors = []
    for key, value in options.items():
        mismatch = option_type_error(_lookup(cfg, key), value)
        if mismatch:
            errors.append(f'{key}={value!r}: expected {mismatch[0]} (the config has '
                          f'{_lookup(cfg, key)!r}), got {mismatch[1]}')
    if errors:
        raise ConfigOptionError('--cfg-options: ' + '; '.join(errors))
    try:
        cfg.merge_from_dict(options)
    except Exception as err:  # noqa: BLE001  (MMEngine does not say which key failed)
        for key, value in options.items():
            probe = Config(cfg.to_dict())
            try:
                probe.merge_from_dict({key: value})
            except Exception:  # noqa: BLE001
                raise ConfigOptionError(f'--cfg-options: cannot set {key}={value!r}: {err}') from err
        raise
