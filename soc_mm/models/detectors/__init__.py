from .query_propagation_soc import QueryPropagationSOC
from .soc import SOC

__all__ = ['SOC', 'QueryPropagationSOC']
