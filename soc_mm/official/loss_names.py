"""Loss names: ``SOCHead``'s loss keys <-> the official ``SetCriterion`` keys.

Our head returns ``loss_cls, loss_bbox, loss_iou, loss_mask, loss_dice, loss_con`` for the last
decoder level and ``d{l}.<name>`` for earlier levels; the official criterion returns
``loss_cls, loss_bbox, loss_giou, loss_sigmoid_focal, loss_dice, loss_con`` and ``<name>_{l}``.
The official loss coefficient of each loss (configuration key) is in
:data:`OFFICIAL_LOSS_COEFS`.
"""
import re
from typing import Dict

__all__ = ['OFFICIAL_LOSS_NAMES', 'OFFICIAL_LOSS_COEFS', 'to_official_loss_name']

#: our loss key -> official loss key (aux level ``d{i}.x`` <-> official ``x_{i}``)
OFFICIAL_LOSS_NAMES: Dict[str, str] = {
    'loss_cls': 'loss_cls', 'loss_bbox': 'loss_bbox', 'loss_iou': 'loss_giou',
    'loss_mask': 'loss_sigmoid_focal', 'loss_dice': 'loss_dice', 'loss_con': 'loss_con',
}

#: our loss key -> the official configuration key of its coefficient (``loss_weight`` here)
OFFICIAL_LOSS_COEFS: Dict[str, str] = {
    'loss_cls': 'class_loss_coef', 'loss_bbox': 'box_loss_coef', 'loss_iou': 'giou_coef',
    'loss_mask': 'sigmoid_focal_loss_coef', 'loss_dice': 'dice_loss_coef', 'loss_con': 'con_loss_coef',
}


def to_official_loss_name(name: str) -> str:
    """Our loss key (``loss_iou``, ``d0.loss_mask``) -> official (``loss_giou``, ``loss_sigmoid_focal_0``).

    Raises:
        KeyError: not one of our loss keys.
    """
    m = re.fullmatch(r'(?:d(\d+)\.)?(\w+)', name)
    if m is None or m[2] not in OFFICIAL_LOSS_NAMES:
        raise KeyError(f'unknown SOC loss name {name!r} (expected [d<level>.]one of '
                       f'{sorted(OFFICIAL_LOSS_NAMES)})')
    base = OFFICIAL_LOSS_NAMES[m[2]]
    return base if m[1] is None else f'{base}_{m[1]}'
