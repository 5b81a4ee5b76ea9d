from .soc import SOC

__all__ = ['SOC']
