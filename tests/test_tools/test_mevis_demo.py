"""`make demo-mevis` end to end in miniature: synthetic MeViS, tiny text encoder, tools/dist_train.sh,
score_thr chosen on the calibration split, tools/dist_test.sh with top-1 / threshold / shuffled expressions,
PNGs scored by eval_mevis.py, table. A few iterations only: checks the plumbing, not the accuracy (the
targets are the full demo's)."""
import collections
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT as REPO, assert_same_weights
from soc_mm.apis import mevis_demo
from soc_mm.datasets.synthetic import make_shuffled_expressions_root

MEVIS_DEMO_CONFIG = osp.join(REPO, 'configs', 'soc', 'soc_tiny_synthetic_mevis.py')


def test_config_is_the_tiny_model_on_mevis():
    from mmengine.config import Config
    tiny = Config.fromfile(osp.join(REPO, 'configs', 'soc', 'soc_tiny_synthetic.py'))
    cfg = Config.fromfile(MEVIS_DEMO_CONFIG)
    tiny_model, model = tiny.model.to_dict(), cfg.model.to_dict()
    assert model['text_encoder'].pop('model_path') == cfg.data_root + 'tiny_roberta'
    del tiny_model['text_encoder']['model_path']
    assert model.pop('test_cfg') == dict(tiny_model.pop('test_cfg'), object_selection='threshold',
                                         score_thr=cfg.score_thr, allow_no_target=True)
    # the tiny SOC with exactly three variant classes (the tiny and the Swin configs use the paper's) and
    # MotionAwareVOC's options
    for part, tiny_type, variant_type in ((None, 'SOC', 'QueryPropagationSOC'),
                                          ('text_encoder', 'RoBERTaTextEncoder', 'MeanPoolRoBERTaTextEncoder'),
                                          ('voc', 'VOC', 'MotionAwareVOC')):
        ours, tiny_part = (model, tiny_model) if part is None else (model[part], tiny_model[part])
        assert (ours.pop('type'), tiny_part.pop('type')) == (variant_type, tiny_type), part
    motion_options = dict(temporal_pos_encoding=dict(normalize=True), box_encoding=True, motion_encoding=True,
                          per_slot_clustering=True, sentence_product=True, slot_motion_product='trajectory')
    assert {k: model['voc'].pop(k) for k in motion_options} == motion_options
    assert model == tiny_model  # otherwise the same tiny SOC
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys == {'voc.sentence_product': dict(lr_mult=10.0)}
    train = cfg.train_dataloader.dataset
    assert (train.type, train.split, train.num_frames, train.frame_sampling) == \
        ('MeViSDataset', 'train', cfg.num_frames, 'global')
    assert [t['type'] for t in train.pipeline] == ['LoadRVOSFrames', 'LoadRLEMasks', 'RVOSRandomFlip',
                                                   'PackRVOSInputs']
    test = cfg.test_dataloader.dataset
    assert (test.type, test.split, test.load_gt, test.data_root) == ('MeViSDataset', 'valid_u', False, cfg.data_root)
    metric, submission = cfg.test_evaluator
    assert (metric.type, metric.meta_file, metric.mask_dict_file) == (
        'MeViSMetric', cfg.data_root + 'valid_u/meta_expressions.json', cfg.data_root + 'valid_u/mask_dict.json')
    assert (submission.type, submission.keep_pngs, submission.meta_file) == (
        'MeViSSubmissionMetric', True, metric.meta_file)
    warmup, cosine = cfg.param_scheduler
    assert cfg.train_cfg.max_iters == cosine.end == warmup.end + cosine.T_max == cfg.max_iters
    assert cfg.optim_wrapper.optimizer.lr == cfg.base_lr and cosine.eta_min == pytest.approx(cfg.base_lr * 0.01)


def test_mevis_shuffled_root_takes_texts_from_other_videos(tmp_path):
    from soc_mm.datasets.synthetic import generate_mevis
    root = str(tmp_path / 'data')
    manifest = generate_mevis(root, num_train=0, num_valid_u=4, num_valid=0, num_frames=2, size=(32, 32))
    texts = make_shuffled_expressions_root(root, str(tmp_path / 'shuffled'), 'mevis', seed=0)
    videos = manifest['valid_u']
    assert sorted(texts) == sorted(videos)
    for vid, exps in texts.items():
        foreign = {e['exp'] for v, d in videos.items() if v != vid for e in d['expressions'].values()}
        assert set(exps.values()) <= foreign, (vid, exps)
        assert sorted(exps) == sorted(videos[vid]['expressions'])
    with open(tmp_path / 'shuffled' / 'valid_u' / 'meta_expressions.json') as f:
        meta = json.load(f)['videos']
    for vid, video in videos.items():  # the referred objects (masks) stay the video's own
        assert {k: (e['obj_id'], e['anno_id']) for k, e in meta[vid]['expressions'].items()} == \
            {k: (e['obj_id'], e['anno_id']) for k, e in video['expressions'].items()}
    assert osp.isdir(tmp_path / 'shuffled' / 'valid_u' / 'JPEGImages' / sorted(videos)[0])
    assert osp.samefile(tmp_path / 'shuffled' / 'valid_u' / 'mask_dict.json',
                        tmp_path / 'data' / 'valid_u' / 'mask_dict.json')


def test_mevis_shuffled_root_needs_two_videos(tmp_path):
    from soc_mm.datasets.synthetic import generate_mevis
    root = str(tmp_path / 'data')
    generate_mevis(root, num_train=0, num_valid_u=1, num_valid=0, num_frames=2, size=(32, 32))
    with pytest.raises(ValueError, match='needs at least 2 videos, got 1'):
        make_shuffled_expressions_root(root, str(tmp_path / 'shuffled'), 'mevis')


def test_subset_scores_groups_by_manifest_flags():
    flags = dict(multi_object=False, motion_only=False, no_target=False)
    manifest = {'valid_u_0000': {'expressions': {
        '0': dict(flags, motion_only=True), '1': dict(flags, multi_object=True), '2': dict(flags, no_target=True)}},
        'valid_u_0001': {'expressions': {'0': dict(flags, multi_object=True, motion_only=True)}}}
    per_exp = {'valid_u_0000_0': [0.5, 0.7], 'valid_u_0000_1': [0.2, 0.4], 'valid_u_0000_2': [1.0, 1.0],
               'valid_u_0001_0': [0.9, 0.9]}
    out = mevis_demo.subset_scores(per_exp, manifest)
    assert out['all expressions']['num'] == 4
    assert out['all expressions']['J'] == pytest.approx(0.65)
    assert out['multi-object'] == pytest.approx({'num': 2, 'J': 0.55, 'F': 0.65, 'J&F': 0.6})
    assert out['motion-only'] == pytest.approx({'num': 2, 'J': 0.7, 'F': 0.8, 'J&F': 0.75})
    assert out['no-target'] == pytest.approx({'num': 1, 'J': 1.0, 'F': 1.0, 'J&F': 1.0})
    del per_exp['valid_u_0001_0']
    with pytest.raises(KeyError, match="no score for video 'valid_u_0001' expression '0'"):
        mevis_demo.subset_scores(per_exp, manifest)


def test_choose_score_thr_picks_the_best_threshold(tmp_path):
    from soc_mm.structures.mask import encode_mask
    # two objects in 2 frames of 4x4; expression A refers to both, B to none
    obj0 = np.zeros((2, 4, 4), bool)
    obj0[:, :2, :2] = True
    obj1 = np.zeros((2, 4, 4), bool)
    obj1[:, 2:, 2:] = True
    mask_dict = {'0': [encode_mask(m) for m in obj0], '1': [encode_mask(m) for m in obj1]}
    with open(tmp_path / 'mask_dict.json', 'w') as f:
        json.dump(mask_dict, f)
    masks = np.stack([obj0, obj1, np.zeros_like(obj0)])  # [nq=3, T, H, W]
    predictions = [dict(video_id='v', exp_id='0', anno_ids=[0, 1], scores=np.array([0.9, 0.5, 0.1]), masks=masks),
                   dict(video_id='v', exp_id='1', anno_ids=[], scores=np.array([0.3, 0.2, 0.1]), masks=masks)]
    best, jf = mevis_demo.choose_score_thr(predictions, str(tmp_path / 'mask_dict.json'),
                                           grid=(0.25, 0.4, 0.6, 0.95))
    # 0.4: both objects of A and nothing for B -> both expressions perfect
    assert best == 0.4 and jf[0.4] == pytest.approx(1.0)
    assert jf[0.25] < 1.0 and jf[0.6] < 1.0  # 0.25 keeps a query for B; 0.6 only one object of A
    assert jf[0.95] == pytest.approx(0.5)  # nothing selected: A scores 0, B scores 1


def test_selection_overrides():
    assert mevis_demo.selection_overrides('top1') == [
        'model.test_cfg.object_selection=top1', 'model.test_cfg.score_thr=None',
        'model.test_cfg.allow_no_target=False']
    assert mevis_demo.selection_overrides('threshold', 0.35)[1] == 'model.test_cfg.score_thr=0.35'
    with pytest.raises(ValueError, match="selection must be 'top1' or 'threshold'"):
        mevis_demo.selection_overrides('threshold')


def _run_mevis_demo(work_dir):
    cmd = [sys.executable, osp.join(REPO, 'tools', 'demo', 'run_mevis_demo.py'), '--work-dir', str(work_dir),
           '--max-iters', '4', '--num-train', '4', '--num-valid-u', '3', '--num-calib', '2', '--num-frames', '4',
           '--clip-frames', '3', '--size', '64', '64', '--threads', '1',
           '--procs', '2',  # the default: data-parallel training and testing (gloo)
           '--cfg-options', 'default_hooks.logger.interval=2']
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _numbers(results):
    """What the demo's table is made of: the chosen threshold and every subset's J&F of every run."""
    return results['score_thr'], {name: run['subsets'] for name, run in results['runs'].items()}


def test_mevis_demo_runs_end_to_end_and_a_second_run_gives_the_same_checkpoint_and_table(tmp_path):
    """The plumbing, then the claim of docs/mevis_demo.md: on one machine, with the same process and thread
    count, the same data seed gives the same checkpoint (every tensor bit for bit) and the same table."""
    work_dir = tmp_path / 'demo'
    out = _run_mevis_demo(work_dir)
    assert 'Iter(train) [4/4]' in out and 'loss_dice' in out
    assert 'calibration J&F per score_thr: 0.05:' in out
    for row in ('| all expressions |', '| multi-object |', '| motion-only |', '| no-target |',
                '| all, expressions shuffled between videos |'):
        assert row in out
    assert 'Training: 4 iterations of 2 process(es) x batch 1 (3 frames of 4, 64x64, 4 train videos)' in out

    assert osp.isfile(work_dir / 'train' / 'iter_4.pth')
    assert osp.isfile(work_dir / 'tiny_roberta' / 'tokenizer.json')
    results = json.loads((work_dir / 'results.json').read_text())
    assert results['score_thr'] in mevis_demo.THRESHOLD_GRID
    assert set(results['targets']) == {'multi_object_gain', 'motion_only', 'shuffled'}
    with open(work_dir / 'data' / 'synthetic_manifest.json') as f:
        manifest = json.load(f)
    videos = manifest['valid_u']
    # the train split has each motion expression four times (--train-motion-repeats 4), the held-out videos once
    for split, repeats in (('train', 4), ('valid_u', 1)):
        for video in manifest[split].values():
            texts = collections.Counter((e['clean'], tuple(e['anno_id'])) for e in video['expressions'].values())
            for e in video['expressions'].values():
                expected = repeats if e['kind'].startswith('motion') else 1
                assert texts[e['clean'], tuple(e['anno_id'])] == expected, (split, e)
    num_exps = sum(len(v['expressions']) for v in videos.values())
    for name in ('top1', 'threshold', 'shuffled'):
        run = results['runs'][name]
        # every expression predicted in the server layout: <video>/<exp_id>/<frame>.png
        pngs = []
        for vid, video in videos.items():
            for exp_id in video['expressions']:
                pngs += [work_dir / 'test' / name / 'pred' / 'Annotations' / vid / exp_id / f'{frame}.png'
                         for frame in video['frames']]
        assert all(osp.isfile(p) for p in pngs), name
        with open(run['per_expression']) as f:
            assert len(json.load(f)) == num_exps
        assert run['subsets']['all expressions']['num'] == num_exps
        # the offline evaluator on the PNGs agrees with MeViSMetric inside tools/test.py
        assert run['subsets']['all expressions']['J&F'] == pytest.approx(run['metric_jf'], abs=1e-6)
    assert results['train']['max_iters'] == 4 and results['train']['clip_frames'] == 3

    again_dir = tmp_path / 'again'
    _run_mevis_demo(again_dir)
    assert_same_weights(work_dir / 'train' / 'iter_4.pth', again_dir / 'train' / 'iter_4.pth')
    again = json.loads((again_dir / 'results.json').read_text())
    assert _numbers(again) == _numbers(results)
