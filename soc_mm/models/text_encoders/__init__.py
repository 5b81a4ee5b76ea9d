from .mean_pool_roberta_text_encoder import MeanPoolRoBERTaTextEncoder
from .roberta_text_encoder import RoBERTaTextEncoder, TextProjection

__all__ = ['RoBERTaTextEncoder', 'MeanPoolRoBERTaTextEncoder', 'TextProjection']
