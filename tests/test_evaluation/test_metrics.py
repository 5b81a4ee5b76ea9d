"""soc_mm.evaluation: J&F functions on hand-computed cases and properties, the metrics
(RVOSJFMetric, A2DSentencesMetric vs pycocotools, RefCOCOSegMetric, RefYTVOSSubmissionMetric)
and their errors on bad input."""
import json
import os.path as osp
import zipfile

import numpy as np
import pytest
import torch

import soc_mm  # noqa: F401
from soc_mm.evaluation import (A2DSentencesMetric, RefYTVOSSubmissionMetric, RVOSJFMetric,
                               boundary_f_measure, boundary_map, boundary_tolerance, disk_kernel, jf_per_frame,
                               jf_statistics, merge_object_masks, region_similarity)
from soc_mm.registry import METRICS

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def square(height, width, top, left, side, n=1):
    mask = np.zeros((n, height, width), bool)
    mask[:, top:top + side, left:left + side] = True
    return mask


def brute_force_f(pred, gt, radius):
    """F-measure from the definition: boundary pixels match within Euclidean distance ``radius``."""
    def match(src, dst):
        src_pts, dst_pts = np.argwhere(src), np.argwhere(dst)
        if len(dst_pts) == 0:
            return 0
        d2 = ((src_pts[:, None, :] - dst_pts[None, :, :]) ** 2).sum(-1)
        return int((d2.min(1) <= radius ** 2).sum())
    fb, gb = boundary_map(pred), boundary_map(gt)
    n_fg, n_gt = fb.sum(), gb.sum()
    if n_fg == 0 or n_gt == 0:
        precision, recall = (1.0 if n_fg == 0 else 0.0), (1.0 if n_gt == 0 else 0.0)
    else:
        precision, recall = match(fb, gb) / n_fg, match(gb, fb) / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


# ------------------------------------------------------------------ functions
def test_empty_and_full_masks():
    empty, full = np.zeros((1, 20, 30), bool), np.ones((1, 20, 30), bool)
    assert region_similarity(empty, empty)[0] == 1.0 and boundary_f_measure(empty, empty)[0] == 1.0
    assert region_similarity(full, full)[0] == 1.0 and boundary_f_measure(full, full)[0] == 1.0
    obj = square(20, 30, 5, 5, 6)
    assert region_similarity(empty, obj)[0] == 0.0 and boundary_f_measure(empty, obj)[0] == 0.0
    assert region_similarity(obj, empty)[0] == 0.0 and boundary_f_measure(obj, empty)[0] == 0.0
    # DAVIS quirk kept on purpose: a full mask has no boundary pixel (image borders are not
    # boundaries), so full vs empty has F = 1 while J = 0.
    assert not boundary_map(full).any()
    assert region_similarity(full, empty)[0] == 0.0 and boundary_f_measure(full, empty)[0] == 1.0


def test_one_pixel_objects():
    pix = np.zeros((1, 30, 40), bool)
    pix[0, 10, 10] = True
    # boundary of one pixel: itself and its north, west and north-west neighbours
    assert sorted(map(tuple, np.argwhere(boundary_map(pix[0])))) == [(9, 9), (9, 10), (10, 9), (10, 10)]
    assert region_similarity(pix, pix)[0] == 1.0 and boundary_f_measure(pix, pix)[0] == 1.0
    radius = boundary_tolerance(30, 40)  # ceil(0.008 * 50) = 1
    assert radius == 1.0
    moved = np.roll(pix, 1, axis=2)  # d = 1 <= radius: every boundary pixel matches
    assert region_similarity(pix, moved)[0] == 0.0 and boundary_f_measure(pix, moved)[0] == 1.0
    moved = np.roll(pix, 2, axis=2)  # d = 2: half the boundary pixels on each side match
    assert boundary_f_measure(pix, moved)[0] == pytest.approx(0.5, abs=0)


def test_shifted_squares_non_square_frame():
    # 48x100 frame: tolerance ceil(0.008 * sqrt(48^2 + 100^2)) = ceil(0.887) = 1 pixel.
    assert boundary_tolerance(48, 100) == 1.0
    gt = square(48, 100, 10, 20, 10)
    # shift d = 1: J = (s - d) / (s + d) = 9/11, every boundary pixel within 1 px -> F = 1
    pred = square(48, 100, 10, 21, 10)
    assert region_similarity(pred, gt)[0] == pytest.approx(9 / 11, abs=1e-15)
    assert boundary_f_measure(pred, gt)[0] == 1.0
    # shift d = 2: J = 8/12; of the 40 ring pixels of pred 10 + 10 (top/bottom rows) + 2 (left
    # column next to the corners) are within 1 px of gt's ring: P = R = 22/40 -> F = 0.55
    pred = square(48, 100, 10, 22, 10)
    assert boundary_map(pred).sum() == 40
    assert region_similarity(pred, gt)[0] == pytest.approx(8 / 12, abs=1e-15)
    assert boundary_f_measure(pred, gt)[0] == pytest.approx(0.55, abs=1e-12)
    # with 2 px tolerance everything matches again
    assert boundary_f_measure(pred, gt, bound_th=2)[0] == 1.0


def test_border_touching_masks():
    height, width = 48, 100
    gt = np.zeros((1, height, width), bool)
    gt[..., width - 3:] = True  # touches top, bottom and right borders
    # only the inner edge is a boundary (column W-4), image borders are not
    assert np.array_equal(np.argwhere(boundary_map(gt[0]))[:, 1], np.full(height, width - 4))
    pred = np.zeros_like(gt)
    pred[..., width - 5:] = True  # inner edge at W-6: 2 px away
    assert region_similarity(pred, gt)[0] == pytest.approx(3 / 5, abs=1e-15)
    assert boundary_f_measure(pred, gt)[0] == 0.0  # tolerance 1 px
    assert boundary_f_measure(pred, gt, bound_th=2)[0] == 1.0
    left = np.zeros_like(gt)
    left[..., :3] = True  # touches the left border: boundary is column 2 only
    assert np.array_equal(np.argwhere(boundary_map(left[0]))[:, 1], np.full(height, 2))


def test_disk_kernel_matches_definition():
    assert np.array_equal(disk_kernel(1.0), np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8))
    kernel = disk_kernel(12.0)
    ys, xs = np.mgrid[-12:13, -12:13]
    assert kernel.shape == (25, 25) and np.array_equal(kernel, (xs ** 2 + ys ** 2 <= 144).astype(np.uint8))


def test_properties_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(30):
        height, width = rng.integers(5, 60, size=2)
        a = rng.random((2, height, width)) < rng.random()
        b = np.roll(a, rng.integers(-4, 5), axis=2) ^ (rng.random((2, height, width)) < 0.05)
        j_ab, j_ba = region_similarity(a, b), region_similarity(b, a)
        f_ab = boundary_f_measure(a, b)
        assert np.array_equal(j_ab, j_ba)
        assert np.all((0 <= f_ab) & (f_ab <= 1)) and np.all((0 <= j_ab) & (j_ab <= 1))
        assert np.all(region_similarity(a, a) == 1) and np.all(boundary_f_measure(a, a) == 1)
        radius = boundary_tolerance(height, width)
        assert f_ab == pytest.approx([brute_force_f(p, g, radius) for p, g in zip(a, b)], abs=1e-12)
        j2, f2 = jf_per_frame(a, b)
        assert np.array_equal(j2, j_ab) and np.array_equal(f2, f_ab)


def test_jf_statistics():
    mean, recall, decay = jf_statistics([1.0, 1.0, 0.0, 0.0])
    assert (mean, recall, decay) == (0.5, 0.5, 1.0)  # bins [0:2] and [2:4]
    assert jf_statistics([0.7]) == (0.7, 1.0, 0.0)
    mean, recall, decay = jf_statistics([0.2, 0.9])  # 2 frames: decay = v0 - v1
    assert mean == pytest.approx(0.55) and recall == 0.5 and decay == pytest.approx(-0.7)
    mean, _, _ = jf_statistics([0.5, np.nan, 1.0])
    assert mean == 0.75


def test_function_input_errors():
    with pytest.raises(ValueError, match='differ in shape'):
        region_similarity(np.zeros((2, 4, 4), bool), np.zeros((3, 4, 4), bool))
    with pytest.raises(ValueError, match='binary'):
        boundary_f_measure(np.full((1, 4, 4), 0.5), np.zeros((1, 4, 4), bool))


# ------------------------------------------------------------------- RVOSJFMetric
def make_sample(video_id, exp_id, pred, gt, **meta):
    pred, gt = torch.as_tensor(pred), torch.as_tensor(gt)
    sample = dict(video_id=video_id, exp_id=exp_id, frame_ids=[f'{t:05d}' for t in range(len(pred))],
                  valid_frame_idx=None, ori_shape=tuple(pred.shape[-2:]), pred_masks=pred,
                  pred_scores=torch.ones(len(pred)), ori_gt_masks=gt)
    sample.update(meta)
    return sample


def test_jf_metric_hand_computed_and_dedup():
    gt = square(48, 100, 10, 20, 10, n=2)
    perfect = make_sample('v0', '0', gt, gt)
    shifted = make_sample('v0', '1', np.roll(gt, 2, axis=2), gt)  # J = 2/3, F = 0.55 per frame
    metric = METRICS.build(dict(type='RVOSJFMetric'))
    metric.process({}, [perfect, shifted])
    metric.process({}, [shifted])  # a padded duplicate must not count twice
    out = metric.evaluate(3)
    assert out['rvos/J'] == pytest.approx((1 + 2 / 3) / 2)
    assert out['rvos/F'] == pytest.approx((1 + 0.55) / 2)
    assert out['rvos/J&F'] == pytest.approx(((1 + 2 / 3) / 2 + (1 + 0.55) / 2) / 2)
    assert out['rvos/J-Recall'] == 1.0 and out['rvos/F-Recall'] == 1.0 and out['rvos/J-Decay'] == 0.0


def ref_davis_samples(swap_annotator=None):
    """One video, 2 objects x 4 annotators; exp id i refers to object i // 4 (annotator i % 4)."""
    objects = [square(30, 40, 3, 3, 8, n=2), square(30, 40, 15, 22, 10, n=2)]
    samples = []
    for i in range(8):
        obj, annotator = i // 4, i % 4
        pred_obj = 1 - obj if annotator == swap_annotator else obj
        pred = np.roll(objects[pred_obj], annotator, axis=2)  # annotator a: shift by a px
        samples.append(make_sample('v0', str(i), pred, objects[obj], annotator=annotator))
    return samples


def test_jf_metric_ref_davis_protocol():
    samples = ref_davis_samples()
    metric = RVOSJFMetric(ref_davis_protocol=True)
    metric.process({}, samples)
    out = metric.evaluate(len(samples))
    # disjoint, well-aligned predictions: the protocol equals the per-annotator mean over expressions
    per_annotator = []
    for a in range(4):
        items = [s for s in samples if s['annotator'] == a]
        js = [region_similarity(s['pred_masks'], s['ori_gt_masks']).mean() for s in items]
        fs = [boundary_f_measure(s['pred_masks'], s['ori_gt_masks']).mean() for s in items]
        per_annotator.append((np.mean(js) + np.mean(fs)) / 2)
        assert out[f'rvos/J&F_annotator{a}'] == pytest.approx(per_annotator[-1], abs=1e-12)
    assert out['rvos/J&F_annotator0'] == 1.0
    assert out['rvos/J&F'] == pytest.approx(np.mean(per_annotator), abs=1e-12)
    # annotator 0's expressions predict each other's object: the assignment swaps them back
    swapped = ref_davis_samples(swap_annotator=0)
    metric = RVOSJFMetric(ref_davis_protocol=True)
    metric.process({}, swapped)
    assert metric.evaluate(8)['rvos/J&F_annotator0'] == 1.0
    plain = RVOSJFMetric()
    plain.process({}, swapped[0::4])
    assert plain.evaluate(2)['rvos/J'] == 0.0
    # errors: an annotator without expressions; a sample without annotator
    metric = RVOSJFMetric(ref_davis_protocol=True)
    metric.process({}, samples[:3])
    with pytest.raises(ValueError, match=r'annotator\(s\) \[3\]'):
        metric.evaluate(3)
    with pytest.raises(ValueError, match="has no 'annotator'"):
        RVOSJFMetric(ref_davis_protocol=True).process({}, [make_sample('v9', '0', samples[0]['pred_masks'],
                                                                        samples[0]['ori_gt_masks'])])


@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_ref_davis_protocol_rejects_non_finite_scores(bad):
    """A NaN score used to win every contested pixel (J&F 1.000 -> 0.125, no error)."""
    samples = ref_davis_samples()
    samples[5]['pred_scores'] = torch.tensor([0.7, bad])
    metric = RVOSJFMetric(ref_davis_protocol=True)
    with pytest.raises(ValueError, match=r"video_id='v0'.*exp_id='5'.*'pred_scores' has non-finite values.*\[1\]"):
        metric.process({}, samples)


def test_merge_object_masks_resolves_overlaps_by_score():
    masks = np.zeros((3, 2, 4, 4), bool)
    masks[0, :, :2] = True  # rows 0-1
    masks[1, :, 1:3] = True  # rows 1-2, overlaps object 0 on row 1
    scores = np.array([[0.9, 0.2], [0.5, 0.8], [0.1, 0.1]])
    merged = merge_object_masks(masks, scores)
    assert merged[0, 0, 1].all() and not merged[1, 0, 1].any()  # frame 0: object 0 scores higher
    assert merged[1, 1, 1].all() and not merged[0, 1, 1].any()  # frame 1: object 1 scores higher
    assert not merged[2].any() and (merged.sum(0) <= 1).all()
    assert np.array_equal(merged.any(0), masks.any(0))


def test_metric_bad_input_names_the_sample(tmp_path):
    gt = square(30, 40, 5, 5, 8, n=2)
    metric = RVOSJFMetric()
    with pytest.raises(ValueError, match=r"video_id='bad'.*2 predicted frames but 3 ground-truth"):
        metric.process({}, [make_sample('bad', '0', gt, np.concatenate([gt, gt[:1]]))])
    with pytest.raises(ValueError, match=r"video_id='bad'.*differ in shape"):
        metric.process({}, [make_sample('bad', '0', gt, gt[:, :, :-1])])
    with pytest.raises(ValueError, match=r"video_id='bad'.*not binary"):
        metric.process({}, [make_sample('bad', '0', gt.astype(np.float32) * 0.7, gt)])
    with pytest.raises(ValueError, match=r"video_id='bad'.*has no 'pred_masks'"):
        sample = make_sample('bad', '0', gt, gt)
        del sample['pred_masks']
        metric.process({}, [sample])
    with pytest.raises(ValueError, match=r"video_id='bad'.*evaluated frames"):
        metric.process({}, [make_sample('bad', '0', gt, gt, frame_ids=['a', 'b', 'c'])])
    with pytest.raises(ValueError, match=r"video_id='bad'.*ori_shape"):
        metric.process({}, [make_sample('bad', '0', gt, gt, ori_shape=(31, 40))])
    meta = tmp_path / 'meta_expressions.json'
    meta.write_text(json.dumps({'videos': {'v0': {'expressions': {'0': {}}}, 'v1': {'expressions': {'0': {}}}}}))
    metric = RVOSJFMetric(meta_file=str(meta))
    metric.process({}, [make_sample('v0', '0', gt, gt)])
    with pytest.raises(ValueError, match=r"missing in the predictions, e.g. \['v1'\]"):
        metric.evaluate(1)


# ------------------------------------------------------------ A2DSentencesMetric
def a2d_samples(num=6, seed=1):
    from dist_metric_runner import build_samples
    return build_samples(num, seed)


def pycocotools_reference(gt_json, predictions):
    """mAP and IoU metrics computed directly with pycocotools, SOC's way."""
    import contextlib
    import io

    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt_json)
        coco_dt = coco_gt.loadRes(predictions)
        ev = COCOeval(coco_gt, coco_dt, iouType='segm')
        ev.params.useCats = 0
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ious, inter_sum, union_sum = [], 0, 0
    for img_id in coco_gt.imgs:
        gt = mask_utils.decode(coco_gt.imgToAnns[img_id][0]['segmentation'])
        best = sorted(coco_dt.imgToAnns[img_id], key=lambda a: a['score'])[-1]
        pred = mask_utils.decode(best['segmentation'])
        inter, union = torch.tensor(pred & gt).float().sum(), torch.tensor(pred | gt).float().sum()
        ious.append(((inter + 1e-6) / (union + 1e-6)).item())
        inter_sum += inter.item()
        union_sum += union.item()
    ref = dict(zip(('mAP', 'AP50', 'AP75'), ev.stats[:3]))
    ref.update({f'P@{k}': np.mean(np.array(ious) > k) for k in (0.5, 0.6, 0.7, 0.8, 0.9)})
    ref.update(overall_iou=inter_sum / union_sum, mean_iou=np.mean(ious))
    return ref


def test_a2d_metric_equals_pycocotools(tmp_path):
    from pycocotools import mask as mask_utils
    samples = a2d_samples()
    samples[0]['pred_instances']['masks'][:, 0] = False  # an all-empty frame
    images, annotations, predictions = [], [], []
    for s in samples:
        for t, frame in enumerate(s['frame_ids']):
            img_id = f"v_{s['video_id']}_f_{frame}_i_{s['exp_id']}"
            s.setdefault('coco_img_ids', []).append(img_id)
            rle = mask_utils.encode(np.asfortranarray(s['ori_gt_masks'][t].numpy().astype(np.uint8)))
            rle['counts'] = rle['counts'].decode()
            images.append(dict(id=img_id, height=24, width=40))
            annotations.append(dict(id=len(annotations) + 1, image_id=img_id, category_id=1, segmentation=rle,
                                    area=float(mask_utils.area(rle)), bbox=mask_utils.toBbox(rle).tolist(),
                                    iscrowd=0))
            for q in range(3):
                m = s['pred_instances']['masks'][q, t].numpy().astype(np.uint8)
                score = s['pred_instances']['scores'][q, t].item()
                predictions.append(dict(image_id=img_id, category_id=1, score=score,
                                        segmentation=mask_utils.encode(np.asfortranarray(m))))
    gt_json = tmp_path / 'gt.json'
    gt_json.write_text(json.dumps(dict(images=images, annotations=annotations,
                                       categories=[dict(id=1, name='dummy_class')])))
    ref = pycocotools_reference(str(gt_json), predictions)
    assert 0 < ref['mAP'] < 1
    for ann_file in (str(gt_json), None):  # GT json and GT built in memory give the same numbers
        metric = A2DSentencesMetric(ann_file=ann_file)
        metric.process({}, samples)
        out = metric.evaluate(len(samples))
        for key, value in ref.items():
            assert out[f'a2d/{key}'] == value, (ann_file, key)


def test_a2d_metric_top_mask_and_errors(tmp_path):
    samples = a2d_samples(2)
    # without pred_instances: pred_masks is the top mask and the only detection
    for s in samples:
        del s['pred_instances']
    metric = A2DSentencesMetric(metric='iou')
    metric.process({}, samples)
    out = metric.evaluate(2)
    inter = sum(int((s['pred_masks'][t] & s['ori_gt_masks'][t]).sum()) for s in samples for t in range(3))
    union = sum(int((s['pred_masks'][t] | s['ori_gt_masks'][t]).sum()) for s in samples for t in range(3))
    assert out['a2d/overall_iou'] == inter / union and 'a2d/mAP' not in out
    with pytest.raises(FileNotFoundError, match='nope.json'):
        A2DSentencesMetric(ann_file=str(tmp_path / 'nope.json'))
    bad = a2d_samples(1)[0]
    bad['pred_instances']['scores'] = bad['pred_instances']['scores'][:, :2]
    with pytest.raises(ValueError, match="video_id='video0'.*pred_instances"):
        A2DSentencesMetric().process({}, [bad])
    metric = A2DSentencesMetric()
    metric.process({}, a2d_samples(1))
    gt_json = tmp_path / 'gt.json'
    gt_json.write_text(json.dumps(dict(images=[dict(id='other', height=24, width=40)], annotations=[],
                                       categories=[dict(id=1, name='x')])))
    metric = A2DSentencesMetric(ann_file=str(gt_json))
    with pytest.raises(ValueError, match="no 'coco_img_ids'"):
        metric.process({}, a2d_samples(1))
    sample = a2d_samples(1)[0]
    sample['coco_img_ids'] = ['a', 'b', 'c']
    metric.process({}, [sample])
    with pytest.raises(ValueError, match=r"have no prediction, e.g. \['other'\]"):
        metric.evaluate(1)


def test_refcoco_metric_int_image_ids(tmp_path):
    from pycocotools import mask as mask_utils
    samples = []
    images, annotations = [], []
    for i, s in enumerate(a2d_samples(3)):
        s['valid_frame_idx'] = [1]
        s['img_id'] = 100 + i
        for key in ('pred_masks', 'ori_gt_masks', 'pred_scores'):
            s[key] = s[key][1:2]
        s['pred_instances'] = {k: v[:, 1:2] for k, v in s['pred_instances'].items()}
        rle = mask_utils.encode(np.asfortranarray(s['ori_gt_masks'][0].numpy().astype(np.uint8)))
        rle['counts'] = rle['counts'].decode()
        images.append(dict(id=100 + i, height=24, width=40))
        annotations.append(dict(id=i + 1, image_id=100 + i, category_id=1, segmentation=rle, iscrowd=0,
                                area=float(mask_utils.area(rle)), bbox=mask_utils.toBbox(rle).tolist()))
        samples.append(s)
    ann_file = tmp_path / 'instances_refcoco_val.json'
    ann_file.write_text(json.dumps(dict(images=images, annotations=annotations, categories=[dict(id=1, name='o')])))
    metric = METRICS.build(dict(type='RefCOCOSegMetric', ann_file=str(ann_file)))
    metric.process({}, samples)
    out = metric.evaluate(3)
    in_memory = A2DSentencesMetric()
    in_memory.process({}, samples)
    ref = in_memory.evaluate(3)
    assert {k.split('/')[1]: v for k, v in out.items()} == {k.split('/')[1]: v for k, v in ref.items()}


# ------------------------------------------------------ RefYTVOSSubmissionMetric
def test_ref_ytvos_submission(tmp_path):
    gt = square(30, 40, 5, 5, 8, n=3)
    samples = [make_sample('vidA', '0', gt, gt), make_sample('vidA', '1', ~gt, gt),
               make_sample('vidB', '0', gt[:2], gt[:2], frame_ids=['00005', '00010', '00015'], valid_frame_idx=[0, 2])]
    meta = tmp_path / 'meta.json'
    meta.write_text(json.dumps({'videos': {'vidA': {'expressions': {'0': {}, '1': {}}},
                                           'vidB': {'expressions': {'0': {}}}}}))
    metric = RefYTVOSSubmissionMetric(output_dir=str(tmp_path / 'out'), meta_file=str(meta))
    metric.process({}, samples)
    assert metric.evaluate(3) == {}
    with zipfile.ZipFile(tmp_path / 'out' / 'submission.zip') as zf:
        names = zf.namelist()
        files = sorted(n for n in names if not n.endswith('/'))
        assert files == ['Annotations/vidA/0/00000.png', 'Annotations/vidA/0/00001.png', 'Annotations/vidA/0/00002.png',
                         'Annotations/vidA/1/00000.png', 'Annotations/vidA/1/00001.png', 'Annotations/vidA/1/00002.png',
                         'Annotations/vidB/0/00005.png', 'Annotations/vidB/0/00015.png']
        assert 'Annotations/' in names and 'Annotations/vidA/0/' in names
        from io import BytesIO

        from PIL import Image
        png = np.array(Image.open(BytesIO(zf.read('Annotations/vidA/1/00001.png'))))
        assert png.dtype == np.uint8 and png.shape == (30, 40)
        assert np.array_equal(png, np.where(~gt[1], 255, 0).astype(np.uint8))
    assert not osp.exists(tmp_path / 'out' / 'Annotations')  # keep_pngs=False
    # a missing expression refuses to zip
    metric = RefYTVOSSubmissionMetric(output_dir=str(tmp_path / 'out2'), meta_file=str(meta))
    metric.process({}, samples[:2])
    with pytest.raises(ValueError, match=r"missing in the predictions, e.g. \['vidB'\]"):
        metric.evaluate(2)


@pytest.mark.parametrize('field,value', [('video_id', '..'), ('video_id', '../escape'), ('exp_id', 'a/b'),
                                         ('frame_ids', ['../../x', 'b', 'c']), ('video_id', '')])
def test_ref_ytvos_submission_refuses_escaping_ids(tmp_path, field, value):
    gt = square(30, 40, 5, 5, 8, n=3)
    metric = RefYTVOSSubmissionMetric(output_dir=str(tmp_path / 'out'))
    with pytest.raises(ValueError, match='outside the submission directory'):
        sample = make_sample('v', '0', gt, gt)
        sample[field] = value
        metric.process({}, [sample])
    assert not list((tmp_path).rglob('*.png'))
