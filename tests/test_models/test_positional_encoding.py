"""SinePositionalEncoding1D (soc_mm/models/layers/positional_encoding.py)."""
import math

import pytest
import torch

import soc_mm  # noqa: F401  (shims + registries)
from soc_mm.models.layers import SinePositionalEncoding1D


def test_sine_positional_encoding_1d_is_padding_aware():
    enc = SinePositionalEncoding1D(num_feats=8)
    mask = torch.tensor([[False, False, False, False], [False, False, True, True]])
    pos = enc(mask)
    assert pos.shape == (2, 4, 8)
    # sample 1: positions 1, 2, 2, 2 normalised by 2 valid tokens
    arg = torch.tensor([1., 2., 2., 2.]) / (2 + 1e-6) * 2 * math.pi
    torch.testing.assert_close(pos[1, :, 0], arg.sin())
    torch.testing.assert_close(pos[1, :, 1], arg.cos())
    torch.testing.assert_close(pos[1, :, 4], (arg / 10000**0.5).sin())
    torch.testing.assert_close(pos[0, 3, 0], torch.tensor(2 * math.pi / (4 + 1e-6) * 4).sin())
    with pytest.raises(ValueError):
        enc(torch.zeros(2, 3, 4, dtype=torch.bool))
