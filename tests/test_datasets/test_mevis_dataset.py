"""MeViS: the synthetic generator writes the real format, and MeViSDataset reads it (several referred objects
per expression, none for v2 no-target expressions, both frame samplings) and rejects bad input by name."""
import collections
import json
import logging
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from pycocotools import mask as coco_mask

import soc_mm  # noqa: F401
from soc_mm.datasets import synthetic
from soc_mm.datasets.mevis import global_frame_indices
from soc_mm.datasets.ref_youtube_vos import sliding_windows
from soc_mm.registry import DATASETS, TRANSFORMS

init_default_scope('soc_mm')
# pycocotools' numpy-2 copy-keyword warning (the tests call pycocotools directly, on purpose)
pytestmark = pytest.mark.filterwarnings('ignore:__array__ implementation:DeprecationWarning')

T = 4
H, W = 48, 64
TRAIN_PIPE = [dict(type='LoadRVOSFrames'), dict(type='LoadRLEMasks'), dict(type='PackRVOSInputs')]
EVAL_PIPE = [dict(type='LoadRVOSFrames'), dict(type='LoadRLEMasks'),
             dict(type='PackRVOSInputs', pack_ori_gt_masks=True)]


def build(root, **kwargs):
    cfg = dict(type='MeViSDataset', data_root=root, split='train', num_frames=T, pipeline=TRAIN_PIPE)
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def raises(exc, message):
    """pytest.raises matching ``message`` literally from its start."""
    return pytest.raises(exc, match='^' + re.escape(message))


def load(path):
    with open(path) as f:
        return json.load(f)


def dump(path, data):
    with open(path, 'w') as f:
        json.dump(data, f)


def decode(rle):
    """pycocotools on the RLE exactly as stored in mask_dict.json (counts a str)."""
    return coco_mask.decode(rle).astype(bool)


def union_gt(mask_dict, anno_ids, num_frames):
    gt = np.zeros((num_frames, H, W), bool)
    for a in anno_ids:
        for t, rle in enumerate(mask_dict[str(a)]):
            if rle is not None:
                gt[t] |= decode(rle)
    return gt


def expressions_of(manifest, split, **flags):
    """(video, exp_id, entry) of the manifest's expressions whose flags all equal ``flags``."""
    return [(vid, exp_id, e) for vid, v in sorted(manifest[split].items()) for exp_id, e in v['expressions'].items()
            if all(e[k] == val for k, val in flags.items())]


@pytest.fixture(scope='module')
def mevis(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('mevis'))
    manifest = synthetic.generate_mevis(root, num_train=5, num_valid_u=2, num_valid=1, num_frames=9, size=(H, W),
                                        exit_prob=0.5, seed=0)
    return root, manifest


def small_mevis(tmp_path, **kwargs):
    root = str(tmp_path / 'mevis')
    kwargs = dict(dict(num_train=2, num_valid_u=1, num_valid=1, num_frames=5, size=(H, W), seed=0), **kwargs)
    return root, synthetic.generate_mevis(root, **kwargs)


# ------------------------------------------------------------------------------------------ generator
def test_generator_writes_the_official_format(mevis):
    root, manifest = mevis
    assert sorted(os.listdir(root)) == ['synthetic_manifest.json', 'train', 'valid', 'valid_u']
    for split, with_masks in (('train', True), ('valid_u', True), ('valid', False)):
        files = ['JPEGImages', 'mask_dict.json', 'meta_expressions.json'] if with_masks else \
            ['JPEGImages', 'meta_expressions.json']
        assert sorted(os.listdir(osp.join(root, split))) == files
        meta = load(osp.join(root, split, 'meta_expressions.json'))
        assert list(meta) == ['videos'] and sorted(meta['videos']) == sorted(manifest[split])
        mask_dict = load(osp.join(root, split, 'mask_dict.json')) if with_masks else {}
        used = set()
        for vid, video in meta['videos'].items():
            assert list(video) == ['frames', 'expressions']
            assert video['frames'] == [f'{t:05d}' for t in range(9)]
            assert sorted(os.listdir(osp.join(root, split, 'JPEGImages', vid))) == [f + '.jpg' for f in video['frames']]
            for exp_id, exp in video['expressions'].items():
                assert exp_id.isdigit() and isinstance(exp['exp'], str)
                if not with_masks:
                    assert list(exp) == ['exp']
                    continue
                assert list(exp) == ['exp', 'obj_id', 'anno_id']
                assert all(type(i) is int for i in exp['obj_id'] + exp['anno_id'])
                assert len(exp['obj_id']) == len(exp['anno_id'])
                used.update(str(a) for a in exp['anno_id'])
            for k, obj in manifest[split][vid]['objects'].items():  # every object's annotation: one entry per frame
                rles = mask_dict.get(str(obj['anno_id'])) if with_masks else None
                if not with_masks:
                    continue
                assert len(rles) == len(video['frames'])
                visible = []
                for rle in rles:
                    if rle is not None:
                        assert sorted(rle) == ['counts', 'size'] and rle['size'] == [H, W]
                        assert isinstance(rle['counts'], str)
                        assert decode(rle).any()  # null, never an empty RLE, where the object is not visible
                    visible.append(rle is not None)
                assert [f for f, v in zip(video['frames'], visible) if v] == obj['frames']
        if with_masks:
            assert used <= set(mask_dict) and all(k.isdigit() for k in mask_dict)


def test_generator_masks_are_the_drawn_objects_and_union_semantics(mevis):
    root, manifest = mevis
    mask_dict = load(osp.join(root, 'train', 'mask_dict.json'))
    for vid, video in manifest['train'].items():
        frame = cv2.imread(osp.join(root, 'train', 'JPEGImages', vid, '00000.jpg')).astype(float)
        masks = {k: decode(mask_dict[str(o['anno_id'])][0]) for k, o in video['objects'].items()
                 if mask_dict[str(o['anno_id'])][0] is not None}
        for k, m in masks.items():  # the pixels of an object's mask have its colour in the jpeg
            inner = cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            colour = synthetic.COLORS_BGR[video['objects'][k]['color']]
            assert np.abs(frame[inner].mean(0) - colour).max() < 12
        stacked = np.stack(list(masks.values()))
        assert stacked.sum(0).max() == 1  # objects' visible masks never overlap
    multi = expressions_of(manifest, 'train', multi_object=True)
    assert multi and {len(e['anno_id']) for _, _, e in multi} <= {2, 3}
    vid, _, e = multi[0]
    gt = union_gt(mask_dict, e['anno_id'], 9)
    singles = [union_gt(mask_dict, [a], 9) for a in e['anno_id']]
    assert np.array_equal(gt, np.logical_or.reduce(singles))
    assert all(gt.sum() > s.sum() > 0 for s in singles)


def test_generator_motion_tells_twins_apart(mevis):
    root, manifest = mevis
    mask_dict = load(osp.join(root, 'train', 'mask_dict.json'))
    motion_only = expressions_of(manifest, 'train', motion_only=True, multi_object=False)
    assert len(motion_only) >= 3
    for vid, exp_id, e in motion_only:
        objects = manifest['train'][vid]['objects']
        target = objects[str(e['obj_id'][0])]
        twins = [o for k, o in objects.items() if k != str(e['obj_id'][0]) and
                 (o['color'], o['shape']) == (target['color'], target['shape'])]
        assert twins and all(o['motion'] != target['motion'] for o in twins)  # only the motion differs
        assert e['clean'] == f"the {target['shape']} {synthetic.MEVIS_MOTIONS[target['motion']][0]}"
        rles = mask_dict[str(target['anno_id'])]
        centres = np.array([np.argwhere(decode(r)).mean(0) for r in rles if r is not None])  # (y, x)
        step = centres[-1] - centres[0]
        expected = {'left': (0, -1), 'right': (0, 1), 'up': (-1, 0), 'down': (1, 0)}.get(target['motion'])
        if expected is not None:
            axis = int(np.argmax(np.abs(expected)))
            assert np.sign(step[axis]) == expected[axis] and abs(step[axis]) > 3 and abs(step[1 - axis]) < 1.5
        elif target['motion'] == 'still':
            assert np.abs(centres - centres[0]).max() < 1.0
    kinds = {e['kind'] for _, _, e in expressions_of(manifest, 'train')}
    assert kinds == {'motion', 'motion_plural', 'appearance', 'no_target'}
    for vid, exp_id, e in expressions_of(manifest, 'train', no_target=True):
        assert e['obj_id'] == [] and e['anno_id'] == []


def test_generator_is_deterministic_and_cli(tmp_path):
    """Same seed, same files; generate() (what generate_synthetic_rvos.py mevis runs) writes those of
    generate_mevis, an empty split included."""
    a, _ = small_mevis(tmp_path / 'a')
    b, _ = small_mevis(tmp_path / 'b')
    for split in ('train', 'valid_u', 'valid'):
        assert load(osp.join(a, split, 'meta_expressions.json')) == load(osp.join(b, split, 'meta_expressions.json'))
    assert load(osp.join(a, 'train', 'mask_dict.json')) == load(osp.join(b, 'train', 'mask_dict.json'))
    out = str(tmp_path / 'cli')
    _, counts = synthetic.generate('mevis', out, num_train=2, num_valid_u=1, num_valid=0, num_frames=5, size=[H, W])
    assert counts == {'train': 2, 'valid_u': 1, 'valid': 0}
    assert load(osp.join(out, 'train', 'meta_expressions.json')) == load(osp.join(a, 'train', 'meta_expressions.json'))
    assert load(osp.join(out, 'valid', 'meta_expressions.json')) == {'videos': {}}


def test_generator_train_motion_repeats(tmp_path):
    """``--train-motion-repeats 3``: the train split has every motion expression ('motion', 'motion_plural')
    three times (same text and objects, new exp_ids) and the other expressions once; the videos, masks and the
    other splits are those of the default."""
    plain, plain_manifest = small_mevis(tmp_path / 'plain')
    out = str(tmp_path / 'cli')
    synthetic.generate('mevis', out, num_train=2, num_valid_u=1, num_valid=1, num_frames=5, size=[H, W],
                       train_motion_repeats=3)  # generate_synthetic_rvos.py mevis ... --train-motion-repeats 3
    manifest = load(osp.join(out, 'synthetic_manifest.json'))
    for split in ('valid_u', 'valid'):
        assert load(osp.join(out, split, 'meta_expressions.json')) == \
            load(osp.join(plain, split, 'meta_expressions.json'))
    assert load(osp.join(out, 'train', 'mask_dict.json')) == load(osp.join(plain, 'train', 'mask_dict.json'))
    for vid, video in plain_manifest['train'].items():
        assert manifest['train'][vid]['objects'] == video['objects']
        count = lambda exps: collections.Counter((e['clean'], tuple(e['anno_id'])) for e in exps.values())  # noqa
        expected = collections.Counter({key: n * (3 if any(e['kind'].startswith('motion') for e in video[
            'expressions'].values() if (e['clean'], tuple(e['anno_id'])) == key) else 1)
            for key, n in count(video['expressions']).items()})
        assert count(manifest['train'][vid]['expressions']) == expected
    assert any(e['kind'].startswith('motion')
               for v in plain_manifest['train'].values() for e in v['expressions'].values())
    with pytest.raises(ValueError, match='motion_repeats must be >= 1, got 0'):
        synthetic.generate_mevis(str(tmp_path / 'bad'), num_train=1, num_valid_u=0, num_valid=0, train_motion_repeats=0)


# ------------------------------------------------------------------------------------------ dataset: train
def expected_consecutive(manifest):
    expected = []
    for vid in sorted(manifest['train']):
        v = manifest['train'][vid]
        for exp_id in sorted(v['expressions'], key=lambda k: (len(k), k)):
            e = v['expressions'][exp_id]
            visible = set().union(*[v['objects'][str(o)]['frames'] for o in e['obj_id']])
            expected += [(vid, exp_id, w) for w in sliding_windows(v['frames'], T)
                         if not e['obj_id'] or visible & set(w)]
    return expected


def test_train_consecutive_windows_and_multi_object_sample(mevis):
    root, manifest = mevis
    ds = build(root, frame_sampling='consecutive')
    expected = expected_consecutive(manifest)
    assert len(expected) < sum(len(sliding_windows(v['frames'], T)) * len(v['expressions'])
                               for v in manifest['train'].values())  # exit_prob made some windows empty: skipped
    assert len(ds) == len(expected)
    mask_dict = load(osp.join(root, 'train', 'mask_dict.json'))
    index = {(i['video_id'], i['exp_id'], tuple(i['frame_ids'])): n
             for n, i in enumerate(ds.get_data_info(k) for k in range(len(ds)))}
    assert sorted(index) == sorted((v, e, tuple(w)) for v, e, w in expected)
    checked = 0
    for vid, exp_id, e in expressions_of(manifest, 'train', multi_object=True):
        window = sliding_windows(manifest['train'][vid]['frames'], T)[0]
        out = ds[index[(vid, exp_id, tuple(window))]]
        sample, meta = out['data_samples'], out['data_samples'].metainfo
        gt = sample.gt_instances
        n = len(e['anno_id'])
        assert n in (2, 3) and gt.masks.shape == (n, T, H, W) and gt.labels.tolist() == [0] * n
        assert meta['ref_inst_idx'] == list(range(n)) and meta['anno_ids'] == e['anno_id']
        assert meta['expression'] == e['clean'] and meta['frame_ids'] == window
        for k, anno in enumerate(e['anno_id']):
            for t in range(T):
                rle = mask_dict[str(anno)][int(window[t])]
                assert np.array_equal(gt.masks[k, t].numpy(), decode(rle) if rle else np.zeros((H, W), bool))
                assert bool(gt.visible[k, t]) == (rle is not None)
        checked += 1
    assert checked >= 2


def test_train_no_target_sample(mevis):
    root, manifest = mevis
    vid, exp_id, e = expressions_of(manifest, 'train', no_target=True)[0]
    for sampling in ('consecutive', 'global'):
        ds = build(root, frame_sampling=sampling)
        n = next(k for k in range(len(ds)) if (ds.get_data_info(k)['video_id'], ds.get_data_info(k)['exp_id']) ==
                 (vid, exp_id))
        out = ds[n]
        gt, meta = out['data_samples'].gt_instances, out['data_samples'].metainfo
        assert gt.masks.shape == (0, T, H, W) and gt.boxes.shape == (0, T, 4) and gt.labels.shape == (0, )
        assert meta['ref_inst_idx'] == [] and meta['anno_ids'] == []
        assert out['inputs'].shape == (T, 3, H, W)


def test_train_global_sampling(mevis):
    root, manifest = mevis
    ds = build(root, frame_sampling='global')
    num_windows = sum(len(range(0, 9, T)) * len(v['expressions']) for v in manifest['train'].values())
    assert len(ds) == num_windows  # nothing skipped: the frames are drawn when the sample is read
    np.random.seed(0)
    first = [ds.get_data_info(k) for k in range(12)]
    np.random.seed(0)
    assert [ds.get_data_info(k)['frame_ids'] for k in range(12)] == [i['frame_ids'] for i in first]
    spans = []
    for info in first:
        inds = [int(f) for f in info['frame_ids']]
        assert len(set(inds)) == T and inds == sorted(inds) and info['anchor'] in inds
        assert info['frame_inds'] == inds
        spans.append(inds[-1] - inds[0])
    assert max(spans) > T  # spread beyond a consecutive window
    assert len({tuple(ds.get_data_info(0)['frame_ids']) for _ in range(20)}) > 1  # drawn anew each time
    out = ds[0]
    meta = out['data_samples'].metainfo
    rles = [ds.anno_rles(a) for a in meta['anno_ids']]
    for k, r in enumerate(rles):
        for t, f in enumerate(meta['frame_ids']):
            rle = r[int(f)]
            assert np.array_equal(out['data_samples'].gt_instances.masks[k, t].numpy(),
                                  decode(rle) if rle else np.zeros((H, W), bool))


def test_global_frame_indices():
    rng = np.random.RandomState(0)
    for anchor in (0, 37, 99):
        inds = global_frame_indices(100, anchor, 8, rng)
        assert len(set(inds)) == 8 and inds == sorted(inds) and anchor in inds
        near = [i for i in inds if 0 < abs(i - anchor) <= 3]
        assert len(near) >= 1  # a local neighbour (both when not at an edge)
        if 3 <= anchor <= 96:
            assert any(i < anchor for i in near) and any(i > anchor for i in near)
    assert global_frame_indices(8, 4, 8, rng) == list(range(8))  # exactly the video
    short = global_frame_indices(3, 0, 8, rng)  # every frame once, then random repeats
    assert len(short) == 8 and set(short) == {0, 1, 2} and short == sorted(short)
    assert global_frame_indices(1, 0, 4, rng) == [0, 0, 0, 0]
    assert global_frame_indices(50, 10, 1, rng) == [10]
    pair = global_frame_indices(50, 10, 2, rng)  # the anchor and one neighbour
    assert 10 in pair and len(set(pair)) == 2 and max(abs(i - 10) for i in pair) <= 3


def test_expressions_are_lower_cased_and_whitespace_normalised(tmp_path):
    root, manifest = small_mevis(tmp_path)
    capitalised = [(v, k, e) for v, k, e in expressions_of(manifest, 'train') if e['exp'] != e['clean']]
    assert capitalised and all(e['exp'][0].isupper() for _, _, e in capitalised)
    path = osp.join(root, 'train', 'meta_expressions.json')
    meta = load(path)
    vid = sorted(meta['videos'])[0]
    meta['videos'][vid]['expressions']['0']['exp'] = '  The   SQUARE\tthat moves\nLeft '
    dump(path, meta)
    ds = build(root, frame_sampling='consecutive', num_frames=5)
    texts = {(i['video_id'], i['exp_id']): i['expression'] for i in (ds.get_data_info(k) for k in range(len(ds)))}
    assert texts[(vid, '0')] == 'the square that moves left'
    for v, k, e in capitalised:
        if (v, k) != (vid, '0'):
            assert texts[(v, k)] == e['clean'] == e['exp'].lower()


def test_short_videos(tmp_path):
    root, manifest = small_mevis(tmp_path)
    vids = sorted(manifest['train'])
    meta_path, mask_path = osp.join(root, 'train', 'meta_expressions.json'), osp.join(root, 'train', 'mask_dict.json')
    meta, mask_dict = load(meta_path), load(mask_path)
    for vid, keep in ((vids[0], 1), (vids[1], 3)):  # 1 frame: skipped (official); 3 frames < T: padded
        video = meta['videos'][vid]
        for f in video['frames'][keep:]:
            os.remove(osp.join(root, 'train', 'JPEGImages', vid, f + '.jpg'))
        video['frames'] = video['frames'][:keep]
        for o in manifest['train'][vid]['objects'].values():
            mask_dict[str(o['anno_id'])] = mask_dict[str(o['anno_id'])][:keep]
    dump(meta_path, meta)
    dump(mask_path, mask_dict)
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        ds = build(root, frame_sampling='consecutive')
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == [
        f'MeViSDataset: skipped 1 of 2 train videos with fewer than 2 frames (as the official loader) (e.g. {vids[0]})']
    infos = [ds.get_data_info(k) for k in range(len(ds))]
    assert {i['video_id'] for i in infos} == {vids[1]}
    assert {tuple(i['frame_ids']) for i in infos} == {('00000', '00001', '00002', '00002')}  # SOC: last repeated
    out = ds[0]
    assert out['inputs'].shape == (T, 3, H, W) and np.array_equal(out['inputs'][2], out['inputs'][3])
    ds = build(root, frame_sampling='global')
    frames = ds.get_data_info(0)['frame_ids']
    assert len(frames) == T and set(frames) == {'00000', '00001', '00002'}
    # evaluation keeps every video, however short: a 1-frame valid_u video
    vid = sorted(manifest['valid_u'])[0]
    meta_path = osp.join(root, 'valid_u', 'meta_expressions.json')
    mask_path = osp.join(root, 'valid_u', 'mask_dict.json')
    meta, mask_dict = load(meta_path), load(mask_path)
    for f in meta['videos'][vid]['frames'][1:]:
        os.remove(osp.join(root, 'valid_u', 'JPEGImages', vid, f + '.jpg'))
    meta['videos'][vid]['frames'] = ['00000']
    mask_dict = {k: v[:1] for k, v in mask_dict.items()}
    dump(meta_path, meta)
    dump(mask_path, mask_dict)
    ds = build(root, split='valid_u', pipeline=EVAL_PIPE)
    assert len(ds) == len(manifest['valid_u'][vid]['expressions'])
    assert ds[0]['data_samples'].ori_gt_masks.shape == (1, H, W)


# ------------------------------------------------------------------------------------------ dataset: eval
def test_valid_u_eval_samples(mevis):
    root, manifest = mevis
    ds = build(root, split='valid_u', pipeline=EVAL_PIPE)
    assert len(ds) == sum(len(v['expressions']) for v in manifest['valid_u'].values())
    mask_dict = load(osp.join(root, 'valid_u', 'mask_dict.json'))
    seen = set()
    for k in range(len(ds)):
        out = ds[k]
        sample, meta = out['data_samples'], out['data_samples'].metainfo
        v = manifest['valid_u'][meta['video_id']]
        e = v['expressions'][meta['exp_id']]
        assert meta['frame_ids'] == v['frames'] and meta['anno_ids'] == e['anno_id']
        assert out['inputs'].shape == (9, 3, H, W)
        gt = union_gt(mask_dict, e['anno_id'], 9)
        assert np.array_equal(sample.ori_gt_masks.numpy(), gt)
        assert sample.gt_instances.masks.shape == (len(e['anno_id']), 9, H, W)
        seen.add('none' if not e['anno_id'] else 'multi' if len(e['anno_id']) > 1 else 'one')
    assert seen == {'none', 'one', 'multi'}


def test_valid_split_has_no_masks(mevis):
    root, manifest = mevis
    pipe = [dict(type='LoadRVOSFrames'), dict(type='PackRVOSInputs', pack_ori_gt_masks=True)]
    ds = build(root, split='valid', pipeline=pipe)
    assert len(ds) == sum(len(v['expressions']) for v in manifest['valid'].values())
    sample = ds[0]['data_samples']
    assert 'gt_instances' not in sample and 'ori_gt_masks' not in sample
    assert sample.metainfo['anno_ids'] is None and sample.metainfo['frame_ids'] == [f'{t:05d}' for t in range(9)]
    with raises(ValueError, "video 'valid_0000': the dataset has no mask annotations for this sample"):
        build(root, split='valid', pipeline=EVAL_PIPE)[0]
    with raises(ValueError, 'MeViSDataset: the MeViS valid split has no masks (load_gt=True)'):
        build(root, split='valid', load_gt=True)
    with raises(ValueError, "MeViSDataset: frame_sampling must be one of ('consecutive', 'global'), got 'dense'"):
        build(root, frame_sampling='dense')
    with raises(ValueError, "MeViSDataset: split must be one of ('train', 'valid_u', 'valid'), got 'test'"):
        build(root, split='test')


def test_crop_keeps_every_referred_object(mevis):
    root, manifest = mevis
    pipe = TRAIN_PIPE[:2] + [dict(type='RVOSRandomCrop', min_size=8, max_size=12)] + TRAIN_PIPE[2:]
    plain, cropped = build(root, frame_sampling='consecutive'), build(root, frame_sampling='consecutive',
                                                                      pipeline=pipe)
    multi = {(v, k) for v, k, _ in expressions_of(manifest, 'train', multi_object=True)}
    indices = [k for k in range(len(plain)) if (plain.get_data_info(k)['video_id'],
                                                plain.get_data_info(k)['exp_id']) in multi]
    np.random.seed(0)
    shrunk = 0
    for k in indices[:8]:
        full = plain[k]['data_samples'].gt_instances.masks
        crop = cropped[k]['data_samples'].gt_instances.masks
        shrunk += crop.shape[-2:] != full.shape[-2:]
        assert int(crop.sum()) == int(full.sum())  # no referred pixel lost: their common extent stays inside
    assert shrunk >= 2


# ------------------------------------------------------------------------------------------ bad input
def test_bad_rle_size(tmp_path):
    root, manifest = small_mevis(tmp_path)
    vid = sorted(manifest['train'])[0]
    exp_id, e = next((k, e) for k, e in manifest['train'][vid]['expressions'].items() if e['anno_id'])
    anno = e['anno_id'][0]
    path = osp.join(root, 'train', 'mask_dict.json')
    mask_dict = load(path)
    t = next(t for t, r in enumerate(mask_dict[str(anno)]) if r is not None)
    mask_dict[str(anno)][t] = synthetic_rle((H + 2, W))
    dump(path, mask_dict)
    first = min(k for k, x in manifest['train'][vid]['expressions'].items() if anno in x['anno_id'])
    jpg = osp.join(root, 'train', 'JPEGImages', vid, '00000.jpg')
    with raises(ValueError, f'{path}: mask_dict["{anno}"] (anno_id {anno} of video {vid!r} expression {first!r}), '
                f"frame '{t:05d}' (index {t}): RLE size [{H + 2}, {W}] (H, W) but the frames of the video are "
                f'[{H}, {W}] ({jpg})'):
        build(root)


def synthetic_rle(size):
    mask = np.zeros(size, bool)
    mask[2:6, 3:9] = True
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return dict(size=list(rle['size']), counts=rle['counts'].decode())


def test_rle_transform_checks_size_and_presence():
    load_masks = TRANSFORMS.build(dict(type='LoadRLEMasks'))
    results = dict(video_id='v', exp_id='3', frame_ids=['00000', '00001'], ori_shape=(10, 12), anno_ids=[7],
                   mask_file='mevis/train/mask_dict.json', mask_rles=[[None, synthetic_rle((10, 13))]])
    with raises(ValueError, "video 'v' expression '3': RLE of mevis/train/mask_dict.json of anno_id 7 frame "
                "'00001': RLE size [10, 13] (H, W) but the frames of the video are [10, 12]"):
        load_masks(dict(results))
    ok = load_masks(dict(results, mask_rles=[[None, synthetic_rle((10, 12))], [None, None]], anno_ids=[7, 8]))
    assert ok['gt_masks'].shape == (2, 2, 10, 12) and ok['ref_inst_idx'] == [0, 1]
    assert ok['gt_masks'][0, 1].sum() == 24 and not ok['gt_masks'][1].any() and not ok['gt_masks'][:, 0].any()
    assert np.array_equal(ok['ori_gt_masks'], ok['gt_masks'].any(0))
    none = load_masks(dict(results, mask_rles=[], anno_ids=[]))
    assert none['gt_masks'].shape == (0, 2, 10, 12) and none['ori_gt_masks'].shape == (2, 10, 12)
    assert not none['ori_gt_masks'].any() and none['ref_inst_idx'] == []
    one = load_masks(dict(results, mask_rles=[[None, None], [None, synthetic_rle((10, 12))]], anno_ids=[7, 8],
                          ref_inst_idx=[1]))  # a given list selects the referred instances
    assert one['ref_inst_idx'] == [1] and np.array_equal(one['ori_gt_masks'], one['gt_masks'][1])
    with raises(ValueError, "video 'v': the dataset has no mask annotations for this sample"):
        load_masks(dict(results, mask_rles=None))


def test_anno_id_missing_from_mask_dict(tmp_path):
    root, manifest = small_mevis(tmp_path)
    vid = sorted(manifest['train'])[1]
    path = osp.join(root, 'train', 'meta_expressions.json')
    meta = load(path)
    meta['videos'][vid]['expressions']['2']['anno_id'][-1:] = [999]
    meta['videos'][vid]['expressions']['2']['obj_id'][-1:] = [9]
    dump(path, meta)
    mask_path = osp.join(root, 'train', 'mask_dict.json')
    with raises(ValueError, f'{mask_path}: no key "999" for anno_id 999 of video {vid!r} expression \'2\' (field '
                f'videos["{vid}"]["expressions"]["2"]["anno_id"] of {path})'):
        build(root)


def test_frame_list_disagrees_with_jpeg_folder(tmp_path):
    root, manifest = small_mevis(tmp_path)
    vid = sorted(manifest['train'])[0]
    folder = osp.join(root, 'train', 'JPEGImages', vid)
    meta_path = osp.join(root, 'train', 'meta_expressions.json')
    os.rename(osp.join(folder, '00003.jpg'), osp.join(folder, '00009.jpg'))
    with raises(ValueError, f"MeViSDataset: video {vid!r}: the frame list of {meta_path} disagrees with {folder}: "
                "5 frames listed, 1 of them without a '.jpg' file (e.g. ['00003']), 1 files not listed (e.g. "
                "['00009'])"):
        build(root)
    os.rename(osp.join(folder, '00009.jpg'), osp.join(folder, '00003.jpg'))
    meta = load(meta_path)
    meta['videos'][vid]['frames'] = ['00001', '00000', '00002', '00003', '00004']
    dump(meta_path, meta)
    with raises(ValueError, f'{meta_path}: field videos["{vid}"]["frames"] must list each frame once, sorted'):
        build(root)


def test_bad_expression_fields(tmp_path):
    root, manifest = small_mevis(tmp_path)
    vid = sorted(manifest['train'])[0]
    path = osp.join(root, 'train', 'meta_expressions.json')
    original = load(path)
    field = f'videos["{vid}"]["expressions"]["1"]'

    def expect(edit, message):
        meta = json.loads(json.dumps(original))
        edit(meta['videos'][vid]['expressions']['1'])
        dump(path, meta)
        with raises(ValueError, message):
            build(root)

    expect(lambda e: e.update(exp=' \t '), f"{path}: video {vid!r} expression '1': empty referring expression ' \\t ' "
           '(expected a non-empty sentence)')
    expect(lambda e: e.pop('anno_id'), f'{path}: field {field} lacks the key "anno_id"')
    expect(lambda e: e.update(anno_id=3), f'{path}: field {field}["anno_id"] must be a list of integers ([] = no '
           'referred object), got int 3')
    expect(lambda e: e.update(obj_id=['x']), f'{path}: field {field}["obj_id"][0] must be an integer (or a string of '
           "one), got str 'x'")
    exp = original['videos'][vid]['expressions']['1']
    expect(lambda e: e.update(obj_id=e['obj_id'] + [5]), f"{path}: video {vid!r} expression '1': obj_id "
           f"{exp['obj_id'] + [5]} and anno_id {exp['anno_id']} must have the same length (one anno_id per object)")
    expect(lambda e: e.update(anno_id=[4, 4], obj_id=[0, 1]), f'{path}: field {field}["anno_id"] lists an '
           'annotation twice: [4, 4] (one entry per referred object)')


def test_bad_mask_dict_entries(tmp_path):
    root, manifest = small_mevis(tmp_path)
    vids = sorted(manifest['train'])
    e = next(e for e in manifest['train'][vids[0]]['expressions'].values() if e['anno_id'])
    anno = e['anno_id'][0]
    first = min(k for k, x in manifest['train'][vids[0]]['expressions'].items() if anno in x['anno_id'])
    path = osp.join(root, 'train', 'mask_dict.json')
    original = load(path)
    where = f'{path}: mask_dict["{anno}"] (anno_id {anno} of video {vids[0]!r} expression {first!r})'

    def expect(value, message):
        dump(path, dict(original, **{str(anno): value}))
        with raises(ValueError, message):
            build(root)

    expect(original[str(anno)][:-1], f'{where}: expected a list of 5 entries (one COCO RLE or null per frame of the '
           'video), got 4 entries')
    expect([dict(size=[H, W], counts=[1, 2])] + original[str(anno)][1:], f"{where}, frame '00000' (index 0): "
           f'the RLE counts cover 3 pixels but its size [{H}, {W}] has {H * W}')
    expect([dict(size=[H, W], counts=5)] + original[str(anno)][1:], f"{where}, frame '00000' (index 0): "
           '"counts" must be a string (compressed RLE), bytes or a list of run lengths, got int')
    expect([dict(size=[H, W])] + original[str(anno)][1:], f"{where}, frame '00000' (index 0): expected a COCO "
           "RLE {'size': [H, W], 'counts': str}")
    # an anno_id shared by two videos
    dump(path, original)
    meta_path = osp.join(root, 'train', 'meta_expressions.json')
    meta = load(meta_path)
    meta['videos'][vids[1]]['expressions']['0'].update(anno_id=[anno], obj_id=[0])
    dump(meta_path, meta)
    with raises(ValueError, f"{meta_path}: anno_id {anno} is used by videos {vids[0]!r} and {vids[1]!r} "
                "(expression '0')"):
        build(root)
