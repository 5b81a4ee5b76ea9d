"""Runner hooks of soc_mm (registered in ``soc_mm.registry.HOOKS``)."""
from .visualization_hook import RVOSVisualizationHook

__all__ = ['RVOSVisualizationHook']
