"""MeViS J&F of a prediction folder, equal to the official ``tools/eval_mevis.py``.

    python tools/analysis_tools/eval_mevis.py PRED_DIR \\
        --meta-expressions data/mevis/valid_u/meta_expressions.json \\
        --mask-dict data/mevis/valid_u/mask_dict.json [--out per_expression.json] [--workers N]

``PRED_DIR`` is in the server layout ``<video>/<exp_id>/<frame>.png`` (non-zero = object). Prints
``J: <float>``, ``F: <float>``, ``J&F: <float>`` (fractions in [0, 1], the official script's numbers)
and a line counting the videos without a prediction folder (their expressions score J = F = 0).
A missing or unreadable PNG inside a predicted video is an error naming the file. ``--out`` writes
the per-expression scores in the official ``{"<video>_<exp_id>": [J, F]}`` layout. Definition:
``soc_mm/evaluation/functional/mevis.py``.
"""
import argparse
import json
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='MeViS J&F of PNG predictions (official rules)')
    parser.add_argument('pred_dir', help='predictions: PRED_DIR/<video>/<exp_id>/<frame>.png')
    parser.add_argument('--meta-expressions', required=True, help="the split's meta_expressions.json")
    parser.add_argument('--mask-dict', required=True, help="the split's mask_dict.json")
    parser.add_argument('--out', help='write per-expression {"<video>_<exp_id>": [J, F]} to this JSON file')
    parser.add_argument('--workers', type=int, default=1, help='processes over expressions (default 1)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from soc_mm.evaluation.functional.mevis import (evaluate_mevis_predictions, mevis_missing_summary,
                                                    per_expression_json)
    from soc_mm.utils.cli import UsageError, check_output_file
    try:
        check_output_file(args.out, '--out')  # before the evaluation: its result must not be lost at the end
    except UsageError as error:
        sys.exit(f'eval_mevis.py: error: {error}')
    try:
        result = evaluate_mevis_predictions(args.pred_dir, args.meta_expressions, args.mask_dict,
                                            workers=args.workers)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'eval_mevis.py: error: {error}')
    print(f'expressions: {len(result.per_expression)} in {result.num_videos} videos')
    print(mevis_missing_summary(result.missing_videos, result.num_videos, result.num_missing_expressions))
    if result.extra_entries:
        print(f'not in the meta file (not evaluated): {len(result.extra_entries)} entries of {args.pred_dir}, '
              f'e.g. {result.extra_entries[:5]}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(per_expression_json(result.per_expression), f, indent=1)
    for key in ('J', 'F', 'J&F'):
        print(f'{key}: {result.metrics[key]!r}')
    return result


if __name__ == '__main__':
    main()
