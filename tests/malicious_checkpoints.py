"""A corpus of malicious checkpoints: pickles that run code or patch globals when unpickled unsafely.

Every payload tries to create its own marker file (and some to change a global), so a test can
check that loading it ran nothing. Each is written in both checkpoint containers torch reads:
the zip archive of ``torch.save`` (payload as ``archive/data.pkl``) and the legacy format (magic
number, protocol, sys-info pickles, then the payload). The payloads are built opcode by opcode so
that they cover what an attacker who reads our loader would try:

* classic ``REDUCE`` of ``os.system`` / ``posix.system`` / ``subprocess.Popen``, ``builtins.eval``
  called through an allowed torch rebuild function, a custom class with ``__setstate__``;
* ``builtins.getattr`` chains from allowed objects to ``eval`` / ``exec`` / ``__import__`` /
  ``os.system`` (``getattr(getattr, '__self__')`` is the ``builtins`` module) called through
  ``torch._tensor._rebuild_from_type_v2``; ``__globals__`` / ``__builtins__`` dicts reached through
  ``HistoryBuffer`` and written with ``SETITEM``; dunder and non-statistics names on HistoryBuffer;
* other pickle protocols: protocol 0 ``INST``, protocol 4/5 ``STACK_GLOBAL`` (also with the names
  taken from the memo) inside ``FRAME``s;
* a payload hidden deep inside an otherwise ordinary MMEngine checkpoint.
"""
import os
import pickle
import struct
import zipfile
from typing import Callable, Dict, List, Tuple

PWNED_ATTR = 'SOC_MM_PWNED'  # the name payloads try to plant in patched namespaces


class Evil:
    """A custom class whose ``__setstate__`` touches a file (pickled by reference to this module)."""

    def __setstate__(self, state):
        open(state['marker'], 'w').close()


# ----------------------------------------------------------------------------- opcode helpers
def _s(text: str) -> bytes:
    data = text.encode('utf-8')
    return b'X' + struct.pack('<I', len(data)) + data


def _g(module: str, name: str) -> bytes:
    return b'c' + module.encode() + b'\n' + name.encode() + b'\n'


def _call(func: bytes, *args: bytes) -> bytes:
    return func + b'(' + b''.join(args) + b'tR'


def _getattr(obj: bytes, name: str) -> bytes:
    return _call(_g('builtins', 'getattr'), obj, _s(name))


def _via_rebuild(func: bytes, result_type: bytes, *args: bytes) -> bytes:
    """``torch._tensor._rebuild_from_type_v2(func, result_type, args, {})`` returns ``func(*args)``.

    (It converts the result with ``as_subclass`` unless its type is ``result_type``.)
    """
    return _call(_g('torch._tensor', '_rebuild_from_type_v2'), func, result_type,
                 b'(' + b''.join(args) + b't', b'}')


def _type_of(obj: bytes) -> bytes:
    return _getattr(obj, '__class__')


def _wrap(obj: bytes) -> bytes:
    """A protocol-2 pickle of ``{'state_dict': {}, 'meta': obj}``."""
    return b'\x80\x02}(' + _s('state_dict') + b'}' + _s('meta') + obj + b'u.'


def _shell(marker: str) -> str:
    return f'touch {marker}'


def _py(marker: str) -> str:
    return f"open({marker!r}, 'w').close()"


_BUILTINS = _getattr(_g('builtins', 'getattr'), '__self__')
_HB = _g('mmengine.logging.history_buffer', 'HistoryBuffer')
_NONE_TYPE = _type_of(b'N')


def _payloads() -> Dict[str, Callable[[str], bytes]]:
    p: Dict[str, Callable[[str], bytes]] = {}
    p['os_system_reduce'] = lambda m: _wrap(_call(_g('os', 'system'), _s(_shell(m))))
    p['posix_system_reduce'] = lambda m: _wrap(_call(_g('posix', 'system'), _s(_shell(m))))
    p['subprocess_popen'] = lambda m: _wrap(
        _call(_g('subprocess', 'check_call'), b'(' + _s('touch') + _s(m) + b'l'))
    p['eval_through_rebuild'] = lambda m: _wrap(
        _call(_g('torch._tensor', '_rebuild_from_type_v2'), _g('builtins', 'eval'), _g('torch', 'Tensor'),
              b'(' + _s(_py(m)) + b't', b'}'))
    p['custom_class_setstate'] = lambda m: _wrap(
        _g(__name__, 'Evil') + b')\x81}' + _s('marker') + _s(m) + b'sb')
    p['getattr_chain_eval'] = lambda m: _wrap(_via_rebuild(_getattr(_BUILTINS, 'eval'), _NONE_TYPE, _s(_py(m))))
    p['getattr_chain_exec'] = lambda m: _wrap(_via_rebuild(_getattr(_BUILTINS, 'exec'), _NONE_TYPE, _s(_py(m))))
    p['getattr_chain_import_os_system'] = lambda m: _wrap(_via_rebuild(
        _getattr(_via_rebuild(_getattr(_BUILTINS, '__import__'), _type_of(_BUILTINS), _s('os')), 'system'),
        _type_of(b'K\x00'), _s(_shell(m))))
    p['getattr_history_buffer_globals'] = lambda m: _wrap(
        _getattr(_getattr(_HB, '__init__'), '__globals__') + _s(PWNED_ATTR) + _s(m) + b's')
    p['getattr_history_buffer_builtins'] = lambda m: _wrap(
        _getattr(_getattr(_HB, '__init__'), '__builtins__') + _s(PWNED_ATTR) + _s(m) + b's')
    p['getattr_history_buffer_register_statistics'] = lambda m: _wrap(
        _via_rebuild(_getattr(_HB, 'register_statistics'), _type_of(_g('_codecs', 'encode')),
                     _g('_codecs', 'encode')))
    p['getattr_history_buffer_class_dict'] = lambda m: _wrap(_getattr(_HB, '__dict__'))
    p['protocol0_inst'] = lambda m: (b'(S' + repr(_shell(m)).encode() + b'\nios\nsystem\n.')
    p['protocol4_stack_global'] = lambda m: _frame(4, _s('os') + _s('system') + b'\x93' + _s(_shell(m))
                                                   + b'\x85R.')
    p['protocol5_stack_global_memo'] = lambda m: _frame(
        5, _s('builtins') + b'\x94' + _s('eval') + b'\x94' + b'h\x00h\x01\x93' + _s(_py(m)) + b'\x85R.')
    p['hidden_in_mmengine_checkpoint'] = lambda m: (
        b'\x80\x02}(' + _s('meta') + b'}(' + _s('epoch') + b'K\x03' + _s('hook_msgs') + b'}('
        + _s('last_ckpt') + _call(_g('os', 'system'), _s(_shell(m))) + b'uu'
        + _s('state_dict') + _g('collections', 'OrderedDict') + b')R' + _s('message_hub') + b'}u.')
    return p


def _frame(protocol: int, body: bytes) -> bytes:
    return bytes([0x80, protocol]) + b'\x95' + struct.pack('<Q', len(body)) + body


PAYLOADS = _payloads()
#: payloads that only the (formerly allow-listed) generic ``builtins.getattr`` would let run
GETATTR_PAYLOADS = tuple(name for name in PAYLOADS if name.startswith('getattr_'))
#: probes that reach for more than HistoryBuffer's statistics methods but neither run code nor plant names
#: (they must be refused all the same)
PROBES = ('getattr_history_buffer_register_statistics', 'getattr_history_buffer_class_dict')


# ----------------------------------------------------------------------------- containers
def write_zip(path: str, payload: bytes) -> None:
    """The ``torch.save`` zip layout with ``payload`` as its data.pkl."""
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as archive:
        archive.writestr('archive/data.pkl', payload)
        archive.writestr('archive/byteorder', b'little')
        archive.writestr('archive/version', b'3\n')


def write_legacy(path: str, payload: bytes) -> None:
    """The legacy (pre-1.6) ``torch.save`` layout with ``payload`` as the saved object."""
    sys_info = dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=4))
    with open(path, 'wb') as f:
        f.write(pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2))
        f.write(pickle.dumps(1001, protocol=2))
        f.write(pickle.dumps(sys_info, protocol=2))
        f.write(payload)
        f.write(pickle.dumps([], protocol=2))


def build_corpus(folder: str) -> List[Tuple[str, str, str]]:
    """Write every payload in both containers; returns ``(checkpoint, marker, payload name)`` rows.

    Markers live in ``folder/markers/`` and do not exist until a payload runs.
    """
    os.makedirs(os.path.join(folder, 'markers'), exist_ok=True)
    rows = []
    for name, build in PAYLOADS.items():
        for container, write in (('zip', write_zip), ('legacy', write_legacy)):
            marker = os.path.join(folder, 'markers', f'{name}.{container}')
            path = os.path.join(folder, f'{name}.{container}.pth')
            write(path, build(marker))
            rows.append((path, marker, name))
    return rows


def planted_globals() -> List[str]:
    """What payloads changed in the namespaces they reach (must stay empty)."""
    import builtins

    import mmengine.logging.history_buffer as history_buffer
    changed = [where for where, namespace in (('builtins', vars(builtins)),
                                              ('mmengine.logging.history_buffer', vars(history_buffer)))
               if PWNED_ATTR in namespace]
    extra = set(history_buffer.HistoryBuffer._statistics_methods) - {'min', 'max', 'current', 'mean'}
    if extra:
        changed.append(f'HistoryBuffer._statistics_methods gained {sorted(extra)}')
    return changed


# ----------------------------------------------------------------------------- containers that hide, bombs
def torch_zip_members(obj) -> List[Tuple[str, bytes]]:
    """``(name, data)`` of each member of ``torch.save(obj)`` (a zip), in its order."""
    import io

    import torch
    buf = io.BytesIO()
    torch.save(obj, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def write_members(path: str, members: List[Tuple[str, bytes]], compress: Tuple[str, ...] = ()) -> None:
    """A zip of ``members`` in that order (duplicate names kept), deflating those whose name ends with
    one of ``compress``."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as archive:
            for name, data in members:
                method = zipfile.ZIP_DEFLATED if name.endswith(compress) and compress else zipfile.ZIP_STORED
                archive.writestr(zipfile.ZipInfo(name), data, compress_type=method)


def write_compressed_bomb(path: str, inflated_bytes: int, member: str = 'data/0') -> None:
    """A valid checkpoint whose ``member`` is deflate-compressed from ``inflated_bytes`` of zeros: a small
    file torch inflates in full. ``'data/0'``: the record of ``state_dict['w']``; ``'data.pkl'``: the
    pickle, holding ``meta['pad']`` of that many zero bytes."""
    import torch
    if member == 'data.pkl':
        obj = {'state_dict': {'w': torch.zeros(4)}, 'meta': {'pad': bytes(inflated_bytes)}}
    else:
        obj = {'state_dict': {'w': torch.zeros(inflated_bytes // 4)}}
    write_members(path, torch_zip_members(obj), compress=(member, ))


def write_upper_case_pickle(path: str, payload: bytes) -> None:
    """The zip layout with ``payload`` as ``archive/DATA.PKL`` (torch's reader ignores case)."""
    write_members(path, [('archive/DATA.PKL', payload), ('archive/byteorder', b'little'),
                         ('archive/version', b'3\n')])


def write_duplicate_pickle(path: str, payload: bytes, decoy: bytes) -> None:
    """Two ``archive/data.pkl`` members: ``payload`` first (what torch reads), ``decoy`` last (what
    ``ZipFile.read`` returns)."""
    write_members(path, [('archive/data.pkl', payload), ('archive/data.pkl', decoy),
                         ('archive/byteorder', b'little'), ('archive/version', b'3\n')])


def numpy1_checkpoint(path: str) -> dict:
    """An MMEngine-like checkpoint with numpy values, its pickle rewritten to the numpy 1 names
    (``numpy.core.multiarray.scalar`` / ``_reconstruct``, as checkpoints written under numpy 1 hold
    them). Returns the object it holds."""
    import numpy as np
    import torch
    obj = {'state_dict': {'w': torch.arange(4.0)}, 'meta': {'seed': np.int64(7), 'lr': np.float64(0.5),
                                                           'arr': np.arange(3), 'mat': np.eye(2, dtype=np.float32)}}
    members = []
    for name, data in torch_zip_members(obj):
        if name.endswith('data.pkl'):
            assert b'numpy._core.multiarray' in data
            data = data.replace(b'numpy._core.multiarray', b'numpy.core.multiarray')
        members.append((name, data))
    write_members(path, members)
    return obj


def huge_numpy_reconstruct(elements: int = 1 << 37) -> bytes:
    """A pickle whose ``_reconstruct`` declares an array of ``elements`` bytes (numpy allocates it at once)."""
    return _wrap(_call(_g('numpy._core.multiarray', '_reconstruct'), _g('numpy', 'ndarray'),
                       b'(' + b'\x8a\x08' + elements.to_bytes(8, 'little') + b't',
                       _call(_g('_codecs', 'encode'), _s('b'), _s('latin1'))))


def huge_numpy_setstate(elements: int = 1 << 37) -> bytes:
    """A pickle of an empty array whose ``__setstate__`` declares ``elements`` float64 values (1 TiB for the
    default) but holds 3 bytes of data."""
    empty = _call(_g('numpy._core.multiarray', '_reconstruct'), _g('numpy', 'ndarray'), b'(K\x00t',
                  _call(_g('_codecs', 'encode'), _s('b'), _s('latin1')))
    dtype = _call(_g('numpy', 'dtype'), _s('f8'), b'\x89\x88')
    state = (b'(K\x01' + b'(\x8a\x08' + elements.to_bytes(8, 'little') + b't' + dtype + b'\x89'
             + _call(_g('_codecs', 'encode'), _s('abc'), _s('latin1')) + b't')
    return _wrap(empty + state + b'b')


def setattr_counter() -> bytes:
    """A ``Counter`` rebuilt with a second (``setattr``) state that gives the instance its own
    ``most_common`` (shadowing the method) pointing at another allowed function."""
    state = b'N}' + _s('most_common') + _g('_codecs', 'encode') + b's\x86'
    return _wrap(_call(_g('collections', 'Counter')) + state + b'b')


def history_buffer_shadow() -> bytes:
    """A ``HistoryBuffer`` whose state gives the instance its own ``_statistics_methods`` dict (shadowing
    the class registry), with ``mean`` pointing at another allowed function."""
    state = b'}' + _s('_statistics_methods') + b'}' + _s('mean') + _g('_codecs', 'encode') + b'ss'
    return _wrap(_HB + b')\x81' + state + b'b')


def history_buffer_registry() -> bytes:
    """A ``HistoryBuffer`` whose ``statistics_methods`` state maps ``mean`` to another allowed function:
    ``HistoryBuffer.__setstate__`` merges it into the registry every buffer of the process uses."""
    state = b'}' + _s('statistics_methods') + b'}' + _s('mean') + _g('_codecs', 'encode') + b'ss'
    return _wrap(_HB + b')\x81' + state + b'b')


def build_on_set() -> bytes:
    """``BUILD`` of an allowed type without ``__dict__`` (a ``set``)."""
    return _wrap(_call(_g('builtins', 'set'), b']') + b'}' + _s('x') + b'K\x01sb')


def allocating_calls(elements: int = 1 << 36) -> Dict[str, Tuple[bytes, str]]:
    """Pickles that call an allowed global which allocates ``elements`` units (64 GiB+ for the default) from a
    few bytes, each with the name the loader must refuse: torch's weights-only unpickler calls any allowed
    global it is asked to."""
    n = b'\x8a\x08' + elements.to_bytes(8, 'little')
    huge_void = _call(_g('numpy', 'dtype'), _s(f'V{min(elements, (1 << 31) - 1)}'), b'\x89\x88')
    return {
        'bytearray': (_wrap(_call(_g('builtins', 'bytearray'), n)), 'builtins.bytearray (called)'),
        'ndarray': (_wrap(_call(_g('numpy', 'ndarray'), b'(' + n + b't')), 'numpy.ndarray (called)'),
        'storage': (_wrap(_call(_g('torch', 'FloatStorage'), n)), 'torch.FloatStorage (called)'),
        'legacy_tensor': (_wrap(_call(_g('torch', 'FloatTensor'), n)), 'torch.FloatTensor (called)'),
        'wrapper_subclass': (_wrap(_call(_g('torch._utils', '_rebuild_wrapper_subclass'), _g('torch', 'Tensor'))),
                             'torch._utils._rebuild_wrapper_subclass (called)'),
        'called_from_memo': (_wrap(_g('builtins', 'bytearray') + b'q\x00' + b'0' + b'h\x00(' + n + b'tR'),
                             'builtins.bytearray (called)'),
        'numpy_scalar_without_data': (_wrap(_call(_g('numpy._core.multiarray', 'scalar'), huge_void)),
                                      'numpy scalar of dtype'),
    }


def write_two_directories(path: str, inflated_bytes: int) -> None:
    """A zip with two central directories: Python's zipfile reads the one that does not end where the end
    record starts (as if data had been prepended: its offsets are shifted) and finds the plain members of a
    ``torch.save`` file; torch's reader reads the other, where ``data.pkl`` is deflated from a pickle of
    ``inflated_bytes`` characters (a decompression bomb neither the member names nor Python's view show)."""
    import zlib
    clean = torch_zip_members({'state_dict': {}})
    text = b'\x80\x02X' + struct.pack('<I', inflated_bytes) + bytes(inflated_bytes) + b'.'
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = deflate.compress(text) + deflate.flush()

    def local(name, method, crc, csize, usize, data):
        encoded = name.encode()
        return struct.pack('<4sHHHHHIIIHH', b'PK\x03\x04', 20, 0, method, 0, 0x21, crc, csize, usize,
                           len(encoded), 0) + encoded + data

    def central(name, method, crc, csize, usize, offset):
        encoded = name.encode()
        return struct.pack('<4sHHHHHHIIIHHHHHII', b'PK\x01\x02', 20, 20, 0, method, 0, 0x21, crc, csize, usize,
                           len(encoded), 0, 0, 0, 0, 0, offset) + encoded

    out, torch_entries, python_entries = bytearray(), [], []
    for name, data in clean:  # torch's view: data.pkl deflated
        entry = ((name, 8, zlib.crc32(text), len(packed), len(text)) if name.endswith('data.pkl')
                 else (name, 0, zlib.crc32(data), len(data), len(data)))
        torch_entries.append(entry + (len(out), ))
        out += local(*entry, packed if name.endswith('data.pkl') else data)
    out += bytes(4096)  # keeps Python's shifted offsets >= 0
    for name, data in clean:  # Python's view: the plain members
        python_entries.append((name, 0, zlib.crc32(data), len(data), len(data), len(out)))
        out += local(*python_entries[-1][:5], data)
    torch_directory = b''.join(central(*e) for e in torch_entries)
    shift = len(torch_directory)  # Python reads the second directory as if `shift` bytes had been prepended
    python_directory = b''.join(central(*e[:5], e[5] - shift) for e in python_entries)
    start = len(out)
    out += torch_directory + python_directory
    out += struct.pack('<4sHHHHIIH', b'PK\x05\x06', 0, 0, len(clean), len(clean), len(torch_directory), start, 0)
    with open(path, 'wb') as f:
        f.write(out)


def history_buffer_init_on(obj: bytes) -> bytes:
    """``HistoryBuffer(obj, obj)`` by REDUCE: runs ``HistoryBuffer.__init__`` (``np.array(obj)``) on whatever
    the pickle built (MMEngine pickles a HistoryBuffer by NEWOBJ, which runs no ``__init__``)."""
    return _wrap(_call(_HB, obj, obj))


def ordered_dict_with(attribute: str, value: bytes) -> bytes:
    """An ``OrderedDict()`` whose BUILD state sets ``attribute`` (e.g. ``__array_interface__``)."""
    return _call(_g('collections', 'OrderedDict')) + b'}' + _s(attribute) + value + b'sb'


def dtype_built_twice(itemsize: int = 400_000_000) -> bytes:
    """A numpy ``dtype('U2')``, memoized, built once as numpy writes it, then read back from the memo and built
    again with another item size (an array made with it in between would then view ``itemsize`` bytes)."""
    def state(size):
        return b'(K\x03' + _s('<') + b'NNN' + b'\x8a\x04' + size.to_bytes(4, 'little') + b'K\x04K\x08t'
    dtype = _call(_g('numpy', 'dtype'), _s('U2'), b'\x89\x88') + state(8) + b'b' + b'q\x07'
    return _wrap(b'(' + dtype + b'h\x07' + state(itemsize) + b'bt')


def tensor_with_backward_hooks() -> bytes:
    """``torch.save({'w': t})`` of a tensor whose ``backward_hooks`` argument holds ``{0: builtins.bytearray}``
    (torch installs it as an autograd hook: a call of a global that may only be named)."""
    import io

    import torch
    buf = io.BytesIO()
    torch.save({'w': torch.zeros(2)}, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith('data.pkl')))
    hooks = b'ccollections\nOrderedDict\nq\n)Rq\x0b'
    assert hooks in data, data  # the (empty) backward hooks of _rebuild_tensor_v2, memoized
    return data.replace(hooks, hooks + b'K\x00' + _g('builtins', 'bytearray') + b's', 1)
