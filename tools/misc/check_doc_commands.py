"""Check that every command shown in README.md, docs/*.md and configs/*/README.md runs as written.

Commands come from the ```bash blocks and from inline code spans that start with ``python``, ``bash`` or
``make``. Without running them it checks that scripts, make targets and repository paths exist and
that each Python tool's argument parser accepts the documented arguments (upper-case words such as
CONFIG or CKPT are placeholders); repository paths in inline code and links (with their #anchors) must
exist, Python snippets must compile; see soc_mm/utils/doc_commands.py for the rules. ``--run REGEX`` also
runs the documented commands that match REGEX (``python`` is this interpreter) and checks they exit 0.

Usage: python tools/misc/check_doc_commands.py [--files PATTERN ...] [--list] [--run REGEX]
Exit status 1 when a command does not run as written (each problem is printed with file and line).
"""
import argparse
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default=REPO, help='repository root (default: this checkout)')
    parser.add_argument('--files', nargs='+', default=None, metavar='PATTERN',
                        help='Markdown files (globs, relative to the root; default: README.md docs/*.md '
                        'configs/*/README.md)')
    parser.add_argument('--list', action='store_true', help='print every command found')
    parser.add_argument('--run', metavar='REGEX', default=None,
                        help='also run the documented commands matching REGEX; each must exit 0')
    parser.add_argument('--timeout', type=float, default=600, help='seconds per command run by --run')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if REPO not in sys.path:
        sys.path.insert(0, REPO)  # soc_mm of this checkout when run as a script
    from soc_mm.utils.doc_commands import DEFAULT_DOC_FILES, check_docs, run_matching_commands
    commands, problems = check_docs(args.root, args.files or DEFAULT_DOC_FILES)
    if args.list:
        for command in commands:
            print(f'{command.where()}: {command.text}')
    if args.run:
        problems += run_matching_commands(commands, args.run, args.root, args.timeout)
    files = sorted({c.path for c in commands})
    print(f'{len(commands)} documented commands in {len(files)} files checked')
    for problem in problems:
        print(problem)
    if problems:
        print(f'{len(problems)} problem(s)')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
