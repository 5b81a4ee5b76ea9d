"""SOCPlusPlusOfficialHead: SOC's head with SOC++'s class targets when num_classes > 1 (golden comparison only)."""
from typing import Optional

from mmengine.structures import InstanceData

from soc_mm.models.dense_heads import SOCHead
from soc_mm.registry import MODELS


@MODELS.register_module()
class SOCPlusPlusOfficialHead(SOCHead):
    """``SOCHead`` whose class loss has no positives when ``num_classes > 1``, as SOC++'s criterion (its
    category-label assignment is commented out upstream, so every query is pushed to "no object"). Every
    SOC++ configuration uses ``num_classes == 1``, where this head equals ``SOCHead``; the translation of an
    official SOC++ configuration with ``num_classes > 1`` builds it so that the golden comparison holds.
    Arguments: as ``SOCHead``."""

    @staticmethod
    def class_target(target: InstanceData, ref: int, num_classes: int) -> Optional[int]:
        return 0 if num_classes == 1 else None
