"""Dropout switched off for deterministic comparisons of training-mode forwards."""
from torch import nn

__all__ = ['zero_dropout']


def zero_dropout(model: nn.Module) -> nn.Module:
    """Every dropout and drop-path probability of ``model`` set to 0, in place; returns ``model``.

    Covers ``nn.Dropout`` modules, ``nn.MultiheadAttention``'s attention dropout and any module with a
    float ``drop_prob`` / ``dropout_prob`` / ``attention_dropout`` attribute (drop-path, fused kernels).
    A training-mode forward is then a function of the weights and inputs only, as the official harness's
    ``zero_all_dropout`` (with which the train-mode fixtures were made and its training steps are timed).
    """
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(m, nn.MultiheadAttention):
            m.dropout = 0.0
        for attr in ('drop_prob', 'dropout_prob', 'attention_dropout'):
            if isinstance(getattr(m, attr, None), float):
                setattr(m, attr, 0.0)
    return model
