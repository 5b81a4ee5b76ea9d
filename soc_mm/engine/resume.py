"""Choose the checkpoint that ``tools/train.py --resume`` resumes from, skipping damaged ones.

MMEngine resumes from whatever ``<work_dir>/last_checkpoint`` names and fails (or, with a missing
file, crashes) when that file is truncated or gone. :func:`resolve_resume_checkpoint` checks the
candidates first: the one ``last_checkpoint`` names, then the ``*.pth`` files of the checkpoint folder,
newest first. Each is loaded with the safe unpickler (``weights_only=True``) and must be a complete
training checkpoint; the first that is one is used, and every skipped file is reported with the
reason. Remote checkpoints (``http://``, ``s3://``, any ``scheme://``) are refused naming the scheme
(MMEngine would download and unpickle them unsafely). :func:`enforce_strict_resume` makes the
resumed weights fit the model exactly (MMEngine's resume loads them non-strictly).
"""
import glob
import os
import os.path as osp
import re
from typing import Callable, List, Optional, Tuple

from mmengine.hooks import Hook

from soc_mm.utils.checkpoint import (RemoteCheckpointError, UnsafeCheckpointError, load_checkpoint_to_model,
                                     refuse_remote, remote_scheme, safe_load_local)

#: ``last_checkpoint`` holds one path; a longer file is not one
MAX_POINTER_BYTES = 4096


class ResumeCheckpointError(RuntimeError):
    """No checkpoint to resume from (or the one given is damaged)."""


def _first_line(err: BaseException) -> str:
    """``Type: first sentence of the message`` (torch adds long advice after the cause)."""
    text = str(err).strip()
    text = text.splitlines()[0] if text else ''
    if len(text) > 160 and '. ' in text:
        text = text[:text.index('. ') + 1]
    return f'{type(err).__name__}: {text}'.rstrip(': ')


def check_resumable(filename: str, require_optimizer: bool = True) -> Optional[str]:
    """Why ``filename`` cannot be resumed from, or ``None`` when it is a complete training checkpoint.

    Complete: the file loads with ``torch.load(weights_only=True)`` (through
    :func:`soc_mm.utils.checkpoint.safe_load_local`) into a dict with ``meta`` (holding ``epoch`` and
    ``iter``), ``state_dict`` and ``message_hub``, plus ``optimizer`` when ``require_optimizer``
    (checkpoints saved for evaluation, e.g. the ``save_best`` ones, have none: resuming from them
    would restart the optimizer).
    """
    if remote_scheme(filename) is not None:
        return f'a remote checkpoint ({remote_scheme(filename)}), not loaded: download it and pass its local path'
    if not osp.exists(filename):
        return 'the file does not exist'
    if not osp.isfile(filename):
        return 'not a file'
    if osp.getsize(filename) == 0:
        return 'empty file (0 bytes)'
    try:
        checkpoint = safe_load_local(filename, map_location='cpu')
    except UnsafeCheckpointError as err:
        return f'refused by the safe loader ({_first_line(err)})'
    except Exception as err:  # truncated zip, not a torch file, ...
        return f'unreadable, truncated or not a checkpoint ({_first_line(err)})'
    if not isinstance(checkpoint, dict):
        return f'holds a {type(checkpoint).__name__}, not a checkpoint dict'
    missing = [key for key in ('meta', 'state_dict', 'message_hub') if key not in checkpoint]
    if missing:
        return f'not a training checkpoint (no {", ".join(missing)})'
    meta = checkpoint['meta']
    if not isinstance(meta, dict) or 'epoch' not in meta or 'iter' not in meta:
        return "not a training checkpoint (meta has no 'epoch'/'iter')"
    for key in ('epoch', 'iter'):
        value = meta[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f'damaged training checkpoint (meta.{key} is {value!r:.40}, expected an integer >= 0)'
    if not isinstance(checkpoint['message_hub'], dict):
        return (f"damaged training checkpoint ('message_hub' is a {type(checkpoint['message_hub']).__name__}, "
                "expected the dict MMEngine's MessageHub.state_dict() writes)")
    if require_optimizer and 'optimizer' not in checkpoint:
        return 'no optimizer state (saved for evaluation, e.g. a best checkpoint)'
    return None


def _natural_key(path: str) -> Tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r'(\d+)', osp.basename(path)))


def _rank0_print(message: str) -> None:
    if os.environ.get('RANK', '0') == '0':
        print(message, flush=True)


def read_last_checkpoint(pointer: str) -> Tuple[Optional[str], Optional[str]]:
    """The checkpoint path a ``last_checkpoint`` file names: ``(path, None)``, or ``(None, why not)`` when
    it is empty, longer than :data:`MAX_POINTER_BYTES`, not UTF-8 text, or not one line of a path."""
    with open(pointer, 'rb') as f:
        data = f.read(MAX_POINTER_BYTES + 1)
    if len(data) > MAX_POINTER_BYTES:
        return None, f'more than {MAX_POINTER_BYTES} bytes, not a checkpoint path written by the checkpoint hook'
    try:
        named = data.decode('utf-8').strip()
    except UnicodeDecodeError:
        return None, f'binary data ({data[:16]!r}...), not the checkpoint path the checkpoint hook writes'
    if not named:
        return None, 'empty'
    if '\n' in named or '\x00' in named or not named.isprintable():
        return None, f'{named[:60]!r}... is not one line naming a checkpoint file'
    return named, None


def find_resume_checkpoint(work_dir: str, checkpoint_dir: Optional[str] = None,
                           log: Callable[[str], None] = _rank0_print) -> str:
    """The newest complete checkpoint of a run: the one ``<work_dir>/last_checkpoint`` names, else
    the newest (modification time) ``*.pth`` of ``checkpoint_dir`` (default ``work_dir``) that is
    complete (:func:`check_resumable`). Skipped files are reported through ``log``.

    Raises:
        ResumeCheckpointError: no complete checkpoint (the message lists what was skipped and why).
    """
    checkpoint_dir = checkpoint_dir or work_dir
    candidates: List[Tuple[str, str]] = []  # (path, where it comes from), newest first
    skipped: List[str] = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        named, problem = read_last_checkpoint(pointer)
        if named:
            candidates.append((named, f'named by {pointer}'))
        else:
            skipped.append(f'{pointer}: {problem}')
            log(f'--resume: skipped {pointer}: {problem}')
    files = sorted(glob.glob(osp.join(glob.escape(checkpoint_dir), '*.pth')),
                   key=lambda p: (osp.getmtime(p), _natural_key(p)), reverse=True)
    named_file = (candidates[0][0] if candidates and remote_scheme(candidates[0][0]) is None
                  and osp.isfile(candidates[0][0]) else None)
    candidates += [(p, 'newest *.pth') for p in files if named_file is None or not osp.samefile(p, named_file)]

    for path, source in candidates:
        reason = check_resumable(path)
        if reason is None:
            if skipped:
                log(f'--resume: resuming from {path} ({source}), the newest complete checkpoint.')
            else:
                log(f'--resume: resuming from {path} ({source}).')
            return path
        skipped.append(f'{path} ({source}): {reason}')
        log(f'--resume: skipped {path} ({source}): {reason}')
    found = '\n'.join(f'  skipped {line}' for line in skipped) or \
        f'  no {pointer} and no *.pth file in {checkpoint_dir}'
    raise ResumeCheckpointError(
        f'--resume: no complete checkpoint to resume from in {checkpoint_dir}:\n{found}\n'
        'Pass --resume PATH to a checkpoint, or train without --resume to start from scratch.')


def resolve_resume_checkpoint(cfg, log: Callable[[str], None] = _rank0_print) -> Optional[str]:
    """Check (and with auto-resume, choose) the checkpoint a ``resume=True`` config resumes from.

    ``cfg.resume`` with ``cfg.load_from`` (``--resume PATH``): that local file must be a complete
    checkpoint (:func:`check_resumable`, optimizer state not required), else
    :class:`ResumeCheckpointError` naming it. Without ``load_from`` (``--resume``): ``cfg.load_from``
    is set to :func:`find_resume_checkpoint` of the work dir (the checkpoint hook's ``out_dir`` is
    honoured), so MMEngine resumes from it. Returns the checkpoint, or ``None`` when not resuming.
    """
    if not cfg.get('resume', False):
        return None
    load_from = cfg.get('load_from', None)
    if load_from:
        try:
            refuse_remote(load_from)
        except RemoteCheckpointError as err:
            raise ResumeCheckpointError(f'--resume {err}') from None
        reason = check_resumable(str(load_from), require_optimizer=False)
        if reason is not None:
            raise ResumeCheckpointError(f'--resume {load_from}: cannot resume from this file: {reason}.')
        check_training_left(str(load_from), cfg.get('train_cfg', None))
        log(f'--resume: resuming from {load_from}.')
        return load_from
    work_dir = cfg.work_dir
    checkpoint_dir = work_dir
    out_dir = (cfg.get('default_hooks', None) or {}).get('checkpoint', None) or {}
    out_dir = out_dir.get('out_dir', None)
    if out_dir and '://' not in str(out_dir):
        checkpoint_dir = osp.join(str(out_dir), osp.basename(work_dir.rstrip(os.sep)))
    cfg.load_from = find_resume_checkpoint(work_dir, checkpoint_dir, log)
    check_training_left(cfg.load_from, cfg.get('train_cfg', None))
    return cfg.load_from


def check_training_left(filename: str, train_cfg) -> None:
    """Refuse to resume a checkpoint that is at or past the end of the schedule: MMEngine would skip
    ``meta.iter`` batches, train nothing, save nothing and exit 0 (for ``meta.iter`` in the billions it
    spends hours skipping).

    Raises:
        ResumeCheckpointError: naming the file, its ``meta.iter`` / ``meta.epoch`` and ``max_iters`` /
            ``max_epochs``.
    """
    train_cfg = train_cfg or {}
    limits = [(key, train_cfg[f'max_{key}s']) for key in ('iter', 'epoch')
              if isinstance(train_cfg.get(f'max_{key}s', None), int)]
    if not limits:
        return
    meta = safe_load_local(filename, map_location='cpu')['meta']
    for key, limit in limits:
        if meta[key] >= limit:
            raise ResumeCheckpointError(
                f'--resume {filename}: the checkpoint is at {key} {meta[key]} (meta.{key}), at or past '
                f'train_cfg.max_{key}s={limit}: nothing left to train. Raise train_cfg.max_{key}s to train '
                'further, or train without --resume to start again.')


class StrictResumeHook(Hook):
    """Check, when the runner resumes, that the checkpoint's weights fit the model exactly.

    MMEngine's ``Runner.resume`` loads weights with ``strict=False``: missing keys would silently
    train from their initial values. In ``after_load_checkpoint`` (before MMEngine copies the
    weights) the checkpoint is loaded strictly (:func:`soc_mm.utils.checkpoint.load_checkpoint_to_model`,
    values checked too), so a missing, unexpected or shape-mismatched key, a NaN/inf weight or an
    integer tensor for a float parameter is an error naming them and the file.
    """
    priority = 'VERY_HIGH'

    def __init__(self, filename: str) -> None:
        self.filename = filename

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        load_checkpoint_to_model(runner.model, checkpoint, self.filename, strict=True,
                                 hint='--resume continues the training of this very model; to start from '
                                 "another model's weights use load_from without --resume, which loads non-strictly")


def enforce_strict_resume(runner, filename: Optional[str]) -> None:
    """Make ``runner``'s resume from ``filename`` strict (:class:`StrictResumeHook`); nothing when None."""
    if filename:
        runner.register_hook(StrictResumeHook(filename))
