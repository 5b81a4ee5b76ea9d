"""SOC's VOC (soc_mm/models/layers/voc.py, official options) vs the official golden fixtures
(tests/data/soc_reference, see its README); its motion-aware options: test_motion_aware_voc.py."""
import os.path as osp

import pytest
import torch

from conftest import FIXTURE_VARIANTS
from soc_reference_helpers import ROOT, build_voc, dims, load, regroup_official
from soc_mm.models.layers import VOC

VARIANTS = FIXTURE_VARIANTS

pytestmark = pytest.mark.skipif(not osp.isdir(ROOT), reason='SOC reference fixtures missing')


@pytest.mark.parametrize('variant', VARIANTS)
def test_voc_eval_matches_official(variant):
    torch.set_num_threads(1)
    B, T = dims(variant)
    inter = load(variant, 'intermediates_eval.pt')
    voc = build_voc(variant).eval()
    frame_queries = regroup_official(inter['deformable_transformer']['hs'][-1:], B, T)
    with torch.no_grad():
        out = voc(frame_queries, inter['txt_proj_calls'][1])
    torch.testing.assert_close(out, inter['voc']['voc_hs'][0], rtol=0, atol=1e-5)


@pytest.mark.parametrize('variant', VARIANTS)
def test_voc_train_matches_official(variant):
    """Train mode: plain windows in every layer, VOC on all decoder layers (hs is identical to eval)."""
    torch.set_num_threads(1)
    B, T = dims(variant)
    inter, ref = load(variant, 'intermediates_eval.pt'), load(variant, 'outputs_train.pt')
    hs = inter['deformable_transformer']['hs']
    voc = build_voc(variant).train()
    with torch.no_grad():
        out = voc(regroup_official(hs, B, T), inter['txt_proj_calls'][1].repeat(len(hs), 1))
    out = out.view(len(hs), B, *out.shape[1:])
    torch.testing.assert_close(out[-1], ref['pred_logit'], rtol=0, atol=1e-5)
    torch.testing.assert_close(out[0], ref['aux_outputs'][0]['pred_logit'], rtol=0, atol=1e-5)


def test_voc_shapes_and_errors():
    voc = VOC(embed_dims=32, num_heads=4, num_queries=3, num_frame_queries=4, num_encoder_layers=2,
              num_decoder_layers=1, feedforward_channels=32, window_size=3)
    voc.init_weights()
    for mode in (voc.train, voc.eval):
        mode()
        assert voc(torch.randn(2, 5, 4, 32), torch.randn(2, 32)).shape == (2, 3, 32)
    with pytest.raises(ValueError, match='num_frame_queries'):
        voc(torch.randn(2, 5, 3, 32), torch.randn(2, 32))
