"""A tiny, randomly initialised RoBERTa text encoder with a byte-level BPE tokenizer trained on referring
expressions, saved as a local Hugging Face folder (``RoBERTaTextEncoder``'s ``model_path``): the text
encoder of the CPU demos and of tests (``tools/misc/make_tiny_text_encoder.py`` is its command line).
Nothing is downloaded: the tokenizer is trained with ``tokenizers`` and the model weights are random.
"""
import glob
import json
import os
import os.path as osp
from typing import Iterable, List

SPECIAL_TOKENS = ['<s>', '<pad>', '</s>', '<unk>', '<mask>']  # RoBERTa's ids 0..4


def read_expressions(sources: Iterable[str]) -> List[str]:
    """Expressions (lower-cased, whitespace collapsed, as the datasets clean them) from the sources."""
    texts = []
    for src in sources:
        if osp.isdir(src):
            files = sorted(glob.glob(osp.join(src, 'meta_expressions', '*', 'meta_expressions.json')))
            if not files:
                raise FileNotFoundError(f'{src}: no meta_expressions/<split>/meta_expressions.json inside')
            texts += read_expressions(files)
        elif not osp.isfile(src):
            raise FileNotFoundError(f'expression source not found: {src}')
        elif src.endswith('.json'):
            with open(src) as f:
                data = json.load(f)
            if 'videos' not in data:
                raise ValueError(f'{src}: expected a meta_expressions.json with a top-level "videos" key')
            for video in data['videos'].values():
                texts += [e['exp'] for e in video.get('expressions', {}).values()]
        else:
            with open(src) as f:
                texts += [line for line in f if line.strip()]
    return [' '.join(t.lower().split()) for t in texts]


def make_tiny_text_encoder(texts: List[str], out_dir: str, vocab_size: int = 400, hidden_size: int = 32,
                           num_layers: int = 2, num_heads: int = 2, intermediate_size: int = 64,
                           max_length: int = 62, dropout: float = 0.0, seed: int = 0) -> str:
    """Train the tokenizer on ``texts`` and save tokenizer + random RoBERTa to ``out_dir``.

    Returns ``out_dir``. ``max_length`` bounds the tokenised length (RoBERTa's position ids start at
    pad_id + 1, so ``max_position_embeddings = max_length + 2``).
    """
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    if not texts:
        raise ValueError('make_tiny_text_encoder: no expressions to train the tokenizer on')
    os.makedirs(out_dir, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=1, special_tokens=SPECIAL_TOKENS,
                            show_progress=False)
    bpe.save_model(out_dir)  # vocab.json + merges.txt
    # loading from the folder reads vocab.json + merges.txt (same call in transformers 4 and 5)
    tokenizer = RobertaTokenizerFast.from_pretrained(out_dir, model_max_length=max_length)
    tokenizer.save_pretrained(out_dir)
    longest = max(len(tokenizer(t)['input_ids']) for t in texts)
    if longest > max_length:
        raise ValueError(f'an expression has {longest} tokens, more than max_length={max_length}')

    torch.manual_seed(seed)
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, intermediate_size=intermediate_size,
        max_position_embeddings=max_length + 2, type_vocab_size=1, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    model = RobertaModel(config, add_pooling_layer=True)
    model.save_pretrained(out_dir)
    return out_dir
