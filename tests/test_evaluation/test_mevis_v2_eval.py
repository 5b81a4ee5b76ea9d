"""MeViS v2 (TPAMI 2025) evaluation: the synthetic v2 valid_u split scored by ``evaluate_mevis_predictions``,
``MeViSMetric`` and ``tools/analysis_tools/eval_rvos.py mevis`` equals the official rules (written
independently in rvos_official_rules.py) to 1e-9, with the v2 cases: expressions that refer to no object or
to several, objects that leave the video, empty predictions and a video without predictions; v1 and v2 files
of the same split give the same numbers; a split folder with both files needs the release named."""
import csv
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from rvos_official_rules import mevis_official
from soc_mm.datasets.synthetic_mevis_v2 import generate_mevis_v2
from soc_mm.evaluation import MeViSMetric
from soc_mm.evaluation.functional.mevis import evaluate_mevis_predictions
from soc_mm.evaluation.functional.rvos_offline import evaluate_benchmark
from soc_mm.testing.eval_benchmark import write_mevis_style_predictions

TOL = 1e-9


@pytest.fixture(scope='module')
def v2_split(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('mevis_v2'))
    manifest = generate_mevis_v2(root, num_train=0, num_valid_u=4, num_valid=0, num_frames=6, size=(40, 56),
                                 exit_prob=0.9, seed=3)
    split = osp.join(root, 'valid_u')
    meta, masks = osp.join(split, 'meta_expressions_v2.json'), osp.join(split, 'mask_dict.json')
    pred_dir = osp.join(root, 'pred')
    written = write_mevis_style_predictions(meta, masks, pred_dir, seed=5, num_missing_videos=1,
                                            empty_expression_prob=0.3)
    return dict(root=root, split=split, meta=meta, masks=masks, pred=pred_dir, manifest=manifest['valid_u'],
                written=written)


def test_split_covers_the_v2_cases(v2_split):
    exps = [e for v in v2_split['manifest'].values() for e in v['expressions'].values()]
    assert sum(e['no_target'] for e in exps) >= 8
    assert sum(e['multi_object'] for e in exps) >= 8
    objects = [o for v in v2_split['manifest'].values() for o in v['objects'].values()]
    assert any(0 < len(o['frames']) < 6 for o in objects)  # an object leaves the video
    assert v2_split['written']['missing_videos'] == ['valid_u_0003']
    assert not osp.exists(osp.join(v2_split['split'], 'meta_expressions.json'))  # v2 only
    meta = json.load(open(v2_split['meta']))
    assert all('audio' in e for v in meta['videos'].values() for e in v['expressions'].values())


@pytest.mark.parametrize('workers', [1, 2])
def test_evaluator_equals_the_official_rules(v2_split, workers):
    official, (j, f, jf) = mevis_official(v2_split['meta'], v2_split['masks'], v2_split['pred'])
    result = evaluate_mevis_predictions(v2_split['pred'], v2_split['meta'], v2_split['masks'], workers=workers)
    assert result.version == 'v2' and result.meta_file == v2_split['meta']
    assert abs(result.metrics['J'] - j) < TOL and abs(result.metrics['F'] - f) < TOL
    assert abs(result.metrics['J&F'] - jf) < TOL
    assert len(result.per_expression) == len(official)
    for (video, exp), (ej, ef) in result.per_expression.items():
        oj, of = official[f'{video}_{exp}']
        assert abs(ej - oj) < TOL and abs(ef - of) < TOL, (video, exp)
    rows = {(r['video'], r['exp_id']): r for r in result.rows}
    meta = json.load(open(v2_split['meta']))['videos']
    assert result.num_no_target == sum(not e['anno_id'] for v in meta.values() for e in v['expressions'].values())
    for (video, exp), row in rows.items():
        assert row['num_objects'] == len(meta[video]['expressions'][exp]['anno_id'])
        assert row['predicted'] == (video != 'valid_u_0003')
        assert row['exp'] == meta[video]['expressions'][exp]['exp']
        assert abs(row['J&F'] - (row['J'] + row['F']) / 2) < TOL
    # the no-target expressions: 1 per frame when predicted empty, so an empty prediction scores 1
    no_target = [r for r in result.rows if r['num_objects'] == 0 and r['predicted']]
    assert no_target and all(0.0 <= r['J'] <= 1.0 for r in no_target)


def test_v1_and_v2_files_of_one_split_score_the_same(v2_split, tmp_path):
    split = str(tmp_path / 'valid_u')
    os.makedirs(split)
    shutil.copy(v2_split['masks'], split)
    shutil.copy(v2_split['meta'], osp.join(split, 'meta_expressions.json'))
    v1 = evaluate_mevis_predictions(v2_split['pred'], osp.join(split, 'meta_expressions.json'), v2_split['masks'])
    v2 = evaluate_mevis_predictions(v2_split['pred'], v2_split['meta'], v2_split['masks'])
    assert v1.version == 'v1' and v1.metrics == v2.metrics
    # the split folder holding both files: the release must be named
    shutil.copy(v2_split['meta'], split)
    with pytest.raises(ValueError, match=r"both meta_expressions.json \(MeViS v1\) and meta_expressions_v2.json"):
        evaluate_benchmark('mevis', v2_split['pred'], split, v2_split['masks'])
    named = evaluate_benchmark('mevis', v2_split['pred'], split, v2_split['masks'], mevis_version='v2')
    assert named.summary == v2.metrics
    assert any('MeViS v2' in note for note in named.notes)
    os.remove(osp.join(split, 'meta_expressions.json'))
    detected = evaluate_benchmark('mevis', v2_split['pred'], split, v2_split['masks'])  # only v2 left
    assert detected.summary == v2.metrics
    with pytest.raises(FileNotFoundError, match=r'MeViS v1: .*meta_expressions.json not found \(the folder has '
                       r'the v2 file\)'):
        evaluate_benchmark('mevis', v2_split['pred'], split, v2_split['masks'], mevis_version='v1')


def _run_tool(*args):
    return subprocess.run([sys.executable, osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'eval_rvos.py'), *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)


def test_eval_rvos_cli_prints_writes_and_equals_the_official_rules(v2_split, tmp_path):
    official, (j, f, jf) = mevis_official(v2_split['meta'], v2_split['masks'], v2_split['pred'])
    out, rows_csv, rows_json = (str(tmp_path / n) for n in ('results.json', 'rows.csv', 'rows.json'))
    run = _run_tool('mevis', v2_split['pred'], '--meta-expressions', v2_split['meta'], '--masks', v2_split['masks'],
                    '--workers', '2', '--out', out, '--per-expression', rows_csv)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    assert [line.split(':')[0] for line in lines] == ['J', 'F', 'J&F']
    printed = {line.split(': ')[0]: float(line.split(': ')[1]) for line in lines}
    for key, value in zip(('J', 'F', 'J&F'), (j, f, jf)):
        assert abs(printed[key] - value) < TOL
    assert 'missing videos: 1 of 4' in run.stderr and 'refer to no object' in run.stderr
    with open(out) as fh:
        assert json.load(fh) == printed  # official keys and scale (fractions)
    with open(rows_csv, newline='') as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(official)
    for row in rows:
        oj, of = official[f'{row["video"]}_{row["exp_id"]}']
        assert abs(float(row['J']) - oj) < TOL and abs(float(row['F']) - of) < TOL
    run = _run_tool('mevis', v2_split['pred'], '--meta-expressions', v2_split['split'], '--masks', v2_split['masks'],
                    '--per-expression', rows_json)
    assert run.returncode == 0, run.stderr[-3000:]
    with open(rows_json) as fh:
        assert {f'{r["video"]}_{r["exp_id"]}' for r in json.load(fh)} == set(official)


def test_eval_rvos_cli_usage_errors(v2_split, tmp_path):
    base = ['mevis', v2_split['pred'], '--meta-expressions', v2_split['meta'], '--masks', v2_split['masks']]
    cases = [(['--foreground-masks', v2_split['masks']], '--foreground-masks is a ReVOS option'),
             (['--only-predicted-frames'], '--only-predicted-frames is a Long-RVOS option'),
             (['--per-expression', str(tmp_path / 'rows.txt')], 'must end in .csv or .json'),
             (['--out', str(tmp_path)], f'--out {tmp_path} is a folder')]
    for extra, message in cases:
        run = _run_tool(*base, *extra)
        assert run.returncode != 0 and message in run.stderr, (extra, run.stderr[-2000:])
    run = _run_tool('mevis', str(tmp_path / 'nowhere'), '--meta-expressions', v2_split['meta'], '--masks',
                    v2_split['masks'])
    assert run.returncode != 0 and 'prediction folder' in run.stderr and 'not found' in run.stderr
    # a missing PNG in a predicted video is an error naming it (the official script would drop the expression)
    broken = str(tmp_path / 'pred')
    shutil.copytree(v2_split['pred'], broken)
    os.remove(osp.join(broken, 'valid_u_0000', '0', '00003.png'))
    run = _run_tool('mevis', broken, '--meta-expressions', v2_split['meta'], '--masks', v2_split['masks'])
    assert run.returncode != 0 and osp.join('valid_u_0000', '0', '00003.png') in run.stderr


def test_metric_scores_the_v2_file_like_the_evaluator(v2_split):
    from soc_mm.evaluation.functional.mevis import read_mevis_prediction
    meta = json.load(open(v2_split['meta']))['videos']
    metric = MeViSMetric(meta_file=v2_split['meta'], mask_dict_file=v2_split['masks'])
    for video_id, video in meta.items():
        if video_id == 'valid_u_0003':
            continue
        for exp_id in video['expressions']:
            pred = read_mevis_prediction(osp.join(v2_split['pred'], video_id, exp_id), video['frames'])
            metric.process({}, [dict(video_id=video_id, exp_id=exp_id, frame_ids=video['frames'],
                                     pred_masks=pred, ori_shape=pred.shape[1:])])
    metrics = metric.compute_metrics(metric.results)
    result = evaluate_mevis_predictions(v2_split['pred'], v2_split['meta'], v2_split['masks'])
    for key in ('J', 'F', 'J&F'):
        assert abs(metrics[key] - result.metrics[key]) < TOL
    assert np.isfinite(list(metrics.values())).all()
