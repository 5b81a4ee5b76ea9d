from .presence_soc_head import PresenceSOCHead
from .soc_head import SOCHead

__all__ = ['SOCHead', 'PresenceSOCHead']
