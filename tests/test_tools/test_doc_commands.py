"""Every command shown in README.md, docs/*.md and configs/*/README.md runs as written
(tools/misc/check_doc_commands.py, soc_mm/utils/doc_commands.py)."""
import os.path as osp
import subprocess
import sys
import textwrap

import pytest

from soc_mm.utils.doc_commands import (DocCommand, DocCommandChecker, DocSnippet, check_docs, expand_braces,
                                       extract_commands, load_parser, normalise_words, run_matching_commands,
                                       split_simple_commands)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

TOOL = '''
import argparse


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('config')
    parser.add_argument('--frames', type=int, default=8)
    parser.add_argument('--size', type=int, nargs=2)
    parser.add_argument('--mode', choices=['slow', 'exact'], default='exact')
    parser.add_argument('--flag', action='store_true')
    args = parser.parse_args()
    open('ran_past_parsing', 'w').close()


if __name__ == '__main__':
    main()
'''
# passes "${@:2}" on to tool.py, as tools/dist_train.sh does with train.py
FORWARDING_SH = '''#!/usr/bin/env bash
CONFIG=$1
DIR="$(cd "$(dirname "$0")" && pwd)"
python "$DIR/tool.py" "$CONFIG" "${@:2}"
'''
OWN_OPTIONS_SH = '''#!/usr/bin/env bash
case "$1" in
    --dry-run) echo dry ;;
esac
'''


@pytest.fixture
def repo(tmp_path):
    """A small repository: a Python tool, two shell scripts, a Makefile and a config."""
    (tmp_path / 'tools').mkdir()
    (tmp_path / 'tools' / 'tool.py').write_text(TOOL)
    (tmp_path / 'tools' / 'run.sh').write_text(FORWARDING_SH)
    (tmp_path / 'tools' / 'own.sh').write_text(OWN_OPTIONS_SH)
    (tmp_path / 'configs').mkdir()
    (tmp_path / 'configs' / 'a.py').write_text('x = 1\n')
    (tmp_path / 'configs' / 'b.py').write_text('x = 2\n')
    (tmp_path / 'Makefile').write_text('.PHONY: demo\nSTAMP := x\n\ndemo: venv\n\techo demo\n\nvenv:\n\ttrue\n')
    return tmp_path


def problems_of(root, text):
    return DocCommandChecker(str(root)).check(DocCommand('doc.md', 1, text))


def test_commands_and_snippets_are_extracted_with_their_lines():
    markdown = textwrap.dedent('''\
        # Title

        Run `make demo` once, then
        `python tools/tool.py
        configs/a.py` (a span that wraps), not `pip` nor `configs/a.py`.

        ```bash
        # a comment line
        python tools/tool.py configs/a.py \\
            --frames 4   # trailing comment
        $ make demo
        ```

        ```
        data/layout/that/is/not/a/command
        ```

        ```python
        from soc_mm.apis import init_model
        ```
        ''')
    commands, snippets = extract_commands(markdown, 'doc.md')
    assert [(c.line, c.text, c.inline) for c in commands] == [
        (3, 'make demo', True),
        (4, 'python tools/tool.py configs/a.py', True),
        (9, 'python tools/tool.py configs/a.py --frames 4', False),
        (11, 'make demo', False),
    ]
    assert snippets == [DocSnippet('doc.md', 19, 'from soc_mm.apis import init_model')]


def test_usage_notation():
    assert expand_braces('soc_swin-{t,b}_{1,2}.py') == ['soc_swin-t_1.py', 'soc_swin-t_2.py',
                                                         'soc_swin-b_1.py', 'soc_swin-b_2.py']
    assert expand_braces('dict(a=1)') == ['dict(a=1)']
    words = split_simple_commands('A=1 timeout 9 python x.py CONFIG [--resume [CKPT]] [ARGS...] > log && make demo')
    assert words == [['A=1', 'timeout', '9', 'python', 'x.py', 'CONFIG', '[--resume', '[CKPT]]', '[ARGS...]'],
                     ['make', 'demo']]
    assert normalise_words(words[0]) == ['python', 'x.py', 'CONFIG', '--resume', 'CKPT']


def test_commands_that_run_as_written_pass(repo):
    for command in ['python tools/tool.py configs/a.py',
                    'python tools/tool.py configs/{a,b}.py --frames 4 --size 96 96 --mode slow --flag',
                    'python tools/tool.py CONFIG [--frames N] [--mode MODE] [--size H W]',  # placeholders
                    'python tools/tool.py configs/a*.py',
                    'bash tools/run.sh configs/a.py --frames 2 [ARGS...]',
                    'bash tools/own.sh --dry-run',
                    'make demo', 'make', 'NAME=1 make venv',
                    'pip install -e .']:
        assert problems_of(repo, command) == [], command
    assert not (repo / 'ran_past_parsing').exists()  # the tool stopped at parse_args


@pytest.mark.parametrize('command, problem', [
    ('python tools/tool.py configs/a.py --frams 3', 'tools/tool.py: option --frams is not an option of the script'),
    ('python tools/tool.py configs/a.py --fr 3', 'tools/tool.py: option --fr is not an option of the script'),
    ('python tools/tool.py configs/missing.py', 'configs/missing.py does not exist'),
    ('python tools/tool.py configs/{a,c}.py', 'configs/c.py does not exist'),
    ('python tools/tool.py', 'tools/tool.py: the following arguments are required: config'),
    ('python tools/tool.py CONFIG --frames three', "tools/tool.py: argument --frames: invalid int value: 'three'"),
    ('python tools/tool.py CONFIG --mode fast', 'invalid choice'),
    ('python tools/tool.py CONFIG --size 96', 'argument --size: expected 2 arguments'),
    ('python tools/missing.py CONFIG', 'tools/missing.py does not exist'),
    ('python tools/tool.py configs/*.yaml', 'configs/*.yaml matches no file'),
    ('python tools/tool.py configs/*.py', 'tools/tool.py: unrecognized arguments: configs/b.py'),  # the glob: 2 files
    ('make deploy', "make target 'deploy' is not in the Makefile"),
    ('bash tools/run.sh CONFIG --frams 2', 'tools/run.sh passes --frams on to tools/tool.py, which has no such option'),
    ('bash tools/run.sh', 'tools/run.sh takes 1 arguments before the options it passes on, got 0'),
    ('bash tools/own.sh --wet-run', 'tools/own.sh: option --wet-run does not appear in the script'),
    ('bash tools/missing.sh', 'tools/missing.sh does not exist'),
    ('rm -rf build', "unknown program 'rm'"),
    ('python tools/tool.py "unbalanced', 'cannot split into words'),
])
def test_commands_that_do_not_run_are_named(repo, command, problem):
    problems = problems_of(repo, command)
    assert any(problem in p for p in problems), problems


def test_python_snippets_must_compile_and_import(repo):
    checker = DocCommandChecker(str(repo))
    assert checker.check_snippet(DocSnippet('doc.md', 1, 'from soc_mm.apis import init_model\nx = 1')) == []
    assert checker.check_snippet(DocSnippet('doc.md', 1, 'from soc_mm.apis import no_such_function')) == [
        'soc_mm.apis has no no_such_function']
    assert 'does not compile' in checker.check_snippet(DocSnippet('doc.md', 1, 'model = init_model(')).pop()


def test_check_docs_reports_file_and_line(repo):
    (repo / 'README.md').write_text(
        'Intro.\n\n```bash\nmake demo\nmake deploy\n```\n\n'
        '| config | `configs/a.py`, `configs/{a,c}.py`, `configs/CONFIG.py` |\n'
        'Tested in `tests/test_gone.py`; `configs/*.py`; `NeurIPS2023_SOC/configs/x.yaml`.\n\n'
        '## One clip\'s path\n\n[ok](#one-clips-path), [ok](configs/a.py), [web](https://x.org/a#b), '
        '[gone](#two-clips), [gone](docs/none.md), ![img](configs/none.png)\n')
    commands, problems = check_docs(str(repo), ['README.md'])
    assert len(commands) == 2
    assert problems == ["README.md:5: `make deploy`: make target 'deploy' is not in the Makefile (targets: demo, venv)",
                        'README.md:8: path `configs/{a,c}.py`: configs/c.py does not exist',
                        'README.md:9: path `tests/test_gone.py`: tests/test_gone.py does not exist',
                        'README.md:13: link (#two-clips): README.md has no heading with the anchor #two-clips',
                        'README.md:13: link (docs/none.md): docs/none.md does not exist',
                        'README.md:13: link (configs/none.png): configs/none.png does not exist']


def test_load_parser_of_a_script_that_fails_before_parsing(tmp_path):
    script = tmp_path / 'broken.py'
    script.write_text('import argparse\nraise ImportError("no such package")\nargparse.ArgumentParser()\n')
    with pytest.raises(RuntimeError, match=r'broken.py: stopped before parsing its arguments: ImportError'):
        load_parser(str(script))
    plain = tmp_path / 'plain.py'
    plain.write_text('print("no parser")\n')
    assert load_parser(str(plain)) is None


def test_documented_commands_run_as_written():
    """README.md, docs/*.md and configs/*/README.md, checked by the tool as a user runs it."""
    done = subprocess.run([sys.executable, 'tools/misc/check_doc_commands.py'],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'documented commands in' in done.stdout


def test_run_option_runs_the_matching_documented_commands(repo):
    """``--run REGEX`` (run_matching_commands) runs the matching commands in the repository root and fails on a
    non-zero exit. (The suite does not run the documented golden comparison this way: ``tests/test_official/
    test_compare_with_reference.py`` runs the same tool on the same fixtures.)"""
    (repo / 'tools' / 'fail.py').write_text('import sys\nsys.exit(3)\n')
    (repo / 'README.md').write_text(
        '```bash\npython tools/tool.py configs/a.py --frames 2\npython tools/fail.py\n```\n')
    commands, problems = check_docs(str(repo), ['README.md'])
    assert problems == []
    ran = []
    assert run_matching_commands(commands, 'tool.py', str(repo), timeout=120, log=ran.append) == []
    assert (repo / 'ran_past_parsing').exists()  # it ran past the parser this time
    assert [line.split(': ', 1)[1] for line in ran] == ['python tools/tool.py configs/a.py --frames 2']
    assert run_matching_commands(commands, 'fail.py', str(repo), timeout=120, log=ran.append) == [
        'README.md:3: `python tools/fail.py`: exit status 3: ']
    assert run_matching_commands(commands, 'nothing-matches', str(repo), log=ran.append) == [
        "--run 'nothing-matches' matches no documented command"]
