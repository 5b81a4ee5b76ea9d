"""BatchRegroupSOC / BatchRegroupSOCPlusPlus: SOC and SOC++ with the official VOC's batch regrouping, for the
golden-tensor comparison only."""
from torch import Tensor

from soc_mm.models.detectors import SOC, SOCPlusPlus
from soc_mm.registry import MODELS


class OfficialBatchRegroupMixin:
    """Hands the cluster decoder the frame sequences as the official codes (SOC and SOC++) do: their frame
    queries ``[L, T, B, ...]`` are reshaped, not transposed, into ``[L, B, T, ...]`` (and so are the boxes),
    which mixes the frames of different videos when B > 1 and T > 1."""

    def group_frames_by_video(self, frames: Tensor) -> Tensor:
        """frames [L, B, T, nq, n] -> the official regrouping [L, B, T, nq, n] (``[L, T, B]`` reshaped)."""
        return frames.transpose(1, 2).reshape(frames.shape)


@MODELS.register_module()
class BatchRegroupSOC(OfficialBatchRegroupMixin, SOC):
    """``SOC`` with the official batch regrouping (:class:`OfficialBatchRegroupMixin`). Registered when
    ``soc_mm.official`` is imported; built by :func:`soc_mm.official.reference.build_reference_model` to
    compare with the official golden tensors. Arguments: as ``SOC``."""


@MODELS.register_module()
class BatchRegroupSOCPlusPlus(OfficialBatchRegroupMixin, SOCPlusPlus):
    """``SOCPlusPlus`` with the official batch regrouping (SOC++'s cluster decoder reshapes as SOC's VOC;
    its random walk and query fusion group the frames correctly). Arguments: as ``SOCPlusPlus``."""
