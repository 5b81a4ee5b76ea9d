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
* :func:`safe_load_local` is what our tools and APIs load with: it refuses remote
  paths (``http://``, ``s3://``, ``open-mmlab://``, any ``scheme://``: nothing is
  downloaded), checks the file is a torch checkpoint, checks a zip checkpoint's
  directory before reading any member (only uncompressed members whose stored and
  declared sizes agree, no duplicate names, the same members torch sees), lists
  every global its pickles reference (the ``data.pkl`` torch reads, as torch's own
  zip reader returns it, every other ``*.pkl`` member, the legacy format's pickles,
  every pickle protocol) and refuses, naming them, any outside the allow-list before
  anything is unpickled, then loads with ``weights_only=True`` and exactly our
  allow-list in force (whatever else the process has allow-listed). Objects the
  unpickler rebuilt by setting attributes (``HistoryBuffer``, ``OrderedDict``) may
  hold only the attributes ``torch.save`` / MMEngine write.
* numpy arrays and scalars are accepted under their numpy 2 names
  (``numpy._core.multiarray.*``) and the numpy 1 names of the same functions
  (``numpy.core.multiarray.*``, how checkpoints written under numpy 1 reference
  them); an array rebuilt by ``_reconstruct`` may declare at most
  :data:`MAX_NUMPY_RECONSTRUCT_BYTES`.
* :func:`check_state_dict_values`: weights loaded for evaluation, inference or
  conversion must be finite, and floating point where the model's tensor is.
"""
import contextlib
import inspect
import io
import math
import os
import os.path as osp
import pickle
import pickletools
import stat
import struct
import tarfile
import zipfile
from collections import Counter, OrderedDict
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Set

import numpy as np
import torch
from torch import _weights_only_unpickler

from .pickle_scan import DYNAMIC, scan_pickle

#: what a file must start with: the zip archive of ``torch.save`` (torch >= 1.6) or a pickle
#: (protocol 2) of the legacy format's magic number.
_ZIP_MAGIC = b'PK\x03\x04'
_LEGACY_MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
_LEGACY_PICKLES = 5  # magic number, protocol version, sys info, the object, storage keys


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint references objects outside the allow-list (loading could run code)."""


class CheckpointFormatError(ValueError):
    """A file is not a (complete) PyTorch checkpoint."""


class RemoteCheckpointError(CheckpointFormatError):
    """A checkpoint given by URL or remote scheme (``http://``, ``s3://``, ``open-mmlab://``...): never
    downloaded nor loaded (only local files go through the safe loader)."""


class CheckpointValueError(CheckpointFormatError):
    """A checkpoint's weights cannot be used (NaN/inf values, integers where the model has floats)."""


def remote_scheme(path) -> Optional[str]:
    """``'<scheme>://'`` when ``path`` is a URL or an MMEngine remote prefix (any ``://``), else None."""
    if isinstance(path, os.PathLike):
        return None
    text = str(path)
    if '://' not in text:
        return None
    return text.split('://', 1)[0][:40] + '://'


def refuse_remote(path, what: str = 'checkpoint') -> None:
    """Raise :class:`RemoteCheckpointError` naming the scheme when ``path`` is remote."""
    scheme = remote_scheme(path)
    if scheme is not None:
        raise RemoteCheckpointError(
            f'{path}: remote {what}s ({scheme}) are not downloaded nor loaded (a downloaded checkpoint '
            'could run code through loaders that are not the safe one); download the file, check where '
            'it comes from, and pass its local path: local files are read by the safe loader')


#: what an array rebuilt by numpy's ``_reconstruct`` may declare (numpy's own pickles declare shape
#: ``(0,)`` and give the data in the following ``__setstate__``, which numpy checks against the data)
MAX_NUMPY_RECONSTRUCT_BYTES = 1 << 26


def _numpy_multiarray():
    core = getattr(np, '_core', None) or np.core
    return core.multiarray


def numpy_reconstruct(subtype, shape, dtype):
    """numpy's ``_reconstruct`` (how a pickled ``ndarray`` is rebuilt) for plain arrays of a bounded size.

    Registered under ``numpy._core.multiarray._reconstruct`` and its numpy 1 name
    ``numpy.core.multiarray._reconstruct``. The real function allocates ``shape`` at once (and fills
    object arrays), so a crafted pickle could declare a huge array: more than
    :data:`MAX_NUMPY_RECONSTRUCT_BYTES` (or a subclass of ``ndarray``) is refused.
    """
    if subtype is not np.ndarray:
        raise UnsafeCheckpointError(f'numpy _reconstruct of {_describe(subtype)}: only numpy.ndarray is allowed')
    dims = shape if isinstance(shape, tuple) else (shape, )
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise UnsafeCheckpointError(f'numpy _reconstruct with shape {shape!r:.80}: expected a tuple of ints >= 0')
    try:
        itemsize = max(np.dtype(dtype).itemsize, 1)
    except (TypeError, ValueError) as err:
        raise UnsafeCheckpointError(f'numpy _reconstruct with dtype {dtype!r:.80}: {err}') from None
    count = math.prod(dims)
    if count * itemsize > MAX_NUMPY_RECONSTRUCT_BYTES:
        raise UnsafeCheckpointError(
            f'the checkpoint declares a numpy array of shape {dims} ({count} elements of {itemsize} bytes), '
            f'more than the {MAX_NUMPY_RECONSTRUCT_BYTES} bytes allowed (numpy itself pickles arrays as shape '
            '(0,) plus their data)')
    return _numpy_multiarray()._reconstruct(subtype, shape, dtype)


def numpy_scalar(dtype, *args):
    """numpy's ``scalar`` (how a pickled numpy scalar is rebuilt) for a bounded dtype and its data given.

    Registered under ``numpy._core.multiarray.scalar`` and its numpy 1 name. The real function called
    without data allocates a zeroed scalar of the dtype's size (``scalar(dtype('V2000000000'))``: 2 GB),
    so the dtype's item size is bounded by :data:`MAX_NUMPY_RECONSTRUCT_BYTES` and the data (numpy's own
    pickles always give it) is required.
    """
    try:
        itemsize = np.dtype(dtype).itemsize
    except (TypeError, ValueError) as err:
        raise UnsafeCheckpointError(f'numpy scalar with dtype {dtype!r:.80}: {err}') from None
    if itemsize > MAX_NUMPY_RECONSTRUCT_BYTES or len(args) != 1:
        raise UnsafeCheckpointError(
            f'the checkpoint rebuilds a numpy scalar of dtype {dtype!r:.80} ({itemsize} bytes) from '
            f'{len(args)} data argument(s): numpy pickles a scalar as its dtype plus its data, of at most '
            f'{MAX_NUMPY_RECONSTRUCT_BYTES} bytes here')
    return _numpy_multiarray().scalar(dtype, *args)


def _numpy_types() -> list:
    """numpy's types and rebuild functions, under their numpy 2 names and their numpy 1 names."""
    types_ = [np.ndarray, np.dtype]
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        types_.append((numpy_reconstruct, f'{module}._reconstruct'))
        types_.append((numpy_scalar, f'{module}.scalar'))
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


#: torch's allowed globals a checkpoint may call. torch's ``weights_only`` unpickler calls whatever allowed
#: global a pickle asks it to, and some allocate the size they are given (``bytearray(n)``,
#: ``torch.FloatStorage(n)``, ``torch.FloatTensor(n)``, ``_rebuild_wrapper_subclass``) or call an argument
#: (``_rebuild_from_type_v2``, which also sets attributes on the tensor): those may be named (a storage type
#: inside a persistent id), never called. ``torch.save`` of tensors, state dicts and MMEngine checkpoints
#: calls only these (plus the MMEngine / numpy rebuilders of :func:`mmengine_checkpoint_safe_globals`).
TORCH_CALLABLE_GLOBALS = frozenset({
    'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_tensor_v3', 'torch._utils._rebuild_parameter',
    'torch._utils._rebuild_meta_tensor_no_storage',
    'collections.OrderedDict', 'collections.Counter', 'builtins.set', 'builtins.complex', '_codecs.encode',
    'torch.Size', 'torch.device', 'torch.serialization._get_layout'})


#: allowed globals a checkpoint may only make through ``NEWOBJ`` (``cls.__new__``, no ``__init__``)
NEWOBJ_ONLY_GLOBALS = frozenset({'mmengine.logging.history_buffer.HistoryBuffer'})


def allowed_callable_names() -> Set[str]:
    """Full names of the globals a checkpoint may call (see :data:`TORCH_CALLABLE_GLOBALS`): numpy's
    ``ndarray`` may only be named (the type ``_reconstruct`` rebuilds), calling it allocates any shape."""
    ours = {_global_name(g) for g in mmengine_checkpoint_safe_globals()} - {'numpy.ndarray'}
    return set(TORCH_CALLABLE_GLOBALS) | ours


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
def check_zip_directory(filename: str, archive: zipfile.ZipFile,
                        file_size: Optional[int] = None) -> List[zipfile.ZipInfo]:
    """Check a zip checkpoint's directory before any member is read; returns its members.

    ``torch.save`` writes every member uncompressed (``ZIP_STORED``), once, under one top-level
    folder. Refused, naming the member: a compressed or encrypted member (torch would inflate it
    whatever its size: a decompression bomb), a declared size other than the stored size or larger
    than the file, a name with a NUL byte (Python's zipfile cuts it there, torch does not), two
    members whose names differ at most in case (torch's zip reader compares names ignoring case and
    takes the first, Python's the last).

    Raises:
        UnsafeCheckpointError: naming the member and what is wrong with it.
    """
    infos = archive.infolist()
    if file_size is None:
        file_size = osp.getsize(filename)
    seen = {}
    for info in infos:
        where = f'Refusing to load checkpoint {filename!r}: zip member {info.orig_filename!r}'
        if info.orig_filename != info.filename or '\x00' in info.orig_filename:
            raise UnsafeCheckpointError(f'{where} has a NUL byte in its name (torch.save never writes one)')
        key = info.filename.lower()
        if key in seen:
            raise UnsafeCheckpointError(
                f'{where} appears twice (also as {seen[key]!r}; names are compared ignoring case as torch '
                'does): torch would read one and a scan another, torch.save never writes this')
        seen[key] = info.filename
        if info.compress_type != zipfile.ZIP_STORED:
            raise UnsafeCheckpointError(
                f'{where} is compressed (method {info.compress_type}); torch.save stores members '
                'uncompressed, and torch would inflate it whatever its size (a decompression bomb)')
        if info.flag_bits & 0x1:
            raise UnsafeCheckpointError(f'{where} is encrypted (torch.save never encrypts)')
        if info.file_size != info.compress_size or info.file_size > file_size:
            raise UnsafeCheckpointError(
                f'{where} declares {info.file_size} bytes but stores {info.compress_size} (file size '
                f'{file_size}); an uncompressed member of torch.save stores exactly what it declares')
    return infos


def _torch_zip_view(f, filename: str, infos: List[zipfile.ZipInfo]):
    """torch's own zip reader on the open checkpoint ``f``, checked to see the same members as Python's zipfile.

    Returns:
        (``torch._C.PyTorchFileReader``, the top-level folder of the members, e.g. ``'archive/'``).
    """
    try:
        f.seek(0)
        reader = torch._C.PyTorchFileReader(f)
        records = list(reader.get_all_records())
    except Exception as err:  # torch's reader refuses the directory (no common folder, no version, ...)
        raise CheckpointFormatError(f'{filename}: not a checkpoint torch can read '
                                    f'({str(err).splitlines()[0] if str(err) else type(err).__name__})') from err
    prefix = infos[0].filename.split('/', 1)[0] + '/' if infos else ''
    ours = sorted(i.filename[len(prefix):].lower() if i.filename.startswith(prefix) else '/' + i.filename
                  for i in infos)
    if ours != sorted(r.lower() for r in records):
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint {filename!r}: its zip directory reads differently with torch '
            f'({len(records)} members) and with Python ({len(infos)} members); torch.save never writes this')
    # the same names can still come from two directories (one for each reader: Python's zipfile reads a
    # directory that does not end where the end record starts as if data were prepended, torch's reader
    # does not): every record must start at the same byte and hold the same size in both readers' views
    by_name = {r.lower(): r for r in records}
    for info in infos:
        record = by_name[info.filename[len(prefix):].lower()]
        try:
            torch_view = (reader.get_record_offset(record), reader.get_record_size(record))
        except Exception as err:  # noqa: BLE001 (torch's reader refuses the local header)
            torch_view = (None, str(err).splitlines()[0] if str(err) else type(err).__name__)
        python_view = (_zip_data_offset(f, info), info.file_size)
        if torch_view != python_view:
            raise UnsafeCheckpointError(
                f'Refusing to load checkpoint {filename!r}: zip member {info.filename!r} is at byte '
                f'{python_view[0]} with {python_view[1]} bytes for Python but at {torch_view[0]} with '
                f'{torch_view[1]} bytes for torch (two zip directories); torch.save never writes this')
    return reader, prefix


def _zip_data_offset(f, info: zipfile.ZipInfo) -> Optional[int]:
    """Where member ``info``'s data starts: after its local header (None: no local header there)."""
    f.seek(info.header_offset)
    header = f.read(30)
    if len(header) != 30 or header[:4] != b'PK\x03\x04':
        return None
    name_len, extra_len = struct.unpack('<HH', header[26:30])
    return info.header_offset + 30 + name_len + extra_len


def _checkpoint_pickles(f, filename: str) -> Iterator[io.BufferedIOBase]:
    """The pickle streams of the open checkpoint ``f`` (``filename`` names it in messages).

    Zip: the ``data.pkl`` record exactly as torch's zip reader returns it (what ``torch.load`` unpickles;
    names compare ignoring case), then every other member whose name ends in ``.pkl`` in any case,
    after :func:`check_zip_directory`. Legacy: the first five pickles.
    """
    f.seek(0)
    head = f.read(4)
    f.seek(0)
    if head == _ZIP_MAGIC:
        try:
            with zipfile.ZipFile(f) as archive:
                infos = check_zip_directory(filename, archive, os.fstat(f.fileno()).st_size)
                reader, prefix = _torch_zip_view(f, filename, infos)
                if reader.has_record('data.pkl'):
                    yield io.BytesIO(reader.get_record('data.pkl'))
                for info in infos:
                    name = info.filename.lower()
                    if name.endswith('.pkl') and name != (prefix + 'data.pkl').lower():
                        with archive.open(info) as member:
                            yield member
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise CheckpointFormatError(
                f'{filename}: damaged checkpoint (not a complete zip archive: {err}); '
                'was the save interrupted?') from err
        return
    for _ in range(_LEGACY_PICKLES):
        start = f.tell()
        if not f.read(1):
            break  # fewer pickles than a real legacy checkpoint: torch.load reports it
        f.seek(start)
        yield f


def unsafe_globals_in_checkpoint(filename: str, f=None) -> List[str]:
    """Globals referenced by ``filename``'s pickles that are not on the allow-list, and allowed globals it
    calls that may only be named (``'<name> (called)'``; :func:`allowed_callable_names`).

    ``f``: the checkpoint already open (``filename`` then only names it); by default ``filename`` is opened.
    """
    if f is None:
        with _open_checkpoint(filename) as opened:
            return unsafe_globals_in_checkpoint(filename, opened)
    allowed, callable_ = allowed_global_names(), allowed_callable_names()
    offending = []
    for stream in _checkpoint_pickles(f, filename):
        try:
            scan = scan_pickle(stream)
        except (ValueError, EOFError) as err:  # pickletools: truncated or not a pickle
            raise CheckpointFormatError(
                f'{filename}: damaged checkpoint (unreadable pickle: {err}); was the save interrupted?') from err
        found = [n for n in scan.referenced if n not in allowed]
        found += [f'{n} (called)' for n in scan.called if n in allowed and n not in callable_]
        found += [f'{n} (called)' for n in scan.called if n == DYNAMIC]
        # MMEngine pickles a HistoryBuffer as NEWOBJ (__new__) + BUILD; REDUCE would run its __init__ (np.array
        # of whatever the pickle passes, e.g. an object whose __array_interface__ points anywhere in memory)
        found += [f'{n} (called by {op}; only NEWOBJ, as MMEngine writes it)' for n, op in scan.calls
                  if n in NEWOBJ_ONLY_GLOBALS and op != 'NEWOBJ']
        found += scan.build_problems
        offending += [n for n in found if n not in offending]
    return offending


def _open_checkpoint(filename: str):
    """Open a checkpoint once for reading: the checks and the load read this one open file.

    Opened without blocking (a FIFO or device given as a checkpoint would wait for a writer), then required
    to be a regular file.

    Raises:
        FileNotFoundError: no such file.
        CheckpointFormatError: not a regular file.
    """
    try:
        fd = os.open(filename, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0) | getattr(os, 'O_BINARY', 0))
    except IsADirectoryError:
        raise CheckpointFormatError(f'{filename}: not a file (expected a checkpoint written by torch.save)') from None
    except FileNotFoundError:
        raise FileNotFoundError(f'checkpoint not found: {filename}') from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CheckpointFormatError(f'{filename}: not a file (expected a checkpoint written by torch.save)')
    return os.fdopen(fd, 'rb')


def _file_state(f) -> tuple:
    """What changes when a file is written, renamed over or removed: size, modification and status-change
    times (the latter cannot be set back by a user)."""
    st = os.fstat(f.fileno())
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def check_checkpoint_file(filename: str, f=None) -> None:
    """Clear errors for what is not a torch checkpoint file: missing, empty, text, other formats.

    ``f``: the checkpoint already open (``filename`` then only names it); by default ``filename`` is opened.
    """
    if f is None:
        with _open_checkpoint(filename) as opened:
            return check_checkpoint_file(filename, opened)
    size = os.fstat(f.fileno()).st_size
    if size == 0:
        raise CheckpointFormatError(f'{filename}: empty file (0 bytes), not a checkpoint; was the save interrupted?')
    f.seek(0)
    head = f.read(64)
    if head.startswith(_ZIP_MAGIC):
        return
    if head[:3] == b'\x80\x02\x8a' and _first_pickle_integer(f) == _LEGACY_MAGIC_NUMBER:
        # legacy format: PROTO 2, LONG1 <magic number>; torch.load would read a file that is also a tar
        # archive as torch's oldest (tar) format instead, whose storages our scan does not see
        try:
            f.seek(0)
            with tarfile.open(fileobj=f, mode='r:'):
                pass
        except (tarfile.TarError, OSError, EOFError, ValueError):
            return
        raise UnsafeCheckpointError(f'Refusing to load checkpoint {filename!r}: it is also a tar archive, '
                                    "which torch.load would read in torch's oldest (tar) format")
    raise CheckpointFormatError(
        f'{filename}: not a PyTorch checkpoint (expected the zip archive written by torch.save or '
        f'the legacy torch format; the file starts with {head[:16]!r})')


def _first_pickle_integer(f) -> Optional[int]:
    """The integer of an open file's first pickle when it is only ``PROTO, LONG1, STOP`` (read statically),
    else None."""
    f.seek(0)
    try:
        ops = [(op.name, arg) for op, arg, _pos in pickletools.genops(f)]
    except (ValueError, EOFError):
        return None
    return ops[1][1] if [name for name, _arg in ops] == ['PROTO', 'LONG1', 'STOP'] else None


def safe_load_local(filename: str, map_location=None):
    """Load a local checkpoint without ever running pickled code.

    Raises:
        RemoteCheckpointError: a URL or remote prefix (``http://``, ``s3://``, ``open-mmlab://``, any
            ``scheme://``), named in the message; nothing is downloaded.
        FileNotFoundError: no such file.
        CheckpointFormatError: not a (complete) torch checkpoint (empty, text, truncated).
        UnsafeCheckpointError: it references globals outside the allow-list (named in
            the message) or misuses an allowed one; a zip member is compressed, duplicated or
            declares another size than it stores; it declares a huge numpy array; an object holds
            attributes its type does not have.
    """
    refuse_remote(filename)
    filename = os.fspath(filename)
    # one open file for the checks and the load, and a file that changed meanwhile (written in place,
    # renamed over or removed: its status-change time moves, which no user can set back) is refused; torch's
    # weights-only unpickler under our exact allow-list runs no code in any case
    with _open_checkpoint(filename) as f:
        before = _file_state(f)
        checkpoint = _load_checked(f, filename, map_location)
        if _file_state(f) != before:
            raise UnsafeCheckpointError(
                f'Refusing to load checkpoint {filename!r}: the file changed while it was checked and loaded '
                '(written, renamed over or removed meanwhile); load it again')
    check_rebuilt_objects(checkpoint, filename)
    return checkpoint


def _load_checked(f, filename: str, map_location):
    """:func:`safe_load_local`'s checks and load, on the open checkpoint ``f``."""
    check_checkpoint_file(filename, f)
    offending = unsafe_globals_in_checkpoint(filename, f)
    if offending:
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint {filename!r}: it references {offending}, which are not '
            'on the allow-list (tensors, containers, numbers, strings, numpy arrays/scalars, '
            "MMEngine's HistoryBuffer; storage types may be named, not called). Loading it could run "
            'arbitrary code or allocate without bound.')
    try:
        with exact_safe_globals(mmengine_checkpoint_safe_globals()), _history_buffer_registry_kept(filename):
            f.seek(0)
            checkpoint = torch.load(f, map_location=map_location, weights_only=True)
    except UnsafeCheckpointError as err:
        raise UnsafeCheckpointError(f'Refusing to load checkpoint {filename!r}: {err}') from None
    except pickle.UnpicklingError as err:
        original = err.__context__  # torch re-raises the unpickler's error with its advice, `from None`
        if isinstance(original, UnsafeCheckpointError):  # ours (numpy_reconstruct, history_buffer_getattr)
            raise UnsafeCheckpointError(f'Refusing to load checkpoint {filename!r}: {original}') from None
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint {filename!r}: the safe unpickler rejected it: '
            f'{_unpickler_reason(err)}') from None
    except (EOFError, RuntimeError) as err:
        raise CheckpointFormatError(
            f'{filename}: damaged checkpoint ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ""}); '
            'was the save interrupted?') from err
    except MemoryError as err:
        raise CheckpointFormatError(f'{filename}: loading it needs more memory than is available '
                                    f'(MemoryError: {err})') from None
    except Exception as err:  # an allowed type rebuilt with arguments or a state it does not take
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint {filename!r}: the safe unpickler could not rebuild an object '
            f'({type(err).__name__}: {_unpickler_reason(err)}); torch.save does not write such a pickle '
            '(the file is damaged or crafted)') from None
    return checkpoint


@contextlib.contextmanager
def _history_buffer_registry_kept(filename: str) -> Iterator[None]:
    """Refuse a checkpoint that changes ``HistoryBuffer``'s class-wide statistics registry.

    ``HistoryBuffer.__setstate__`` merges a pickled ``statistics_methods`` dict into the registry that
    every buffer of the process uses; MMEngine checkpoints hold its default methods under their own
    names (``{'mean': HistoryBuffer.mean, ...}``). Any other change (``'mean'`` mapped to another
    allowed function, a new name) is undone and refused.

    Raises:
        UnsafeCheckpointError: naming the statistics method(s).
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    registry = HistoryBuffer._statistics_methods
    before = dict(registry)
    try:
        yield
    finally:
        changed = sorted(str(name) for name, method in registry.items() if before.get(name) is not method and not (
            name in _HISTORY_BUFFER_STATISTICS and method is HistoryBuffer.__dict__.get(name)))
        if changed:
            registry.clear()
            registry.update(before)
    if changed:
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint {filename!r}: it changes the statistics methods {changed} of '
            "MMEngine's HistoryBuffer (shared by the whole process); MMEngine checkpoints only hold "
            f'the default ones ({sorted(_HISTORY_BUFFER_STATISTICS)}) under their own names')


#: lower-case markers of the line of torch's weights-only message that says what was refused
_UNPICKLER_MARKERS = ('refusing builtins.getattr', 'unsupported global', 'weightsunpickler error',
                      'can only build', 'can only create new object', 'trying to call reduce')


def _unpickler_reason(err: Exception) -> str:
    """The line of torch's (long) weights-only message that says what was refused (torch's advice to
    pass ``weights_only=False`` is left out): the unpickler's own error when torch chained it, else
    the line with one of :data:`_UNPICKLER_MARKERS`."""
    original = err.__context__
    if isinstance(original, pickle.UnpicklingError) and str(original).strip():
        return str(original).strip().splitlines()[0]
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for marker in _UNPICKLER_MARKERS:
        for line in lines:
            if marker in line.lower():
                return line
    return lines[0] if lines else type(err).__name__


def _rebuilt_types() -> tuple:
    """Allowed types the unpickler rebuilds by setting attributes (``BUILD`` of a type without
    ``__setstate__``)."""
    from mmengine.logging.history_buffer import HistoryBuffer
    return (HistoryBuffer, OrderedDict, Counter)


def _rebuilt_tensor_problem(value: torch.Tensor) -> Optional[str]:
    """What a loaded tensor (anywhere in a checkpoint: weights, optimizer states, ...) must not be: a subclass
    or a tensor carrying attributes or backward hooks (they run when gradients flow), or a view of more
    values than its storage holds (stride 0: an optimizer's dtype cast or a deep copy allocates them all)."""
    if type(value) not in (torch.Tensor, torch.nn.Parameter) or vars(value):
        return f'a {type(value).__name__} carrying attributes {sorted(map(str, vars(value)))[:5]}'
    if torch.Tensor._backward_hooks.__get__(value):
        return 'a tensor with backward hooks'
    if value.layout == torch.strided and not value.is_meta:
        numel, stored = torch.Tensor.numel(value), torch.Tensor.untyped_storage(value).nbytes()
        if numel and numel * torch.Tensor.element_size(value) > stored:
            return f'a view of {numel} values over a storage of {stored} bytes (overlapping strides)'
    return None


def check_rebuilt_objects(obj, filename: str, max_depth: int = 32) -> None:
    """Refuse objects of a loaded checkpoint whose rebuilt attributes shadow their type's.

    The safe unpickler rebuilds an allowed type without ``__setstate__`` (``HistoryBuffer``,
    ``OrderedDict``) by updating its ``__dict__`` and ``setattr``-ing a second state: a crafted pickle
    could so give a ``HistoryBuffer`` its own ``_statistics_methods`` or ``mean``. An attribute that is
    a dunder or that the type itself defines (a method, a class attribute) is refused; data
    attributes (``HistoryBuffer``'s ``_log_history``, a state dict's ``_metadata``) are kept. Walks
    containers (``dict``, ``list``, ``tuple``, ``set``) and those objects down to ``max_depth``.

    Raises:
        UnsafeCheckpointError: naming the object's place in the checkpoint and the attributes.
    """
    rebuilt = _rebuilt_types()
    seen = set()
    stack = [(obj, 'checkpoint', 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, torch.Tensor) and id(item) not in seen:
            seen.add(id(item))
            problem = _rebuilt_tensor_problem(item)
            if problem:
                raise UnsafeCheckpointError(f'Refusing to load checkpoint {filename!r}: {where} is {problem}; '
                                            'torch.save of weights and optimizer states never writes this')
            continue
        if id(item) in seen or isinstance(item, (torch.Tensor, np.ndarray, str, bytes, int, float)):
            continue
        seen.add(id(item))
        attributes = vars(item) if isinstance(item, rebuilt) and hasattr(item, '__dict__') else {}
        shadowing = sorted(str(name) for name in attributes
                           if not isinstance(name, str) or name.startswith('__') or hasattr(type(item), name))
        if shadowing:
            raise UnsafeCheckpointError(
                f'Refusing to load checkpoint {filename!r}: {where} (a {type(item).__name__}) was rebuilt with '
                f'attributes {shadowing} that replace its type\'s own; torch.save / MMEngine never write these')
        if depth >= max_depth:
            continue
        if isinstance(item, dict):
            stack.extend((value, f'{where}[{key!r:.40}]', depth + 1) for key, value in item.items())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend((value, f'{where}[{i}]', depth + 1) for i, value in enumerate(item))
        stack.extend((value, f'{where}.{key}', depth + 1) for key, value in attributes.items())


def _is_float_name(key: str) -> bool:
    """Parameters named ``*.weight`` / ``*.bias`` are floating point in every model we convert."""
    return key.rsplit('.', 1)[-1] in ('weight', 'bias')


def _tensor_problem(key: str, value: torch.Tensor, ours, has_reference: bool) -> Optional[str]:
    """Why ``value`` cannot be the weights of ``key`` (None: it can); see :func:`check_state_dict_values`.
    Calls ``torch.Tensor``'s own methods: an instance attribute (``t.numel = complex``, kept by the pickle)
    cannot answer for them; such tensors are refused anyway."""
    tensor = torch.Tensor
    if type(value) not in (torch.Tensor, torch.nn.Parameter) or vars(value):
        attributes = sorted(map(str, vars(value)))
        return (f'a {type(value).__name__} carrying attributes {attributes[:5]} (torch.save of weights writes '
                'plain tensors)')
    if value.layout != torch.strided:  # layout, is_meta, dtype: data descriptors, not shadowed by instances
        return f'a {value.layout} tensor (weights are dense, strided tensors)'
    if value.is_meta:
        return None  # no values to check (MMEngine's loader reports what a meta tensor cannot fill)
    dtype = value.dtype
    numel = tensor.numel(value)
    stored = tensor.untyped_storage(value).nbytes()
    if numel and numel * tensor.element_size(value) > stored:
        return (f'{numel} values viewed from a storage of {stored} bytes (overlapping strides; torch.save '
                'of weights stores every value)')
    ours = ours if isinstance(ours, torch.Tensor) else None
    wants_float = ours.is_floating_point() if ours is not None else (not has_reference and _is_float_name(key))
    if wants_float and not dtype.is_floating_point:
        target = f'the model\'s {ours.dtype} tensor' if ours is not None else 'a floating-point parameter'
        kind = 'complex' if dtype.is_complex else str(dtype)
        return f'{kind} values for {target}' + (' (the imaginary part would be dropped)' if dtype.is_complex else '')
    if not (dtype.is_floating_point or dtype.is_complex) or numel == 0:
        return None
    # what the model will hold: the values cast to its dtype (1e300 in float64 is inf in float32)
    target_dtype = ours.dtype if ours is not None and ours.is_floating_point() else (
        torch.float32 if wants_float and dtype == torch.float64 else dtype)
    values = tensor.to(value, target_dtype) if target_dtype != dtype else value
    finite = torch.isfinite(values)
    if bool(finite.all()) or (ours is not None and ours.shape == value.shape and not bool(torch.isfinite(ours).all())):
        return None
    nan = int(torch.isnan(values).sum())
    cast = f' once cast to {target_dtype}' if target_dtype != dtype else ''
    return f'{nan} NaN and {int((~finite).sum()) - nan} inf{cast} of {numel} values'


def check_state_dict_values(state_dict: Mapping[str, object], filename: str,
                            reference: Optional[Mapping[str, torch.Tensor]] = None,
                            max_listed: int = 10) -> None:
    """Refuse weights a model cannot use: non-finite values (also once cast to the model's dtype: 1e300 in
    float64 is inf in float32), non-float or complex tensors for float ones, sparse tensors, tensors that view
    more values than they store or carry attributes, keys that are not strings.

    Args:
        state_dict (Mapping[str, Tensor]): the checkpoint's weights (any shapes).
        filename (str): named in the error.
        reference (Mapping[str, Tensor], optional): the model's own ``state_dict()``: a tensor whose
            model counterpart is floating point must be floating point (``copy_`` would silently cast
            integers), and NaN/inf is accepted only where the model's own tensor has NaN/inf too.
            Without it, tensors named ``*.weight`` / ``*.bias`` must be floating point.
        max_listed (int): offenders listed in the message (all are counted).

    Raises:
        CheckpointValueError: naming the tensors (key, dtype, how many NaN / inf values).
    """
    problems = []
    for key, value in state_dict.items():
        if not isinstance(key, str):
            problems.append(f'{key!r}: a key of type {type(key).__name__} (state dict keys are parameter names)')
            continue
        if not isinstance(value, torch.Tensor):
            continue
        problem = _tensor_problem(key, value, reference.get(key) if reference is not None else None,
                                  has_reference=reference is not None)
        if problem:
            problems.append(f'{key}: {problem}')
    if problems:
        listed = problems[:max_listed] + ([f'... ({len(problems) - max_listed} more)']
                                          if len(problems) > max_listed else [])
        raise CheckpointValueError(f'{filename}: {len(problems)} tensor(s) cannot be used as weights '
                                   '(a diverged or corrupted training, or a wrong file):\n  ' + '\n  '.join(listed))


def checkpoint_state_dict(checkpoint: dict) -> Dict[str, object]:
    """The weights of a checkpoint as MMEngine takes them: ``checkpoint['state_dict']`` (or the dict
    itself), keys without the ``module.`` prefix of wrapped models."""
    state_dict = checkpoint['state_dict'] if 'state_dict' in checkpoint else checkpoint
    if not isinstance(state_dict, Mapping):
        raise CheckpointFormatError(f"expected 'state_dict' to be a dict of tensors, got {type(state_dict).__name__}")
    return {(key[len('module.'):] if isinstance(key, str) and key.startswith('module.') else key): value
            for key, value in state_dict.items()}


def load_checkpoint_to_model(model: torch.nn.Module, checkpoint: dict, filename: str, strict: bool = True,
                             logger=None, check_values: bool = True,
                             hint: str = 'pass --non-strict / strict=False to load it anyway') -> None:
    """Put an already (safely) loaded checkpoint's weights into ``model`` (wrapped or not).

    With ``strict`` (default) a missing, unexpected or shape-mismatched key is a
    :class:`CheckpointMismatchError` listing all of them (MMEngine's ``load_state_dict``
    messages); otherwise they are logged as warnings. With ``check_values`` (default) the weights
    are first checked by :func:`check_state_dict_values` against the model's own tensors
    (NaN/inf, integers for float parameters: :class:`CheckpointValueError`, whatever ``strict``).
    ``hint`` ends the mismatch message (what the user can do).
    """
    from mmengine.model import is_model_wrapper
    from mmengine.runner.checkpoint import _load_checkpoint_to_model
    if not isinstance(checkpoint, dict):
        raise CheckpointFormatError(f'{filename}: expected a dict (state_dict or MMEngine checkpoint), '
                                    f'got {type(checkpoint).__name__}')
    if is_model_wrapper(model):
        model = model.module
    if check_values:
        try:
            state_dict = checkpoint_state_dict(checkpoint)
        except CheckpointFormatError as err:
            raise CheckpointFormatError(f'{filename}: {err}') from None
        check_state_dict_values(state_dict, filename, reference=model.state_dict())
    try:
        _load_checkpoint_to_model(model, checkpoint, strict=strict, logger=logger)
    except RuntimeError as err:
        raise CheckpointMismatchError(
            f'checkpoint {filename} does not fit the model ({hint}):\n{err}') from None


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's keys or shapes do not fit the model (strict loading)."""


#: MMEngine's remote checkpoint prefixes (also refused when a version of MMEngine does not register them)
REMOTE_PREFIXES = ('http://', 'https://', 's3://', 'open-mmlab://', 'openmmlab://', 'mmcls://',
                   'torchvision://', 'pavi://', 'modelzoo://')


def install_safe_checkpoint_loading() -> None:
    """Make MMEngine load every checkpoint through :func:`safe_load_local` in this process.

    Local paths are loaded safely; every remote prefix MMEngine knows (``http(s)://``, ``s3://``,
    ``open-mmlab://``, ``torchvision://``... and any other it has registered) goes to
    :func:`safe_load_local` too, which refuses it naming the scheme (MMEngine would otherwise
    download and unpickle it without ``weights_only``). For our entry points (``tools/train.py``,
    ``tools/test.py``); ``import soc_mm`` does not call it (it only allow-lists MMEngine's checkpoint
    types, see :func:`register_safe_globals`); see also :func:`safe_checkpoint_loading`.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    register_safe_globals()
    prefixes = sorted((set(CheckpointLoader._schemes) | set(REMOTE_PREFIXES)) - {''})
    CheckpointLoader.register_scheme(prefixes=prefixes, force=True)(safe_load_local)
    CheckpointLoader.register_scheme(prefixes='', force=True)(safe_load_local)


@contextlib.contextmanager
def safe_checkpoint_loading() -> Iterator[None]:
    """:func:`install_safe_checkpoint_loading` inside the block only (MMEngine's loaders restored after),
    e.g. around a model's ``init_weights`` (``init_cfg=dict(type='Pretrained', checkpoint=...)``)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    saved = dict(CheckpointLoader._schemes)
    install_safe_checkpoint_loading()
    try:
        yield
    finally:
        CheckpointLoader._schemes.clear()
        CheckpointLoader._schemes.update(saved)


__all__ = ['UnsafeCheckpointError', 'CheckpointFormatError', 'CheckpointMismatchError', 'RemoteCheckpointError',
           'CheckpointValueError', 'safe_load_local', 'load_checkpoint_to_model', 'register_safe_globals',
           'install_safe_checkpoint_loading', 'safe_checkpoint_loading', 'mmengine_checkpoint_safe_globals',
           'history_buffer_getattr', 'unsafe_globals_in_checkpoint', 'check_checkpoint_file', 'exact_safe_globals',
           'check_state_dict_values', 'checkpoint_state_dict', 'check_zip_directory', 'check_rebuilt_objects',
           'remote_scheme', 'refuse_remote', 'numpy_reconstruct', 'MAX_NUMPY_RECONSTRUCT_BYTES']
