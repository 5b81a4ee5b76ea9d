"""Inputs made up for checks and benchmarks (no dataset needed)."""
from .dropout import zero_dropout
from .synthetic_batch import moving_ellipse, synthetic_batch, synthetic_expression_batch, synthetic_expressions

__all__ = ['moving_ellipse', 'synthetic_batch', 'synthetic_expression_batch', 'synthetic_expressions',
           'zero_dropout']
