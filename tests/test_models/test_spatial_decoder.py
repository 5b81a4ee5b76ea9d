"""SOCSpatialDecoder (soc_mm/models/layers/spatial_decoder.py) vs the official golden fixtures."""
import os.path as osp

import pytest
import torch

from conftest import MAIN_VARIANT
from soc_reference_helpers import ROOT, back_sd, dims, load
from soc_mm.models.layers import SOCSpatialDecoder

MAIN = MAIN_VARIANT

pytestmark = pytest.mark.skipif(not osp.isdir(ROOT), reason='SOC reference fixtures missing')


def test_spatial_decoder_matches_official():
    torch.set_num_threads(1)
    B, T = dims(MAIN)
    inter = load(MAIN, 'intermediates_eval.pt')
    memory = inter['deformable_transformer']['memory']  # strides 8, 16, 32, order (b t)
    f0 = inter['backbone']['features'][0]
    dec = SOCSpatialDecoder(128, (128, 128, f0.shape[1]), 8)
    dec.load_state_dict(back_sd(MAIN, 'spatial_decoder.'), strict=True)
    with torch.no_grad():
        out = dec(memory[2], [memory[1], memory[0], f0])
    expected = inter['spatial_decoder']['decoded_frame_features']  # (t b)
    expected = expected.view(T, B, *expected.shape[1:]).transpose(0, 1).reshape_as(out)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
