"""Official SOC checkpoints (RobertLuo1/NeurIPS2023_SOC) and SOC++ checkpoints (yongliu20/MRVS_SOC)
-> ``soc_mm`` state dicts.

One rule table per official model (:data:`KEY_RULES` for SOC, :data:`SOCPP_KEY_RULES` for SOC++; both in
:data:`OFFICIAL_LAYOUTS`) and one engine (:func:`convert_official_state_dict`).

A rule maps one official *module* (a path pattern such as
``transformer.encoder.layers.{i}``) to our module, and lists the parameters/buffers
(*leaves*) that module holds, with their names on our side. An official key is
``<module>.<leaf>``; every key of a checkpoint must be claimed by exactly one rule or be a
named known extra (:data:`KNOWN_EXTRA_KEYS`). Because each rule lists its leaves, the
table also says what a complete checkpoint holds, so a conversion fails, listing every
offender, when

* a key is unknown (no rule, not a known extra) or claimed by several rules,
* a module instance lacks one of its leaves (e.g. ``...layers.1.norm1.bias``),
* a required module is absent altogether, or numbered instances have a gap
  (``layers.0`` and ``layers.2`` but no ``layers.1``),
* a dropped duplicate differs from the tensor it duplicates, or two keys map to one.

The number of layers/levels is not known without a model: the converter checks it, and
every shape and dtype, against the model built from ``--config``
(:func:`check_state_dict_against_model`).

``transformer.decoder.bbox_embed.*`` are the same tensors as the top-level
``bbox_embed.*`` (the official decoder holds a reference for iterative box refinement):
one rule claims them, checks the equality and drops them.
"""
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from soc_mm.utils.checkpoint import CheckpointFormatError, UnsafeCheckpointError, safe_load_local

__all__ = [
    'KeyRule', 'KEY_RULES', 'SOCPP_KEY_RULES', 'OFFICIAL_LAYOUTS', 'detect_official_layout', 'KNOWN_EXTRA_KEYS',
    'OfficialCheckpointError', 'convert_official_key',
    'convert_official_state_dict', 'extract_official_state_dict', 'load_official_checkpoint',
    'check_state_dict_against_model'
]

# Keys that released checkpoints carry but our model does not need, by exact name.
KNOWN_EXTRA_KEYS = {
    # persistent buffer in transformers 4.24 (the official checkpoints); non-persistent since.
    'text_encoder.embeddings.position_ids': 'transformers 4.24 buffer (recomputed by our RobertaModel)',
}

# Entries of an official training checkpoint (trainer.save_checkpoint) that hold the model.
STATE_DICT_ENTRIES = ('model_state_dict', 'model', 'state_dict')


class OfficialCheckpointError(ValueError):
    """An official checkpoint that cannot be converted completely and exactly."""


_PLACEHOLDER = re.compile(r'\{(\w+)(?::([^}]+))?\}')


@dataclass
class KeyRule:
    """One official module -> one of ours.

    Args:
        official (str): module path with numbered placeholders, ``{i}`` (digits) or
            ``{i:<regex>}`` (e.g. ``{i:[0-2]}``).
        ours (str | callable | None): our module path (``{i}`` filled in, ``''`` = top level),
            a function of the placeholder values returning it, or None: the module duplicates
            another one (``twin``) and is dropped after an equality check.
        leaves (Mapping[str, str]): official leaf -> our leaf; all of them must be present.
        optional_leaves (Mapping[str, str]): leaves that may be absent (e.g. a norm that a
            config switches off).
        required (bool): every official checkpoint holds at least one instance.
        first_index (int): the first value of the last placeholder (instances must be
            numbered ``first_index, first_index + 1, ...`` without gaps).
        twin (str): for ``ours=None``: official module path of the duplicated tensors.
        group (str): rules of one group describe parts of the same numbered modules (e.g. the
            VOC encoder layer ``i`` = ``enc_self_attn.{i}`` + ``enc_ffn.{i}``; decoder level ``l``
            = its layer, class head and box head): the values of their first placeholder must
            be the same.
    """
    official: str
    ours: Union[str, Callable[..., str], None]
    leaves: Mapping[str, str]
    optional_leaves: Mapping[str, str] = field(default_factory=dict)
    required: bool = True
    first_index: int = 0
    twin: Optional[str] = None
    group: Optional[str] = None

    def __post_init__(self):
        self.placeholders = [m[1] for m in _PLACEHOLDER.finditer(self.official)]
        parts, pos = [], 0
        for m in _PLACEHOLDER.finditer(self.official):
            parts.append(re.escape(self.official[pos:m.start()]))
            parts.append(f'(?P<{m[1]}>{m[2] or r"[0-9]+"})')
            pos = m.end()
        parts.append(re.escape(self.official[pos:]))
        self.regex = re.compile(''.join(parts))
        self.all_leaves = {**self.leaves, **self.optional_leaves}

    def official_module(self, values: Mapping[str, int]) -> str:
        """The official module path for placeholder values (``'<i>'`` etc. when missing)."""
        return _PLACEHOLDER.sub(lambda m: str(values.get(m[1], f'<{m[1]}>')), self.official)

    def our_module(self, values: Mapping[str, int]) -> Optional[str]:
        if self.ours is None:
            return None
        if callable(self.ours):
            return self.ours(**values)
        return self.ours.format(**values)

    def describe(self) -> str:
        return self.official_module({})


def _join(module: str, leaf: str) -> str:
    return f'{module}.{leaf}' if module else leaf


def _same(*leaves: str) -> Dict[str, str]:
    return {leaf: leaf for leaf in leaves}


def _wb(official: str = '', ours: str = '') -> Dict[str, str]:
    """weight and bias of one layer, renamed ``official`` -> ``ours``."""
    return {_join(official, p): _join(ours, p) for p in ('weight', 'bias')}


def _mha(official: str, ours: str) -> Dict[str, str]:
    """torch ``nn.MultiheadAttention`` parameters (mmcv's ``MultiheadAttention`` wraps one as ``attn``)."""
    return {_join(official, p): _join(ours, p)
            for p in ('in_proj_weight', 'in_proj_bias', 'out_proj.weight', 'out_proj.bias')}


def _msda(name: str) -> Dict[str, str]:
    """Multi-scale deformable attention (official Deformable-DETR op == mmcv's module)."""
    return {k: v for p in ('sampling_offsets', 'attention_weights', 'value_proj', 'output_proj')
            for k, v in _wb(f'{name}.{p}', f'{name}.{p}').items()}


_SWIN_BLOCK = _same('norm1.weight', 'norm1.bias', 'attn.relative_position_bias_table',
                    'attn.relative_position_index', 'attn.qkv.weight', 'attn.qkv.bias',
                    'attn.proj.weight', 'attn.proj.bias', 'norm2.weight', 'norm2.bias',
                    'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias')
_ROBERTA_LAYER = _same(*(f'{m}.{p}' for m in (
    'attention.self.query', 'attention.self.key', 'attention.self.value', 'attention.output.dense',
    'attention.output.LayerNorm', 'intermediate.dense', 'output.dense', 'output.LayerNorm')
                         for p in ('weight', 'bias')))
_ROBERTA_EMBEDDINGS = _same('word_embeddings.weight', 'position_embeddings.weight',
                            'token_type_embeddings.weight', 'LayerNorm.weight', 'LayerNorm.bias')
# SOC's FPN spatial decoder: lay1/gn1, lay2/gn2 (context convs), lay3-5/gn3-5 (fuse convs),
# adapter1-3 (lateral 1x1 convs), out_lay.
_SPATIAL_DECODER = {
    **{k: v for n in (1, 2) for k, v in {**_wb(f'lay{n}', f'context_convs.{n - 1}.conv'),
                                         **_wb(f'gn{n}', f'context_convs.{n - 1}.gn')}.items()},
    **{k: v for n in (3, 4, 5) for k, v in {**_wb(f'lay{n}', f'fuse_convs.{n - 3}.conv'),
                                            **_wb(f'gn{n}', f'fuse_convs.{n - 3}.gn')}.items()},
    **{k: v for n in (1, 2, 3) for k, v in _wb(f'adapter{n}', f'lateral_convs.{n - 1}').items()},
    **_wb('out_lay', 'out_conv'),
}

#: THE table: official module -> our module (``SOC`` attribute names: backbone, text_encoder,
#: neck, encoder, decoder, level_embed, reference_points_fc, query_embedding, vlf, lvf, voc,
#: spatial_decoder, bbox_head).
KEY_RULES: List[KeyRule] = [
    # ---- Video-Swin backbone (mmaction SwinTransformer3D layout; merging in layers.<s>.downsample)
    KeyRule('backbone.0.body.patch_embed', 'backbone.patch_embed', _wb('proj', 'proj'),
            optional_leaves=_wb('norm', 'norm')),  # norm: patch_norm=True
    KeyRule('backbone.0.body.layers.{s}.blocks.{b}', 'backbone.layers.{s}.blocks.{b}', _SWIN_BLOCK),
    KeyRule('backbone.0.body.downsamples.{s}', 'backbone.layers.{s}.downsample',
            {'reduction.weight': 'reduction.weight', **_wb('norm', 'norm')}),
    # ---- text encoder (HF RobertaModel inside RoBERTaTextEncoder) and its projection
    KeyRule('text_encoder.embeddings', 'text_encoder.model.embeddings', _ROBERTA_EMBEDDINGS),
    KeyRule('text_encoder.encoder.layer.{i}', 'text_encoder.model.encoder.layer.{i}', _ROBERTA_LAYER),
    KeyRule('text_encoder.pooler', 'text_encoder.model.pooler', _wb('dense', 'dense')),
    KeyRule('txt_proj', 'text_encoder.proj', {**_wb('fc', 'fc'), **_wb('layer_norm', 'norm')}),
    # ---- vision<->language fusion
    KeyRule('vlf', 'vlf', _mha('multihead_attn', 'attn')),
    KeyRule('lvf', 'lvf', _mha('multihead_attn', 'attn')),
    # ---- input projections -> mmdet ChannelMapper (1x1 convs on the last 3 backbone stages,
    #      then extra 3x3 stride-2 convs)
    KeyRule('input_proj.{i:[0-2]}', 'neck.convs.{i}', {**_wb('0', 'conv'), **_wb('1', 'gn')}),
    KeyRule('input_proj.{i:[3-9]|[1-9][0-9]+}', lambda i: f'neck.extra_convs.{i - 3}',
            {**_wb('0', 'conv'), **_wb('1', 'gn')}, required=False, first_index=3),
    # ---- deformable transformer
    KeyRule('transformer', '', {'level_embed': 'level_embed'}),
    KeyRule('transformer.reference_points', 'reference_points_fc', _wb()),
    # encoder layers (mmdet DeformableDetrTransformerEncoderLayer)
    KeyRule('transformer.encoder.layers.{i}', 'encoder.layers.{i}', {
        **_msda('self_attn'), **_wb('norm1', 'norms.0'), **_wb('linear1', 'ffn.layers.0.0'),
        **_wb('linear2', 'ffn.layers.1'), **_wb('norm2', 'norms.1')}),
    # decoder layers (mmdet DeformableDetrTransformerDecoderLayer): self-attn -> norms.0,
    # cross-attn -> norms.1, FFN -> norms.2 (official names: norm2, norm1, norm3)
    KeyRule('transformer.decoder.layers.{i}', 'decoder.layers.{i}', group='decoder levels', leaves={
        **_mha('self_attn', 'self_attn.attn'), **_wb('norm2', 'norms.0'), **_msda('cross_attn'),
        **_wb('norm1', 'norms.1'), **_wb('linear1', 'ffn.layers.0.0'), **_wb('linear2', 'ffn.layers.1'),
        **_wb('norm3', 'norms.2')}),
    # the decoder's reference to the box heads (with_box_refine): same tensors as bbox_embed.*
    KeyRule('transformer.decoder.bbox_embed.{l}.layers.{k}', None, _wb(), required=False,
            twin='bbox_embed.{l}.layers.{k}', group='decoder levels'),
    KeyRule('query_embed', 'query_embedding', {'weight': 'weight'}),
    # ---- VOC: encoder = SelfAttentionLayer + FFNLayer -> mmdet DetrTransformerEncoderLayer;
    #      decoder = cross-attn, self-attn, FFN -> VOCDecoderLayer
    KeyRule('voc.enc_self_attn.{i}', 'voc.encoder_layers.{i}', group='voc encoder', leaves={
        **_mha('self_attn', 'self_attn.attn'), **_wb('norm', 'norms.0')}),
    KeyRule('voc.enc_ffn.{i}', 'voc.encoder_layers.{i}', group='voc encoder', leaves={
        **_wb('linear1', 'ffn.layers.0.0'), **_wb('linear2', 'ffn.layers.1'), **_wb('norm', 'norms.1')}),
    KeyRule('voc.transformer_cross_attention_layers.{i}', 'voc.decoder_layers.{i}', group='voc decoder', leaves={
        **_mha('multihead_attn', 'cross_attn.attn'), **_wb('norm', 'norms.0')}),
    KeyRule('voc.transformer_self_attention_layers.{i}', 'voc.decoder_layers.{i}', group='voc decoder', leaves={
        **_mha('self_attn', 'self_attn.attn'), **_wb('norm', 'norms.1')}),
    KeyRule('voc.transformer_ffn_layers.{i}', 'voc.decoder_layers.{i}', group='voc decoder', leaves={
        **_wb('linear1', 'ffn.layers.0.0'), **_wb('linear2', 'ffn.layers.1'), **_wb('norm', 'norms.2')}),
    KeyRule('voc', 'voc', {'fq_pos.weight': 'frame_query_pos.weight', 'query_embed.weight': 'query_pos.weight',
                           **_wb('decoder_norm', 'decoder_norm')}),
    # ---- FPN spatial decoder
    KeyRule('spatial_decoder', 'spatial_decoder', _SPATIAL_DECODER),
    # ---- heads (SOCHead): dynamic-mask controller, class and box branches per decoder level
    KeyRule('controller.layers.{i}', 'bbox_head.controller.layers.{i}', _wb()),
    KeyRule('class_embed.{l}', 'bbox_head.cls_branches.{l}', _wb(), group='decoder levels'),
    KeyRule('bbox_embed.{l}.layers.{k}', 'bbox_head.reg_branches.{l}.layers.{k}', _wb(), group='decoder levels'),
]


def _scorer(official: str, ours: str) -> List[KeyRule]:
    """SOC++'s per-frame scorer ``Sequential(FFNLayer, Linear, Sigmoid)`` -> our ``FrameScorer``."""
    return [KeyRule(f'{official}.0', ours, {**_wb('linear1', 'ffn.layers.0.0'), **_wb('linear2', 'ffn.layers.1'),
                                              **_wb('norm', 'norm')}),
            KeyRule(f'{official}.1', f'{ours}.fc', _wb())]


_SOC_VOC_ENCODER_ATTN = 'voc.enc_self_attn.{i}'
_SOC_VOC_MODULE = 'voc'

#: SOC++ (yongliu20/MRVS_SOC) -> ``SOCPlusPlus``: SOC's table with the VOC encoder's attention a
#: cross-attention (``multihead_attn``), the cluster decoder's scorers and learned query content,
#: the proxies (``proxy_embed``, ``v2p``) and the query fusion.
SOCPP_KEY_RULES: List[KeyRule] = [
    rule for rule in KEY_RULES if rule.official not in (_SOC_VOC_ENCODER_ATTN, _SOC_VOC_MODULE)
] + [
    KeyRule(_SOC_VOC_ENCODER_ATTN, 'voc.encoder_layers.{i}', group='voc encoder', leaves={
        **_mha('multihead_attn', 'cross_attn.attn'), **_wb('norm', 'norms.0')}),
    KeyRule(_SOC_VOC_MODULE, 'voc', {'fq_pos.weight': 'frame_query_pos.weight',
                                     'query_embed.weight': 'query_pos.weight',
                                     'video_query_embed.weight': 'query_content.weight',
                                     **_wb('decoder_norm', 'decoder_norm')}),
    *_scorer('voc.score_embd', 'voc.visibility_scorer'),
    *_scorer('voc.diff_embd', 'voc.difference_scorer'),
    KeyRule('proxy_embed', 'proxy_queries', {'weight': 'weight'}),
    KeyRule('v2p', 'proxy_fusion', _mha('multihead_attn', 'attn')),
    KeyRule('query_fusion', 'query_fusion', {**_mha('multihead_attn', 'cross_attn.attn'), **_wb('norm', 'norm')}),
]

#: the official models whose checkpoints convert: name -> (description, rule table, our model class)
OFFICIAL_LAYOUTS = {
    'soc': ('SOC (RobertLuo1/NeurIPS2023_SOC)', KEY_RULES, 'SOC'),
    'socpp': ('SOC++ (yongliu20/MRVS_SOC)', SOCPP_KEY_RULES, 'SOCPlusPlus'),
}
#: keys only a SOC++ checkpoint holds (how :func:`detect_official_layout` tells them apart)
_SOCPP_ONLY_PREFIXES = ('proxy_embed.', 'v2p.', 'query_fusion.', 'voc.score_embd.', 'voc.diff_embd.',
                        'voc.video_query_embed.')


def _build_leaf_index(rules: Sequence[KeyRule]) -> Dict[str, List[KeyRule]]:
    index: Dict[str, List[KeyRule]] = {}
    for rule in rules:
        for leaf in rule.all_leaves:
            index.setdefault(leaf, []).append(rule)
    return index


_LEAF_INDEX = {name: _build_leaf_index(rules) for name, (_, rules, _) in OFFICIAL_LAYOUTS.items()}


def detect_official_layout(state_dict: Mapping[str, torch.Tensor]) -> str:
    """``'socpp'`` when the state dict holds any SOC++-only module (proxies, query fusion, the
    cluster decoder's scorers), else ``'soc'`` (a ``module.`` prefix is ignored)."""
    for key in state_dict:
        key = key[len('module.'):] if key.startswith('module.') else key
        if key.startswith(_SOCPP_ONLY_PREFIXES):
            return 'socpp'
    return 'soc'


def _layout(layout: Optional[str]) -> str:
    if layout not in OFFICIAL_LAYOUTS:
        raise ValueError(f'unknown official checkpoint layout {layout!r}: expected one of {sorted(OFFICIAL_LAYOUTS)}')
    return layout


def _claims(key: str, layout: str = 'soc') -> List[Tuple[KeyRule, Dict[str, int], str]]:
    """Every (rule, placeholder values, leaf) of the layout's table that claims ``key``."""
    hits = []
    for pos in [m.start() for m in re.finditer(r'\.', key)] + [-1]:
        module, leaf = (key[:pos], key[pos + 1:]) if pos >= 0 else ('', key)
        for rule in _LEAF_INDEX[layout].get(leaf, ()):
            m = rule.regex.fullmatch(module)
            if m is not None:
                hits.append((rule, {k: int(v) for k, v in m.groupdict().items()}, leaf))
    return hits


def convert_official_key(key: str, layout: str = 'soc') -> Optional[str]:
    """Our key for one official key (``layout``: 'soc' or 'socpp'); None for a dropped duplicate or a
    known extra.

    Raises:
        KeyError: no rule claims the key, or several do.
    """
    if key in KNOWN_EXTRA_KEYS:
        return None
    hits = _claims(key, _layout(layout))
    if len(hits) != 1:
        what = 'matches no rule' if not hits else f'matches {len(hits)} rules ' \
            f'({", ".join(h[0].describe() for h in hits)})'
        raise KeyError(f'official key {key!r} {what} of the {OFFICIAL_LAYOUTS[layout][0]} table in '
                       'soc_mm.official.checkpoint')
    rule, values, leaf = hits[0]
    module = rule.our_module(values)
    return None if module is None else _join(module, rule.all_leaves[leaf])


def _format_list(items: Sequence[str], limit: int = 100) -> str:
    items = list(items)
    shown = ', '.join(items[:limit])
    return shown + (f', ... and {len(items) - limit} more' if len(items) > limit else '')


def _index_gaps(rule: KeyRule, instances: Iterable[Tuple[int, ...]]) -> List[str]:
    """Official module paths of missing instances between numbered ones (``layers.1`` of 0, 2)."""
    gaps = []
    names = rule.placeholders
    instances = set(instances)
    for k in range(len(names)):
        groups: Dict[Tuple[int, ...], set] = {}
        for inst in instances:
            groups.setdefault(inst[:k], set()).add(inst[k])
        start = rule.first_index if k == len(names) - 1 else 0
        for prefix, values in groups.items():
            for v in range(start, max(values) + 1):
                if v not in values:
                    gaps.append(rule.official_module(dict(zip(names, prefix + (v, )))) + '.*')
    return sorted(gaps)


def _group_gaps(present: Mapping[int, Mapping[Tuple[int, ...], set]], rules: Sequence[KeyRule]) -> List[str]:
    """Official module paths missing from a group (a first-placeholder value some member has)."""
    groups: Dict[str, List[KeyRule]] = {}
    for rule in rules:
        if rule.group is not None and present[id(rule)]:
            groups.setdefault(rule.group, []).append(rule)
    gaps = []
    for rules in groups.values():
        values = [{inst[0] for inst in present[id(rule)]} for rule in rules]
        union = set().union(*values)
        for rule, have in zip(rules, values):
            gaps += [rule.official_module({rule.placeholders[0]: v}) + '.*' for v in sorted(union - have)]
    return gaps


def convert_official_state_dict(state_dict: Mapping[str, torch.Tensor],
                                layout: Optional[str] = None) -> 'OrderedDict[str, torch.Tensor]':
    """Official SOC / SOC++ state dict -> ``soc_mm`` ``SOC`` / ``SOCPlusPlus`` state dict (complete, or
    an error).

    Args:
        state_dict: the official model's ``state_dict()`` (``model_state_dict`` of a training
            checkpoint); a ``module.`` prefix (DDP) is removed.
        layout (str, optional): 'soc' (:data:`KEY_RULES`) or 'socpp' (:data:`SOCPP_KEY_RULES`); None:
            :func:`detect_official_layout`. A SOC++ checkpoint given as 'soc' fails on its SOC++-only
            keys; a SOC checkpoint given as 'socpp', on SOC++'s missing modules.

    Returns:
        Our state dict, sorted by key.

    Raises:
        OfficialCheckpointError: listing every unknown, ambiguous, missing, colliding or
            inconsistent key.
    """
    state_dict = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state_dict.items()}
    layout = detect_official_layout(state_dict) if layout is None else _layout(layout)
    name, rules, _ = OFFICIAL_LAYOUTS[layout]
    unknown, ambiguous, problems = [], [], []
    present: Dict[int, Dict[Tuple[int, ...], set]] = {id(r): {} for r in rules}
    converted: Dict[str, torch.Tensor] = {}
    source: Dict[str, str] = {}
    for key, value in state_dict.items():
        if key in KNOWN_EXTRA_KEYS:
            continue
        hits = _claims(key, layout)
        if not hits:
            unknown.append(key)
            continue
        if len(hits) > 1:
            ambiguous.append(f'{key} ({", ".join(h[0].describe() for h in hits)})')
            continue
        rule, values, leaf = hits[0]
        present[id(rule)].setdefault(tuple(values[n] for n in rule.placeholders), set()).add(leaf)
        module = rule.our_module(values)
        if module is None:  # a duplicate: must equal its twin
            twin = _join(rule.twin.format(**values), leaf)
            if twin not in state_dict:
                problems.append(f'{key} duplicates {twin}, which is missing')
            elif not (isinstance(value, torch.Tensor) and isinstance(state_dict[twin], torch.Tensor)
                      and value.shape == state_dict[twin].shape and torch.equal(value, state_dict[twin])):
                problems.append(f'{key} differs from {twin} (the official model ties them; refusing to drop it)')
            continue
        new_key = _join(module, rule.all_leaves[leaf])
        if new_key in converted:
            problems.append(f'{source[new_key]} and {key} both map to {new_key}')
            continue
        if not isinstance(value, torch.Tensor):
            problems.append(f'{key} is a {type(value).__name__}, not a tensor')
            continue
        converted[new_key], source[new_key] = value, key

    missing = []
    for rule in rules:
        instances = present[id(rule)]
        if not instances:
            if rule.required:
                missing.append(rule.describe() + ('.*' if rule.placeholders else
                                                  '.{' + ','.join(rule.leaves) + '}'))
            continue
        for inst, leaves in sorted(instances.items()):
            module = rule.official_module(dict(zip(rule.placeholders, inst)))
            missing += [_join(module, leaf) for leaf in rule.leaves if leaf not in leaves]
        missing += _index_gaps(rule, instances)
    missing += _group_gaps(present, rules)
    # one input projection per feature level: transformer.level_embed [num_levels, C] says how many
    level_embed = state_dict.get('transformer.level_embed')
    if isinstance(level_embed, torch.Tensor) and level_embed.dim() == 2:
        levels = {inst[0] for rule in rules if rule.official.startswith('input_proj.')
                  for inst in present[id(rule)]}
        missing += [f'input_proj.{i}.*' for i in range(level_embed.shape[0]) if i not in levels]
        problems += [f'input_proj.{i}.* (transformer.level_embed has {level_embed.shape[0]} levels)'
                     for i in sorted(levels) if i >= level_embed.shape[0]]

    if unknown or ambiguous or missing or problems:
        msg = [f'not a complete official {name} checkpoint of the expected layout:']
        other = detect_official_layout(state_dict)
        if other != layout:
            msg.append(f'it looks like an official {OFFICIAL_LAYOUTS[other][0]} checkpoint: convert it with a '
                       f'{OFFICIAL_LAYOUTS[other][2]} config')
        if unknown:
            msg.append(f'{len(unknown)} unknown key(s) (no rule of the {name} table in '
                       f'soc_mm.official.checkpoint and not a known extra): {_format_list(sorted(unknown))}')
        if missing:
            msg.append(f'{len(missing)} missing key(s): {_format_list(missing)}')
        if ambiguous:
            msg.append(f'{len(ambiguous)} key(s) claimed by several rules: {_format_list(ambiguous)}')
        if problems:
            msg.append(f'{len(problems)} inconsistent key(s): {_format_list(problems)}')
        raise OfficialCheckpointError('\n  '.join(msg))
    return OrderedDict(sorted(converted.items()))


# ---------------------------------------------------------------------------- files
def extract_official_state_dict(checkpoint, filename: str = '<checkpoint>') -> Dict[str, torch.Tensor]:
    """The model state dict of a loaded official checkpoint.

    Accepts the official trainer's checkpoint (``{'model_state_dict': ..., 'optimizer_state_dict':
    ...}``), a dict with ``model`` / ``state_dict``, or a bare state dict (str -> tensor).

    Raises:
        OfficialCheckpointError: naming ``filename`` and what was found instead.
    """
    if not isinstance(checkpoint, dict):
        raise OfficialCheckpointError(f'{filename}: expected a dict (an official SOC checkpoint), got a '
                                      f'{type(checkpoint).__name__}')
    for entry in STATE_DICT_ENTRIES:
        if entry in checkpoint:
            state_dict = checkpoint[entry]
            if not isinstance(state_dict, dict):
                raise OfficialCheckpointError(f'{filename}: "{entry}" is a {type(state_dict).__name__}, '
                                              'expected the model state dict (a dict of tensors)')
            break
    else:
        if checkpoint and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in checkpoint.items()):
            state_dict = checkpoint  # a bare state dict
        else:
            top = sorted(str(k) for k in checkpoint)
            raise OfficialCheckpointError(
                f'{filename}: no model state dict: expected a "model_state_dict" entry (official '
                f'trainer checkpoint), "model"/"state_dict", or a bare dict of tensors; top-level keys: '
                f'{_format_list(top, 20) or "(empty dict)"}')
    if not state_dict:
        raise OfficialCheckpointError(f'{filename}: the model state dict is empty')
    not_tensors = sorted(str(k) for k, v in state_dict.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise OfficialCheckpointError(f'{filename}: state dict entries that are not tensors: '
                                      f'{_format_list(not_tensors, 20)}')
    return state_dict


def load_official_checkpoint(filename: str) -> Dict[str, torch.Tensor]:
    """Read an official checkpoint file and return its model state dict.

    Loaded with :func:`soc_mm.utils.checkpoint.safe_load_local`: nothing in the file can run code.

    Raises:
        OfficialCheckpointError: missing, empty, not a torch checkpoint (text, truncated),
            referencing objects outside the allow-list (named), or without the model state
            dict; the message names the file.
    """
    filename = os.fspath(filename)
    try:
        checkpoint = safe_load_local(filename, map_location='cpu')
    except (FileNotFoundError, CheckpointFormatError, UnsafeCheckpointError) as err:
        raise OfficialCheckpointError(str(err)) from None
    return extract_official_state_dict(checkpoint, filename)


def check_state_dict_against_model(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> List[str]:
    """Every disagreement between a converted state dict and a model, as messages.

    Checks that every key exists in ``model.state_dict()`` with the same shape and dtype, and
    that every key of the model is in ``state_dict``. Returns [] when they agree.
    """
    ours = model.state_dict()
    problems = []
    for key, value in state_dict.items():
        if key not in ours:
            problems.append(f'{key}: not in the model')
        elif tuple(value.shape) != tuple(ours[key].shape):
            problems.append(f'{key}: shape {list(value.shape)} in the checkpoint, '
                            f'{list(ours[key].shape)} in the model')
        elif value.dtype != ours[key].dtype:
            problems.append(f'{key}: dtype {value.dtype} in the checkpoint, {ours[key].dtype} in the model')
    problems += [f'{key}: in the model, not produced by the conversion' for key in ours if key not in state_dict]
    return problems
