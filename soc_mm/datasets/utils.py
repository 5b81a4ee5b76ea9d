"""Helpers shared by the RVOS datasets: path checks with layout hints, json/csv readers, text cleanup."""
import csv
import json
import os.path as osp
from typing import Dict, List, Optional

from mmengine.logging import MMLogger


def clean_expression(text: str) -> str:
    """Lower-case and collapse whitespace, as SOC does before tokenisation."""
    return ' '.join(str(text).lower().split())


def require_path(path: str, what: str, layout: str, is_dir: Optional[bool] = None) -> str:
    """Return ``path`` or raise ``FileNotFoundError`` naming it and the layout expected."""
    ok = osp.isdir(path) if is_dir else osp.isfile(path) if is_dir is False else osp.exists(path)
    if not ok:
        kind = 'directory' if is_dir else 'file' if is_dir is False else 'path'
        raise FileNotFoundError(f'{what}: {kind} not found: {path}\nExpected layout:\n{layout}')
    return path


def load_json(path: str, what: str, layout: str) -> dict:
    """Read a json file; missing or malformed files raise errors that name the file."""
    require_path(path, what, layout, is_dir=False)
    try:
        with open(path, 'r') as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'{what}: {path} is not valid json ({e})') from e


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
