"""RoBERTa text encoder with SOC's projection to the model width."""
import logging
import os.path as osp
from typing import List, Optional, Sequence, Set, Tuple

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor, nn

from soc_mm.registry import MODELS

_TOKENIZER_FILE_SETS = (('tokenizer.json', ), ('vocab.json', 'merges.txt'))


class TextProjection(nn.Module):
    """Linear -> LayerNorm(eps 1e-12) -> Dropout (SOC's ``FeatureResizer``)."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, out_channels)
        self.norm = nn.LayerNorm(out_channels, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.norm(self.fc(x)))


@MODELS.register_module()
class RoBERTaTextEncoder(BaseModule):
    """HF ``RobertaModel`` + tokenizer loaded from a local folder, projected to C.

    The same projection is applied to the word features
    (``last_hidden_state``) and to the sentence feature (``pooler_output``).

    Args:
        model_path (str): local folder with the HF model (``config.json`` and
            weights) and its tokenizer files (``tokenizer.json`` or
            ``vocab.json`` + ``merges.txt``), e.g. ``roberta-base``.
        embed_dims (int): output channels C (the detector's d_model).
        freeze (bool): no gradients for the RoBERTa weights (SOC: True). Like
            SOC, the frozen model keeps the train/eval mode of its parent.
        proj_dropout (float): dropout of the projection (SOC: 0.1).

    The sentence feature is RoBERTa's ``pooler_output`` (tanh dense layer on the ``<s>`` token);
    variants (``MeanPoolRoBERTaTextEncoder``) override :meth:`sentence_feature` and set
    :attr:`uses_pooler`.

    Expressions longer than the encoder accepts (``max_tokens`` tokens, ``<s>`` and ``</s>`` included) are
    truncated to their first ``max_tokens`` tokens, with a warning logged once per expression text.
    """

    #: whether :meth:`sentence_feature` reads RoBERTa's pooler (the model must then have one)
    uses_pooler = True

    def __init__(self,
                 model_path: str,
                 embed_dims: int = 256,
                 freeze: bool = True,
                 proj_dropout: float = 0.1,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        from transformers import RobertaModel, RobertaTokenizerFast
        if not isinstance(model_path, str) or not osp.isdir(model_path):
            raise FileNotFoundError(f'RoBERTaTextEncoder: model_path {model_path!r} is not a directory '
                                    '(expected a local HF folder such as roberta-base/)')
        if not osp.isfile(osp.join(model_path, 'config.json')):
            raise FileNotFoundError(f'RoBERTaTextEncoder: no config.json in {model_path!r}')
        if not any(all(osp.isfile(osp.join(model_path, f)) for f in files) for files in _TOKENIZER_FILE_SETS):
            raise FileNotFoundError(
                f'RoBERTaTextEncoder: no tokenizer files in {model_path!r}: expected tokenizer.json '
                'or vocab.json + merges.txt')
        self.model_path = model_path
        self.tokenizer = RobertaTokenizerFast.from_pretrained(model_path)
        self.model = RobertaModel.from_pretrained(model_path)
        if self.model.pooler is None and self.uses_pooler:
            raise ValueError(f'{type(self).__name__}: the model in {model_path!r} has no pooler '
                             '(SOC uses pooler_output as the sentence feature)')
        self.embed_dims = embed_dims
        self.freeze = freeze
        if freeze:
            self.model.requires_grad_(False)
        elif not self.uses_pooler and self.model.pooler is not None:
            # unused: no gradient (data-parallel training expects every trained parameter to get one);
            # kept, so that the state dict is the same as RoBERTaTextEncoder's
            self.model.pooler.requires_grad_(False)
        self.proj = TextProjection(self.model.config.hidden_size, embed_dims, proj_dropout)
        config = self.model.config
        # RobertaModel numbers the positions of tokens padding_idx + 1 .. padding_idx + S and looks them up
        # in max_position_embeddings rows: S <= max_position_embeddings - padding_idx - 1 (512 for roberta-base).
        self.max_tokens = config.max_position_embeddings - config.pad_token_id - 1
        if self.max_tokens < 3:
            raise ValueError(f'RoBERTaTextEncoder: the model in {model_path!r} accepts {self.max_tokens} tokens '
                             f'(max_position_embeddings {config.max_position_embeddings} - pad_token_id '
                             f'{config.pad_token_id} - 1); expected at least 3 (<s>, one token, </s>)')
        self._warned_truncated: Set[str] = set()

    def init_weights(self) -> None:
        """Keep the pretrained RoBERTa weights; the projection keeps torch's init."""
        self._is_init = True

    @staticmethod
    def _check_texts(texts: Sequence[str]) -> List[str]:
        if isinstance(texts, str) or not isinstance(texts, (list, tuple)) or len(texts) == 0:
            raise ValueError(f'texts must be a non-empty list of str, got {texts!r}')
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f'texts[{i}] must be a non-empty referring expression, got {text!r}')
        return list(texts)

    def truncated_expressions(self, texts: Sequence[str]) -> List[Tuple[int, int]]:
        """``(index, number of tokens)`` of each of ``texts`` longer than ``max_tokens`` tokens (``<s>`` and
        ``</s>`` included), which :meth:`tokenize` truncates; empty when none is."""
        texts = self._check_texts(texts)
        counts = [len(ids) for ids in self.tokenizer(texts, verbose=False)['input_ids']]
        return [(i, n) for i, n in enumerate(counts) if n > self.max_tokens]

    def tokenize(self, texts: Sequence[str]) -> dict:
        """Tokenise as a batch padded to the longest expression -> dict of [B, S] tensors
        (``input_ids``, ``attention_mask``), S <= ``max_tokens``.

        An expression longer than ``max_tokens`` tokens keeps its first ``max_tokens - 1`` tokens
        (``<s>`` included) and ends with ``</s>``; a warning naming it is logged the first time.
        """
        texts = self._check_texts(texts)
        tokens = self.tokenizer(texts, padding='longest', truncation=True, max_length=self.max_tokens,
                                return_tensors='pt')
        for text, encoding in zip(texts, tokens.encodings):
            if encoding.overflowing and text not in self._warned_truncated:
                if len(self._warned_truncated) >= 1000:  # a long-running server: the memory stays bounded
                    self._warned_truncated.clear()
                self._warned_truncated.add(text)
                num_tokens = len(self.tokenizer(text, verbose=False)['input_ids'])
                shown = text if len(text) <= 200 else text[:200] + f'... ({len(text)} characters)'
                print_log(f'RoBERTaTextEncoder: the expression {shown!r} has {num_tokens} tokens, more than the '
                          f'{self.max_tokens} the text encoder accepts (<s> and </s> included): it is truncated '
                          f'to <s>, its first {self.max_tokens - 2} tokens, </s>', logger='current',
                          level=logging.WARNING)
        device = self.proj.fc.weight.device
        return dict(input_ids=tokens['input_ids'].to(device),
                    attention_mask=tokens['attention_mask'].to(device))

    def encode(self, texts: Sequence[str]) -> Tuple[Tensor, Tensor, Tensor]:
        """RoBERTa outputs before projection.

        Returns: last_hidden_state [B, S, H], the sentence feature [B, H] (:meth:`sentence_feature`),
        attention_mask [B, S] (1 = token, 0 = pad).
        """
        tokens = self.tokenize(texts)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            out = self.model(**tokens)
        return out.last_hidden_state, self.sentence_feature(out, tokens['attention_mask']), tokens['attention_mask']

    def sentence_feature(self, outputs, attention_mask: Tensor) -> Tensor:
        """RoBERTa's outputs and attention_mask [B, S] -> sentence feature [B, H]; SOC: ``pooler_output``."""
        return outputs.pooler_output

    def forward(self, texts: Sequence[str]) -> Tuple[Tensor, Tensor, Tensor]:
        """texts (list[str], B) -> word features [B, S, C], word padding mask
        bool [B, S] (True = pad), sentence feature [B, C]."""
        words, pooled, attention_mask = self.encode(texts)
        return self.proj(words), attention_mask.ne(1), self.proj(pooled)
