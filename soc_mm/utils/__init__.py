from .checkpoint import UnsafeCheckpointError, install_safe_checkpoint_loading
from .setup_env import init_cpu_distributed, register_all_modules, shutdown_distributed

__all__ = ['UnsafeCheckpointError', 'install_safe_checkpoint_loading',
           'init_cpu_distributed', 'register_all_modules', 'shutdown_distributed']
