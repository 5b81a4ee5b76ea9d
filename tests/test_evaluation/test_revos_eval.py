"""ReVOS evaluation (soc_mm.evaluation.functional.revos, RevosMetric) against an independent implementation of
VISA's eval_revos.py rules written here: missing prediction folders, unreadable predictions, empty masks,
no-target expressions, objects absent from frames, several and overlapping objects, 0/1, 0/255 and other PNG
values, the per-expression rounding and the tables."""
import json
import math
import os
import os.path as osp
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from scipy import ndimage

from soc_mm.evaluation.functional.revos import (REVOS_METRICS, REVOS_TABLES, RULE_COUNTS_KEY, RevosPredictionError,
                                                evaluate_revos_predictions, official_summary, revos_summary_lines)
from soc_mm.evaluation.metrics import RevosMetric
from soc_mm.registry import METRICS

HERE = osp.dirname(osp.abspath(__file__))
MISSING_VIDEO = 'vid_missing'
# (video, frames, (H, W)); names with '/' (nested folders) and '_' as ReVOS's
VIDEOS = [('SRC/all/vid_a', 5, (30, 40)), ('SRC/all/vid_b', 4, (33, 47)), ('vid_c', 3, (60, 80)),
          (MISSING_VIDEO, 3, (20, 20))]
# exp_id -> (object indices, type_id)
EXPRESSIONS = {'0': ([0], 0), '1': ([0, 1], 0), '2': ([2], 1), '3': ([0, 1, 2], 1), '4': ([], 2), '5': ([], 2),
               '6': ([1, 2], 0)}
PIXEL_VALUES = (255, 1, 77)
# (video, exp_id) -> defect of its predictions; the official script scores these 0 (except 'broadcast')
DEFECTS = {('SRC/all/vid_b', '2'): 'no_folder', ('SRC/all/vid_b', '3'): 'missing_png',
           ('SRC/all/vid_a', '6'): 'missing_first_png', ('vid_c', '1'): 'unreadable',
           ('vid_c', '6'): 'wrong_size', ('vid_c', '0'): 'broadcast'}


def _rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {'size': list(rle['size']), 'counts': rle['counts'].decode()}


def _objects(rng, num_frames, height, width):
    """bool [3, T, H, W]: object 1 overlaps object 0 where both are visible; each is absent from some frames
    (object 2 from the first frame)."""
    objects = np.zeros((3, num_frames, height, width), np.uint8)
    for t in range(num_frames):
        cy, cx = int(rng.uniform(0.3, 0.7) * height), int(rng.uniform(0.3, 0.7) * width)
        ay, ax = max(int(0.2 * height), 2), max(int(0.2 * width), 2)
        cv2.ellipse(objects[0, t], (cx, cy), (ax, ay), 0, 0, 360, 1, -1)
        cv2.ellipse(objects[1, t], (cx + ax // 2, cy), (ax // 2 + 1, ay // 2 + 1), 0, 0, 360, 1, -1)
        cv2.rectangle(objects[2, t], (1, 1), (max(width // 5, 2), max(height // 4, 2)), 1, -1)
    objects[1, 1] = 0  # absent
    objects[2, 0] = 0
    objects[0, -1] = 0
    return objects.astype(bool)


def _prediction(rng, gt):
    """bool [T, H, W]: per frame the truth, nothing, a shifted truth or truth + a blob."""
    pred = np.zeros_like(gt)
    height, width = gt.shape[1:]
    for t in range(gt.shape[0]):
        kind = t % 4
        if kind == 0:
            pred[t] = gt[t]
        elif kind == 2:
            pred[t] = np.roll(gt[t], tuple(rng.integers(-3, 4, size=2)), axis=(0, 1))
        elif kind == 3:
            blob = np.zeros((height, width), np.uint8)
            cv2.circle(blob, (int(rng.integers(width)), int(rng.integers(height))), int(rng.integers(1, 6)), 1, -1)
            pred[t] = blob.astype(bool) | gt[t]
    return pred


def make_revos_split(root, seed=0, expressions=EXPRESSIONS):
    """meta_expressions_valid_.json, mask_dict.json, mask_dict_foreground.json and the bool predictions
    ``pred`` {(video, exp): [T, H, W]} of every expression."""
    rng = np.random.default_rng(seed)
    meta, mask_dict, foreground, preds, videos = {'videos': {}}, {}, {}, {}, {}
    next_anno = 10
    for video_id, num_frames, (height, width) in VIDEOS:
        objects = _objects(rng, num_frames, height, width)
        anno_ids = list(range(next_anno, next_anno + 3))
        next_anno += 3
        for anno_id, obj in zip(anno_ids, objects):
            mask_dict[str(anno_id)] = [_rle(m) if m.any() else None for m in obj]
        exps = {}
        for exp_id, (objs, type_id) in expressions.items():
            exps[exp_id] = {'exp': f'objects {objs} of {video_id}', 'obj_id': objs,
                            'anno_id': [anno_ids[o] for o in objs], 'type_id': type_id}
            union = objects[objs].any(axis=0) if objs else np.zeros((num_frames, height, width), bool)
            preds[(video_id, exp_id)] = _prediction(rng, union)
        used = sorted({o for objs, _ in expressions.values() for o in objs})
        fg = objects[used].any(axis=0) if used else np.zeros((num_frames, height, width), bool)
        foreground[video_id] = {'masks_rle': [_rle(m) for m in fg], 'foreground_ratio': fg.mean(axis=(1, 2)).tolist()}
        meta['videos'][video_id] = {'vid_id': len(videos), 'height': height, 'width': width,
                                    'frames': [f'{t:05d}' for t in range(num_frames)], 'expressions': exps}
        videos[video_id] = objects
    os.makedirs(root, exist_ok=True)
    paths = {k: osp.join(root, name) for k, name in (('meta', 'meta_expressions_valid_.json'),
                                                     ('masks', 'mask_dict.json'),
                                                     ('foreground', 'mask_dict_foreground.json'))}
    for key, data in (('meta', meta), ('masks', mask_dict), ('foreground', foreground)):
        with open(paths[key], 'w') as f:
            json.dump(data, f)
    return dict(paths, pred=preds, meta=paths['meta'], videos=meta['videos'])


def write_predictions(split, pred_dir, pixel_values=PIXEL_VALUES, defects=DEFECTS):
    """PNGs of every video but MISSING_VIDEO, the object written as ``pixel_values[i % 3]`` (per expression),
    with ``defects``."""
    for i, ((video_id, exp_id), pred) in enumerate(sorted(split['pred'].items())):
        if video_id == MISSING_VIDEO:
            continue
        defect = defects.get((video_id, exp_id))
        if defect == 'no_folder':
            continue
        exp_dir = osp.join(pred_dir, video_id, exp_id)
        os.makedirs(exp_dir, exist_ok=True)
        frames = split['videos'][video_id]['frames']
        value = pixel_values[i % len(pixel_values)]
        for t, (frame, mask) in enumerate(zip(frames, pred)):
            path = osp.join(exp_dir, f'{frame}.png')
            image = mask.astype(np.uint8) * value
            if (defect == 'missing_png' and t == 2) or (defect == 'missing_first_png' and t == 0):
                continue
            if defect == 'unreadable' and t == 1:
                with open(path, 'wb') as f:
                    f.write(b'\x89PNG but not really')
                continue
            if defect == 'wrong_size' and t == 2:
                image = np.zeros((image.shape[0] + 2, image.shape[1] + 3), np.uint8)
            if defect == 'broadcast' and t == 1:
                image = image[:1]  # 1 x W: numpy broadcasts it over the frame
            Image.fromarray(image).save(path)
    return pred_dir


# ----------------------------------------------------------- the official rules, written independently
def _decode(rle):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        return mask_utils.decode({'size': rle['size'], 'counts': rle['counts'].encode()}).astype(np.int64)


def _boundary(mask):
    padded = np.pad(mask, ((0, 1), (0, 1)))
    east, south, south_east = padded[:-1, 1:], padded[1:, :-1], padded[1:, 1:]
    bound = (mask != east) | (mask != south) | (mask != south_east)
    bound[-1, :] = mask[-1, :] != east[-1, :]
    bound[:, -1] = mask[:, -1] != south[:, -1]
    bound[-1, -1] = False
    return bound


def _frame_j_f(pred, gt):
    union = np.count_nonzero(pred | gt)
    j = 1.0 if union == 0 else np.count_nonzero(pred & gt) / union
    radius = math.ceil(0.008 * math.hypot(*pred.shape))
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    disk = yy ** 2 + xx ** 2 <= radius ** 2
    pb, gb = _boundary(pred), _boundary(gt)
    n_p, n_g = np.count_nonzero(pb), np.count_nonzero(gb)
    if n_p == 0 and n_g == 0:
        precision = recall = 1.0
    elif n_p == 0:
        precision, recall = 1.0, 0.0
    elif n_g == 0:
        precision, recall = 0.0, 1.0
    else:
        precision = np.count_nonzero(pb & ndimage.binary_dilation(gb, structure=disk)) / n_p
        recall = np.count_nonzero(gb & ndimage.binary_dilation(pb, structure=disk)) / n_g
    return j, (0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))


def _read_png(path):
    if not osp.isfile(path):
        raise FileNotFoundError(path)
    with Image.open(path) as image:
        return np.array(image.convert('L'), dtype=np.int64)


def reference_expression(split, pred_dir, video_id, exp_id, binary=False, union=False):
    """(J, F, A, R) of one expression under the official rules, None where the official code raises."""
    with open(split['masks']) as f:
        mask_dict = json.load(f)
    with open(split['foreground']) as f:
        foreground = json.load(f)
    video = split['videos'][video_id]
    try:
        first = _read_png(osp.join(pred_dir, video_id, exp_id, video['frames'][0] + '.png'))
        height, width = first.shape
        js, fs, accs, robs = [], [], [], []
        for t, frame in enumerate(video['frames']):
            image = _read_png(osp.join(pred_dir, video_id, exp_id, frame + '.png'))
            pred = np.broadcast_to(image, (height, width)).copy()  # raises unless it broadcasts
            if binary:
                pred = (pred != 0).astype(np.int64)
            gt = np.zeros((height, width), np.int64)
            for anno_id in video['expressions'][exp_id]['anno_id']:
                rle = mask_dict[str(anno_id)][t]
                if rle is not None:
                    gt = gt + np.broadcast_to(_decode(rle), (height, width))
            gt = np.minimum(gt, 1) if union else gt % 256  # the official uint8 sum
            fg = np.broadcast_to(_decode(foreground[video_id]['masks_rle'][t]), (height, width))
            j, f = _frame_j_f(pred != 0, gt != 0)
            js.append(j)
            fs.append(f)
            accs.append(np.count_nonzero(gt == pred) / gt.size)
            neg = int(np.sum((((1 - gt) % 256) * pred) % 256))  # uint8 subtraction and product
            robs.append(max(1.0 - neg / (int(fg.sum()) + 1e-6), 0.0))
    except (FileNotFoundError, OSError, ValueError):
        return None
    return tuple(float(np.mean(v)) for v in (js, fs, accs, robs))


def reference_revos(split, pred_dir, binary=False, union=False, rounding=True):
    """Per-expression (J, F, A, R, JF) in percent as reported, and the tables."""
    rows = {}
    for video_id, video in split['videos'].items():
        for exp_id, exp in video['expressions'].items():
            if not osp.isdir(osp.join(pred_dir, video_id)):
                scores = (0.0, 0.0, 0.0, 0.0)
            else:
                scores = reference_expression(split, pred_dir, video_id, exp_id, binary, union) or (0.0,) * 4
            j, f, a, r = scores
            values = dict(J=100 * j, F=100 * f, A=100 * a, R=100 * r, JF=100 * (j + f) / 2)
            if rounding:
                values = {k: round(v, 2) for k, v in values.items()}
            rows[(video_id, exp_id)] = dict(values, type_id=exp['type_id'])
    tables = {}
    for table, type_id in (('referring', 0), ('reason', 1)):
        chosen = [r for r in rows.values() if r['type_id'] == type_id]
        means = {k: (sum(r[k] for r in chosen) / len(chosen) if chosen else float('nan')) for k in 'JFAR'}
        means['JF'] = (means['J'] + means['F']) / 2
        tables[table] = means
    tables['overall'] = {k: (tables['referring'][k] + tables['reason'][k]) / 2 for k in REVOS_METRICS}
    return rows, tables


def assert_tables_equal(ours, reference):
    for table in REVOS_TABLES:
        for key in REVOS_METRICS:
            a, b = ours[table][key], reference[table][key]
            assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9, (table, key, a, b)


@pytest.fixture(scope='module')
def split(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('revos'))
    data = make_revos_split(root)
    data['pred_dir'] = write_predictions(data, osp.join(root, 'pred'))
    return data


# ----------------------------------------------------------- the evaluator
def test_equals_official_rules(split):
    summary, rows = evaluate_revos_predictions(split['pred_dir'], split['meta'], split['masks'],
                                               foreground_masks=split['foreground'])
    ref_rows, ref_tables = reference_revos(split, split['pred_dir'])
    assert_tables_equal(summary, ref_tables)
    assert [(r['video'], r['exp_id']) for r in rows] == list(ref_rows)
    for row in rows:
        ref = ref_rows[(row['video'], row['exp_id'])]
        assert row['type_id'] == ref['type_id']
        for key in REVOS_METRICS:
            assert row[key] == ref[key], (row, ref)
    assert set(summary) == set(REVOS_TABLES) | {RULE_COUNTS_KEY}
    assert official_summary(summary) == {t: summary[t] for t in REVOS_TABLES}
    # every table is on the official percent scale
    assert all(0 <= summary[t][k] <= 100 for t in REVOS_TABLES for k in REVOS_METRICS)


def test_rule_counts_and_rows(split):
    summary, rows = evaluate_revos_predictions(split['pred_dir'], split['meta'], split['masks'],
                                               foreground_masks=split['foreground'])
    counts = summary[RULE_COUNTS_KEY]
    by_key = {(r['video'], r['exp_id']): r for r in rows}
    assert counts['expressions'] == len(VIDEOS) * len(EXPRESSIONS) == len(rows)
    assert counts['missing_video'] == len(EXPRESSIONS)
    assert all(by_key[(MISSING_VIDEO, e)]['status'] == 'missing_video' for e in EXPRESSIONS)
    zeroed = [k for k, d in DEFECTS.items() if d != 'broadcast']
    assert counts['error_zero'] == len(zeroed)
    for key in zeroed:
        row = by_key[key]
        assert row['status'] == 'error' and all(row[k] == 0 for k in REVOS_METRICS), row
    assert 'missing prediction folder' in by_key[('SRC/all/vid_b', '2')]['error']
    assert by_key[('SRC/all/vid_b', '3')]['error'].startswith('missing prediction PNG')
    assert '00002.png' in by_key[('SRC/all/vid_b', '3')]['error']
    assert 'unreadable prediction' in by_key[('vid_c', '1')]['error']
    assert '62x83' in by_key[('vid_c', '6')]['error']
    assert by_key[('vid_c', '0')]['status'] == 'scored'  # the 1 x W PNG broadcasts, as officially
    # flags: values other than 0/1 (255 and 77) in the PNGs of scored expressions; overlapping objects
    assert counts['pixel_values'] == sum(r['pixel_values'] for r in rows) > 0
    assert counts['overlap_sum'] == sum(r['overlap_sum'] for r in rows) > 0
    scored = [r for r in rows if r['status'] == 'scored']
    assert all(r['overlap_sum'] == ({0, 1} <= set(EXPRESSIONS[r['exp_id']][0])) for r in scored)
    assert counts['no_target_excluded'] == 2 * len(VIDEOS)
    assert 0 < counts['rounding'] <= len(scored)
    lines = revos_summary_lines(summary)
    assert any(line.startswith('overall/JF: ') for line in lines)
    assert f'rule_counts/missing_video: {len(EXPRESSIONS)}' in lines


def test_workers_give_the_same_numbers(split):
    one = evaluate_revos_predictions(split['pred_dir'], split['meta'], split['masks'],
                                     foreground_masks=split['foreground'])
    two = evaluate_revos_predictions(split['pred_dir'], split['meta'], split['masks'],
                                     foreground_masks=split['foreground'], workers=2)
    assert one == two


def test_foreground_file_beside_mask_dict_by_default(split):
    summary, _ = evaluate_revos_predictions(split['pred_dir'], split['meta'], split['masks'])
    assert summary == evaluate_revos_predictions(split['pred_dir'], split['meta'], split['masks'],
                                                 foreground_masks=split['foreground'])[0]


@pytest.mark.parametrize('binary,union,rounding', [(True, False, True), (False, True, True), (True, True, False)])
def test_options_that_leave_an_official_rule(split, binary, union, rounding):
    summary, rows = evaluate_revos_predictions(split['pred_dir'], split['meta'], split['masks'],
                                               binary_predictions=binary, union_overlaps=union,
                                               round_expressions=rounding)
    ref_rows, ref_tables = reference_revos(split, split['pred_dir'], binary=binary, union=union, rounding=rounding)
    assert_tables_equal(summary, ref_tables)
    for row in rows:
        for key in REVOS_METRICS:
            assert abs(row[key] - ref_rows[(row['video'], row['exp_id'])][key]) <= 1e-9
    official = evaluate_revos_predictions(split['pred_dir'], split['meta'], split['masks'])[0]
    assert summary['referring']['R'] != official['referring']['R']
    if not rounding:
        assert summary[RULE_COUNTS_KEY]['rounding'] == 0


def test_pixel_values_change_a_and_r_only(tmp_path):
    data = make_revos_split(str(tmp_path / 'data'))
    results = {}
    for value in (1, 255):
        pred_dir = write_predictions(data, str(tmp_path / f'pred{value}'), pixel_values=(value, ), defects={})
        results[value] = evaluate_revos_predictions(pred_dir, data['meta'], data['masks'])
        assert_tables_equal(results[value][0], reference_revos(data, pred_dir)[1])
    low, high = results[1][0], results[255][0]
    for table in REVOS_TABLES:
        assert low[table]['J'] == high[table]['J'] and low[table]['F'] == high[table]['F']
        assert high[table]['A'] < low[table]['A'] and high[table]['R'] < low[table]['R']
    assert low[RULE_COUNTS_KEY]['pixel_values'] == 0 < high[RULE_COUNTS_KEY]['pixel_values']


def test_a_table_without_expressions_is_nan(tmp_path):
    referring_only = {k: v for k, v in EXPRESSIONS.items() if v[1] != 1}
    data = make_revos_split(str(tmp_path / 'data'), expressions=referring_only)
    pred_dir = write_predictions(data, str(tmp_path / 'pred'), defects={})
    summary, _ = evaluate_revos_predictions(pred_dir, data['meta'], data['masks'])
    assert all(math.isnan(summary['reason'][k]) and math.isnan(summary['overall'][k]) for k in REVOS_METRICS)
    assert not math.isnan(summary['referring']['JF'])
    assert_tables_equal(summary, reference_revos(data, pred_dir)[1])


def test_zero_on_error_false_raises_naming_the_file(split):
    with pytest.raises(RevosPredictionError, match=r'00002\.png|unreadable|missing prediction') as info:
        evaluate_revos_predictions(split['pred_dir'], split['meta'], split['masks'], zero_on_error=False)
    assert info.value.kind in ('missing_png', 'missing_expression', 'unreadable_png', 'size_mismatch')
    with pytest.raises(RevosPredictionError):  # the same from a worker process
        evaluate_revos_predictions(split['pred_dir'], split['meta'], split['masks'], zero_on_error=False, workers=2)


def _rewrite(path, change):
    with open(path) as f:
        data = json.load(f)
    change(data)
    with open(path, 'w') as f:
        json.dump(data, f)


def test_annotation_errors_name_the_file_and_field(tmp_path):
    def fresh(name):
        data = make_revos_split(str(tmp_path / name))
        data['pred_dir'] = write_predictions(data, str(tmp_path / name / 'pred'), defects={})
        return data

    data = fresh('unknown_anno')
    _rewrite(data['meta'], lambda m: m['videos']['vid_c']['expressions']['0'].update(anno_id=[999]))
    with pytest.raises(ValueError, match=r'mask_dict\.json: no key "999" for anno_id 999 of video \'vid_c\' '
                                         r'expression \'0\''):
        evaluate_revos_predictions(data['pred_dir'], data['meta'], data['masks'])

    data = fresh('short_list')
    _rewrite(data['masks'], lambda m: m.update({'16': m['16'][:1]}))
    with pytest.raises(ValueError, match=r'mask_dict\.json\["16"\].*3 frames, got 1 entries'):
        evaluate_revos_predictions(data['pred_dir'], data['meta'], data['masks'])

    data = fresh('no_foreground')
    _rewrite(data['foreground'], lambda m: m.pop('vid_c'))
    with pytest.raises(ValueError, match=r'mask_dict_foreground\.json: no key "vid_c"'):
        evaluate_revos_predictions(data['pred_dir'], data['meta'], data['masks'])

    data = fresh('bad_type')
    _rewrite(data['meta'], lambda m: m['videos']['vid_c']['expressions']['2'].update(type_id=3))
    with pytest.raises(ValueError, match=r'videos\["vid_c"\]\["expressions"\]\["2"\]\["type_id"\] must be 0'):
        evaluate_revos_predictions(data['pred_dir'], data['meta'], data['masks'])

    data = fresh('no_exp')
    _rewrite(data['meta'], lambda m: m['videos']['vid_c']['expressions']['2'].pop('exp'))
    with pytest.raises(ValueError, match=r'\["2"\] lacks the key "exp"'):
        evaluate_revos_predictions(data['pred_dir'], data['meta'], data['masks'])

    data = fresh('bad_rle')
    _rewrite(data['masks'], lambda m: m['13'][0].update(counts='!!'))
    with pytest.raises(ValueError, match=r'mask_dict\.json\["13"\].*frame \'00000\'.*not a valid compressed'):
        evaluate_revos_predictions(data['pred_dir'], data['meta'], data['masks'])

    os.remove(data['foreground'])
    with pytest.raises(FileNotFoundError, match='mask_dict_foreground.json not found.*foreground_masks'):
        evaluate_revos_predictions(data['pred_dir'], data['meta'], data['masks'])
    with pytest.raises(FileNotFoundError, match='prediction folder'):
        evaluate_revos_predictions(str(tmp_path / 'nowhere'), data['meta'], data['masks'])


def test_synthetic_generator_data_and_predictions(tmp_path):
    """The generator's split with one prediction defect of each kind: the evaluator equals the reference and
    counts what the generator wrote."""
    from soc_mm.datasets.synthetic_revos import generate_revos, write_revos_predictions
    root = str(tmp_path / 'syn')
    generate_revos(root, num_train=1, num_valid=5, num_frames=6, size=(40, 56), seed=3)
    pred_dir = str(tmp_path / 'pred')
    report = write_revos_predictions(root, pred_dir, seed=3, num_missing_videos=1, num_missing_expressions=1,
                                     num_missing_frames=1, num_wrong_size=1, num_unreadable=1)
    with open(osp.join(root, 'meta_expressions_valid_.json')) as f:
        videos = json.load(f)['videos']
    data = dict(videos=videos, masks=osp.join(root, 'mask_dict.json'),
                foreground=osp.join(root, 'mask_dict_foreground.json'))
    summary, rows = evaluate_revos_predictions(pred_dir, osp.join(root, 'meta_expressions_valid_.json'),
                                               data['masks'])
    assert_tables_equal(summary, reference_revos(data, pred_dir)[1])
    counts = summary[RULE_COUNTS_KEY]
    assert counts['missing_video'] == len(videos[report['missing_videos'][0]]['expressions'])
    assert counts['error_zero'] == 4
    errors = {f"{r['video']}/{r['exp_id']}" for r in rows if r['status'] == 'error'}
    assert errors == {k for name in ('missing_expressions', 'missing_frames', 'wrong_size', 'unreadable')
                      for k in report[name]}
    assert counts['no_target_excluded'] == sum(e['type_id'] == 2 for v in videos.values()
                                               for e in v['expressions'].values())
    assert counts['pixel_values'] > 0  # 255-valued PNGs ('mixed')


# ----------------------------------------------------------- RevosMetric
def _samples(split, keys=None):
    samples = []
    for (video_id, exp_id), pred in split['pred'].items():
        if keys is not None and (video_id, exp_id) not in keys:
            continue
        samples.append(dict(video_id=video_id, exp_id=exp_id, frame_ids=split['videos'][video_id]['frames'],
                            ori_shape=pred.shape[1:], pred_masks=torch.from_numpy(pred)))
    return samples


def _metric(split, **kwargs):
    return METRICS.build(dict(type='RevosMetric', meta_file=split['meta'], mask_dict_file=split['masks'], **kwargs))


@pytest.mark.parametrize('value', [255, 1])
def test_metric_equals_the_evaluator_on_its_pngs(split, tmp_path, value):
    """RevosMetric on bool masks = the evaluator on the same masks saved with ``value`` (one video without any
    prediction: its expressions score 0 in both)."""
    keys = [k for k in split['pred'] if k[0] != MISSING_VIDEO]
    metric = _metric(split, pred_value=value, output_dir=str(tmp_path / 'written'))
    samples = _samples(split, keys)
    metric.process({}, samples[:5])
    metric.process({}, samples[5:] + samples[:2])  # a padded sampler's duplicates are dropped
    metrics = metric.evaluate(len(samples))
    pred_dir = write_predictions(split, str(tmp_path / 'pngs'), pixel_values=(value, ), defects={})
    summary, _ = evaluate_revos_predictions(pred_dir, split['meta'], split['masks'])
    assert set(metrics) == {f'revos/{t}/{k}' for t in REVOS_TABLES for k in REVOS_METRICS}
    for table in REVOS_TABLES:
        for key in REVOS_METRICS:
            assert metrics[f'revos/{table}/{key}'] == pytest.approx(summary[table][key], abs=1e-9)
    # the PNGs the metric wrote (nested video folders) are those PNGs
    written = evaluate_revos_predictions(str(tmp_path / 'written'), split['meta'], split['masks'])[0]
    assert official_summary(written) == official_summary(summary)


def test_metric_errors(split):
    metric = _metric(split)
    samples = _samples(split, [('SRC/all/vid_a', '0'), ('SRC/all/vid_b', '0')])
    metric.process({}, samples)
    with pytest.raises(ValueError, match='have no prediction although other expressions of their video do'):
        metric.evaluate(2)
    bad = dict(samples[0], frame_ids=samples[0]['frame_ids'][::-1])
    with pytest.raises(ValueError, match='ReVOS scores every frame'):
        _metric(split).process({}, [bad])
    bad = dict(samples[0], pred_masks=samples[0]['pred_masks'][:, :, :-1], ori_shape=None)
    with pytest.raises(ValueError, match=r'the prediction of frame .* is 30x39 \(H x W\)'):
        _metric(split).process({}, [bad])
    with pytest.raises(ValueError, match='no such video/expression'):
        _metric(split).process({}, [dict(samples[0], exp_id='99')])
    with pytest.raises(ValueError, match='pred_value'):
        RevosMetric(split['meta'], split['masks'], pred_value=256)
    unsafe = dict(samples[0], video_id='../escape')
    metric = _metric(split, output_dir='/tmp/never_written')
    metric.masks  # indexed (and checked) with the real videos
    metric._videos = dict(metric.videos, **{'../escape': metric.videos['SRC/all/vid_a']})
    with pytest.raises(ValueError, match='would write outside'):
        metric.process({}, [unsafe])


DIST_RUNNER = '''
import json, sys
import torch.distributed as dist
dist.init_process_group(backend='gloo')
import soc_mm  # noqa
from soc_mm.registry import METRICS
from test_revos_eval import _samples, make_revos_split
rank, world = dist.get_rank(), dist.get_world_size()
split = make_revos_split({root!r} + f'/rank{{rank}}')  # the same files, one copy per rank
samples = _samples(split)
total = -(-len(samples) // world) * world
padded = (list(range(len(samples))) * 2)[:total]
metric = METRICS.build(dict(type='RevosMetric', meta_file=split['meta'], mask_dict_file=split['masks'],
                            collect_dir={collect!r}))
for i in padded[rank:total:world]:
    metric.process({{}}, [samples[i]])
result = metric.evaluate(len(samples))
if rank == 0:
    json.dump(result, open({out!r}, 'w'))
dist.barrier()
dist.destroy_process_group()
'''


def test_metric_two_processes_equal_one(tmp_path):
    from conftest import subprocess_env
    root = str(tmp_path / 'data')
    split = make_revos_split(root)
    metric = _metric(split)
    samples = _samples(split)
    metric.process({}, samples)
    single = metric.evaluate(len(samples))
    script = tmp_path / 'runner.py'
    out = tmp_path / 'dist.json'
    script.write_text(DIST_RUNNER.format(here=HERE, root=root, collect=str(tmp_path / 'collect'), out=str(out)))
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                           str(script)], env=subprocess_env([HERE]), cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    dist = json.loads(out.read_text())
    assert dist == pytest.approx(single, abs=0)
