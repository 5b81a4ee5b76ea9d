"""Front modules of SOC (backbone, text encoder, positional encodings, fusion,
official key mapping) against the official fixtures."""
import math
import os.path as osp

import pytest
import torch
from torch import nn

from conftest import FIXTURE_ROOT
import soc_mm  # noqa: F401  (shims + registries)
from soc_mm.models.backbones import VideoSwinTransformer
from soc_mm.models.layers import SinePositionalEncoding1D, VisionLanguageFusion
from soc_mm.models.text_encoders import RoBERTaTextEncoder
from soc_mm.official.checkpoint import (KEY_RULES, OfficialCheckpointError, convert_official_key,
                                        convert_official_state_dict)

FIXTURES = FIXTURE_ROOT
MAIN = osp.join(FIXTURES, 'ytvos_b2_t3_nc1_w0')
TEXT_ENCODER_DIR = osp.join(FIXTURES, 'common', 'text_encoder')
TINY_SWIN = dict(arch=dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 8]), drop_path_rate=0.)


@pytest.fixture(scope='module')
def official_sd():
    return torch.load(osp.join(FIXTURES, 'common', 'official_state_dict.pt'))


@pytest.fixture(scope='module')
def front_sd(official_sd):
    return convert_official_state_dict(official_sd)


def sub_state_dict(state_dict, prefix):
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


# ---------------------------------------------------------------- key mapping
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


# ---------------------------------------------------------------- backbone
def build_tiny_swin(**kwargs):
    cfg = dict(TINY_SWIN)
    cfg.update(kwargs)
    return VideoSwinTransformer(**cfg)


def test_backbone_has_no_output_norms(official_sd):
    backbone = build_tiny_swin()
    for i in range(4):
        assert isinstance(getattr(backbone, f'norm{i}'), nn.Identity)
    keys = set(backbone.state_dict())
    assert not any(k.startswith('norm') for k in keys)
    official = {k for k in official_sd if k.startswith('backbone.')}
    assert len(keys) == len(official)
    assert backbone.out_channels == [16, 32, 64, 128] and backbone.strides == [4, 8, 16, 32]


def test_backbone_matches_official_features(front_sd):
    torch.set_num_threads(1)
    backbone = build_tiny_swin().eval()
    backbone.load_state_dict(sub_state_dict(front_sd, 'backbone.'), strict=True)
    inputs = torch.load(osp.join(MAIN, 'inputs.pt'))['samples'].transpose(0, 1).contiguous()
    ref = torch.load(osp.join(MAIN, 'intermediates_eval.pt'))['backbone']['features']
    with torch.no_grad():
        feats = backbone(inputs)
    assert len(feats) == 4
    for ours, theirs in zip(feats, ref):
        assert ours.shape == theirs.shape
        torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-5)


def test_backbone_rejects_bad_input():
    with pytest.raises(ValueError, match=r'\[B, T, 3, H, W\]'):
        build_tiny_swin()(torch.zeros(2, 3, 32, 32))


def test_k400_checkpoint_sums_temporal_kernel(tmp_path):
    # a fake Video-Swin K400 classification checkpoint: temporal patch 2, final norm, class head
    source = build_tiny_swin(patch_size=(2, 4, 4))
    state = {f'backbone.{k}': v.clone().normal_() if v.is_floating_point() else v
             for k, v in source.state_dict().items()}
    state['backbone.norm.weight'] = torch.ones(128)
    state['backbone.norm.bias'] = torch.zeros(128)
    state['backbone.norm3.weight'] = torch.ones(128)  # mmaction2-style output norm
    state['cls_head.fc_cls.weight'] = torch.zeros(400, 128)
    ckpt = tmp_path / 'swin_k400.pth'
    torch.save(dict(meta=dict(epoch=30), state_dict=state), ckpt)

    backbone = build_tiny_swin(init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)))
    backbone.init_weights()
    kernel = state['backbone.patch_embed.proj.weight']
    assert kernel.shape[2] == 2 and backbone.patch_embed.proj.weight.shape[2] == 1
    torch.testing.assert_close(backbone.patch_embed.proj.weight, kernel.sum(2, keepdim=True))
    torch.testing.assert_close(backbone.layers[1].blocks[1].attn.qkv.weight,
                               state['backbone.layers.1.blocks.1.attn.qkv.weight'])
    torch.testing.assert_close(backbone.layers[2].downsample.reduction.weight,
                               state['backbone.layers.2.downsample.reduction.weight'])

    with pytest.raises(FileNotFoundError, match='not found'):
        build_tiny_swin(init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'nope.pth'))).init_weights()
    with pytest.raises(ValueError, match='no key starts with prefix'):
        build_tiny_swin().load_kinetics_checkpoint(str(ckpt), prefix='model.')


# ---------------------------------------------------------------- text encoder
@pytest.fixture(scope='module')
def text_encoder(front_sd):
    encoder = RoBERTaTextEncoder(TEXT_ENCODER_DIR, embed_dims=128, freeze=True)
    encoder.load_state_dict(sub_state_dict(front_sd, 'text_encoder.'), strict=True)
    return encoder.eval()


def test_text_encoder_matches_official(text_encoder):
    inputs = torch.load(osp.join(MAIN, 'inputs.pt'))
    ref = torch.load(osp.join(MAIN, 'intermediates_eval.pt'))
    texts = inputs['text_queries']
    tokens = text_encoder.tokenize(texts)
    assert torch.equal(tokens['input_ids'], inputs['tokenized']['input_ids'])
    assert torch.equal(tokens['attention_mask'], inputs['tokenized']['attention_mask'])
    with torch.no_grad():
        hidden, pooled, _ = text_encoder.encode(texts)
        words, word_mask, sentence = text_encoder(texts)
    torch.testing.assert_close(hidden, ref['text_encoder']['last_hidden_state'], rtol=0, atol=1e-5)
    torch.testing.assert_close(pooled, ref['text_encoder']['pooler_output'], rtol=0, atol=1e-5)
    torch.testing.assert_close(words, ref['txt_proj_calls'][0].transpose(0, 1), rtol=0, atol=1e-5)
    torch.testing.assert_close(sentence, ref['txt_proj_calls'][1], rtol=0, atol=1e-5)
    assert torch.equal(word_mask, inputs['tokenized']['attention_mask'] == 0)
    assert word_mask.any()  # the two expressions have different lengths


def test_text_encoder_freezing(text_encoder):
    text_encoder.train()
    try:
        words, _, sentence = text_encoder(['a man riding a horse', 'the dog'])
        (words.sum() + sentence.sum()).backward()
    finally:
        text_encoder.eval()
    assert all(p.grad is None and not p.requires_grad for p in text_encoder.model.parameters())
    assert all(p.grad is not None for p in text_encoder.proj.parameters())
    text_encoder.zero_grad(set_to_none=True)

    trainable = RoBERTaTextEncoder(TEXT_ENCODER_DIR, embed_dims=128, freeze=False)
    trainable(['a dog'])[2].sum().backward()
    assert trainable.model.embeddings.word_embeddings.weight.grad is not None


def test_text_encoder_bad_inputs(tmp_path, text_encoder):
    with pytest.raises(FileNotFoundError, match='is not a directory'):
        RoBERTaTextEncoder(str(tmp_path / 'missing'), embed_dims=128)
    no_tokenizer = tmp_path / 'no_tokenizer'
    no_tokenizer.mkdir()
    (no_tokenizer / 'config.json').write_text(open(osp.join(TEXT_ENCODER_DIR, 'config.json')).read())
    with pytest.raises(FileNotFoundError, match='no tokenizer files'):
        RoBERTaTextEncoder(str(no_tokenizer), embed_dims=128)
    with pytest.raises(ValueError, match='non-empty referring expression'):
        text_encoder(['a dog', '  '])
    with pytest.raises(ValueError, match='non-empty list of str'):
        text_encoder([])
    with pytest.raises(ValueError, match='non-empty list of str'):
        text_encoder('a dog')


# ---------------------------------------------------------------- encodings / fusion
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


def test_vision_language_fusion_gates_query():
    torch.manual_seed(0)
    fusion = VisionLanguageFusion(16, num_heads=4).eval()
    query, key, key_pos = torch.randn(2, 5, 16), torch.randn(2, 3, 16), torch.randn(2, 3, 16)
    mask = torch.tensor([[False, False, True], [False, False, False]])
    out = fusion(query, key, key_pos=key_pos, key_padding_mask=mask)
    attended = fusion.attn(query, key + key_pos, key, key_padding_mask=mask)[0]
    torch.testing.assert_close(out, query * attended)
    # a masked key has no influence
    key2 = key.clone()
    key2[0, 2] += 100
    torch.testing.assert_close(fusion(query, key2, key_pos=key_pos, key_padding_mask=mask)[0], out[0])
