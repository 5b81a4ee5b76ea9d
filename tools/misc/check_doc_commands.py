"""Check that every command shown in README.md, docs/*.md and configs/soc/README.md runs as written.

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
import re
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default=REPO, help='repository root (default: this checkout)')
    parser.add_argument('--files', nargs='+', default=None, metavar='PATTERN',
                        help='Markdown files (globs, relative to the root; default: README.md docs/*.md '
                        'configs/soc/README.md)')
    parser.add_argument('--list', action='store_true', help='print every command found')
    parser.add_argument('--run', metavar='REGEX', default=None,
                        help='also run the documented commands matching REGEX; each must exit 0')
    parser.add_argument('--timeout', type=float, default=600, help='seconds per command run by --run')
    return parser.parse_args(argv)


def run_command(command: str, root: str, timeout: float) -> str:
    """Run one documented command in ``root`` (a leading ``python`` is this interpreter); '' when it
    exits 0, else what happened."""
    text = re.sub(r'^(python3?|\.venv/bin/python)(?=\s)', lambda m: sys.executable, command.strip())
    start = time.time()
    try:
        done = subprocess.run(text, shell=True, cwd=root, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f'did not finish in {timeout:.0f} s'
    print(f'ran in {time.time() - start:.1f} s: {command}')
    if done.returncode != 0:
        return f'exit status {done.returncode}: {(done.stdout + done.stderr)[-2000:]}'
    return ''


def main(argv=None):
    args = parse_args(argv)
    if REPO not in sys.path:
        sys.path.insert(0, REPO)  # soc_mm of this checkout when run as a script
    from soc_mm.utils.doc_commands import DEFAULT_DOC_FILES, check_docs
    commands, problems = check_docs(args.root, args.files or DEFAULT_DOC_FILES)
    if args.list:
        for command in commands:
            print(f'{command.where()}: {command.text}')
    if args.run:
        seen = set()
        for command in commands:
            if re.search(args.run, command.text) and command.text not in seen:
                seen.add(command.text)
                failure = run_command(command.text, args.root, args.timeout)
                if failure:
                    problems.append(f'{command.where()}: `{command.text}`: {failure}')
        if not seen:
            problems.append(f'--run {args.run!r} matches no documented command')
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
