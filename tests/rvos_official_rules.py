"""The official evaluation rules of MeViS (``tools/eval_mevis.py`` + ``tools/metrics.py``, v1 and v2) and of the
DAVIS-2017 "unsupervised" evaluation used for Ref-DAVIS17 (``davis2017-evaluation``: ``DAVISEvaluation``,
``Results.read_masks``, ``db_eval_iou``, ``db_eval_boundary``, ``db_statistics``), written independently of
soc_mm (numpy, OpenCV, pycocotools, PIL only) so that the tests compare soc_mm with the rules, not with itself.
"""
import itertools
import json
import math
import os
import os.path as osp

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils


def seg2bmap(seg):
    """One-pixel boundaries: a pixel differs from its east, south or south-east neighbour; the last row
    compares east only, the last column south only, the bottom-right pixel is never a boundary."""
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def disk(radius):
    r = int(radius)
    y, x = np.ogrid[-r:r + 1, -r:r + 1]
    return (x * x + y * y <= r * r).astype(np.uint8)


def f_measure(fg, gt, void=None):
    """Boundary F of one frame (``f_measure``), void pixels removed from both masks first."""
    if void is not None:
        fg = fg & ~void
        gt = gt & ~void
    bound_pix = math.ceil(0.008 * np.linalg.norm(fg.shape))
    fg_b = seg2bmap(fg)
    gt_b = seg2bmap(gt)
    fg_dil = cv2.dilate(fg_b.astype(np.uint8), disk(bound_pix))
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), disk(bound_pix))
    gt_match = gt_b * fg_dil
    fg_match = fg_b * gt_dil
    n_fg, n_gt = np.sum(fg_b), np.sum(gt_b)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = np.sum(fg_match) / float(n_fg)
        recall = np.sum(gt_match) / float(n_gt)
    return 0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def iou(gt, seg, void=None):
    """Jaccard of one frame (``db_eval_iou``): 1 when the union (without void) is empty."""
    keep = np.ones_like(gt, bool) if void is None else ~void
    inter = np.sum(gt & seg & keep)
    union = np.sum((gt | seg) & keep)
    return 1.0 if np.isclose(union, 0) else inter / union


def mevis_official(meta_file, mask_dict_file, pred_dir):
    """``{'<video>_<exp>': [J, F]}`` and ``(J, F, J&F)`` by the official ``eval_mevis.py`` rules: ground truth the
    uint8 sum of the decoded masks of the ``anno_id`` list (``null``: none), predictions read with
    ``cv2.IMREAD_GRAYSCALE`` (non-zero = object), a video without a folder scores [0, 0]."""
    with open(meta_file) as f:
        videos = json.load(f)['videos']
    with open(mask_dict_file) as f:
        mask_dict = json.load(f)
    out = {}
    for vid, video in videos.items():
        for exp, expression in video['expressions'].items():
            name = f'{vid}_{exp}'
            if not osp.exists(osp.join(pred_dir, vid)):
                out[name] = [0, 0]
                continue
            first = cv2.imread(osp.join(pred_dir, vid, exp, '00000.png'), cv2.IMREAD_GRAYSCALE)
            h, w = first.shape
            js, fs = [], []
            for t, frame in enumerate(video['frames']):
                gt = np.zeros((h, w), np.uint8)
                for anno in expression['anno_id']:
                    rle = mask_dict[str(anno)][t]
                    if rle:
                        gt += mask_utils.decode(rle)
                pred = cv2.imread(osp.join(pred_dir, vid, exp, f'{frame}.png'), cv2.IMREAD_GRAYSCALE)
                js.append(iou(gt.astype(bool), pred.astype(bool)))
                fs.append(f_measure(pred.astype(bool), gt.astype(bool)))
            out[name] = [float(np.mean(js)), float(np.mean(fs))]
    j = np.mean([v[0] for v in out.values()])
    f = np.mean([v[1] for v in out.values()])
    return out, (float(j), float(f), float((j + f) / 2))


def db_statistics(values):
    """Mean, recall (> 0.5) and decay of per-frame values, with the official ``uint8`` bin indices."""
    values = np.asarray(values, np.float64)
    mean = np.nanmean(values)
    recall = np.nanmean(values > 0.5)
    ids = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.uint8)
    bins = [values[ids[i]:ids[i + 1] + 1] for i in range(4)]
    return mean, recall, np.nanmean(bins[0]) - np.nanmean(bins[3])


def _read(path):
    return np.array(Image.open(path))


def davis_unsupervised_official(gt_dir, results_dir, videos):
    """``DAVISEvaluation(task='unsupervised').evaluate`` on ``videos`` (``{video: [frame, ...]}``): global table
    (J&F-Mean, J-Mean, J-Recall, J-Decay, F-Mean, F-Recall, F-Decay) and per-object rows. The one-to-one
    matching maximises the summed mean (J + F) / 2 by trying every assignment (no scipy), ties going to the
    assignment ``linear_sum_assignment`` returns for these small matrices (checked unique in the tests)."""
    jm, jr, jd, fm, fr, fd = ([] for _ in range(6))
    per_object = []
    for video, frames in videos.items():
        gt = np.stack([_read(osp.join(gt_dir, video, f'{f}.png')) for f in frames]).astype(np.float64)
        void = gt == 255
        gt[void] = 0
        num_gt = int(np.max(gt[0]))
        gt_objects = [(gt == k) for k in range(1, num_gt + 1)]
        res = np.stack([_read(osp.join(results_dir, video, f'{f}.png')) for f in frames]).astype(np.float64)
        num_res = int(np.max(res))
        res_objects = [(res == k) for k in range(1, num_res + 1)]
        while len(res_objects) < num_gt:
            res_objects.append(np.zeros_like(gt, bool))
        j = np.zeros((len(res_objects), num_gt, len(frames)))
        f = np.zeros_like(j)
        for g in range(num_gt):
            for r, res_obj in enumerate(res_objects):
                for t in range(len(frames)):
                    j[r, g, t] = iou(gt_objects[g][t], res_obj[t], void[t])
                    f[r, g, t] = f_measure(res_obj[t], gt_objects[g][t], void[t])
        score = (j.mean(axis=2) + f.mean(axis=2)) / 2
        best, best_rows = None, None
        for rows in itertools.permutations(range(len(res_objects)), num_gt):
            total = sum(score[r, g] for g, r in enumerate(rows))
            if best is None or total > best + 1e-12:
                best, best_rows = total, rows
        pairs = sorted(zip(best_rows, range(num_gt)))  # in the order of the predicted ids
        for i, (r, g) in enumerate(pairs):
            js, fs = db_statistics(j[r, g]), db_statistics(f[r, g])
            for lst, v in zip((jm, jr, jd, fm, fr, fd), (*js, *fs)):
                lst.append(v)
            per_object.append(dict(video=video, object=i + 1, J=js[0], F=fs[0]))
    table = {'J&F-Mean': (np.mean(jm) + np.mean(fm)) / 2, 'J-Mean': np.mean(jm), 'J-Recall': np.mean(jr),
             'J-Decay': np.mean(jd), 'F-Mean': np.mean(fm), 'F-Recall': np.mean(fr), 'F-Decay': np.mean(fd)}
    return {k: float(v) for k, v in table.items()}, per_object


def write_png(path, array):
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)
