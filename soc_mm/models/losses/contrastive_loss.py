"""SOC's query <-> sentence contrastive loss (``loss_con``)."""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from soc_mm.registry import MODELS


@MODELS.register_module()
class QuerySentenceContrastiveLoss(nn.Module):
    """Cross-entropy of the referred query among the video queries of each video.

    Similarity = ``(query_embeds / temperature) @ sentence_feat``; the loss is the negative
    log-softmax (over queries) at the query matched to the referred object, averaged over the batch.
    (The official ``eos_coef`` multiplies only terms whose target is 0, so it has no effect.)

    Args:
        loss_weight (float): multiplier.
        temperature (float, optional): divisor of the dot products. None (SOC): the embedding
            size C, which keeps the logits of layer-normed embeddings within about +-1 at the start
            (the loss then sits at ln(nq) until the queries separate); e.g. sqrt(C) gives larger logits.
    """

    def __init__(self, loss_weight: float = 1.0, temperature: Optional[float] = None):
        super().__init__()
        if temperature is not None and not temperature > 0:
            raise ValueError(f'QuerySentenceContrastiveLoss: temperature must be > 0, got {temperature}')
        self.loss_weight = loss_weight
        self.temperature = temperature

    def similarity(self, query_embeds: Tensor, sentence_feat: Tensor) -> Tensor:
        """query_embeds [B, nq, C], sentence_feat [B, C] -> [B, nq] scaled dot products."""
        temperature = query_embeds.shape[-1] if self.temperature is None else self.temperature
        return ((query_embeds / temperature) @ sentence_feat.unsqueeze(-1)).squeeze(-1)

    def forward(self, query_embeds: Tensor, sentence_feat: Tensor, target_query: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            query_embeds (Tensor): [B, nq, C] video-query embeddings.
            sentence_feat (Tensor): [B, C] sentence feature.
            target_query (Tensor): long [B], index of the referred query per video
                (-1: no referred query; the video contributes 0 but still counts in the mean).
        """
        if query_embeds.dim() != 3 or sentence_feat.shape != (query_embeds.shape[0], query_embeds.shape[2]):
            raise ValueError(f'QuerySentenceContrastiveLoss: expects query_embeds [B, nq, C] and '
                             f'sentence_feat [B, C], got {tuple(query_embeds.shape)} and '
                             f'{tuple(sentence_feat.shape)}')
        log_prob = F.log_softmax(self.similarity(query_embeds, sentence_feat), dim=-1)
        valid = target_query >= 0
        picked = log_prob.gather(1, target_query.clamp(min=0)[:, None]).squeeze(1)
        loss = -(picked * valid.to(picked)).sum() / max(query_embeds.shape[0], 1)
        return self.loss_weight * loss
