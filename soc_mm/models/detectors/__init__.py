from .query_propagation_soc import QueryPropagationSOC
from .soc import SOC
from .soc_plus_plus import SOCPlusPlus

__all__ = ['SOC', 'SOCPlusPlus', 'QueryPropagationSOC']
