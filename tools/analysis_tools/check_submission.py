"""Check a submission zip before uploading it to an evaluation server (MeViS, Ref-YouTube-VOS).

    python tools/analysis_tools/check_submission.py mevis submission.zip \\
        --meta-expressions data/mevis/valid/meta_expressions_v2.json \\
        [--frames-dir data/mevis/valid/JPEGImages]
    python tools/analysis_tools/check_submission.py ref-ytvos submission.zip \\
        --meta-expressions data/ref_youtube_vos/meta_expressions/valid/meta_expressions.json \\
        --exclude-meta-expressions data/ref_youtube_vos/meta_expressions/test/meta_expressions.json

Checks the layout the server expects (MeViS: ``<video>/<exp_id>/<frame>.png`` at the zip's top level;
Ref-YouTube-VOS: ``Annotations/<video>/<exp_id>/<frame>.png``), that every video, expression and frame of the
meta file has its PNG and nothing else is there, each PNG's mode (8-bit grayscale or palette) and size, and the
zip's CRCs. Prints each problem (``KIND: message``) and exits with status 1 if there is any, else prints
``OK: ...`` and exits with 0 (2: a usage error, e.g. an unreadable meta file). The checks:
``soc_mm/evaluation/functional/submission_check.py``.
"""
import argparse
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Check a MeViS / Ref-YouTube-VOS submission zip before upload')
    parser.add_argument('benchmark', choices=('mevis', 'ref-ytvos'))
    parser.add_argument('zip', help='the submission zip')
    parser.add_argument('--meta-expressions', required=True, help="the split's meta_expressions file")
    parser.add_argument('--frames-dir', help="the split's JPEGImages folder: each PNG must have its frame's size")
    parser.add_argument('--exclude-meta-expressions', help='a meta file whose videos are not expected '
                        '(Ref-YouTube-VOS: meta_expressions/test/meta_expressions.json)')
    parser.add_argument('--decode', action='store_true', help='decode every PNG whole (slower)')
    parser.add_argument('--max-per-kind', type=int, default=20, help='problems printed per kind (default 20)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from soc_mm.evaluation.functional.submission_check import check_submission, problem_report
    try:
        problems = check_submission(args.benchmark, args.zip, args.meta_expressions, frames_dir=args.frames_dir,
                                    exclude_meta=args.exclude_meta_expressions, decode=args.decode)
    except (FileNotFoundError, ValueError) as error:  # the meta file, not the zip: a usage error (status 2)
        print(f'check_submission.py: error: {error}', file=sys.stderr)
        sys.exit(2)
    if problems:
        for line in problem_report(problems, args.max_per_kind):
            print(line)
        print(f'{len(problems)} problem(s): fix them before uploading {args.zip}')
        sys.exit(1)
    print(f'OK: {args.zip} is a complete {args.benchmark} submission for {args.meta_expressions}')
    return problems


if __name__ == '__main__':
    main()
