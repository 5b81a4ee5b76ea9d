"""Convert an official SOC checkpoint to soc_mm.

Usage: python tools/model_converters/soc_official_to_mm.py SRC DST [--config CONFIG]

SRC: an official checkpoint (``{'model_state_dict': ...}`` or a bare state dict).
DST: written as ``{'state_dict': ..., 'meta': {...}}`` for ``load_from`` / tools/test.py.
With ``--config`` the converted keys are also checked against the model built from it
(missing or unexpected keys are an error).
"""
import argparse
import os.path as osp
import sys

import torch

from soc_mm.utils.official_checkpoint import (convert_official_state_dict,
                                              extract_official_state_dict)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='output path')
    parser.add_argument('--config', help='soc_mm config whose model must accept every key')
    return parser.parse_args()


def check_against_config(state_dict, config):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from soc_mm.registry import MODELS
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'soc_mm'))
    model = MODELS.build(cfg.model)
    ours = set(model.state_dict())
    missing, unexpected = sorted(ours - set(state_dict)), sorted(set(state_dict) - ours)
    if missing or unexpected:
        raise SystemExit(f'converted checkpoint does not fit {config}: missing {missing}, '
                         f'unexpected {unexpected}')


def main():
    args = parse_args()
    if not osp.isfile(args.src):
        sys.exit(f'no such checkpoint: {args.src}')
    # Official checkpoints also hold optimizer/scheduler state and args; allow-list nothing extra:
    # a checkpoint that needs arbitrary unpickling is refused.
    checkpoint = torch.load(args.src, map_location='cpu', weights_only=True)
    state_dict = convert_official_state_dict(extract_official_state_dict(checkpoint))
    if args.config:
        check_against_config(state_dict, args.config)
    torch.save(dict(state_dict=state_dict, meta=dict(converted_from=osp.abspath(args.src))), args.dst)
    print(f'converted {len(state_dict)} tensors -> {args.dst}')


if __name__ == '__main__':
    main()
