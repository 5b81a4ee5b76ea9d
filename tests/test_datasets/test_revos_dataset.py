"""ReVOS: the synthetic generator writes the real layout (referring, reasoning and no-target expressions, several
objects, objects that leave and come back, overlapping objects, the foreground dict), and ReVOSDataset reads it
(lazily: the mask file is indexed, not loaded) and rejects bad input by name."""
import json
import os
import os.path as osp
import pickle
import shutil

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from pycocotools import mask as coco_mask

import soc_mm  # noqa: F401
from soc_mm.datasets import synthetic
from soc_mm.datasets.revos import REVOS_LAYOUT, revos_foreground_dict
from soc_mm.datasets.synthetic_revos import generate_revos
from soc_mm.evaluation.functional.lazy_json import LazyJsonObject
from soc_mm.registry import DATASETS

init_default_scope('soc_mm')
pytestmark = pytest.mark.filterwarnings('ignore:__array__ implementation:DeprecationWarning')

T = 8
H, W = 40, 56
TRAIN_PIPE = [dict(type='LoadRVOSFrames'), dict(type='LoadRLEMasks'), dict(type='PackRVOSInputs')]
EVAL_PIPE = [dict(type='LoadRVOSFrames'), dict(type='LoadRLEMasks'),
             dict(type='PackRVOSInputs', pack_ori_gt_masks=True)]


def load(path):
    with open(path) as f:
        return json.load(f)


def dump(path, data):
    with open(path, 'w') as f:
        json.dump(data, f)


def decode(rle):
    return coco_mask.decode(rle).astype(bool)


def build(root, **kwargs):
    cfg = dict(type='ReVOSDataset', data_root=root, split='train', num_frames=4, pipeline=TRAIN_PIPE)
    cfg.update(kwargs)
    return DATASETS.build(cfg)


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('revos'))
    generate_revos(path, num_train=5, num_valid=4, num_frames=T, size=(H, W), seed=1)
    return path


@pytest.fixture
def copy(root, tmp_path):
    """A writable copy of the generated data."""
    dst = str(tmp_path / 'revos')
    shutil.copytree(root, dst)
    return dst


# ----------------------------------------------------------- the generator
def test_generator_writes_the_revos_layout(root):
    for name in ('meta_expressions_train_.json', 'meta_expressions_valid_.json', 'mask_dict.json',
                 'mask_dict_foreground.json', 'synthetic_manifest.json'):
        assert osp.isfile(osp.join(root, name)), name
    mask_dict = load(osp.join(root, 'mask_dict.json'))
    manifest = load(osp.join(root, 'synthetic_manifest.json'))
    seen_anno = set()
    kinds, types = set(), set()
    for split in ('train', 'valid'):
        videos = load(osp.join(root, f'meta_expressions_{split}_.json'))['videos']
        assert len(videos) == (5 if split == 'train' else 4)
        for video_id, video in videos.items():
            assert video_id.startswith(f'SYN/all/{split}_')  # nested folders and an underscore, as UVO/all/...
            assert (video['height'], video['width']) == (H, W) and isinstance(video['vid_id'], int)
            assert video['frames'] == [f'{t:05d}' for t in range(T)]
            assert sorted(os.listdir(osp.join(root, 'JPEGImages', video_id))) == [f + '.jpg' for f in video['frames']]
            for exp_id, exp in video['expressions'].items():
                assert set(exp) == {'exp', 'obj_id', 'anno_id', 'type_id'}
                assert len(exp['obj_id']) == len(exp['anno_id'])
                assert (exp['type_id'] == 2) == (not exp['anno_id'])  # no target: empty lists
                types.add(exp['type_id'])
                kinds.add(manifest[split][video_id]['expressions'][exp_id]['kind'])
                if exp['type_id'] == 1:
                    assert len(exp['exp'].split()) >= 10  # reasoning: long questions
                for anno_id in exp['anno_id']:
                    assert len(mask_dict[str(anno_id)]) == T
            annos = {a for e in video['expressions'].values() for a in e['anno_id']}
            assert not annos & seen_anno  # anno ids unique over the splits
            seen_anno |= annos
    assert types == {0, 1, 2}
    assert {'appearance', 'multi_object', 'overlapping_objects', 'color_riddle', 'shape_riddle', 'gap', 'absent',
            'absent_riddle'} <= kinds


def test_generator_objects_leave_come_back_and_overlap(root):
    mask_dict = load(osp.join(root, 'mask_dict.json'))
    manifest = load(osp.join(root, 'synthetic_manifest.json'))
    gaps = overlaps = 0
    for split in ('train', 'valid'):
        for video in manifest[split].values():
            for obj in video['objects'].values():
                present = [rle is not None for rle in mask_dict[str(obj['anno_id'])]]
                first, last = present.index(True), len(present) - 1 - present[::-1].index(True)
                if not all(present[first:last + 1]):  # absent between two frames where it is visible
                    gaps += 1
                    assert obj['presence'] == 'gap'
            for exp in video['expressions'].values():
                if exp['kind'] == 'overlapping_objects':
                    a, b = (mask_dict[str(x)] for x in exp['anno_id'])
                    both = [decode(ra) & decode(rb) for ra, rb in zip(a, b) if ra and rb]
                    assert any(m.any() for m in both)
                    overlaps += 1
    assert gaps > 0 and overlaps > 0


def test_foreground_is_the_union_of_the_referred_objects(root):
    mask_dict = load(osp.join(root, 'mask_dict.json'))
    foreground = load(osp.join(root, 'mask_dict_foreground.json'))
    for split in ('train', 'valid'):
        videos = load(osp.join(root, f'meta_expressions_{split}_.json'))['videos']
        for video_id, video in videos.items():
            annos = {a for e in video['expressions'].values() for a in e['anno_id']}
            entry = foreground[video_id]
            assert len(entry['masks_rle']) == len(entry['foreground_ratio']) == T
            for t in range(T):
                union = np.zeros((H, W), bool)
                for a in annos:
                    if mask_dict[str(a)][t] is not None:
                        union |= decode(mask_dict[str(a)][t])
                assert np.array_equal(decode(entry['masks_rle'][t]), union)
                assert entry['foreground_ratio'][t] == pytest.approx(union.mean())
    assert revos_foreground_dict(videos, mask_dict) == {v: foreground[v] for v in videos}


def test_generate_entry_and_options(tmp_path):
    manifest, counts = synthetic.generate('revos', str(tmp_path / 'a'), num_train=1, num_valid=2, num_frames=5,
                                          size=(24, 32), seed=4)
    assert counts == {'train': 1, 'valid': 2} and manifest['format'] == 'revos'
    again, _ = synthetic.generate('revos', str(tmp_path / 'b'), num_train=1, num_valid=2, num_frames=5,
                                  size=(24, 32), seed=4)
    assert again == manifest  # deterministic
    with pytest.raises(ValueError, match='num_frames must be >= 4'):
        generate_revos(str(tmp_path / 'c'), num_frames=3)
    with pytest.raises(ValueError, match='--num-frames 3: must be >= 4 for revos'):
        synthetic.check_generate_options('revos', num_frames=3)  # the command line's usage error
    with pytest.raises(ValueError, match='--num-valid 0'):
        synthetic.generate('revos', str(tmp_path / 'd'), num_valid=0)


# ----------------------------------------------------------- the dataset
def test_train_samples_carry_the_referred_objects(root):
    dataset = build(root)
    mask_dict = load(osp.join(root, 'mask_dict.json'))
    meta = load(osp.join(root, 'meta_expressions_train_.json'))['videos']
    num_exps = sum(len(v['expressions']) for v in meta.values())
    assert len(dataset) == num_exps * 2  # 'global': one sample per window of 4 of the 8 frames
    no_target = multi = 0
    for idx in range(0, len(dataset), 3):
        out = dataset[idx]
        sample = out['data_samples']
        frames = meta[sample.video_id]['frames']
        frame_inds = [frames.index(f) for f in sample.frame_ids]  # drawn anew at each read ('global')
        exp = meta[sample.video_id]['expressions'][sample.exp_id]
        assert sample.anno_ids == exp['anno_id']
        masks = sample.gt_instances.masks.numpy()
        assert masks.shape == (len(exp['anno_id']), 4, H, W) and out['inputs'].shape == (4, 3, H, W)
        for n, anno_id in enumerate(exp['anno_id']):
            for k, t in enumerate(frame_inds):
                rle = mask_dict[str(anno_id)][t]
                assert np.array_equal(masks[n, k], decode(rle) if rle else np.zeros((H, W), bool))
        no_target += not exp['anno_id']
        multi += len(exp['anno_id']) > 1
    assert no_target and multi


def test_consecutive_windows_skip_those_without_the_objects(root):
    dataset = build(root, frame_sampling='consecutive')
    mask_dict = load(osp.join(root, 'mask_dict.json'))
    for info in (dataset.get_data_info(i) for i in range(len(dataset))):
        if info['anno_ids']:
            assert any(mask_dict[str(a)][t] is not None for a in info['anno_ids'] for t in info['frame_inds'])
    assert len(dataset) <= len(build(root))


def test_valid_split_whole_videos_and_type_filter(root):
    dataset = build(root, split='valid', pipeline=EVAL_PIPE, load_gt=True)
    meta = load(osp.join(root, 'meta_expressions_valid_.json'))['videos']
    assert len(dataset) == sum(len(v['expressions']) for v in meta.values())
    info = dataset.get_data_info(0)
    assert info['frame_ids'] == meta[info['video_id']]['frames'] and info['type_id'] in (0, 1, 2)
    out = dataset[0]
    assert out['data_samples'].ori_gt_masks.shape == (T, H, W)
    reasoning = build(root, split='valid', pipeline=EVAL_PIPE, type_ids=(1, ))
    assert len(reasoning) == sum(e['type_id'] == 1 for v in meta.values() for e in v['expressions'].values())
    assert {reasoning.get_data_info(i)['type_id'] for i in range(len(reasoning))} == {1}
    no_gt = build(root, split='valid', pipeline=[dict(type='LoadRVOSFrames'), dict(type='PackRVOSInputs')])
    assert no_gt._masks is None and no_gt.get_data_info(0)['mask_file'] is None
    with pytest.raises(ValueError, match='type_ids must be'):
        build(root, type_ids=(3, ))


def test_the_masks_are_indexed_not_loaded(root):
    dataset = build(root)
    assert isinstance(dataset._masks, LazyJsonObject)
    mask_dict = load(osp.join(root, 'mask_dict.json'))
    counts = next(r['counts'] for rles in mask_dict.values() for r in rles if r)
    blob = pickle.dumps(dataset)  # what a data-loader worker receives
    assert counts.encode() not in blob
    assert pickle.loads(blob)[0]['data_samples'].gt_instances.masks.shape[1] == 4


def _meta(root, split='train'):
    return osp.join(root, f'meta_expressions_{split}_.json')


def _first(meta):
    video_id = sorted(meta['videos'])[0]
    return video_id, meta['videos'][video_id]


@pytest.mark.parametrize('change,message', [
    (lambda v: v['expressions']['0'].pop('type_id'), r'\["expressions"\]\["0"\] lacks the key "type_id"'),
    (lambda v: v['expressions']['0'].update(type_id=5), r'\["expressions"\]\["0"\]\["type_id"\] must be 0'),
    (lambda v: v['expressions']['0'].update(anno_id=[123456]), r'mask_dict\.json: no key "123456" for anno_id 123456'),
    (lambda v: v['expressions']['0'].update(anno_id='3'), r'\["anno_id"\] must be a list of integers'),
    (lambda v: v['expressions']['0'].update(obj_id=[0, 1, 2, 3, 4]), r'obj_id \[0, 1, 2, 3, 4\] and anno_id'),
    (lambda v: v['expressions']['0'].update(exp='  '), r'empty referring expression'),
    (lambda v: v.update(frames=v['frames'] + v['frames'][:1]), r'\["frames"\] lists a frame twice'),
    (lambda v: v.update(frames=v['frames'] + ['99999']), r"have no '\.jpg' file"),
    (lambda v: v.update(height=H + 1), r'RLE size \[40, 56\] \(H, W\) but the frames of the video are \[41, 56\]'),
])
def test_meta_errors_name_the_file_video_and_field(copy, change, message):
    meta = load(_meta(copy))
    video_id, video = _first(meta)
    change(video)
    dump(_meta(copy), meta)
    with pytest.raises(ValueError, match=message) as info:
        build(copy)
    text = str(info.value)
    assert 'meta_expressions_train_.json' in text or 'mask_dict.json' in text or 'JPEGImages' in text
    assert video_id in text or 'mask_dict.json' in text


def test_mask_errors_name_the_file_and_anno(copy):
    meta = load(_meta(copy))
    video_id, video = _first(meta)
    anno_id = str(video['expressions']['0']['anno_id'][0])
    mask_dict = load(osp.join(copy, 'mask_dict.json'))
    good = mask_dict[anno_id]
    mask_dict[anno_id] = good[:-1]
    dump(osp.join(copy, 'mask_dict.json'), mask_dict)
    with pytest.raises(ValueError, match=rf'mask_dict\.json: mask_dict\["{anno_id}"\] \(anno_id {anno_id} of video '
                                         rf"'{video_id}' expression '0'\): expected a list of {T} entries"):
        build(copy)
    other_id, other = sorted(meta['videos'].items())[1]
    other['expressions']['0']['anno_id'] = [int(anno_id)]
    other['expressions']['0']['obj_id'] = [0]
    dump(_meta(copy), meta)
    mask_dict[anno_id] = good
    dump(osp.join(copy, 'mask_dict.json'), mask_dict)
    with pytest.raises(ValueError, match=rf'anno_id {anno_id} is used by videos'):
        build(copy)
    os.remove(osp.join(copy, 'mask_dict.json'))
    with pytest.raises(FileNotFoundError, match='mask_dict.json') as info:
        build(copy)
    assert REVOS_LAYOUT.splitlines()[0] in str(info.value)
    assert len(build(copy, split='valid', pipeline=[dict(type='LoadRVOSFrames'), dict(type='PackRVOSInputs')]))
