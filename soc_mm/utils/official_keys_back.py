"""Official SOC state-dict keys -> soc_mm keys for the "back" modules (VOC, spatial decoder, heads).

Assumed detector attribute names: ``voc`` (``VOC``), ``spatial_decoder`` (``SOCSpatialDecoder``),
``bbox_head`` (``SOCHead``). Every rule is a pure rename (no reshapes are needed).
``transformer.decoder.bbox_embed.*`` holds the same tensors as ``bbox_embed.*`` (the official
decoder keeps a reference for box refinement); ``convert_official_back_state_dict`` checks that
they are equal and drops them.
"""
import re
from typing import Dict, Optional

import torch

BACK_PREFIXES = ('voc.', 'spatial_decoder.', 'controller.', 'class_embed.', 'bbox_embed.',
                 'transformer.decoder.bbox_embed.')

_MHA = r'(in_proj_weight|in_proj_bias|out_proj\.weight|out_proj\.bias)'
_P = r'(weight|bias)'

# (official regex, our template); the first full match wins.
BACK_KEY_RULES = [
    # VOC encoder: SelfAttentionLayer + FFNLayer -> mmdet DetrTransformerEncoderLayer
    (rf'voc\.enc_self_attn\.(\d+)\.self_attn\.{_MHA}', r'voc.encoder_layers.\1.self_attn.attn.\2'),
    (rf'voc\.enc_self_attn\.(\d+)\.norm\.{_P}', r'voc.encoder_layers.\1.norms.0.\2'),
    (rf'voc\.enc_ffn\.(\d+)\.linear1\.{_P}', r'voc.encoder_layers.\1.ffn.layers.0.0.\2'),
    (rf'voc\.enc_ffn\.(\d+)\.linear2\.{_P}', r'voc.encoder_layers.\1.ffn.layers.1.\2'),
    (rf'voc\.enc_ffn\.(\d+)\.norm\.{_P}', r'voc.encoder_layers.\1.norms.1.\2'),
    # VOC decoder: cross-attn, self-attn, FFN -> VOCDecoderLayer
    (rf'voc\.transformer_cross_attention_layers\.(\d+)\.multihead_attn\.{_MHA}',
     r'voc.decoder_layers.\1.cross_attn.attn.\2'),
    (rf'voc\.transformer_cross_attention_layers\.(\d+)\.norm\.{_P}', r'voc.decoder_layers.\1.norms.0.\2'),
    (rf'voc\.transformer_self_attention_layers\.(\d+)\.self_attn\.{_MHA}',
     r'voc.decoder_layers.\1.self_attn.attn.\2'),
    (rf'voc\.transformer_self_attention_layers\.(\d+)\.norm\.{_P}', r'voc.decoder_layers.\1.norms.1.\2'),
    (rf'voc\.transformer_ffn_layers\.(\d+)\.linear1\.{_P}', r'voc.decoder_layers.\1.ffn.layers.0.0.\2'),
    (rf'voc\.transformer_ffn_layers\.(\d+)\.linear2\.{_P}', r'voc.decoder_layers.\1.ffn.layers.1.\2'),
    (rf'voc\.transformer_ffn_layers\.(\d+)\.norm\.{_P}', r'voc.decoder_layers.\1.norms.2.\2'),
    (r'voc\.fq_pos\.weight', r'voc.frame_query_pos.weight'),
    (r'voc\.query_embed\.weight', r'voc.query_pos.weight'),
    (rf'voc\.decoder_norm\.{_P}', r'voc.decoder_norm.\1'),
    # spatial decoder: lay/gn pairs -> ConvModules, adapters -> lateral convs
    (rf'spatial_decoder\.lay([12])\.{_P}', lambda m: f'spatial_decoder.context_convs.{int(m[1]) - 1}.conv.{m[2]}'),
    (rf'spatial_decoder\.gn([12])\.{_P}', lambda m: f'spatial_decoder.context_convs.{int(m[1]) - 1}.gn.{m[2]}'),
    (rf'spatial_decoder\.lay([345])\.{_P}', lambda m: f'spatial_decoder.fuse_convs.{int(m[1]) - 3}.conv.{m[2]}'),
    (rf'spatial_decoder\.gn([345])\.{_P}', lambda m: f'spatial_decoder.fuse_convs.{int(m[1]) - 3}.gn.{m[2]}'),
    (rf'spatial_decoder\.adapter([123])\.{_P}',
     lambda m: f'spatial_decoder.lateral_convs.{int(m[1]) - 1}.{m[2]}'),
    (rf'spatial_decoder\.out_lay\.{_P}', r'spatial_decoder.out_conv.\1'),
    # heads
    (rf'controller\.layers\.(\d+)\.{_P}', r'bbox_head.controller.layers.\1.\2'),
    (rf'class_embed\.(\d+)\.{_P}', r'bbox_head.cls_branches.\1.\2'),
    (rf'bbox_embed\.(\d+)\.layers\.(\d+)\.{_P}', r'bbox_head.reg_branches.\1.layers.\2.\3'),
    # duplicate of bbox_embed.* (dropped after an equality check)
    (rf'transformer\.decoder\.bbox_embed\.(\d+)\.layers\.(\d+)\.{_P}', None),
]
_COMPILED = [(re.compile(p), t) for p, t in BACK_KEY_RULES]


def is_official_back_key(key: str) -> bool:
    """Whether ``key`` belongs to the modules this table converts."""
    return key.startswith(BACK_PREFIXES)


def convert_official_back_key(key: str) -> Optional[str]:
    """Map one official key; None for keys that are dropped (duplicates).

    Raises:
        KeyError: ``key`` has a back prefix but no rule (unknown official key).
    """
    for pattern, template in _COMPILED:
        m = pattern.fullmatch(key)
        if m is None:
            continue
        if template is None:
            return None
        return template(m) if callable(template) else m.expand(template)
    raise KeyError(f'official_keys_back: no rule for official key "{key}"')


def convert_official_back_state_dict(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Convert every back-module entry of an official state dict (other keys are ignored).

    Raises:
        KeyError: an unknown back key.
        ValueError: a ``transformer.decoder.bbox_embed`` tensor differs from ``bbox_embed``.
    """
    out = {}
    for key, value in state_dict.items():
        if not is_official_back_key(key):
            continue
        new_key = convert_official_back_key(key)
        if new_key is None:
            twin = key[len('transformer.decoder.'):]
            if twin in state_dict and not torch.equal(state_dict[twin], value):
                raise ValueError(f'official_keys_back: "{key}" differs from "{twin}"; the official '
                                 f'model ties them, refusing to drop it')
            continue
        out[new_key] = value
    return out


def to_official_loss_name(name: str) -> str:
    """Our loss key (``loss_iou``, ``d0.loss_mask``) -> official (``loss_giou``, ``loss_sigmoid_focal_0``)."""
    from soc_mm.models.dense_heads.soc_head import OFFICIAL_LOSS_NAMES
    m = re.fullmatch(r'(?:d(\d+)\.)?(\w+)', name)
    if m is None or m[2] not in OFFICIAL_LOSS_NAMES:
        raise KeyError(f'official_keys_back: unknown loss name "{name}"')
    base = OFFICIAL_LOSS_NAMES[m[2]]
    return base if m[1] is None else f'{base}_{m[1]}'
