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

from soc_mm.testing.tiny_text_encoder import make_tiny_text_encoder, read_expressions


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
