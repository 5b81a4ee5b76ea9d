"""``init_weights`` of SOC's back modules (VOC, spatial decoder, head) vs the official init's statistics
(tests/data/soc_reference/common/official_init_stats.json, see its README)."""
import os.path as osp

import pytest
import torch

from soc_reference_helpers import ROOT, load
from soc_mm.models.dense_heads import SOCHead
from soc_mm.models.layers import VOC, SOCSpatialDecoder
from soc_mm.official.checkpoint import convert_official_key

pytestmark = pytest.mark.skipif(not osp.isdir(ROOT), reason='SOC reference fixtures missing')


def test_init_weights_match_official_init_statistics():
    """Zero / constant patterns and spreads of our init equal the unperturbed official init."""
    torch.manual_seed(0)
    stats = load('common', 'official_init_stats.json')['num_classes_1']
    voc = VOC(embed_dims=128, num_heads=8, num_queries=5, num_frame_queries=5, num_encoder_layers=2,
              num_decoder_layers=2, feedforward_channels=128)
    dec = SOCSpatialDecoder(128, (128, 128, 16), 8)
    head = SOCHead(num_classes=1, embed_dims=128, num_pred_layer=2)
    ours = {}
    for prefix, module in (('voc.', voc), ('spatial_decoder.', dec), ('bbox_head.', head)):
        module.init_weights()
        ours.update({prefix + k: v for k, v in module.state_dict().items()})
    checked = 0
    for key, s in stats.items():
        if not key.startswith(('voc.', 'spatial_decoder.', 'controller.', 'class_embed.', 'bbox_embed.')):
            continue
        x = ours[convert_official_key(key)].float()
        assert list(x.shape) == s['shape'], key
        assert bool((x == 0).all()) == s['all_zero'], key
        assert bool((x == x.flatten()[0]).all()) == s['constant'], key
        if s['constant']:
            assert abs(x.flatten()[0].item() - s['mean']) < 1e-5, key
        elif x.numel() > 16:
            assert abs(x.std().item() - s['std']) < 0.25 * s['std'], (key, x.std().item(), s['std'])
            bound = max(abs(s['min']), abs(s['max']))
            if bound < 2.5 * s['std']:  # uniform init: same bound
                assert x.abs().max().item() <= 1.01 * bound, key
        checked += 1
    assert checked == 64 + 28 + 6 + 4 + 12
    assert torch.equal(head.cls_branches[0].weight,
                       head.cls_branches[1].weight)
    assert torch.equal(head.reg_branches[0].layers[0].weight, head.reg_branches[1].layers[0].weight)
    assert head.reg_branches[0].layers[-1].bias.tolist() == [0, 0, -2, -2]
