"""Long-RVOS evaluation (soc_mm.evaluation.functional.long_rvos, LongRVOSMetric) against an independent
implementation of the official ``eval/eval_long_rvos`` rules written here: the per-type scripts
(``eval_static.py``, ``eval_dynamic.py``, ``eval_hybrid.py``), ``eval_overall.py`` and ``eval_pred_frame.py``."""
import json
import math
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage

from soc_mm.evaluation.functional.long_rvos import (evaluate_long_rvos_predictions, long_rvos_counts,
                                                    official_per_type_json)
from soc_mm.evaluation.metrics.long_rvos_metric import LongRVOSMetric
from soc_mm.registry import METRICS

TOL = 1e-9
MISSING_VIDEO = 'vid_d'
# (video, number of frames, (H, W)); boundary tolerances ceil(0.008 * diagonal) = 1, 1, 2, 1 pixels
VIDEOS = [('vid_a', 9, (30, 40)), ('vid_b', 7, (33, 47)), ('vid_c', 6, (120, 160)), (MISSING_VIDEO, 5, (25, 25))]
# expressions of every video: (obj_id as written in the meta file, type); obj 9 has no ground-truth folder
# (no target); 'other' is a type none of the official per-type scripts reads
EXPRESSIONS = [('1', 'static'), (2, 'dynamic'), ('3', 'static+dynamic'), ('1', 'dynamic'), ('9', 'static'),
               ('2', 'static+dynamic'), ('3', 'other')]
TABLES = {'static': 'static', 'dynamic': 'dynamic', 'hybrid': 'static+dynamic'}


def _object_masks(rng, num_frames, height, width):
    """bool [T, H, W] of a moving ellipse that leaves the video for a stretch and comes back."""
    masks = np.zeros((num_frames, height, width), np.uint8)
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    ay, ax = rng.uniform(0.08, 0.3) * height, rng.uniform(0.08, 0.3) * width
    gap = int(rng.integers(1, num_frames - 2))
    for t in range(num_frames):
        if gap <= t < gap + 2:
            continue
        center = (int(cx + rng.normal(0, 3)), int(cy + rng.normal(0, 3)))
        cv2.ellipse(masks[t], center, (max(int(ax), 1), max(int(ay), 1)), rng.uniform(0, 180), 0, 360, 1, -1)
    return masks.astype(bool)


def _prediction(rng, gt, other):
    """bool [T, H, W]: per frame the truth, nothing, the look-alike's mask, a shifted truth or a blob."""
    pred = np.zeros_like(gt)
    height, width = gt.shape[1:]
    for t in range(gt.shape[0]):
        kind = rng.integers(5)
        if kind == 0:
            pred[t] = gt[t]
        elif kind == 2:
            pred[t] = other[t]
        elif kind == 3:
            pred[t] = np.roll(gt[t], tuple(rng.integers(-4, 5, size=2)), axis=(0, 1))
        elif kind == 4:
            blob = np.zeros((height, width), np.uint8)
            cv2.circle(blob, (int(rng.integers(width)), int(rng.integers(height))), int(rng.integers(1, 9)), 1, -1)
            pred[t] = blob.astype(bool)
    return pred


def make_long_rvos_split(root, seed=0):
    """A small Long-RVOS split: ``meta_expressions.json``, ``Annotations/<video>/<obj_id>/<frame>.png`` (no file
    where the object is absent; some absent frames have an all-zero PNG instead), predictions
    ``pred/<video>/<exp_id>/<frame>.png`` (values 255, 1 or 77; a few non-first frames missing; none for
    MISSING_VIDEO) and key-frame predictions ``pred_key`` (every second frame, the first one included).

    Returns:
        dict of paths and ``frames`` {video: [frame]}, ``objects`` {video: {obj: bool [T, H, W]}} and
        ``preds`` {(video, exp_id): bool [T, H, W]} (what was written; missing PNGs are all False).
    """
    rng = np.random.default_rng(seed)
    ann, pred_dir, key_dir = osp.join(root, 'Annotations'), osp.join(root, 'pred'), osp.join(root, 'pred_key')
    meta, frames_of, objects_of, preds = {'videos': {}}, {}, {}, {}
    for video_id, num_frames, (height, width) in VIDEOS:
        frames = [f'{t:05d}' for t in range(num_frames)]
        objects = {str(o): _object_masks(rng, num_frames, height, width) for o in (1, 2, 3)}
        for obj, masks in objects.items():
            os.makedirs(osp.join(ann, video_id, obj))
            for frame, mask in zip(frames, masks):
                if mask.any() or rng.random() < 0.3:  # an empty PNG means "absent" as much as no file
                    cv2.imwrite(osp.join(ann, video_id, obj, f'{frame}.png'), mask.astype(np.uint8) * 255)
        exps = {}
        for e, (obj_id, desc_type) in enumerate(EXPRESSIONS):
            exp_id = str(e)
            exps[exp_id] = {'exp': f'object {obj_id} of {video_id}', 'obj_id': obj_id, 'type': desc_type}
            gt = objects.get(str(obj_id), np.zeros((num_frames, height, width), bool))
            pred = _prediction(rng, gt, objects[str(1 + e % 3)])
            if e == 4 and video_id == 'vid_a':
                pred[:] = False  # no target and nothing predicted: J = F = tIoU = vIoU = 1
            if video_id == MISSING_VIDEO:
                continue
            for kind, out in (('full', pred_dir), ('key', key_dir)):
                os.makedirs(osp.join(out, video_id, exp_id))
                for t, (frame, mask) in enumerate(zip(frames, pred)):
                    if kind == 'full' and t > 0 and rng.random() < 0.15:
                        pred[t] = False  # not written: scored as an empty prediction
                        continue
                    if kind == 'key' and t % 2:
                        continue
                    value = int(rng.choice([255, 1, 77]))
                    assert cv2.imwrite(osp.join(out, video_id, exp_id, f'{frame}.png'), mask.astype(np.uint8) * value)
            preds[(video_id, exp_id)] = pred
        meta['videos'][video_id] = {'frames': frames, 'expressions': exps}
        frames_of[video_id], objects_of[video_id] = frames, objects
    # a key-frame folder may hold a frame the meta file does not list (scored against an empty truth)
    extra = np.zeros(VIDEOS[0][2], np.uint8)
    extra[3:9, 4:12] = 255
    cv2.imwrite(osp.join(key_dir, 'vid_a', '2', 'zz_extra.png'), extra)
    meta_file = osp.join(root, 'meta_expressions.json')
    with open(meta_file, 'w') as f:
        json.dump(meta, f)
    return dict(meta=meta_file, ann=ann, pred=pred_dir, pred_key=key_dir, frames=frames_of, objects=objects_of,
                preds=preds)


# ----------------------------------------------------------- the official rules, written independently
def _read(path, shape):
    """uint8 [H, W] of a PNG (8-bit grayscale), zeros when the file does not exist."""
    return cv2.imread(path, cv2.IMREAD_GRAYSCALE) if osp.exists(path) else np.zeros(shape, np.uint8)


def _bmap(mask):
    """seg2bmap: differs from its east, south or south-east neighbour (zero outside); last row only east,
    last column only south, bottom-right corner never."""
    padded = np.pad(mask, ((0, 1), (0, 1)))
    east, south, south_east = padded[:-1, 1:], padded[1:, :-1], padded[1:, 1:]
    bound = (mask != east) | (mask != south) | (mask != south_east)
    bound[-1, :] = mask[-1, :] != east[-1, :]
    bound[:, -1] = mask[:, -1] != south[:, -1]
    bound[-1, -1] = False
    return bound


def _reference_f(pred, gt):
    radius = math.ceil(0.008 * math.hypot(*pred.shape))
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    disk = yy ** 2 + xx ** 2 <= radius ** 2
    pb, gb = _bmap(pred), _bmap(gt)
    n_p, n_g = pb.sum(), gb.sum()
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    precision = (pb & ndimage.binary_dilation(gb, disk)).sum() / n_p
    recall = (gb & ndimage.binary_dilation(pb, disk)).sum() / n_g
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def reference_expression(pred_dir, ann_dir, video_id, exp_id, obj_id, frames, key_frames=False):
    """``[J, F, tIoU, vIoU]`` of one expression, as the official eval_queue: the whole video read into
    ``[T, H, W]`` arrays first (size of the first frame's prediction), missing PNGs zeros."""
    exp_dir = osp.join(pred_dir, video_id, exp_id)
    shape = cv2.imread(osp.join(exp_dir, f'{frames[0]}.png'), cv2.IMREAD_GRAYSCALE).shape
    names = sorted(os.listdir(exp_dir)) if key_frames else [f'{f}.png' for f in frames]
    gt = np.stack([_read(osp.join(ann_dir, video_id, str(obj_id), n), shape) for n in names]) != 0
    pred = np.stack([_read(osp.join(exp_dir, n), shape) for n in names]) != 0
    inter, union = (gt & pred).sum(axis=(1, 2)), (gt | pred).sum(axis=(1, 2))
    j = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    f = np.array([_reference_f(p, g) for p, g in zip(pred, gt)])
    g_t, p_t = gt.any(axis=(1, 2)), pred.any(axis=(1, 2))
    frames_union = (g_t | p_t).sum()
    if frames_union == 0:
        return [j.mean(), f.mean(), 1.0, 1.0]
    return [j.mean(), f.mean(), (g_t & p_t).sum() / frames_union, j[g_t & p_t].sum() / frames_union]


def reference_scores(split, key_frames=False):
    """``{(video, exp): [J, F, tIoU, vIoU]}``; a video without a prediction folder scores zeros."""
    meta = json.load(open(split['meta']))['videos']
    pred_dir = split['pred_key' if key_frames else 'pred']
    scores = {}
    for video_id, video in meta.items():
        for exp_id, exp in video['expressions'].items():
            if not osp.exists(osp.join(pred_dir, video_id)):
                scores[(video_id, exp_id)] = [0, 0, 0, 0]
            else:
                scores[(video_id, exp_id)] = reference_expression(pred_dir, split['ann'], video_id, exp_id,
                                                                  exp['obj_id'], video['frames'], key_frames)
    return scores


def reference_table(values):
    """What a script prints: means of J, F, tIoU, vIoU and (mean J + mean F) / 2."""
    j, f, tiou, viou = (np.mean([v[k] for v in values]) for k in range(4))
    return {'J': j, 'F': f, 'J&F': (j + f) / 2, 'tIoU': tiou, 'vIoU': viou}


def reference_summary(split, key_frames=False):
    meta = json.load(open(split['meta']))['videos']
    scores = reference_scores(split, key_frames)
    types = {(v, e): exp['type'] for v, video in meta.items() for e, exp in video['expressions'].items()}
    tables = {t: reference_table([s for k, s in scores.items() if types[k] == value]) for t, value in TABLES.items()}
    pooled = list(scores.values()) if key_frames else [s for k, s in scores.items() if types[k] in TABLES.values()]
    tables['overall'] = reference_table(pooled)
    return tables, scores


def assert_tables_equal(ours, reference):
    assert list(ours) == ['static', 'dynamic', 'hybrid', 'overall']
    for table, values in reference.items():
        assert list(ours[table]) == ['J', 'F', 'J&F', 'tIoU', 'vIoU']
        for key, value in values.items():
            assert abs(ours[table][key] - value) <= TOL, (table, key, ours[table][key], value)


@pytest.fixture(scope='module')
def split(tmp_path_factory):
    return make_long_rvos_split(str(tmp_path_factory.mktemp('long_rvos')))


# ----------------------------------------------------------- the offline evaluator
@pytest.mark.parametrize('workers', [0, 2])
def test_equals_official_rules(split, workers):
    summary, rows = evaluate_long_rvos_predictions(split['pred'], split['meta'], split['ann'], workers=workers)
    reference, scores = reference_summary(split)
    assert_tables_equal(summary, reference)
    assert [(r['video'], r['exp_id']) for r in rows] == list(scores)
    for row in rows:
        expected = scores[(row['video'], row['exp_id'])]
        assert [row[k] for k in ('J', 'F', 'tIoU', 'vIoU')] == pytest.approx(expected, abs=TOL)
        assert row['J&F'] == pytest.approx((expected[0] + expected[1]) / 2, abs=TOL)
    # the cases are there: no-target expressions scored 1 when nothing is predicted, objects absent in frames
    no_target = [r for r in rows if r['obj_id'] == '9' and r['video'] == 'vid_a']
    assert no_target and no_target[0]['tIoU'] == no_target[0]['vIoU'] == no_target[0]['J'] == 1.0
    assert all(0.0 <= r['tIoU'] <= 1.0 and r['vIoU'] <= r['tIoU'] + TOL for r in rows)


def test_missing_video_and_counts(split):
    _, rows = evaluate_long_rvos_predictions(split['pred'], split['meta'], split['ann'])
    missing = [r for r in rows if r['video'] == MISSING_VIDEO]
    assert missing and all(r['prediction'] == 'missing' and r['J'] == r['F'] == r['tIoU'] == r['vIoU'] == 0
                           for r in missing)
    counts = long_rvos_counts(rows)
    per_video = len(EXPRESSIONS)
    assert counts['expressions'] == per_video * len(VIDEOS)
    assert (counts['static'], counts['dynamic'], counts['hybrid'], counts['other_type']) == \
        (2 * len(VIDEOS), 2 * len(VIDEOS), 2 * len(VIDEOS), len(VIDEOS))
    assert counts['missing_videos'] == [MISSING_VIDEO] and counts['expressions_of_missing_videos'] == per_video
    written = sum(len(os.listdir(osp.join(split['pred'], v, e))) for v in os.listdir(split['pred'])
                  for e in os.listdir(osp.join(split['pred'], v)))
    scored = sum(r['num_frames'] for r in rows)
    assert counts['frames_without_prediction'] == scored - written > 0


def test_official_json_layout(split):
    _, rows = evaluate_long_rvos_predictions(split['pred'], split['meta'], split['ann'])
    static = official_per_type_json(rows, 'static')
    assert sorted(static) == sorted(f'{v}_{e}' for v, *_ in VIDEOS for e in ('0', '4'))
    assert all(len(v) == 4 for v in static.values())
    # an expression of another type is in none of the per-type files and not in overall
    assert not any(k.endswith('_6') for t in TABLES for k in official_per_type_json(rows, t))


@pytest.mark.parametrize('workers', [0, 2])
def test_only_predicted_frames_equals_eval_pred_frame(split, workers):
    summary, rows = evaluate_long_rvos_predictions(split['pred_key'], split['meta'], split['ann'], workers=workers,
                                                   only_predicted_frames=True)
    reference, scores = reference_summary(split, key_frames=True)
    assert_tables_equal(summary, reference)
    for row in rows:
        assert [row[k] for k in ('J', 'F', 'tIoU', 'vIoU')] == pytest.approx(scores[(row['video'], row['exp_id'])],
                                                                            abs=TOL)
    extra = next(r for r in rows if (r['video'], r['exp_id']) == ('vid_a', '2'))
    assert extra['num_frames'] == 5 + 1  # the key frames 0, 2, 4, 6, 8 and the unlisted file
    # overall pools every expression (eval_pred_frame.py reads no type), those of type 'other' included
    without_other = reference_table([s for k, s in scores.items() if k[1] != '6'])
    assert abs(summary['overall']['J'] - without_other['J']) > 1e-6


def test_only_predicted_frames_needs_no_type(tmp_path, split):
    meta = json.load(open(split['meta']))
    for video in meta['videos'].values():
        for exp in video['expressions'].values():
            del exp['type']
    path = str(tmp_path / 'meta.json')
    json.dump(meta, open(path, 'w'))
    summary, _ = evaluate_long_rvos_predictions(split['pred_key'], path, split['ann'], only_predicted_frames=True)
    reference, _ = reference_summary(split, key_frames=True)
    assert abs(summary['overall']['J&F'] - reference['overall']['J&F']) <= TOL
    assert all(math.isnan(summary[t]['J']) for t in TABLES)  # np.mean([]) of the official scripts
    with pytest.raises(ValueError, match=r"video 'vid_a', expression '0': no field 'type'"):
        evaluate_long_rvos_predictions(split['pred_key'], path, split['ann'])


def test_empty_type_is_nan(tmp_path, split):
    meta = json.load(open(split['meta']))
    for video in meta['videos'].values():
        for exp in video['expressions'].values():
            exp['type'] = 'static' if exp['type'] == 'dynamic' else exp['type']
    path = str(tmp_path / 'meta.json')
    json.dump(meta, open(path, 'w'))
    summary, _ = evaluate_long_rvos_predictions(split['pred'], path, split['ann'])
    assert all(math.isnan(v) for v in summary['dynamic'].values())
    assert not math.isnan(summary['overall']['J&F'])


def _copy_pred(split, tmp_path):
    pred = str(tmp_path / 'pred')
    shutil.copytree(split['pred'], pred)
    return pred


@pytest.mark.parametrize('workers', [0, 2])
def test_errors_name_the_file(tmp_path, split, workers):
    """Where the official scripts crash in a worker (and average over fewer expressions), we raise."""
    pred = _copy_pred(split, tmp_path)
    shutil.rmtree(osp.join(pred, 'vid_b', '3'))
    with pytest.raises(FileNotFoundError, match=r"vid_b/3 not found .*expression '3'"):
        evaluate_long_rvos_predictions(pred, split['meta'], split['ann'], workers=workers)
    pred = _copy_pred(split, tmp_path / 'a')
    os.remove(osp.join(pred, 'vid_c', '1', '00000.png'))
    with pytest.raises(FileNotFoundError, match=r'vid_c/1/00000.png of the first frame'):
        evaluate_long_rvos_predictions(pred, split['meta'], split['ann'], workers=workers)
    pred = _copy_pred(split, tmp_path / 'b')
    with open(osp.join(pred, 'vid_a', '5', '00000.png'), 'w') as f:
        f.write('not a png')
    with pytest.raises(ValueError, match=r'unreadable prediction .*vid_a/5/00000.png'):
        evaluate_long_rvos_predictions(pred, split['meta'], split['ann'], workers=workers)
    pred = _copy_pred(split, tmp_path / 'c')
    name = sorted(os.listdir(osp.join(pred, 'vid_b', '2')))[-1]
    cv2.imwrite(osp.join(pred, 'vid_b', '2', name), np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match=rf'prediction .*vid_b/2/{name} is 10x10 \(H x W\) but'):
        evaluate_long_rvos_predictions(pred, split['meta'], split['ann'], workers=workers)


def test_ground_truth_of_another_size(tmp_path, split):
    ann = str(tmp_path / 'Annotations')
    shutil.copytree(split['ann'], ann)
    path = osp.join(ann, 'vid_a', '2', '00001.png')
    cv2.imwrite(path, np.zeros((5, 5), np.uint8))
    with pytest.raises(ValueError, match=r'ground truth .*vid_a/2/00001.png is 5x5'):
        evaluate_long_rvos_predictions(split['pred'], split['meta'], ann)


@pytest.mark.parametrize('field,value,message', [
    ('obj_id', [1, 2], "field 'obj_id' must be one object id"),
    ('obj_id', None, "field 'obj_id' must be one object id"),
    ('type', 3, "field 'type' must be a string"),
])
def test_malformed_meta(tmp_path, split, field, value, message):
    meta = json.load(open(split['meta']))
    meta['videos']['vid_b']['expressions']['1'][field] = value
    path = str(tmp_path / 'meta.json')
    json.dump(meta, open(path, 'w'))
    with pytest.raises(ValueError, match=rf"video 'vid_b', expression '1': {message}"):
        evaluate_long_rvos_predictions(split['pred'], path, split['ann'])


def test_bad_arguments(split, tmp_path):
    with pytest.raises(FileNotFoundError, match='prediction folder'):
        evaluate_long_rvos_predictions(str(tmp_path / 'none'), split['meta'], split['ann'])
    with pytest.raises(FileNotFoundError, match='ground-truth folder'):
        evaluate_long_rvos_predictions(split['pred'], split['meta'], str(tmp_path / 'none'))
    with pytest.raises(ValueError, match='workers'):
        evaluate_long_rvos_predictions(split['pred'], split['meta'], split['ann'], workers=-1)


# ----------------------------------------------------------- LongRVOSMetric
def _samples(split, key_frames=False, videos=None):
    """One sample per expression with a prediction, as the test loop passes them (``pred_masks`` of the
    scored frames)."""
    meta = json.load(open(split['meta']))['videos']
    samples = []
    for (video_id, exp_id), pred in split['preds'].items():
        if videos is not None and video_id not in videos:
            continue
        frames = meta[video_id]['frames']
        inds = list(range(0, len(frames), 2)) if key_frames else list(range(len(frames)))
        samples.append(dict(video_id=video_id, exp_id=exp_id, frame_ids=[frames[i] for i in inds],
                            ori_shape=pred.shape[1:], pred_masks=torch.from_numpy(pred[inds])))
    return samples


def _metric(split, **kwargs):
    return METRICS.build(dict(type='LongRVOSMetric', meta_file=split['meta'], annotations_dir=split['ann'], **kwargs))


def test_metric_equals_official_rules(split):
    """Two ranks (the second padded with a duplicate, as DefaultSampler does), gathered: the numbers of
    the offline evaluator, which equal the official ones; the missing video scores 0."""
    samples = _samples(split)
    ranks = [_metric(split), _metric(split)]
    half = (len(samples) + 1) // 2
    for rank, chunk in enumerate((samples[:half], samples[half:] + samples[:1])):
        for sample in chunk:
            ranks[rank].process({}, [sample])
    metrics = ranks[0].compute_metrics(ranks[0].results + ranks[1].results)
    reference, _ = reference_summary(split)
    for table, values in reference.items():
        for key, value in values.items():
            assert abs(metrics[f'{table}/{key}'] - value) <= TOL, (table, key)
    assert len(metrics) == 20


def test_metric_only_predicted_frames(split):
    metric = _metric(split, only_predicted_frames=True)
    for sample in _samples(split, key_frames=True):
        metric.process({}, [sample])
    metrics = metric.compute_metrics(metric.results)
    # the samples hold the key frames; the key-frame folder of (vid_a, 2) also holds an unlisted file,
    # which the reference (reading the folder, as eval_pred_frame.py) must not see here
    extra = osp.join(split['pred_key'], 'vid_a', '2', 'zz_extra.png')
    aside = osp.join(split['pred_key'], 'zz_extra.png')
    os.rename(extra, aside)
    try:
        reference, _ = reference_summary(split, key_frames=True)
    finally:
        os.rename(aside, extra)
    for key, value in reference['overall'].items():
        assert abs(metrics[f'overall/{key}'] - value) <= TOL, key


def test_metric_errors(split):
    metric = _metric(split)
    sample = _samples(split)[0]
    bad = dict(sample, frame_ids=sample['frame_ids'][1:], pred_masks=sample['pred_masks'][1:])
    with pytest.raises(ValueError, match='Long-RVOS scores every frame'):
        metric.process({}, [bad])
    with pytest.raises(ValueError, match='no such video/expression'):
        metric.process({}, [dict(sample, exp_id='99')])
    partial = _metric(split)
    partial.process({}, [sample])
    with pytest.raises(ValueError, match='have no prediction although other expressions of their video do'):
        partial.compute_metrics(partial.results)
    keyed = _metric(split, only_predicted_frames=True)
    with pytest.raises(ValueError, match='distinct frames of the video'):
        keyed.process({}, [dict(sample, frame_ids=['00000'] * len(sample['frame_ids']))])
    assert isinstance(metric, LongRVOSMetric)
