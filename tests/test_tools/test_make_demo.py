"""`make demo` end to end in miniature: synthetic data, tiny text encoder, tools/train.py, tools/test.py
(held-out and shuffled expressions), table and pictures. A few iterations only: checks the plumbing,
not the accuracy (the accuracy target is the full demo's)."""
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import pytest

from conftest import REPO_ROOT as REPO, assert_same_weights
from soc_mm.apis.demo_runner import schedule_overrides
from soc_mm.datasets.synthetic import make_shuffled_expressions_root


def test_shuffled_root_takes_texts_from_other_videos(tmp_path):
    from soc_mm.datasets.synthetic import generate_ref_youtube_vos
    root = str(tmp_path / 'data')
    manifest = generate_ref_youtube_vos(root, num_train=1, num_valid=4, num_test=1, num_frames=2, size=(32, 32))
    texts = make_shuffled_expressions_root(root, str(tmp_path / 'shuffled'), 'ref_youtube_vos', seed=0)
    assert sorted(texts) == sorted([*manifest['valid'], *manifest['test']])
    for vid, exps in texts.items():
        own = {e['exp'] for e in manifest['valid'].get(vid, manifest['test'].get(vid))['expressions'].values()}
        foreign = {e['exp'] for v, d in {**manifest['valid'], **manifest['test']}.items() if v != vid
                   for e in d['expressions'].values()}
        assert set(exps.values()) <= foreign, (vid, exps)
        assert len(exps) == len(own)
    with open(tmp_path / 'shuffled' / 'meta_expressions' / 'valid' / 'meta_expressions.json') as f:
        meta = json.load(f)['videos']
    vid = sorted(manifest['valid'])[0]
    assert [e['obj_id'] for e in meta[vid]['expressions'].values()] == \
        [e['obj_id'] for e in manifest['valid'][vid]['expressions'].values()]  # masks stay the video's own
    assert osp.isdir(tmp_path / 'shuffled' / 'valid' / 'JPEGImages' / vid)
    assert osp.isfile(tmp_path / 'shuffled' / 'meta_expressions' / 'test' / 'meta_expressions.json')
    with pytest.raises(ValueError, match="layout must be one of .*got 'davis'"):
        make_shuffled_expressions_root(root, str(tmp_path / 'other'), 'davis')


def test_schedule_overrides_follow_max_iters():
    opts = dict(o.split('=', 1) for o in schedule_overrides(1000))
    assert opts['train_cfg.max_iters'] == '1000'
    assert opts['param_scheduler.1.end'] == '1000'
    assert int(opts['param_scheduler.0.end']) + int(opts['param_scheduler.1.T_max']) == 1000
    short = dict(o.split('=', 1) for o in schedule_overrides(8))
    assert int(short['param_scheduler.0.end']) == 2 and short['param_scheduler.1.T_max'] == '6'


def test_overrides_are_parsed_as_cfg_options():
    """The demos pass key=value strings to tools/train.py and parse the same strings for their in-process
    predictions (soc_mm.utils.cli.parse_cfg_options: the --cfg-options action)."""
    from soc_mm.utils.cli import ConfigOptionError, parse_cfg_options
    assert parse_cfg_options(['model.test_cfg.score_thr=0.35', 'model.test_cfg.score_thr2=None', 'a.b=[1,2]',
                              'c=True', 'd=/data/root/', 'e=top1']) == {
        'model.test_cfg.score_thr': 0.35, 'model.test_cfg.score_thr2': None, 'a.b': [1, 2], 'c': True,
        'd': '/data/root/', 'e': 'top1'}
    assert parse_cfg_options([]) == {}
    with pytest.raises(ConfigOptionError, match="'model.num_queries' is not key=value"):
        parse_cfg_options(['a=1', 'model.num_queries'])
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'demo', 'run_demo.py'), '--cfg-options', 'oops'],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "'oops' is not key=value" in proc.stderr


def _run_demo(work_dir):
    cmd = [sys.executable, osp.join(REPO, 'tools', 'demo', 'run_demo.py'), '--work-dir', str(work_dir),
           '--max-iters', '6', '--num-train', '6', '--num-valid', '2', '--num-vis', '1', '--threads', '1',
           '--procs', '2',  # the default: data-parallel training and testing (gloo)
           '--cfg-options', 'default_hooks.logger.interval=2']
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_demo_runs_end_to_end_and_a_second_run_gives_the_same_checkpoint_and_table(tmp_path):
    """The plumbing, then the claim of docs/make_demo.md: on one machine, with the same process and thread
    count, the same data seed gives the same checkpoint (every tensor bit for bit) and the same table."""
    work_dir = tmp_path / 'demo'
    out = _run_demo(work_dir)
    # progress of tools/train.py is shown (iterations, losses, ETA), then the table
    assert 'Iter(train) [6/6]' in out and 'eta:' in out and 'loss_dice' in out
    assert '| held-out |' in out and '| held-out, expressions shuffled between videos |' in out

    assert osp.isfile(work_dir / 'train' / 'iter_6.pth')
    assert osp.isfile(work_dir / 'tiny_roberta' / 'tokenizer.json')
    results = json.loads((work_dir / 'results.json').read_text())
    heldout, shuffled = results['rows']
    assert heldout['num'] == shuffled['num'] > 0
    for row in (heldout, shuffled):
        for key in ('J&F', 'J', 'F'):
            assert 0.0 <= row[key] <= 1.0
    assert results['train']['max_iters'] == 6
    assert len(results['pictures']) == 1
    picture = cv2.imread(results['pictures'][0])
    assert picture is not None and picture.shape[0] > 96 and picture.shape[1] >= 8 * 2 * 96

    again_dir = tmp_path / 'again'
    _run_demo(again_dir)
    assert_same_weights(work_dir / 'train' / 'iter_6.pth', again_dir / 'train' / 'iter_6.pth')
    again = json.loads((again_dir / 'results.json').read_text())
    assert [{k: r[k] for k in ('num', 'J&F', 'J', 'F')} for r in again['rows']] == \
        [{k: r[k] for k in ('num', 'J&F', 'J', 'F')} for r in results['rows']]
