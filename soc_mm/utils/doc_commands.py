"""Check that the commands shown in the documentation run as written.

The commands are taken from the fenced ``bash`` (``sh``, ``shell``, ``console``) code blocks of the
Markdown files and from the inline code spans that start like a command (``python tools/...``,
``bash tools/...``, ``make X``). Each command is checked without running it:

* ``python SCRIPT ARGS``: the script exists; for a script with an ``argparse`` parser, every option of
  ARGS is one of its options (spelled out: no abbreviations) and the parser accepts ARGS. Placeholders
  (upper-case words: CONFIG, CKPT, DIR, N, ...) stand for any value: where the parser rejects one
  (an ``int`` option, a choice), a value the option takes is put in its place.
* ``bash tools/X.sh ARGS``: the script exists; its options appear in it, or, for a script that passes
  ``${@:N}`` on to a Python tool (``dist_train.sh`` -> ``train.py``), ARGS has the N-1 leading
  arguments and the rest are options of that tool.
* ``make TARGET``: the target is defined in the Makefile.
* Every path into the repository (``configs/``, ``tools/``, ``tests/``, ``soc_mm/``, ``requirements/``,
  ``docs/``) exists; globs must match and ``{a,b}`` alternatives are expanded as bash does. This also
  holds for such a path written alone in an inline code span of the text (e.g. ``tests/test_x.py``).
  Links to files of the repository point to existing files, and their ``#anchor`` to a heading.

Usage-style notation is understood: ``[--opt VALUE]`` (optional parts are checked as if given),
``...`` / ``…`` / ``ARGS`` (more arguments), ``# comments`` and ``\\`` line continuations.
Fenced ``python`` blocks must compile, and their ``from soc_mm... import name`` lines must name
existing objects.

The argument parsers are obtained by running each script as ``__main__`` until it parses its
arguments (``ArgumentParser.parse_args`` is intercepted there); nothing after that runs.
:func:`run_matching_commands` runs documented commands for real (``check_doc_commands.py --run``).
"""
import argparse
import ast
import glob
import importlib
import itertools
import os
import os.path as osp
import re
import runpy
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

# Markdown files whose commands are checked (relative to the repository root; globs allowed).
DEFAULT_DOC_FILES = ('README.md', 'docs/*.md', 'configs/*/README.md')
SHELL_LANGS = ('bash', 'sh', 'shell', 'console')
# inline code spans that are commands
INLINE_COMMAND = re.compile(r'^(python3?|\.venv/bin/python|bash|make)\s+\S')
# paths that must exist when a command names them
REPO_PREFIXES = ('configs/', 'tools/', 'tests/', 'soc_mm/', 'requirements/', 'docs/')
PLACEHOLDER = re.compile(r'[A-Z][A-Z0-9_]*')
REST_MARKERS = ('...', '…', 'ARGS', 'ARGS...', 'ARGS…')
PYTHONS = ('python', 'python3', '.venv/bin/python', '.venv/bin/python3')
# programs whose commands are only checked for the repository paths they name
OTHER_PROGRAMS = ('pip', 'pip3', 'apt-get', 'apt', 'git', 'cd', 'ls', 'cat', 'export', 'mkdir', 'ln',
                  'unzip', 'nvidia-smi', 'torchrun', 'pytest')
MAX_VARIANTS = 32


@dataclass(frozen=True)
class DocCommand:
    """One documented command: the Markdown file (relative path), the 1-based line where it starts,
    the command text (continuation lines joined, comment removed) and whether it was an inline span."""
    path: str
    line: int
    text: str
    inline: bool = False

    def where(self) -> str:
        return f'{self.path}:{self.line}'


@dataclass(frozen=True)
class DocSnippet:
    """One ```python block: file, first line of its code, code."""
    path: str
    line: int
    code: str


# ---------------------------------------------------------------------------------------- extraction
def strip_comment(line: str) -> str:
    """``line`` without a shell comment: a ``#`` at the start or after a blank, outside quotes."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in '"\'':
            quote = char
        elif char == '#' and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def _fence(line: str) -> Optional[Tuple[str, str]]:
    match = re.match(r'^\s*(`{3,}|~{3,})\s*([\w+-]*)', line)
    return (match.group(1), match.group(2).lower()) if match else None


def extract_commands(text: str, path: str) -> Tuple[List[DocCommand], List[DocSnippet]]:
    """Commands (shell blocks and inline command spans) and Python snippets of one Markdown text."""
    commands: List[DocCommand] = []
    snippets: List[DocSnippet] = []
    lines = text.splitlines()
    i = 0
    paragraph: List[Tuple[int, str]] = []

    def flush_paragraph():
        if paragraph:
            commands.extend(_inline_commands(paragraph, path))
            paragraph.clear()

    while i < len(lines):
        fence = _fence(lines[i])
        if fence is None:
            if lines[i].strip():
                paragraph.append((i + 1, lines[i]))
            else:
                flush_paragraph()
            i += 1
            continue
        flush_paragraph()
        marker, lang = fence
        start = i + 1
        i += 1
        body = []
        while i < len(lines) and not lines[i].strip().startswith(marker):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        if lang in SHELL_LANGS:
            commands.extend(_block_commands(body, start + 1, path))
        elif lang == 'python':
            snippets.append(DocSnippet(path, start + 1, '\n'.join(body)))
    flush_paragraph()
    return commands, snippets


def _block_commands(body: Sequence[str], first_line: int, path: str) -> List[DocCommand]:
    commands = []
    pending, pending_line = '', None
    for offset, raw in enumerate(body):
        line = raw.strip()
        if line.startswith('$ '):
            line = line[2:]
        line = strip_comment(line)
        continued = line.endswith('\\')
        if continued:
            line = line[:-1].rstrip()
        if pending_line is None:
            if not line:
                continue
            pending_line = first_line + offset
        pending = f'{pending} {line}'.strip()
        if not continued:
            commands.append(DocCommand(path, pending_line, pending))
            pending, pending_line = '', None
    if pending_line is not None:
        commands.append(DocCommand(path, pending_line, pending))
    return commands


def _inline_commands(paragraph: Sequence[Tuple[int, str]], path: str) -> List[DocCommand]:
    """Inline code spans of a paragraph that start like a command (a span may wrap a line)."""
    text, starts = '', []
    for number, line in paragraph:
        starts.append((len(text), number))
        text += line + ' '
    commands = []
    for match in re.finditer(r'(?<!`)`([^`]+)`(?!`)', text):
        span = match.group(1).strip()
        if INLINE_COMMAND.match(span):
            line = max(number for offset, number in starts if offset <= match.start())
            commands.append(DocCommand(path, line, strip_comment(span), inline=True))
    return commands


def extract_paths(text: str) -> List[Tuple[int, str]]:
    """(line, path) of the inline code spans outside code blocks that are one repository path
    (``configs/...``, ``tools/...``, ``tests/...``, ``soc_mm/...``, ``requirements/...``, ``docs/...``)."""
    paths, in_block = [], None
    for number, line in enumerate(text.splitlines(), 1):
        fence = _fence(line)
        if fence and (in_block is None or line.strip().startswith(in_block)):
            in_block = None if in_block else fence[0]
            continue
        if in_block:
            continue
        for match in re.finditer(r'(?<!`)`([^`\s]+)`(?!`)', line):
            if match.group(1).startswith(REPO_PREFIXES):
                paths.append((number, match.group(1)))
    return paths


def heading_anchors(text: str) -> List[str]:
    """GitHub's anchors of the Markdown headings of ``text`` (lower case, punctuation dropped, blanks
    to ``-``)."""
    anchors, in_block = [], None
    for line in text.splitlines():
        fence = _fence(line)
        if fence and (in_block is None or line.strip().startswith(in_block)):
            in_block = None if in_block else fence[0]
        elif not in_block and re.match(r'^#{1,6} ', line):
            anchors.append(re.sub(r'[^\w\- ]', '', line.lstrip('#').strip().lower()).replace(' ', '-'))
    return anchors


def extract_links(text: str) -> List[Tuple[int, str]]:
    """(line, target) of the Markdown links and images of ``text`` that point into the repository
    (no ``http(s):``/``mailto:`` address), outside code blocks."""
    links, in_block = [], None
    for number, line in enumerate(text.splitlines(), 1):
        fence = _fence(line)
        if fence and (in_block is None or line.strip().startswith(in_block)):
            in_block = None if in_block else fence[0]
            continue
        if not in_block:
            links += [(number, target) for target in re.findall(r'\]\(([^)\s]+)\)', line)
                      if not re.match(r'^[a-z]+:', target)]
    return links


def read_doc_files(root: str, patterns: Iterable[str] = DEFAULT_DOC_FILES) -> List[str]:
    """Markdown files (paths relative to ``root``, sorted) matching ``patterns``."""
    found = set()
    for pattern in patterns:
        matches = glob.glob(osp.join(root, pattern))
        if not matches and not glob.has_magic(pattern):
            raise FileNotFoundError(f'documentation file {pattern} not found under {root}')
        found.update(osp.relpath(m, root) for m in matches)
    return sorted(found)


# ---------------------------------------------------------------------------------------- tokens
def expand_braces(token: str) -> List[str]:
    """bash brace expansion of one token (``a{1,2}b{x,y}`` -> 4 words; no nesting)."""
    match = re.search(r'\{([^{}]*,[^{}]*)\}', token)
    if not match:
        return [token]
    head, tail = token[:match.start()], token[match.end():]
    return [word for choice in match.group(1).split(',') for word in expand_braces(head + choice + tail)]


def split_simple_commands(text: str) -> List[List[str]]:
    """Shell words of each simple command of ``text`` (split at ``&&``, ``||``, ``;``, ``|``);
    redirections and their targets are dropped. Raises ValueError for unbalanced quotes."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=';&|<>')
    lexer.whitespace_split = True
    commands, words, skip_next = [], [], False
    for token in lexer:
        if skip_next:
            skip_next = False
            continue
        if token in ('&&', '||', ';', '|', '&'):
            if words:
                commands.append(words)
            words = []
        elif set(token) <= set('<>&'):
            skip_next = True
        else:
            words.append(token)
    if words:
        commands.append(words)
    return commands


def normalise_words(words: Sequence[str]) -> List[str]:
    """Usage notation -> words: ``[``/``]`` removed (optional parts count as given), rest markers
    (``...``, ``…``, ``ARGS``) and leading ``VAR=value`` / ``timeout N`` prefixes dropped."""
    out = []
    for word in words:
        word = word.replace('[', '').replace(']', '')
        if word in ('', '|') or word in REST_MARKERS or word.endswith('...') or word.endswith('…'):
            continue
        out.append(word)
    while out and re.match(r'^[A-Za-z_][A-Za-z0-9_]*=', out[0]):
        out.pop(0)
    if len(out) >= 2 and out[0] == 'timeout':
        out = out[2:]
    return out


def is_placeholder(word: str) -> bool:
    """CONFIG, CKPT, N, NUM_PROCS, ... (an upper-case word, optionally with an extension: CKPT.pth)."""
    return bool(PLACEHOLDER.fullmatch(word.split('.')[0]))


def _path_has_placeholder(path: str) -> bool:
    """configs/soc/CONFIG.py, work_dirs/<name>/...: a part of the path stands for any name."""
    return '<' in path or any(is_placeholder(part) for part in re.split(r'[/.]', path))


def repo_path_words(words: Sequence[str]) -> List[str]:
    """The words (or ``--opt=value`` values) that are paths into the repository."""
    paths = []
    for word in words:
        value = word.split('=', 1)[1] if word.startswith('-') and '=' in word else word
        value = value[2:] if value.startswith('./') else value
        if value.startswith(REPO_PREFIXES):
            paths.append(value)
    return paths


# ---------------------------------------------------------------------------------------- parsers
class _ParserCaptured(Exception):

    def __init__(self, parser: argparse.ArgumentParser):
        super().__init__('parser captured')
        self.parser = parser


def load_parser(script: str) -> Optional[argparse.ArgumentParser]:
    """Run ``script`` as ``__main__`` until it parses its arguments and return its ``ArgumentParser``
    (None when the script has no ``argparse`` parser). Raises RuntimeError naming the script when
    it fails before parsing."""
    with open(script, encoding='utf-8') as f:
        if 'ArgumentParser' not in f.read():
            return None

    def capture(self, *args, **kwargs):
        raise _ParserCaptured(self)

    names = ('parse_args', 'parse_known_args', 'parse_intermixed_args')
    saved = {name: getattr(argparse.ArgumentParser, name) for name in names}
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [script]
    sys.path.insert(0, osp.dirname(osp.abspath(script)))
    for name in names:
        setattr(argparse.ArgumentParser, name, capture)
    try:
        runpy.run_path(script, run_name='__main__')
    except _ParserCaptured as captured:
        return captured.parser
    except BaseException as error:  # noqa: B902 - a script may sys.exit() or fail on import
        raise RuntimeError(f'{script}: stopped before parsing its arguments: {type(error).__name__}: {error}')
    finally:
        for name, method in saved.items():
            setattr(argparse.ArgumentParser, name, method)
        sys.argv = saved_argv
        sys.path[:] = saved_path
    raise RuntimeError(f'{script}: ran to the end without parsing its arguments')


class _ParseError(Exception):
    pass


def _raise_parse_error(message: str):
    raise _ParseError(message)


def _value_for(action: argparse.Action) -> Optional[str]:
    """A value ``action`` accepts, to stand in for a placeholder."""
    if action.choices:
        return str(next(iter(action.choices)))
    for candidate in ('1', '0.5', '1 1', 'a'):
        try:
            if action.type is None or callable(action.type) and action.type(candidate) is not None:
                return candidate
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            continue
    return None


def check_arguments(parser: argparse.ArgumentParser, args: Sequence[str]) -> Optional[str]:
    """None when ``parser`` accepts ``args`` (placeholders replaced by values their argument takes),
    else what is wrong."""
    options = parser._option_string_actions
    for word in args:
        if word.startswith('-') and not re.fullmatch(r'-[\d.]+(e-?\d+)?', word) and word != '-':
            name = word.split('=', 1)[0]
            if name not in options:
                return f'option {name} is not an option of the script'
    args = list(args)
    error_calls = (parser.error, parser.exit_on_error)
    parser.error, parser.exit_on_error = _raise_parse_error, False
    try:
        for _ in range(len(args) + 1):
            try:
                parser.parse_args(args)
                return None
            except argparse.ArgumentError as error:
                value = re.search(r"invalid (?:[\w ]+ value|choice): '([^']*)'", str(error))
                action = next((a for a in parser._actions
                               if error.argument_name in ('/'.join(a.option_strings) or a.dest, a.dest,
                                                          a.metavar)), None)
                if value is None or action is None or not is_placeholder(value.group(1)):
                    return str(error)
                replacement = _value_for(action)
                if replacement is None or value.group(1) not in args:
                    return str(error)
                args[args.index(value.group(1))] = replacement
            except _ParseError as error:
                return str(error)
        return 'could not replace the placeholders'
    finally:
        parser.error, parser.exit_on_error = error_calls


# ---------------------------------------------------------------------------------------- checker
def makefile_targets(makefile: str) -> List[str]:
    """Targets defined in ``makefile`` (rules ``name ...:``; not variables, not .PHONY)."""
    targets = []
    with open(makefile, encoding='utf-8') as f:
        for line in f:
            match = re.match(r'^([A-Za-z0-9_.-][A-Za-z0-9_. -]*?)\s*:(?![=:])', line)
            if match and not line.startswith('\t'):
                targets += [t for t in match.group(1).split() if not t.startswith('.')]
    return targets


def shell_forwarding(script_text: str) -> Optional[Tuple[str, int]]:
    """(Python tool next to the script, N) when the script passes ``${@:N}`` on to ``$DIR/tool.py``."""
    tool = re.search(r'\$DIR/([\w./-]+\.py)', script_text)
    rest = re.search(r'\$\{@:(\d+)\}', script_text)
    return (tool.group(1), int(rest.group(1))) if tool and rest else None


class DocCommandChecker:
    """Checks documented commands against the repository at ``root`` (see the module docstring).

    Args:
        root (str): repository root (paths in commands are relative to it).
        parser_loader (callable): script path -> ``ArgumentParser`` or None (default
            :func:`load_parser`); parsers are loaded once per script.
    """

    def __init__(self, root: str, parser_loader: Callable[[str], Optional[argparse.ArgumentParser]] = load_parser):
        self.root = osp.abspath(root)
        self.parser_loader = parser_loader
        self._parsers: Dict[str, object] = {}
        makefile = osp.join(self.root, 'Makefile')
        self.make_targets = makefile_targets(makefile) if osp.isfile(makefile) else []

    def parser(self, script: str):
        if script not in self._parsers:
            cwd = os.getcwd()
            os.chdir(self.root)
            try:
                self._parsers[script] = self.parser_loader(script)
            except RuntimeError as error:
                self._parsers[script] = error
            finally:
                os.chdir(cwd)
        return self._parsers[script]

    def exists(self, path: str) -> bool:
        return osp.exists(osp.join(self.root, path))

    def check_link(self, doc: str, target: str) -> List[str]:
        """A link of the Markdown file ``doc`` (relative to the root): the file exists, the anchor is
        one of its headings."""
        file_part, _, anchor = target.partition('#')
        linked = osp.normpath(osp.join(osp.dirname(doc), file_part)) if file_part else doc
        if not self.exists(linked):
            return [f'{linked} does not exist']
        if anchor and linked.endswith('.md'):
            with open(osp.join(self.root, linked), encoding='utf-8') as f:
                if anchor not in heading_anchors(f.read()):
                    return [f'{linked} has no heading with the anchor #{anchor}']
        return []

    def check_path(self, path: str) -> List[str]:
        """A path named in the text exists (globs match, every ``{a,b}`` alternative exists)."""
        problems = []
        for variant in expand_braces(path):
            if _path_has_placeholder(variant):
                continue
            if glob.has_magic(variant):
                if not glob.glob(osp.join(self.root, variant)):
                    problems.append(f'{variant} matches no file')
            elif not self.exists(variant):
                problems.append(f'{variant} does not exist')
        return problems

    # ----------------------------------------------------------------------------- one command
    def check(self, command: DocCommand) -> List[str]:
        """Problems of one command (empty when it runs as written)."""
        try:
            simple_commands = split_simple_commands(command.text)
        except ValueError as error:
            return [f'cannot split into words: {error}']
        problems = []
        for words in simple_commands:
            words = normalise_words(words)
            if not words:
                continue
            variants = [list(v) for v in itertools.islice(
                itertools.product(*[expand_braces(w) for w in words]), MAX_VARIANTS)]
            for variant in variants:
                for problem in self._check_words(variant):
                    if problem not in problems:
                        problems.append(problem)
        return problems

    def _expand_globs(self, words: List[str]) -> Tuple[List[str], List[str]]:
        out, problems = [], []
        for word in words:
            if glob.has_magic(word) and not word.startswith('-'):
                matches = sorted(osp.relpath(m, self.root) + ('/' if word.endswith('/') else '')
                                 for m in glob.glob(osp.join(self.root, word)))
                if matches:
                    out += matches
                    continue
                if word.startswith(REPO_PREFIXES):
                    problems.append(f'{word} matches no file')
                    continue
            out.append(word)
        return out, problems

    def _check_words(self, words: List[str]) -> List[str]:
        words, problems = self._expand_globs(words)
        problems += [f'{p} does not exist' for p in repo_path_words(words)
                     if not self.exists(p) and not _path_has_placeholder(p)]
        program, args = words[0], words[1:]
        if program in PYTHONS:
            problems += self._check_python(args)
        elif program == 'make':
            for target in args:
                if target.startswith('-') or '=' in target:
                    continue
                if target not in self.make_targets:
                    problems.append(f'make target {target!r} is not in the Makefile '
                                    f'(targets: {", ".join(self.make_targets)})')
        elif program in ('bash', 'sh'):
            problems += self._check_shell_script(args)
        elif program not in OTHER_PROGRAMS:
            problems.append(f'unknown program {program!r} (not python, make, bash or one of '
                            f'{", ".join(OTHER_PROGRAMS)})')
        return problems

    def _check_python(self, args: List[str]) -> List[str]:
        if not args:
            return []
        if args[0] in ('-m', '-c'):
            return []
        script, script_args = args[0], args[1:]
        if not script.endswith('.py'):
            return [f'python runs {script!r}, which is no .py script']
        if not self.exists(script):
            return []  # reported as a missing path (or not a repository path)
        parser = self.parser(script)
        if isinstance(parser, RuntimeError):
            return [str(parser)]
        if parser is None:
            return [f'{script} takes no arguments'] if script_args else []
        problem = check_arguments(parser, script_args)
        return [f'{script}: {problem}'] if problem else []

    def _check_shell_script(self, args: List[str]) -> List[str]:
        if not args:
            return ['bash without a script']
        script, script_args = args[0], args[1:]
        if not self.exists(script):
            return []  # reported as a missing path
        with open(osp.join(self.root, script), encoding='utf-8') as f:
            text = f.read()
        forwarding = shell_forwarding(text)
        if forwarding is None:
            return [f'{script}: option {word.split("=")[0]} does not appear in the script'
                    for word in script_args if word.startswith('--')
                    and not re.search(r'(?<![\w-])' + re.escape(word.split('=')[0]) + r'(?![\w-])', text)]
        tool, first_forwarded = forwarding
        leading = first_forwarded - 1
        given = [w for w in script_args[:leading] if not w.startswith('-')]
        if len(given) < leading:
            return [f'{script} takes {leading} arguments before the options it passes on, got {len(given)}']
        tool_path = osp.relpath(osp.join(osp.dirname(osp.join(self.root, script)), tool), self.root)
        parser = self.parser(tool_path)
        if isinstance(parser, RuntimeError):
            return [str(parser)]
        options = parser._option_string_actions if parser else {}
        return [f'{script} passes {word.split("=")[0]} on to {tool_path}, which has no such option'
                for word in script_args[leading:] if word.startswith('-') and word.split('=')[0] not in options]

    # ----------------------------------------------------------------------------- snippets
    def check_snippet(self, snippet: DocSnippet) -> List[str]:
        """A Python snippet compiles and its ``from soc_mm... import`` names exist."""
        try:
            tree = ast.parse(snippet.code)
        except SyntaxError as error:
            return [f'Python snippet does not compile: {error}']
        problems = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split('.')[0] == 'soc_mm':
                try:
                    module = importlib.import_module(node.module)
                except ImportError as error:
                    problems.append(f'cannot import {node.module}: {error}')
                    continue
                problems += [f'{node.module} has no {alias.name}' for alias in node.names
                             if not hasattr(module, alias.name)]
        return problems


def check_docs(root: str, patterns: Iterable[str] = DEFAULT_DOC_FILES,
               checker: Optional[DocCommandChecker] = None) -> Tuple[List[DocCommand], List[str]]:
    """All documented commands under ``root`` and the problems found (``file:line: `command`: why``)."""
    checker = checker or DocCommandChecker(root)
    all_commands, problems = [], []
    for path in read_doc_files(root, patterns):
        with open(osp.join(root, path), encoding='utf-8') as f:
            text = f.read()
        commands, snippets = extract_commands(text, path)
        all_commands += commands
        for command in commands:
            problems += [f'{command.where()}: `{command.text}`: {p}' for p in checker.check(command)]
        for snippet in snippets:
            problems += [f'{snippet.path}:{snippet.line}: python snippet: {p}' for p in checker.check_snippet(snippet)]
        for line, named in extract_paths(text):
            problems += [f'{path}:{line}: path `{named}`: {p}' for p in checker.check_path(named)]
        for line, target in extract_links(text):
            problems += [f'{path}:{line}: link ({target}): {p}' for p in checker.check_link(path, target)]
    return all_commands, problems


# ---------------------------------------------------------------------------------------- running
def run_command(command: str, root: str, timeout: float, log: Callable[[str], None] = print) -> str:
    """Run one documented command in a shell in ``root`` (a leading ``python`` is this interpreter); '' when
    it exits 0, else what happened (exit status and the end of its output, or the timeout). ``log`` gets a
    line with the run time of each command that finished."""
    text = re.sub(r'^(python3?|\.venv/bin/python)(?=\s)', lambda m: sys.executable, command.strip())
    start = time.time()
    try:
        done = subprocess.run(text, shell=True, cwd=root, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f'did not finish in {timeout:.0f} s'
    log(f'ran in {time.time() - start:.1f} s: {command}')
    if done.returncode != 0:
        return f'exit status {done.returncode}: {(done.stdout + done.stderr)[-2000:]}'
    return ''


def run_matching_commands(commands: Iterable[DocCommand], pattern: str, root: str, timeout: float = 600,
                          log: Callable[[str], None] = print) -> List[str]:
    """Run each distinct command of ``commands`` whose text matches the regular expression ``pattern``
    (:func:`run_command`, in ``root``); the problems (``file:line: `command`: why``), one when nothing
    matches."""
    problems, seen = [], set()
    for command in commands:
        if re.search(pattern, command.text) and command.text not in seen:
            seen.add(command.text)
            failure = run_command(command.text, root, timeout, log)
            if failure:
                problems.append(f'{command.where()}: `{command.text}`: {failure}')
    if not seen:
        problems.append(f'--run {pattern!r} matches no documented command')
    return problems
