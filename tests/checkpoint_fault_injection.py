"""Test-only checkpoint hook that stops a save at a chosen phase, so that a test can kill training there.

``PausingCheckpointHook`` is :class:`soc_mm.engine.hooks.AtomicCheckpointHook` whose main process,
when it saves ``pause_file`` (e.g. ``'iter_8.pth'``), stops at ``pause_phase``:

* ``'mid_write'``: half of the checkpoint's bytes are in the temporary file (written in chunks);
* ``'tmp_written'``: the temporary file is complete and fsync-ed, not yet renamed;
* ``'renamed'``: ``iter_<n>.pth`` is in place, ``last_checkpoint`` still names the previous one;
* ``'last_checkpoint'``: ``last_checkpoint`` names the new checkpoint, outdated ones are not removed yet.

There it creates ``<marker_dir>/<phase>`` and sleeps until it is killed. Every rank writes its process
group id to ``<marker_dir>/pgid_rank<r>`` when training starts (torchrun starts each worker in a session
of its own, so killing the launcher's group does not reach them). Loaded by ``custom_imports``.
"""
import os
import os.path as osp
import time

from mmengine.dist import get_rank
from mmengine.fileio import register_backend

from soc_mm.engine.atomic_io import AtomicLocalBackend
from soc_mm.engine.hooks import AtomicCheckpointHook
from soc_mm.registry import HOOKS

PHASES = ('mid_write', 'tmp_written', 'renamed', 'last_checkpoint')
PAUSING_BACKEND = 'soc_mm_test_pausing_local'


def pause_forever(marker_dir: str, phase: str) -> None:
    """Signal ``phase`` by creating its marker file, then wait to be killed."""
    with open(osp.join(marker_dir, phase + '.part'), 'w') as f:
        f.write(str(os.getpid()))
    os.replace(osp.join(marker_dir, phase + '.part'), osp.join(marker_dir, phase))
    while True:
        time.sleep(0.05)


class PausingLocalBackend(AtomicLocalBackend):
    """``AtomicLocalBackend`` that writes in chunks and stops at a phase of one file's write."""

    def __init__(self, pause_phase=None, pause_file=None, marker_dir=None, chunk_size=1 << 16):
        super().__init__()
        self.pause_phase = pause_phase
        self.pause_file = pause_file
        self.marker_dir = marker_dir
        self.chunk_size = chunk_size

    def _pauses(self, filepath: str, phase: str) -> bool:
        return self.pause_phase == phase and osp.basename(filepath) == self.pause_file

    def _write_temporary(self, data: bytes, tmp_path: str, filepath: str) -> None:
        if self._pauses(filepath, 'mid_write'):
            with open(tmp_path, 'wb') as f:
                for start in range(0, len(data) // 2, self.chunk_size):
                    f.write(data[start:min(start + self.chunk_size, len(data) // 2)])
                f.flush()
                os.fsync(f.fileno())
                pause_forever(self.marker_dir, 'mid_write')
        super()._write_temporary(data, tmp_path, filepath)
        if self._pauses(filepath, 'tmp_written'):
            pause_forever(self.marker_dir, 'tmp_written')

    def _replace(self, tmp_path: str, filepath: str) -> None:
        super()._replace(tmp_path, filepath)
        if self._pauses(filepath, 'renamed'):
            pause_forever(self.marker_dir, 'renamed')


register_backend(PAUSING_BACKEND, PausingLocalBackend, force=True)


@HOOKS.register_module()
class PausingCheckpointHook(AtomicCheckpointHook):
    """``AtomicCheckpointHook`` that stops at ``pause_phase`` while saving ``pause_file``."""

    def __init__(self, *args, pause_phase=None, pause_file=None, marker_dir=None, **kwargs):
        super().__init__(*args, **kwargs)
        if pause_phase is not None and pause_phase not in PHASES:
            raise ValueError(f'pause_phase must be one of {PHASES}, got {pause_phase!r}')
        self.pause_phase = pause_phase
        self.pause_file = pause_file
        self.marker_dir = marker_dir

    def _atomic_backend_args(self) -> dict:
        return dict(backend=PAUSING_BACKEND, pause_phase=self.pause_phase, pause_file=self.pause_file,
                    marker_dir=self.marker_dir)

    def before_train(self, runner) -> None:
        if self.marker_dir is not None:
            with open(osp.join(self.marker_dir, f'pgid_rank{get_rank()}'), 'w') as f:
                f.write(str(os.getpgid(0)))
        super().before_train(runner)

    def _write_last_checkpoint(self, runner) -> None:
        super()._write_last_checkpoint(runner)
        if self.pause_phase == 'last_checkpoint' and osp.basename(self.last_ckpt) == self.pause_file:
            pause_forever(self.marker_dir, 'last_checkpoint')
