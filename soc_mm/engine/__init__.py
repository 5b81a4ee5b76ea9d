from .hooks import *  # noqa: F401,F403
from .model_wrapper import RVOSDistributedDataParallel

__all__ = ['RVOSDistributedDataParallel']
