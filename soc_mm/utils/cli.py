"""Command-line helpers shared by ``tools/train.py`` and ``tools/test.py``.

``--cfg-options key=value`` goes through MMEngine's ``DictAction``; on its own it fails
with a bare ``ValueError: not enough values to unpack`` when ``=`` is missing and lets a
value of the wrong type (``train_cfg.max_iters=abc``) through to crash somewhere later
without naming the key. :class:`CfgOptionsAction` and :func:`merge_cfg_options` name
the option and say what was expected.
"""
import argparse
import math
from typing import Any, Dict, FrozenSet, Iterable, Optional, Sequence, Tuple

from mmengine.config import Config, DictAction

_MISSING = object()


class UsageError(ValueError):
    """A command-line argument the tools cannot use (the message names it and says what is expected);
    the tools print it without a traceback."""


class ConfigOptionError(UsageError):
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


#: settings (last part of the key) that must be whole numbers wherever they appear (MMEngine's loops,
#: the data loaders and hooks refuse or mis-handle anything else).
WHOLE_NUMBER_SETTINGS = frozenset({
    'max_iters', 'max_epochs', 'val_interval', 'val_begin', 'interval', 'batch_size', 'num_workers',
    'max_keep_ckpts', 'seed', 'clip_len', 'num_frames', 'num_queries'})

#: closeness (``difflib`` ratio) from which a missing key counts as a typo of an existing one.
TYPO_CUTOFF = 0.8


def _top_level_keys() -> set:
    """Top-level settings MMEngine's ``Runner.from_cfg`` reads even when a config does not list them."""
    import inspect

    from mmengine.runner import Runner
    params = set(inspect.signature(Runner.__init__).parameters) - {'self', 'cfg'}
    return params | {'runner_type', 'model_wrapper_cfg', 'find_unused_parameters', 'compile', 'strategy'}


#: dicts of a config whose keys are fixed: dotted path -> every key the dict may have. The package that
#: reads such a dict registers its keys (:func:`register_fixed_keys`; ``soc_mm.models.inference.test_options``
#: registers ``model.test_cfg``, imported with ``soc_mm``), so that this module imports nothing above it.
FIXED_KEYS: Dict[str, FrozenSet[str]] = {}


def register_fixed_keys(path: str, keys: Iterable[str]) -> None:
    """Declare every key the config dict at ``path`` (dotted, e.g. ``'model.test_cfg'``) may have: a
    ``--cfg-options`` key below ``path`` that is not one of them is refused (:func:`unknown_key_error`).
    Registering a path again replaces its keys."""
    FIXED_KEYS[path] = frozenset(keys)


def _declared_keys(path: str) -> Optional[FrozenSet[str]]:
    """Every key the dict at ``path`` may have, for the dicts whose keys are fixed (``FIXED_KEYS``;
    ``model.test_cfg``: ``RVOSTestOptions``' fields and the renamed keys it explains), else None."""
    return FIXED_KEYS.get(path)


def unknown_key_error(cfg: Config, key: str) -> Optional[str]:
    """Why ``key`` (a dotted ``--cfg-options`` key) names no setting of ``cfg``, or None.

    The rule: follow the key through the config to its first part that does not exist. That part is

    * refused at the top level unless it is a setting MMEngine's runner reads (``randomness``,
      ``resume``, ...: :func:`_top_level_keys`): ``trian_cfg.max_iters=1`` would be ignored;
    * refused in a dict whose keys are fixed (``model.test_cfg``: the fields of ``RVOSTestOptions``)
      unless it is one of them: ``model.test_cfg.clip_lenn=2``;
    * refused in a dict that builds a registered class (``type=``) whose constructor has no such argument
      and no ``**kwargs`` (:func:`constructor_key_error`): ``optim_wrapper.optimizer.learning_rate=0.1``;
    * refused below the top level when it is a typo of a key of the same dict (``difflib`` ratio >=
      ``TYPO_CUTOFF``, 0.8): ``train_cfg.max_itres=2`` (``max_iters`` exists) would be ignored;
    * otherwise accepted, and created by the merge: a new setting, e.g. a constructor argument that the
      module's config does not list (``model.backbone.new_arg=1``), or a new sub-dict.

    The message names the closest existing key when there is one.
    """
    import difflib
    node: Any = cfg._cfg_dict if isinstance(cfg, Config) else cfg
    parts = key.split('.')
    for depth, part in enumerate(parts):
        if isinstance(node, (list, tuple)) and part.lstrip('-').isdigit():
            index = int(part)
            if not -len(node) <= index < len(node):
                return None  # merge_from_dict reports it
            node = node[index]
            continue
        if not isinstance(node, dict):
            return None  # setting inside a scalar: merge_from_dict reports it
        if part in node:
            node = node[part]
            continue
        existing = [str(k) for k in node]
        parent = '.'.join(parts[:depth])
        if depth == 0:
            if part in _top_level_keys():
                return None
            close = difflib.get_close_matches(part, existing + sorted(_top_level_keys()), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else f' (top-level keys: {sorted(existing)[:12]})'
            return f'the config has no top-level key {part!r}{hint}'
        declared = _declared_keys(parent)
        if declared is not None:  # a dict whose keys are all known: anything else is unknown
            if part in declared:
                return None
            close = difflib.get_close_matches(part, sorted(set(existing) | declared), n=1, cutoff=0.6)
            hint = f"; did you mean '{parent}.{close[0]}'?" if close else ''
            return f'{parent} has no key {part!r}{hint} (its keys: {sorted(declared)})'
        if 'type' in node:
            wrong_argument = constructor_key_error(node, parent, part)
            if wrong_argument:
                return wrong_argument
        close = difflib.get_close_matches(part, existing, n=1, cutoff=TYPO_CUTOFF)
        if close:
            return (f"{parent} has no key {part!r}; did you mean '{parent}.{close[0]}'? (a new key this close "
                    'to an existing one is taken for a typo)')
        return None
    return None


#: whole-number settings that count things and must be at least 1 (``max_iters`` / ``max_epochs``: see
#: :func:`check_train_length`, which says what 0 would do)
POSITIVE_SETTINGS = frozenset({'batch_size', 'clip_len', 'num_frames', 'num_queries'})
#: whole-number settings that are periods (``iteration % interval``): 0 would divide by zero mid-run
#: (-1, "never", is MMEngine's value for a checkpoint hook without periodic saves)
PERIOD_SETTINGS = frozenset({'interval', 'val_interval'})


def whole_number_error(key: str, value: Any) -> Optional[str]:
    """Why ``value`` cannot be the setting ``key`` when that setting must be a whole number (at least 1 for
    a count, not 0 for a period), or None."""
    name = key.split('.')[-1]
    if name not in WHOLE_NUMBER_SETTINGS or value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return f'{name} must be a whole number (e.g. 100), got {value!r}'
    if name in POSITIVE_SETTINGS and value < 1:
        return f'{name} must be at least 1, got {value}'
    if name in PERIOD_SETTINGS and value == 0:
        return f'{name} is a period in iterations (or epochs) and cannot be 0 (the run would divide by it)'
    return None


def _registered_class(type_value: Any) -> Optional[type]:
    """The class a config's ``type=`` names (a class, or a name registered in one of ``soc_mm``'s
    registries or their MMEngine / OpenMMLab parents), or None when no registry knows it or several classes
    of that name exist (a name is looked up in every registry: the config path does not say which)."""
    import inspect
    if inspect.isclass(type_value):
        return type_value
    if not isinstance(type_value, str):
        return None
    from mmengine.registry import Registry

    import soc_mm.registry as registries
    found = set()
    for registry in vars(registries).values():
        if isinstance(registry, Registry):
            try:
                cls = registry.get(type_value)
            except Exception:  # noqa: BLE001 - a registry that cannot import its locations knows nothing here
                cls = None
            if inspect.isclass(cls):
                found.add(cls)
    return found.pop() if len(found) == 1 else None


#: keys of a ``type=`` dict that MMEngine's builders take out before the constructor is called: the
#: registry scope, a hook's priority, a scheduler's epoch-to-iteration conversion, an optimizer wrapper's
#: constructor and its parameter-wise settings
BUILDER_KEYS = frozenset({'_scope_', 'priority', 'convert_to_iter_based', 'constructor', 'paramwise_cfg'})


def constructor_key_error(node: dict, parent: str, part: str) -> Optional[str]:
    """Why ``part`` cannot be a new key of the config dict ``node`` (at ``parent``), which builds the
    registered class its ``type`` names: that class's constructor has no such parameter and takes no
    ``**kwargs`` (the build would fail with a ``TypeError`` after the config was loaded, the data indexed
    and perhaps the model built). None when the key is a parameter, the class takes ``**kwargs`` or the
    class is not known."""
    import difflib
    import inspect
    if part in BUILDER_KEYS:
        return None
    cls = _registered_class(node.get('type'))
    if cls is None:
        return None
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return None
    if part in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    names = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    close = difflib.get_close_matches(part, names, n=1, cutoff=0.6)
    hint = f"; did you mean '{parent}.{close[0]}'?" if close else ''
    return (f'{parent} builds {cls.__name__}, which has no argument {part!r}{hint} (its arguments: '
            f'{names[:20]})')


def merge_cfg_options(cfg: Config, options: Optional[dict]) -> None:
    """Merge ``--cfg-options`` into ``cfg``; refused (ConfigOptionError naming the option, nothing merged):

    * a value of another type than the setting's (:func:`option_type_error`), or not a whole number where
      one is needed (``WHOLE_NUMBER_SETTINGS``: ``train_cfg.max_iters=2.5``);
    * a key that names no setting (:func:`unknown_key_error`: an unknown top-level key, or a typo of an
      existing key such as ``model.test_cfg.clip_lenn``), with the closest existing key.
    """
    if not options:
        return
    errors = []
    for key, value in options.items():
        unknown = unknown_key_error(cfg, key)
        if unknown:
            errors.append(f'{key}={value!r}: {unknown}')
            continue
        mismatch = option_type_error(_lookup(cfg, key), value)
        if mismatch:
            errors.append(f'{key}={value!r}: expected {mismatch[0]} (the config has '
                          f'{_lookup(cfg, key)!r}), got {mismatch[1]}')
            continue
        whole = whole_number_error(key, value)
        if whole:
            errors.append(f'{key}={value!r}: {whole}')
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


def check_train_length(cfg: Config) -> None:
    """Refuse a training schedule that trains nothing (``train_cfg.max_iters=0``: the run would exit 0 with
    an untrained model) or has a length that is not a whole number.

    Raises:
        ConfigOptionError: naming the setting and its value.
    """
    train_cfg = cfg.get('train_cfg') or {}
    for name in ('max_iters', 'max_epochs'):
        if name not in train_cfg:
            continue
        value = train_cfg[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigOptionError(f'train_cfg.{name}={value!r}: must be a whole number >= 1')
        if value < 1:
            raise ConfigOptionError(f'train_cfg.{name}={value!r}: training would run no {name[4:]} and leave an '
                                    f'untrained model; give {name} >= 1')
    optimizer = (cfg.get('optim_wrapper') or {}).get('optimizer') or {}
    lr = optimizer.get('lr', None) if hasattr(optimizer, 'get') else None
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr)
                           or lr <= 0):
        raise ConfigOptionError(f'optim_wrapper.optimizer.lr={lr!r}: must be a finite number > 0 (NaN or inf '
                                'would turn every weight into NaN at the first step)')


def load_config(path: str) -> Config:
    """``Config.fromfile(path)``, with errors that name the file: missing, a directory, not a ``.py`` /
    ``.json`` / ``.yaml`` config, or a config whose code fails (a syntax error, a bad ``_base_``).

    Raises:
        UsageError: naming ``path`` and the cause.
    """
    import os.path as osp
    if osp.isdir(path):
        raise UsageError(f'config {path} is a directory; expected a config file, e.g. '
                         'configs/soc/soc_tiny_synthetic.py')
    if not osp.isfile(path):
        raise UsageError(f'config file not found: {path}')
    if not path.endswith(('.py', '.json', '.yaml', '.yml')):
        raise UsageError(f'config {path} is not a .py, .json or .yaml file')
    try:
        return Config.fromfile(path)
    except SyntaxError as err:
        filename = path if err.filename in (None, '<unknown>', '<string>') else err.filename
        where = f'{filename}, line {err.lineno}' if err.lineno else filename
        raise UsageError(f'config {path} cannot be read: syntax error in {where}: {err.msg}') from err
    except Exception as err:  # noqa: BLE001  (MMEngine raises many kinds; the file must be named)
        raise UsageError(f'config {path} cannot be read: {type(err).__name__}: {err}') from err


def check_output_dir(path: Optional[str], option: str) -> None:
    """An output folder argument (``--work-dir``, ``--show-dir``) must not be an existing file, nor lie
    under one (checked before any work starts).

    Raises:
        UsageError: naming the option and the path.
    """
    import os.path as osp
    if not path:
        return
    node = osp.abspath(path)
    while True:
        if osp.exists(node) and not osp.isdir(node):
            inside = '' if node == osp.abspath(path) else f' (it lies under the file {node})'
            raise UsageError(f'{option} {path} is a file{inside}; expected a folder (it is created when missing)')
        parent = osp.dirname(node)
        if parent == node:
            return
        node = parent


def check_output_file(path: Optional[str], option: str) -> None:
    """An output file argument (``--out``) must be a regular file or not exist yet (not a folder, a FIFO or a
    device) and its folder must be writable (checked before the evaluation runs, so that its results are not
    lost at the end).

    Raises:
        UsageError: naming the option and the path.
    """
    import os
    import os.path as osp
    if not path:
        return
    if osp.isdir(path):
        raise UsageError(f'{option} {path} is a folder; expected a file path')
    if osp.exists(path) and not osp.isfile(path):  # a FIFO or a device would block or never be a result file
        raise UsageError(f'{option} {path} exists and is not a regular file (a FIFO, socket or device); '
                         'expected a file path')
    folder = osp.dirname(osp.abspath(path))
    check_output_dir(folder, f'{option} folder')
    existing = folder
    while not osp.isdir(existing):
        existing = osp.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f'{option} {path}: cannot write in {existing} (permission denied)')


#: the variables ``torchrun`` (``torch.distributed.launch``) sets for each process.
TORCHRUN_ENV = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


def check_launcher_env(launcher: str) -> None:
    """``--launcher pytorch`` needs the variables that ``torchrun`` sets; without them MMEngine fails deep
    inside ``torch.distributed`` (or waits for peers that never come).

    Raises:
        UsageError: naming the missing variables and the command to use.
    """
    import os
    if launcher != 'pytorch':
        return
    missing = [name for name in TORCHRUN_ENV if name not in os.environ]
    if missing:
        raise UsageError(f'--launcher pytorch: the environment lacks {", ".join(missing)}, which torchrun sets; '
                         'start the tool with torchrun (e.g. tools/dist_train.sh CONFIG NUM_PROCESSES, or '
                         'torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch), or drop '
                         '--launcher for one process')


def check_amp_device() -> None:
    """``--amp`` (MMEngine's ``AmpOptimWrapper``) runs on CUDA / NPU / MLU / MUSA devices only.

    Raises:
        UsageError: on a machine without one, saying what to do instead.
    """
    from mmengine.device import get_device
    device = get_device()
    if device not in ('cuda', 'npu', 'mlu', 'musa'):
        raise UsageError(f'--amp needs a GPU (MMEngine\'s AmpOptimWrapper runs on CUDA, NPU, MLU or MUSA devices) '
                         f'and this machine has none (device: {device}): drop --amp (training then runs in '
                         'float32)')
