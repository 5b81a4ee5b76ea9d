"""Offline J&F (and the benchmark's other numbers) of RVOS predictions in the standard PNG layout, with the
official rules of each benchmark.

    python tools/analysis_tools/eval_rvos.py {mevis,revos,long-rvos,ref-davis17} PRED_DIR \\
        --meta-expressions F --masks F_OR_DIR [--foreground-masks F] [--workers N] [--out results.json] \\
        [--per-expression FILE.csv|.json] [--only-predicted-frames] [--mevis-version {v1,v2}]

    # MeViS v1 / v2 valid_u (--meta-expressions: meta_expressions.json, meta_expressions_v2.json or its folder)
    python tools/analysis_tools/eval_rvos.py mevis PRED_DIR \\
        --meta-expressions data/mevis/valid_u/meta_expressions_v2.json --masks data/mevis/valid_u/mask_dict.json
    # ReVOS (VISA's eval_revos.py rules)
    python tools/analysis_tools/eval_rvos.py revos PRED_DIR \\
        --meta-expressions data/revos/meta_expressions_valid_.json --masks data/revos/mask_dict.json \\
        --foreground-masks data/revos/mask_dict_foreground.json
    # Long-RVOS (--only-predicted-frames: eval_pred_frame.py's rule)
    python tools/analysis_tools/eval_rvos.py long-rvos PRED_DIR \\
        --meta-expressions data/long_rvos/valid/meta_expressions.json --masks data/long_rvos/valid/Annotations
    # Ref-DAVIS17 (PRED_DIR/anno_0..anno_3/<video>/<frame>.png index maps, the DAVIS "unsupervised" evaluation)
    python tools/analysis_tools/eval_rvos.py ref-davis17 PRED_DIR \\
        --meta-expressions data/ref-davis/meta_expressions/valid/meta_expressions.json \\
        --masks data/DAVIS/Annotations_unsupervised/480p

Prints one ``NAME: value`` line per reported number on stdout (nested groups as ``group/NAME``), in the
official script's keys and scale, and notes (counts, missing predictions) on stderr. ``--out`` writes the
same numbers as JSON, ``--per-expression`` one row per expression (``.csv`` or ``.json``). The rules of each
benchmark: ``soc_mm/evaluation/functional/{mevis,revos,long_rvos,ref_davis}.py``.
"""
import argparse
import json
import sys

BENCHMARKS = ('mevis', 'revos', 'long-rvos', 'ref-davis17')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Offline RVOS evaluation of PNG predictions (official rules)')
    parser.add_argument('benchmark', choices=BENCHMARKS)
    parser.add_argument('pred_dir', help='predictions: PRED_DIR/<video>/<exp_id>/<frame>.png (Ref-DAVIS17: '
                        'PRED_DIR/anno_<a>/<video>/<frame>.png)')
    parser.add_argument('--meta-expressions', required=True, help="the split's expression file (MeViS: or its "
                        'split folder)')
    parser.add_argument('--masks', required=True, help='mask_dict.json (MeViS, ReVOS) or the annotation folder '
                        '(Long-RVOS Annotations/, Ref-DAVIS17 index PNGs)')
    parser.add_argument('--foreground-masks', help='ReVOS: mask_dict_foreground.json (robustness score R)')
    parser.add_argument('--workers', type=int, default=0, help='worker processes (default 0: in this process)')
    parser.add_argument('--out', help='write the reported numbers to this JSON file (official keys and scale)')
    parser.add_argument('--per-expression', help='write one row per expression to this .csv or .json file')
    parser.add_argument('--only-predicted-frames', action='store_true',
                        help='Long-RVOS: score only the frames with a prediction PNG (key-frame evaluation)')
    parser.add_argument('--mevis-version', choices=('v1', 'v2'),
                        help='MeViS: the release to read when --meta-expressions is a split folder holding both')
    args = parser.parse_args(argv)
    if args.workers < 0:
        parser.error(f'--workers {args.workers}: must be >= 0')
    return args


def main(argv=None):
    args = parse_args(argv)
    from soc_mm.evaluation.functional.rvos_offline import (BenchmarkUnavailable, check_per_expression_path,
                                                           evaluate_benchmark, metric_lines, summary_json,
                                                           write_per_expression)
    from soc_mm.utils.cli import UsageError, check_output_file
    try:  # before the evaluation: its results must not be lost at the end
        check_output_file(args.out, '--out')
        check_output_file(args.per_expression, '--per-expression')
        if args.per_expression:
            check_per_expression_path(args.per_expression)
    except (UsageError, ValueError) as error:
        sys.exit(f'eval_rvos.py: error: {error}')
    try:
        result = evaluate_benchmark(args.benchmark, args.pred_dir, args.meta_expressions, args.masks,
                                    foreground_masks=args.foreground_masks, workers=args.workers,
                                    only_predicted_frames=args.only_predicted_frames,
                                    mevis_version=args.mevis_version)
    except (FileNotFoundError, ValueError, BenchmarkUnavailable) as error:
        sys.exit(f'eval_rvos.py: error: {error}')
    for note in result.notes:
        print(note, file=sys.stderr)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(summary_json(result.summary), f, indent=1)
    if args.per_expression:
        write_per_expression(result.rows, args.per_expression)
    for line in metric_lines(result.summary):
        print(line)
    return result


if __name__ == '__main__':
    main()
