"""MeanPoolRoBERTaTextEncoder: RoBERTaTextEncoder whose sentence feature is the mean of the word features."""
from torch import Tensor

from soc_mm.registry import MODELS
from .roberta_text_encoder import RoBERTaTextEncoder


@MODELS.register_module()
class MeanPoolRoBERTaTextEncoder(RoBERTaTextEncoder):
    """RoBERTa + projection with the mean of the word features (``last_hidden_state`` over the tokens,
    ``<s>``/``</s>`` included, padding excluded) as the sentence feature instead of ``pooler_output``.

    For a RoBERTa trained from random weights (the tiny CPU demos) the ``<s>`` output hardly depends on
    the other tokens (cosine 1.000 between any two expressions' pooler outputs at init, still 0.999 after
    the MeViS demo's 4000 iterations), so VOC, which starts from the sentence feature, would get no text.
    The unused pooler is kept (same state dict as ``RoBERTaTextEncoder``: checkpoints load either way) and
    takes no gradient when RoBERTa is trained. Arguments: as ``RoBERTaTextEncoder``.
    """

    uses_pooler = False

    def sentence_feature(self, outputs, attention_mask: Tensor) -> Tensor:
        """Mean of ``outputs.last_hidden_state`` [B, S, H] over the tokens of attention_mask [B, S] -> [B, H]."""
        mask = attention_mask[..., None].to(outputs.last_hidden_state.dtype)
        return (outputs.last_hidden_state * mask).sum(1) / mask.sum(1)
