"""Official SOC state-dict keys -> ``soc_mm`` keys, for the "front" modules.

Covers the official prefixes ``backbone.``, ``transformer.``, ``input_proj.``,
``query_embed.``, ``text_encoder.``, ``txt_proj.``, ``vlf.`` and ``lvf.``
(the heads, VOC and spatial decoder are mapped elsewhere). The mapping is an
explicit rule table: every official key of these prefixes must match exactly
one rule; a key that matches none raises ``KeyError``. Rules whose target is
``None`` drop the key (``transformer.decoder.bbox_embed.*`` are the same
tensors as the top-level ``bbox_embed.*``).
"""
import re
from typing import Dict, List, Optional, Tuple

FRONT_PREFIXES = ('backbone.', 'transformer.', 'input_proj.', 'query_embed.', 'text_encoder.',
                  'txt_proj.', 'vlf.', 'lvf.')

_SWIN = r'backbone\.0\.body\.'
_ENC = r'transformer\.encoder\.layers\.(\d+)\.'
_DEC = r'transformer\.decoder\.layers\.(\d+)\.'
_MSDA = r'(sampling_offsets|attention_weights|value_proj|output_proj)\.(weight|bias)'
_WB = r'(weight|bias)'

# (official key regex, our key template; None = drop). Applied with re.fullmatch.
FRONT_KEY_RULES: List[Tuple[str, Optional[str]]] = [
    # Video-Swin backbone (mmaction SwinTransformer3D layout; merging lives in layers.<i>.downsample)
    (_SWIN + r'patch_embed\.(.+)', r'backbone.patch_embed.\1'),
    (_SWIN + r'layers\.(\d+)\.blocks\.(.+)', r'backbone.layers.\1.blocks.\2'),
    (_SWIN + r'downsamples\.(\d+)\.(reduction\.weight|norm\.weight|norm\.bias)',
     r'backbone.layers.\1.downsample.\2'),
    # deformable transformer: level embedding and reference-point projection
    (r'transformer\.level_embed', 'level_embed'),
    (r'transformer\.reference_points\.' + _WB, r'reference_points_fc.\1'),
    # encoder layers (mmdet DeformableDetrTransformerEncoderLayer)
    (_ENC + r'self_attn\.' + _MSDA, r'encoder.layers.\1.self_attn.\2.\3'),
    (_ENC + r'norm1\.' + _WB, r'encoder.layers.\1.norms.0.\2'),
    (_ENC + r'linear1\.' + _WB, r'encoder.layers.\1.ffn.layers.0.0.\2'),
    (_ENC + r'linear2\.' + _WB, r'encoder.layers.\1.ffn.layers.1.\2'),
    (_ENC + r'norm2\.' + _WB, r'encoder.layers.\1.norms.1.\2'),
    # decoder layers (mmdet DeformableDetrTransformerDecoderLayer): self-attn -> norms.0,
    # cross-attn -> norms.1, FFN -> norms.2 (official names: norm2, norm1, norm3)
    (_DEC + r'self_attn\.(in_proj_weight|in_proj_bias|out_proj\.weight|out_proj\.bias)',
     r'decoder.layers.\1.self_attn.attn.\2'),
    (_DEC + r'norm2\.' + _WB, r'decoder.layers.\1.norms.0.\2'),
    (_DEC + r'cross_attn\.' + _MSDA, r'decoder.layers.\1.cross_attn.\2.\3'),
    (_DEC + r'norm1\.' + _WB, r'decoder.layers.\1.norms.1.\2'),
    (_DEC + r'linear1\.' + _WB, r'decoder.layers.\1.ffn.layers.0.0.\2'),
    (_DEC + r'linear2\.' + _WB, r'decoder.layers.\1.ffn.layers.1.\2'),
    (_DEC + r'norm3\.' + _WB, r'decoder.layers.\1.norms.2.\2'),
    # duplicates of the top-level bbox_embed.* (same tensors): dropped
    (r'transformer\.decoder\.bbox_embed\.\d+\.layers\.\d+\.' + _WB, None),
    # input projections -> mmdet ChannelMapper (levels 0-2: 1x1 convs, level 3: extra 3x3 s2 conv)
    (r'input_proj\.([0-2])\.0\.' + _WB, r'neck.convs.\1.conv.\2'),
    (r'input_proj\.([0-2])\.1\.' + _WB, r'neck.convs.\1.gn.\2'),
    (r'input_proj\.3\.0\.' + _WB, r'neck.extra_convs.0.conv.\1'),
    (r'input_proj\.3\.1\.' + _WB, r'neck.extra_convs.0.gn.\1'),
    # learned queries
    (r'query_embed\.weight', 'query_embedding.weight'),
    # text encoder (HF RobertaModel inside RoBERTaTextEncoder) and its projection
    (r'text_encoder\.(embeddings\..+|encoder\.layer\..+|pooler\..+)', r'text_encoder.model.\1'),
    (r'txt_proj\.fc\.' + _WB, r'text_encoder.proj.fc.\1'),
    (r'txt_proj\.layer_norm\.' + _WB, r'text_encoder.proj.norm.\1'),
    # vision<->language fusion
    (r'(vlf|lvf)\.multihead_attn\.(in_proj_weight|in_proj_bias|out_proj\.weight|out_proj\.bias)',
     r'\1.attn.\2'),
]

_COMPILED = [(re.compile(pattern), target) for pattern, target in FRONT_KEY_RULES]


def is_front_key(key: str) -> bool:
    """Whether an official key belongs to the modules mapped here."""
    return key.startswith(FRONT_PREFIXES)


def convert_front_key(key: str) -> Optional[str]:
    """Our key for one official front key; None when the key is dropped.

    Raises KeyError for a key that no rule matches (or that matches several).
    """
    hits = [(regex, target) for regex, target in _COMPILED if regex.fullmatch(key)]
    if len(hits) != 1:
        what = 'no rule' if not hits else f'{len(hits)} rules'
        raise KeyError(f'official key {key!r} matches {what} of soc_mm.utils.official_keys_front')
    regex, target = hits[0]
    return None if target is None else regex.sub(target, key)


def convert_front_state_dict(state_dict: Dict) -> Tuple[Dict, Dict]:
    """Split an official state dict: (converted front entries, untouched other entries)."""
    converted, others = {}, {}
    for key, value in state_dict.items():
        if not is_front_key(key):
            others[key] = value
            continue
        new_key = convert_front_key(key)
        if new_key is None:
            continue
        if new_key in converted:
            raise KeyError(f'two official keys map to {new_key!r}')
        converted[new_key] = value
    return converted, others
