"""Environment set-up helpers used by ``tools/`` (distributed process groups on CPU)."""
import datetime
import os

import torch
import torch.distributed as torch_dist


def init_cpu_distributed(launcher: str, timeout_s: int = 1800) -> bool:
    """Initialise a gloo process group on machines without CUDA.

    MMEngine 0.10.7's ``init_dist('pytorch')`` calls ``torch.cuda.set_device``
    unconditionally; initialising the group first makes the runner skip it.
    Returns True when it initialised a group.
    """
    if launcher == 'none' or torch.cuda.is_available() or torch_dist.is_initialized():
        return False
    if launcher != 'pytorch':
        raise ValueError(f'CPU distributed runs support launcher "pytorch" (torchrun), got {launcher!r}')
    torch_dist.init_process_group(backend='gloo', timeout=datetime.timedelta(seconds=timeout_s))
    os.environ.setdefault('LOCAL_RANK', str(torch_dist.get_rank()))
    return True


def shutdown_distributed() -> None:
    """Destroy the process group at the end of a run.

    Without it, gloo's worker threads can abort the interpreter at exit
    ("terminate called without an active exception") after a successful run.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
