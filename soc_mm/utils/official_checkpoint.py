"""Convert checkpoints of the official SOC code (RobertLuo1/NeurIPS2023_SOC) to ``soc_mm``.

The key tables live next to this file: ``official_keys_front`` (backbone, text encoder,
fusion, deformable transformer, neck, queries) and ``official_keys_back`` (VOC, spatial
decoder, heads). Every official key must be claimed by exactly one of them or be a known,
named extra; anything else is an error listing the keys.
"""
from collections import OrderedDict
from typing import Dict

import torch

from .official_keys_back import BACK_PREFIXES, convert_official_back_state_dict
from .official_keys_front import FRONT_PREFIXES, convert_front_state_dict

# Keys that released checkpoints carry but our model does not need, by exact name.
KNOWN_EXTRA_KEYS = {
    # persistent buffer in transformers 4.24 (the official checkpoints); non-persistent since.
    'text_encoder.embeddings.position_ids',
}

# Every official checkpoint has entries under each of these prefixes.
REQUIRED_PREFIXES = ('backbone.', 'transformer.level_embed', 'transformer.reference_points.',
                     'transformer.encoder.', 'transformer.decoder.layers.', 'input_proj.',
                     'query_embed.', 'text_encoder.', 'txt_proj.', 'vlf.', 'lvf.', 'voc.',
                     'spatial_decoder.', 'controller.', 'class_embed.', 'bbox_embed.')


class CheckpointLayoutError(ValueError):
    """The checkpoint is not an official SOC checkpoint of the expected layout."""


def extract_official_state_dict(checkpoint) -> Dict[str, torch.Tensor]:
    """Return the state dict of an official checkpoint (``model_state_dict`` or bare)."""
    if not isinstance(checkpoint, dict):
        raise CheckpointLayoutError(f'expected a dict checkpoint, got {type(checkpoint).__name__}')
    for key in ('model_state_dict', 'model', 'state_dict'):
        if key in checkpoint and isinstance(checkpoint[key], dict):
            return checkpoint[key]
    return checkpoint


def convert_official_state_dict(state_dict: Dict[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Official SOC state dict -> ``soc_mm`` ``SOC`` state dict.

    Raises:
        CheckpointLayoutError: unknown keys, or whole parts of the model missing.
    """
    state_dict = {k[len('module.'):] if k.startswith('module.') else k: v
                  for k, v in state_dict.items()}
    unknown = sorted(k for k in state_dict
                     if k not in KNOWN_EXTRA_KEYS and not k.startswith(FRONT_PREFIXES + BACK_PREFIXES))
    missing = [p for p in REQUIRED_PREFIXES if not any(k.startswith(p) for k in state_dict)]
    if unknown or missing:
        msg = ['not an official SOC checkpoint of the expected layout:']
        if unknown:
            msg.append(f'{len(unknown)} unknown key(s): {unknown[:20]}' + (' ...' if len(unknown) > 20 else ''))
        if missing:
            msg.append(f'no keys under: {missing}')
        raise CheckpointLayoutError(' '.join(msg))
    state_dict = {k: v for k, v in state_dict.items() if k not in KNOWN_EXTRA_KEYS}
    try:
        back = convert_official_back_state_dict(state_dict)
        front, _ = convert_front_state_dict(
            {k: v for k, v in state_dict.items() if not k.startswith(BACK_PREFIXES)})
    except (KeyError, ValueError) as err:
        raise CheckpointLayoutError(str(err)) from err
    clash = set(front) & set(back)
    if clash:
        raise CheckpointLayoutError(f'keys converted twice: {sorted(clash)}')
    return OrderedDict(sorted({**front, **back}.items()))
