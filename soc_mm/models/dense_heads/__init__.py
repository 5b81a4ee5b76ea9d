from .soc_head import OFFICIAL_LOSS_NAMES, SOCHead

__all__ = ['SOCHead', 'OFFICIAL_LOSS_NAMES']
