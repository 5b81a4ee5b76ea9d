"""A ``CheckpointHook`` whose work dir always holds a complete checkpoint to resume from."""
import difflib
import glob
import inspect
import os
import os.path as osp
from typing import List

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from soc_mm.registry import HOOKS
from ..atomic_io import ATOMIC_LOCAL_BACKEND, TMP_PREFIX, TMP_SUFFIX, atomic_write

# message-hub key: steps whose checkpoint files were outdated by the checkpoint that holds this list
# (a run resumed from it removes them if a kill came before their removal)
OUTDATED_CKPT_IDS = 'outdated_ckpt_ids'
# message-hub key: previous best checkpoints replaced by a new best one (removed once the new one is
# complete; a run resumed from a checkpoint holding this list removes those a kill left behind)
OUTDATED_BEST_CKPTS = 'outdated_best_ckpts'


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """MMEngine's ``CheckpointHook`` that survives a kill at any moment of a save.

    MMEngine 0.10's hook first removes the oldest checkpoint (``max_keep_ckpts``), then writes the new
    one in place and finally ``last_checkpoint``: a kill during the write leaves a truncated newest
    file and, with ``max_keep_ckpts=1``, nothing to resume from. This hook, for a local ``out_dir``:

    1. writes each checkpoint (periodic, last and ``save_best`` ones) to a temporary file in the same
       folder, flushes and fsyncs it, ``os.replace``-s it onto ``iter_<n>.pth`` and fsyncs the folder
       (:class:`~soc_mm.engine.atomic_io.AtomicLocalBackend`, given to MMEngine as ``backend_args``);
    2. then writes ``<work_dir>/last_checkpoint`` the same atomic way;
    3. only then removes the checkpoints that ``max_keep_ckpts`` drops.

    A kill therefore leaves ``last_checkpoint`` pointing to a complete checkpoint, which is on disk.
    Likewise for ``save_best``: MMEngine removes the previous best checkpoint before it writes the new
    one; here the previous best stays until the new one is complete on disk (a kill in between leaves
    one or both, never none).
    ``max_keep_ckpts`` / ``keep_ckpt_ids`` behave as in MMEngine; the steps dropped by a save are also
    recorded in the message hub (``outdated_ckpt_ids``), so a run resumed from a checkpoint whose
    clean-up was interrupted removes them. Stale temporary files of a killed save are removed when
    training starts. Only the main process writes (as in MMEngine).

    Takes the arguments of MMEngine's ``CheckpointHook``. With ``backend_args`` / ``file_client_args``
    or a remote ``out_dir``, writes go through that backend as in MMEngine (not atomic; a warning
    says so), still in the order above.
    """

    def __init__(self, *args, **kwargs):
        # MMEngine's hook hands unknown keyword arguments to ``Runner.save_checkpoint``, whose every parameter
        # the hook already passes: any of them (``max_keep=3`` for ``max_keep_ckpts``) would end the run with a
        # TypeError at its first save, possibly hours in. Refused here, when the runner builds its hooks.
        known = _CHECKPOINT_HOOK_PARAMETERS
        unknown = [k for k in kwargs if k not in known]
        if unknown:
            hints = [f'{k!r} (did you mean {close[0]!r}?)' if close else repr(k)
                     for k in unknown for close in [difflib.get_close_matches(k, known, n=1, cutoff=0.6)]]
            raise TypeError(f'{type(self).__name__} (the checkpoint hook, default_hooks.checkpoint) has no '
                            f'argument {", ".join(hints)}; its arguments are those of MMEngine\'s CheckpointHook: '
                            f'{list(known)}')
        super().__init__(*args, **kwargs)

    def _atomic_backend_args(self) -> dict:
        """``backend_args`` that make MMEngine write the checkpoints atomically."""
        return dict(backend=ATOMIC_LOCAL_BACKEND)

    def before_train(self, runner) -> None:
        if not getattr(self, '_backend_chosen', False):
            out_dir = runner.work_dir if self.out_dir is None else str(self.out_dir)
            if self.backend_args is None and self.file_client_args is None and '://' not in out_dir:
                self.backend_args = self._atomic_backend_args()
            else:
                runner.logger.warning(
                    f'{type(self).__name__}: checkpoints go to {out_dir!r} through the configured file '
                    'backend, which may not replace files atomically (only a local out_dir without '
                    'backend_args/file_client_args is written atomically).')
            self._backend_chosen = True
        super().before_train(runner)
        if is_main_process():
            self._remove_stale_files(runner)

    def _remove_stale_files(self, runner) -> None:
        """Remove temporaries left by a killed save, and the checkpoints that the save of the resumed
        checkpoint had dropped but not yet removed."""
        stale = []
        for folder in {str(self.out_dir), runner.work_dir}:
            if '://' in folder:
                continue
            for path in glob.glob(osp.join(glob.escape(folder), f'{TMP_PREFIX}*{TMP_SUFFIX}')):
                target = osp.basename(path)[len(TMP_PREFIX):-len(TMP_SUFFIX)]
                if target.endswith('.pth') or target == 'last_checkpoint':
                    stale.append(path)
        for path in sorted(stale):
            os.remove(path)
            runner.logger.info(f'Removed {path}, the unfinished write of a previous run.')
        if self.max_keep_ckpts > 0:
            keep = set(self.keep_ckpt_ids)
            outdated = runner.message_hub.runtime_info.get(OUTDATED_CKPT_IDS, [])
            self._remove_checkpoints(runner, [step for step in outdated if step not in keep])
        if self.save_best:
            best = {path for path in self._best_paths().values() if path}
            replaced = runner.message_hub.runtime_info.get(OUTDATED_BEST_CKPTS, [])
            self._remove_paths(runner, [p for p in replaced if isinstance(p, str) and p not in best],
                               'Removed {}, a best checkpoint replaced before the previous run was killed.')

    def _remove_checkpoints(self, runner, steps: List[int]) -> None:
        """Remove the checkpoint files (or deepspeed folders) of ``steps`` that exist."""
        paths = [self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(step)) for step in steps]
        self._remove_paths(runner, paths, 'Removed the outdated checkpoint {} (max_keep_ckpts='
                           f'{self.max_keep_ckpts}).')

    # ------------------------------------------------------------------ save_best
    def _best_paths(self) -> dict:
        """``{key indicator (None when there is one): path of its best checkpoint or None}``."""
        if len(self.key_indicators) == 1:
            return {None: self.best_ckpt_path}
        return dict(self.best_ckpt_path_dict)

    def _set_best_paths(self, paths: dict) -> None:
        if None in paths:
            self.best_ckpt_path = paths[None]
        else:
            self.best_ckpt_path_dict.update(paths)

    def _replaced_best_paths(self) -> List[str]:
        """Previous best checkpoints that a new best one replaces (in :meth:`_save_best_checkpoint`)."""
        previous = getattr(self, '_previous_best', None) or {}
        current = self._best_paths()
        keep = {path for path in current.values() if path}
        return [path for key, path in previous.items()
                if path and current.get(key) is not None and path not in keep]

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """MMEngine's ``save_best``, except that a previous best checkpoint is removed only after the new
        one is complete on disk (MMEngine removes it first: a kill in between left no best checkpoint)."""
        if not self.save_best:
            return
        previous = self._best_paths()
        self._previous_best = previous
        self._set_best_paths({key: None for key in previous})  # nothing for MMEngine to remove first
        try:
            super()._save_best_checkpoint(runner, metrics)
            replaced = self._replaced_best_paths()
        finally:
            current = self._best_paths()
            self._set_best_paths({key: previous[key] if current[key] is None else current[key]
                                  for key in previous})
            self._previous_best = None
        if replaced and is_main_process():
            self._remove_paths(runner, replaced, 'The previous best checkpoint {} is removed (the new best is '
                               'complete).')

    def _remove_paths(self, runner, paths: List[str], message: str) -> None:
        """Remove the files (or deepspeed folders) of ``paths`` that exist, logging ``message.format(path)``."""
        for path in paths:
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)
            else:
                continue
            runner.logger.info(message.format(path))

    def _write_last_checkpoint(self, runner) -> None:
        """Point ``<work_dir>/last_checkpoint`` to the checkpoint just saved (atomic write)."""
        atomic_write(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)

    def _save_checkpoint_with_step(self, runner, step, meta):
        """Save ``<out_dir>/filename_tmpl.format(step)``, then ``last_checkpoint``, then remove what
        ``max_keep_ckpts`` drops (MMEngine removes first and writes ``last_checkpoint`` in place)."""
        outdated = []
        if getattr(self, '_previous_best', None):  # the re-save of `_save_best_checkpoint`: record the
            runner.message_hub.update_info(OUTDATED_BEST_CKPTS, self._replaced_best_paths())  # replaced best
        # `_save_best_checkpoint` saves the step of the periodic checkpoint again: no new id then
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
            runner.message_hub.update_info(OUTDATED_CKPT_IDS, outdated)

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(  # main process only; complete on disk when it returns
            self.out_dir, ckpt_filename, self.file_client_args, save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
            backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        self._write_last_checkpoint(runner)
        self._remove_checkpoints(runner, outdated)


# what ``inspect.signature`` (and so the ``--cfg-options`` check) reports for the hook: the arguments of MMEngine's
# ``CheckpointHook`` without its ``**kwargs`` (see ``AtomicCheckpointHook.__init__``)
_signature = inspect.signature(CheckpointHook.__init__)
AtomicCheckpointHook.__signature__ = _signature.replace(parameters=[
    p for name, p in _signature.parameters.items() if name != 'self' and p.kind is not inspect.Parameter.VAR_KEYWORD])
_CHECKPOINT_HOOK_PARAMETERS = tuple(AtomicCheckpointHook.__signature__.parameters)
