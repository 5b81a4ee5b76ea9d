from .roberta_text_encoder import RoBERTaTextEncoder, TextProjection

__all__ = ['RoBERTaTextEncoder', 'TextProjection']
