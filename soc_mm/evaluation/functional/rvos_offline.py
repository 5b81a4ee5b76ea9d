"""One entry for the offline RVOS evaluators of PNG predictions (``tools/analysis_tools/eval_rvos.py``).

Each benchmark's evaluator returns ``(summary, rows)``: ``summary`` in the official script's keys and scale
(nested objects for the benchmarks that report groups: ReVOS ``referring`` / ``reason`` / ``overall``,
Long-RVOS ``static`` / ``dynamic`` / ``hybrid`` / ``overall``, Ref-DAVIS17 ``anno_<a>``), ``rows`` one dict
per expression (Ref-DAVIS17: per annotator and object) for error analysis:

========== ================================================ ============================================
benchmark  evaluator                                         ``masks``
========== ================================================ ============================================
mevis      :func:`.mevis.evaluate_mevis_predictions`         ``mask_dict.json`` (v1 and v2)
revos      ``.revos.evaluate_revos_predictions``             ``mask_dict.json`` (+ ``mask_dict_foreground.json``)
long-rvos  ``.long_rvos.evaluate_long_rvos_predictions``     the ``Annotations/`` folder
ref-davis17 :func:`.ref_davis.evaluate_ref_davis_predictions` the ground-truth index PNG folder
========== ================================================ ============================================
"""
import csv
import json
import os.path as osp
from dataclasses import dataclass, field
from numbers import Number
from typing import Dict, List, Optional, Sequence, Tuple

BENCHMARKS = ('mevis', 'revos', 'long-rvos', 'ref-davis17')
PER_EXPRESSION_FORMATS = ('.csv', '.json')


class BenchmarkUnavailable(RuntimeError):
    """The evaluator of a benchmark is not part of this soc_mm."""


@dataclass
class OfflineResult:
    """``summary`` (official keys and scale), ``rows`` (per expression) and ``notes`` (lines about what was
    evaluated: counts, missing predictions, the release read)."""
    summary: dict
    rows: List[dict]
    notes: List[str] = field(default_factory=list)


def _mevis(pred_dir, meta_expressions, masks, workers, mevis_version) -> OfflineResult:
    from soc_mm.datasets.mevis import resolve_mevis_meta_file
    from .mevis import evaluate_mevis_predictions, mevis_missing_summary
    meta_file, version = resolve_mevis_meta_file(meta_expressions, mevis_version)
    result = evaluate_mevis_predictions(pred_dir, meta_file, masks, workers=max(int(workers), 1))
    notes = [f'MeViS {version or "(release not named by the file)"}: {meta_file}',
             f'expressions: {len(result.per_expression)} in {result.num_videos} videos '
             f'({result.num_no_target} refer to no object)',
             mevis_missing_summary(result.missing_videos, result.num_videos, result.num_missing_expressions)]
    if result.extra_entries:
        notes.append(f'not in the meta file (not evaluated): {len(result.extra_entries)} entries of {pred_dir}, '
                     f'e.g. {result.extra_entries[:5]}')
    return OfflineResult(dict(result.metrics), result.rows, notes)


def _import_evaluator(module: str, function: str, benchmark: str):
    import importlib
    try:
        mod = importlib.import_module(f'soc_mm.evaluation.functional.{module}')
    except ModuleNotFoundError as error:
        if error.name != f'soc_mm.evaluation.functional.{module}':
            raise
        raise BenchmarkUnavailable(f'{benchmark}: this soc_mm has no evaluator for it '
                                   f'(soc_mm/evaluation/functional/{module}.py)') from None
    return getattr(mod, function)


def _as_result(returned) -> OfflineResult:
    """An evaluator's ``(summary, rows)`` (or ``(summary, rows, notes)``) as an :class:`OfflineResult`."""
    if isinstance(returned, OfflineResult):
        return returned
    summary, rows, *rest = returned
    notes = list(rest[0]) if rest else []
    return OfflineResult(dict(summary), list(rows), notes)


def evaluate_benchmark(benchmark: str, pred_dir: str, meta_expressions: str, masks: str, *,
                       foreground_masks: Optional[str] = None, workers: int = 0,
                       only_predicted_frames: bool = False, mevis_version: Optional[str] = None) -> OfflineResult:
    """Score a prediction folder on ``benchmark`` (one of :data:`BENCHMARKS`).

    Args:
        benchmark (str): ``'mevis'``, ``'revos'``, ``'long-rvos'`` or ``'ref-davis17'``.
        pred_dir (str): PNG predictions in the benchmark's layout (MeViS, ReVOS, Long-RVOS:
            ``<video>/<exp_id>/<frame>.png``; Ref-DAVIS17: ``anno_<a>/<video>/<frame>.png`` index maps).
        meta_expressions (str): the split's expression file (MeViS: or its split folder).
        masks (str): the ground truth (see the module's table).
        foreground_masks (str, optional): ReVOS ``mask_dict_foreground.json`` (robustness score).
        workers (int): worker processes (0: the evaluator's default, in this process).
        only_predicted_frames (bool): Long-RVOS: score only the frames that have a prediction PNG
            (``eval_pred_frame.py``'s rule, key-frame evaluation).
        mevis_version (str, optional): MeViS ``'v1'`` / ``'v2'`` when ``meta_expressions`` is a split folder
            holding both files.

    Raises:
        ValueError: an option that the benchmark does not take; the evaluators' errors (naming files and
        fields); :class:`BenchmarkUnavailable`.
    """
    if benchmark not in BENCHMARKS:
        raise ValueError(f'unknown benchmark {benchmark!r}; expected one of {", ".join(BENCHMARKS)}')
    if foreground_masks is not None and benchmark != 'revos':
        raise ValueError(f'--foreground-masks is a ReVOS option ({benchmark} has no foreground masks)')
    if only_predicted_frames and benchmark != 'long-rvos':
        raise ValueError(f'--only-predicted-frames is a Long-RVOS option ({benchmark} scores every frame)')
    if mevis_version is not None and benchmark != 'mevis':
        raise ValueError(f'--mevis-version is a MeViS option, not one of {benchmark}')
    if workers < 0:
        raise ValueError(f'workers must be >= 0, got {workers}')
    if benchmark == 'mevis':
        return _mevis(pred_dir, meta_expressions, masks, workers, mevis_version)
    if benchmark == 'ref-davis17':
        from .ref_davis import evaluate_ref_davis_predictions
        return _as_result(evaluate_ref_davis_predictions(pred_dir, meta_expressions, masks, workers=workers))
    if benchmark == 'revos':
        evaluate = _import_evaluator('revos', 'evaluate_revos_predictions', benchmark)
        result = _as_result(evaluate(pred_dir, meta_expressions, masks, foreground_masks=foreground_masks,
                                     workers=workers))
        # the number of expressions each official rule touched: a note, not one of the official keys
        counts = result.summary.pop('rule_counts', None) or {}
        result.notes += [f'rule_counts/{key}: {value}' for key, value in counts.items()]
        return result
    evaluate = _import_evaluator('long_rvos', 'evaluate_long_rvos_predictions', benchmark)
    result = _as_result(evaluate(pred_dir, meta_expressions, masks, workers=workers,
                                 only_predicted_frames=only_predicted_frames))
    counts = _import_evaluator('long_rvos', 'long_rvos_counts', benchmark)(result.rows)
    result.notes += [f'{key}: {value}' for key, value in counts.items()]
    return result


def flatten_metrics(summary: dict, prefix: str = '') -> List[Tuple[str, object]]:
    """``[(name, value)]`` of every reported number, nested objects joined with ``/``
    (``{'overall': {'J': 0.5}}`` -> ``[('overall/J', 0.5)]``), in the summary's order."""
    items = []
    for key, value in summary.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            items.extend(flatten_metrics(value, prefix=f'{name}/'))
        else:
            items.append((name, value))
    return items


def metric_lines(summary: dict) -> List[str]:
    """One ``NAME: value`` line per reported number (floats with ``repr``: every digit)."""
    return [f'{name}: {value!r}' if isinstance(value, Number) else f'{name}: {value}'
            for name, value in flatten_metrics(summary)]


def check_per_expression_path(path: str) -> None:
    """The per-expression file must end in ``.csv`` or ``.json``."""
    if osp.splitext(path)[1].lower() not in PER_EXPRESSION_FORMATS:
        raise ValueError(f'{path}: the per-expression file must end in .csv or .json')


def _jsonable(value):
    if hasattr(value, 'item') and not isinstance(value, (list, dict, str)):
        return value.item()  # numpy scalars
    return value


def summary_json(summary: dict) -> dict:
    """The summary with plain Python numbers (what ``--out`` writes)."""
    return {k: summary_json(v) if isinstance(v, dict) else _jsonable(v) for k, v in summary.items()}


def write_per_expression(rows: Sequence[dict], path: str) -> None:
    """Rows to ``path``: ``.json`` a list of objects, ``.csv`` one line per row (columns: every key, in
    the order they first appear)."""
    check_per_expression_path(path)
    rows = [{k: _jsonable(v) for k, v in row.items()} for row in rows]
    if path.lower().endswith('.json'):
        with open(path, 'w') as f:
            json.dump(rows, f, indent=1)
        return
    columns: Dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
