from .checkpoint import (CheckpointFormatError, CheckpointMismatchError, UnsafeCheckpointError,
                         install_safe_checkpoint_loading, load_checkpoint_to_model,
                         safe_load_local)
from .cpu_allocator import keep_freed_memory_for_reuse
from .setup_env import init_cpu_distributed, shutdown_distributed

__all__ = ['CheckpointFormatError', 'CheckpointMismatchError', 'UnsafeCheckpointError',
           'install_safe_checkpoint_loading', 'load_checkpoint_to_model', 'safe_load_local',
           'init_cpu_distributed', 'shutdown_distributed', 'keep_freed_memory_for_reuse']
