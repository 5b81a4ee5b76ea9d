"""Crash-safe local file writes: after a kill a path holds either its complete old content or its
complete new content, never a truncated file.

The new content goes to a temporary file in the same folder (``.<name>.tmp``), which is flushed and
``fsync``-ed, then ``os.replace``-d onto the target (atomic on POSIX file systems) and the folder is
``fsync``-ed so that the rename itself is durable.

:class:`AtomicLocalBackend` is MMEngine's ``LocalBackend`` with such ``put`` / ``put_text``; it is
registered as the MMEngine file backend ``'soc_mm_atomic_local'``, so anything MMEngine writes through
``backend_args=dict(backend='soc_mm_atomic_local')`` (``Runner.save_checkpoint`` in
:class:`~soc_mm.engine.hooks.AtomicCheckpointHook`) is written this way. Only that new name is
registered (no path prefix, no MMEngine backend replaced): importing soc_mm changes nothing for
other projects' file I/O.
"""
import os
import os.path as osp
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend
from mmengine.fileio.backends import backends
from mmengine.utils import mkdir_or_exist

ATOMIC_LOCAL_BACKEND = 'soc_mm_atomic_local'
TMP_PREFIX = '.'
TMP_SUFFIX = '.tmp'


def temporary_path(path: Union[str, Path]) -> str:
    """The temporary file that :func:`atomic_write` writes before renaming it onto ``path``
    (same folder, hidden: ``dir/.name.tmp``)."""
    folder, name = osp.split(str(path))
    return osp.join(folder, f'{TMP_PREFIX}{name}{TMP_SUFFIX}')


def fsync_dir(folder: str) -> None:
    """Make the entries of ``folder`` (a rename into it) durable. No-op where folders cannot be
    opened (Windows)."""
    if os.name == 'nt':
        return
    fd = os.open(folder or '.', os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicLocalBackend(LocalBackend):
    """MMEngine's ``LocalBackend`` whose ``put`` / ``put_text`` replace the target atomically.

    A process killed while writing leaves the previous version of the file (or no file when there
    was none) and at most a stale ``.<name>.tmp`` beside it, which the next write of the same path
    overwrites.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write ``obj`` to ``filepath`` atomically (creating its folder if needed)."""
        filepath = str(filepath)
        mkdir_or_exist(osp.dirname(filepath))
        tmp_path = temporary_path(filepath)
        try:
            self._write_temporary(obj, tmp_path, filepath)
            self._replace(tmp_path, filepath)
        except BaseException:
            if osp.lexists(tmp_path):
                os.remove(tmp_path)
            raise

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        """Write the text ``obj`` to ``filepath`` atomically."""
        self.put(obj.encode(encoding), filepath)

    def _write_temporary(self, data: bytes, tmp_path: str, filepath: str) -> None:
        """Write, flush and fsync the whole content to ``tmp_path`` (``filepath`` is the target)."""
        with open(tmp_path, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def _replace(self, tmp_path: str, filepath: str) -> None:
        """Rename the complete temporary file onto ``filepath`` and make the rename durable."""
        os.replace(tmp_path, filepath)
        fsync_dir(osp.dirname(filepath))


def _register_atomic_backend() -> None:
    """Register ``AtomicLocalBackend`` under its own name only: never over another backend (a name
    taken by another class is an error), again only for this module's class (a re-executed module)."""
    registered = backends.get(ATOMIC_LOCAL_BACKEND)
    ours = (AtomicLocalBackend.__module__, AtomicLocalBackend.__qualname__)
    if registered is not None and (registered.__module__, registered.__qualname__) != ours:
        raise RuntimeError(f'the MMEngine file backend name {ATOMIC_LOCAL_BACKEND!r} is taken by '
                           f'{registered.__module__}.{registered.__qualname__}; soc_mm does not replace it')
    register_backend(ATOMIC_LOCAL_BACKEND, AtomicLocalBackend, force=registered is not None)


_register_atomic_backend()


def atomic_write(path: Union[str, Path], data: Union[bytes, str]) -> None:
    """Write ``data`` (bytes, or text as UTF-8) to the local ``path`` atomically."""
    backend = AtomicLocalBackend()
    if isinstance(data, str):
        backend.put_text(data, path)
    else:
        backend.put(data, path)
