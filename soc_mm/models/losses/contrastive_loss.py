"""SOC's query <-> sentence contrastive loss (``loss_con``), generalised to several or no referred
objects per expression (multi-positive InfoNCE)."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from soc_mm.registry import MODELS


@MODELS.register_module()
class QuerySentenceContrastiveLoss(nn.Module):
    """Cross-entropy of the referred queries among the video queries of each video.

    Similarity ``s_q = (query_embeds_q / temperature) . sentence_feat``; with ``p_q = softmax_q(s)``
    over the nq video queries of a video and ``P`` its positive queries (the queries matched to the
    objects the sentence refers to), the video's loss is

        ``-log(sum_{q in P} p_q)``                       (multi-positive InfoNCE),

    averaged over the batch (every video counts in the mean).

    * One positive (SOC, Ref-YouTube-VOS / A2D): ``-log p_q``, SOC's loss, computed to the same
      floating-point value (a log-sum-exp over one finite term is that term).
    * Several positives (MeViS): the positives together take the softmax mass, the split between
      them is free (the class loss separates the objects); averaging ``-log p_q`` over the positives
      instead would also push the positives against each other (its minimum is ``log |P|``, not 0).
    * No positive (an expression that refers to nothing, MeViS v2): the video contributes 0 (no
      query is pulled towards a sentence that describes nothing; the class loss pushes every query
      to "no object") but still counts in the mean, as SOC counts a video whose referred object
      was not matched.

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

    @staticmethod
    def positive_mask(target_query: Tensor, num_queries: int) -> Tensor:
        """``target_query`` as bool [B, nq]: a long [B] index (-1: none) or already a bool mask."""
        if target_query.dtype == torch.bool:
            if target_query.dim() != 2 or target_query.shape[1] != num_queries:
                raise ValueError(f'QuerySentenceContrastiveLoss: a bool target_query must be [B, {num_queries}], '
                                 f'got {tuple(target_query.shape)}')
            return target_query
        if target_query.dim() != 1:
            raise ValueError(f'QuerySentenceContrastiveLoss: an index target_query must be long [B], got '
                             f'{tuple(target_query.shape)}')
        if ((target_query < -1) | (target_query >= num_queries)).any():
            raise ValueError(f'QuerySentenceContrastiveLoss: target_query must lie in [-1, {num_queries}), got '
                             f'{target_query.tolist()}')
        mask = torch.zeros(len(target_query), num_queries + 1, dtype=torch.bool, device=target_query.device)
        mask[torch.arange(len(target_query), device=target_query.device), target_query] = True  # -1 -> last
        return mask[:, :num_queries]

    def forward(self, query_embeds: Tensor, sentence_feat: Tensor, target_query: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            query_embeds (Tensor): [B, nq, C] video-query embeddings.
            sentence_feat (Tensor): [B, C] sentence feature.
            target_query (Tensor): the positive queries of each video: bool [B, nq] (any number per
                video, none included), or long [B], one query index per video (-1: none).

        Returns:
            Tensor: scalar, ``loss_weight`` x the mean over the B videos.
        """
        if query_embeds.dim() != 3 or sentence_feat.shape != (query_embeds.shape[0], query_embeds.shape[2]):
            raise ValueError(f'QuerySentenceContrastiveLoss: expects query_embeds [B, nq, C] and '
                             f'sentence_feat [B, C], got {tuple(query_embeds.shape)} and '
                             f'{tuple(sentence_feat.shape)}')
        positives = self.positive_mask(target_query, query_embeds.shape[1])
        if positives.shape[0] != query_embeds.shape[0]:
            raise ValueError(f'QuerySentenceContrastiveLoss: target_query has {positives.shape[0]} videos, '
                             f'query_embeds {query_embeds.shape[0]}')
        log_prob = F.log_softmax(self.similarity(query_embeds, sentence_feat), dim=-1)
        has_positive = positives.any(-1)
        # a video without positives sums over all its queries (a finite value, so no NaN gradient)
        # and is then multiplied by 0
        summed = positives | ~has_positive[:, None]
        picked = torch.logsumexp(log_prob.masked_fill(~summed, float('-inf')), dim=-1)
        loss = torch.where(has_positive, -picked, torch.zeros_like(picked)).sum() / max(query_embeds.shape[0], 1)
        return self.loss_weight * loss
