"""Convert an official SOC (RobertLuo1/NeurIPS2023_SOC) or SOC++ (yongliu20/MRVS_SOC) checkpoint to soc_mm.

Usage: python tools/model_converters/soc_official_to_mm.py SRC DST [--config CONFIG] [--cfg-options k=v ...]

SRC: an official checkpoint (the official trainer's ``{'model_state_dict': ..., ...}``, a dict
     with ``model``/``state_dict``, or a bare state dict). Loaded with ``weights_only=True``:
     nothing in it can run code.
DST: written as ``{'state_dict': ..., 'meta': {...}}`` for ``load_from`` / tools/test.py, only
     when every check passed (written to a temporary file, then renamed).

SRC must be a local file: URLs and remote prefixes (``http://``, ``s3://``...) are refused.

Checks (``soc_mm.official.convert``; any failure: a message listing every offender, exit status 1, DST not
written):
* always: every official key is claimed by exactly one rule of the model's key table
  (``soc_mm.official.checkpoint.KEY_RULES`` for SOC, ``SOCPP_KEY_RULES`` for SOC++; the model is CONFIG's,
  or detected from the keys without --config; a checkpoint of the other model is refused, saying so) or is
  a named known extra, and every module the rules describe is complete; every tensor is finite (no NaN/inf)
  and every ``*.weight`` / ``*.bias`` is floating point;
* with ``--config``: the model built from CONFIG has every converted key with the same shape
  and dtype, and every key of the model is produced.
"""
import argparse
import sys

from mmengine.config import DictAction

from soc_mm.official.convert import ConversionError, convert_official_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='output path')
    parser.add_argument('--config', help='soc_mm config: the converted checkpoint must fit its model exactly')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override settings of --config (e.g. model.text_encoder.model_path=DIR)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        count = convert_official_checkpoint(args.src, args.dst, args.config, args.cfg_options)
    except ConversionError as err:
        print(f'soc_official_to_mm: error: {err}', file=sys.stderr)
        return 1
    print(f'converted {count} tensors -> {args.dst}' + (f' (checked against {args.config})' if args.config else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
