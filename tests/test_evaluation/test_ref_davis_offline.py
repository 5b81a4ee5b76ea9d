"""Ref-DAVIS17 offline evaluation (``eval_rvos.py ref-davis17``): per-annotator index-PNG results scored with
the DAVIS-2017 "unsupervised" rules (written independently in rvos_official_rules.py) to 1e-9: void pixels,
predicted ids in another order than the ground truth's, missing and extra predicted objects, an object absent
from the first frame, empty predictions; the reported table is the mean of the four annotators'."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT
from rvos_official_rules import davis_unsupervised_official, write_png
from soc_mm.datasets.synthetic import davis_palette, generate_ref_davis
from soc_mm.evaluation.functional.ref_davis import DAVIS_TABLE_KEYS, evaluate_ref_davis_predictions

TOL = 1e-9


def _palette_png(path, index_map):
    os.makedirs(osp.dirname(path), exist_ok=True)
    image = Image.fromarray(index_map.astype(np.uint8), mode='P')
    image.putpalette(davis_palette())
    image.save(path)


@pytest.fixture(scope='module')
def davis(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('ref_davis'))
    generate_ref_davis(root, num_valid=3, num_frames=6, size=(36, 48), num_objects=(2, 3), seed=4)
    meta = osp.join(root, 'meta_expressions', 'valid', 'meta_expressions.json')
    videos = {v: d['frames'] for v, d in json.load(open(meta))['videos'].items()}
    gt_dir = osp.join(root, 'gt')
    rng = np.random.default_rng(0)
    for i, (video, frames) in enumerate(videos.items()):
        for t, frame in enumerate(frames):
            gt = np.array(Image.open(osp.join(root, 'valid', 'Annotations', video, f'{frame}.png')))
            if t % 2:  # void band (255) across the frame
                gt[rng.integers(0, 30):][:3] = 255
            if i == 2 and t == 0:  # the last object is absent from the first frame: not scored
                gt[gt == gt.max()] = 0
            _palette_png(osp.join(gt_dir, video, f'{frame}.png'), gt)
    pred_dir = osp.join(root, 'pred')
    for a in range(4):
        for i, (video, frames) in enumerate(videos.items()):
            ids = np.unique(np.array(Image.open(osp.join(root, 'valid', 'Annotations', video, f'{frames[0]}.png'))))
            ids = [int(k) for k in ids if k]
            order = rng.permutation(len(ids)) + 1  # predicted id of each ground-truth object
            for t, frame in enumerate(frames):
                gt = np.array(Image.open(osp.join(root, 'valid', 'Annotations', video, f'{frame}.png')))
                pred = np.zeros_like(gt)
                for k, obj in enumerate(ids):
                    if a == 1 and k == 0:
                        continue  # a missing object
                    mask = gt == obj
                    if (t + k + a) % 3 == 1:
                        mask = np.roll(mask, (1 + a, -2), axis=(0, 1))
                    elif (t + k + a) % 5 == 4:
                        mask[:] = False
                    pred[mask] = order[k]
                if a == 2:  # an extra object
                    pred[:4, :6] = len(ids) + 1
                if a == 3 and i == 0:  # nothing predicted at all
                    pred[:] = 0
                (write_png if a % 2 else _palette_png)(osp.join(pred_dir, f'anno_{a}', video, f'{frame}.png'), pred)
    return dict(root=root, meta=meta, videos=videos, gt=gt_dir, pred=pred_dir)


@pytest.mark.parametrize('workers', [0, 2])
def test_equals_the_davis_unsupervised_rules(davis, workers):
    summary, rows = evaluate_ref_davis_predictions(davis['pred'], davis['meta'], davis['gt'], workers=workers)
    tables = []
    for a in range(4):
        table, objects = davis_unsupervised_official(davis['gt'], osp.join(davis['pred'], f'anno_{a}'),
                                                     davis['videos'])
        tables.append(table)
        for key in DAVIS_TABLE_KEYS:
            assert abs(summary[f'anno_{a}'][key] - table[key]) < TOL, (a, key)
        ours = [r for r in rows if r['annotator'] == a]
        assert len(ours) == len(objects)
        for row, obj in zip(ours, objects):
            assert (row['video'], row['object']) == (obj['video'], obj['object'])
            assert abs(row['J-Mean'] - obj['J']) < TOL and abs(row['F-Mean'] - obj['F']) < TOL
    for key in DAVIS_TABLE_KEYS:
        assert abs(summary[key] - np.mean([t[key] for t in tables])) < TOL
    # the cases were there: an annotator scoring less than another, and the object absent from frame 0 unscored
    assert len({round(t['J&F-Mean'], 6) for t in tables}) == 4
    first = [np.array(Image.open(osp.join(davis['gt'], v, f'{f[0]}.png'))) for v, f in davis['videos'].items()]
    num_objects = sum(int(np.where(m == 255, 0, m).max()) for m in first)  # N = the largest id of frame 0
    assert len([r for r in rows if r['annotator'] == 0]) == num_objects


def test_cli_and_errors(davis, tmp_path):
    out = str(tmp_path / 'davis.json')
    run = subprocess.run([sys.executable, 'tools/analysis_tools/eval_rvos.py', 'ref-davis17', davis['pred'],
                          '--meta-expressions', davis['meta'], '--masks', davis['gt'], '--out', out],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    names = [line.split(': ')[0] for line in run.stdout.splitlines()]
    assert names[:7] == list(DAVIS_TABLE_KEYS) and 'anno_3/J&F-Mean' in names and len(names) == 35
    summary, _ = evaluate_ref_davis_predictions(davis['pred'], davis['meta'], davis['gt'])
    assert json.load(open(out)) == summary
    broken = str(tmp_path / 'pred')
    shutil.copytree(davis['pred'], broken)
    shutil.rmtree(osp.join(broken, 'anno_3'))
    with pytest.raises(FileNotFoundError, match='anno_3'):
        evaluate_ref_davis_predictions(broken, davis['meta'], davis['gt'])
    shutil.copytree(osp.join(davis['pred'], 'anno_3'), osp.join(broken, 'anno_3'))
    video, frames = next(iter(davis['videos'].items()))
    os.remove(osp.join(broken, 'anno_2', video, f'{frames[1]}.png'))
    with pytest.raises(FileNotFoundError, match=osp.join('anno_2', video, f'{frames[1]}.png')):
        evaluate_ref_davis_predictions(broken, davis['meta'], davis['gt'])
    write_png(osp.join(broken, 'anno_2', video, f'{frames[1]}.png'),
              np.full(np.array(Image.open(osp.join(davis['gt'], video, f'{frames[1]}.png'))).shape, 255, np.uint8))
    with pytest.raises(ValueError, match='more than the 20 proposals'):
        evaluate_ref_davis_predictions(broken, davis['meta'], davis['gt'])
