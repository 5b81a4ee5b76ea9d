"""Annotation files that json / pycocotools / file globbing would read silently wrong are errors naming the
file and the field: a key repeated in a json object, a MeViS RLE that does not cover its image, two A2D
test queries of one (video, instance), a stray A2D h5 file name; the synthetic generator writes only files
its own loaders accept."""
import json
import os
import os.path as osp
import re
import shutil

import numpy as np
import pytest
from mmengine.registry import init_default_scope

import soc_mm  # noqa: F401
from soc_mm.datasets import synthetic
from soc_mm.datasets.utils import DuplicateKeyError, parse_json_unique, read_json
from soc_mm.registry import DATASETS, TRANSFORMS
from soc_mm.structures.mask import check_rle, decode_mask, encode_mask

init_default_scope('soc_mm')


def raises(exc, message):
    """pytest.raises matching ``message`` literally (from its start)."""
    return pytest.raises(exc, match='^' + re.escape(message))


def replace_once(path, old, new):
    """Edit a json file as text (a repeated key cannot be written with json.dump): the first ``old``."""
    text = open(path).read()
    assert old in text, (old, text[:200])
    with open(path, 'w') as f:
        f.write(text.replace(old, new, 1))


# ------------------------------------------------------------------------------------------ repeated json keys
def test_parse_json_unique_names_the_object_and_key():
    assert parse_json_unique('{"a": {"b": 1, "c": [{"d": 2}]}}', 'f.json') == {'a': {'b': 1, 'c': [{'d': 2}]}}
    with raises(DuplicateKeyError, 'f.json: the object at ["videos"]["v1"]["expressions"] has the key "3" more '
                                   'than once'):
        parse_json_unique('{"videos": {"v1": {"expressions": {"3": {"exp": "a"}, "3": {"exp": "b"}}}}}', 'f.json')
    with raises(DuplicateKeyError, 'f.json: the object at [1] has the key "x" more than once'):
        parse_json_unique('[{"x": 1}, {"x": 1, "x": 2}]', 'f.json')
    with raises(DuplicateKeyError, 'f.json: the object at <top level> has the key "videos" more than once'):
        parse_json_unique('{"videos": {}, "videos": {"v": 1}}', 'f.json')
    assert isinstance(DuplicateKeyError('x'), ValueError)


def test_read_json_errors_name_the_file(tmp_path):
    path = str(tmp_path / 'meta.json')
    with raises(FileNotFoundError, f'meta file: file not found: {path}'):
        read_json(path, 'meta file')
    open(path, 'w').write('{"a": 1,}')
    with raises(ValueError, f'meta file: {path} is not valid json'):
        read_json(path, 'meta file')
    open(path, 'wb').write(b'{"a": "\xff"}')
    with raises(ValueError, f'meta file: {path} is not valid json'):
        read_json(path, 'meta file')


@pytest.fixture(scope='module')
def ytvos_pristine(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('ytvos'))
    return root, synthetic.generate_ref_youtube_vos(root, num_train=2, num_valid=1, num_test=1, num_frames=3,
                                                    size=(24, 32), seed=1)


def test_ytvos_repeated_expression_id(ytvos_pristine, tmp_path):
    """json.load keeps the last of two expressions with one id: 5 of 6 expressions would load."""
    root = str(tmp_path / 'data')
    shutil.copytree(ytvos_pristine[0], root)
    path = osp.join(root, 'meta_expressions', 'train', 'meta_expressions.json')
    vid = sorted(ytvos_pristine[1]['train'])[0]
    replace_once(path, '"1": {"exp"', '"0": {"exp"')  # expression "1" of the first video becomes a 2nd "0"
    with raises(DuplicateKeyError, f'{path}: the object at ["videos"]["{vid}"]["expressions"] has the key "0" '
                                   'more than once'):
        DATASETS.build(dict(type='RefYouTubeVOSDataset', data_root=root, num_frames=3, pipeline=[]))


@pytest.fixture(scope='module')
def mevis_pristine(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('mevis'))
    return root, synthetic.generate_mevis(root, num_train=2, num_valid_u=1, num_valid=0, num_frames=4,
                                          size=(24, 32), seed=3)


def mevis_copy(mevis_pristine, tmp_path):
    root = str(tmp_path / 'mevis')
    shutil.copytree(mevis_pristine[0], root)
    return root


def test_mevis_repeated_video_and_anno_id(mevis_pristine, tmp_path):
    root = mevis_copy(mevis_pristine, tmp_path)
    meta = osp.join(root, 'train', 'meta_expressions.json')
    vids = sorted(mevis_pristine[1]['train'])
    replace_once(meta, f'"{vids[1]}": {{', f'"{vids[0]}": {{')
    with raises(DuplicateKeyError, f'{meta}: the object at ["videos"] has the key "{vids[0]}" more than once'):
        DATASETS.build(dict(type='MeViSDataset', data_root=root, split='train', pipeline=[]))
    # mask_dict.json: an annotation id given twice
    root = mevis_copy(mevis_pristine, tmp_path / 'b')
    masks = osp.join(root, 'valid_u', 'mask_dict.json')
    data = json.load(open(masks))
    first, second = list(data)[:2]
    replace_once(masks, f'"{second}": [', f'"{first}": [')
    with raises(DuplicateKeyError, f'{masks}: the object at <top level> has the key "{first}" more than once'):
        DATASETS.build(dict(type='MeViSDataset', data_root=root, split='valid_u', pipeline=[]))
    # the evaluator and the metric read the same files the same way
    from soc_mm.evaluation.functional.mevis import load_mevis_mask_dict
    with raises(DuplicateKeyError, f'{masks}: the object at <top level> has the key "{first}"'):
        load_mevis_mask_dict(masks)


def test_metric_meta_file_repeated_expression(tmp_path):
    from soc_mm.evaluation.metrics.sample_utils import check_expected_expressions
    path = str(tmp_path / 'meta_expressions.json')
    open(path, 'w').write('{"videos": {"v": {"expressions": {"0": {"exp": "a"}, "0": {"exp": "b"}}}}}')
    with raises(DuplicateKeyError, f'{path}: the object at ["videos"]["v"]["expressions"] has the key "0"'):
        check_expected_expressions([('v', '0')], path, 'RVOSJFMetric')


def test_coco_ground_truth_repeated_key(tmp_path):
    from soc_mm.evaluation.functional import load_coco_gt
    path = str(tmp_path / 'gt.json')
    open(path, 'w').write('{"images": [], "annotations": [], "categories": [], "images": [{"id": 1}]}')
    with raises(DuplicateKeyError, f'{path}: the object at <top level> has the key "images"'):
        load_coco_gt(path)
    open(path, 'w').write('{"images": [{"id": 1, "height": 2, "width": 2}], "annotations": [], '
                          '"categories": [{"id": 1, "name": "x"}]}')
    assert load_coco_gt(path).getImgIds() == [1]


# ------------------------------------------------------------------------------------------ RLE coverage
def _rle(mask):
    return encode_mask(np.asarray(mask, dtype=bool))


def test_check_rle_counts_must_cover_the_image():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (7, 5), (24, 32), (300, 257)]:
        mask = rng.random(shape) < 0.3
        rle = _rle(mask)
        checked = check_rle(rle, 'x')
        assert isinstance(checked['counts'], bytes) and checked['size'] == list(shape)
        assert np.array_equal(decode_mask(rle), mask)
        assert np.array_equal(decode_mask(dict(rle, counts=rle['counts'].encode())), mask)  # bytes
    # uncompressed run lengths (a list) give the same mask
    mask = np.zeros((4, 5), bool)
    mask[1:3, 2:4] = True
    runs = [9, 2, 2, 2, 5]  # column-major (down the columns): 9 background, 2 object, ...
    assert np.array_equal(decode_mask(dict(size=[4, 5], counts=runs)), mask)
    # a quarter of the image: decoded silently before
    quarter = _rle(np.pad(np.ones((4, 4), bool), ((0, 4), (0, 0))))  # size [8, 4]
    short = dict(quarter, size=[16, 8])
    with raises(ValueError, 'mask_dict["7"][0]: the RLE counts cover 32 pixels but its size [16, 8] has 128'):
        check_rle(short, 'mask_dict["7"][0]')
    with raises(ValueError, 'm: the RLE counts cover 32 pixels but its size [8, 3] has 24'):
        decode_mask(dict(quarter, size=[8, 3]), 'm')  # longer than the image: would write past the mask
    with raises(ValueError, 'm: the RLE counts cover 19 pixels but its size [4, 5] has 20'):
        decode_mask(dict(size=[4, 5], counts=[6, 2, 2, 2, 7]), 'm')
    with raises(ValueError, 'm: the RLE has a negative run length (-2)'):
        check_rle(dict(size=[4, 5], counts=[6, -2, 16]), 'm')


def _reference_runs(counts: bytes):
    """pycocotools' rleFrString, line by line (None: a number cut off at the end of the string)."""
    runs, p = [], 0
    while p < len(counts):
        x, k, more = 0, 0, True
        while more:
            if p >= len(counts):
                return None
            c = counts[p] - 48
            x |= (c & 0x1f) << 5 * k
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << 5 * k
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return runs


def test_batched_run_lengths_equal_pycocotools_parse():
    """check_rles parses many strings at once: the same totals as a line-by-line port of pycocotools."""
    from soc_mm.structures.mask import _run_length_stats, check_rles
    rng = np.random.default_rng(1)
    strings = []
    for k in range(60):
        h, w = rng.integers(1, 300, size=2)
        mask = np.zeros((h, w), bool)
        for _ in range(rng.integers(0, 6)):
            y, x = rng.integers(0, h), rng.integers(0, w)
            mask[y:y + rng.integers(1, 80), x:x + rng.integers(1, 80)] = True
        if k % 7 == 0:
            mask = rng.random((h, w)) < 0.5
        strings.append(encode_mask(mask)['counts'].encode())
    strings += [b'', b'0', b'h', b'4\x7f', b'1o4', b'jjjjjjjjjjjjjj5']  # empty, 0 pixels, and malformed ones
    valid, total, smallest = _run_length_stats(strings)
    for s, v, t, m in zip(strings, valid, total, smallest):
        ref = _reference_runs(s) if all(48 <= c <= 111 for c in s) else None
        ok = ref is not None and b'jjjjjjjjjjjjjj' not in s  # a number of 14 groups (70 bits) is refused
        assert v == ok, s
        if ok:
            assert t == sum(ref) and m == (min(ref) if ref else 0), s
    # one list of RLEs: the first bad entry is named
    good = [encode_mask(np.eye(5, dtype=bool)), encode_mask(np.ones((5, 5), bool))]
    assert [r['size'] for r in check_rles(good, str, size=(5, 5))] == [[5, 5], [5, 5]]
    with raises(ValueError, '1: the RLE counts cover 20 pixels but its size [5, 5] has 25'):
        check_rles([good[0], dict(good[1], counts=encode_mask(np.ones((4, 5), bool))['counts']), good[1]], str)


def _encode_number(x: int, groups: int = 0) -> str:
    """One number of a compressed COCO RLE string (pycocotools' ``rleToString``), padded to ``groups`` groups
    (a longer, non-canonical spelling of the same number) when given."""
    out = []
    while True:
        c = x & 0x1f
        x >>= 5
        more = (x != -1) if c & 0x10 else (x != 0)
        if groups:
            more = len(out) + 1 < groups
        out.append(chr((c | (0x20 if more else 0)) + 48))
        if not more:
            return ''.join(out)


def test_check_rle_refuses_what_pycocotools_reads_otherwise():
    """pycocotools shifts each 5-bit group of a number as a 32-bit C int and stores runs as uint32: a number
    spelled with a 7th group (e.g. -4000 padded to 7 groups) reads as another number there (-8), so a string
    whose exact runs cover H * W would decode as other runs; run lists of huge integers would wrap an int64
    sum. All are refused naming the entry; the canonical spelling of the same runs is accepted."""
    runs = [0, 6000, 1000, 2000, 1000]  # 100 x 100; the 4th number is the difference 2000 - 6000
    numbers = [r - runs[i - 2] if i > 2 else r for i, r in enumerate(runs)]
    canonical = ''.join(_encode_number(v) for v in numbers)
    assert np.count_nonzero(decode_mask(dict(size=[100, 100], counts=canonical))) == 6000 + 2000  # object runs
    padded = ''.join(_encode_number(v, 7 if i == 3 else 0) for i, v in enumerate(numbers))
    assert _reference_runs(padded.encode()) == runs  # the same runs, exactly
    with raises(ValueError, 'm: "counts" '):
        check_rle(dict(size=[100, 100], counts=padded), 'm')
    six = ''.join(_encode_number(v, 6 if i == 3 else 0) for i, v in enumerate(numbers))  # 6 groups: exact
    assert np.array_equal(decode_mask(dict(size=[100, 100], counts=six)),
                          decode_mask(dict(size=[100, 100], counts=canonical)))
    with raises(ValueError, 'm: the RLE counts cover 18446744073709561616 pixels but its size [100, 100] has 10000'):
        check_rle(dict(size=[100, 100], counts=[2 ** 62, 2 ** 62, 2 ** 62, 2 ** 62 + 10000]), 'm')  # int64 wraps
    with raises(ValueError, 'm: the RLE counts cover 1180591620717411303424 pixels'):
        check_rle(dict(size=[100, 100], counts=[2 ** 70, 0]), 'm')
    with raises(ValueError, 'm: RLE size [65536, 65536] (H, W) has 4294967296 pixels, more than the 536870911'):
        check_rle(dict(size=[65536, 65536], counts='0'), 'm')


@pytest.mark.parametrize('rle,message', [
    ([1, 2], "expected a COCO RLE {'size': [H, W], 'counts': str}"),
    (dict(size=[2, 2]), "expected a COCO RLE {'size': [H, W], 'counts': str}"),
    (dict(size=[2], counts='4'), '"size" must be [H, W] (two integers >= 0), got [2]'),
    (dict(size=[2, True], counts='4'), '"size" must be [H, W] (two integers >= 0)'),
    (dict(size=[2, 2], counts=4), '"counts" must be a string (compressed RLE), bytes or a list of run lengths, '
                                  'got int'),
    (dict(size=[2, 2], counts=[1.5, 2.5]), '"counts" must be a string (compressed RLE) or a list of integer'),
    (dict(size=[2, 2], counts='4 '), '"counts" \'4 \' is not a valid compressed COCO RLE string'),
    (dict(size=[2, 2], counts='4\x7f'), '"counts" \'4\\x7f\' is not a valid compressed COCO RLE string'),
    (dict(size=[2, 2], counts='h'), '"counts" \'h\' is not a valid compressed COCO RLE string'),  # "more" bit set
    (dict(size=[2, 2], counts='é'), '"counts" is not a compressed COCO RLE string (non-ASCII characters)'),
])
def test_check_rle_malformed(rle, message):
    with raises(ValueError, 'where: ' + message):
        check_rle(rle, 'where')


def test_check_rle_expected_size():
    rle = _rle(np.ones((3, 4), bool))
    assert check_rle(rle, 'w', size=(3, 4))['size'] == [3, 4]
    with raises(ValueError, 'w: RLE size [3, 4] (H, W) but the frames of the video are [4, 3] (frame.jpg)'):
        check_rle(rle, 'w', size=(4, 3), size_from='frame.jpg')


def test_mevis_quarter_rle_is_an_error_in_dataset_and_evaluator(mevis_pristine, tmp_path):
    """One checker (soc_mm.structures.mask.check_rle) for the dataset, LoadRLEMasks and the evaluator."""
    root = mevis_copy(mevis_pristine, tmp_path)
    masks = osp.join(root, 'valid_u', 'mask_dict.json')
    data = json.load(open(masks))
    anno = next(k for k, rles in data.items() if any(r is not None for r in rles))
    t = next(i for i, r in enumerate(data[anno]) if r is not None)
    h, w = data[anno][t]['size']
    quarter = encode_mask(np.ones((h // 2, w // 2), bool))
    data[anno][t] = dict(size=[h, w], counts=quarter['counts'])  # counts of a quarter of the image
    json.dump(data, open(masks, 'w'))
    message = f'the RLE counts cover {h // 2 * (w // 2)} pixels but its size [{h}, {w}] has {h * w}'
    with pytest.raises(ValueError, match=re.escape(f'{masks}: mask_dict["{anno}"]') + '.*' + re.escape(message)):
        DATASETS.build(dict(type='MeViSDataset', data_root=root, split='valid_u', pipeline=[]))
    # the evaluator reads mask_dict.json itself
    from soc_mm.evaluation.functional.mevis import mevis_gt_masks
    with pytest.raises(ValueError, match=re.escape(f"mask_dict.json['{anno}'][{t}]: {message}")):
        mevis_gt_masks(data, [anno], len(data[anno]), (h, w))
    # and the loading transform
    load = TRANSFORMS.build(dict(type='LoadRLEMasks'))
    with pytest.raises(ValueError, match=re.escape(message)):
        load(dict(video_id='v', frame_ids=[str(i) for i in range(len(data[anno]))], ori_shape=(h, w),
                  mask_rles=[data[anno]]))


# ------------------------------------------------------------------------------------------ A2D
@pytest.fixture(scope='module')
def a2d_pristine(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('a2d'))
    return root, synthetic.generate_a2d_sentences(root, num_train=1, num_test=1, num_frames=6, size=(32, 48),
                                                  annotated_frames=2, seed=2)


def a2d_copy(a2d_pristine, tmp_path):
    root = str(tmp_path / 'a2d')
    shutil.copytree(a2d_pristine[0], root)
    return root


def test_a2d_two_test_queries_of_one_instance(a2d_pristine, tmp_path):
    root = a2d_copy(a2d_pristine, tmp_path)
    path = osp.join(root, 'text_annotations', 'a2d_annotation.txt')
    lines = open(path).read().splitlines()
    vid = next(v for v, info in sorted(a2d_pristine[1]['videos'].items()) if info['subset'] == 1)
    k, row = next((k, r) for k, r in enumerate(lines) if r.startswith(vid + ','))
    instance = row.split(',')[1]
    lines.append(f'{vid},{instance},another query of the same object')
    open(path, 'w').write('\n'.join(lines) + '\n')
    message = (f"{path}: lines {k + 1} and {len(lines)} are two queries of video '{vid}' instance {instance}; the "
               'test split names each evaluated frame by (video, instance, frame)')
    with raises(ValueError, message):
        DATASETS.build(dict(type='A2DSentencesDataset', data_root=root, split='test', pipeline=[]))
    from soc_mm.datasets import create_a2d_coco_gt
    with raises(ValueError, message):
        create_a2d_coco_gt(root, str(tmp_path / 'gt.json'), split='test')


def test_a2d_stray_h5_name(a2d_pristine, tmp_path):
    root = a2d_copy(a2d_pristine, tmp_path)
    vid = sorted(a2d_pristine[1]['videos'])[0]
    ann_dir = osp.join(root, 'text_annotations', 'a2d_annotation_with_instances', vid)
    first = sorted(os.listdir(ann_dir))[0]
    stray = osp.join(ann_dir, 'notes (copy).h5')
    shutil.copy(osp.join(ann_dir, first), stray)
    message = (f'A2D-Sentences: {stray} is not a frame annotation: the .h5 files of '
               'text_annotations/a2d_annotation_with_instances/<video>/ must be named by their 1-based frame '
               "number (<frame:05d>.h5, e.g. 00023.h5); move or rename 'notes (copy).h5'")
    split = 'train' if a2d_pristine[1]['videos'][vid]['subset'] == 0 else 'test'
    with raises(ValueError, message):
        DATASETS.build(dict(type='A2DSentencesDataset', data_root=root, split=split, pipeline=[]))
    from soc_mm.datasets import create_a2d_coco_gt
    with raises(ValueError, message):
        create_a2d_coco_gt(root, str(tmp_path / 'gt.json'), split=split)


def test_load_a2d_instance_masks_reads_through_read_a2d_h5(a2d_pristine, monkeypatch):
    """The transform and the dataset/ground-truth writer share one h5 reader."""
    import soc_mm.datasets.transforms.loading as loading
    root = a2d_pristine[0]
    ds = DATASETS.build(dict(type='A2DSentencesDataset', data_root=root, split='train', pipeline=[]))
    info = ds.get_data_info(0)
    calls = []
    real = loading.read_a2d_h5

    def spy(path, with_masks=False):
        calls.append((path, with_masks))
        return real(path, with_masks=with_masks)
    monkeypatch.setattr(loading, 'read_a2d_h5', spy)
    out = TRANSFORMS.build(dict(type='LoadA2DInstanceMasks'))(dict(info))
    assert calls == [(info['ann_path'], True)]
    ids, masks, _ = real(info['ann_path'], with_masks=True)
    assert np.array_equal(out['gt_masks'][:, 0], masks)
    assert np.array_equal(out['ori_gt_masks'][0], masks[ids.index(info['ref_instance_id'])])


# ------------------------------------------------------------------------------------------ synthetic generator
def test_generator_num_test_zero_writes_a_loadable_dataset(tmp_path):
    out = str(tmp_path / 'ytvos')
    stale = osp.join(out, 'meta_expressions', 'test', 'meta_expressions.json')
    os.makedirs(osp.dirname(stale))
    open(stale, 'w').write('{"videos": {"old": 1}}')
    _, counts = synthetic.generate('ref_youtube_vos', out, num_train=1, num_valid=1, num_test=0, num_frames=2,
                                   size=(16, 16))
    assert counts == {'train': 1, 'valid': 1, 'test': 0}
    assert not osp.exists(stale)  # no test file (the loader refuses an empty one), the stale one removed
    ds = DATASETS.build(dict(type='RefYouTubeVOSDataset', data_root=out, split='valid', pipeline=[]))
    assert {ds.get_data_info(i)['video_id'] for i in range(len(ds))} == {'valid_0000'}
    train = DATASETS.build(dict(type='RefYouTubeVOSDataset', data_root=out, split='train', num_frames=2,
                                pipeline=[]))
    assert {train.get_data_info(i)['video_id'] for i in range(len(train))} == {'train_0000'}


@pytest.mark.parametrize('fmt,options,message', [
    ('ref_youtube_vos', dict(num_train=0), '--num-train 0: must be >= 1 for ref_youtube_vos'),
    ('a2d_sentences', dict(num_valid=0), '--num-valid 0: must be >= 1 for a2d_sentences'),
    ('ref_youtube_vos', dict(num_test=-1), '--num-test -1: must be >= 0'),
    ('mevis', dict(num_frames=0), '--num-frames 0: must be >= 1'),
    ('refcoco', dict(size=[0, 8]), '--size 0 8: both must be >= 1'),
])
def test_generator_refuses_counts_its_loaders_refuse(tmp_path, fmt, options, message):
    """The options generate_synthetic_rvos.py refuses as a usage error (check_generate_options, as the
    command line spells them), before anything is written."""
    out = str(tmp_path / 'out')
    with raises(ValueError, message):
        synthetic.check_generate_options(fmt, **options)
    with raises(ValueError, message):
        synthetic.generate(fmt, out, **options)
    assert not osp.exists(out)  # refused before writing anything
