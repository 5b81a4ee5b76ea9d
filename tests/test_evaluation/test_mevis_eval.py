"""MeViS evaluation: offline evaluator (tools/analysis_tools/eval_mevis.py), MeViSMetric and the
submission writer, against an independent implementation of the official rules written here."""
import json
import math
import multiprocessing
import os
import os.path as osp
import re
import subprocess
import sys
import warnings
import zipfile

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from scipy import ndimage

from soc_mm.evaluation import MeViSMetric, evaluate_mevis_predictions
from soc_mm.registry import METRICS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MISSING_VIDEO = 'vid_d'

# (video, number of frames, (H, W), number of expressions); boundary tolerances ceil(0.008 * diagonal)
# = 1, 1, 2, 3, 1 pixels; 23 expressions with predictions (odd: a 2-rank sampler pads one)
VIDEOS = [('vid_a', 5, (30, 40), 6), ('vid_b', 4, (33, 47), 6), ('vid_c', 3, (120, 200), 5),
          ('vid_e', 3, (200, 300), 6), (MISSING_VIDEO, 4, (25, 25), 6)]
# anno_id lists of the expressions, as indices into the video's 3 objects
EXPRESSIONS = [[], [0], [0, 1], [0, 1, 2], [2], [1, 2]]


def _random_object(rng, num_frames, height, width):
    """bool [T, H, W] of a moving ellipse, absent (all False) in some frames."""
    masks = np.zeros((num_frames, height, width), np.uint8)
    cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
    ay, ax = rng.uniform(0.05, 0.3) * height, rng.uniform(0.05, 0.3) * width
    for t in range(num_frames):
        if rng.random() < 0.2:
            continue
        center = (int(cx + rng.normal(0, 3)), int(cy + rng.normal(0, 3)))
        cv2.ellipse(masks[t], center, (max(int(ax), 1), max(int(ay), 1)), rng.uniform(0, 180), 0, 360, 1, -1)
    return masks.astype(bool)


def _random_prediction(rng, gt):
    """bool [T, H, W]: per frame the truth, nothing, a shifted truth or a random blob."""
    pred = np.zeros_like(gt)
    height, width = gt.shape[1:]
    for t in range(gt.shape[0]):
        kind = rng.integers(4)
        if kind == 0:
            pred[t] = gt[t]
        elif kind == 2:
            pred[t] = np.roll(gt[t], tuple(rng.integers(-4, 5, size=2)), axis=(0, 1))
        elif kind == 3:
            blob = np.zeros((height, width), np.uint8)
            cv2.circle(blob, (int(rng.integers(width)), int(rng.integers(height))), int(rng.integers(1, 12)), 1, -1)
            pred[t] = blob.astype(bool) | (gt[t] & (rng.random() < 0.5))
    return pred


def make_mevis_split(root, seed=0):
    """A small MeViS-format split (meta_expressions.json, mask_dict.json) and predictions.

    Returns:
        dict with ``meta``, ``mask_dict`` (paths), ``videos`` {video: (frames, objects [3, T, H, W], anno ids)},
        ``gt`` {(video, exp): bool [T, H, W]} and ``pred`` {(video, exp): bool [T, H, W]} for every
        expression (also those of MISSING_VIDEO, whose PNGs :func:`write_predictions` leaves out).
    """
    rng = np.random.default_rng(seed)
    meta, mask_dict, videos, gts, preds = {'videos': {}}, {}, {}, {}, {}
    next_anno = 100
    for video_id, num_frames, (height, width), num_exps in VIDEOS:
        frames = [f'{t:05d}' for t in range(num_frames)]
        objects = np.stack([_random_object(rng, num_frames, height, width) for _ in range(3)])
        anno_ids = list(range(next_anno, next_anno + 3))
        next_anno += 3
        for anno_id, obj in zip(anno_ids, objects):
            mask_dict[str(anno_id)] = [None if not m.any() else
                                       {'size': [height, width],
                                        'counts': mask_utils.encode(np.asfortranarray(m, np.uint8))['counts'].decode()}
                                       for m in obj]
        exps = {}
        for e, objs in enumerate(EXPRESSIONS[:num_exps]):
            exps[str(e)] = {'exp': f'object(s) {objs} of {video_id}', 'obj_id': objs,
                            'anno_id': [anno_ids[o] for o in objs]}
            gt = np.zeros((num_frames, height, width), bool)
            for o in objs:
                gt |= objects[o]
            gts[(video_id, str(e))] = gt
            preds[(video_id, str(e))] = _random_prediction(rng, gt)
        preds[(video_id, '0')][:] = False  # no object referred and none predicted: J = F = 1 per frame
        meta['videos'][video_id] = {'frames': frames, 'expressions': exps}
        videos[video_id] = (frames, objects, anno_ids)
    os.makedirs(root, exist_ok=True)
    paths = dict(meta=osp.join(root, 'meta_expressions.json'), mask_dict=osp.join(root, 'mask_dict.json'))
    with open(paths['meta'], 'w') as f:
        json.dump(meta, f)
    with open(paths['mask_dict'], 'w') as f:
        json.dump(mask_dict, f)
    return dict(paths, videos=videos, gt=gts, pred=preds)


def write_predictions(split, pred_dir, seed=1):
    """PNGs <pred_dir>/<video>/<exp>/<frame>.png of every video but MISSING_VIDEO; foreground is
    written as 255 or another non-zero grey (the official reader counts every non-zero pixel)."""
    rng = np.random.default_rng(seed)
    for (video_id, exp_id), pred in split['pred'].items():
        if video_id == MISSING_VIDEO:
            continue
        exp_dir = osp.join(pred_dir, video_id, exp_id)
        os.makedirs(exp_dir, exist_ok=True)
        frames = split['videos'][video_id][0]
        for frame, mask in zip(frames, pred):
            value = int(rng.choice([255, 1, 77]))
            assert cv2.imwrite(osp.join(exp_dir, f'{frame}.png'), mask.astype(np.uint8) * value)
    return pred_dir


# ----------------------------------------------------------- the official rules, written independently
def _reference_boundary(mask):
    """seg2bmap: differs from its east, south or south-east neighbour (zero outside); last row only
    east, last column only south, bottom-right corner never."""
    padded = np.pad(mask, ((0, 1), (0, 1)))
    east, south, south_east = padded[:-1, 1:], padded[1:, :-1], padded[1:, 1:]
    bound = (mask != east) | (mask != south) | (mask != south_east)
    bound[-1, :] = mask[-1, :] != east[-1, :]
    bound[:, -1] = mask[:, -1] != south[:, -1]
    bound[-1, -1] = False
    return bound


def _reference_frame_jf(pred, gt):
    union = np.count_nonzero(pred | gt)
    j = 1.0 if union == 0 else np.count_nonzero(pred & gt) / union
    radius = math.ceil(0.008 * math.hypot(*pred.shape))
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    disk = yy ** 2 + xx ** 2 <= radius ** 2
    pred_b, gt_b = _reference_boundary(pred), _reference_boundary(gt)
    n_pred, n_gt = np.count_nonzero(pred_b), np.count_nonzero(gt_b)
    if n_pred == 0 and n_gt == 0:
        precision = recall = 1.0
    elif n_pred == 0:
        precision, recall = 1.0, 0.0
    elif n_gt == 0:
        precision, recall = 0.0, 1.0
    else:
        precision = np.count_nonzero(pred_b & ndimage.binary_dilation(gt_b, structure=disk)) / n_pred
        recall = np.count_nonzero(gt_b & ndimage.binary_dilation(pred_b, structure=disk)) / n_gt
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return j, f


def reference_mevis(split, pred_dir):
    """Official rules from the files alone: GT = union of the anno_ids' RLEs, prediction = non-zero
    pixels of the PNGs, a video folder missing -> every expression J = F = 0."""
    with open(split['meta']) as f:
        meta = json.load(f)['videos']
    with open(split['mask_dict']) as f:
        mask_dict = json.load(f)
    per_exp = {}
    for video_id, video in meta.items():
        for exp_id, exp in video['expressions'].items():
            if not osp.isdir(osp.join(pred_dir, video_id)):
                per_exp[(video_id, exp_id)] = (0.0, 0.0)
                continue
            js, fs = [], []
            for t, frame in enumerate(video['frames']):
                pred = cv2.imread(osp.join(pred_dir, video_id, exp_id, f'{frame}.png'), cv2.IMREAD_UNCHANGED) > 0
                gt = np.zeros(pred.shape, bool)
                for anno_id in exp['anno_id']:
                    rle = mask_dict[str(anno_id)][t]
                    if rle is not None:
                        with warnings.catch_warnings():  # pycocotools' numpy-2 copy-keyword warning
                            warnings.simplefilter('ignore', DeprecationWarning)
                            gt |= mask_utils.decode({'size': rle['size'], 'counts': rle['counts'].encode()}) > 0
                j, f = _reference_frame_jf(pred, gt)
                js.append(j)
                fs.append(f)
            per_exp[(video_id, exp_id)] = (float(np.mean(js)), float(np.mean(fs)))
    j_mean = float(np.mean([v[0] for v in per_exp.values()]))
    f_mean = float(np.mean([v[1] for v in per_exp.values()]))
    return per_exp, {'J': j_mean, 'F': f_mean, 'J&F': (j_mean + f_mean) / 2}


def _run_tool(*args):
    """tools/analysis_tools/eval_mevis.py as users run it -> the finished process (stdout, stderr as text)."""
    from conftest import subprocess_env
    return subprocess.run([sys.executable, osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'eval_mevis.py'),
                           *map(str, args)], capture_output=True, text=True, timeout=300, env=subprocess_env())


def _samples(split, videos=None):
    """One data sample per expression, as the model's test step gives them."""
    samples = []
    for (video_id, exp_id), pred in split['pred'].items():
        if videos is not None and video_id not in videos:
            continue
        samples.append(dict(video_id=video_id, exp_id=exp_id, frame_ids=list(split['videos'][video_id][0]),
                            valid_frame_idx=None, ori_shape=pred.shape[1:], pred_masks=torch.from_numpy(pred)))
    return samples


@pytest.fixture(scope='module')
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp('mevis')
    data = make_mevis_split(str(root / 'valid_u'))
    data['pred_dir'] = write_predictions(data, str(root / 'pred'))
    return data


# ----------------------------------------------------------------------------------------- tests
def test_split_covers_the_cases(split):
    """The generated data exercises what the rules distinguish."""
    with open(split['meta']) as f:
        meta = json.load(f)['videos']
    assert {len(e['anno_id']) for v in meta.values() for e in v['expressions'].values()} == {0, 1, 2, 3}
    with open(split['mask_dict']) as f:
        assert any(rle is None for rles in json.load(f).values() for rle in rles)
    preds = [p for (v, _), p in split['pred'].items() if v != MISSING_VIDEO]
    gts = [split['gt'][k] for k in split['pred'] if k[0] != MISSING_VIDEO]
    assert any(not p[t].any() and g[t].any() for p, g in zip(preds, gts) for t in range(len(p)))  # missed
    assert any(p[t].any() and not g[t].any() for p, g in zip(preds, gts) for t in range(len(p)))  # false alarm
    assert not osp.exists(osp.join(split['pred_dir'], MISSING_VIDEO))


def test_offline_evaluator_equals_official_rules(split, tmp_path):
    ref_per_exp, ref = reference_mevis(split, split['pred_dir'])
    assert 0.1 < ref['J&F'] < 0.9  # neither trivial nor perfect
    assert ref_per_exp[('vid_a', '0')] == (1.0, 1.0) and ref_per_exp[(MISSING_VIDEO, '3')] == (0.0, 0.0)

    result = evaluate_mevis_predictions(split['pred_dir'], split['meta'], split['mask_dict'])
    for key in ('J', 'F', 'J&F'):
        assert result.metrics[key] == pytest.approx(ref[key], abs=1e-9), key
    assert list(result.per_expression) == list(ref_per_exp)
    for key, (j, f) in ref_per_exp.items():
        assert result.per_expression[key] == pytest.approx((j, f), abs=1e-9), key

    # the tool prints the same numbers and writes the per-expression scores with --out
    out = tmp_path / 'per_expression.json'
    proc = _run_tool(split['pred_dir'], '--meta-expressions', split['meta'], '--mask-dict', split['mask_dict'],
                     '--out', out)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert f'missing videos: 1 of {len(VIDEOS)} (6 expressions scored J = F = 0): {MISSING_VIDEO}' in lines
    printed = {line.split(': ')[0]: float(line.split(': ')[1]) for line in lines[-3:]}
    assert list(printed) == ['J', 'F', 'J&F']
    assert printed == {k: result.metrics[k] for k in printed}
    saved = json.loads(out.read_text())  # the official save_name layout
    assert saved == {f'{v}_{e}': [j, f] for (v, e), (j, f) in result.per_expression.items()}


def test_workers_give_identical_results(split):
    one = evaluate_mevis_predictions(split['pred_dir'], split['meta'], split['mask_dict'], workers=1)
    two = evaluate_mevis_predictions(split['pred_dir'], split['meta'], split['mask_dict'], workers=2)
    assert two.metrics == one.metrics
    assert list(two.per_expression.items()) == list(one.per_expression.items())
    assert two.missing_videos == one.missing_videos == [MISSING_VIDEO]


def _copy_predictions(split, dst):
    import shutil
    shutil.copytree(split['pred_dir'], dst)
    return str(dst)


@pytest.mark.parametrize('workers', [1, 2])
def test_missing_frame_png_is_an_error_naming_it(split, tmp_path, workers):
    pred_dir = _copy_predictions(split, tmp_path / 'pred')
    missing = osp.join(pred_dir, 'vid_b', '2', '00003.png')
    os.remove(missing)
    with pytest.raises(FileNotFoundError, match=f'missing prediction {re.escape(missing)} '):
        evaluate_mevis_predictions(pred_dir, split['meta'], split['mask_dict'], workers=workers)
    if workers == 2:  # the tool: the same message, exit status 1
        proc = _run_tool(pred_dir, '--meta-expressions', split['meta'], '--mask-dict', split['mask_dict'],
                         '--workers', workers)
        assert proc.returncode == 1 and proc.stdout == ''
        assert f'eval_mevis.py: error: missing prediction {missing} ' in proc.stderr, proc.stderr


def test_unreadable_png_and_wrong_size_are_errors_naming_them(split, tmp_path):
    pred_dir = _copy_predictions(split, tmp_path / 'pred')
    broken = osp.join(pred_dir, 'vid_c', '4', '00001.png')
    with open(broken, 'wb') as f:
        f.write(b'not a png')
    with pytest.raises(ValueError, match=f'unreadable prediction {re.escape(broken)}: not a PNG file'):
        evaluate_mevis_predictions(pred_dir, split['meta'], split['mask_dict'], workers=2)
    cv2.imwrite(broken, np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match=f'prediction {re.escape(broken)} is 10x10 .H x W. but '
                       r'(.*00000.png|its ground truth .mask_dict.json.) is 120x200'):
        evaluate_mevis_predictions(pred_dir, split['meta'], split['mask_dict'])


def _png_header(height, width):
    """The first bytes of a 1-bit grayscale PNG declaring ``height`` x ``width`` pixels (no image data)."""
    import struct
    import zlib
    ihdr = struct.pack('>IIBBBBB', width, height, 1, 0, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + struct.pack('>I', 13) + b'IHDR' + ihdr
            + struct.pack('>I', zlib.crc32(b'IHDR' + ihdr)))


def test_png_sizes_are_checked_from_the_header_before_decoding(tmp_path):
    """A few bytes of PNG that declare 12000 x 12000 pixels are refused unread (OpenCV would decode 144 MB
    per frame); a frame whose header disagrees with the first frame's is named before any is decoded."""
    pred_dir, meta, mask_dict, firsts = _tiny_split(str(tmp_path), num_exps=1, num_frames=3)
    with open(firsts[0], 'wb') as f:
        f.write(_png_header(12000, 12000))
    with pytest.raises(ValueError, match=f'prediction {re.escape(firsts[0])} declares 12000x12000 .H x W. '
                       'pixels, more than the 67108864 a mask may have here .not decoded.'):
        evaluate_mevis_predictions(pred_dir, meta, mask_dict)
    cv2.imwrite(firsts[0], np.zeros((8, 8), np.uint8))
    last = firsts[0].replace('00000.png', '00002.png')
    with open(last, 'wb') as f:
        f.write(_png_header(9, 8))  # not decodable: only its header is read
    with pytest.raises(ValueError, match=f'prediction {re.escape(last)} is 9x8 .H x W. but '
                       f'{re.escape(firsts[0])} is 8x8'):
        evaluate_mevis_predictions(pred_dir, meta, mask_dict)


def _tiny_split(root, num_exps=4, num_frames=2, size=(8, 8)):
    """One video of ``num_exps`` expressions (no object each, so an empty PNG scores J = F = 1) with
    their prediction PNGs: ``(pred_dir, meta, mask_dict, [png of expression e's first frame])``."""
    frames = [f'{t:05d}' for t in range(num_frames)]
    meta = {'videos': {'v': {'frames': frames, 'expressions': {
        str(e): {'exp': f'e{e}', 'anno_id': []} for e in range(num_exps)}}}}
    paths = (osp.join(root, 'meta.json'), osp.join(root, 'mask_dict.json'))
    for path, data in zip(paths, (meta, {})):
        with open(path, 'w') as f:
            json.dump(data, f)
    firsts = []
    for e in range(num_exps):
        os.makedirs(osp.join(root, 'pred', 'v', str(e)))
        for frame in frames:
            assert cv2.imwrite(osp.join(root, 'pred', 'v', str(e), f'{frame}.png'), np.zeros(size, np.uint8))
        firsts.append(osp.join(root, 'pred', 'v', str(e), f'{frames[0]}.png'))
    return osp.join(root, 'pred'), paths[0], paths[1], firsts


@pytest.mark.timeout(300)
def test_worker_errors_never_hang_the_pool(tmp_path):
    """200 evaluations with 2 worker processes whose tasks fail (first task, last, several at once,
    every kind of error the reader raises): each raises the worker's error naming the file, and none
    hangs (the old ``Pool.__exit__`` could, now and then, block forever in its task handler)."""
    num_exps = 4
    pred_dir, meta, mask_dict, firsts = _tiny_split(str(tmp_path), num_exps)
    good = evaluate_mevis_predictions(pred_dir, meta, mask_dict, workers=2)
    assert good.metrics == {'J': 1.0, 'F': 1.0, 'J&F': 1.0}
    small = cv2.imencode('.png', np.zeros((8, 8), np.uint8))[1].tobytes()
    other_size = cv2.imencode('.png', np.zeros((5, 8), np.uint8))[1].tobytes()
    cases = [([0], 'unreadable'), ([num_exps - 1], 'unreadable'), ([0, 1, 2, num_exps - 1], 'unreadable'),
             ([0], 'missing'), ([num_exps - 1], 'missing'), ([1, num_exps - 1], 'missing'),
             ([num_exps - 1], 'size'), ([0, num_exps - 1], 'size')]
    for i in range(200):
        broken, kind = cases[i % len(cases)]
        paths = [firsts[e] for e in broken]
        for path in paths:
            if kind == 'unreadable':
                with open(path, 'wb') as f:
                    f.write(b'not a png')
            elif kind == 'missing':
                os.remove(path)
            else:  # the second frame has another size than the first
                with open(path.replace('00000.png', '00001.png'), 'wb') as f:
                    f.write(other_size)
        expected = {'unreadable': ValueError, 'missing': FileNotFoundError, 'size': ValueError}[kind]
        with pytest.raises(expected) as info:
            evaluate_mevis_predictions(pred_dir, meta, mask_dict, workers=2)
        assert any(osp.dirname(path) in str(info.value) for path in paths), (i, kind, str(info.value))
        assert 'in the worker evaluating video' in str(info.value.__cause__)  # the worker's traceback
        for path in paths:  # repair
            for target in (path, path.replace('00000.png', '00001.png')):
                with open(target, 'wb') as f:
                    f.write(small)
    assert evaluate_mevis_predictions(pred_dir, meta, mask_dict, workers=2).metrics == good.metrics


class _Unpicklable(Exception):

    def __init__(self, path, reason):  # two required args: pickling the instance fails to rebuild it
        super().__init__(f'{path}: {reason}')


@pytest.mark.skipif(multiprocessing.get_start_method() != 'fork', reason='patches the worker through fork')
def test_unpicklable_worker_error_and_dead_worker_are_reported(tmp_path, monkeypatch):
    from soc_mm.evaluation.functional import mevis
    pred_dir, meta, mask_dict, firsts = _tiny_split(str(tmp_path), 4)

    def read_unpicklable(path):
        raise _Unpicklable(path, 'custom reader error')

    monkeypatch.setattr(mevis, 'read_mask_png', read_unpicklable)
    # every task fails; the first failed task (in task order) among those that ran is raised
    named = '|'.join(re.escape(path) for path in firsts)
    with pytest.raises(RuntimeError, match=f'_Unpicklable: ({named}): custom reader error'):
        evaluate_mevis_predictions(pred_dir, meta, mask_dict, workers=2)

    def die(path):
        os._exit(3)  # a worker killed (e.g. out of memory) returns nothing

    monkeypatch.setattr(mevis, 'read_mask_png', die)
    with pytest.raises(RuntimeError, match='worker process died'):
        evaluate_mevis_predictions(pred_dir, meta, mask_dict, workers=2)


def _emulate_dist(split, samples, world_size=2):
    """mmengine's DefaultSampler(round_up=True) split over ranks, each rank's MeViSMetric.process, the
    results collected in rank-interleaved order (collect_results_cpu), then rank 0's compute_metrics."""
    total = -(-len(samples) // world_size) * world_size
    padded = (list(range(len(samples))) * 2)[:total]
    parts = []
    for rank in range(world_size):
        metric = MeViSMetric(meta_file=split['meta'], mask_dict_file=split['mask_dict'])
        for i in padded[rank:total:world_size]:
            metric.process({}, [samples[i]])
        parts.append(metric.results)
    gathered = [r for group in zip(*parts) for r in group]
    return MeViSMetric(meta_file=split['meta'], mask_dict_file=split['mask_dict']).compute_metrics(gathered)


def test_metric_equals_offline_evaluator(split):
    offline = evaluate_mevis_predictions(split['pred_dir'], split['meta'], split['mask_dict'])
    present = [v for v, *_ in VIDEOS if v != MISSING_VIDEO]
    samples = _samples(split, videos=present)
    assert len(samples) == 23
    metric = METRICS.build(dict(type='MeViSMetric', meta_file=split['meta'], mask_dict_file=split['mask_dict']))
    metric.process({}, samples)
    metrics = metric.evaluate(len(samples))
    assert metrics == {f'mevis/{k}': v for k, v in offline.metrics.items()}
    # two ranks, odd number of samples (the sampler pads with a duplicate): same numbers
    assert _emulate_dist(split, samples) == _emulate_dist(split, samples, world_size=1) == offline.metrics
    # without vid_a (a whole video missing scores 0 like vid_d)
    without_a = [s for s in samples if s['video_id'] != 'vid_a']
    assert _emulate_dist(split, without_a) == _emulate_dist(split, without_a, world_size=1)
    assert _emulate_dist(split, without_a)['J'] < offline.metrics['J']


def test_metric_sample_errors(split):
    metric = MeViSMetric(meta_file=split['meta'], mask_dict_file=split['mask_dict'])
    sample = _samples(split, videos=['vid_a'])[2]
    with pytest.raises(ValueError, match=r"exp_id='9'\): no such video/expression in .*meta_expressions.json"):
        metric.process({}, [dict(sample, exp_id='9')])
    with pytest.raises(ValueError, match=r"predicted frames \['00000', '00002'\]\.\.\. \(2\) are not the video's "
                                         r"5 frames"):
        metric.process({}, [dict(sample, pred_masks=sample['pred_masks'][[0, 2]], valid_frame_idx=[0, 2])])
    # some expressions of a video predicted, others not: not scorable by the official rules
    metric.process({}, _samples(split, videos=['vid_a'])[:-1])
    with pytest.raises(ValueError, match=r"1 expression\(s\) of .* have no prediction although other expressions "
                                         r"of their video do, e.g. \(video_id, exp_id\) \[\('vid_a', '5'\)\]"):
        metric.compute_metrics(metric.results)


def test_submission_zip_layout_and_round_trip(split, tmp_path):
    samples = _samples(split)
    out_dir = tmp_path / 'work'
    metric = METRICS.build(dict(type='MeViSSubmissionMetric', output_dir=str(out_dir), meta_file=split['meta']))
    metric.process({}, samples)
    assert metric.evaluate(len(samples)) == {}
    with zipfile.ZipFile(out_dir / 'submission.zip') as zf:
        names = zf.namelist()
        zf.extractall(tmp_path / 'unzipped')
    assert {n.split('/')[0] for n in names} == {v for v, *_ in VIDEOS}  # no enclosing folder
    assert 'vid_a/' in names and 'vid_a/3/' in names
    files = sorted(n for n in names if not n.endswith('/'))
    assert files == sorted(f'{v}/{e}/{t}.png' for (v, e) in split['pred'] for t in split['videos'][v][0])
    png = cv2.imread(str(tmp_path / 'unzipped' / 'vid_c' / '3' / '00001.png'), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint8 and np.array_equal(png, split['pred'][('vid_c', '3')][1].astype(np.uint8) * 255)
    assert not (out_dir / 'Annotations').exists()
    # the unzipped submission scores as the metric scores the same samples (no missing video here)
    offline = evaluate_mevis_predictions(str(tmp_path / 'unzipped'), split['meta'], split['mask_dict'])
    assert offline.missing_videos == []
    jf_metric = MeViSMetric(meta_file=split['meta'], mask_dict_file=split['mask_dict'])
    jf_metric.process({}, samples)
    assert jf_metric.compute_metrics(jf_metric.results) == offline.metrics
    assert reference_mevis(split, str(tmp_path / 'unzipped'))[1] == pytest.approx(offline.metrics, abs=1e-9)


def test_bad_split_files_name_the_field(split, tmp_path):
    with open(split['meta']) as f:
        meta = json.load(f)
    del meta['videos']['vid_b']['expressions']['2']['anno_id']  # e.g. the `valid` meta given for `valid_u`
    bad_meta = tmp_path / 'meta_expressions.json'
    bad_meta.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"video 'vid_b', expression '2': 'anno_id' must be a list of annotation "
                                         r'ids \(the keys of mask_dict.json\), got None'):
        evaluate_mevis_predictions(split['pred_dir'], str(bad_meta), split['mask_dict'])
    with open(split['mask_dict']) as f:
        mask_dict = json.load(f)
    anno_id = str(meta['videos']['vid_b']['expressions']['3']['anno_id'][2])
    del mask_dict[anno_id]
    bad_masks = tmp_path / 'mask_dict.json'
    bad_masks.write_text(json.dumps(mask_dict))
    with pytest.raises(ValueError, match=f"video 'vid_b', expression '3': anno_id {anno_id} is not in mask_dict.json"):
        evaluate_mevis_predictions(split['pred_dir'], split['meta'], str(bad_masks))
