"""The official -> soc_mm state-dict key table (soc_mm/official/checkpoint.py): every official key of the
golden fixtures' checkpoint maps onto our modules' keys, unknown keys are errors (the converter tool:
test_converter.py)."""
import os.path as osp

import pytest
import torch

from conftest import MAIN_VARIANT
from soc_reference_helpers import ROOT, back_sd, build_head, build_voc, variant_official_sd
import soc_mm  # noqa: F401  (shims + registries)
from soc_mm.models.layers import SOCSpatialDecoder
from soc_mm.official.checkpoint import (KEY_RULES, OfficialCheckpointError, convert_official_key,
                                        convert_official_state_dict)
from soc_mm.official.loss_names import to_official_loss_name

MAIN = MAIN_VARIANT

pytestmark = pytest.mark.skipif(not osp.isdir(ROOT), reason='SOC reference fixtures missing')


# ---------------------------------------------------------------- front (backbone .. fusion, transformer)
def test_front_key_mapping_covers_every_official_front_key(official_sd):
    front_prefixes = ('backbone.', 'transformer.', 'input_proj.', 'query_embed.', 'text_encoder.', 'txt_proj.',
                      'vlf.', 'lvf.')
    converted = convert_official_state_dict(official_sd)
    front = {convert_official_key(k) for k in official_sd if k.startswith(front_prefixes)} - {None}
    n_front = sum(k.startswith(front_prefixes) for k in official_sd)
    n_dup = sum(k.startswith('transformer.decoder.bbox_embed.') for k in official_sd)
    assert n_dup == 12 and len(front) == n_front - n_dup and front <= set(converted)
    assert {convert_official_key(k).split('.')[0] for k in official_sd if not k.startswith(front_prefixes)} == {
        'bbox_head', 'voc', 'spatial_decoder'}
    assert convert_official_key('backbone.0.body.downsamples.1.norm.bias') == 'backbone.layers.1.downsample.norm.bias'
    assert convert_official_key('transformer.decoder.layers.1.norm2.weight') == 'decoder.layers.1.norms.0.weight'
    assert convert_official_key('input_proj.3.1.weight') == 'neck.extra_convs.0.gn.weight'
    assert convert_official_key('transformer.decoder.bbox_embed.0.layers.2.bias') is None
    assert len(KEY_RULES) > 20


@pytest.mark.parametrize('key', ['transformer.encoder.layers.0.norm9.weight', 'vlf.foo', 'input_proj.3.2.weight',
                                 'backbone.0.body.norm.weight'])
def test_front_key_mapping_rejects_unknown_keys(key):
    with pytest.raises(KeyError, match='matches no rule'):
        convert_official_key(key)
    with pytest.raises(OfficialCheckpointError, match='unknown key'):
        convert_official_state_dict({key: torch.zeros(1)})


# ---------------------------------------------------------------- back (VOC, spatial decoder, head)
def test_back_key_table_covers_official_and_modules():
    sd = variant_official_sd(MAIN)
    back = convert_official_state_dict(sd)
    assert sum(k.startswith(('voc.', 'spatial_decoder.', 'bbox_head.')) for k in back) == 64 + 28 + 6 + 4 + 12
    assert convert_official_key('transformer.decoder.bbox_embed.0.layers.2.bias') is None
    with pytest.raises(KeyError):
        convert_official_key('voc.unknown.weight')
    voc, head = build_voc(MAIN), build_head(MAIN)
    assert set(back_sd(MAIN, 'voc.')) == set(voc.state_dict())
    dec = SOCSpatialDecoder(128, (128, 128, 16), 8)
    assert set(back_sd(MAIN, 'spatial_decoder.')) == set(dec.state_dict())
    assert head.mask_head.num_gen_params == 169
    bad = dict(sd)
    bad['transformer.decoder.bbox_embed.0.layers.0.bias'] = bad['bbox_embed.0.layers.0.bias'] + 1
    with pytest.raises(ValueError):
        convert_official_state_dict(bad)
    assert to_official_loss_name('loss_iou') == 'loss_giou'
    assert to_official_loss_name('d0.loss_mask') == 'loss_sigmoid_focal_0'
