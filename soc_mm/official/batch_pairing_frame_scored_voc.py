"""BatchPairingFrameScoredVOC: SOC++'s cluster decoder with the official batch-wide text-match pairing
(golden comparison only)."""
import torch
from torch import Tensor

from soc_mm.models.layers import FrameScoredVOC
from soc_mm.registry import MODELS


@MODELS.register_module()
class BatchPairingFrameScoredVOC(FrameScoredVOC):
    """``FrameScoredVOC`` whose text-match score pairs frames and sentences across the whole batch, as the
    official code: the frame queries flattened ``(t, l, b)``, the sentences ``(b, l, t)``, paired row by
    row, so the score at (layer l, video b, frame t) is the cosine of frame ``(t', n')`` =
    ``divmod(b*L*T + l*T + t, L*B)`` with sentence b (with B > 1 a video reads other videos' frames;
    with B = 1 it equals ``FrameScoredVOC``). Built by the official-configuration translation for the
    golden comparison of batches of several videos. Arguments: as ``FrameScoredVOC``."""

    def text_match_score(self, frame_queries: Tensor, sentence_feat: Tensor, num_layers: int) -> Tensor:
        N, T = frame_queries.shape[:2]
        B = N // num_layers
        device = frame_queries.device
        layer = torch.arange(num_layers, device=device).view(-1, 1, 1)
        video = torch.arange(B, device=device).view(1, -1, 1)
        time = torch.arange(T, device=device).view(1, 1, -1)
        row = (video * num_layers * T + layer * T + time).reshape(N, T)  # the official flat row of each slot
        return self.cosine_score(frame_queries[row % N, row // N], sentence_feat)
