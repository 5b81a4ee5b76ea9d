"""Long-RVOS: the synthetic generator writes the real layout (long videos, objects that leave and come back,
look-alikes, the three description types), LongRVOSDataset reads it lazily (train and test) and rejects bad
input by file, video, expression and field; LoadLongRVOSMasks reads the masks as the official evaluation."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope

import soc_mm  # noqa: F401
from soc_mm.datasets import synthetic
from soc_mm.datasets.long_rvos import random_clip_indices, window_clip_indices
from soc_mm.datasets.synthetic_long_rvos import LEAVES_AND_RETURNS, generate_long_rvos
from soc_mm.registry import DATASETS, TRANSFORMS

init_default_scope('soc_mm')
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
T = 5
NUM_FRAMES = 24
TRAIN_PIPE = [dict(type='LoadRVOSFrames'), dict(type='LoadLongRVOSMasks'), dict(type='PackRVOSInputs')]


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('long_rvos'))
    manifest = generate_long_rvos(out, num_train=3, num_valid=2, num_test=1, num_frames=NUM_FRAMES, size=(40, 56),
                                  leave_prob=0.8, seed=3)
    return out, manifest


def build(data_root, **kwargs):
    cfg = dict(type='LongRVOSDataset', data_root=data_root, split='train', num_frames=T, pipeline=TRAIN_PIPE)
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def _meta(data_root, split):
    with open(osp.join(data_root, split, 'meta_expressions.json')) as f:
        return json.load(f)['videos']


# ----------------------------------------------------------- the generator
def test_generator_writes_the_layout(root):
    data_root, manifest = root
    for split, count in (('train', 3), ('valid', 2), ('test', 1)):
        videos = _meta(data_root, split)
        assert sorted(videos) == [f'{split}_{i:04d}' for i in range(count)]
        for video_id, video in videos.items():
            assert video['frames'] == [f'{t:05d}' for t in range(NUM_FRAMES)]
            assert sorted(os.listdir(osp.join(data_root, split, 'JPEGImages', video_id))) == \
                [f'{f}.jpg' for f in video['frames']]
            for exp in video['expressions'].values():
                assert set(exp) == {'exp', 'obj_id', 'type'}
                assert exp['type'] in ('static', 'dynamic', 'static+dynamic')
    assert not osp.exists(osp.join(data_root, 'test', 'Annotations'))  # no masks, as the real test split
    assert json.load(open(osp.join(data_root, 'synthetic_manifest.json')))['format'] == 'long_rvos'
    types = [e['type'] for s in ('train', 'valid') for v in manifest[s].values() for e in v['expressions'].values()]
    assert {'static', 'dynamic', 'static+dynamic'} <= set(types)


def test_masks_are_the_visible_object_and_absent_frames_have_no_file(root):
    data_root, manifest = root
    left_and_returned = 0
    for split in ('train', 'valid'):
        for video_id, video in manifest[split].items():
            for obj_id, obj in video['objects'].items():
                obj_dir = osp.join(data_root, split, 'Annotations', video_id, obj_id)
                files = sorted(os.listdir(obj_dir))
                assert files == [f'{f}.png' for f in obj['visible_frames']]
                if obj['absence'] is not None:
                    start, end = obj['absence']
                    gap = {f'{t:05d}' for t in range(start, end)}
                    assert not gap & set(obj['visible_frames'])  # gone ...
                    left_and_returned += any(int(f) >= end for f in obj['visible_frames'])  # ... and back
                for name in files[:3]:
                    mask = cv2.imread(osp.join(obj_dir, name), cv2.IMREAD_UNCHANGED)
                    assert mask.dtype == np.uint8 and mask.ndim == 2 and set(np.unique(mask)) <= {0, 255}
                    assert (mask == 255).any()
    assert left_and_returned > 0


def test_look_alikes_are_told_apart_by_motion(root):
    _, manifest = root
    for split in ('train', 'valid', 'test'):
        for video in manifest[split].values():
            twins = [o for o in video['objects'].values() if o['look_alike']]
            assert len(twins) == 2 and (twins[0]['color'], twins[0]['shape']) == (twins[1]['color'], twins[1]['shape'])
            assert twins[0]['motion'] != twins[1]['motion']
            by_obj = {}
            for exp in video['expressions'].values():
                by_obj.setdefault(exp['obj_id'], []).append(exp)
                if exp['look_alike']:  # appearance alone would not tell them apart
                    assert exp['type'] != 'static'
                if exp['type'] == 'dynamic':
                    obj = video['objects'][exp['obj_id']]
                    assert obj['color'] not in exp['exp'] and obj['shape'] not in exp['exp']
                    assert exp['kind'] != 'leaves_and_returns' or LEAVES_AND_RETURNS in exp['exp']
            texts = [e['exp'] for e in video['expressions'].values()]
            assert len(texts) == len(set(texts))  # every description names one object


def test_long_videos(tmp_path):
    """Hundreds of frames (as the real ~360-frame videos), written one frame at a time."""
    manifest = generate_long_rvos(str(tmp_path), num_train=0, num_valid=1, num_test=0, num_frames=360,
                                  size=(16, 24), seed=1)
    video = manifest['valid']['valid_0000']
    assert len(video['frames']) == 360
    assert len(os.listdir(osp.join(str(tmp_path), 'valid', 'JPEGImages', 'valid_0000'))) == 360
    assert not osp.exists(osp.join(str(tmp_path), 'train'))  # a split of 0 videos is not written


def test_generator_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match='num_objects'):
        generate_long_rvos(str(tmp_path), num_objects=(1, 3))
    with pytest.raises(ValueError, match='leave_prob'):
        generate_long_rvos(str(tmp_path), leave_prob=2.0)
    for bad in ((0.5, 0.3), (0.0, 0.2), (0.2, 1.0), (0.2, )):
        with pytest.raises(ValueError, match='absence_range'):
            generate_long_rvos(str(tmp_path), absence_range=bad)


@pytest.mark.parametrize('absence_range', [(0.1, 0.35), (0.3, 0.6)])
def test_absences_last_the_share_of_the_video_asked_for(tmp_path, absence_range):
    """Every object that leaves is absent for a share of the video in ``absence_range`` (as drawn, before
    rounding to frames), there before and after its absence; the range is in the manifest."""
    num_frames = 100
    manifest = generate_long_rvos(str(tmp_path), num_train=0, num_valid=6, num_test=0, num_frames=num_frames,
                                  size=(16, 24), leave_prob=1.0, seed=2, absence_range=absence_range)
    assert manifest['absence_range'] == list(absence_range)
    lengths = []
    for video in manifest['valid'].values():
        for obj in video['objects'].values():
            start, end = obj['absence']
            lengths.append(end - start)
            assert 0 < start and end < num_frames
            assert not {f'{t:05d}' for t in range(start, end)} & set(obj['visible_frames'])
    low, high = absence_range
    assert all(round(low * num_frames) <= n <= round(high * num_frames) for n in lengths)
    assert max(lengths) - min(lengths) >= (high - low) * num_frames / 3  # drawn across the range


def test_generate_entry_and_command_line(tmp_path):
    manifest, counts = synthetic.generate('long_rvos', str(tmp_path / 'a'), num_train=1, num_valid=1, num_test=0,
                                          num_frames=6, size=(24, 32))
    assert counts == {'train': 1, 'valid': 1, 'test': 0} and manifest['format'] == 'long_rvos'
    out = str(tmp_path / 'b')
    run = subprocess.run([sys.executable, 'tools/dataset_converters/generate_synthetic_rvos.py', 'long_rvos', out,
                          '--num-train', '1', '--num-valid', '1', '--num-test', '1', '--num-frames', '8', '--size',
                          '24', '32'], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "{'train': 1, 'valid': 1, 'test': 1}" in run.stdout
    assert len(_meta(out, 'test')) == 1


# ----------------------------------------------------------- the dataset
def test_train_samples_and_clips(root):
    data_root, manifest = root
    ds = build(data_root)
    num_exps = sum(len(v['expressions']) for v in manifest['train'].values())
    assert len(ds) == num_exps * -(-NUM_FRAMES // T)  # ceil(n / T) clips per expression
    for idx in range(0, len(ds), 7):
        info = ds.get_data_info(idx)
        assert len(info['frame_ids']) == T == len(set(info['frame_ids']))
        assert info['frame_ids'] == sorted(info['frame_ids'])
        visible = manifest['train'][info['video_id']]['objects'][info['obj_id']]['visible_frames']
        assert set(info['frame_ids']) & set(visible)  # the object is in at least one frame
        assert info['desc_type'] in ('static', 'dynamic', 'static+dynamic')
    sample = ds[0]
    masks = sample['data_samples'].gt_instances.masks
    assert tuple(masks.shape) == (1, T, 40, 56) and sample['data_samples'].metainfo['ref_inst_idx'] == 0
    # the masks of a sample are those of its own frames (drawn anew each time the sample is read)
    mask_dir = ds.get_data_info(0)['mask_dir']
    for k, frame in enumerate(sample['data_samples'].metainfo['frame_ids']):
        path = osp.join(mask_dir, f'{frame}.png')
        expected = cv2.imread(path, cv2.IMREAD_GRAYSCALE) > 0 if osp.exists(path) else np.zeros((40, 56), bool)
        assert np.array_equal(masks[0, k].numpy(), expected)


def test_consecutive_windows_skip_clips_without_the_object(root):
    data_root, manifest = root
    ds = build(data_root, frame_sampling='consecutive', pipeline=[])
    num_exps = sum(len(v['expressions']) for v in manifest['train'].values())
    assert 0 < len(ds) <= num_exps * -(-NUM_FRAMES // T)
    for idx in range(len(ds)):
        info = ds.get_data_info(idx)
        inds = info['frame_inds']
        assert inds == list(range(inds[0], inds[0] + T))
        visible = manifest['train'][info['video_id']]['objects'][info['obj_id']]['visible_frames']
        assert set(info['frame_ids']) & set(visible)


def test_valid_and_test_splits(root):
    data_root, manifest = root
    valid = build(data_root, split='valid', pipeline=[])
    assert len(valid) == sum(len(v['expressions']) for v in manifest['valid'].values())
    info = valid.get_data_info(0)
    assert info['frame_ids'] == [f'{t:05d}' for t in range(NUM_FRAMES)] and info['mask_dir'] is not None
    test = build(data_root, split='test', pipeline=[dict(type='LoadRVOSFrames'), dict(type='PackRVOSInputs')])
    sample = test[0]
    assert tuple(sample['inputs'].shape) == (NUM_FRAMES, 3, 40, 56) and 'gt_instances' not in sample['data_samples']
    assert test.get_data_info(0)['mask_dir'] is None
    with pytest.raises(ValueError, match='test split has no masks'):
        build(data_root, split='test', load_gt=True, pipeline=[])


def test_loading_reads_no_image(root, monkeypatch):
    """Lazy: building the dataset lists folders but decodes no frame and no mask."""
    import PIL.Image

    def refuse(*args, **kwargs):
        raise AssertionError('an image was read at load time')

    monkeypatch.setattr(cv2, 'imread', refuse)
    monkeypatch.setattr(PIL.Image, 'open', refuse)
    data_root, _ = root
    assert len(build(data_root, pipeline=[])) > 0
    assert len(build(data_root, split='valid', pipeline=[])) > 0


def test_random_clip_indices():
    rng = np.random.RandomState(0)
    for _ in range(50):
        inds = random_clip_indices(40, 6, annotated=[17], rng=rng)
        assert 17 in inds and len(set(inds)) == 6 and inds == sorted(inds)
    assert sorted(set(random_clip_indices(3, 6, rng=rng))) == [0, 1, 2]  # short video: all frames + repeats


def test_window_clip_indices():
    rng = np.random.RandomState(0)
    starts = set()
    for _ in range(200):
        inds = window_clip_indices(40, 6, stride=3, annotated=[17, 30], rng=rng)
        assert inds == list(range(inds[0], inds[0] + 16, 3)) and 0 <= inds[0] and inds[-1] < 40
        assert {17, 30} & set(inds)  # shows the object
        starts.add(inds[0])
    # every start whose window fits and shows the object, and none other
    fits = {s for s in range(40 - 15) if {17, 30} & set(range(s, s + 16, 3))}
    assert starts == fits
    # without annotated frames: any start that fits
    assert {window_clip_indices(20, 4, stride=2, rng=rng)[0] for _ in range(300)} == set(range(20 - 6))
    # a video shorter than the span: the largest stride that fits
    assert window_clip_indices(10, 4, stride=5, rng=rng) == [0, 3, 6, 9]
    # ... and when no window on that grid shows the object, consecutive frames over one that does
    for _ in range(20):
        inds = window_clip_indices(10, 4, stride=5, annotated=[4], rng=rng)
        assert 4 in inds and inds == list(range(inds[0], inds[0] + 4))
    assert window_clip_indices(3, 5, stride=2, rng=rng) == [0, 1, 2, 2, 2]  # shorter than the clip
    assert window_clip_indices(7, 1, stride=4, annotated=[5], rng=rng) == [5]
    with pytest.raises(ValueError, match='stride must be an integer >= 1, got 0'):
        window_clip_indices(10, 4, stride=0)


def test_window_sampling_draws_local_clips_showing_the_object(root):
    data_root, manifest = root
    ds = build(data_root, frame_sampling='window', frame_stride=2, pipeline=[])
    num_exps = sum(len(v['expressions']) for v in manifest['train'].values())
    assert len(ds) == num_exps * -(-NUM_FRAMES // T)  # as many samples as 'random'
    firsts = set()
    for idx in range(len(ds)):
        info = ds.get_data_info(idx)
        inds = info['frame_inds']
        assert inds == list(range(inds[0], inds[0] + 2 * T - 1, 2))
        visible = manifest['train'][info['video_id']]['objects'][info['obj_id']]['visible_frames']
        assert set(info['frame_ids']) & set(visible)
        firsts.add(inds[0])
    assert len(firsts) > 3  # drawn, not fixed windows
    with pytest.raises(ValueError, match="frame_stride=2 is only read by frame_sampling='window'"):
        build(data_root, frame_stride=2, pipeline=[])
    with pytest.raises(ValueError, match='frame_stride must be an integer >= 1'):
        build(data_root, frame_sampling='window', frame_stride=1.5, pipeline=[])


def test_masks_transform(root, tmp_path):
    data_root, _ = root
    video = sorted(_meta(data_root, 'valid'))[0]
    obj_dir = str(tmp_path / 'obj')
    os.makedirs(obj_dir)
    mask = np.zeros((40, 56), np.uint8)
    mask[5:10, 6:20] = 1  # any non-zero value is the object, as the official evaluation reads it
    cv2.imwrite(osp.join(obj_dir, '00001.png'), mask)
    cv2.imwrite(osp.join(obj_dir, '00002.png'), np.zeros((40, 56), np.uint8))
    load = TRANSFORMS.build(dict(type='LoadLongRVOSMasks'))
    results = load(dict(video_id=video, mask_dir=obj_dir, frame_ids=['00000', '00001', '00002', '00001'],
                        ori_shape=(40, 56)))
    masks = results['gt_masks']
    assert masks.shape == (1, 4, 40, 56)
    assert not masks[0, 0].any() and not masks[0, 2].any()
    assert np.array_equal(masks[0, 1], mask > 0) and np.array_equal(masks[0, 3], mask > 0)
    assert np.array_equal(results['ori_gt_masks'], masks[0])
    cv2.imwrite(osp.join(obj_dir, '00003.png'), np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"frame '00003': mask .*00003.png is 8x8 \(H x W\) but the frame is 40x56"):
        load(dict(video_id=video, mask_dir=obj_dir, frame_ids=['00003'], ori_shape=(40, 56)))
    with pytest.raises(ValueError, match='has no masks'):
        load(dict(video_id=video, mask_dir=None, frame_ids=['00003'], ori_shape=(40, 56)))


# ----------------------------------------------------------- load-time errors
def _copy(root_dir, tmp_path):
    out = str(tmp_path / 'copy')
    shutil.copytree(root_dir, out)
    return out


def _edit_meta(data_root, split, edit):
    path = osp.join(data_root, split, 'meta_expressions.json')
    with open(path) as f:
        data = json.load(f)
    edit(data['videos'])
    with open(path, 'w') as f:
        json.dump(data, f)
    return path


@pytest.mark.parametrize('edit,message', [
    (lambda v: v['train_0001']['expressions']['2'].pop('obj_id'),
     r'videos\["train_0001"\]\["expressions"\]\["2"\]\["obj_id"\] must be one object id'),
    (lambda v: v['train_0001']['expressions']['2'].update(obj_id=[1]),
     r'\["obj_id"\] must be one object id .*Annotations/train_0001/<obj_id>/\), got \[1\]'),
    (lambda v: v['train_0001']['expressions']['2'].update(exp='  '),
     r"video 'train_0001' expression '2': empty referring expression"),
    (lambda v: v['train_0001']['expressions']['2'].pop('exp'),
     r'\["expressions"\]\["2"\] lacks the key "exp"'),
    (lambda v: v['train_0001']['expressions']['2'].update(type=['static']),
     r'\["expressions"\]\["2"\]\["type"\] must be a string'),
    (lambda v: v['train_0001'].update(frames=v['train_0001']['frames'] + ['00000']),
     r'videos\["train_0001"\]\["frames"\] lists a frame twice'),
    (lambda v: v['train_0001'].update(frames=v['train_0001']['frames'] + ['99999']),
     r"video 'train_0001': 1 of the 25 frames .* have no '.jpg' file"),
    (lambda v: v['train_0001'].pop('expressions'), r'videos\["train_0001"\]\["expressions"\] must be a non-empty'),
])
def test_meta_errors_name_file_video_expression_field(root, tmp_path, edit, message):
    data_root = _copy(root[0], tmp_path)
    meta_file = _edit_meta(data_root, 'train', edit)
    with pytest.raises(ValueError, match=message) as error:
        build(data_root, pipeline=[])
    assert meta_file in str(error.value) or 'train_0001' in str(error.value)


def test_repeated_key_and_object_folder_that_is_a_file(root, tmp_path):
    data_root = _copy(root[0], tmp_path)
    path = osp.join(data_root, 'train', 'meta_expressions.json')
    text = open(path).read()
    first = sorted(json.loads(text)['videos'])[0]
    with open(path, 'w') as f:  # a video listed twice: json readers would keep only the last one
        f.write(text.replace('{"videos": {', '{"videos": {"' + first + '": {}, ', 1))
    with pytest.raises(ValueError, match='more than once'):
        build(data_root, pipeline=[])
    data_root = _copy(root[0], tmp_path / 'b')
    obj_dir = osp.join(data_root, 'train', 'Annotations', 'train_0000', '1')
    shutil.rmtree(obj_dir)
    open(obj_dir, 'w').close()
    with pytest.raises(ValueError, match=r"Annotations/train_0000/1 is a file; expected the folder of object '1'"):
        build(data_root, pipeline=[])


def test_object_without_masks(root, tmp_path):
    """No folder for an object: skipped in training (logged), kept in valid (an empty ground truth)."""
    data_root = _copy(root[0], tmp_path)
    for split in ('train', 'valid'):
        video = sorted(_meta(data_root, split))[0]
        _edit_meta(data_root, split, lambda v: v[video]['expressions'].update(
            {'99': dict(exp='the missing object', obj_id='77', type='static')}))
    train = build(data_root, pipeline=[])
    assert not any(train.get_data_info(i)['obj_id'] == '77' for i in range(len(train)))
    valid = build(data_root, split='valid', pipeline=[])
    assert any(valid.get_data_info(i)['obj_id'] == '77' for i in range(len(valid)))
