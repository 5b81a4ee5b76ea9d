"""tools/analysis_tools/eval_rvos.py on ReVOS and Long-RVOS: the printed ``NAME: value`` lines and ``--out`` hold
the official keys and scale and equal the official rules (the independent implementations of
tests/test_evaluation/test_revos_eval.py and test_long_rvos_eval.py) to 1e-9; ``--per-expression`` rows,
the rule counts as notes, ``--only-predicted-frames``, and a benchmark whose evaluator is absent. The MeViS and
Ref-DAVIS17 paths: tests/test_evaluation/test_mevis_v2_eval.py and test_ref_davis_offline.py."""
import csv
import importlib.util
import json
import math
import os.path as osp
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, TESTS_DIR



def _evaluation_tests(name):
    """tests/test_evaluation/<name>.py (its independent implementation of the official rules and its data),
    loaded from its file."""
    spec = importlib.util.spec_from_file_location(f'_eval_rvos_{name}', osp.join(TESTS_DIR, 'test_evaluation',
                                                                                 f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOL = 1e-9


def _run(*args):
    return subprocess.run([sys.executable, osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'eval_rvos.py'), *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)


def _printed(stdout):
    values = {}
    for line in stdout.strip().splitlines():
        name, value = line.split(': ')
        values[name] = float(value)
    return values


@pytest.fixture(scope='module')
def revos(tmp_path_factory):
    rules = _evaluation_tests('test_revos_eval')
    root = str(tmp_path_factory.mktemp('revos'))
    data = rules.make_revos_split(root)
    data['pred_dir'] = rules.write_predictions(data, osp.join(root, 'pred'))
    return rules, data


def test_revos(revos, tmp_path):
    rules, data = revos
    _, tables = rules.reference_revos(data, data['pred_dir'])
    out, rows_file = str(tmp_path / 'revos.json'), str(tmp_path / 'rows.csv')
    run = _run('revos', data['pred_dir'], '--meta-expressions', data['meta'], '--masks', data['masks'],
               '--foreground-masks', data['foreground'], '--workers', '2', '--out', out, '--per-expression', rows_file)
    assert run.returncode == 0, run.stderr[-3000:]
    printed = _printed(run.stdout)
    assert list(printed) == [f'{t}/{k}' for t in ('referring', 'reason', 'overall') for k in ('J', 'F', 'A', 'R', 'JF')]
    for name, value in printed.items():
        table, key = name.split('/')
        expected = tables[table][key]
        assert (math.isnan(value) and math.isnan(expected)) or abs(value - expected) <= TOL, name
    written = json.load(open(out))
    assert list(written) == ['referring', 'reason', 'overall']  # VISA's object, percent; no extra key
    assert written['overall']['JF'] == pytest.approx(printed['overall/JF'], abs=TOL)
    assert 'rule_counts/missing_video: ' in run.stderr and 'rule_counts/no_target_excluded: ' in run.stderr
    with open(rows_file, newline='') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == sum(len(v['expressions']) for v in data['videos'].values())


@pytest.fixture(scope='module')
def long_rvos(tmp_path_factory):
    rules = _evaluation_tests('test_long_rvos_eval')
    return rules, rules.make_long_rvos_split(str(tmp_path_factory.mktemp('long_rvos')))


@pytest.mark.parametrize('key_frames', [False, True])
def test_long_rvos(long_rvos, tmp_path, key_frames):
    rules, data = long_rvos
    tables, scores = rules.reference_summary(data, key_frames=key_frames)
    out, rows_file = str(tmp_path / 'long.json'), str(tmp_path / 'rows.json')
    pred = data['pred_key'] if key_frames else data['pred']
    run = _run('long-rvos', pred, '--meta-expressions', data['meta'], '--masks', data['ann'], '--out', out,
               '--per-expression', rows_file, *(['--only-predicted-frames'] if key_frames else []))
    assert run.returncode == 0, run.stderr[-3000:]
    printed = _printed(run.stdout)
    assert list(printed) == [f'{t}/{k}' for t in ('static', 'dynamic', 'hybrid', 'overall')
                             for k in ('J', 'F', 'J&F', 'tIoU', 'vIoU')]
    for name, value in printed.items():
        table, key = name.split('/')
        assert abs(value - tables[table][key]) <= TOL, name
    assert json.load(open(out)) == {t: {k: printed[f'{t}/{k}'] for k in ('J', 'F', 'J&F', 'tIoU', 'vIoU')}
                                    for t in ('static', 'dynamic', 'hybrid', 'overall')}
    rows = json.load(open(rows_file))
    assert [(r['video'], r['exp_id']) for r in rows] == list(scores)
    assert 'missing_videos: ' in run.stderr


def test_an_absent_evaluator_is_named(tmp_path, monkeypatch):
    from soc_mm.evaluation.functional import rvos_offline
    monkeypatch.setitem(sys.modules, 'soc_mm.evaluation.functional.revos', None)  # its import fails: absent
    with pytest.raises(rvos_offline.BenchmarkUnavailable,
                       match=r'revos: this soc_mm has no evaluator for it \(soc_mm/evaluation/functional/revos.py\)'):
        rvos_offline.evaluate_benchmark('revos', str(tmp_path), 'm.json', 'masks.json')
    with pytest.raises(ValueError, match="unknown benchmark 'davis'"):
        rvos_offline.evaluate_benchmark('davis', str(tmp_path), 'm.json', 'masks.json')
    assert rvos_offline.flatten_metrics({'a': 1, 'b': {'c': 2.5, 'd': {'e': 3}}}) == [('a', 1), ('b/c', 2.5),
                                                                                        ('b/d/e', 3)]
