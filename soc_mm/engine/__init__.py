from .atomic_io import ATOMIC_LOCAL_BACKEND, AtomicLocalBackend, atomic_write
from .hooks import *  # noqa: F401,F403
from .model_wrapper import RVOSDistributedDataParallel
from .resume import (ResumeCheckpointError, check_resumable, find_resume_checkpoint,
                     resolve_resume_checkpoint)

__all__ = ['RVOSDistributedDataParallel', 'ATOMIC_LOCAL_BACKEND', 'AtomicLocalBackend', 'atomic_write',
           'ResumeCheckpointError', 'check_resumable', 'find_resume_checkpoint', 'resolve_resume_checkpoint']
