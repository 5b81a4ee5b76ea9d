"""Safe loading of checkpoints: no file a user gives us can run code.

MMEngine checkpoints hold, besides tensors, MMEngine's ``HistoryBuffer`` and numpy
arrays/scalars (the runner's ``message_hub``), which torch's ``weights_only``
unpickler refuses by default. ``HistoryBuffer`` pickles its statistics methods as
``getattr(HistoryBuffer, 'mean')`` (pickle protocol 2 has no nested names), so a
loader needs *some* ``builtins.getattr`` — but allow-listing the real ``getattr`` lets
a crafted pickle walk from any allowed object to ``eval`` (``getattr(getattr,
'__self__')`` is the ``builtins`` module) and call it through an allowed rebuild
function. We therefore never allow the generic ``getattr``:

* :func:`history_buffer_getattr` is registered under the name ``builtins.getattr``
  and only returns ``HistoryBuffer``'s registered statistics methods; any other use
  raises and names what was asked for.
* :func:`register_safe_globals` adds exactly :func:`mmengine_checkpoint_safe_globals`
  to torch's allow-list (additive, torch's own mechanism; ``import soc_mm`` does this
  so that other OpenMMLab tools can load our checkpoints with torch's default
  ``weights_only=True``). MMEngine's checkpoint loaders are left as they are.
* :func:`safe_load_local` is what our tools and APIs load with: it checks the file
  is a torch checkpoint, lists every global its pickles reference (zip and legacy
  formats, every pickle protocol) and refuses, naming them, any outside the
  allow-list before anything is unpickled, then loads with ``weights_only=True`` and
  exactly our allow-list in force (whatever else the process has allow-listed).
"""
import contextlib
import inspect
import io
import os
import os.path as osp
import pickle
import pickletools
import zipfile
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
from typing import Iterator, List, Optional, Set

import numpy as np
import torch
from torch import _weights_only_unpickler

#: what a file must start with: the zip archive of ``torch.save`` (torch >= 1.6) or a pickle
#: (protocol 2) of the legacy format's magic number.
_ZIP_MAGIC = b'PK\x03\x04'
_LEGACY_MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
_LEGACY_PICKLES = 5  # magic number, protocol version, sys info, the object, storage keys


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint references objects outside the allow-list (loading could run code)."""


class CheckpointFormatError(ValueError):
    """A file is not a (complete) PyTorch checkpoint."""


def _numpy_types() -> list:
    core = getattr(np, '_core', None) or np.core
    types_ = [np.ndarray, np.dtype, core.multiarray.scalar, core.multiarray._reconstruct]
    for name in ('bool_', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32',
                 'uint64', 'float16', 'float32', 'float64', 'complex64', 'complex128', 'str_'):
        types_.append(type(np.dtype(getattr(np, name))))
    return types_


#: the statistics methods ``HistoryBuffer.__init__`` registers (``_statistics_methods`` is empty
#: until the first buffer is made, e.g. in a fresh ``tools/test.py`` process)
_HISTORY_BUFFER_STATISTICS = frozenset({'min', 'max', 'current', 'mean'})


def history_buffer_getattr(obj, name):
    """``getattr`` restricted to ``HistoryBuffer``'s statistics methods.

    Registered as ``builtins.getattr`` for the safe unpickler: MMEngine checkpoints
    pickle ``HistoryBuffer._statistics_methods`` values as ``getattr(HistoryBuffer,
    'mean')``. Anything else (another object, a dunder, an unregistered name) raises.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    names = _HISTORY_BUFFER_STATISTICS | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and isinstance(name, str) and name in names and not name.startswith('_'):
        method = HistoryBuffer.__dict__.get(name)
        if inspect.isfunction(method):  # defined on the class itself (not a classmethod, not inherited)
            return method
    raise UnsafeCheckpointError(
        f'Refusing builtins.getattr({_describe(obj)}, {name!r}) in a checkpoint: only '
        f'getattr(HistoryBuffer, <statistics method>) is allowed (statistics methods: {sorted(names)})')


def _describe(obj) -> str:
    if isinstance(obj, type) or callable(obj):
        return f'{getattr(obj, "__module__", "?")}.{getattr(obj, "__qualname__", type(obj).__name__)}'
    return f'<{type(obj).__name__} object>'


def mmengine_checkpoint_safe_globals() -> list:
    """What MMEngine's runner stores in checkpoints beyond torch's defaults, and nothing else."""
    from mmengine.logging.history_buffer import HistoryBuffer
    return [HistoryBuffer, (history_buffer_getattr, 'builtins.getattr')] + _numpy_types()


def _global_name(entry) -> str:
    if isinstance(entry, tuple):
        return entry[1]
    return f'{entry.__module__}.{entry.__qualname__}'


def allowed_global_names() -> Set[str]:
    """Full names (``module.qualname``) a checkpoint may reference."""
    torch_defaults = set(_weights_only_unpickler._get_allowed_globals())
    return torch_defaults | {_global_name(g) for g in mmengine_checkpoint_safe_globals()}


def register_safe_globals() -> None:
    """Add MMEngine's checkpoint types to torch's ``weights_only`` allow-list (additive)."""
    torch.serialization.add_safe_globals(mmengine_checkpoint_safe_globals())


@contextlib.contextmanager
def exact_safe_globals(entries: list) -> Iterator[None]:
    """Make ``entries`` torch's whole user allow-list inside the block, restoring it after.

    So that what :func:`safe_load_local` accepts does not depend on what other code in
    the process allow-listed (e.g. someone's ``add_safe_globals([getattr])``).
    """
    previous = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(entries)
    try:
        yield
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(previous)


# ------------------------------------------------------------------------ static scan of pickles
def _map_name(module: str, name: str) -> str:
    """Python-2 names as the unpickler maps them (``__builtin__.getattr`` -> ``builtins.getattr``)."""
    if (module, name) in NAME_MAPPING:
        module, name = NAME_MAPPING[(module, name)]
    elif module in IMPORT_MAPPING:
        module = IMPORT_MAPPING[module]
    return f'{module}.{name}'


def pickle_globals(stream: io.BufferedIOBase) -> List[str]:
    """Every global one pickle in ``stream`` references (read up to its STOP opcode).

    Covers ``GLOBAL`` and ``INST`` (``module name`` argument) and ``STACK_GLOBAL`` (its
    two strings, also when they come from the memo). A string that cannot be resolved
    statically is reported as ``<dynamic>`` (and refused).
    """
    found, strings, memo = [], [], {}
    last_was_string = False
    for opcode, arg, _pos in pickletools.genops(stream):
        name = opcode.name
        pushed_string = False
        if name in ('GLOBAL', 'INST'):
            module, _, qualname = arg.partition(' ')
            found.append(_map_name(module, qualname))
        elif name in ('SHORT_BINUNICODE', 'BINUNICODE', 'BINUNICODE8', 'UNICODE', 'STRING',
                      'BINSTRING', 'SHORT_BINSTRING'):
            strings.append(arg)
            pushed_string = True
        elif name in ('MEMOIZE', 'PUT', 'BINPUT', 'LONG_BINPUT'):
            memo[len(memo) if name == 'MEMOIZE' else arg] = strings[-1] if last_was_string else None
            pushed_string = last_was_string  # PUT leaves the stack as it is
        elif name in ('GET', 'BINGET', 'LONG_BINGET'):
            strings.append(memo.get(arg))
            pushed_string = True
        elif name == 'STACK_GLOBAL':
            module, qualname = (strings[-2], strings[-1]) if len(strings) >= 2 else (None, None)
            found.append(_map_name(module, qualname) if isinstance(module, str) and isinstance(qualname, str)
                         else '<dynamic STACK_GLOBAL>')
        last_was_string = pushed_string
    return found


def _checkpoint_pickles(filename: str) -> Iterator[io.BufferedIOBase]:
    """The pickle streams of a checkpoint file (zip: every ``*.pkl`` member; legacy: the first five)."""
    with open(filename, 'rb') as f:
        head = f.read(4)
    if head == _ZIP_MAGIC:
        try:
            with zipfile.ZipFile(filename) as archive:
                for member in archive.namelist():
                    if member.endswith('.pkl'):
                        yield io.BytesIO(archive.read(member))
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise CheckpointFormatError(
                f'{filename}: damaged checkpoint (not a complete zip archive: {err}); '
                'was the save interrupted?') from err
        return
    with open(filename, 'rb') as f:
        for _ in range(_LEGACY_PICKLES):
            start = f.tell()
            if not f.read(1):
                break  # fewer pickles than a real legacy checkpoint: torch.load reports it
            f.seek(start)
            yield f


def unsafe_globals_in_checkpoint(filename: str) -> List[str]:
    """Globals referenced by ``filename``'s pickles that are not on the allow-list."""
    allowed = allowed_global_names()
    offending = []
    for stream in _checkpoint_pickles(filename):
        try:
            names = pickle_globals(stream)
        except (ValueError, EOFError) as err:  # pickletools: truncated or not a pickle
            raise CheckpointFormatError(
                f'{filename}: damaged checkpoint (unreadable pickle: {err}); was the save interrupted?') from err
        offending += [n for n in names if n not in allowed and n not in offending]
    return offending


def check_checkpoint_file(filename: str) -> None:
    """Clear errors for what is not a torch checkpoint file: missing, empty, text, other formats."""
    if not osp.exists(filename):
        raise FileNotFoundError(f'checkpoint not found: {filename}')
    if not osp.isfile(filename):
        raise CheckpointFormatError(f'{filename}: not a file (expected a checkpoint written by torch.save)')
    size = osp.getsize(filename)
    if size == 0:
        raise CheckpointFormatError(f'{filename}: empty file (0 bytes), not a checkpoint; was the save interrupted?')
    with open(filename, 'rb') as f:
        head = f.read(64)
    if head.startswith(_ZIP_MAGIC):
        return
    if head[:3] == b'\x80\x02\x8a' and _first_pickle_integer(filename) == _LEGACY_MAGIC_NUMBER:
        return  # legacy format: PROTO 2, LONG1 <magic number>
    raise CheckpointFormatError(
        f'{filename}: not a PyTorch checkpoint (expected the zip archive written by torch.save or '
        f'the legacy torch format; the file starts with {head[:16]!r})')


def _first_pickle_integer(filename: str) -> Optional[int]:
    """The integer of a file's first pickle when it is only ``PROTO, LONG1, STOP`` (read statically), else None."""
    with open(filename, 'rb') as f:
        try:
            ops = [(op.name, arg) for op, arg, _pos in pickletools.genops(f)]
        except (ValueError, EOFError):
            return None
    return ops[1][1] if [name for name, _arg in ops] == ['PROTO', 'LONG1', 'STOP'] else None


def safe_load_local(filename: str, map_location=None):
    """Load a local checkpoint without ever running pickled code.

    Raises:
        FileNotFoundError: no such file.
        CheckpointFormatError: not a (complete) torch checkpoint (empty, text, truncated).
        UnsafeCheckpointError: it references globals outside the allow-list (named in
            the message) or misuses an allowed one.
    """
    filename = os.fspath(filename)
    check_checkpoint_file(filename)
    offending = unsafe_globals_in_checkpoint(filename)
    if offending:
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint {filename!r}: it references {offending}, which are not '
            'on the allow-list (tensors, containers, numbers, strings, numpy arrays/scalars, '
            "MMEngine's HistoryBuffer). Loading it could run arbitrary code.")
    try:
        with exact_safe_globals(mmengine_checkpoint_safe_globals()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except UnsafeCheckpointError as err:
        raise UnsafeCheckpointError(f'Refusing to load checkpoint {filename!r}: {err}') from None
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint {filename!r}: the safe unpickler rejected it: '
            f'{_unpickler_reason(err)}') from None
    except (EOFError, RuntimeError) as err:
        raise CheckpointFormatError(
            f'{filename}: damaged checkpoint ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ""}); '
            'was the save interrupted?') from err


def _unpickler_reason(err: Exception) -> str:
    """The line of torch's (long) weights-only message that says what was refused."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for marker in ('Refusing builtins.getattr', 'Unsupported global', 'WeightsUnpickler error'):
        for line in lines:
            if marker in line:
                return line
    return lines[0] if lines else type(err).__name__


def load_checkpoint_to_model(model: torch.nn.Module, checkpoint: dict, filename: str, strict: bool = True,
                             logger=None) -> None:
    """Put an already (safely) loaded checkpoint's weights into ``model`` (wrapped or not).

    With ``strict`` (default) a missing, unexpected or shape-mismatched key is a
    :class:`CheckpointMismatchError` listing all of them (MMEngine's ``load_state_dict``
    messages); otherwise they are logged as warnings.
    """
    from mmengine.model import is_model_wrapper
    from mmengine.runner.checkpoint import _load_checkpoint_to_model
    if not isinstance(checkpoint, dict):
        raise CheckpointFormatError(f'{filename}: expected a dict (state_dict or MMEngine checkpoint), '
                                    f'got {type(checkpoint).__name__}')
    if is_model_wrapper(model):
        model = model.module
    try:
        _load_checkpoint_to_model(model, checkpoint, strict=strict, logger=logger)
    except RuntimeError as err:
        raise CheckpointMismatchError(
            f'checkpoint {filename} does not fit the model (pass --non-strict / strict=False to load '
            f'it anyway):\n{err}') from None


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's keys or shapes do not fit the model (strict loading)."""


def install_safe_checkpoint_loading() -> None:
    """Make MMEngine load local checkpoints through :func:`safe_load_local` in this process.

    For our entry points (``tools/train.py``, ``tools/test.py``); ``import soc_mm`` does
    not call it (it only allow-lists MMEngine's checkpoint types, see
    :func:`register_safe_globals`).
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    register_safe_globals()
    CheckpointLoader.register_scheme(prefixes='', force=True)(safe_load_local)


__all__ = ['UnsafeCheckpointError', 'CheckpointFormatError', 'CheckpointMismatchError', 'safe_load_local',
           'load_checkpoint_to_model', 'register_safe_globals',
           'install_safe_checkpoint_loading', 'mmengine_checkpoint_safe_globals', 'history_buffer_getattr',
           'unsafe_globals_in_checkpoint', 'check_checkpoint_file', 'exact_safe_globals']
