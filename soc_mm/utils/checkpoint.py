"""Safe loading of MMEngine checkpoints with torch >= 2.6 (``weights_only=True``).

MMEngine 0.10.7 calls ``torch.load`` without ``weights_only``; torch >= 2.6 then
refuses checkpoints that hold MMEngine's ``HistoryBuffer`` or numpy scalars (its
runner stores both in ``message_hub``). Instead of ``weights_only=False`` (which
runs arbitrary pickled code), we allow-list exactly those types and keep the safe
unpickler; anything else is refused with :class:`UnsafeCheckpointError`.
"""
import pickle

import numpy as np
import torch
from mmengine.runner.checkpoint import CheckpointLoader


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds objects outside the allow-list."""


def _numpy_types() -> list:
    core = getattr(np, '_core', None) or np.core
    types_ = [np.ndarray, np.dtype, core.multiarray.scalar, core.multiarray._reconstruct]
    for name in ('bool_', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32',
                 'uint64', 'float16', 'float32', 'float64', 'complex64', 'complex128', 'str_'):
        types_.append(type(np.dtype(getattr(np, name))))
    return types_


def mmengine_checkpoint_safe_globals() -> list:
    """Types that MMEngine's runner stores in checkpoints (and nothing else).

    ``getattr`` is needed because ``HistoryBuffer`` pickles its statistics methods
    as ``getattr(HistoryBuffer, 'mean')``; the safe unpickler still refuses to
    call any function that is not on this list, so no fetched attribute runs.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    return [HistoryBuffer, getattr] + _numpy_types()


def register_safe_globals() -> None:
    """Allow-list MMEngine's checkpoint types for ``torch.load(weights_only=True)``."""
    torch.serialization.add_safe_globals(mmengine_checkpoint_safe_globals())


def safe_load_local(filename: str, map_location=None):
    """Load a local checkpoint with the safe unpickler; clear error when refused."""
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        try:
            allowed = {f'{g.__module__}.{g.__qualname__}' for g in mmengine_checkpoint_safe_globals()}
            found = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
            offending = [g for g in found if g not in allowed and g.replace('__builtin__', 'builtins')
                         not in allowed]
        except Exception:  # not a zip checkpoint: report torch's message only
            offending = []
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint {filename!r}: it contains objects that are not '
            'on the allow-list of safe types (tensors, containers, numbers, strings, numpy '
            'arrays/scalars, mmengine HistoryBuffer). Loading it would run arbitrary pickled '
            f'code. Objects not allowed: {offending or "see below"}. '
            f'Details from torch: {str(err).splitlines()[0]}') from err


def install_safe_checkpoint_loading() -> None:
    """Make MMEngine load local checkpoints through :func:`safe_load_local`."""
    register_safe_globals()
    CheckpointLoader.register_scheme(prefixes='', force=True)(safe_load_local)
