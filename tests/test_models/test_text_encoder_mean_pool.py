"""MeanPoolRoBERTaTextEncoder (soc_mm/models/text_encoders/mean_pool_roberta_text_encoder.py): the mean of
the word features as the sentence feature; RoBERTaTextEncoder (SOC) keeps the pooler output."""
import inspect

import pytest
import torch

from conftest import TEXT_ENCODER_DIR as TEXT_ENCODER
import soc_mm  # noqa: F401  (registries)
from soc_mm.models.text_encoders import MeanPoolRoBERTaTextEncoder, RoBERTaTextEncoder
from soc_mm.registry import MODELS


@pytest.fixture(scope='module')
def encoders():
    """(SOC's encoder, the mean-pool one with the same weights), eval mode, no dropout."""
    torch.manual_seed(0)
    pooler = RoBERTaTextEncoder(TEXT_ENCODER, embed_dims=16, freeze=True, proj_dropout=0.0).eval()
    mean = MODELS.build(dict(type='MeanPoolRoBERTaTextEncoder', model_path=TEXT_ENCODER, embed_dims=16,
                             freeze=True, proj_dropout=0.0)).eval()
    mean.load_state_dict(pooler.state_dict(), strict=True)  # no weights of its own
    return pooler, mean


def test_sentence_feature_is_the_mean_of_the_tokens(encoders):
    """SOC projects RoBERTa's pooler_output; the variant projects the mean of the expression's own token
    features (padding excluded: the same value alone and in a padded batch); the word features are the same."""
    encoder, mean = encoders
    assert type(mean) is MeanPoolRoBERTaTextEncoder
    texts = ['the red circle on the left', 'a dog']
    with torch.no_grad():
        words, padding, pooled = encoder(texts)
        m_words, m_padding, m_sentence = mean(texts)
        hidden, pooler, attention = encoder.encode(texts)
        alone = mean(texts[1:])[2]
    torch.testing.assert_close(pooled, encoder.proj(pooler))
    torch.testing.assert_close(m_words, words)
    assert torch.equal(m_padding, padding)
    assert padding[1].any() and not padding[0].any()
    expected = torch.stack([hidden[i][attention[i].bool()].mean(0) for i in range(2)])
    torch.testing.assert_close(m_sentence, encoder.proj(expected))
    torch.testing.assert_close(alone[0], m_sentence[1], rtol=1e-5, atol=1e-6)
    assert (m_sentence - pooled).abs().max() > 1e-3


def test_trained_mean_pool_encoder_leaves_the_pooler_untrained(encoders):
    """Trained with the mean: the unused pooler gets no gradient (data-parallel training needs one for
    every trained parameter), the rest trains; the state dict is SOC's encoder's."""
    encoder, _ = encoders
    trained = MeanPoolRoBERTaTextEncoder(TEXT_ENCODER, embed_dims=16, freeze=False)
    assert not any(p.requires_grad for p in trained.model.pooler.parameters())
    assert trained.model.embeddings.word_embeddings.weight.requires_grad
    assert trained.state_dict().keys() == encoder.state_dict().keys()
    sum(t.sum() for t in trained(['the red circle on the left', 'a dog'])[::2]).backward()
    assert trained.model.embeddings.word_embeddings.weight.grad is not None
    assert all(p.grad is None for p in trained.model.pooler.parameters())
    # SOC's encoder trains its pooler
    soc = RoBERTaTextEncoder(TEXT_ENCODER, embed_dims=16, freeze=False)
    assert all(p.requires_grad for p in soc.model.pooler.parameters())


def test_paper_encoder_has_no_sentence_feature_option():
    """The option is the variant class now: SOC's encoder refuses the old keyword argument."""
    with pytest.raises(TypeError, match='sentence_feature'):
        RoBERTaTextEncoder(TEXT_ENCODER, embed_dims=16, sentence_feature='mean')
    assert "'mean'" not in inspect.getsource(RoBERTaTextEncoder)
