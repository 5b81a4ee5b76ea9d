"""Create a tiny, randomly initialised RoBERTa text encoder with a byte-level BPE tokenizer trained on
a dataset's referring expressions, saved as a local Hugging Face folder (``RoBERTaTextEncoder``'s
``model_path``).

    python tools/misc/make_tiny_text_encoder.py data/synthetic_refytvos/meta_expressions/train/meta_expressions.json \
        --out work_dirs/demo/tiny_roberta --vocab-size 400 --hidden-size 32 --num-layers 2

Sources are ``meta_expressions.json`` files (Ref-YouTube-VOS format), dataset roots (their
``meta_expressions/*/meta_expressions.json`` are read) or plain text files (one expression a line).
Nothing is downloaded: the tokenizer is trained with ``tokenizers`` and the model weights are random.
"""
import argparse
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


def parse_args():
    parser = argparse.ArgumentParser(description='Tiny RoBERTa + byte-level BPE tokenizer from expressions')
    parser.add_argument('sources', nargs='+', help='meta_expressions.json files, dataset roots or text files')
    parser.add_argument('--out', required=True, help='output folder (HF format)')
    parser.add_argument('--vocab-size', type=int, default=400)
    parser.add_argument('--hidden-size', type=int, default=32)
    parser.add_argument('--num-layers', type=int, default=2)
    parser.add_argument('--num-heads', type=int, default=2)
    parser.add_argument('--intermediate-size', type=int, default=64)
    parser.add_argument('--max-length', type=int, default=62)
    parser.add_argument('--dropout', type=float, default=0.0)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def main():
    args = parse_args()
    texts = read_expressions(args.sources)
    out = make_tiny_text_encoder(texts, args.out, vocab_size=args.vocab_size, hidden_size=args.hidden_size,
                                 num_layers=args.num_layers, num_heads=args.num_heads,
                                 intermediate_size=args.intermediate_size, max_length=args.max_length,
                                 dropout=args.dropout, seed=args.seed)
    print(f'tiny text encoder trained on {len(texts)} expressions ({len(set(texts))} distinct) -> {out}')


if __name__ == '__main__':
    main()
