from .model_wrapper import RVOSDistributedDataParallel

__all__ = ['RVOSDistributedDataParallel']
