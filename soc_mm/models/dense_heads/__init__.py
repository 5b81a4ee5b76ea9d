from .soc_head import SOCHead

__all__ = ['SOCHead']
