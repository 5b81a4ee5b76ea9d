"""RoBERTaTextEncoder (soc_mm/models/text_encoders/roberta_text_encoder.py): the official fixtures' text
features, freezing, bad inputs; expressions longer than the encoder's positions are truncated, with one
warning (the mean-pooled sentence feature: test_text_encoder_mean_pool.py)."""
import logging
import os.path as osp
from contextlib import contextmanager

import pytest
import torch
from mmengine.logging import MMLogger

from conftest import FIXTURE_ROOT, REPO_ROOT
from soc_reference_helpers import sub_state_dict
import soc_mm  # noqa: F401  (shims + registries)
from soc_mm.models.text_encoders import RoBERTaTextEncoder

TEXT_ENCODER = osp.join(FIXTURE_ROOT, 'common', 'text_encoder')  # max_position_embeddings 64, pad id 1
MAIN = osp.join(FIXTURE_ROOT, 'ytvos_b2_t3_nc1_w0')


@contextmanager
def logged_warnings():
    """Messages (str) of the WARNING records the current MMLogger receives inside the block."""
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = lambda record: records.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


# ---------------------------------------------------------------- official weights
@pytest.fixture(scope='module')
def text_encoder(front_sd):
    encoder = RoBERTaTextEncoder(TEXT_ENCODER, embed_dims=128, freeze=True)
    encoder.load_state_dict(sub_state_dict(front_sd, 'text_encoder.'), strict=True)
    return encoder.eval()


def test_text_encoder_matches_official(text_encoder):
    inputs = torch.load(osp.join(MAIN, 'inputs.pt'))
    ref = torch.load(osp.join(MAIN, 'intermediates_eval.pt'))
    texts = inputs['text_queries']
    tokens = text_encoder.tokenize(texts)
    assert torch.equal(tokens['input_ids'], inputs['tokenized']['input_ids'])
    assert torch.equal(tokens['attention_mask'], inputs['tokenized']['attention_mask'])
    with torch.no_grad():
        hidden, pooled, _ = text_encoder.encode(texts)
        words, word_mask, sentence = text_encoder(texts)
    torch.testing.assert_close(hidden, ref['text_encoder']['last_hidden_state'], rtol=0, atol=1e-5)
    torch.testing.assert_close(pooled, ref['text_encoder']['pooler_output'], rtol=0, atol=1e-5)
    torch.testing.assert_close(words, ref['txt_proj_calls'][0].transpose(0, 1), rtol=0, atol=1e-5)
    torch.testing.assert_close(sentence, ref['txt_proj_calls'][1], rtol=0, atol=1e-5)
    assert torch.equal(word_mask, inputs['tokenized']['attention_mask'] == 0)
    assert word_mask.any()  # the two expressions have different lengths


def test_text_encoder_freezing(text_encoder):
    text_encoder.train()
    try:
        words, _, sentence = text_encoder(['a man riding a horse', 'the dog'])
        (words.sum() + sentence.sum()).backward()
    finally:
        text_encoder.eval()
    assert all(p.grad is None and not p.requires_grad for p in text_encoder.model.parameters())
    assert all(p.grad is not None for p in text_encoder.proj.parameters())
    text_encoder.zero_grad(set_to_none=True)

    trainable = RoBERTaTextEncoder(TEXT_ENCODER, embed_dims=128, freeze=False)
    trainable(['a dog'])[2].sum().backward()
    assert trainable.model.embeddings.word_embeddings.weight.grad is not None


def test_text_encoder_bad_inputs(tmp_path, text_encoder):
    with pytest.raises(FileNotFoundError, match='is not a directory'):
        RoBERTaTextEncoder(str(tmp_path / 'missing'), embed_dims=128)
    no_tokenizer = tmp_path / 'no_tokenizer'
    no_tokenizer.mkdir()
    (no_tokenizer / 'config.json').write_text(open(osp.join(TEXT_ENCODER, 'config.json')).read())
    with pytest.raises(FileNotFoundError, match='no tokenizer files'):
        RoBERTaTextEncoder(str(no_tokenizer), embed_dims=128)
    with pytest.raises(ValueError, match='non-empty referring expression'):
        text_encoder(['a dog', '  '])
    with pytest.raises(ValueError, match='non-empty list of str'):
        text_encoder([])
    with pytest.raises(ValueError, match='non-empty list of str'):
        text_encoder('a dog')


# ---------------------------------------------------------------- long expressions
@pytest.fixture(scope='module')
def encoder():
    torch.manual_seed(0)
    return RoBERTaTextEncoder(TEXT_ENCODER, embed_dims=16, freeze=True, proj_dropout=0.0).eval()


def long_expression(encoder, factor=3):
    """An expression of more than ``factor`` times ``max_tokens`` tokens, and its explicitly truncated text
    (the words of its first ``max_tokens - 2`` tokens, which tokenise to exactly those tokens)."""
    tok = encoder.tokenizer
    text = 'the red circle on the left'
    while len(tok(text, verbose=False)['input_ids']) <= factor * encoder.max_tokens:
        text = f'{text} and the red circle on the left'
    ids = tok(text, verbose=False)['input_ids']
    truncated = tok.decode(ids[1:encoder.max_tokens - 1])
    assert tok(truncated)['input_ids'] == ids[:encoder.max_tokens - 1] + [tok.eos_token_id]
    return text, truncated


def test_max_tokens_is_what_roberta_accepts(encoder):
    """The limit is exactly the longest sequence transformers' RobertaModel embeds (one more fails)."""
    config = encoder.model.config
    assert (config.max_position_embeddings, config.pad_token_id) == (64, 1)
    assert encoder.max_tokens == 64 - 1 - 1
    ids = torch.full((1, encoder.max_tokens), 5, dtype=torch.long)
    with torch.no_grad():
        out = encoder.model(input_ids=ids, attention_mask=torch.ones_like(ids))
        assert out.last_hidden_state.shape == (1, encoder.max_tokens, config.hidden_size)
        longer = torch.full((1, encoder.max_tokens + 1), 5, dtype=torch.long)
        with pytest.raises((IndexError, RuntimeError)):
            encoder.model(input_ids=longer, attention_mask=torch.ones_like(longer))


def test_long_expression_is_truncated_with_one_warning(encoder):
    text, truncated = long_expression(encoder)
    short = 'a blue square'
    with logged_warnings() as warnings:
        tokens = encoder.tokenize([short, text])
        with torch.no_grad():
            words, pad_mask, sentence = encoder([text, short])
            words_again, _, sentence_again = encoder([text])
            ref_words, ref_pad_mask, ref_sentence = encoder([truncated, short])
    assert tokens['input_ids'].shape == (2, encoder.max_tokens)
    assert tokens['input_ids'][1, -1].item() == encoder.tokenizer.eos_token_id
    # one warning for the text (three calls), naming it, its length and the limit
    assert len(warnings) == 1, warnings
    num_tokens = len(encoder.tokenizer(text, verbose=False)['input_ids'])
    assert num_tokens > 3 * encoder.max_tokens
    assert len(text) > 200  # named by its first 200 characters and its length (a server log stays bounded)
    shown = text[:200] + f'... ({len(text)} characters)'
    assert warnings[0] == (
        f'RoBERTaTextEncoder: the expression {shown!r} has {num_tokens} tokens, more than the 62 the text '
        'encoder accepts (<s> and </s> included): it is truncated to <s>, its first 60 tokens, </s>')
    # the encoding equals that of the explicitly truncated text (and the short expression is untouched)
    assert words.shape == (2, encoder.max_tokens, 16)
    assert torch.equal(pad_mask, ref_pad_mask)
    assert torch.allclose(words, ref_words, atol=1e-6) and torch.allclose(sentence, ref_sentence, atol=1e-6)
    assert torch.allclose(words_again[0], ref_words[0], atol=1e-6)
    assert torch.allclose(sentence_again[0], ref_sentence[0], atol=1e-6)
    # another long text warns once more
    with logged_warnings() as warnings:
        encoder([text + ' again', text])
    again = text + ' again'
    assert len(warnings) == 1 and repr(again[:200] + f'... ({len(again)} characters)') in warnings[0]


def test_expression_at_the_limit_is_not_truncated(encoder):
    tok = encoder.tokenizer
    text = 'the red circle'
    while len(tok(text + ' red')['input_ids']) <= encoder.max_tokens:
        text += ' red'
    ids = tok(text)['input_ids']
    assert len(ids) in (encoder.max_tokens - 1, encoder.max_tokens)
    with logged_warnings() as warnings:
        tokens = encoder.tokenize([text])
    assert warnings == [] and tokens['input_ids'][0].tolist() == ids


def test_long_expression_through_the_tiny_model(encoder, tmp_path):
    """The whole tiny SOC predicts for an expression of 3x the limit, as for its truncated text."""
    from soc_mm.apis import inference_rvos, init_model
    config = tmp_path / 'tiny_soc.py'
    base = osp.join(REPO_ROOT, 'configs', 'soc', 'soc_tiny_synthetic.py')
    config.write_text(f"_base_ = [{base!r}]\nmodel = dict(text_encoder=dict(model_path={TEXT_ENCODER!r}))\n")
    torch.manual_seed(0)
    model = init_model(str(config), device='cpu')
    text, truncated = long_expression(encoder)
    video = torch.arange(3 * 32 * 40 * 3, dtype=torch.int64).reshape(3, 32, 40, 3).remainder(251).to(torch.uint8)
    with logged_warnings() as warnings:
        results = inference_rvos(model, video.numpy(), [text, truncated])
    assert len(warnings) == 1 and repr(text[:200] + f'... ({len(text)} characters)') in warnings[0]
    long_result, truncated_result = results
    assert long_result.pred_masks.shape == (3, 32, 40)
    assert torch.equal(long_result.pred_masks, truncated_result.pred_masks)
    assert torch.allclose(long_result.pred_scores, truncated_result.pred_scores, atol=1e-6)
