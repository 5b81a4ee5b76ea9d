"""The long-video benchmark (tools/demo/run_long_video_demo.py, soc_mm/apis/long_video_demo.py): identity switches on
hand-made masks, the config, the three rules scored from one model run equal to ``stream_rvos`` run with each
rule, and the whole recipe in miniature (a few iterations: the plumbing, not the accuracy)."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT, TEXT_ENCODER_DIR, subprocess_env
from soc_mm.evaluation.functional.identity_switches import (count_identity_switches, frame_identities,
                                                             identity_switch_frames)

CONFIG = osp.join(REPO_ROOT, 'configs', 'soc', 'soc_tiny_synthetic_long_video.py')


# ---------------------------------------------------------------------- identity switches
def test_frame_identities_and_switches():
    objects = np.zeros((2, 5, 4, 4), bool)
    objects[0, :, :, :2] = True  # object 0: the left half
    objects[1, :, :, 2:] = True  # object 1: the right half
    objects[1, 3] = False  # object 1 absent on frame 3
    pred = np.zeros((5, 4, 4), bool)
    pred[0, :, :2] = True  # on object 0
    pred[1, :, 2:] = True  # on object 1
    pred[2, :, 1:] = True  # 4 of 12 pixels on object 0, 8 on object 1: object 1
    # frame 3 empty: no identity
    pred[4, :, 1:3] = True  # 4 + 4 pixels: object 0 has the most (first of a tie) and covers half: object 0
    assert frame_identities(pred, objects).tolist() == [0, 1, 1, -1, 0]
    assert frame_identities(pred, objects, min_cover=0.75).tolist() == [0, 1, -1, -1, -1]
    assert count_identity_switches([0, 1, 1, -1, 0]) == 2
    assert count_identity_switches([0, -1, None, 0, 0]) == 0  # leaving and coming back: no switch
    assert count_identity_switches([]) == 0
    assert identity_switch_frames([0, 1, 1, -1, 0]) == [(0, 1), (2, 4)]  # (frame before, frame after)
    assert frame_identities(pred, objects[:0]).tolist() == [-1] * 5
    with pytest.raises(ValueError, match=r'pred must be \[T, H, W\] and objects \[M, T, H, W\]'):
        frame_identities(pred, objects[:, :4])


# ---------------------------------------------------------------------- config
def test_config_is_the_mevis_demo_model_on_long_rvos():
    from mmengine.config import Config
    mevis = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'soc', 'soc_tiny_synthetic_mevis.py'))
    cfg = Config.fromfile(CONFIG)
    model, mevis_model = cfg.model.to_dict(), mevis.model.to_dict()
    assert model.pop('test_cfg') == dict(object_selection='top1', clip_len=cfg.clip_len)
    mevis_model.pop('test_cfg')
    assert model['text_encoder'].pop('model_path') == cfg.data_root + 'tiny_roberta'
    mevis_model['text_encoder'].pop('model_path')
    # the MeViS demo's model with SOC's head plus a presence branch (PresenceSOCHead)
    assert model['bbox_head'].pop('type') == 'PresenceSOCHead' and mevis_model['bbox_head'].pop('type') == 'SOCHead'
    assert model == mevis_model
    train = cfg.train_dataloader.dataset
    assert (train.type, train.split, train.num_frames, train.frame_sampling, train.frame_stride) == \
        ('LongRVOSDataset', 'train', 6, 'window', 4)
    assert (train.num_frames - 1) * train.frame_stride + 1 <= cfg.clip_len  # a training clip spans a held-out one
    assert [t['type'] for t in train.pipeline] == ['LoadRVOSFrames', 'LoadLongRVOSMasks', 'RVOSRandomFlip',
                                                   'PackRVOSInputs']
    assert cfg.test_dataloader.dataset.type == 'LongRVOSDataset' and cfg.test_evaluator[0]['type'] == 'LongRVOSMetric'
    assert cfg.train_cfg.max_iters == cfg.max_iters == cfg.param_scheduler[1]['end']


# ---------------------------------------------------------------------- one model run, three rules = stream_rvos
@pytest.fixture(scope='module')
def tiny_split(tmp_path_factory):
    from soc_mm.datasets.synthetic_long_rvos import generate_long_rvos
    root = str(tmp_path_factory.mktemp('long_video'))
    generate_long_rvos(root, num_train=0, num_valid=1, num_test=0, num_frames=10, size=(48, 64), seed=3)
    return osp.join(root, 'valid')


def test_scores_from_one_run_equal_stream_rvos_per_rule(tiny_split):
    from soc_mm.apis import init_model, stream_rvos
    from soc_mm.apis import long_video_demo as lvd
    from soc_mm.evaluation.functional.jf import region_similarity
    from soc_mm.evaluation.functional.long_rvos import scores_from_frames
    torch.manual_seed(0)
    model = init_model(CONFIG, cfg_options={'model.text_encoder.model_path': TEXT_ENCODER_DIR})
    runs = lvd.SplitRuns(model, tiny_split, clip_len=4, log=lambda *a: None)
    (video, ) = runs.videos
    assert [len(c[0]['cls'][0]) for c in video['clips']] == [4, 4, 2] and video['objects'].shape[1:] == (10, 48, 64)
    base = model.test_options.replace(clip_len=4)
    for mode in lvd.MODES:
        options = lvd.mode_options(base, mode, presence_thr=0.3, link_margin=0.1)
        rows = runs.score(model, options, with_f=False)
        clips = list(stream_rvos(model, osp.join(tiny_split, 'JPEGImages', video['video_id']), video['expressions'],
                                 test_options=options))
        for n, row in enumerate(rows):
            pred = torch.cat([c.results[n].pred_masks for c in clips]).numpy()
            gt = video['objects'][video['referred'][n]]
            expected = scores_from_frames(region_similarity(pred, gt), np.zeros(10), gt.reshape(10, -1).any(1),
                                          pred.reshape(10, -1).any(1))
            for key in ('J', 'tIoU', 'vIoU'):
                assert row[key] == pytest.approx(expected[key], abs=1e-12), (mode, n, key)
            ids = frame_identities(pred, video['objects'])
            assert row['id_switches'] == count_identity_switches(ids.tolist())
            known = [(t, i) for t, i in enumerate(ids.tolist()) if i >= 0]
            assert row['id_switches_at_boundaries'] == sum(i != j and t // 4 != u // 4 for (u, j), (t, i) in
                                                           zip(known, known[1:]))
            painted_absent = pred.reshape(10, -1).any(1) & ~gt.reshape(10, -1).any(1)
            assert row['false_positive_frames'] == int(painted_absent.sum())
    # the ceilings, from the ground truth: the best query of every clip (each query's masks through the head's own
    # post-processing), and per-clip choice with the frames where the object is absent emptied
    per_clip = runs.score(model, lvd.mode_options(base, 'per-clip', None, 0.1), with_f=False)
    best_query = runs.score(model, base, with_f=False, ceiling='best query per clip')
    emptied = runs.score(model, base, with_f=False, ceiling='per-clip, absent frames emptied')
    for n in range(len(video['expressions'])):
        gt = video['objects'][video['referred'][n]]
        there = gt.reshape(10, -1).any(1)
        preds, clip_preds, start = [], [], 0
        for candidates, samples in video['clips']:
            length = candidates['cls'].shape[1]
            nq = candidates['cls'].shape[2]
            per_query = [model.bbox_head.predict_by_feat(
                candidates['cls'][n:n + 1], candidates['masks'][n:n + 1], [samples[n].metainfo], options=base,
                selected=[torch.tensor([q])])[0].masks.numpy() for q in range(nq)]
            j_means = [region_similarity(m, gt[start:start + length]).mean() for m in per_query]
            preds.append(per_query[int(np.argmax(j_means))])
            top1 = model.bbox_head.predict_by_feat(candidates['cls'][n:n + 1], candidates['masks'][n:n + 1],
                                                   [samples[n].metainfo], options=base)[0].masks.numpy()
            clip_preds.append(top1 & there[start:start + length, None, None])
            start += length
        for rows, pred in ((best_query, np.concatenate(preds)), (emptied, np.concatenate(clip_preds))):
            expected = scores_from_frames(region_similarity(pred, gt), np.zeros(10), there, pred.reshape(10, -1).any(1))
            for key in ('J', 'tIoU', 'vIoU'):
                assert rows[n][key] == pytest.approx(expected[key], abs=1e-12), (n, key)
        assert emptied[n]['false_positive_frames'] == 0
        assert best_query[n]['J'] >= per_clip[n]['J'] - 1e-12 and emptied[n]['J'] >= per_clip[n]['J'] - 1e-12
    with pytest.raises(ValueError, match='unknown ceiling'):
        runs.score(model, base, ceiling='oracle')
    # the calibration grid: the fixed thresholds and the quantiles of the top-1 presence scores
    scores = np.concatenate([c[0] for clips in lvd.top1_presence(runs) for c in clips])
    assert len(scores) == 10 * len(video['expressions'])
    thresholds = lvd.presence_thresholds(runs, quantiles=(0.25, 0.5))
    expected = set(lvd.PRESENCE_THRS) | {round(float(np.quantile(scores, q)), 6) for q in (0.25, 0.5)}
    assert thresholds == sorted(expected)
    separation = lvd.frame_score_separation(runs)
    assert separation['source'] == 'presence branch'  # the config's head has one (PresenceSOCHead)
    assert 0 <= separation['auc'] <= 1 and separation['present_frames'] + separation['absent_frames'] == \
        10 * len(video['expressions'])
    assert lvd.mode_options(base, 'linked + absence', 0.3, 0.1).presence_thr == 0.3
    with pytest.raises(ValueError, match='unknown mode'):
        lvd.mode_options(base, 'linked+absence', 0.3, 0.1)


def test_targets_and_tables():
    from soc_mm.apis import long_video_demo as lvd
    extra = dict(id_switches_at_boundaries=1, false_positive_frames=5, video='v')
    rows = {'per-clip': [dict(J=0.5, F=0.5, tIoU=0.7, vIoU=0.4, id_switches=4, frames_on_other=9, **extra)],
            'linked': [dict(J=0.6, F=0.6, tIoU=0.7, vIoU=0.5, id_switches=2, frames_on_other=3, **extra)],
            'linked + absence': [dict(J=0.7, F=0.7, tIoU=0.85, vIoU=0.55, id_switches=2, frames_on_other=1, **extra)]}
    summaries = {mode: lvd.summary(r) for mode, r in rows.items()}
    assert lvd.evaluate_targets(summaries) == {'vIoU +0.10': True, 'tIoU +0.10': True, 'identity switches / 2': True}
    summaries['linked + absence']['id_switches'] = 3
    assert not lvd.evaluate_targets(summaries)['identity switches / 2']
    table = lvd.results_table(summaries, 0.4, 0.2)
    assert ('| linked + absence (margin 0.2, presence_thr 0.4) | 1 | 0.700 | 0.850 (+0.150) | 0.550 (+0.150) | '
            '3 (1) | 1 | 5 |') in table
    assert '| v | 0.500 / 0.700 / 0.400 / 4 |' in lvd.per_video_table({m: lvd.per_video(r) for m, r in rows.items()})
    ceiling = lvd.summary([dict(J=0.9, F=0.9, tIoU=0.95, vIoU=0.8, id_switches=0, frames_on_other=0, **extra)])
    table = lvd.results_table(summaries, 0.4, 0.2, {'best query per clip': ceiling})
    assert '| ceiling (ground truth): best query per clip | 1 | 0.900 | 0.950 (+0.250) | 0.800 (+0.400) | 0 (1) |' \
        in table
    typed = [dict(rows['per-clip'][0], type='static'), dict(rows['linked'][0], type='dynamic'),
             dict(rows['linked + absence'][0], type='static')]
    by_type = lvd.per_type(typed)
    assert list(by_type) == ['static', 'dynamic'] and by_type['static']['expressions'] == 2
    assert by_type['static']['vIoU'] == pytest.approx((0.4 + 0.55) / 2) and by_type['dynamic']['vIoU'] == 0.5


# ---------------------------------------------------------------------- the recipe in miniature
def test_recipe_runs_end_to_end(tmp_path):
    work = tmp_path / 'demo'
    proc = subprocess.run([sys.executable, osp.join(REPO_ROOT, 'tools', 'demo', 'run_long_video_demo.py'),
                           '--work-dir', str(work), '--num-train', '2', '--num-valid', '1', '--num-calib', '1',
                           '--num-frames', '12', '--size', '48', '48', '--max-iters', '2', '--procs', '1',
                           '--clip-len', '4'], capture_output=True, text=True, env=subprocess_env(), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '| held-out long videos | expressions | J&F | tIoU | vIoU | identity switches (at clip boundaries) |' \
        in proc.stdout
    results = json.loads((work / 'results.json').read_text())
    assert set(results['summaries']) == {'per-clip', 'linked', 'linked + absence'}
    assert set(results['ceilings']) == {'best query per clip', 'per-clip, absent frames emptied'}
    assert '| ceiling (ground truth): best query per clip |' in proc.stdout
    assert 'vIoU per description type' in proc.stdout
    assert results['clip_len'] == 4 and len(results['calibration_grid']) >= 32
    assert set(results['frame_score_separation']) >= {'auc', 'std_within_clip', 'std_between_clips'}
    assert set(results['targets']) == {'vIoU +0.10', 'tIoU +0.10', 'identity switches / 2'}
    assert (work / 'per_expression.json').is_file() and (work / 'results.md').is_file()


@pytest.mark.parametrize('argv, message', [(['--absence-range', '0.6', '0.3'], '--absence-range'),
                                           (['--absence-range', '0', '0.3'], '--absence-range'),
                                           (['--leave-prob', '1.5'], '--leave-prob')])
def test_data_arguments_are_checked(argv, message, capsys):
    import importlib.util
    spec = importlib.util.spec_from_file_location(  # the tool's parser, from its file
        '_run_long_video_demo', osp.join(REPO_ROOT, 'tools', 'demo', 'run_long_video_demo.py'))
    run_long_video_demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_long_video_demo)
    assert run_long_video_demo.parse_args([]).absence_range == [0.3, 0.6]
    with pytest.raises(SystemExit):
        run_long_video_demo.parse_args(argv)
    assert message in capsys.readouterr().err
