"""Helpers shared by the RVOS datasets: path checks with layout hints, json/csv readers, text cleanup and
the checks of annotation fields (every error names the annotation file, the field and what was expected)."""
import csv
import json
import os.path as osp
import re
from typing import Any, Dict, List, Optional, Sequence, Sized, Tuple, Union

from mmengine.logging import MMLogger


def clean_expression(text: str) -> str:
    """Lower-case and collapse whitespace, as SOC does before tokenisation."""
    return ' '.join(str(text).lower().split())


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'


def check_expression(text: Any, source: str, video_id: Any, exp_id: Any) -> str:
    """The cleaned referring expression (``clean_expression``), checked to be a non-empty string.

    Args:
        text: the expression as read from the annotation file.
        source (str): the annotation file (named in the error).
        video_id: the video (or image) the expression belongs to.
        exp_id: the expression's id in the file (or its row).

    Raises:
        ValueError: ``text`` is not a string, or is empty / whitespace only (the text encoder could not
            encode it: better at load time than mid-training).
    """
    where = f'{source}: video {video_id!r} expression {exp_id!r}'
    if not isinstance(text, str):
        raise ValueError(f'{where}: the referring expression must be a string, got '
                         f'{type(text).__name__} {_short_repr(text)}')
    cleaned = clean_expression(text)
    if not cleaned:
        raise ValueError(f'{where}: empty referring expression {text!r} (expected a non-empty sentence)')
    return cleaned


def json_key(key: Any) -> str:
    """A key as it is written in a json file (``"abc"``), to name a field such as ``videos["v1"]["frames"]``."""
    return json.dumps(str(key))


def check_dict(value: Any, source: str, field: str, expected: str) -> dict:
    """Return ``value`` if it is a dict, else ``ValueError`` naming the file, the field and ``expected``."""
    if not isinstance(value, dict):
        raise ValueError(f'{source}: field {field} must be {expected}, got {type(value).__name__} '
                         f'{_short_repr(value)}')
    return value


def check_key(mapping: dict, key: str, source: str, field: str) -> Any:
    """``mapping[key]``, or ``ValueError`` naming the file and the missing field ``<field>.<key>``."""
    if key not in mapping:
        raise ValueError(f'{source}: field {field} lacks the key {json_key(key)} '
                         f'(found keys {sorted(map(str, mapping))[:8]})')
    return mapping[key]


def check_not_empty(value: Sized, source: str, field: str, expected: str) -> Sized:
    """Return ``value`` unless it is empty (``ValueError`` naming the file and field)."""
    if len(value) == 0:
        raise ValueError(f'{source}: field {field} is empty, expected {expected}')
    return value


def parse_int(value: Any, source: str, field: str) -> int:
    """An integer field given as int or decimal string (``3``, ``"3"``); anything else is a ``ValueError``
    naming the file and the field."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r'[+-]?[0-9]{1,18}', value.strip()):
        return int(value.strip())  # ASCII digits only: int() also takes '1_0' and other scripts' digits
    raise ValueError(f'{source}: field {field} must be an integer (or a string of one), got '
                     f'{type(value).__name__} {_short_repr(value)}')


def first_repeated(items: Sequence) -> Optional[Any]:
    """The first item of ``items`` that appeared before (None: all distinct), e.g. a frame listed twice."""
    seen = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


def require_path(path: str, what: str, layout: str, is_dir: Optional[bool] = None) -> str:
    """Return ``path`` or raise ``FileNotFoundError`` naming it and the layout expected."""
    ok = osp.isdir(path) if is_dir else osp.isfile(path) if is_dir is False else osp.exists(path)
    if not ok:
        kind = 'directory' if is_dir else 'file' if is_dir is False else 'path'
        raise FileNotFoundError(f'{what}: {kind} not found: {path}\nExpected layout:\n{layout}')
    return path


class DuplicateKeyError(ValueError):
    """A json object of an annotation file names the same key twice (``json.load`` would silently keep the
    last value: an expression, a video or an annotation would be lost)."""


class _DuplicateKeys(dict):
    """A parsed json object that had repeated keys (``duplicates``: those keys, in file order)."""
    duplicates: List[str] = []


def _unique_pairs_hook(pairs: List[tuple]) -> dict:
    """``object_pairs_hook`` of :func:`read_json`: the object as a dict, marked when a key repeats."""
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen, duplicates = set(), []
    for key, _ in pairs:
        if key in seen and key not in duplicates:
            duplicates.append(key)
        seen.add(key)
    obj = _DuplicateKeys(obj)
    obj.duplicates = duplicates
    return obj


def _find_duplicates(value: Any, field: str = '<top level>') -> Optional[Tuple[str, str]]:
    """``(field, key)`` of the first object (depth-first, file order) with a repeated key."""
    if isinstance(value, _DuplicateKeys):
        return field, value.duplicates[0]
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        if isinstance(child, (dict, list)):
            name = f'[{json_key(key)}]' if isinstance(value, dict) else f'[{key}]'
            found = _find_duplicates(child, name if field == '<top level>' else field + name)
            if found:
                return found
    return None


def unreadable_json_error(source: str, error: BaseException) -> ValueError:
    """The error for json text that Python cannot hold (``error``: the ``RecursionError`` of nesting deeper
    than the recursion limit, or the ``ValueError`` of an integer of more than 4300 digits), naming ``source``
    (the file)."""
    if isinstance(error, RecursionError):
        return ValueError(f'{source} nests its json deeper than Python can read (a crafted or damaged file; '
                          'annotation files nest a few levels)')
    return ValueError(f'{source} holds a value json cannot read here ({error})')


def parse_json_unique(text: Union[str, bytes], source: str) -> Any:
    """Parse json text, refusing an object that repeats a key (the one json rule of every annotation file).

    Args:
        text: the json document.
        source (str): the file (or what the text is), named in errors.

    Raises:
        ValueError: not valid json (``json.JSONDecodeError`` is one).
        DuplicateKeyError: an object repeats a key; names ``source``, the object's field (e.g.
            ``["videos"]["v1"]["expressions"]``) and the key.
    """
    found = []

    def hook(pairs):
        obj = _unique_pairs_hook(pairs)
        if isinstance(obj, _DuplicateKeys):
            found.append(obj)
        return obj

    try:
        data = json.loads(text, object_pairs_hook=hook)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise  # the callers name the file with the position
    except (RecursionError, ValueError) as e:
        raise unreadable_json_error(source, e) from None
    if found:
        field, key = _find_duplicates(data)
        raise DuplicateKeyError(f'{source}: the object at {field} has the key {json_key(key)} more than once '
                                '(json readers keep only the last one, silently dropping the others); every '
                                'key of an annotation file must be unique')
    return data


def read_json(path: str, what: str = 'json file') -> Any:
    """Read a json annotation file with :func:`parse_json_unique` (duplicate keys are an error).

    Every reader of annotation, meta and mask json files (datasets, metrics, evaluation tools) goes
    through this function.

    Args:
        path (str): the file.
        what (str): what the file is, named in errors.

    Raises:
        FileNotFoundError: no such file. ValueError: not UTF-8 json, or :class:`DuplicateKeyError`.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what}: file not found: {path}')
    with open(path, 'rb') as f:
        raw = f.read()
    try:
        return parse_json_unique(raw, path)
    except DuplicateKeyError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f'{what}: {path} is not valid json ({e})') from None
    except ValueError as e:  # too deep, or an integer of more than 4300 digits: parse_json_unique names the file
        raise ValueError(f'{what}: {e}') from None


def load_json(path: str, what: str, layout: str) -> dict:
    """Read a json file (:func:`read_json`); missing or malformed files and repeated keys raise errors that
    name the file."""
    require_path(path, what, layout, is_dir=False)
    return read_json(path, what)


def read_csv_rows(path: str, what: str, layout: str, header: bool) -> List[List[str]]:
    """Rows of a comma-separated file (without its header line when ``header``)."""
    require_path(path, what, layout, is_dir=False)
    with open(path, 'r', newline='') as f:
        rows = [r for r in csv.reader(f) if r]
    return rows[1:] if header else rows


def read_csv_dicts(path: str, what: str, layout: str, fields: List[str]) -> List[Dict[str, str]]:
    """Rows of a csv file with a header line, checked to contain ``fields``."""
    require_path(path, what, layout, is_dir=False)
    with open(path, 'r', newline='') as f:
        reader = csv.DictReader(f)
        missing = [k for k in fields if k not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f'{what}: {path} lacks columns {missing} (header: {reader.fieldnames}, '
                             f'expected at least {fields})')
        return [row for row in reader]


def log_skips(name: str, reason: str, skipped: List[str], total: int) -> None:
    """Log (never silently drop) how many items a dataset skipped and why."""
    if skipped:
        examples = ', '.join(skipped[:5]) + (' ...' if len(skipped) > 5 else '')
        MMLogger.get_current_instance().warning(
            f'{name}: skipped {len(skipped)} of {total} {reason} (e.g. {examples})')
