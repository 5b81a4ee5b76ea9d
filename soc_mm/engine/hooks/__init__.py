"""Runner hooks of soc_mm (registered in ``soc_mm.registry.HOOKS``)."""
from .checkpoint_hook import AtomicCheckpointHook
from .iteration_seed_hook import IterationSeedHook, iteration_seed
from .logger_hook import RVOSLoggerHook
from .visualization_hook import RVOSVisualizationHook

__all__ = ['AtomicCheckpointHook', 'RVOSVisualizationHook', 'RVOSLoggerHook', 'IterationSeedHook',
           'iteration_seed']
